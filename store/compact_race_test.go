package store

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestEventsWhileCompacting: reading events while the compactor merges
// the blocks they sit in never fails. The merge deletes the blocks it
// merged only once the table points at the merged one; deleting them
// first made a reader holding an old reference find its key gone
// ("reading block …: not found", seen under load in TestReloadUnderLoad).
func TestEventsWhileCompacting(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "race.db"), Options{BlockEvents: 64, CompactAfter: 1 << 30, CompactEvery: time.Hour, NoHistory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	base := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC).UnixMilli()
	var stop atomic.Bool
	var reads, failures atomic.Int64
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				p, err := db.Events(ctx, EventQuery{Site: "s", From: base, To: base + msPerDay, Limit: 1000})
				if err != nil {
					failures.Add(1)
					t.Errorf("events while compacting: %v", err)
					return
				}
				_ = p
				reads.Add(1)
			}
		}()
	}
	n := 0
	for round := 0; round < 30; round++ {
		var evs []*Event
		for i := 0; i < 8; i++ { // commit blocks of a few events
			for j := 0; j < 4; j++ {
				evs = append(evs, ev("s", "$pageview", fmt.Sprint("d", n%50), base+int64(n)))
				n++
			}
			mustAppend(t, db, evs...)
			evs = evs[:0]
		}
		if err := db.Compact(); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if reads.Load() == 0 {
		t.Fatal("no read ran beside the compactor")
	}
	p, err := db.Events(ctx, EventQuery{Site: "s", From: base, To: base + msPerDay, Limit: 1000})
	if err != nil || len(p.Results) != n {
		t.Fatalf("after compaction: %d events, %v; want %d", len(p.Results), err, n)
	}
	t.Logf("%d reads beside %d compactions, %d failures", reads.Load(), 30, failures.Load())
}
