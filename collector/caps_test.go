package collector

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/firstpartyhq/firstparty/store"
)

// TestCapProps: string values are cut at a UTF-8 boundary at Limits.Value
// (16 times that for $elements_chain and URLs), properties beyond
// Limits.Properties and over-long keys, JSON values and numbers are
// dropped, the members of $set are held to the same limits, and a
// $snapshot's data is left to the recording limits.
func TestCapProps(t *testing.T) {
	lim := Limits{Value: 10, Properties: 4}.withDefaults()
	str := func(s string) store.Value { return store.Value{Kind: store.KindString, S: s} }
	js := func(s string) store.Value { return store.Value{Kind: store.KindJSON, S: s} }
	cases := []struct {
		name    string
		event   string
		in      store.Props
		want    store.Props
		wantCut int
	}{
		{"short values kept", "e",
			store.Props{{Key: "a", Val: str("0123456789")}},
			store.Props{{Key: "a", Val: str("0123456789")}}, 0},
		{"long value cut", "e",
			store.Props{{Key: "a", Val: str("0123456789abc")}},
			store.Props{{Key: "a", Val: str("0123456789")}}, 1},
		{"cut never splits a character", "e",
			store.Props{{Key: "a", Val: str("012345678é")}}, // é is 2 bytes at 9..10
			store.Props{{Key: "a", Val: str("012345678")}}, 1},
		{"elements chain may be 16x longer", "$autocapture",
			store.Props{{Key: "$elements_chain", Val: str(strings.Repeat("a", 160))}, {Key: "$current_url", Val: str(strings.Repeat("u", 170))}},
			store.Props{{Key: "$elements_chain", Val: str(strings.Repeat("a", 160))}, {Key: "$current_url", Val: str(strings.Repeat("u", 160))}}, 1},
		{"properties beyond the limit dropped", "e",
			store.Props{{Key: "a", Val: str("1")}, {Key: "b", Val: str("2")}, {Key: "c", Val: str("3")}, {Key: "d", Val: str("4")}, {Key: "e", Val: str("5")}, {Key: "f", Val: str("6")}},
			store.Props{{Key: "a", Val: str("1")}, {Key: "b", Val: str("2")}, {Key: "c", Val: str("3")}, {Key: "d", Val: str("4")}}, 2},
		{"long key dropped", "e",
			store.Props{{Key: strings.Repeat("k", 201), Val: str("1")}, {Key: "b", Val: str("2")}},
			store.Props{{Key: "b", Val: str("2")}}, 1},
		{"huge JSON value dropped", "e",
			store.Props{{Key: "o", Val: js(`{"x":"` + strings.Repeat("y", 200) + `"}`)}, {Key: "b", Val: str("2")}},
			store.Props{{Key: "b", Val: str("2")}}, 1},
		{"huge number dropped", "e",
			store.Props{{Key: "n", Val: store.Value{Kind: store.KindNumber, S: strings.Repeat("9", 100)}}},
			store.Props{}, 1},
		{"$set members capped", "$identify",
			store.Props{{Key: "$set", Val: js(`{"email":"` + strings.Repeat("m", 300) + `","plan":"pro"}`)}},
			store.Props{{Key: "$set", Val: js(`{"email":"mmmmmmmmmm","plan":"pro"}`)}}, 1},
		{"snapshot data left to the recording limits", "$snapshot",
			store.Props{{Key: "$snapshot_data", Val: js(`[` + strings.Repeat(`{"type":3},`, 100) + `{"type":2}]`)}},
			store.Props{{Key: "$snapshot_data", Val: js(`[` + strings.Repeat(`{"type":3},`, 100) + `{"type":2}]`)}}, 0},
	}
	for _, c := range cases {
		in := append(store.Props(nil), c.in...)
		got, cut := lim.capProps(c.event, in)
		if cut != c.wantCut {
			t.Errorf("%s: cut %d, want %d", c.name, cut, c.wantCut)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s:\n got %v\nwant %v", c.name, got, c.want)
		}
		for _, p := range got {
			if !utf8.ValidString(p.Val.S) {
				t.Errorf("%s: %s is not valid UTF-8 after the cut", c.name, p.Key)
			}
		}
	}
}

