package store

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/buntdb"

	"github.com/firstpartyhq/firstparty/store/histfile"
)

// heapInUse is the live heap after a full collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestRecordingFiles: a 10-minute recording leaves the log for a file once
// its session is idle, costs no memory from then on, replays the same
// before and after and after a reopen, and a person's deletion removes it
// from the file (no file on disk names the session any more) while another
// recording of the same file stays.
func TestRecordingFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rec.db")
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	db, err := Open(path, Options{Now: clock, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	start := now.Add(-2 * time.Hour)
	add := func(session, did string, seed uint64) {
		for _, b := range rrwebStream(rand.New(rand.NewPCG(seed, 10)), start, 10*time.Minute) {
			data, _ := json.Marshal(b)
			if err := db.AppendSnapshots(ctx, "example.com", []Snapshot{{SessionID: session, WindowID: "w", DistinctID: did, Data: data}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("s-gone", "leaver@example.com", 6)
	add("s-kept", "stayer@example.com", 7)
	mustAppend(t, db, &Event{Site: "example.com", Name: "$pageview", DistinctID: "leaver@example.com", Time: start.UnixMilli()},
		&Event{Site: "example.com", Name: "$pageview", DistinctID: "stayer@example.com", Time: start.UnixMilli()})
	gone := must(db.Recording(ctx, "example.com", "s-gone"))
	kept := must(db.Recording(ctx, "example.com", "s-kept"))
	stored := 0
	for _, r := range db.Recordings(ctx, "example.com", 0, 1<<62) {
		stored += r.Bytes
	}

	// A recording still being made stays in the log.
	if err := db.FlushRecordings(3 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, path, histfile.RecExt); n != 0 {
		t.Fatalf("%d recording files for recordings not idle long enough", n)
	}
	heap := heapInUse()
	if err := db.FlushRecordings(30 * time.Minute); err != nil {
		t.Fatal(err)
	}
	freed := heap - heapInUse()
	t.Logf("two 10-minute recordings, %d B stored: flushing freed %d B of heap", stored, freed)
	if freed < int64(stored)*8/10 {
		t.Errorf("flushing %d B of recordings freed only %d B of heap", stored, freed)
	}
	if n := countFiles(t, path, histfile.RecExt); n != 1 {
		t.Fatalf("%d recording files, want 1", n)
	}
	logChunks := 0
	db.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys("r:*", func(k, v string) bool { logChunks++; return true })
	})
	if logChunks != 0 {
		t.Fatalf("%d chunks left in the log", logChunks)
	}
	if !bytes.Equal(must(db.Recording(ctx, "example.com", "s-gone")), gone) {
		t.Fatal("the recording changed when it moved to a file")
	}
	db.Close()

	db, err = Open(path, Options{Now: clock, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(must(db.Recording(ctx, "example.com", "s-gone")), gone) {
		t.Fatal("the recording changed after a reopen")
	}
	if err := db.DeletePerson(ctx, "example.com", "leaver@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Recording(ctx, "example.com", "s-gone"); err != ErrNotFound {
		t.Fatalf("deleted person's recording: %v", err)
	}
	if !bytes.Equal(must(db.Recording(ctx, "example.com", "s-kept")), kept) {
		t.Fatal("the other recording changed when the file was written again")
	}
	db.Close()
	for _, f := range listDir(t, HistoryDir(path)) {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("s-gone")) || bytes.Contains(b, []byte("leaver@")) {
			t.Fatalf("%s still names the deleted recording", f)
		}
	}
	db, err = Open(path, Options{Now: clock, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Recording(context.Background(), "example.com", "s-gone"); err != ErrNotFound {
		t.Fatalf("deleted recording after reopen: %v", err)
	}
	if !bytes.Equal(must(db.Recording(ctx, "example.com", "s-kept")), kept) {
		t.Fatal("the kept recording changed after reopen")
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out
}

func countFiles(t *testing.T, dbPath, ext string) int {
	n := 0
	for _, f := range listDir(t, HistoryDir(dbPath)) {
		if strings.HasSuffix(f, ext) {
			n++
		}
	}
	return n
}

// TestRecordingAcrossRewrittenFile: a session flushed into one file, then
// resumed and flushed into a second; the first file is written again (a
// deletion of another person in it), so it now has the higher id. The
// session replays in its chunks' order, before and after a reopen.
func TestRecordingAcrossRewrittenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rec.db")
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	db, err := Open(path, Options{Now: clock, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	add := func(session, did string, seed uint64, start time.Time) {
		for _, b := range rrwebStream(rand.New(rand.NewPCG(seed, 10)), start, 5*time.Minute) {
			data, _ := json.Marshal(b)
			if err := db.AppendSnapshots(ctx, "example.com", []Snapshot{{SessionID: session, WindowID: "w", DistinctID: did, Data: data}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("s-long", "stayer@example.com", 1, now.Add(-2*time.Hour))
	add("s-gone", "leaver@example.com", 2, now.Add(-2*time.Hour))
	mustAppend(t, db, &Event{Site: "example.com", Name: "$pageview", DistinctID: "leaver@example.com", Time: now.Add(-2 * time.Hour).UnixMilli()})
	if err := db.FlushRecordings(30 * time.Minute); err != nil {
		t.Fatal(err)
	}
	now = now.Add(3 * time.Hour) // the session resumes, then goes idle again
	add("s-long", "stayer@example.com", 3, now.Add(-time.Hour))
	if err := db.FlushRecordings(30 * time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, path, histfile.RecExt); n != 2 {
		t.Fatalf("%d recording files, want 2", n)
	}
	want := must(db.Recording(ctx, "example.com", "s-long"))
	if err := db.DeletePerson(ctx, "example.com", "leaver@example.com"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(must(db.Recording(ctx, "example.com", "s-long")), want) {
		t.Fatal("the recording changed when its first file was written again")
	}
	db.Close()
	db, err = Open(path, Options{Now: clock, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if !bytes.Equal(must(db.Recording(ctx, "example.com", "s-long")), want) {
		t.Fatal("the recording replays in another order after a reopen")
	}
}

// TestRecordingNumbersNotReused: after the newest chunks are deleted (their
// person's deletion) and the log reopened, a new chunk gets a number above
// every number given before, not one of the deleted ones.
func TestRecordingNumbersNotReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seq.db")
	db := openTest(t, path)
	snap := func(session, did string) {
		data, _ := json.Marshal([]map[string]any{{"type": 3, "timestamp": 1764000000000, "data": map[string]any{"source": 1}}})
		if err := db.AppendSnapshots(ctx, "example.com", []Snapshot{{SessionID: session, WindowID: "w", DistinctID: did, Data: data}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		snap("s-a", "a")
	}
	for i := 0; i < 3; i++ {
		snap("s-b", "b")
	}
	top := db.recs.seq.Load()
	mustAppend(t, db, &Event{Site: "example.com", Name: "$pageview", DistinctID: "b", Time: 1764000000000})
	if err := db.DeletePerson(ctx, "example.com", "b"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openTest(t, path)
	defer db.Close()
	snap("s-a", "a")
	var seqs []uint64
	db.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys("r:*", func(k, v string) bool {
			if _, _, seq, ok := parseRecKey(k); ok {
				seqs = append(seqs, seq)
			}
			return true
		})
	})
	if len(seqs) != 4 || seqs[3] <= top {
		t.Fatalf("chunk numbers %v after deleting up to %d", seqs, top)
	}
}
