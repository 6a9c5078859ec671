package clickhouse

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

// The cases that went to the node's local store (which sees only this
// node's events) before they were written in SQL. Each test compares the
// SQL answers with an embedded store fed every event and fails if a query
// was answered locally.

// noLocal fails the test when a node answered anything by its local store.
func noLocal(t *testing.T, nodes ...*Backend) {
	t.Helper()
	for i, n := range nodes {
		inSQL, local := n.Answered()
		if len(local) != 0 {
			t.Fatalf("node %d answered by the local store: %v (in SQL %v)", i, local, inSQL)
		}
	}
}

// TestPropertyCohortManyPersons: a cohort by person properties when
// thousands of persons carry properties (more than 4,000, the count that
// used to send it to the local store), set through the other node than
// the one that saw the person's pageviews, with $set_once, $unset and
// logins that merge an anonymous id's properties into a user's. Every
// report with the cohort, on both nodes, equals the embedded store's.
func TestPropertyCohortManyPersons(t *testing.T) {
	tn := startTwoNodes(t, "pcohort")
	t0 := tn.t0
	const persons = 4700
	snd := &sender{t0: t0}
	ev, str, js := snd.ev, strProp, jsonProp
	for i := 0; i < persons; i++ {
		did := fmt.Sprint("u", i)
		node := i % 2
		at := time.Duration(i) * 11 * time.Second
		sess := str("$session_id", fmt.Sprint("s", i))
		ev(node, "$pageview", did, at, sess, str("$pathname", fmt.Sprint("/p", i%3)))
		// The properties come through the other node.
		plan := []string{"pro", "pro", "pro", "pro", "free", "Pro plan"}[i%6]
		ev(1-node, "$set", did, at+time.Second, js("$set", fmt.Sprintf(`{"plan":%q,"n":%d}`, plan, i)))
		switch {
		case i%7 == 0:
			ev(node, "$set", did, at+2*time.Second, js("$set_once", `{"plan":"gold"}`)) // has one: no change
		case i%11 == 0:
			ev(1-node, "$set", did, at+2*time.Second, js("$unset", `["plan"]`))
		case i%13 == 0: // logs in: the user's own plan wins over the anonymous id's
			user := fmt.Sprint("user", i)
			ev(node, "$identify", user, at+3*time.Second, str("$anon_distinct_id", did), sess, js("$set", `{"plan":"free"}`))
			ev(1-node, "signup", user, at+4*time.Second, sess)
		case i%17 == 0: // a user without a plan logs in: the anonymous id's stays
			user := fmt.Sprint("user", i)
			ev(1-node, "$identify", user, at+3*time.Second, str("$anon_distinct_id", did), sess)
			ev(node, "signup", user, at+4*time.Second, sess)
		}
		if i%3 == 0 {
			ev(1-node, "$pageview", did, at+26*time.Hour, str("$session_id", fmt.Sprint("t", i)), str("$pathname", "/back"))
		}
	}
	tn.feedBatches(t, snd.evs, 1000)
	var ids []int64
	for _, c := range []store.Cohort{
		{Name: "pro", Kind: store.CohortProperty, Property: "plan", Op: store.OpEq, Value: "pro"},
		{Name: "not free", Kind: store.CohortProperty, Property: "plan", Op: store.OpNe, Value: "free"}, // the empty value passes
		{Name: "any pro", Kind: store.CohortProperty, Property: "plan", Op: store.OpContains, Value: "PRO"},
	} {
		ids = append(ids, tn.saveEverywhere(t, func(s store.Store) int64 { return must(s.SaveCohort(ctx, "s", c)).ID }))
	}
	// The case this is about: more ids carry properties than 4,000, and
	// the cohorts list more persons than that.
	cl := tn.nodes[0].client()
	if n := count(t, cl, Build("SELECT uniqExact(distinct_id) FROM events WHERE site = 's' AND ?", personPropEvents)); n <= 4000 {
		t.Fatalf("only %d ids carry person properties", n)
	}
	for i, n := range tn.nodes {
		for k, id := range ids {
			if i == 1 && k != 1 {
				continue // the other node: one cohort is enough
			}
			q := store.Query{Site: "s", From: t0, To: t0.AddDate(0, 0, 4), Cohort: id}
			if k == 1 {
				q.Filters = []store.Filter{{Prop: "$pathname", Op: store.OpNe, Value: "/p1"}}
			}
			name := fmt.Sprintf("node %d cohort %d", i, id)
			st := must(n.Stats(ctx, q))
			if st.Visitors < 2000 {
				t.Fatalf("%s: only %d visitors", name, st.Visitors)
			}
			sameJSON(t, name+" stats", st, must(tn.ref.Stats(ctx, q)))
			bq := store.BreakdownQuery{Property: "$pathname"}
			sameJSON(t, name+" breakdown", must(n.Breakdown(ctx, q, bq)), must(tn.ref.Breakdown(ctx, q, bq)))
			tq := store.TrendsQuery{Events: []string{"$pageview", "signup"}, Interval: store.IntervalDay, Math: store.MathUnique}
			sameJSON(t, name+" trends", must(n.Trends(ctx, q, tq)), must(tn.ref.Trends(ctx, q, tq)))
			fq := store.FunnelQuery{Steps: []string{"$pageview", "signup"}, Window: 24 * time.Hour}
			sameJSON(t, name+" funnel", must(n.Funnel(ctx, q, fq)), must(tn.ref.Funnel(ctx, q, fq)))
			rq := store.RetentionQuery{StartEvent: "$pageview", ReturnEvent: "$pageview", Period: store.PeriodDay, Periods: 3}
			sameJSON(t, name+" retention", must(n.Retention(ctx, q, rq)), must(tn.ref.Retention(ctx, q, rq)))
			// The persons, by when each was created (a person's details come
			// from the node that knows it), and their number.
			ps, total, err := n.CohortPersons(ctx, q, id, 5)
			want, wantTotal, err2 := tn.ref.CohortPersons(ctx, q, id, 5)
			if err != nil || err2 != nil {
				t.Fatal(err, err2)
			}
			created := func(ps []store.Person) (out []int64) {
				for _, p := range ps {
					out = append(out, p.CreatedAt)
				}
				return out
			}
			sameJSON(t, name+" persons", created(ps), created(want))
			if total != wantTotal || total < 2600 && k == 1 {
				t.Fatalf("%s: %d persons, want %d", name, total, wantTotal)
			}
		}
	}
	noLocal(t, tn.nodes[:]...)
}

