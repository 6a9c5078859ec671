package clickhouse

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

// awaitCount polls q on one server until it answers want.
func awaitCount(t *testing.T, cl *Client, q SQL, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows, err := cl.Query(ctx, q)
		if err == nil && len(rows) == 1 && int(asInt(rows[0][0])) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s: %v %v, want %d", q, cl.URL, rows, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplicas: on a cluster of two replicas (ZooKeeper), the backend
// makes its tables Replicated on each server; what ships to replica 1 is
// read from replica 2; with replica 1 stopped, capture and shipping go on
// through replica 2, and replica 1 catches up when it is back.
func TestReplicas(t *testing.T) {
	c := chtest.StartReplicas(t)
	b := open(t, filepath.Join(t.TempDir(), "r.db"), c, "rep")
	defer b.Close()
	did := func(i int) string { return fmt.Sprint("u", i%30) }
	if _, err := b.Append(ctx, mkEvents(400, 0, did)); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendSnapshots(ctx, "s", snaps(0, 5)); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	r1 := &Client{URL: c.Shards[0].URL(), Database: "rep"}
	r2 := &Client{URL: c.Shards[1].URL(), Database: "rep"}
	for _, r := range []*Client{r1, r2} {
		awaitCount(t, r, "SELECT count() FROM system.tables WHERE database = 'rep' AND engine LIKE 'Replicated%' AND name IN ('events_local', 'person_map_local', 'recordings_local')", 3)
		// Every local table is replicated.
		awaitCount(t, r, "SELECT count() FROM system.tables WHERE database = 'rep' AND engine LIKE '%MergeTree' AND engine NOT LIKE 'Replicated%'", 0)
	}
	// Shipped through replica 1 (the first url), read from replica 2's
	// own table.
	awaitCount(t, r2, "SELECT count() FROM events_local FINAL", 400)
	awaitCount(t, r2, "SELECT count() FROM recordings_local FINAL", 15)

	c.Shards[0].Stop()
	for i := 1; i < 4; i++ {
		if _, err := b.Append(ctx, mkEvents(100, 300+i*100, did)); err != nil { // 100 repeats, 300 new
			t.Fatalf("capture with replica 1 down: %v", err)
		}
	}
	if err := b.AppendSnapshots(ctx, "s", snaps(1, 5)); err != nil {
		t.Fatal(err)
	}
	flush(t, b) // through replica 2
	if b.client() != b.servers[1] {
		t.Fatal("queries still go to the stopped replica")
	}
	awaitCount(t, r2, "SELECT count() FROM events_local FINAL", 700)
	awaitCount(t, r2, "SELECT count() FROM recordings_local FINAL", 30)
	q := store.Query{Site: "s", From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)}
	sameJSON(t, "stats with replica 1 down", must(b.Stats(ctx, q)), must(b.DB.Stats(ctx, q)))
	sameRecordings(t, "recordings with replica 1 down", b, b.DB, "s")
	if _, err := b.Append(ctx, mkEvents(3, 5000, func(int) string { return "d1" })); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	if err := b.DeletePerson(ctx, "s", "d1"); err != nil { // the recordings of sessions 1 and 4
		t.Fatalf("deleting a person with replica 1 down: %v", err)
	}
	sameRecordings(t, "recordings after a deletion with replica 1 down", b, b.DB, "s")
	sameJSON(t, "stats after a deletion with replica 1 down", must(b.Stats(ctx, q)), must(b.DB.Stats(ctx, q)))
	if _, local := b.Answered(); len(local) != 0 {
		t.Fatalf("answered locally with replica 1 down: %v", local)
	}

	// A replica killed holds its ZooKeeper session until it expires (2 s
	// here); started before that, it waits ten seconds to retry.
	for _, table := range []string{"events_local", "person_map_local", "recordings_local"} {
		awaitCount(t, r2, Build("SELECT count() FROM system.zookeeper WHERE path = ? AND name = 'is_active'", "/clickhouse/tables/1/rep/"+table+"/replicas/shard0"), 0)
	}
	if err := c.Shards[0].Restart(); err != nil {
		t.Fatal(err)
	}
	awaitCount(t, r1, "SELECT count() FROM events_local FINAL", 700)    // d1's 3 deleted
	awaitCount(t, r1, "SELECT count() FROM recordings_local FINAL", 18) // 30 less d1's 12
	awaitCount(t, r1, "SELECT count() FROM recordings_local WHERE distinct_id = 'd1'", 0)
	// And the backend goes back to the first url once it answers.
	deadline := time.Now().Add(10 * time.Second)
	for b.client() != b.servers[0] {
		if time.Now().After(deadline) {
			t.Fatal("the backend never went back to replica 1")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
