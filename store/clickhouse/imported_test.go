package clickhouse

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/importer"
	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

// TestImportedAcrossNodes: Plausible aggregates imported into node A's
// log ship to ClickHouse, and node B (a log of its own on the same
// cluster, without them) answers stats and breakdowns with them exactly as
// A's embedded store does, from ClickHouse (nothing answered locally). A
// second import of the same export doubles nothing; a day imported again
// with other numbers replaces the first import of that day.
func TestImportedAcrossNodes(t *testing.T) {
	c := chtest.Start(t)
	dir := t.TempDir()
	a := open(t, filepath.Join(dir, "a.db"), c, "imp1")
	defer a.Close()
	b := open(t, filepath.Join(dir, "b.db"), c, "imp1")
	defer b.Close()
	const site = "s"
	imp := func() {
		t.Helper()
		res, err := importer.Import(ctx, a.DB, "plausible", []string{filepath.Join("..", "..", "testdata", "import", "plausible.zip")}, importer.Options{Site: site})
		if err != nil || res.Days == 0 {
			t.Fatalf("import: %+v %v", res, err)
		}
	}
	imp()
	// Events on imported days and after: most on paths the import lacks,
	// a few on one it has (so that a short breakdown's events alone would
	// leave it out).
	d0 := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	var evs []*store.Event
	paths := []string{"/", "/pricing", "/blog/", "/blog/hello-world", "/a0", "/a1", "/a2", "/a0", "/a1", "/a2", "/a0", "/a1", "/a2",
		"/x0", "/x1", "/x0", "/x1", "/x0", "/x1", "/x0"}
	for i := 0; i < 600; i++ {
		evs = append(evs, &store.Event{Site: site, UUID: fmt.Sprintf("00000000-0000-7000-8000-%012d", i), Name: "$pageview",
			DistinctID: fmt.Sprint("u", i%9), Time: d0.Add(time.Duration(i) * 222 * time.Second).UnixMilli(),
			Props: store.Props{{Key: "$session_id", Val: store.StringValue(fmt.Sprint("s", i%13))},
				{Key: "$pathname", Val: store.StringValue(paths[i%len(paths)])},
				{Key: "$browser", Val: store.StringValue([]string{"Chrome", "Firefox"}[i%2])}}})
	}
	if _, err := a.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	flush(t, b)

	queries := []store.Query{
		{Site: site, From: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)},
		{Site: site, From: time.Date(2025, 3, 3, 12, 0, 0, 0, time.UTC), To: time.Date(2025, 3, 9, 0, 0, 0, 0, time.UTC)},
		{Site: site, From: time.Date(2025, 3, 5, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 3, 6, 0, 0, 0, 0, time.UTC)},
		{Site: site, From: time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 3, 9, 0, 0, 0, 0, time.UTC), TZ: must(time.LoadLocation("Europe/Berlin"))},
		// Filters: imported aggregates are not added (they hold no events).
		{Site: site, From: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC),
			Filters: []store.Filter{{Prop: "$browser", Op: store.OpEq, Value: "Chrome"}}},
	}
	bqs := []store.BreakdownQuery{{Property: "$pathname", Limit: 2}, {Property: "$pathname", Limit: 4}, {Property: "$pathname", Limit: 6},
		{Property: "$browser", Limit: 10}, {Property: "$pathname", Event: "$pageview", Limit: 5}, {Property: "$pathname", Event: "x", Limit: 5}}
	// Trends add imported pageviews (total) or visitors (unique, dau) to
	// the $pageview series, by day, week or month, not by hour or with a
	// breakdown.
	tqs := []store.TrendsQuery{{Interval: store.IntervalDay, Math: store.MathTotal, Events: []string{"$pageview", "x"}},
		{Interval: store.IntervalWeek, Math: store.MathUnique, Events: []string{"$pageview"}},
		{Interval: store.IntervalMonth, Math: store.MathDAU, Events: []string{"$pageview"}},
		{Interval: store.IntervalHour, Math: store.MathTotal, Events: []string{"$pageview"}},
		{Interval: store.IntervalDay, Math: store.MathTotal, Events: []string{"$pageview"}, Breakdown: "$browser"}}
	same := func(round string, nodes map[string]*Backend) {
		t.Helper()
		for qi, q := range queries {
			want := must(a.DB.Stats(ctx, q))
			if qi == 0 && want.ImportedDays == 0 {
				t.Fatalf("%s: the embedded store adds no imported days", round)
			}
			for name, n := range nodes {
				sameJSON(t, fmt.Sprintf("%s: node %s stats %d", round, name, qi), must(n.Stats(ctx, q)), want)
				for _, bq := range bqs {
					sameJSON(t, fmt.Sprintf("%s: node %s breakdown %d %+v", round, name, qi, bq), must(n.Breakdown(ctx, q, bq)), must(a.DB.Breakdown(ctx, q, bq)))
				}
				for _, tq := range tqs {
					sameJSON(t, fmt.Sprintf("%s: node %s trends %d %+v", round, name, qi, tq), must(n.Trends(ctx, q, tq)), must(a.DB.Trends(ctx, q, tq)))
				}
			}
		}
	}
	same("first import", map[string]*Backend{"A": a, "B": b})
	if len(b.DB.Sites()) != 0 && must(b.DB.Stats(ctx, queries[0])).ImportedDays != 0 {
		t.Fatal("node B's own log holds the imported days")
	}
	imp() // the same export again
	flush(t, a)
	same("second import", map[string]*Backend{"B": b})
	if n := count(t, a.client(), "SELECT count() FROM imported FINAL WHERE kind = 'totals'"); n != 30 {
		t.Fatalf("%d imported days of totals in ClickHouse, want 30", n)
	}
	// A day imported again with other numbers (and fewer pages).
	if err := a.DB.SetImportedDay(site, "2025-03-05", store.ImportedTotals{Visitors: 3, Pageviews: 7, Visits: 4, Bounces: 1, VisitDuration: 90}); err != nil {
		t.Fatal(err)
	}
	if err := a.DB.SetImportedRows(site, "$pathname", "2025-03-05", []store.ImportedRow{{Value: "/only-ours", Visitors: 2, Pageviews: 5}}); err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	same("day replaced", map[string]*Backend{"B": b})
	_, local := b.Answered()
	if local["stats"] != 0 || local["breakdown"] != 0 || local["trends"] != 0 {
		t.Fatalf("answered locally: %v", local)
	}
}
