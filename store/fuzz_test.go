package store

import (
	"reflect"
	"testing"
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
