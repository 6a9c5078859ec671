package caddymodule

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/firstpartyhq/firstparty/store"
)

// TestOpenStoreLogsDamage: a damaged file opens through the pool, and the
// log names the damaged copy, what was lost and at which offsets.
func TestOpenStoreLogsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	// two whole records, then 40 bytes of garbage, then a third
	rec := func(k, v string) string {
		return "*3\r\n$3\r\nset\r\n$" + strconv.Itoa(len(k)) + "\r\n" + k + "\r\n$" + strconv.Itoa(len(v)) + "\r\n" + v + "\r\n"
	}
	body := rec("x:1", "one") + rec("x:2", "two") + "garbage garbage garbage garbage garbage!" + rec("x:3", "three")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	db, key, err := openStore(path, store.SyncEverySecond, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer storePool.Delete(key)
	if db == nil {
		t.Fatal("no store")
	}
	entries := logs.FilterMessageSnippet("damaged").All()
	if len(entries) != 1 {
		t.Fatalf("want one damage log entry, got %v", logs.All())
	}
	f := entries[0].ContextMap()
	got := fmt.Sprint(f["records_kept"], f["records_lost_at_least"], f["damaged_offsets"], f["damaged_bytes"])
	want := fmt.Sprint(3, 1, []int{2 * len(rec("x:1", "one"))}, 40)
	if entries[0].Level != zapcore.ErrorLevel || got != want {
		t.Fatalf("log entry: %s %v", entries[0].Message, f)
	}
	if _, err := os.Stat(f["damaged_copy"].(string)); err != nil {
		t.Fatalf("damaged copy: %v", err)
	}
}
