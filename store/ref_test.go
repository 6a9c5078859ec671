package store

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// ref is the slow, obviously correct implementation of SPEC §4's
// definitions over a plain list of events, for checking the engine.
type ref struct {
	events []*Event // stored: the first copy of each uuid, in append order
	parent map[string]string
	// ids are all distinct ids, as senders or named by a link; identified
	// those that were the distinct_id of an $identify or $create_alias.
	ids, identified map[string]bool
	// refused are the link events the merge rule refused, with the id
	// each named.
	refused []refRefusal
	// actions by label, as step predicates.
	actions map[string]func(*Event) bool
	cohorts map[int64]Cohort
	tz      *time.Location
}

type refRefusal struct {
	e     *Event
	other string
}

func newRef() *ref {
	return &ref{parent: map[string]string{}, ids: map[string]bool{}, identified: map[string]bool{},
		actions: map[string]func(*Event) bool{}, cohorts: map[int64]Cohort{}}
}

// personIdentified applies SPEC §4's definition literally: a person is
// identified once one of its ids was the distinct_id of an $identify or a
// $create_alias.
func (r *ref) personIdentified(root string) bool {
	for id := range r.ids {
		if r.identified[id] && r.find(id) == root {
			return true
		}
	}
	return false
}

// link applies SPEC §4's rule to a link event: it identifies its sender,
// then joins the two sides unless both are identified persons.
func (r *ref) link(e *Event, other string) {
	r.identified[e.DistinctID] = true
	if other == "" {
		return
	}
	r.ids[other] = true
	a, b := r.find(e.DistinctID), r.find(other)
	if a == b {
		return
	}
	if r.personIdentified(a) && r.personIdentified(b) {
		r.refused = append(r.refused, refRefusal{e, other})
		return
	}
	r.union(a, b)
}

