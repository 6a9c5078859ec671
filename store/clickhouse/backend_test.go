package clickhouse

import (
	"context"
	"encoding/json"
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

// TestSQLMatchesLocal compares the SQL answers with the local store's on
// data the reference suite does not cover: actions whose steps name an
// event and a URL, `E|filter` series, server pageviews confirmed by the
// snippet (hidden) or not (counted as pageviews), bots, and a person
// deleted after shipping.
func TestSQLMatchesLocal(t *testing.T) {
	c := chtest.Start(t)
	b := open(t, filepath.Join(t.TempDir(), "m.db"), c, "match")
	defer b.Close()
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var evs []*store.Event
	n := 0
	ev := func(name, did string, min int, props ...store.Prop) {
		n++
		evs = append(evs, &store.Event{Site: "s", Name: name, DistinctID: did, Time: t0.Add(time.Duration(min) * time.Minute).UnixMilli(),
			UUID: fmt.Sprintf("00000000-0000-7000-8000-%012d", n), Props: props})
	}
	str := func(k, v string) store.Prop { return store.Prop{Key: k, Val: store.StringValue(v)} }
	for i := 0; i < 60; i++ {
		did := fmt.Sprint("v", i%9)
		sess := str("$session_id", fmt.Sprint("s", i%13))
		page := []string{"/", "/pricing", "/docs/a", "/blog"}[i%4]
		ev("$pageview", did, i*7, sess, str("$pathname", page), str("$current_url", "https://x.test"+page), str("$browser", []string{"Chrome", "Safari"}[i%2]))
		if i%3 == 0 {
			rev := store.Prop{Key: "revenue", Val: store.NumberValue(float64(i) * 1.1)}
			switch i % 4 {
			case 1:
				rev = str("revenue", []string{"abc", "0x1p4", "Infinity", " 7", "12.5"}[i%5])
			case 2:
				rev = str("other", "x") // no revenue
			}
			ev("purchase", did, i*7+3, sess, str("$current_url", "https://x.test/pricing?plan=pro"), rev)
		}
		if i%5 == 0 { // a server pageview, confirmed by the snippet every other time
			ref := fmt.Sprint("ref-", i)
			ev(store.ServerPageview, did, i*7+1, str("$pathname", page), str(store.PageviewRef, ref))
			if i%10 == 0 {
				ev("$pageview", did, i*7+1, sess, str("$pathname", page), str(store.PageviewRef, ref))
			}
		}
		if i%11 == 0 {
			ev("$pageview", "bot", i*7, str("$pathname", "/"), str(store.Datacenter, "true"))
		}
	}
	if _, err := b.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	a := must(b.SaveAction(ctx, "s", store.Action{Name: "pricing or buy", Steps: []store.ActionStep{{Event: "$pageview", URLContains: "pricing"}, {Event: "purchase"}}}))
	action := fmt.Sprint("action:", a.ID)
	check := func(round string) {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := b.Flush(fctx); err != nil {
			t.Fatal(err)
		}
		for _, q := range []store.Query{
			{Site: "s", From: t0, To: t0.Add(24 * time.Hour)},
			{Site: "s", From: t0.Add(time.Hour), To: t0.Add(5 * time.Hour), Filters: []store.Filter{{Prop: "$browser", Op: store.OpEq, Value: "Chrome"}}},
			{Site: "s", From: t0, To: t0.Add(24 * time.Hour), IncludeBots: true},
		} {
			name := fmt.Sprintf("%s %v..%v %v bots %v", round, q.From, q.To, q.Filters, q.IncludeBots)
			sameJSON(t, name+" stats", must(b.Stats(ctx, q)), must(b.DB.Stats(ctx, q)))
			for _, e := range []string{action, "$pageview|$pathname~docs", store.ServerPageview, ""} {
				bq := store.BreakdownQuery{Property: "$pathname", Event: e}
				sameJSON(t, name+" breakdown "+e, must(b.Breakdown(ctx, q, bq)), must(b.DB.Breakdown(ctx, q, bq)))
			}
			tq := store.TrendsQuery{Events: []string{"$pageview", action, "$pageview|$browser==Safari", action}, Interval: store.IntervalHour, Math: store.MathUnique, Breakdown: "$browser"}
			sameJSON(t, name+" trends", must(b.Trends(ctx, q, tq)), must(b.DB.Trends(ctx, q, tq)))
			for _, m := range []string{store.MathSum, store.MathAvg, store.MathMin, store.MathMax} {
				for _, bd := range []string{"", "$browser"} {
					tq := store.TrendsQuery{Events: []string{"purchase", action}, Interval: store.IntervalDay, Math: m, MathProperty: "revenue", Breakdown: bd}
					sameJSON(t, name+" trends "+m+" "+bd, must(b.Trends(ctx, q, tq)), must(b.DB.Trends(ctx, q, tq)))
				}
			}
			fq := store.FunnelQuery{Steps: []string{"$pageview", action, "purchase"}, Window: time.Hour}
			sameJSON(t, name+" funnel", must(b.Funnel(ctx, q, fq)), must(b.DB.Funnel(ctx, q, fq)))
			rq := store.RetentionQuery{StartEvent: action, ReturnEvent: "$pageview", Period: store.PeriodDay, Periods: 3}
			sameJSON(t, name+" retention", must(b.Retention(ctx, q, rq)), must(b.DB.Retention(ctx, q, rq)))
		}
		// The events list, page by page (the cursors differ; the events,
		// their properties and persons must not).
		for _, eq := range []store.EventQuery{
			{Site: "s", From: t0.UnixMilli(), To: t0.Add(24 * time.Hour).UnixMilli(), Limit: 7},
			{Site: "s", From: t0.UnixMilli(), To: t0.Add(24 * time.Hour).UnixMilli(), Event: action, DistinctID: "v4", Limit: 1},
			{Site: "s", From: t0.UnixMilli(), To: t0.Add(3 * time.Hour).UnixMilli(), Filters: []store.Filter{{Prop: "$pathname", Op: store.OpContains, Value: "DOC"}}, Limit: 2},
		} {
			all := func(list func(store.EventQuery) (store.EventPage, error)) (out []any) {
				q := eq
				for {
					p := must(list(q))
					out = append(out, p.Results, p.PersonIDs)
					if p.Next == "" {
						return out
					}
					q.Cursor = p.Next
				}
			}
			got := all(func(q store.EventQuery) (store.EventPage, error) { return b.Events(ctx, q) })
			want := all(func(q store.EventQuery) (store.EventPage, error) { return b.DB.Events(ctx, q) })
			if len(want) < 4 {
				t.Fatalf("%+v: only %d pages", eq, len(want)/2)
			}
			sameJSON(t, fmt.Sprintf("%s events %+v", round, eq), got, want)
		}
	}
	check("before deletion")
	if err := b.DeletePerson(ctx, "s", "v3"); err != nil {
		t.Fatal(err)
	}
	check("after deleting v3")
	inSQL, local := b.Answered()
	if len(local) != 0 || inSQL["trends"] != 6*9 || inSQL["funnel"] != 6 || inSQL["events"] < 10 {
		t.Fatalf("answered in SQL %v, locally %v: every query here must run in SQL", inSQL, local)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// TestCancelKillsQuery: a query whose context ends is killed on the
// server (a closed connection alone does not stop it on 18.16).
func TestCancelKillsQuery(t *testing.T) {
	c := chtest.Start(t)
	cl := &Client{URL: c.URL()}
	running := func() int {
		return count(t, cl, "SELECT count() FROM system.processes WHERE query LIKE '%fp_cancel_marker%' AND query NOT LIKE '%system.processes%'")
	}
	qctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := cl.Query(qctx, "SELECT count() FROM numbers(100000000000) WHERE NOT ignore('fp_cancel_marker')")
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for running() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the query never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled query answered")
	}
	deadline = time.Now().Add(10 * time.Second)
	for running() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the query still runs on the server 10 s after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
