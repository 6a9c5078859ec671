package clickhouse

import (
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
	"github.com/firstpartyhq/firstparty/store/histfile"
)

// openRec opens a backend over the log at path with Batch batch.
func openRec(t *testing.T, path string, c *chtest.Cluster, db string, batch int) *Backend {
	t.Helper()
	local, err := store.Open(path, store.Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(local, Options{URLs: []string{c.Shards[0].URL(), c.Shards[1].URL()}, Database: db, Cluster: chtest.ClusterName,
		Flush: 20 * time.Millisecond, Batch: batch})
	if err != nil {
		local.Close()
		t.Fatal(err)
	}
	return b
}

// withoutCH runs fn on the log at path opened without ClickHouse.
func withoutCH(t *testing.T, path string, fn func(db *store.DB)) {
	t.Helper()
	db, err := store.Open(path, store.Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	fn(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// oldRecordings fills the log at path without ClickHouse: two rounds of
// 12 sessions moved into a recording file, a third round in the log, and
// person d1 deleted (from the file, rewritten, and from the log).
func oldRecordings(t *testing.T, path string) {
	withoutCH(t, path, func(db *store.DB) {
		for round := 0; round < 2; round++ {
			if err := db.AppendSnapshots(ctx, "s", snaps(round, 12)); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.FlushRecordings(time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := db.AppendSnapshots(ctx, "s", snaps(2, 12)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Append(ctx, mkEvents(3, 0, func(int) string { return "d1" })); err != nil {
			t.Fatal(err)
		}
		if err := db.DeletePerson(ctx, "s", must(db.Person(ctx, "s", "d1")).ID); err != nil {
			t.Fatal(err)
		}
		if n := len(db.Recordings(ctx, "s", math.MinInt64, math.MaxInt64)); n != 8 {
			t.Fatalf("%d recordings stored, want 8", n)
		}
	})
	if n := countFiles(t, path); n == 0 {
		t.Fatal("no recording file: the test must backfill from one")
	}
}

// countFiles counts the recording files of the log at path.
func countFiles(t *testing.T, path string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(store.HistoryDir(path), "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range m {
		if filepath.Ext(f) == histfile.RecExt {
			n++
		}
	}
	return n
}

// localChunks is how many recording chunks the log holds.
func localChunks(t *testing.T, db *store.DB) int {
	t.Helper()
	cs, _, err := db.ShipRecRead(ctx, 0, math.MaxUint64, math.MaxInt, math.MaxInt)
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

// chunksOnce checks that ClickHouse holds every chunk of the log once.
func chunksOnce(t *testing.T, b *Backend) {
	t.Helper()
	want := localChunks(t, b.DB)
	if got := count(t, b.client(), "SELECT count() FROM recordings FINAL WHERE site = 's'"); got != want || want == 0 {
		t.Fatalf("ClickHouse holds %d chunks, the log %d", got, want)
	}
}

// of keeps the snapshots of distinct id did.
func of(did string, in []store.Snapshot) []store.Snapshot {
	var out []store.Snapshot
	for _, s := range in {
		if s.DistinctID == did {
			out = append(out, s)
		}
	}
	return out
}

// TestRecordingsBackfill: recordings stored without ClickHouse (some in a
// recording file, a person deleted there, another deleted on another
// node meanwhile) ship once the backend starts, and another node answers
// every recording question as the local store does, byte for byte; the
// deleted persons' recordings are nowhere. A restart after catching up
// ships nothing again; chunks stored through the outbox are left to it,
// and chunks stored while the block was away ship at the next start.
func TestRecordingsBackfill(t *testing.T) {
	c := chtest.Start(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "old.db")
	oldRecordings(t, path)

	other := openRec(t, filepath.Join(dir, "other.db"), c, "rbf1", 500)
	defer other.Close()
	if _, err := other.Append(ctx, mkEvents(3, 100, func(int) string { return "d2" })); err != nil {
		t.Fatal(err)
	}
	flush(t, other)
	if err := other.DeletePerson(ctx, "s", must(other.Person(ctx, "s", "d2")).ID); err != nil {
		t.Fatal(err)
	}

	a := openRec(t, path, c, "rbf1", 7)
	if len(a.rec.bf) == 0 {
		t.Fatal("nothing to backfill")
	}
	flush(t, a)
	chunksOnce(t, a)
	sameRecordings(t, "backfilled, via another node", other, a.DB, "s")
	list := other.Recordings(ctx, "s", math.MinInt64, math.MaxInt64)
	if len(list) != 4 {
		t.Fatalf("%d recordings listed, want d0's 4: %+v", len(list), list)
	}
	if n := count(t, a.client(), "SELECT count() FROM recordings WHERE distinct_id IN ('d1', 'd2')"); n != 0 {
		t.Fatalf("%d chunks of deleted persons in ClickHouse", n)
	}
	if inSQL, _ := other.Answered(); inSQL["recordings"] == 0 || inSQL["recording"] == 0 {
		t.Fatalf("the other node did not answer from ClickHouse: %v", inSQL)
	}
	// Chunks through the outbox, then a restart: nothing to backfill.
	if err := a.AppendSnapshots(ctx, "s", of("d0", snaps(3, 12))); err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	a.Close()
	a = openRec(t, path, c, "rbf1", 7)
	if len(a.rec.bf) != 0 {
		t.Fatalf("a restart backfills %v again", a.rec.bf)
	}
	flush(t, a)
	chunksOnce(t, a)
	a.Close()

	// Chunks stored while the block was away ship at the next start, and
	// only they.
	before := 0
	withoutCH(t, path, func(db *store.DB) {
		before = localChunks(t, db)
		if err := db.AppendSnapshots(ctx, "s", of("d0", snaps(4, 12))); err != nil {
			t.Fatal(err)
		}
	})
	a = openRec(t, path, c, "rbf1", 7)
	defer a.Close()
	added := localChunks(t, a.DB) - before
	if len(a.rec.bf) != 1 || a.rec.bf[0][1]-a.rec.bf[0][0] != uint64(added) {
		t.Fatalf("to backfill %v, want the %d chunks added without ClickHouse", a.rec.bf, added)
	}
	flush(t, a)
	chunksOnce(t, a)
	sameRecordings(t, "after a time without the block", other, a.DB, "s")
}

// TestRecordingsBackfillResumes: a backfill stopped after a window, whose
// next window shipped without its cursor being written (a kill -9),
// resumes there at the next start: every chunk in ClickHouse once, every
// replay the local store's.
func TestRecordingsBackfillResumes(t *testing.T) {
	c := chtest.Start(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "old.db")
	oldRecordings(t, path)

	a := openRec(t, path, c, "rbf2", 5)
	a.once.Do(func() { close(a.stop) }) // no shipping loop: the windows are shipped here
	<-a.done
	<-a.rec.done
	if err := a.rec.ensureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, a.client(), "SELECT count() FROM recordings"); n != 0 {
		t.Fatalf("%d chunks shipped before the test's windows", n)
	}
	start := append([]recRange(nil), a.rec.bf...)
	a.rec.bfSynced.Store(true)
	if n, err := a.rec.backfillOnce(ctx); err != nil || n != 5 {
		t.Fatalf("first window: %d chunks, %v", n, err)
	}
	mark := must(a.DB.GetMeta(recBackfillKey))
	after1 := append([]recRange(nil), a.rec.bf...)
	if reflect.DeepEqual(after1, start) {
		t.Fatalf("the window did not move the ranges: %v", after1)
	}
	if n, err := a.rec.backfillOnce(ctx); err != nil || n != 5 {
		t.Fatalf("second window: %d chunks, %v", n, err)
	}
	if err := a.DB.PutMeta(recBackfillKey, mark); err != nil { // as if killed before writing it
		t.Fatal(err)
	}
	if n := count(t, a.client(), "SELECT count() FROM recordings"); n != 10 {
		t.Fatalf("%d chunks shipped, want 10", n)
	}
	a.Close()

	a = openRec(t, path, c, "rbf2", 5)
	defer a.Close()
	if !reflect.DeepEqual(a.rec.bf, after1) {
		t.Fatalf("resumes at %v, want %v", a.rec.bf, after1)
	}
	flush(t, a)
	chunksOnce(t, a)
	other := openRec(t, filepath.Join(dir, "other.db"), c, "rbf2", 500)
	defer other.Close()
	sameRecordings(t, "resumed, via another node", other, a.DB, "s")
}

// TestRecordingsBackfillAfterOlderRelease: a log that shipped its
// recordings through a release without the backfill (a node id, no
// "ch:rtop") backfills none of them: they may have shipped under other
// ords. A fresh log backfills all of its chunks.
func TestRecordingsBackfillAfterOlderRelease(t *testing.T) {
	dir := t.TempDir()
	for _, older := range []bool{true, false} {
		path := filepath.Join(dir, fmt.Sprint(older, ".db"))
		withoutCH(t, path, func(db *store.DB) {
			if older {
				if err := db.PutMeta(recNodeKey, "0123456789abcdef"); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.AppendSnapshots(ctx, "s", snaps(0, 4)); err != nil {
				t.Fatal(err)
			}
		})
		b := openAt(t, path, []string{"http://127.0.0.1:1"}, "rbf3", 0)
		got := append([]recRange(nil), b.rec.bf...)
		b.Close()
		want := []recRange{{1, 13, 0}}
		if older {
			want = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("older release %v: to backfill %v, want %v", older, got, want)
		}
	}
}
