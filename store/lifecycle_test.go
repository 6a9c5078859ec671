package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRetentionRemovesEverythingOld: events and recordings older than the
// retention go from memory, from queries and from the file itself, and the
// rest stays, also after a restart.
func TestRetentionRemovesEverythingOld(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "ret.db")
	db, err := Open(path, Options{Now: clock, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	var evs []*Event
	for i := 0; i < 40; i++ {
		at := now.Add(-time.Duration(i) * day)
		marker := fmt.Sprintf("new-marker-%02d", i)
		if i > 30 {
			marker = fmt.Sprintf("old-marker-%02d", i)
		}
		evs = append(evs, ev("s", "$pageview", "p"+fmt.Sprint(i%3), at.UnixMilli(), "$pathname", "/"+marker))
	}
	mustAppend(t, db, evs...)
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	snap := func(session string, at time.Time, marker string) Snapshot {
		return Snapshot{SessionID: session, DistinctID: "p0", Data: []byte(fmt.Sprintf(`[{"type":3,"timestamp":%d,"data":{"text":%q}}]`, at.UnixMilli(), marker))}
	}
	if err := db.AppendSnapshots(ctx, "s", []Snapshot{snap("old-session", now.Add(-35*day), "old-recording-marker"), snap("new-session", now.Add(-time.Hour), "new-recording-marker")}); err != nil {
		t.Fatal(err)
	}
	db.SetRetention("s", 30*day)
	if err := db.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	check := func(db *DB) {
		t.Helper()
		got := listAll(t, db, EventQuery{Site: "s"})
		if len(got) != 31 {
			t.Fatalf("%d events left, want 31", len(got))
		}
		for _, e := range got {
			if e.Time < now.Add(-30*day).UnixMilli() {
				t.Fatalf("old event left: %s", e.AppendJSON(nil, ""))
			}
		}
		if db.Count("s") != 31 {
			t.Fatalf("count %d", db.Count("s"))
		}
		recs := db.Recordings(ctx, "s", 0, 1<<62)
		if len(recs) != 1 || recs[0].SessionID != "new-session" {
			t.Fatalf("recordings %+v", recs)
		}
	}
	check(db)
	db.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Compressed blocks would hide the markers from a byte scan, so decode
	// every stored value and scan that.
	db2, err := Open(path, Options{Now: clock, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	check(db2)
	var all []byte
	for _, b := range db2.table("s").blocks {
		if b.key == "" {
			continue
		}
		d, err := db2.readBlockUncached(b.key)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range d.strs {
			all = append(all, s...)
			all = append(all, '\n')
		}
	}
	if data, err := db2.Recording(ctx, "s", "new-session"); err == nil {
		all = append(all, data...)
	}
	db2.Close()
	all = append(all, dumpStore(t, path)...)
	for _, marker := range []string{"old-marker", "old-recording-marker", "old-session"} {
		if bytes.Contains(all, []byte(marker)) || bytes.Contains(raw, []byte(marker)) {
			t.Fatalf("%q is still stored", marker)
		}
	}
	if !bytes.Contains(all, []byte("new-marker-30")) || !bytes.Contains(all, []byte("new-recording-marker")) {
		t.Fatal("recent data went missing")
	}
}