// personIDs returns the sorted ids of the person of d.
func (r *ref) personIDs(d string) []string {
	root := r.find(d)
	var out []string
	for id := range r.ids {
		if r.find(id) == root {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func (r *ref) find(d string) string {
	for {
		p, ok := r.parent[d]
		if !ok || p == d {
			return d
		}
		d = p
	}
}

func (r *ref) union(a, b string) {
	ra, rb := r.find(a), r.find(b)
	if ra != rb {
		r.parent[ra] = rb
	}
}

// add appends events as the store would store them.
func (r *ref) add(seen map[string]bool, evs ...*Event) {
	for _, e := range evs {
		if seen[e.UUID] {
			continue
		}
		seen[e.UUID] = true
		r.events = append(r.events, e)
		r.ids[e.DistinctID] = true
		switch e.Name {
		case "$identify":
			r.link(e, e.Props.Str("$anon_distinct_id"))
		case "$create_alias":
			r.link(e, e.Props.Str("alias"))
		}
	}
}

func (r *ref) person(e *Event) string { return r.find(e.DistinctID) }

func refProp(e *Event, key string) string {
	if key == "event" {
		return e.Name
	}
	return e.Props.Str(key)
}

// prop is refProp with session properties (SPEC §4) computed from the
// whole session.
func (r *ref) prop(e *Event, key string) string {
	if IsSessionProp(key) {
		return r.sessionValue(e, key)
	}
	return refProp(e, key)
}

func refPass(f Filter, v string) bool {
	has := v != "" && strings.Contains(strings.ToLower(v), strings.ToLower(f.Value)) // contains ignores case
	switch f.Op {
	case OpEq:
		return v == f.Value
	case OpNe:
		return v != f.Value
	case OpContains:
		return has
	case OpNotContains:
		return !has
	}
	panic(f.Op)
}

// is reports whether e is the event name or action.
func (r *ref) is(e *Event, name string) bool {
	if m, ok := r.actions[name]; ok {
		return m(e)
	}
	return e.Name == name
}

// members returns the persons of a cohort as of q.To.
func (r *ref) members(c Cohort, q Query) map[string]bool {
	out := map[string]bool{}
	switch c.Kind {
	case CohortBehavioral:
		from := q.To.In(q.tz()).AddDate(0, 0, -c.Days).UnixMilli()
		for _, e := range r.events {
			if e.Time >= from && e.Time < q.To.UnixMilli() && r.is(e, c.Event) {
				out[r.person(e)] = true
			}
		}
	case CohortProperty:
		// The generator sets plan only with $set on identified ids: the
		// last one set wins.
		val := map[string]string{}
		for _, e := range r.events {
			if set := e.Props.Str("$set"); strings.Contains(set, `"plan":"`) {
				v := set[strings.Index(set, `"plan":"`)+8:]
				val[r.person(e)] = v[:strings.IndexByte(v, '"')]
			}
		}
		for _, e := range r.events {
			p := r.person(e)
			out[p] = refPass(Filter{Prop: c.Property, Op: c.Op, Value: c.Value}, val[p])
		}
	}
	return out
}

// selected returns the events of q in append order.
func (r *ref) selected(q Query) []*Event {
	var members map[string]bool
	if q.Cohort != 0 {
		members = r.members(r.cohorts[q.Cohort], q)
	}
	var out []*Event
next:
	for _, e := range r.events {
		if e.Time < q.From.UnixMilli() || e.Time >= q.To.UnixMilli() {
			continue
		}
		for _, f := range q.Filters {
			if !refPass(f, r.prop(e, f.Prop)) {
				continue next
			}
		}
		if members != nil && !members[r.person(e)] {
			continue
		}
		out = append(out, e)
	}
	return out
}

func (r *ref) stats(q Query) Stats {
	var st Stats
	persons := map[string]bool{}
	type sess struct {
		first, last  int64
		views, other int
	}
	sessions := map[string]*sess{}
	counted := r.selected(q)
	if r.scoped(q) {
		// Filter scope: pageviews are the passing ones; the rest is over
		// the whole sessions with a passing event, and the persons of
		// passing events without a session.
		for _, e := range counted {
			if e.Name == "$pageview" {
				st.Pageviews++
			}
			if e.Props.Str("$session_id") == "" {
				persons[r.person(e)] = true
			}
		}
		counted = r.wholeSessions(q, counted)
	}
	for _, e := range counted {
		persons[r.person(e)] = true
		if e.Name == "$pageview" && !r.scoped(q) {
			st.Pageviews++
		}
		id := e.Props.Str("$session_id")
		if id == "" {
			continue
		}
		s := sessions[id]
		if s == nil {
			s = &sess{first: e.Time, last: e.Time}
			sessions[id] = s
		}
		s.first, s.last = min(s.first, e.Time), max(s.last, e.Time)
		switch e.Name {
		case "$pageview":
			s.views++
		case "$pageleave":
		default:
			s.other++
		}
	}
	st.Visitors, st.Sessions = len(persons), len(sessions)
	if st.Sessions == 0 {
		return st
	}
	bounces, total := 0, 0.0
	for _, s := range sessions {
		if s.views == 1 && s.other == 0 {
			bounces++
		}
		total += float64(s.last-s.first) / 1000
	}
	n := float64(st.Sessions)
	st.BounceRate, st.AvgSessionSeconds, st.ViewsPerSession = float64(bounces)/n, total/n, float64(st.Pageviews)/n
	return st
}

func (r *ref) breakdown(q Query, bq BreakdownQuery) []BreakdownRow {
	count := map[string]int{}
	visitors := map[string]map[string]bool{}
	rows := r.selected(q)
	if r.scoped(q) && IsSessionProp(bq.Property) {
		rows = r.wholeSessions(q, rows)
	}
	for _, e := range rows {
		v := r.prop(e, bq.Property)
		if v == "" || bq.Event != "" && !r.is(e, bq.Event) {
			continue
		}
		count[v]++
		if visitors[v] == nil {
			visitors[v] = map[string]bool{}
		}
		visitors[v][r.person(e)] = true
	}
	var out []BreakdownRow
	for v, n := range count {
		out = append(out, BreakdownRow{v, n, len(visitors[v])})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Value < out[j].Value
	})
	if bq.Limit == 0 {
		bq.Limit = 100
	}
	if len(out) > bq.Limit {
		out = out[:bq.Limit]
	}
	return out
}

// label names the interval holding t (in its location).
func refLabel(t time.Time, interval string) string {
	switch interval {
	case IntervalHour:
		return t.Format("2006-01-02T15:00")
	case IntervalWeek:
		return t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7)).Format("2006-01-02")
	case IntervalMonth:
		return t.Format("2006-01")
	}
	return t.Format("2006-01-02")
}

