package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestRetentionAppliesWhenSet: a retention set (or shortened) while the
// database is open, as a `caddy reload` does, is applied at once by the
// background worker — not at the next hourly run.
func TestRetentionAppliesWhenSet(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	db, err := Open(filepath.Join(t.TempDir(), "r.db"), Options{Now: func() time.Time { return now }, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	day := 24 * time.Hour
	var evs []*Event
	for i := 0; i < 40; i++ {
		evs = append(evs, ev("s", "$pageview", fmt.Sprint("p", i), now.Add(-time.Duration(i)*day-time.Hour).UnixMilli()))
	}
	mustAppend(t, db, evs...)
	waitCount := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for db.Count("s") != want {
			if time.Now().After(deadline) {
				t.Fatalf("count %d, want %d: retention not applied", db.Count("s"), want)
			}
			time.Sleep(5 * time.Millisecond) // polling the worker's result
		}
	}
	db.SetRetention("s", 30*day)
	waitCount(30)
	// A shorter retention from a second reload applies at once too.
	db.SetRetention("s", 10*day)
	waitCount(10)
	// Taking retention out stops deleting.
	db.SetRetention("s", 0)
	mustAppend(t, db, ev("s", "$pageview", "old", now.Add(-100*day).UnixMilli()))
	if err := db.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	if db.Count("s") != 11 {
		t.Fatalf("count %d after retention was removed, want 11", db.Count("s"))
	}
}
