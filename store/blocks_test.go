package store

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestForEachStoredInOrder reads a table of many blocks with blocks decoded
// ahead on several workers and on one, and compares the rows and events
// seen; a missing block ends the walk with an error, and no worker is
// left behind.
func TestForEachStoredInOrder(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "each.db"), Options{BlockEvents: 64, CompactAfter: 1 << 30, CompactEvery: time.Hour, NoHistory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < 60; i++ {
		var batch []*Event
		for j := 0; j < 1+i%13; j++ {
			batch = append(batch, ev("s", fmt.Sprint("e", j), fmt.Sprint("p", i), int64(1000+i*100+j)))
		}
		mustAppend(t, db, batch...)
	}
	tb := db.table("s")
	tb.mu.RLock()
	refs := append([]blockRef(nil), tb.blocks...)
	tb.mu.RUnlock()
	if len(refs) < 10 {
		t.Fatalf("only %d blocks", len(refs))
	}
	walk := func(refs []blockRef) ([]string, error) {
		var seen []string
		err := db.forEachStored(refs, func(row int, d *decodedBlock, i int) {
			seen = append(seen, fmt.Sprintf("%d:%s", row, d.strs[d.events[i].name]))
		})
		return seen, err
	}
	prev := runtime.GOMAXPROCS(1)
	one, err := walk(refs)
	runtime.GOMAXPROCS(max(prev, 4))
	if err != nil {
		t.Fatal(err)
	}
	many, err := walk(refs)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GOMAXPROCS(prev)
	if fmt.Sprint(one) != fmt.Sprint(many) || len(one) != db.Count("s") {
		t.Fatalf("%d events on one worker, %d on several, %d stored; differ: %v", len(one), len(many), db.Count("s"), fmt.Sprint(one) != fmt.Sprint(many))
	}
	before := runtime.NumGoroutine()
	bad := append([]blockRef(nil), refs...)
	bad[len(bad)/2].key = "e:missing"
	if _, err := walk(bad); err == nil {
		t.Fatal("a missing block gave no error")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines left after the walk, %d before", n, before)
	}
}