func (r *ref) trends(q Query, tq TrendsQuery) Trends {
	out := Trends{Labels: []string{}}
	// Every quarter hour of the range names its interval (the data avoid
	// the hour DST repeats).
	index := map[string]int{}
	sample := func(t time.Time) {
		if l := refLabel(t.In(q.tz()), tq.Interval); len(out.Labels) == 0 || out.Labels[len(out.Labels)-1] != l {
			index[l] = len(out.Labels)
			out.Labels = append(out.Labels, l)
		}
	}
	for t := q.From; t.Before(q.To); t = t.Add(15 * time.Minute) {
		sample(t)
	}
	if q.From.Before(q.To) {
		sample(q.To.Add(-time.Millisecond)) // an interval starting in the last quarter hour
	}
	sel := r.selected(q)
	for _, name := range tq.Events {
		type key struct {
			value string
			label int
		}
		count := map[key]int{}
		uniq := map[key]map[string]bool{}
		totals := map[string]int{}
		for _, e := range sel {
			if !r.is(e, name) {
				continue
			}
			v := ""
			if tq.Breakdown != "" {
				if v = r.prop(e, tq.Breakdown); v == "" {
					continue
				}
			}
			k := key{v, index[refLabel(time.UnixMilli(e.Time).In(q.tz()), tq.Interval)]}
			count[k]++
			totals[v]++
			if uniq[k] == nil {
				uniq[k] = map[string]bool{}
			}
			uniq[k][r.person(e)] = true
		}
		values := []string{""}
		if tq.Breakdown != "" {
			values = values[:0]
			for v := range totals {
				values = append(values, v)
			}
			sort.Slice(values, func(i, j int) bool {
				if totals[values[i]] != totals[values[j]] {
					return totals[values[i]] > totals[values[j]]
				}
				return values[i] < values[j]
			})
			if len(values) > 25 {
				values = values[:25]
			}
		}
		for _, v := range values {
			s := TrendSeries{Event: name, Data: make([]float64, len(out.Labels))}
			if tq.Breakdown != "" {
				v := v
				s.BreakdownValue = &v
			}
			for i := range s.Data {
				if tq.Math == MathTotal {
					s.Data[i] = float64(count[key{v, i}])
				} else {
					s.Data[i] = float64(len(uniq[key{v, i}]))
				}
			}
			out.Series = append(out.Series, s)
		}
	}
	return out
}

func (r *ref) funnel(q Query, fq FunnelQuery) []FunnelStep {
	byPerson := map[string][]*Event{}
	for _, e := range r.selected(q) {
		byPerson[r.person(e)] = append(byPerson[r.person(e)], e)
	}
	out := make([]FunnelStep, len(fq.Steps))
	for k, s := range fq.Steps {
		out[k].Event = s
	}
	w := fq.Window.Milliseconds()
	for _, evs := range byPerson {
		best := 0
		// Every chain from every step-1 event, exhaustively (memoised by
		// step and event for one start).
		for _, e0 := range evs {
			if !r.is(e0, fq.Steps[0]) {
				continue
			}
			memo := map[[2]int]int{}
			var depth func(k int, prev int64) int
			depth = func(k int, prev int64) int {
				if k == len(fq.Steps) {
					return 0
				}
				d := 0
				for i, e := range evs {
					if e.Time > prev && e.Time <= e0.Time+w && r.is(e, fq.Steps[k]) {
						mk := [2]int{k, i}
						got, ok := memo[mk]
						if !ok {
							got = 1 + depth(k+1, e.Time)
							memo[mk] = got
						}
						d = max(d, got)
					}
				}
				return d
			}
			best = max(best, 1+depth(1, e0.Time))
		}
		for k := 0; k < best; k++ {
			out[k].Count++
		}
	}
	return out
}

