package clickhouse

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

var ctx = context.Background()

// open opens a local log at path and a backend over it shipping to c.
func open(t testing.TB, path string, c *chtest.Cluster, db string) *Backend {
	t.Helper()
	local, err := store.Open(path, store.Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(local, Options{URLs: []string{c.Shards[0].URL(), c.Shards[1].URL()}, Database: db, Cluster: chtest.ClusterName,
		Flush: 20 * time.Millisecond, Batch: 500})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func count(t testing.TB, cl *Client, q SQL) int {
	t.Helper()
	rows, err := cl.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.Trim(string(rows[0][0]), `"`))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mkEvents(n, from int, did func(i int) string) []*store.Event {
	var out []*store.Event
	for i := from; i < from+n; i++ {
		out = append(out, &store.Event{Site: "s", UUID: fmt.Sprintf("00000000-0000-7000-8000-%012d", i), Name: "$pageview",
			DistinctID: did(i), Time: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC).UnixMilli() + int64(i)*1000,
			Props: store.Props{{Key: "$session_id", Val: store.StringValue(fmt.Sprint("s", i%17))}, {Key: "$pathname", Val: store.StringValue(fmt.Sprint("/p", i%5))}}})
	}
	return out
}

// TestShipsEveryEventOnce appends events (some twice), reopens the local
// log before everything shipped, and checks that ClickHouse holds every
// uuid exactly once across both shards, and that the outbox is empty.
func TestShipsEveryEventOnce(t *testing.T) {
	c := chtest.Start(t)
	path := filepath.Join(t.TempDir(), "a.db")
	b := open(t, path, c, "ship1")
	did := func(i int) string { return fmt.Sprint("u", i%40) }
	for i := 0; i < 20; i++ {
		if _, err := b.Append(ctx, mkEvents(50, i*50, did)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Append(ctx, mkEvents(100, 0, did)); err != nil { // repeats
		t.Fatal(err)
	}
	b.Close()
	b = open(t, path, c, "ship1")
	defer b.Close()
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := b.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	cl := b.client()
	if n := count(t, cl, "SELECT count() FROM events FINAL"); n != 1000 {
		t.Fatalf("%d rows after FINAL, want 1000", n)
	}
	if n := count(t, cl, "SELECT uniqExact(uuid) FROM events"); n != 1000 {
		t.Fatalf("%d uuids, want 1000", n)
	}
	for i, s := range c.Shards {
		if n := count(t, &Client{URL: s.URL(), Database: "ship1"}, "SELECT count() FROM events_local FINAL"); n == 0 || n == 1000 {
			t.Fatalf("shard %d holds %d rows: not sharded", i, n)
		}
	}
	if n := count(t, cl, "SELECT uniqExact(distinct_id) FROM person_map"); n != 40 {
		t.Fatalf("%d distinct ids mapped, want 40", n)
	}
	left := 0
	b.DB.ScanMeta(outboxPrefix, func(k, v string) bool { left++; return true })
	if left != 0 || b.Status("s").Backlog != 0 {
		t.Fatalf("outbox keys left %d, backlog %d", left, b.Status("s").Backlog)
	}
}
