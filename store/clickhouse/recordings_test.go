package clickhouse

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

// snaps makes recording chunks: sessions of several tabs (the first chunk
// of one without a window id), a chunk without timestamps, and bytes that
// are not UTF-8 inside a string.
func snaps(round, sessions int) []store.Snapshot {
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC).UnixMilli()
	var out []store.Snapshot
	for s := 0; s < sessions; s++ {
		for c := 0; c < 3; c++ {
			ts := t0 + int64(s*60_000+round*10_000+c*1000)
			win := fmt.Sprint("w", (s+c)%2)
			if s%4 == 0 && round == 0 && c == 0 {
				win = ""
			}
			data := fmt.Sprintf(`[{"type":3,"timestamp":%d,"data":{"source":2,"x":%d}}, {"type":3,"timestamp":%d,"data":{"t":"caf\u00e9 \xff\xfe <b>"}}]`, ts, c, ts+400)
			if s%5 == 1 && c == 1 {
				data = `[{"type":4,"data":{"href":"https://x.test/"}}]`
			}
			out = append(out, store.Snapshot{SessionID: fmt.Sprint("sess-", s), WindowID: win, DistinctID: fmt.Sprint("d", s%3), Data: []byte(data)})
		}
	}
	return out
}

// sameRecordings checks that got answers every recording question as the
// local store want does, byte for byte.
func sameRecordings(t *testing.T, what string, got, want store.Store, site string) {
	t.Helper()
	wl := want.Recordings(ctx, site, math.MinInt64, math.MaxInt64)
	sameJSON(t, what+" list", got.Recordings(ctx, site, math.MinInt64, math.MaxInt64), wl)
	from := time.Date(2026, 3, 2, 10, 3, 0, 0, time.UTC).UnixMilli()
	sameJSON(t, what+" list in range", got.Recordings(ctx, site, from, from+120_000), want.Recordings(ctx, site, from, from+120_000))
	if len(wl) == 0 {
		t.Fatalf("%s: no recordings to compare", what)
	}
	for _, ri := range wl {
		for tab := 1; tab <= ri.Tabs+1; tab++ {
			g, gerr := got.RecordingTab(ctx, site, ri.SessionID, tab)
			w, werr := want.RecordingTab(ctx, site, ri.SessionID, tab)
			if string(g) != string(w) || (gerr == nil) != (werr == nil) {
				t.Fatalf("%s: %s tab %d:\n got %q %v\nwant %q %v", what, ri.SessionID, tab, g, gerr, w, werr)
			}
		}
		g, _ := got.Recording(ctx, site, ri.SessionID)
		w, _ := want.Recording(ctx, site, ri.SessionID)
		if string(g) != string(w) || len(w) < 10 {
			t.Fatalf("%s: %s first tab: got %q want %q", what, ri.SessionID, g, w)
		}
	}
}

