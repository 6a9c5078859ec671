package collector

import (
	"context"
	"runtime"
	"strings"
	"testing"
)

// TestHostileBodiesBoundedMemory: whatever a body unpacks to, handling it
// allocates a small multiple of max_body, not of what the body claims: zip
// bombs stop at the limit after decompression, deep JSON stops at depth 64,
// huge arrays at 10,000 events.
func TestHostileBodiesBoundedMemory(t *testing.T) {
	const maxBody = 1 << 20
	f := newFixture(t, Config{MaxBody: maxBody})
	events := make([]string, 20000)
	for i := range events {
		events[i] = `{"event":"e","distinct_id":"d"}`
	}
	cases := []struct {
		name string
		r    req
		code int
	}{
		{"gzip bomb, 256 MiB of zeros", req{path: "/e/", body: gz(make([]byte, 256<<20))}, 413},
		{"deep JSON within the limit", req{path: "/e/", body: []byte(strings.Repeat("[", maxBody/2-1) + strings.Repeat("]", maxBody/2-1))}, 400},
		{"20,000-event batch, gzipped", req{path: "/batch/", body: gz([]byte(`{"batch":[` + strings.Join(events, ",") + `]}`))}, 400},
		{"one huge string property", req{path: "/e/", body: []byte(`{"event":"x","distinct_id":"d","properties":{"p":"` + strings.Repeat("x", maxBody-100) + `"}}`)}, 200},
	}
	for _, c := range cases {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		code, resp := f.do(c.r)
		runtime.ReadMemStats(&after)
		if code != c.code {
			t.Errorf("%s: %d %.200s, want %d", c.name, code, resp, c.code)
		}
		allocated := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: %d, %.1f MiB allocated", c.name, code, float64(allocated)/(1<<20))
		if limit := uint64(24 * maxBody); allocated > limit {
			t.Errorf("%s: %d MiB allocated for a %d-byte body (limit %d MiB)", c.name, allocated>>20, len(c.r.body), limit>>20)
		}
	}
}

// TestRecordingBodyLimit: a recording may carry a full snapshot of a large
// page (one rrweb event, not splittable) up to 8 × max_body; other capture
// bodies stay within max_body.
func TestRecordingBodyLimit(t *testing.T) {
	const maxBody = 64 << 10
	f := newFixture(t, Config{MaxBody: maxBody})
	snapshot := func(session string, size int) []byte {
		return []byte(`[{"event":"$snapshot","properties":{"$session_id":"` + session + `","$window_id":"w","distinct_id":"d","$snapshot_data":[` +
			`{"type":2,"timestamp":1764000000000,"data":{"node":{"type":0,"childNodes":[{"type":3,"textContent":"` + strings.Repeat("x", size) + `"}]},"initialOffset":{"top":0,"left":0}}}]}}]`)
	}
	if code, resp := f.do(req{path: "/s/", body: snapshot("big", 5*maxBody)}); code != 200 {
		t.Fatalf("a 5 × max_body recording: %d %s", code, resp)
	}
	if data, err := f.db.Recording(context.Background(), "example.com", "big"); err != nil || len(data) < 5*maxBody {
		t.Fatalf("the big recording: %v, %d bytes", err, len(data))
	}
	if code, _ := f.do(req{path: "/s/", body: gz(snapshot("too-big", 9*maxBody))}); code != 413 {
		t.Errorf("a 9 × max_body recording (gzipped): %d, want 413", code)
	}
	if code, _ := f.do(req{path: "/e/", body: []byte(`{"event":"x","distinct_id":"d","properties":{"p":"` + strings.Repeat("x", 2*maxBody) + `"}}`)}); code != 413 {
		t.Errorf("a 2 × max_body event: %d, want 413", code)
	}
}
