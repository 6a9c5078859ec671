package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
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

// TestSessionScopeClickHouse: session properties and Plausible's filter
// scope in SQL give the embedded store's answers (which
// TestSessionScopeMatchesReference checks against the reference) on the
// same generated sessions: stats and breakdowns under session-property
// and event-property filters, trends broken down by a session property,
// funnels filtered on one.
func TestSessionScopeClickHouse(t *testing.T) {
	c := chtest.Start(t)
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	db, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{BlockEvents: 256, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b, err := clickhouse.New(db, clickhouse.Options{URLs: []string{c.Shards[0].URL(), c.Shards[1].URL()},
		Database: "scope", Cluster: chtest.ClusterName, Flush: 10 * time.Millisecond, Batch: 5000})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	var evs []*store.Event
	store.GenerateReference(13, start, 8, 160, 5000, func(e *store.Event) {
		if evs = append(evs, e); len(evs) == 53 {
			if _, err := b.Append(ctx, evs); err != nil {
				t.Fatal(err)
			}
			evs = nil
		}
	})
	if _, err := b.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := b.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	filters := []string{"$pathname==/pricing", "$pathname~docs", "event==purchase", "$browser==Chrome",
		"$entry_pathname==/", "$exit_pathname!=/pricing", "$channel_type==Direct", "$channel_type!=Organic Search",
		"$entry_referring_domain~google", "$entry_utm_source!=", "$session_duration!=0", "$session_id!="}
	props := []string{"$pathname", "$browser", "$entry_pathname", "$exit_pathname", "$channel_type", "$entry_referring_domain", "$entry_utm_source", "$session_duration"}
	same := func(what string, got, want any, err1, err2 error) {
		t.Helper()
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v %v", what, err1, err2)
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if string(g) != string(w) {
			t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
		}
	}
	nonEmpty := 0
	for i := 0; i < 40; i++ {
		from := start.Add(time.Duration(i%9) * 24 * time.Hour)
		q := store.Query{Site: "s", From: from, To: from.Add(time.Duration(1+i%5) * 24 * time.Hour)}
		for n := i % 3; n > 0; n-- {
			f, _ := store.ParseFilter(filters[(i*7+n*3)%len(filters)])
			q.Filters = append(q.Filters, f)
		}
		name := fmt.Sprintf("query %d %v", i, q.Filters)
		st, err := b.Stats(ctx, q)
		want, err2 := b.DB.Stats(ctx, q)
		same(name+" stats", st, want, err, err2)
		if st.Sessions > 0 {
			nonEmpty++
		}
		bq := store.BreakdownQuery{Property: props[i%len(props)], Limit: 50}
		if i%2 == 0 {
			bq.Event = "$pageview"
		}
		r1, err := b.Breakdown(ctx, q, bq)
		r2, err2 := b.DB.Breakdown(ctx, q, bq)
		same(name+" breakdown by "+bq.Property, r1, r2, err, err2)
		tq := store.TrendsQuery{Events: []string{"$pageview", "purchase"}, Interval: store.IntervalDay, Math: store.MathUnique, Breakdown: props[(i+3)%len(props)]}
		t1, err := b.Trends(ctx, q, tq)
		t2, err2 := b.DB.Trends(ctx, q, tq)
		same(name+" trends by "+tq.Breakdown, t1, t2, err, err2)
		fq := store.FunnelQuery{Steps: []string{"$pageview", "$pageview|$channel_type!=Direct", "purchase"}, Window: 6 * time.Hour}
		f1, err := b.Funnel(ctx, q, fq)
		f2, err2 := b.DB.Funnel(ctx, q, fq)
		same(name+" funnel", f1, f2, err, err2)
	}
	if nonEmpty < 20 {
		t.Fatalf("only %d queries had sessions", nonEmpty)
	}
	if _, local := b.Answered(); len(local) != 0 {
		t.Fatalf("answered by the local store: %v", local)
	}
}
