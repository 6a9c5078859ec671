package clickhouse

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

// TestOldSchema: a database an older release made (events ordered by
// (site, uuid), no hot columns, rows in it and a row of the old format
// in the outbox) keeps working. The hot columns are added on every
// shard, old parts answer them from the arrays, the old order is
// reported in the shipping status, and the reports count old and new
// rows alike (bots left out by the hot column).
func TestOldSchema(t *testing.T) {
	c := chtest.Start(t)
	for _, s := range c.Shards {
		cl := &Client{URL: s.URL()}
		for _, q := range []SQL{
			"CREATE DATABASE old1",
			`CREATE TABLE old1.events_local (site String, uuid String, name String, distinct_id String,
	ts Int64, t DateTime('UTC'), session String, seq UInt64,
	prop_keys Array(String), prop_vals Array(String), prop_kinds Array(UInt8), raw String, ver UInt64
) ENGINE = ReplacingMergeTree(ver) PARTITION BY toYYYYMM(t) ORDER BY (site, uuid)`,
			"CREATE TABLE old1.`events` AS old1.events_local ENGINE = Distributed(" + SQL(chtest.ClusterName) + ", old1, events_local, sipHash64(distinct_id))",
		} {
			if err := cl.ExecNoDB(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	// Rows the old release shipped: one a bot's.
	old := `{"site":"s","uuid":"00000000-0000-7000-8000-900000000001","name":"$pageview","distinct_id":"o1","ts":1772409600000,"t":"2026-03-02 00:00:00","session":"os1","seq":1,"prop_keys":["$session_id","$pathname"],"prop_vals":["os1","/old"],"prop_kinds":[1,1],"raw":"{}","ver":5}
{"site":"s","uuid":"00000000-0000-7000-8000-900000000002","name":"$pageview","distinct_id":"o2","ts":1772409601000,"t":"2026-03-02 00:00:01","session":"os2","seq":2,"prop_keys":["$session_id","$pathname","$datacenter"],"prop_vals":["os2","/old","true"],"prop_kinds":[1,1,1],"raw":"{}","ver":5}
`
	first := &Client{URL: c.Shards[0].URL(), Database: "old1"}
	if err := first.InsertJSON(ctx, "events", []byte(old)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "o.db")
	local, err := store.Open(path, store.Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// An outbox row of the old format (no hot columns), left by the old
	// release: a bot on /legacy.
	legacy := `{"site":"s","uuid":"00000000-0000-7000-8000-900000000003","name":"$pageview","distinct_id":"o3","ts":1772409602000,"t":"2026-03-02 00:00:02","session":"os3","seq":3,"prop_keys":["$session_id","$pathname","$datacenter"],"prop_vals":["os3","/legacy","true"],"prop_kinds":[1,1,1],"raw":"{}","ver":5}` + "\n"
	if err := local.PutMeta(outboxPrefix+pad20(0), legacy); err != nil {
		t.Fatal(err)
	}
	local.Close()
	b := open(t, path, c, "old1")
	defer b.Close()
	if _, err := b.Append(ctx, mkEvents(10, 0, func(i int) string { return "n1" })); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := b.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if st := b.Status("s"); !strings.Contains(st.LastError, "older release") || !strings.Contains(st.LastError, "site, uuid") {
		t.Errorf("status does not tell of the old order: %+v", st)
	}
	for _, s := range c.Shards {
		cl := &Client{URL: s.URL(), Database: "old1"}
		for _, table := range []string{"events_local", "events"} {
			if n := count(t, cl, Build("SELECT count() FROM system.columns WHERE database = 'old1' AND table = ? AND name IN ('p_pathname', 'p_datacenter')", table)); n != 2 {
				t.Errorf("%s on %s has %d hot columns, want 2", table, s.URL(), n)
			}
		}
	}
	if n := count(t, first, "SELECT count() FROM events WHERE p_pathname = '/legacy' AND p_datacenter = 'true'"); n != 1 {
		t.Errorf("the outbox row of the old format shipped %d times with its hot columns, want 1", n)
	}
	q := store.Query{Site: "s", From: day, To: day.Add(24 * time.Hour)}
	rows, err := b.Breakdown(ctx, q, store.BreakdownQuery{Property: "$pathname"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range rows {
		got[r.Value] = r.Count
	}
	// mkEvents: 10 events on /p0../p4, two each; /old once (the other
	// is a bot's); /legacy is a bot's.
	want := map[string]int{"/p0": 2, "/p1": 2, "/p2": 2, "/p3": 2, "/p4": 2, "/old": 1}
	if len(got) != len(want) {
		t.Errorf("breakdown %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("breakdown %v, want %v", got, want)
			break
		}
	}
	q.IncludeBots = true
	st, err := b.Stats(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pageviews != 13 {
		t.Errorf("with bots, %d pageviews, want 13", st.Pageviews)
	}
}
