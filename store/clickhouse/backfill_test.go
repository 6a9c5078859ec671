package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

// bfOpts opens the local log as a site that moves history early.
var bfOpts = store.Options{CompactEvery: time.Hour, HistoryAfter: -1}

// openBF opens a backend over the log at path; shipped counts what it
// ships.
func openBF(t *testing.T, path string, c *chtest.Cluster, db string, batch int, shipped func(site string, n int)) *Backend {
	t.Helper()
	local, err := store.Open(path, bfOpts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(local, Options{URLs: []string{c.Shards[0].URL(), c.Shards[1].URL()}, Database: db, Cluster: chtest.ClusterName,
		Flush: 20 * time.Millisecond, Batch: batch, OnShipped: shipped})
	if err != nil {
		local.Close()
		t.Fatal(err)
	}
	return b
}

// fillLocal appends evs to a store as the nodes of feed would get them
// (in time order, batches of 37), without ClickHouse.
func fillLocal(t *testing.T, db *store.DB, evs []sent) {
	t.Helper()
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].ev.Time < evs[j].ev.Time })
	for start := 0; start < len(evs); start += 37 {
		part := evs[start:min(start+37, len(evs))]
		var per [2][]*store.Event
		for _, s := range part {
			per[s.node] = append(per[s.node], clone(s.ev))
		}
		for _, p := range per {
			if len(p) > 0 {
				if _, err := db.Append(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// bulk is n pageviews of 40 visitors, in February (before the reports'
// ranges of sameAnswers), uuids from from on.
func bulk(n, from int, prefix string) []*store.Event {
	evs := mkEvents(n, from, func(i int) string { return fmt.Sprint(prefix, i%40) })
	for _, ev := range evs {
		ev.Time -= 30 * 24 * 3600 * 1000
	}
	return evs
}

func flushBF(t *testing.T, b *Backend) {
	t.Helper()
	fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := b.Flush(fctx); err != nil {
		t.Fatal(err)
	}
}

// onceEach checks that ClickHouse holds every event of the local log once:
// as many rows as uuids as stored events (awaiting the mutations that
// remove deleted persons' rows).
func onceEach(t *testing.T, b *Backend, site string) {
	t.Helper()
	cl := b.client()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows := count(t, cl, Build("SELECT count() FROM events WHERE site = ?", site))
		uuids := count(t, cl, Build("SELECT uniqExact(uuid) FROM events WHERE site = ?", site))
		n := b.DB.Count(site)
		if rows == n && uuids == n {
			return
		}
		if rows < n || uuids < n || time.Now().After(deadline) {
			t.Fatalf("ClickHouse holds %d rows of %d uuids, the local log %d events", rows, uuids, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sameBulk compares the reports over the February range, where the bulk
// events are.
func sameBulk(t *testing.T, b *Backend, what string) {
	t.Helper()
	q := store.Query{Site: "s", From: time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	sameJSON(t, what+" stats", must(b.Stats(ctx, q)), must(b.DB.Stats(ctx, q)))
	bq := store.BreakdownQuery{Property: "$pathname"}
	sameJSON(t, what+" breakdown", must(b.Breakdown(ctx, q, bq)), must(b.DB.Breakdown(ctx, q, bq)))
	tq := store.TrendsQuery{Events: []string{"$pageview"}, Interval: store.IntervalDay, Math: store.MathUnique}
	sameJSON(t, what+" trends", must(b.Trends(ctx, q, tq)), must(b.DB.Trends(ctx, q, tq)))
}

// TestBackfillExistingStore: a store that ran without ClickHouse (users
// merged across devices, links the merge rule refuses, a deleted person,
// its first chunk moved to a history file, another person deleted from
// it) is opened with the backend: once flushed, ClickHouse holds every
// stored event once and answers every report as the store does.
func TestBackfillExistingStore(t *testing.T) {
	c := chtest.Start(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "old.db")
	local, err := store.Open(path, bfOpts)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	fillLocal(t, local, crossNodeEvents(t0, 1))
	if _, err := local.Append(ctx, bulk(1<<16, 100000, "bulk")); err != nil {
		t.Fatal(err)
	}
	if err := local.MoveHistory(); err != nil {
		t.Fatal(err)
	}
	if local.ShipMarkAt("s", local.ShipRows("s")).Hist == 0 {
		t.Fatalf("no history file: the test must backfill from history")
	}
	for _, id := range []string{"user4", "bulk7"} { // one in the history file, one in both
		p := must(local.Person(ctx, "s", id))
		if err := local.DeletePerson(ctx, "s", p.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := local.Close(); err != nil {
		t.Fatal(err)
	}

	var shipped atomic.Int64
	b := openBF(t, path, c, "bf1", 10000, func(_ string, n int) { shipped.Add(int64(n)) })
	defer b.Close()
	if n := b.Status("s").Backlog; n < 1<<16 {
		t.Fatalf("backlog %d at start, want the whole log", n)
	}
	flushBF(t, b)
	if st := b.Status("s"); st.Backlog != 0 || st.LastError != "" {
		t.Fatalf("after flush: %+v", st)
	}
	onceEach(t, b, "s")
	if got, want := shipped.Load(), int64(b.DB.Count("s")); got != want {
		t.Fatalf("shipped %d, want %d", got, want)
	}
	if n := count(t, b.client(), "SELECT count() FROM events WHERE distinct_id IN ('user4', 'bulk7')"); n != 0 {
		t.Fatalf("%d events of deleted persons shipped", n)
	}
	tn := &twoNodes{nodes: [2]*Backend{b, nil}, ref: b.DB, t0: t0} // one node: the reference is its own log
	tn.sameAnswers(t, "backfilled")
	sameBulk(t, b, "backfilled bulk")
}

// TestBackfillResumes: the backend stops after a window past the history
// file; a person whose events it shipped is deleted (so the log's rows
// are numbered again at the next start); reopened, it ships the rest:
// nothing missing, nothing twice.
func TestBackfillResumes(t *testing.T) {
	c := chtest.Start(t)
	path := filepath.Join(t.TempDir(), "r.db")
	local, err := store.Open(path, bfOpts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := local.Append(ctx, bulk(1<<16, 0, "a")); err != nil {
		t.Fatal(err)
	}
	gone := mkEvents(50, 200000, func(int) string { return "gone" })
	if _, err := local.Append(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Append(ctx, bulk(6000, 300000, "b")); err != nil {
		t.Fatal(err)
	}
	if err := local.MoveHistory(); err != nil {
		t.Fatal(err)
	}
	if err := local.Close(); err != nil {
		t.Fatal(err)
	}

	var bp atomic.Pointer[Backend]
	var first atomic.Int64
	b := openBF(t, path, c, "bf2", 4000, func(_ string, n int) {
		first.Add(int64(n))
		if b := bp.Load(); b != nil {
			b.mu.Lock()
			past := b.bf.next["s"] > 1<<16+100
			b.mu.Unlock()
			if past { // stop after this window (Stop itself waits for the loop)
				b.once.Do(func() { close(b.stop) })
			}
		}
	})
	bp.Store(b)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-b.done:
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatalf("the backfill did not pass the history file: %+v", b.Status("s"))
			}
			continue
		}
		break
	}
	if left := b.Status("s").Backlog; left == 0 || first.Load() == 0 {
		t.Fatalf("stopped with %d left after %d shipped: want mid-backfill", left, first.Load())
	}
	if err := b.DeletePerson(ctx, "s", "gone"); err != nil {
		t.Fatal(err)
	}
	b.Close()

	var again atomic.Int64
	b = openBF(t, path, c, "bf2", 4000, func(_ string, n int) { again.Add(int64(n)) })
	defer b.Close()
	want := b.DB.Count("s")
	if left := b.Status("s").Backlog; left != want-int(first.Load()-50) {
		t.Fatalf("backlog %d at restart, want the %d events left", left, want-int(first.Load()-50))
	}
	flushBF(t, b)
	onceEach(t, b, "s")
	if got := first.Load() + again.Load(); got != int64(want)+50 { // gone's 50 shipped, then deleted
		t.Fatalf("shipped %d+%d, want %d+50: the restart shipped something again or left something out", first.Load(), again.Load(), want)
	}
	sameBulk(t, b, "resumed")
}

// TestBackfillImportAndRestart: events added straight to the log while no
// backend runs (as `caddy analytics import` does) ship at the next start,
// ordered after the events that came through the outbox before, except
// those of a person another node deleted meanwhile; a restart once caught
// up ships nothing again, also after events came through the outbox; a
// lost cursor ships everything again, and the first copies stay.
func TestBackfillImportAndRestart(t *testing.T) {
	c := chtest.Start(t)
	path := filepath.Join(t.TempDir(), "i.db")
	b := openBF(t, path, c, "bf3", 500, nil)
	did := func(i int) string { return fmt.Sprint("u", i%9) }
	if _, err := b.Append(ctx, mkEvents(100, 0, did)); err != nil {
		t.Fatal(err)
	}
	flushBF(t, b)
	b.Close()

	local, err := store.Open(path, bfOpts) // the import, Caddy stopped
	if err != nil {
		t.Fatal(err)
	}
	imp := mkEvents(300, 1000, did)
	imp = append(imp, &store.Event{Site: "s", UUID: "00000000-0000-7000-8000-000000009999", Name: "$identify", DistinctID: "member",
		Time: imp[0].Time, Props: store.Props{{Key: "$anon_distinct_id", Val: store.StringValue("u3")}}})
	victim := mkEvents(5, 2000, func(int) string { return "victim" })
	if _, err := local.Append(ctx, append(imp, victim...)); err != nil {
		t.Fatal(err)
	}
	if err := local.Close(); err != nil {
		t.Fatal(err)
	}
	// Meanwhile another node deletes the victim (tombstones in ClickHouse).
	other, err := store.Open(filepath.Join(filepath.Dir(path), "other.db"), bfOpts)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := New(other, Options{URLs: []string{c.Shards[0].URL(), c.Shards[1].URL()}, Database: "bf3", Cluster: chtest.ClusterName, Flush: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Append(ctx, mkEvents(1, 3000, func(int) string { return "victim" })); err != nil {
		t.Fatal(err)
	}
	flushBF(t, b2)
	if err := b2.DeletePerson(ctx, "s", "victim"); err != nil {
		t.Fatal(err)
	}
	b2.Close()

	var shipped atomic.Int64
	b = openBF(t, path, c, "bf3", 500, func(_ string, n int) { shipped.Add(int64(n)) })
	if n := b.Status("s").Backlog; n != 306 {
		t.Fatalf("backlog %d at start, want the 306 imported events", n)
	}
	flushBF(t, b)
	onceEach(t, b, "s") // the victim's row shipped by the other node is purged
	if n := shipped.Load(); n != 301 {
		t.Fatalf("shipped %d, want the 301 imported events (not the victim's)", n)
	}
	if _, err := b.DB.Person(ctx, "s", "victim"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the victim deleted elsewhere is still in the log: %v", err)
	}
	if n := count(t, b.client(), "SELECT count() FROM events WHERE distinct_id = 'victim'"); n != 0 {
		t.Fatalf("%d events of the victim in ClickHouse", n)
	}
	cl := b.client()
	if live, imported := count(t, cl, "SELECT max(seq) FROM events WHERE toUInt64(substring(uuid, 25)) < 1000"),
		count(t, cl, "SELECT min(seq) FROM events WHERE toUInt64(substring(uuid, 25)) >= 1000"); imported <= live {
		t.Fatalf("imported events arrive at %d, before the live ones (%d)", imported, live)
	}
	p := must(b.Person(ctx, "s", "u3"))
	want := must(b.DB.Person(ctx, "s", "u3"))
	sameJSON(t, "merged person", p, want)
	if _, err := b.Append(ctx, mkEvents(50, 5000, did)); err != nil {
		t.Fatal(err)
	}
	flushBF(t, b)
	b.Close()

	shipped.Store(0)
	b = openBF(t, path, c, "bf3", 500, func(_ string, n int) { shipped.Add(int64(n)) })
	if n := b.Status("s").Backlog; n != 0 {
		t.Fatalf("backlog %d after a restart once caught up, want 0", n)
	}
	flushBF(t, b)
	if n := shipped.Load(); n != 0 {
		t.Fatalf("the restart shipped %d events again", n)
	}
	onceEach(t, b, "s")
	seqOf := func() int {
		return count(t, b.client(), "SELECT seq FROM events FINAL WHERE uuid = '00000000-0000-7000-8000-000000009999'")
	}
	seq := seqOf()
	b.Close()

	// A crash that lost the cursor: everything ships again (at least
	// once), and the first copies stay, with their arrival order.
	local, err = store.Open(path, bfOpts)
	if err != nil {
		t.Fatal(err)
	}
	if err := local.DeleteMeta(backfillPrefix + "s"); err != nil {
		t.Fatal(err)
	}
	if err := local.Close(); err != nil {
		t.Fatal(err)
	}
	b = openBF(t, path, c, "bf3", 500, func(_ string, n int) { shipped.Add(int64(n)) })
	defer b.Close()
	flushBF(t, b)
	if n, want := shipped.Load(), int64(b.DB.Count("s")); n != want {
		t.Fatalf("shipped %d again, want all %d", n, want)
	}
	if rows, uuids := count(t, b.client(), "SELECT count() FROM events FINAL"), count(t, b.client(), "SELECT uniqExact(uuid) FROM events"); rows != b.DB.Count("s") || uuids != rows {
		t.Fatalf("after shipping again: %d rows (FINAL) of %d uuids, want %d", rows, uuids, b.DB.Count("s"))
	}
	if got := seqOf(); got != seq {
		t.Fatalf("the copy shipped again won: seq %d, was %d", got, seq)
	}
	sameJSON(t, "merged person after shipping again", must(b.Person(ctx, "s", "u3")), must(b.DB.Person(ctx, "s", "u3")))
	shipped.Store(0)
	q := store.Query{Site: "s", From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)}
	sameJSON(t, "stats", must(b.Stats(ctx, q)), must(b.DB.Stats(ctx, q)))
}