func (r *ref) retention(q Query, rq RetentionQuery) []RetentionCohort {
	step := 1
	if rq.Period == PeriodWeek {
		step = 7
	}
	from := q.From.In(q.tz())
	period := func(ts int64) int {
		c := 0
		for from.AddDate(0, 0, (c+1)*step).UnixMilli() <= ts {
			c++
		}
		return c
	}
	out := []RetentionCohort{}
	for c := 0; from.AddDate(0, 0, c*step).Before(q.To); c++ {
		out = append(out, RetentionCohort{Date: from.AddDate(0, 0, c*step).Format("2006-01-02"), Values: make([]int, rq.Periods)})
	}
	first := map[string]int64{}
	sel := r.selected(q)
	for _, e := range sel {
		if r.is(e, rq.StartEvent) {
			if f, ok := first[r.person(e)]; !ok || e.Time < f {
				first[r.person(e)] = e.Time
			}
		}
	}
	back := map[string]map[int]bool{}
	for _, e := range sel {
		if r.is(e, rq.ReturnEvent) {
			if back[r.person(e)] == nil {
				back[r.person(e)] = map[int]bool{}
			}
			back[r.person(e)][period(e.Time)] = true
		}
	}
	for p, f := range first {
		c := period(f)
		out[c].Size++
		out[c].Values[0]++
		for k := 1; k < rq.Periods; k++ {
			if back[p][c+k] {
				out[c].Values[k]++
			}
		}
	}
	return out
}

func (r *ref) paths(q Query, pq PathsQuery) []PathLink {
	groups := map[string][]*Event{}
	var order []string
	for _, e := range r.selected(q) {
		if e.Name != "$pageview" || e.Props.Str("$pathname") == "" {
			continue
		}
		g := "s:" + e.Props.Str("$session_id")
		if e.Props.Str("$session_id") == "" {
			g = "p:" + r.person(e)
		}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], e)
	}
	links := map[[2]string]int{}
	for _, g := range order {
		evs := groups[g]
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time < evs[j].Time })
		var seq []string
		for _, e := range evs {
			p := e.Props.Str("$pathname")
			if len(seq) == 0 && pq.Start != "" && p != pq.Start {
				continue
			}
			if len(seq) > 0 && seq[len(seq)-1] == p || len(seq) == pq.Steps {
				continue
			}
			seq = append(seq, p)
		}
		for k := 1; k < len(seq); k++ {
			links[[2]string{fmt.Sprint(k, "_", seq[k-1]), fmt.Sprint(k+1, "_", seq[k])}]++
		}
	}
	out := []PathLink{}
	for l, v := range links {
		out = append(out, PathLink{l[0], l[1], v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Value != out[j].Value {
			return out[i].Value > out[j].Value
		}
		if out[i].Source != out[j].Source {
			return out[i].Source < out[j].Source
		}
		return out[i].Target < out[j].Target
	})
	return out
}

