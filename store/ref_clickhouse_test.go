package store_test

import (
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

// TestReportsMatchReferenceClickHouse runs the reference suite of SPEC §4
// against the ClickHouse backend on a real two-shard cluster: the same
// random data and queries, the answers compared with the same reference.
func TestReportsMatchReferenceClickHouse(t *testing.T) {
	c := chtest.Start(t)
	var backends []*clickhouse.Backend
	store.RunReferenceSuite(t, 3, func(t *testing.T, path string, o store.Options) store.RefStore {
		db, err := store.Open(path, o)
		if err != nil {
			t.Fatal(err)
		}
		b, err := clickhouse.New(db, clickhouse.Options{URLs: []string{c.Shards[0].URL(), c.Shards[1].URL()},
			Database: "ref", Cluster: chtest.ClusterName, Flush: 10 * time.Millisecond, Batch: 5000,
			OnError: func(err error) { t.Log("shipping:", err) }})
		if err != nil {
			t.Fatal(err)
		}
		backends = append(backends, b)
		return b
	})
	// Nearly every query must have run in SQL: only those with a cohort by
	// person properties go to the local store here.
	sql, local := map[string]int64{}, map[string]int64{}
	for _, b := range backends {
		s, l := b.Answered()
		for k, v := range s {
			sql[k] += v
		}
		for k, v := range l {
			local[k] += v
		}
	}
	t.Logf("answered in SQL %v, by the local store %v", sql, local)
	for _, r := range []string{"stats", "breakdown", "trends", "funnel", "retention"} {
		if sql[r] < 50 || sql[r] < 5*local[r] {
			t.Errorf("%s: %d in SQL, %d local", r, sql[r], local[r])
		}
	}
}
