package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// FuzzDecodeBlock: a stored block, however damaged, decodes to an error or
// to events that encode back to the same events; never a panic.
func FuzzDecodeBlock(f *testing.F) {
	evs := []*Event{
		{UUID: "0190b3c5-7e1a-7cc0-8000-000000000001", Site: "s", Name: "$pageview", DistinctID: "d1", Time: 1764000000000,
			Props: Props{{Key: "$pathname", Val: StringValue("/")}, {Key: "n", Val: NumberValue(1.5)}, {Key: "b", Val: BoolValue(true)}}},
		{UUID: "not-a-uuid", Site: "s", Name: "x", DistinctID: "d2", Time: -5, Props: Props{{Key: "$set", Val: StringValue(`{"a":1}`)}}},
		{UUID: "", Site: "s", Name: "", DistinctID: "", Time: 0},
	}
	f.Add(encodeBlock("s", evs, compressFast))
	f.Add(encodeBlock("s", evs, compressBest))
	f.Add(encodeBlock("s", evs[:1], compressFast)[:20])
	f.Add("F\x01\x00\x00")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		d, err := decodeBlock(v)
		if err != nil {
			return
		}
		got := make([]*Event, len(d.events))
		for i := range d.events {
			got[i] = d.event(i)
		}
		back, err := decodeBlock(encodeBlock(d.site, got, compressFast))
		if err != nil {
			t.Fatalf("a block it decoded does not encode back: %v", err)
		}
		for i := range back.events {
			if e := back.event(i); !reflect.DeepEqual(e, got[i]) {
				t.Fatalf("event %d changed in a round trip:\n%+v\n%+v", i, got[i], e)
			}
		}
	})
}

// FuzzMergeBlock: merging block values refuses exactly the values
// decodeBlock refuses, and otherwise writes the very block encodeRaw writes
// from the decoded events.
func FuzzMergeBlock(f *testing.F) {
	a := []*Event{
		{UUID: "0190b3c5-7e1a-7cc0-8000-000000000001", Site: "s", Name: "$pageview", DistinctID: "d1", Time: 1764000000000,
			Props: Props{{Key: "$pathname", Val: StringValue("/")}, {Key: "n", Val: NumberValue(1.5)}, {Key: "b", Val: BoolValue(true)}}},
		{UUID: "NOT-a-uuid", Site: "s", Name: "x", DistinctID: "d2", Time: -5, Props: Props{{Key: "$set", Val: Value{Kind: KindJSON, S: `{"a":1}`}}, {Key: "z", Val: Value{Kind: KindNull}}}},
	}
	b := []*Event{
		{UUID: "0190b3c5-7e1a-7cc0-8000-000000000002", Site: "s", Name: "$pageview", DistinctID: "d2", Time: 1764000000001,
			Props: Props{{Key: "$pathname", Val: StringValue("/b")}, {Key: "b", Val: BoolValue(false)}}},
		{UUID: "", Site: "s", Name: "", DistinctID: "", Time: 0},
	}
	f.Add(encodeBlock("s", a, compressFast), encodeBlock("s", b, compressFast))
	f.Add(encodeBlock("s", a, compressBest), encodeBlock("s", b, compressFast))
	f.Add(encodeBlock("s", a, compressFast), encodeBlock("s", b, compressFast)[:20])
	f.Add("F\x01\x00\x00", "")
	f.Fuzz(func(t *testing.T, v1, v2 string) {
		var want []rawRef
		bad := false
		for _, v := range []string{v1, v2} {
			d, err := decodeBlock(v)
			if err != nil {
				bad = true
				break
			}
			for i := range d.events {
				want = append(want, rawRef{d, i})
			}
		}
		got, err := mergeBlockValues("site", []string{"k1", "k2"}, []string{v1, v2}, compressFast)
		if bad != (err != nil) {
			t.Fatalf("decodeBlock refused: %v; merge: %v", bad, err)
		}
		if bad {
			return
		}
		if w := encodeRaw("site", want, compressFast); got != w {
			t.Fatalf("merged block differs from the decoded events encoded again")
		}
	})
}

// TestFastBlockMergesTheSame: a commit block that adds values again instead
// of looking them up decodes to the same events as one that looks every
// value up, and compaction merges either into the same block.
func TestFastBlockMergesTheSame(t *testing.T) {
	var groups [3][]*Event
	for i := range 90 {
		ev := &Event{UUID: NewUUID(time.UnixMilli(1764000000000 + int64(i))), Site: "s", Name: []string{"$pageview", "$autocapture", "x"}[i%3],
			DistinctID: fmt.Sprint("d", i%7), Time: 1764000000000 + int64(i),
			Props: Props{{Key: "$current_url", Val: StringValue(fmt.Sprint("/p", i%5))}, {Key: "id", Val: StringValue(fmt.Sprint(i))},
				{Key: "n", Val: NumberValue(float64(i % 4))}, {Key: "b", Val: BoolValue(i%2 == 0)},
				{Key: "$device_id", Val: StringValue(fmt.Sprint("d", i%7))}}}
		if i%11 == 0 {
			ev.UUID = fmt.Sprint("custom-", i%3) // a non-canonical uuid, repeated
			ev.Props = append(Props{{Key: "extra", Val: StringValue("/p1")}}, ev.Props...)
		}
		groups[i%3] = append(groups[i%3], ev)
	}
	var fast, exact []string
	for _, g := range groups {
		fast = append(fast, encodeBlock("s", g, compressFast))
		e := new(blockEncoder)
		e.strs = make(map[string]uint32)
		e.reset()
		site := e.str("s")
		for _, ev := range g {
			e.event(ev, false)
		}
		exact = append(exact, string(e.finish(site, len(g), compressFast)))
	}
	for i := range fast {
		a, err := decodeBlock(fast[i])
		if err != nil {
			t.Fatal(err)
		}
		b, err := decodeBlock(exact[i])
		if err != nil {
			t.Fatal(err)
		}
		if len(a.strs) <= len(b.strs) {
			t.Errorf("group %d: %d strings in the fast block, %d looked up: nothing added again", i, len(a.strs), len(b.strs))
		}
		for j := range a.events {
			if x, y := a.event(j), b.event(j); !reflect.DeepEqual(x, y) {
				t.Fatalf("group %d event %d:\n%+v\n%+v", i, j, x, y)
			}
		}
	}
	keys := []string{"k1", "k2", "k3"}
	m1, err := mergeBlockValues("s", keys, fast, compressBest)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := mergeBlockValues("s", keys, exact, compressBest)
	if err != nil {
		t.Fatal(err)
	}
	if m1 != m2 {
		t.Fatal("merged blocks differ")
	}
}