// TestReportsMatchReference runs random queries over a generated site with
// merges, retries, equal timestamps and server events, and compares every
// report with the reference, before and after reopening the database.
func TestReportsMatchReference(t *testing.T) {
	RunReferenceSuite(t, 1, func(t *testing.T, path string, o Options) RefStore {
		db, err := Open(path, o)
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}

// RefStore is what the reference suite needs of a store: the embedded one,
// or another backend over it (store/clickhouse runs the same suite).
type RefStore interface {
	Store
	Compact() error
}

// RunReferenceSuite is the body of TestReportsMatchReference over the
// stores open makes (open is called again to reopen path), with the
// rounds of random queries divided by divide (a slower backend runs
// fewer). A store that answers from elsewhere than its log may have a
// Flush(ctx) error method: it is called before each round of queries.
func RunReferenceSuite(t *testing.T, divide int, open func(t *testing.T, path string, o Options) RefStore) {
	ny, _ := time.LoadLocation("America/New_York")
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // US DST starts on the 8th
	path := filepath.Join(t.TempDir(), "ref.db")
	db := open(t, path, Options{BlockEvents: 256, CompactAfter: 1000, CompactEvery: time.Hour, OnError: func(err error) { t.Error(err) }})
	rf := newRef()
	seen := map[string]bool{}
	var batch []*Event
	flush := func() {
		if _, err := db.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
		rf.add(seen, batch...)
		batch = nil
	}
	// Hijack attempts are mixed in: attackers who browse a little, then
	// alias or identify ids seen before (users' and anonymous ones, and
	// other attackers'), so that persons take shape under the merge rule.
	hijack := rand.New(rand.NewPCG(3, 4))
	var seenIDs []string
	attacks := 0
	attack := func(ts int64) []*Event {
		attacks++
		me := fmt.Sprint("attacker-", hijack.IntN(12))
		victim := seenIDs[hijack.IntN(len(seenIDs))]
		mk := func(name, did string, props ...Prop) *Event {
			return &Event{Site: "s", Name: name, DistinctID: did, Time: ts, Props: props,
				UUID: fmt.Sprintf("ffffffff-0000-7000-9000-%012x", attacks*4+len(props))}
		}
		view := mk("$pageview", me, Prop{"$session_id", StringValue("sess-" + me)}, Prop{"$pathname", StringValue("/login")},
			Prop{"$browser", StringValue("Chrome")}, Prop{"$host", StringValue("example.com")})
		switch hijack.IntN(3) {
		case 0:
			return []*Event{view, mk("$create_alias", me, Prop{"alias", StringValue(victim)})}
		case 1:
			return []*Event{view, mk("$identify", me, Prop{"$anon_distinct_id", StringValue(victim)})}
		}
		// From the victim's side: the victim's id names the attacker.
		return []*Event{mk("$create_alias", victim, Prop{"alias", StringValue(me)})}
	}
	generate(genConfig{Seed: 7, Start: start, Days: 12, Persons: 250, Events: 6000, Tick: time.Minute}, func(e *Event) {
		if !seen[e.UUID] {
			seenIDs = append(seenIDs, e.DistinctID)
		}
		batch = append(batch, e)
		if hijack.IntN(40) == 0 {
			batch = append(batch, attack(e.Time)...)
		}
		if len(batch) >= 37 {
			flush()
		}
	})
	flush()
	if len(rf.events) < 4000 {
		t.Fatalf("only %d events generated", len(rf.events))
	}
	if len(rf.refused) < 20 || attacks-len(rf.refused) < 20 {
		t.Fatalf("%d of %d hijack attempts refused: the data should have both kinds", len(rf.refused), attacks)
	}
	t.Logf("%d events, %d hijack attempts, %d refused", len(rf.events), attacks, len(rf.refused))
	checkPersons := func(db RefStore) {
		t.Helper()
		live := map[string]bool{}
		for _, e := range rf.events {
			live[rf.find(e.DistinctID)] = true
		}
		ids := slices.Sorted(maps.Keys(rf.ids))
		for i, id := range ids {
			if i%divide != 0 {
				continue // a slower backend checks every divide-th id
			}
			if !live[rf.find(id)] {
				if _, err := db.Person(ctx, "s", id); err != ErrNotFound {
					t.Fatalf("person of %s: %v, want none", id, err)
				}
				continue
			}
			p := must(db.Person(ctx, "s", id))
			got := slices.Clone(p.DistinctIDs)
			sort.Strings(got)
			same(t, "person of "+id, got, rf.personIDs(id))
		}
	}
	checkPersons(db)

	// Actions and cohorts, mirrored in the reference.
	tpl := func(sel string) func(*Event) bool {
		return func(e *Event) bool {
			i := e.Props.Str("tpl")
			return i != "" && genChains[int(mustAtoi(i))].matches[sel]
		}
	}
	for _, a := range []struct {
		a Action
		m func(*Event) bool
	}{
		{Action{Name: "signup click", Steps: []ActionStep{{Event: "$autocapture", Selector: "#signup"}, {Event: "$autocapture", Selector: "nav a", URLContains: "/docs"}}},
			func(e *Event) bool {
				return tpl("#signup")(e) || tpl("nav a")(e) && strings.Contains(e.Props.Str("$current_url"), "/docs")
			}},
		{Action{Name: "pricing", Steps: []ActionStep{{Event: "$pageview", URLContains: "pricing"}, {Text: "Pricing"}, {Event: "purchase"}}},
			func(e *Event) bool {
				return e.Name == "$pageview" && strings.Contains(e.Props.Str("$current_url"), "pricing") ||
					e.Props.Str("$el_text") == "Pricing" || e.Name == "purchase"
			}},
		{Action{Name: "buttons", Steps: []ActionStep{{Selector: "body button"}}}, tpl("body button")},
	} {
		saved := must(db.SaveAction(ctx, "s", a.a))
		rf.actions[fmt.Sprint("action:", saved.ID)] = a.m
	}
	var cohortIDs []int64
	for _, c := range []Cohort{
		{Name: "buyers", Kind: CohortBehavioral, Event: "purchase", Days: 4},
		{Name: "signup clickers", Kind: CohortBehavioral, Event: "action:1", Days: 20},
		{Name: "pro", Kind: CohortProperty, Property: "plan", Op: OpEq, Value: "pro"},
		{Name: "not free", Kind: CohortProperty, Property: "plan", Op: OpNotContains, Value: "fr"},
	} {
		saved := must(db.SaveCohort(ctx, "s", c))
		rf.cohorts[saved.ID] = saved
		cohortIDs = append(cohortIDs, saved.ID)
	}

	rnd := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[rnd.IntN(len(xs))] }
	events := []string{"$pageview", "$autocapture", "$pageleave", "purchase", "$identify", "action:1", "action:2", "action:3", "never"}
	filters := []string{"$pathname==/", "$pathname!=/pricing", "$pathname~docs", "$pathname!~blog", "$browser==Chrome",
		"$geoip_country_code==", "$geoip_country_code!=", "utm_source~goo", "event!=$pageleave", "plan==pro", "$device_type==Mobile"}
	randomQuery := func() Query {
		tz := []*time.Location{time.UTC, ny, kolkata}[rnd.IntN(3)]
		from := start.Add(time.Duration(rnd.IntN(14*24*60)-24*60) * time.Minute)
		if rnd.IntN(3) == 0 { // a date in tz, as the API gives
			y, m, d := from.In(tz).Date()
			from = time.Date(y, m, d, 0, 0, 0, 0, tz)
		}
		to := from.Add(time.Duration(rnd.IntN(10*24*60)) * time.Minute)
		if rnd.IntN(3) == 0 {
			y, m, d := to.In(tz).Date()
			to = time.Date(y, m, d+1, 0, 0, 0, 0, tz)
		}
		q := Query{Site: "s", From: from, To: to, TZ: tz}
		for n := rnd.IntN(3); n > 0; n-- {
			f, _ := ParseFilter(filters[rnd.IntN(len(filters))])
			q.Filters = append(q.Filters, f)
		}
		if rnd.IntN(5) == 0 {
			q.Cohort = cohortIDs[rnd.IntN(len(cohortIDs))]
		}
		return q
	}
	check := func(db RefStore, rounds int) {
		t.Helper()
		if f, ok := db.(interface{ Flush(context.Context) error }); ok {
			fctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := f.Flush(fctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < rounds && !t.Failed(); i++ {
			q := randomQuery()
			name := fmt.Sprintf("query %d %s..%s %s %v cohort %d", i, q.From.Format(time.RFC3339), q.To.Format(time.RFC3339), q.TZ, q.Filters, q.Cohort)
			got, want := must(db.Stats(ctx, q)), rf.stats(q)
			// Float sums in a different order may differ in the last bit.
			if d := got.AvgSessionSeconds - want.AvgSessionSeconds; d > 1e-9 || d < -1e-9 {
				t.Errorf("%s: avg session %v, want %v", name, got.AvgSessionSeconds, want.AvgSessionSeconds)
			}
			got.AvgSessionSeconds = want.AvgSessionSeconds
			same(t, name+" stats", got, want)

			bq := BreakdownQuery{Property: pick("$pathname", "$browser", "event", "$geoip_country_code", "utm_source", "plan", "$el_text"), Limit: 1 + rnd.IntN(30)}
			if rnd.IntN(2) == 0 {
				bq.Event = pick(events...)
			}
			same(t, fmt.Sprintf("%s breakdown %+v", name, bq), must(db.Breakdown(ctx, q, bq)), rf.breakdown(q, bq))

			tq := TrendsQuery{Interval: pick(IntervalHour, IntervalDay, IntervalWeek, IntervalMonth), Math: pick(MathTotal, MathUnique, MathDAU)}
			for n := 1 + rnd.IntN(3); n > 0; n-- {
				tq.Events = append(tq.Events, pick(events...))
			}
			if rnd.IntN(3) == 0 {
				tq.Breakdown = pick("$pathname", "$browser", "$referring_domain")
			}
			same(t, fmt.Sprintf("%s trends %+v", name, tq), must(db.Trends(ctx, q, tq)), rf.trends(q, tq))

			fq := FunnelQuery{Window: time.Duration(1+rnd.IntN(3*24*60)) * time.Minute}
			for n := 1 + rnd.IntN(4); n > 0; n-- {
				fq.Steps = append(fq.Steps, pick(events...))
			}
			same(t, fmt.Sprintf("%s funnel %+v", name, fq), must(db.Funnel(ctx, q, fq)), rf.funnel(q, fq))

			rq := RetentionQuery{StartEvent: pick(events...), ReturnEvent: pick(events...), Period: pick(PeriodDay, PeriodWeek), Periods: 1 + rnd.IntN(10)}
			same(t, fmt.Sprintf("%s retention %+v", name, rq), must(db.Retention(ctx, q, rq)), rf.retention(q, rq))

			pq := PathsQuery{Steps: 2 + rnd.IntN(6)}
			if rnd.IntN(2) == 0 {
				pq.Start = genPages[rnd.IntN(5)]
			}
			same(t, fmt.Sprintf("%s paths %+v", name, pq), must(db.Paths(ctx, q, pq)), rf.paths(q, pq))

			var got2 []string
			if err := db.Export(ctx, q, func(e *Event, pid string) error {
				got2 = append(got2, e.UUID)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			var want2 []string
			sel := rf.selected(q)
			sort.SliceStable(sel, func(i, j int) bool { return sel[i].Time < sel[j].Time })
			for _, e := range sel {
				want2 = append(want2, e.UUID)
			}
			same(t, name+" export", got2, want2)
		}
	}
	check(db, 150/divide)

	// A deleted person is gone from every report, and its ids from the
	// refused links that named them (the events stay, without that
	// property): the persons are then those the remaining events make, as
	// a replay of the log makes them. Deleted here: a person whose id a
	// refused link named, and another one.
	for _, victim := range []string{rf.refused[len(rf.refused)/2].other, rf.events[len(rf.events)/2].DistinctID} {
		if err := db.DeletePerson(ctx, "s", victim); err != nil {
			t.Fatal(err)
		}
		gone := rf.find(victim)
		strip := map[*Event]bool{}
		for _, x := range rf.refused {
			if rf.find(x.other) == gone {
				strip[x.e] = true
			}
		}
		if len(strip) == 0 && victim == rf.refused[len(rf.refused)/2].other {
			t.Fatal("no refused link named the victim")
		}
		var kept []*Event
		for _, e := range rf.events {
			if rf.person(e) == gone {
				continue
			}
			if strip[e] {
				cp := *e
				cp.Props = nil
				for _, p := range e.Props {
					if p.Key != "alias" && p.Key != "$anon_distinct_id" {
						cp.Props = append(cp.Props, p)
					}
				}
				e = &cp
			}
			kept = append(kept, e)
		}
		again := newRef()
		again.actions, again.cohorts = rf.actions, rf.cohorts
		again.add(map[string]bool{}, kept...)
		for id := range rf.ids { // ids that remain known but lost their events
			again.ids[id] = true
		}
		rf = again
	}
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	checkPersons(db)
	check(db, 40/divide)

	db.Close()
	db = open(t, path, Options{CompactEvery: time.Hour})
	defer db.Close()
	checkPersons(db)
	check(db, 60/divide)
}

// GenerateReference calls emit with the generated events the reference
// tests use (merges, retries, equal timestamps, server events, sessions
// with referrers and UTM tags), so that another backend's tests can
// compare it with the embedded store on the same data.
func GenerateReference(seed uint64, start time.Time, days, persons, events int, emit func(*Event)) {
	generate(genConfig{Seed: seed, Start: start, Days: days, Persons: persons, Events: events, Tick: time.Minute}, emit)
}
