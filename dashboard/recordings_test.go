package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

func TestRecordingsAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).UnixMilli()
	chunk := func(ts ...int64) []byte {
		var b strings.Builder
		b.WriteByte('[')
		for i, x := range ts {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"type":3,"data":{"source":1,"positions":[{"x":1,"y":2,"id":3,"timeOffset":0}]},"timestamp":`)
			b.WriteString(jsonInt(x))
			b.WriteByte('}')
		}
		b.WriteByte(']')
		return []byte(b.String())
	}
	if err := e.db.AppendSnapshots(ctx, "example.com", []store.Snapshot{
		{SessionID: "s1", WindowID: "w", DistinctID: "anon-1", Data: chunk(t0, t0+1000)},
		{SessionID: "s2", WindowID: "w", DistinctID: "bob", Data: chunk(t0 + 3600_000)},
	}); err != nil {
		t.Fatal(err)
	}
	// A second batch of s1 extends it.
	if err := e.db.AppendSnapshots(ctx, "example.com", []store.Snapshot{{SessionID: "s1", DistinctID: "anon-1", Data: chunk(t0 + 90_500)}}); err != nil {
		t.Fatal(err)
	}
	// Another site's recording is not listed.
	if err := e.db.AppendSnapshots(ctx, "other.example", []store.Snapshot{{SessionID: "s9", DistinctID: "x", Data: chunk(t0)}}); err != nil {
		t.Fatal(err)
	}
	// anon-1 became alice.
	e.add(ev("$identify", "alice", time.UnixMilli(t0+5000), "$anon_distinct_id", "anon-1"))

	// Each row names its person (an id when they have no email or name;
	// bob has no events, so no person id).
	alice, err := e.db.Person(ctx, "example.com", "alice")
	if err != nil {
		t.Fatal(err)
	}
	e.want("/api/recordings?"+day, 200,
		`{"results":[{"session_id":"s2","distinct_id":"bob","start":"2026-11-23T11:00:00Z","duration_s":0,"person":"bob"},{"session_id":"s1","distinct_id":"anon-1","start":"2026-11-23T10:00:00Z","duration_s":90.5,"person":"anon-1","person_id":"`+alice.ID+`"}]}`)
	e.want("/api/recordings?"+day+"&limit=1", 200,
		`{"results":[{"session_id":"s2","distinct_id":"bob","start":"2026-11-23T11:00:00Z","duration_s":0,"person":"bob"}]}`)
	// By person: any of its ids.
	e.want("/api/recordings?"+day+"&distinct_id=alice", 200,
		`{"results":[{"session_id":"s1","distinct_id":"anon-1","start":"2026-11-23T10:00:00Z","duration_s":90.5,"person":"anon-1","person_id":"`+alice.ID+`"}]}`)
	// [from, to): s2 starts at 11:00.
	e.want("/api/recordings?from=2026-11-23T10:30:00Z&to=2026-11-23T11:00:00Z", 200, `{"results":[]}`)
	e.want("/api/recordings?from=2026-11-24", 200, `{"results":[]}`)
	// Another site in the same store is not this dashboard's (SPEC §5.1).
	e.want("/api/recordings?site=other.example&"+day, 404, `{"error":"no such site"}`)
	e.want("/api/recordings/s9?site=other.example", 404, `{"error":"no such site"}`)
	e.want("/api/recordings/s9", 404, `{"error":"not found"}`)
	if w := e.do("GET", "/api/recordings?from=yesterday", nil); w.Code != 400 {
		t.Errorf("bad from: %d %s", w.Code, w.Body)
	}

	w := e.do("GET", "/api/recordings/s1", nil)
	var evs []map[string]any
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &evs) != nil || len(evs) != 3 {
		t.Fatalf("s1: %d %s", w.Code, w.Body)
	}
	if evs[2]["timestamp"].(float64) != float64(t0+90_500) || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Errorf("s1 events: %s", w.Body)
	}
	e.want("/api/recordings/nope", 404, `{"error":"not found"}`)

	// A session recorded in two tabs at once: listed once with its tab
	// count, each tab replayed on its own, never interleaved.
	if err := e.db.AppendSnapshots(ctx, "example.com", []store.Snapshot{
		{SessionID: "s3", WindowID: "tab-a", DistinctID: "carol", Data: chunk(t0+7200_000, t0+7201_000)},
		{SessionID: "s3", WindowID: "tab-b", DistinctID: "carol", Data: chunk(t0 + 7200_500)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.AppendSnapshots(ctx, "example.com", []store.Snapshot{{SessionID: "s3", WindowID: "tab-a", DistinctID: "carol", Data: chunk(t0 + 7202_000)}}); err != nil {
		t.Fatal(err)
	}
	e.want("/api/recordings?"+day+"&distinct_id=carol", 200,
		`{"results":[{"session_id":"s3","distinct_id":"carol","start":"2026-11-23T12:00:00Z","duration_s":2,"tabs":2,"person":"carol"}]}`)
	tabTimes := func(q string) []float64 {
		t.Helper()
		w := e.do("GET", "/api/recordings/s3"+q, nil)
		var evs []map[string]any
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &evs) != nil {
			t.Fatalf("s3%s: %d %s", q, w.Code, w.Body)
		}
		var ts []float64
		for _, ev := range evs {
			ts = append(ts, ev["timestamp"].(float64)-float64(t0))
		}
		return ts
	}
	if got := tabTimes(""); fmt.Sprint(got) != "[7.2e+06 7.201e+06 7.202e+06]" {
		t.Errorf("first tab: %v", got)
	}
	if got := tabTimes("?tab=2"); fmt.Sprint(got) != "[7.2005e+06]" {
		t.Errorf("second tab: %v", got)
	}
	e.want("/api/recordings/s3?tab=3", 404, `{"error":"not found"}`)
	if w := e.do("GET", "/api/recordings/s3?tab=zero", nil); w.Code != 400 {
		t.Errorf("bad tab: %d %s", w.Code, w.Body)
	}
	e.want("/api/recordings/s9", 404, `{"error":"not found"}`)

	// Deleting the person deletes the recording.
	if w := e.send("DELETE", "/api/persons/alice", ""); w.Code != 204 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	e.want("/api/recordings/s1", 404, `{"error":"not found"}`)
}

func jsonInt(x int64) string {
	b, _ := json.Marshal(x)
	return string(b)
}

// TestReplayPageCSP: the replay page relaxes style-src for rrweb's rebuilt
// page and nothing else; every other page keeps the strict policy.
func TestReplayPageCSP(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/recordings", "/recordings/", "/heatmap", "/heatmap/", "/"} {
		w := e.do("GET", p, nil)
		csp := w.Header().Get("Content-Security-Policy")
		if w.Code != 200 || !strings.Contains(w.Body.String(), "js/app.js") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "style-src 'self';") {
			t.Errorf("%s: %d CSP %q", p, w.Code, csp)
		}
	}
	w := e.do("GET", "/recordings/some-session", nil)
	csp := w.Header().Get("Content-Security-Policy")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "js/app.js") {
		t.Fatalf("replay page: %d %s", w.Code, w.Body)
	}
	if !strings.Contains(csp, "style-src 'self' 'unsafe-inline';") || !strings.Contains(csp, "script-src 'self';") || strings.Count(csp, "unsafe") != 1 {
		t.Errorf("replay CSP %q", csp)
	}
}
