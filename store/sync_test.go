package store

import (
	"path/filepath"
	"testing"

	"github.com/tidwall/buntdb"
)

// The sync directive reaches buntdb's fsync policy.
func TestSyncPolicy(t *testing.T) {
	for policy, want := range map[SyncPolicy]buntdb.SyncPolicy{SyncAlways: buntdb.Always, SyncEverySecond: buntdb.EverySecond, "": buntdb.EverySecond} {
		db, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{Sync: policy})
		if err != nil {
			t.Fatal(err)
		}
		var cfg buntdb.Config
		if err := db.db.ReadConfig(&cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.SyncPolicy != want {
			t.Errorf("sync %q: buntdb policy %v, want %v", policy, cfg.SyncPolicy, want)
		}
		db.Close()
	}
	if _, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{Sync: "sometimes"}); err == nil {
		t.Error("unknown sync policy accepted")
	}
}
