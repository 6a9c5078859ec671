package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
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
	// Every query must have run in SQL (cohorts by person properties too).
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
	for _, r := range []string{"stats", "breakdown", "trends", "funnel", "retention", "paths"} {
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

// TestMoreReportsMatchLocalClickHouse: paths, heatmaps, goal stats (with
// revenue), the server report, the live count and cohorts' persons (by
// behaviour and by person properties) answered in SQL give the embedded
// store's answers on the same events: the generated sessions, with server
// pageviews (confirmed or not, 404s, times, some not numbers), feed
// fetches, revenue and person properties ($set, $set_once, $unset) mixed in.
func TestMoreReportsMatchLocalClickHouse(t *testing.T) {
	c := chtest.Start(t)
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	now := start.Add(3*24*time.Hour + 15*time.Hour)
	db, err := store.Open(filepath.Join(t.TempDir(), "m.db"), store.Options{BlockEvents: 256, CompactEvery: time.Hour,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	b, err := clickhouse.New(db, clickhouse.Options{URLs: []string{c.Shards[0].URL(), c.Shards[1].URL()},
		Database: "more", Cluster: chtest.ClusterName, Flush: 10 * time.Millisecond, Batch: 5000})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(5, 6))
	n := 0
	mk := func(name, did string, ts int64, props ...store.Prop) *store.Event {
		n++
		return &store.Event{Site: "s", Name: name, DistinctID: did, Time: ts, Props: props, UUID: fmt.Sprintf("eeeeeeee-0000-7000-9000-%012x", n)}
	}
	str := store.StringValue
	pick := func(xs ...string) string { return xs[rnd.IntN(len(xs))] }
	var evs []*store.Event
	add := func(e ...*store.Event) {
		if evs = append(evs, e...); len(evs) >= 53 {
			if _, err := b.Append(ctx, evs); err != nil {
				t.Fatal(err)
			}
			evs = nil
		}
	}
	store.GenerateReference(17, start, 6, 200, 6000, func(e *store.Event) {
		switch e.Name {
		case "$pageview":
			if rnd.IntN(3) == 0 { // the server saw this page load first
				ref := fmt.Sprint("ref-", n)
				ps := []store.Prop{{Key: "$pathname", Val: str(e.Props.Str("$pathname"))}, {Key: "$pageview_ref", Val: str(ref)},
					{Key: "$status", Val: str(pick("200", "200", "200", "304"))}, {Key: "$server_ms", Val: str(pick("3", "12.5", "40", "250", "7", "abc", ""))}}
				if rnd.IntN(2) == 0 {
					ps = append(ps, store.Prop{Key: "$referrer", Val: str(pick("https://google.com/", "https://news.ycombinator.com/"))})
				}
				add(mk(store.ServerPageview, e.DistinctID, e.Time-50, ps...))
				if rnd.IntN(3) != 0 {
					e.Props = append(e.Props, store.Prop{Key: "$pageview_ref", Val: str(ref)})
				}
			}
			if rnd.IntN(25) == 0 { // a page answered 404 or 410, no snippet
				add(mk(store.ServerPageview, e.DistinctID, e.Time+10, store.Prop{Key: "$pathname", Val: str(pick("/old", "/missing", "/wp-admin"))},
					store.Prop{Key: "$status", Val: str(pick("404", "410"))}, store.Prop{Key: "$referrer", Val: str(pick("", "https://a.example/", "https://b.example/"))}))
			}
		case "purchase":
			switch rnd.IntN(5) {
			case 0:
				e.Props = append(e.Props, store.Prop{Key: "revenue", Val: store.NumberValue(float64(rnd.IntN(10000)) / 100)}, store.Prop{Key: "currency", Val: str(pick("usd", "EUR"))})
			case 1:
				e.Props = append(e.Props, store.Prop{Key: "$revenue", Val: str(pick("19.99", "5", "abc", "1e400"))}, store.Prop{Key: "$currency", Val: str("USD")})
			case 2:
				e.Props = append(e.Props, store.Prop{Key: "revenue", Val: str("x")}, store.Prop{Key: "$revenue", Val: str("7")})
			}
		case "$autocapture":
			if rnd.IntN(20) == 0 {
				e.Props.Set("$click_x", str(pick("1.5", "-0.1", "abc", "0.125")))
			}
		}
		if rnd.IntN(10) == 0 { // person properties
			ps := []store.Prop{}
			switch rnd.IntN(5) {
			case 0:
				ps = append(ps, store.Prop{Key: "$set", Val: store.Value{Kind: store.KindJSON, S: `{"tier":"` + pick("gold", "silver", "Gold plus") + `"}`}})
			case 1:
				ps = append(ps, store.Prop{Key: "$set_once", Val: store.Value{Kind: store.KindJSON, S: `{"tier":"` + pick("gold", "bronze") + `","x":1}`}})
			case 2:
				ps = append(ps, store.Prop{Key: "$unset", Val: store.Value{Kind: store.KindJSON, S: `["tier"]`}})
			case 3:
				ps = append(ps, store.Prop{Key: "$set", Val: store.Value{Kind: store.KindJSON, S: `{"tier":null,"tier":"silver","n":2}`}},
					store.Prop{Key: "$set_once", Val: store.Value{Kind: store.KindJSON, S: `{"tier":"gold"}`}})
			default:
				ps = append(ps, store.Prop{Key: "$set", Val: str(`{"tier":"not json kind"}`)})
			}
			add(mk("$set", e.DistinctID, e.Time+5, ps...))
		}
		add(e)
		if rnd.IntN(60) == 0 { // a feed fetch
			ps := []store.Prop{{Key: "$pathname", Val: str(pick("/feed.xml", "/atom.xml"))}}
			if rnd.IntN(2) == 0 {
				ps = append(ps, store.Prop{Key: store.FeedReader, Val: str(pick("Feedly", "Inoreader"))},
					store.Prop{Key: store.FeedSubscribers, Val: str(pick("12", "40", "+3", "-2", "x", "", "007", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "00000000000000000000042", "1 2"))})
			}
			if rnd.IntN(5) == 0 {
				ps = append(ps, store.Prop{Key: store.Datacenter, Val: str("true")})
			}
			add(mk(store.FeedFetch, fmt.Sprint("reader-", rnd.IntN(20)), e.Time+20, ps...))
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

	var cohorts []int64
	for _, ch := range []store.Cohort{
		{Name: "buyers", Kind: store.CohortBehavioral, Event: "purchase", Days: 2},
		{Name: "docs readers", Kind: store.CohortBehavioral, Event: "$pageview|$pathname~docs", Days: 3},
		{Name: "gold", Kind: store.CohortProperty, Property: "tier", Op: store.OpEq, Value: "gold"},
		{Name: "not silver", Kind: store.CohortProperty, Property: "tier", Op: store.OpNotContains, Value: "ILV"},
		{Name: "tiered", Kind: store.CohortProperty, Property: "tier", Op: store.OpNe, Value: ""},
		{Name: "pro", Kind: store.CohortProperty, Property: "plan", Op: store.OpContains, Value: "pr"},
	} {
		saved, err := b.SaveCohort(ctx, "s", ch)
		if err != nil {
			t.Fatal(err)
		}
		cohorts = append(cohorts, saved.ID)
	}
	action, err := b.SaveAction(ctx, "s", store.Action{Name: "pricing", Steps: []store.ActionStep{{Event: "$pageview", URLContains: "pricing"}, {Event: "purchase"}}})
	if err != nil {
		t.Fatal(err)
	}
	goals := []store.Goal{{ID: 1, Name: "purchase", Event: "purchase"}, {ID: 2, Name: "docs", Path: "/docs*"}, {ID: 3, Name: "blog posts", Path: "/blog/*"},
		{ID: 4, Name: "any page", Path: "*"}, {ID: 5, Name: "pricing", Action: action.ID}, {ID: 6, Name: "middle", Path: "/*o*t*"}, {ID: 7, Name: "exact", Path: "/signup"}}

	same := func(what string, got, want any, err1, err2 error) {
		t.Helper()
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v %v", what, err1, err2)
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if g == nil || w == nil { // a value JSON cannot write (an infinite time)
			g, w = []byte(fmt.Sprintf("%+v", got)), []byte(fmt.Sprintf("%+v", want))
		}
		if string(g) != string(w) {
			k := 0
			for k < len(g) && k < len(w) && g[k] == w[k] {
				k++
			}
			t.Fatalf("%s: differ at byte %d:\n got …%s\nwant …%s", what, k, g[max(0, k-150):min(len(g), k+150)], w[max(0, k-150):min(len(w), k+150)])
		}
	}
	filters := []string{"$pathname==/pricing", "$browser==Chrome", "$entry_pathname==/", "$channel_type!=Direct", "event!=$pageleave",
		"$device_type==Mobile", "$pathname~docs", "$session_id!="}
	pages := []string{"/", "/pricing", "/docs", "/blog", "/signup"}
	viewports := []string{"", "mobile", "desktop", "tablet", "390", "1300"}
	var seen struct{ links, clicks, scroll, viewports, revenue, notFound, slow, feeds, cohortPersons int }
	for i := 0; i < 14; i++ {
		from := start.Add(time.Duration(i%5) * 24 * time.Hour)
		q := store.Query{Site: "s", From: from, To: from.Add(time.Duration(1+i%4) * 24 * time.Hour)}
		if i%3 == 1 {
			q.TZ, _ = time.LoadLocation("America/New_York")
		}
		for k := i % 3; k > 0; k-- {
			f, _ := store.ParseFilter(filters[(i*5+k*3)%len(filters)])
			q.Filters = append(q.Filters, f)
		}
		if i%3 == 2 {
			q.Cohort = cohorts[(i/3)%len(cohorts)]
		}
		if i%5 == 4 {
			q.IncludeBots = true
		}
		name := fmt.Sprintf("query %d %v cohort %d", i, q.Filters, q.Cohort)

		pq := store.PathsQuery{Steps: 2 + i%5}
		if i%2 == 1 {
			pq.Start = pages[i%len(pages)]
		}
		p1, err1 := b.Paths(ctx, q, pq)
		p2, err2 := b.DB.Paths(ctx, q, pq)
		same(fmt.Sprintf("%s paths %+v", name, pq), p1, p2, err1, err2)
		seen.links += len(p1)

		hq := store.HeatmapQuery{URL: pages[i%len(pages)], Viewport: viewports[i%len(viewports)]}
		h1, err1 := b.Heatmap(ctx, q, hq)
		h2, err2 := b.DB.Heatmap(ctx, q, hq)
		same(fmt.Sprintf("%s heatmap %+v", name, hq), h1, h2, err1, err2)
		seen.clicks += len(h1)
		hq.Type = store.HeatmapScroll
		h1, err1 = b.Heatmap(ctx, q, hq)
		h2, err2 = b.DB.Heatmap(ctx, q, hq)
		same(fmt.Sprintf("%s scroll %+v", name, hq), h1, h2, err1, err2)
		seen.scroll += len(h1)
		v1, err1 := b.HeatmapViewports(ctx, q, hq.URL)
		v2, err2 := b.DB.HeatmapViewports(ctx, q, hq.URL)
		same(name+" viewports "+hq.URL, v1, v2, err1, err2)
		seen.viewports += len(v1)

		g1, err1 := b.GoalStats(ctx, q, goals)
		g2, err2 := b.DB.GoalStats(ctx, q, goals)
		same(name+" goals", g1, g2, err1, err2)
		if g1[0].Revenue > 0 {
			seen.revenue++
		}

		s1, err1 := b.Server(ctx, q, 1+i%6)
		s2, err2 := b.DB.Server(ctx, q, 1+i%6)
		same(name+" server", s1, s2, err1, err2)
		seen.notFound += len(s1.NotFound)
		seen.slow += len(s1.Slow)
		seen.feeds += len(s1.Feeds)

		id := cohorts[i%len(cohorts)]
		c1, n1, err1 := b.CohortPersons(ctx, q, id, 1+i*7)
		c2, n2, err2 := b.DB.CohortPersons(ctx, q, id, 1+i*7)
		same(fmt.Sprintf("%s cohort %d persons", name, id), c1, c2, err1, err2)
		same(fmt.Sprintf("%s cohort %d total", name, id), n1, n2, nil, nil)
		seen.cohortPersons += n1
	}
	l1, err1 := b.LiveCount(ctx, "s")
	l2, err2 := b.DB.LiveCount(ctx, "s")
	same("live count", l1, l2, err1, err2)
	t.Logf("live %d, seen %+v", l1, seen)
	if l1 == 0 || seen.links == 0 || seen.clicks == 0 || seen.scroll == 0 || seen.viewports == 0 || seen.revenue == 0 ||
		seen.notFound == 0 || seen.slow == 0 || seen.feeds == 0 || seen.cohortPersons == 0 {
		t.Fatalf("the data should exercise every report: live %d, %+v", l1, seen)
	}
	inSQL, local := b.Answered()
	if len(local) != 0 {
		t.Fatalf("answered by the local store: %v", local)
	}
	for _, r := range []string{"paths", "heatmap", "goals", "server", "live", "cohort"} {
		if inSQL[r] == 0 {
			t.Errorf("%s: never answered in SQL (%v)", r, inSQL)
		}
	}
}

// TestMoreReportsAcrossNodesClickHouse: two nodes, each with its own local
// log, ship to one cluster, the generated events dealt between them a
// batch at a time (so one person's ids and sessions are spread over both);
// each node's paths, heatmaps, goals, server report and cohorts' persons
// are those of one embedded store that got every event.
func TestMoreReportsAcrossNodesClickHouse(t *testing.T) {
	c := chtest.Start(t)
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	open := func(name string) *store.DB {
		db, err := store.Open(filepath.Join(t.TempDir(), name), store.Options{BlockEvents: 256, CompactEvery: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	all := open("all.db")
	defer all.Close()
	var nodes []*clickhouse.Backend
	for _, name := range []string{"a.db", "b.db"} {
		b, err := clickhouse.New(open(name), clickhouse.Options{URLs: []string{c.Shards[0].URL(), c.Shards[1].URL()},
			Database: "nodes", Cluster: chtest.ClusterName, Flush: 10 * time.Millisecond, Batch: 5000})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		nodes = append(nodes, b)
	}
	var evs []*store.Event
	batches := 0
	deal := func() {
		if _, err := all.Append(ctx, evs); err != nil {
			t.Fatal(err)
		}
		// Each node gets its own copies (a store may keep what it is given).
		cp := make([]*store.Event, len(evs))
		for i, e := range evs {
			x := *e
			x.Props = append(store.Props(nil), e.Props...)
			cp[i] = &x
		}
		if _, err := nodes[batches%2].Append(ctx, cp); err != nil {
			t.Fatal(err)
		}
		batches++
		evs = nil
	}
	rnd := rand.New(rand.NewPCG(8, 9))
	store.GenerateReference(23, start, 5, 150, 4000, func(e *store.Event) {
		if e.Name == "$pageview" && rnd.IntN(4) == 0 {
			add := store.ServerPageview
			evs = append(evs, &store.Event{Site: "s", Name: add, DistinctID: e.DistinctID, Time: e.Time - 40,
				UUID: fmt.Sprintf("dddddddd-0000-7000-9000-%012x", len(evs)+batches*1000),
				Props: store.Props{{Key: "$pathname", Val: store.StringValue(e.Props.Str("$pathname"))}, {Key: "$status", Val: store.StringValue([]string{"200", "404"}[rnd.IntN(2)])},
					{Key: "$server_ms", Val: store.StringValue(fmt.Sprint(rnd.IntN(300)))}}})
		}
		if e.Name == "purchase" {
			e.Props = append(e.Props, store.Prop{Key: "revenue", Val: store.NumberValue(float64(rnd.IntN(5000)) / 100)})
		}
		if evs = append(evs, e); len(evs) == 41 {
			deal()
		}
	})
	deal()
	for _, b := range nodes {
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := b.Flush(fctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Definitions are kept per node: each node and the whole store get the
	// same ones.
	var cohorts []int64
	for _, ch := range []store.Cohort{
		{Name: "buyers", Kind: store.CohortBehavioral, Event: "purchase", Days: 3},
		{Name: "pro", Kind: store.CohortProperty, Property: "plan", Op: store.OpEq, Value: "pro"},
	} {
		saved, err := all.SaveCohort(ctx, "s", ch)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range nodes {
			if s2, err := b.SaveCohort(ctx, "s", ch); err != nil || s2.ID != saved.ID {
				t.Fatalf("cohort %+v: %v", s2, err)
			}
		}
		cohorts = append(cohorts, saved.ID)
	}
	goals := []store.Goal{{ID: 1, Name: "purchase", Event: "purchase"}, {ID: 2, Name: "docs", Path: "/docs*"}}
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
	for i := 0; i < 6; i++ {
		b := nodes[i%2]
		from := start.Add(time.Duration(i%4) * 24 * time.Hour)
		q := store.Query{Site: "s", From: from, To: from.Add(time.Duration(1+i%3) * 24 * time.Hour)}
		if i%3 == 2 {
			q.Cohort = cohorts[i%2]
		}
		name := fmt.Sprintf("node %d query %d cohort %d", i%2, i, q.Cohort)
		p1, err1 := b.Paths(ctx, q, store.PathsQuery{Steps: 4})
		p2, err2 := all.Paths(ctx, q, store.PathsQuery{Steps: 4})
		same(name+" paths", p1, p2, err1, err2)
		if len(p1) > 0 {
			nonEmpty++
		}
		h1, err1 := b.Heatmap(ctx, q, store.HeatmapQuery{URL: "/"})
		h2, err2 := all.Heatmap(ctx, q, store.HeatmapQuery{URL: "/"})
		same(name+" heatmap", h1, h2, err1, err2)
		g1, err1 := b.GoalStats(ctx, q, goals)
		g2, err2 := all.GoalStats(ctx, q, goals)
		same(name+" goals", g1, g2, err1, err2)
		s1, err1 := b.Server(ctx, q, 5)
		s2, err2 := all.Server(ctx, q, 5)
		same(name+" server", s1, s2, err1, err2)
		// Persons: when each was created, and their number (a person's id
		// names the id a node saw first, which differs between logs; its
		// details come from the node that knows it).
		c1, n1, err1 := b.CohortPersons(ctx, q, cohorts[i%2], 1000)
		c2, n2, err2 := all.CohortPersons(ctx, q, cohorts[i%2], 1000)
		ids := func(ps []store.Person) []int64 {
			var out []int64
			for _, p := range ps {
				out = append(out, p.CreatedAt)
			}
			return out
		}
		same(name+" cohort persons", ids(c1), ids(c2), err1, err2)
		same(name+" cohort total", n1, n2, nil, nil)
	}
	if nonEmpty < 3 {
		t.Fatalf("only %d queries had paths", nonEmpty)
	}
	for _, b := range nodes {
		if _, local := b.Answered(); len(local) != 0 {
			t.Fatalf("answered by the local store: %v", local)
		}
	}
}

// TestPropertyCohortTooManyClickHouse: a cohort by person properties lists
// its persons in the query, in SQL however many persons shape properties
// (more than 4,000 used to go to the local store), with the local store's
// answers.
func TestPropertyCohortTooManyClickHouse(t *testing.T) {
	c := chtest.Start(t)
	db, err := store.Open(filepath.Join(t.TempDir(), "p.db"), store.Options{BlockEvents: 1024, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b, err := clickhouse.New(db, clickhouse.Options{URLs: []string{c.Shards[0].URL(), c.Shards[1].URL()},
		Database: "many", Cluster: chtest.ClusterName, Flush: 10 * time.Millisecond, Batch: 5000})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	cohort, err := b.SaveCohort(ctx, "s", store.Cohort{Name: "pro", Kind: store.CohortProperty, Property: "plan", Value: "pro"})
	if err != nil {
		t.Fatal(err)
	}
	q := store.Query{Site: "s", From: start, To: start.Add(24 * time.Hour), Cohort: cohort.ID}
	add := func(from, to int) {
		var evs []*store.Event
		for i := from; i < to; i++ {
			plan := []string{"pro", "free"}[i%2]
			evs = append(evs, &store.Event{Site: "s", Name: "$pageview", DistinctID: fmt.Sprint("u", i), Time: start.UnixMilli() + int64(i)*1000,
				UUID: fmt.Sprintf("cccccccc-0000-7000-9000-%012x", i), Props: store.Props{{Key: "$pathname", Val: store.StringValue("/")},
					{Key: "$set", Val: store.Value{Kind: store.KindJSON, S: `{"plan":"` + plan + `"}`}}}})
		}
		if _, err := b.Append(ctx, evs); err != nil {
			t.Fatal(err)
		}
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := b.Flush(fctx); err != nil {
			t.Fatal(err)
		}
	}
	check := func(wantLocal int64) {
		t.Helper()
		st, err := b.Stats(ctx, q)
		want, err2 := b.DB.Stats(ctx, q)
		if err != nil || err2 != nil || st != want {
			t.Fatalf("stats %+v %v, want %+v %v", st, err, want, err2)
		}
		if _, local := b.Answered(); local["stats"] != wantLocal {
			t.Fatalf("stats answered by the local store %d times, want %d", local["stats"], wantLocal)
		}
	}
	add(0, 1000)
	check(0)
	add(1000, 4100)
	check(0)
}