// awaitUsage polls got's RecordingUsage (answered from ClickHouse's last
// answer, asked in the background) until it is want's.
func awaitUsage(t *testing.T, got *Backend, want store.Store, site, session string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	ws, wd := want.RecordingUsage(site, session)
	if ws == 0 || wd == 0 {
		t.Fatalf("usage of %s: %d, %d: nothing to compare", session, ws, wd)
	}
	answered := func() bool { // ClickHouse's figures are in, not only the local log's
		got.rec.mu.Lock()
		defer got.rec.mu.Unlock()
		u := got.rec.usage[site]
		return u != nil && u.sessions[session] != 0 && u.dayBytes != 0
	}
	for {
		gs, gd := got.RecordingUsage(site, session)
		if gs == ws && gd == wd && answered() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage of %s: got %d, %d want %d, %d", session, gs, gd, ws, wd)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func flush(t *testing.T, b *Backend) {
	t.Helper()
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := b.Flush(fctx); err != nil {
		t.Fatal(err)
	}
}

// TestRecordingsMatchLocal: recordings answered from ClickHouse are the
// local store's, byte for byte (list, every tab, sizes), before and after
// a person's deletion.
func TestRecordingsMatchLocal(t *testing.T) {
	c := chtest.Start(t)
	b := open(t, filepath.Join(t.TempDir(), "r.db"), c, "rec1")
	defer b.Close()
	for round := 0; round < 3; round++ {
		if err := b.AppendSnapshots(ctx, "s", snaps(round, 9)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, b)
	sameRecordings(t, "shipped", b, b.DB, "s")
	awaitUsage(t, b, b.DB, "s", "sess-2")
	if _, err := b.Append(ctx, mkEvents(3, 0, func(int) string { return "d1" })); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	if err := b.DeletePerson(ctx, "s", "d1"); err != nil {
		t.Fatal(err)
	}
	sameRecordings(t, "after deleting d1", b, b.DB, "s")
	for _, ri := range b.Recordings(ctx, "s", math.MinInt64, math.MaxInt64) {
		if ri.DistinctID == "d1" {
			t.Fatalf("deleted person's recording %s still listed", ri.SessionID)
		}
	}
	if n := count(t, b.client(), "SELECT count() FROM recordings WHERE distinct_id = 'd1'"); n != 0 {
		t.Fatalf("%d chunks of the deleted person left in ClickHouse", n)
	}
	inSQL, local := b.Answered()
	if inSQL["recordings"] == 0 || inSQL["recording"] == 0 || local["recordings"] != 0 || local["recording"] != 0 {
		t.Fatalf("answered in SQL %v, locally %v", inSQL, local)
	}
}

// TestRecordingAcrossNodes: a recording made through node A is replayed
// from node B (its own local log, the same cluster), whose log has none.
func TestRecordingAcrossNodes(t *testing.T) {
	c := chtest.Start(t)
	dir := t.TempDir()
	a := open(t, filepath.Join(dir, "a.db"), c, "rec2")
	defer a.Close()
	b := open(t, filepath.Join(dir, "b.db"), c, "rec2")
	defer b.Close()
	if a.rec.node == b.rec.node {
		t.Fatal("two nodes share a node id")
	}
	if err := a.AppendSnapshots(ctx, "s", snaps(0, 6)); err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	if n := len(b.DB.Recordings(ctx, "s", math.MinInt64, math.MaxInt64)); n != 0 {
		t.Fatalf("node B's log has %d recordings", n)
	}
	sameRecordings(t, "node B", b, a.DB, "s")
	awaitUsage(t, b, a.DB, "s", "sess-3")
}

// TestRecordingsOutage: with one shard down, recording capture goes on
// (and survives a restart of the node); once the shard is back, the
// backlog ships and every chunk is in ClickHouse exactly once.
func TestRecordingsOutage(t *testing.T) {
	c := chtest.Start(t)
	path := filepath.Join(t.TempDir(), "o.db")
	b := open(t, path, c, "rec3")
	if err := b.AppendSnapshots(ctx, "s", snaps(0, 4)); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	c.Shards[1].Stop()
	for round := 1; round < 4; round++ {
		if err := b.AppendSnapshots(ctx, "s", snaps(round, 12)); err != nil {
			t.Fatalf("capture failed with a shard down: %v", err)
		}
	}
	// The shipper keeps failing on the stopped shard: the backlog stays.
	deadline := time.Now().Add(10 * time.Second)
	for b.Status("s").LastError == "" {
		if time.Now().After(deadline) {
			t.Fatal("no shipping error with a shard down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.rec.mu.Lock()
	left := b.rec.rows
	b.rec.mu.Unlock()
	if left == 0 {
		t.Fatal("recordings shipped with a shard down")
	}
	// The list still answers (from the local log) while a shard is down.
	sameJSON(t, "during outage", b.Recordings(ctx, "s", math.MinInt64, math.MaxInt64), b.DB.Recordings(ctx, "s", math.MinInt64, math.MaxInt64))
	b.Close()
	b = open(t, path, c, "rec3")
	defer b.Close()
	if err := c.Shards[1].Restart(); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	const want = 3*4 + 3*3*12 // chunks appended (three a session)
	cl := b.client()
	if n := count(t, cl, "SELECT count() FROM recordings FINAL"); n != want {
		t.Fatalf("%d chunks after FINAL, want %d", n, want)
	}
	if n := count(t, cl, "SELECT uniqExact(node, ord) FROM recordings"); n != want {
		t.Fatalf("%d distinct chunks, want %d", n, want)
	}
	for i, s := range c.Shards {
		if n := count(t, &Client{URL: s.URL(), Database: "rec3"}, "SELECT count() FROM recordings_local FINAL"); n == 0 || n == want {
			t.Fatalf("shard %d holds %d chunks: not sharded", i, n)
		}
	}
	sameRecordings(t, "after the outage", b, b.DB, "s")
}