// TestLongQuery: a query longer than ClickHouse's default max_query_size
// (256 KiB) runs: Client.Query raises the limit for it.
func TestLongQuery(t *testing.T) {
	c := chtest.Start(t)
	v := strings.Repeat("ab", 300<<10)
	got := count(t, &Client{URL: c.URL()}, Build("SELECT length(?)", v))
	if got != len(v) {
		t.Fatalf("length %d, want %d", got, len(v))
	}
}

// feedBatches is tn.feed with larger batches (each node's events in time
// order, the reference fed all of them in time order).
func (tn *twoNodes) feedBatches(t *testing.T, evs []sent, batch int) {
	t.Helper()
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].ev.Time < evs[j].ev.Time })
	for start := 0; start < len(evs); start += batch {
		part := evs[start:min(start+batch, len(evs))]
		var per [2][]*store.Event
		var all []*store.Event
		for _, s := range part {
			per[s.node] = append(per[s.node], clone(s.ev))
			all = append(all, clone(s.ev))
		}
		for i, n := range tn.nodes {
			if len(per[i]) > 0 {
				if _, err := n.Append(ctx, per[i]); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := tn.ref.Append(ctx, all); err != nil {
			t.Fatal(err)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, n := range tn.nodes {
		if err := n.Flush(fctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGoalsManyAndNewlines: more goals than one query counts (250, in
// chunks) and goal paths whose fixed text holds a newline, which `*`
// never matches (a value's newline must be one of the glob's), next to
// globs with many stars and runs of stars: the same answers as the
// embedded store, all in SQL.
func TestGoalsManyAndNewlines(t *testing.T) {
	c := chtest.Start(t)
	b := open(t, t.TempDir()+"/g.db", c, "goals")
	defer b.Close()
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	paths := []string{"/", "/abc", "/aXbYc", "/a\nb\nc", "/a\nbc", "/x\nfoo", "/x\n", "/x\nfoo\nbar", "a\n/y", "\n/y",
		"/docs/q\nz/end", "/docs/q\nz\n/end", "/docs/\n/end", "/n\nl", "/p1", "/p12", "/aXc", "/aab", "/x\nf\n", "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "/é\n\xff/ü", "/\n\n"}
	var evs []*store.Event
	for i := 0; i < 600; i++ {
		props := store.Props{{Key: "$session_id", Val: store.StringValue(fmt.Sprint("s", i%41))}, {Key: "$pathname", Val: store.StringValue(paths[(i*7)%len(paths)])}}
		name := "$pageview"
		if i%9 == 0 {
			name = "purchase"
			props = append(props, store.Prop{Key: "revenue", Val: store.NumberValue(float64(i%13) + 0.25)}, store.Prop{Key: "currency", Val: store.StringValue([]string{"eur", "USD"}[i%2])})
		}
		evs = append(evs, &store.Event{Site: "s", Name: name, DistinctID: fmt.Sprint("v", i%37), Time: t0.Add(time.Duration(i) * time.Minute).UnixMilli(),
			UUID: fmt.Sprintf("00000000-0000-7000-8000-%012d", i), Props: props})
	}
	if _, err := b.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	a := must(b.SaveAction(ctx, "s", store.Action{Name: "buy", Steps: []store.ActionStep{{Event: "purchase"}}}))
	globs := []string{"/x\n*", "*\n/y", "/docs/*\n*/end", "/n\nl", "/a*b*c", "/a**b*c", "*\n*\n*", "/x\n*\n*", "/é\n*/ü", "/\n*\n", "*\n",
		"/" + strings.Repeat("*a", 30) + "*b", "/p1*", "*", "/a*\n*c"}
	var goals []store.Goal
	for i := 0; i < 250; i++ {
		g := store.Goal{ID: int64(i + 1), Name: fmt.Sprint("g", i)}
		switch i % 4 {
		case 0:
			g.Event = []string{"purchase", "$pageview", "nothing"}[i%3]
		case 1:
			g.Action = a.ID
		default:
			g.Path = globs[i%len(globs)]
		}
		goals = append(goals, g)
	}
	for _, q := range []store.Query{
		{Site: "s", From: t0, To: t0.Add(24 * time.Hour)},
		{Site: "s", From: t0.Add(2 * time.Hour), To: t0.Add(6 * time.Hour), Filters: []store.Filter{{Prop: "$session_id", Op: store.OpNe, Value: "s3"}}},
	} {
		got := must(b.GoalStats(ctx, q, goals))
		sameJSON(t, fmt.Sprintf("goals %v..%v", q.From, q.To), got, must(b.DB.GoalStats(ctx, q, goals)))
		// Every glob with a newline, and the last chunk, must have counted something.
		for i, g := range got {
			if g.Visitors == 0 && goals[i].Event != "nothing" && (i >= 200 || strings.Contains(goals[i].Path, "\n") && q.Filters == nil) {
				t.Errorf("goal %d %q reached by nobody", i, goals[i].Path)
			}
		}
	}
	noLocal(t, b)
}

// TestLocalTimeZone: a query in time.Local (tz=Local) runs in SQL under
// the IANA name of the machine's zone, with the embedded store's labels
// and counts: here in the machine's zone, and in a child process whose
// TZ is Pacific/Chatham (+12:45, +13:45 in summer), where day and hour
// boundaries are far from UTC's.
func TestLocalTimeZone(t *testing.T) {
	if os.Getenv("FP_TZ_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLocalTimeZone$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "FP_TZ_CHILD=1", "TZ=Pacific/Chatham")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestLocalTimeZone") || strings.Contains(string(out), "SKIP") {
			t.Fatalf("in Pacific/Chatham: %v\n%s", err, out)
		}
	} else if _, off := time.Now().In(time.Local).Zone(); off < 12*3600 {
		t.Fatalf("the child's local zone is %s (offset %d), want Pacific/Chatham", time.Local, off)
	}
	name := localZoneName()
	if name == "" {
		t.Fatal("no IANA name for the local zone")
	}
	t.Logf("local zone: %s", name)
	c := chtest.Start(t)
	b := open(t, t.TempDir()+"/tz.db", c, "tz")
	defer b.Close()
	t0 := time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC)
	var evs []*store.Event
	for i := 0; i < 400; i++ {
		name := []string{"$pageview", "$pageview", "signup"}[i%3]
		evs = append(evs, &store.Event{Site: "s", Name: name, DistinctID: fmt.Sprint("v", i%23), Time: t0.Add(time.Duration(i*37) * time.Minute).UnixMilli(),
			UUID: fmt.Sprintf("00000000-0000-7000-8000-%012d", i), Props: store.Props{{Key: "$session_id", Val: store.StringValue(fmt.Sprint("s", i/5))}}})
	}
	if _, err := b.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	from := time.Date(2026, 3, 31, 0, 0, 0, 0, time.Local)
	q := store.Query{Site: "s", From: from, To: from.AddDate(0, 0, 8), TZ: time.Local}
	for _, iv := range []string{store.IntervalHour, store.IntervalDay, store.IntervalWeek} {
		tq := store.TrendsQuery{Events: []string{"$pageview", "signup"}, Interval: iv, Math: store.MathUnique}
		got := must(b.Trends(ctx, q, tq))
		sameJSON(t, "trends "+iv, got, must(b.DB.Trends(ctx, q, tq)))
	}
	rq := store.RetentionQuery{StartEvent: "$pageview", ReturnEvent: "signup", Period: store.PeriodDay, Periods: 4}
	sameJSON(t, "retention", must(b.Retention(ctx, q, rq)), must(b.DB.Retention(ctx, q, rq)))
	sameJSON(t, "stats", must(b.Stats(ctx, q)), must(b.DB.Stats(ctx, q)))
	noLocal(t, b)
}

// TestElementActionsAndSessionSeries: actions whose steps test the clicked
// element (selector, text, href) and series filtered on a session
// property, with the clicks shipped by one node and the pageviews that
// fix the sessions' properties by the other: every report that takes an
// event gives, on both nodes, the answers of one store with every event.
func TestElementActionsAndSessionSeries(t *testing.T) {
	tn := startTwoNodes(t, "elements")
	t0 := tn.t0
	const signup = `span.label:nth-child="1"nth-of-type="1"text="Sign up";` +
		`button.btn.btn-primary:attr__class="btn btn-primary"attr__id="signup"nth-child="2"nth-of-type="1"text="Sign up";` +
		`div.hero:nth-child="1"nth-of-type="1";body:nth-child="2"nth-of-type="1"`
	const docs = `a.nav:attr__href="/docs?a=1"href="/docs?a=1"nth-child="1"nth-of-type="1"text="Read \"docs\"";nav:nth-child="1"nth-of-type="1";body:nth-child="2"nth-of-type="1"`
	const buy = `button:nth-child="1"nth-of-type="1"`
	snd := &sender{t0: t0}
	ev, str := snd.ev, strProp
	for i := 0; i < 300; i++ {
		did := fmt.Sprint("v", i%29)
		sess := str("$session_id", fmt.Sprint("s", i))
		at := time.Duration(i) * 17 * time.Minute
		entry := []string{"/", "/pricing", "/docs"}[i%3]
		ev(i%2, "$pageview", did, at, sess, str("$pathname", entry), str("$current_url", "https://x.test"+entry),
			str("$referring_domain", []string{"", "www.google.com", "news.ycombinator.com"}[i%3]))
		chain, text := []string{signup, docs, buy}[i%3], []string{"", "", "Buy"}[i%3]
		props := []store.Prop{sess, str("$event_type", "click"), str("$elements_chain", chain), str("$current_url", "https://x.test/"+fmt.Sprint(i%4))}
		if text != "" {
			props = append(props, str("$el_text", text))
		}
		ev(1-i%2, "$autocapture", did, at+time.Minute, props...) // the click through the other node
		if i%5 == 0 {
			ev(i%2, "purchase", did, at+2*time.Minute, sess)
		}
	}
	tn.feed(t, snd.evs)
	var actions []string
	for _, a := range []store.Action{
		{Name: "signup", Steps: []store.ActionStep{{Event: "$autocapture", Selector: "#signup"}, {Event: "purchase"}}},
		{Name: "nav", Steps: []store.ActionStep{{Selector: "nav > a.nav", URLContains: "/1"}, {Href: "/docs?a=1"}}},
		{Name: "texts", Steps: []store.ActionStep{{Text: "Buy"}, {Text: `Read "docs"`}, {Text: "Sign up", Selector: "body button.btn-primary"}}},
	} {
		actions = append(actions, fmt.Sprint("action:", tn.saveEverywhere(t, func(s store.Store) int64 { return must(s.SaveAction(ctx, "s", a)).ID })))
	}
	series := append(actions, "$pageview|$entry_pathname==/pricing", actions[0]+"|$channel_type==Organic Search", "$autocapture|$entry_referring_domain~ycombinator", actions[2]+"|$session_duration!=0")
	var cohort int64
	for _, s := range []store.Store{tn.nodes[0], tn.nodes[1], tn.ref} {
		cohort = must(s.SaveCohort(ctx, "s", store.Cohort{Name: "docs readers", Kind: store.CohortBehavioral, Event: actions[1] + "|$entry_pathname!=/", Days: 30})).ID
	}
	for i, nd := range tn.nodes {
		for _, q := range []store.Query{
			{Site: "s", From: t0, To: t0.AddDate(0, 0, 4)},
			{Site: "s", From: t0.Add(5 * time.Hour), To: t0.AddDate(0, 0, 2), Cohort: cohort},
		} {
			if i == 1 && q.Cohort != 0 {
				continue // the other node: one query is enough
			}
			name := fmt.Sprintf("node %d cohort %d", i, q.Cohort)
			tq := store.TrendsQuery{Events: series, Interval: store.IntervalDay, Math: store.MathUnique}
			got := must(nd.Trends(ctx, q, tq))
			sameJSON(t, name+" trends", got, must(tn.ref.Trends(ctx, q, tq)))
			for _, s := range got.Series {
				if sum(s.Data) == 0 {
					t.Errorf("%s: series %s counts nobody", name, s.Event)
				}
			}
			for _, e := range series {
				bq := store.BreakdownQuery{Property: "$entry_pathname", Event: e}
				sameJSON(t, name+" breakdown "+e, must(nd.Breakdown(ctx, q, bq)), must(tn.ref.Breakdown(ctx, q, bq)))
			}
			fq := store.FunnelQuery{Steps: []string{series[3], actions[1], series[4], actions[2]}, Window: 24 * time.Hour}
			sameJSON(t, name+" funnel", must(nd.Funnel(ctx, q, fq)), must(tn.ref.Funnel(ctx, q, fq)))
			fq.Window = 3 * 365 * 24 * time.Hour // (beyond a year went to the local store)
			sameJSON(t, name+" funnel over years", must(nd.Funnel(ctx, q, fq)), must(tn.ref.Funnel(ctx, q, fq)))
			rq := store.RetentionQuery{StartEvent: series[5], ReturnEvent: actions[0], Period: store.PeriodDay, Periods: 3}
			sameJSON(t, name+" retention", must(nd.Retention(ctx, q, rq)), must(tn.ref.Retention(ctx, q, rq)))
			goals := []store.Goal{{ID: 1, Name: "a", Event: series[3]}, {ID: 2, Name: "b", Event: series[6]}}
			for k, a := range actions {
				id, _ := strconv.ParseInt(strings.TrimPrefix(a, "action:"), 10, 64)
				goals = append(goals, store.Goal{ID: int64(k + 3), Name: a, Action: id})
			}
			sameJSON(t, name+" goals", must(nd.GoalStats(ctx, q, goals)), must(tn.ref.GoalStats(ctx, q, goals)))
			_, n1, err1 := nd.CohortPersons(ctx, q, cohort, 3)
			_, n2, err2 := tn.ref.CohortPersons(ctx, q, cohort, 3)
			if err1 != nil || err2 != nil || n1 != n2 || n1 == 0 {
				t.Errorf("%s: cohort persons %d %v, want %d %v", name, n1, err1, n2, err2)
			}
		}
		eq := store.EventQuery{Site: "s", From: t0.UnixMilli(), To: t0.AddDate(0, 0, 4).UnixMilli(), Event: series[4], Limit: 1000}
		got, want := must(nd.Events(ctx, eq)), must(tn.ref.Events(ctx, eq))
		sameJSON(t, fmt.Sprintf("node %d events", i), len(got.Results), len(want.Results))
	}
	noLocal(t, tn.nodes[:]...)
}

func sum(xs []float64) (s float64) {
	for _, x := range xs {
		s += x
	}
	return s
}

// TestRetentionManyPeriods: retention over more than 5,000 periods (days
// over 14 years, which went to the local store), in zones whose days are
// not all 24 hours: New York's DST, and Apia, which skipped 30 December
// 2011 (+24 hours at once).
func TestRetentionManyPeriods(t *testing.T) {
	c := chtest.Start(t)
	b := open(t, t.TempDir()+"/r.db", c, "periods")
	defer b.Close()
	t0 := time.Date(2008, 1, 1, 0, 0, 0, 0, time.UTC)
	var evs []*store.Event
	for i := 0; i < 6000; i++ {
		name := []string{"$pageview", "signup", "$pageview"}[i%3]
		// Groups of 8 events hours to days apart, a week and a few
		// minutes between groups, two groups per person, over the years.
		at := t0.Add(time.Duration(i/8)*(time.Duration(7*24)*time.Hour+7*time.Minute) + time.Duration(i%8)*time.Duration(1+i%5)*5*time.Hour)
		evs = append(evs, &store.Event{Site: "s", Name: name, DistinctID: fmt.Sprint("v", (i/16)%40), Time: at.UnixMilli(),
			UUID: fmt.Sprintf("00000000-0000-7000-8000-%012d", i)})
	}
	if _, err := b.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	for _, zone := range []string{"America/New_York", "Pacific/Apia"} {
		tz, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		from := time.Date(2008, 1, 1, 5, 30, 0, 0, tz)
		q := store.Query{Site: "s", From: from, To: from.AddDate(14, 2, 0), TZ: tz}
		for _, rq := range []store.RetentionQuery{
			{StartEvent: "$pageview", ReturnEvent: "signup", Period: store.PeriodDay, Periods: 5},
			{StartEvent: "signup", ReturnEvent: "$pageview", Period: store.PeriodWeek, Periods: 3},
		} {
			got := must(b.Retention(ctx, q, rq))
			if rq.Period == store.PeriodDay && len(got) <= 5000 {
				t.Fatalf("%d periods", len(got))
			}
			returned := 0
			for _, c := range got {
				for _, v := range c.Values[1:] {
					returned += v
				}
			}
			if returned < 50 {
				t.Fatalf("%s %s: only %d returns", zone, rq.Period, returned)
			}
			sameJSON(t, zone+" "+rq.Period, got, must(b.DB.Retention(ctx, q, rq)))
		}
	}
	noLocal(t, b)
}