// TestLimitsThroughCapture: through the capture endpoint, over-long names
// and distinct ids drop the event (too_long), long values are cut and
// counted, and the other events of the batch are kept.
func TestLimitsThroughCapture(t *testing.T) {
	f := newFixture(t, Config{Limits: Limits{Value: 64, Properties: 10}})
	long := strings.Repeat("x", 201)
	many := map[string]string{}
	for i := 0; i < 50; i++ {
		many[fmt.Sprintf("p%02d", i)] = "v"
	}
	manyJSON := `{"distinct_id":"d3"`
	for k, v := range many {
		manyJSON += fmt.Sprintf(",%q:%q", k, v)
	}
	manyJSON += "}"
	body := `{"batch":[
		{"event":"` + long + `","distinct_id":"d1"},
		{"event":"ok","distinct_id":"` + long + `"},
		{"event":"cut","distinct_id":"d2","properties":{"$pathname":"/` + strings.Repeat("p", 5000) + `"}},
		{"event":"many","properties":` + manyJSON + `}
	]}`
	code, resp := f.do(req{path: "/batch/", body: []byte(body)})
	if code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	if got := f.m.rejected[ReasonTooLong]; got != 2 {
		t.Errorf("too_long rejected %d, want 2", got)
	}
	evs := f.events()
	if len(evs) != 2 {
		t.Fatalf("%d events stored, want 2", len(evs))
	}
	if p := evs[0].Props.Str("$pathname"); len(p) != 64 {
		t.Errorf("$pathname kept %d bytes, want 64", len(p))
	}
	n := 0
	for _, p := range evs[1].Props {
		if strings.HasPrefix(p.Key, "p") && len(p.Key) == 3 {
			n++
		}
	}
	if n != 10 {
		t.Errorf("%d of 50 custom properties kept, want 10", n)
	}
	if f.m.truncated != 1+40 {
		t.Errorf("truncated counted %d, want 41", f.m.truncated)
	}
}

// TestDNTServerSide: with respect_dnt, a capture request carrying DNT: 1 or
// Sec-GPC: 1 (posthog-js does not check them itself by default) is answered
// 200 and nothing of it is stored; without respect_dnt it is stored.
func TestDNTServerSide(t *testing.T) {
	for _, respect := range []bool{true, false} {
		for _, h := range []string{"DNT", "Sec-GPC"} {
			f := newFixture(t, Config{RespectDNT: respect})
			code, resp := f.do(req{path: "/e/", body: []byte(`[{"event":"$pageview","distinct_id":"a"},{"event":"x","distinct_id":"a"}]`), headers: map[string]string{h: "1"}})
			if code != 200 {
				t.Fatalf("%s respect=%v: %d %s", h, respect, code, resp)
			}
			stored := len(f.events())
			if respect && (stored != 0 || f.m.rejected[ReasonDNT] != 2) {
				t.Errorf("%s with respect_dnt: %d stored, %d counted dnt; want 0 and 2", h, stored, f.m.rejected[ReasonDNT])
			}
			if !respect && stored != 2 {
				t.Errorf("%s without respect_dnt: %d stored, want 2", h, stored)
			}
		}
	}
	// DNT: 0 is no request not to track.
	f := newFixture(t, Config{RespectDNT: true})
	if code, _ := f.do(req{path: "/e/", body: []byte(`{"event":"x","distinct_id":"a"}`), headers: map[string]string{"DNT": "0"}}); code != 200 || len(f.events()) != 1 {
		t.Errorf("DNT: 0 was not stored")
	}
}

// TestRecordingLimits: a session's recording stops growing at
// Limits.Recording and a site's at Limits.Recordings a day; the client is
// answered 200 and the drop counted.
func TestRecordingLimits(t *testing.T) {
	snap := func(session string, i int) []byte {
		// incompressible enough that each chunk stores a few KiB
		var b strings.Builder
		for j := 0; j < 400; j++ {
			fmt.Fprintf(&b, "%08x", uint32(i*7919+j*104729)*2654435761)
		}
		return []byte(fmt.Sprintf(`{"event":"$snapshot","distinct_id":"d","properties":{"$session_id":%q,"$window_id":"w","$snapshot_data":[{"type":3,"timestamp":%d,"data":{"t":%q}}]}}`, session, ms(testNow)+int64(i), b.String()))
	}
	t.Run("per session", func(t *testing.T) {
		f := newFixture(t, Config{Limits: Limits{Recording: 8 << 10}})
		for i := 0; i < 20; i++ {
			if code, resp := f.do(req{path: "/s/", body: snap("s1", i)}); code != 200 {
				t.Fatalf("%d %s", code, resp)
			}
		}
		got, _ := f.db.RecordingUsage("example.com", "s1")
		if got < 8<<10 || got > 16<<10 {
			t.Errorf("session stored %d bytes, want the limit 8 KiB plus at most one chunk", got)
		}
		if f.m.rejected[ReasonRecordingCap] == 0 {
			t.Error("no drop counted")
		}
		// another session is not affected
		if code, _ := f.do(req{path: "/s/", body: snap("s2", 0)}); code != 200 {
			t.Fatal(code)
		}
		if n, _ := f.db.RecordingUsage("example.com", "s2"); n == 0 {
			t.Error("a second session was refused by the first one's limit")
		}
	})
	t.Run("per site and day", func(t *testing.T) {
		f := newFixture(t, Config{Limits: Limits{Recordings: 16 << 10}})
		for i := 0; i < 40; i++ {
			f.do(req{path: "/s/", body: snap(fmt.Sprintf("s%d", i), i)})
		}
		_, day := f.db.RecordingUsage("example.com", "")
		if day < 16<<10 || day > 24<<10 {
			t.Errorf("site stored %d bytes today, want the limit 16 KiB plus at most one chunk", day)
		}
		recs := f.db.Recordings(context.Background(), "example.com", 0, 1<<62)
		if len(recs) == 0 || len(recs) >= 40 {
			t.Errorf("%d recordings stored, want some but not all 40", len(recs))
		}
	})
}
