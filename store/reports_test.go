package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// mar is a day of March 2026 (the 2nd is a Monday) at h:m UTC.
func mar(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, time.UTC) }

// at makes an event of site "s" at t.
func at(name, did string, t time.Time, props ...string) *Event {
	return ev("s", name, did, t.UnixMilli(), props...)
}

func rng(from, to time.Time) Query { return Query{Site: "s", From: from, To: to} }

func withFilters(q Query, fs ...string) Query {
	for _, f := range fs {
		flt, err := ParseFilter(f)
		if err != nil {
			panic(err)
		}
		q.Filters = append(q.Filters, flt)
	}
	return q
}

// must returns v, panicking (failing the test) on an error.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// same fails unless got and want are equal, showing both as JSON.
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// overviewDB holds the hand-computed overview data set:
//
//	A (a1, plan pro): session S1 /, autocapture /, /pricing, pageleave /pricing; server event
//	B (b1, and b2 merged after the range): S2 / + pageleave; S3 /docs (plus a retry of it)
//	C (c1): S4 an autocapture only
//	D (d1): pageviews just before from and exactly at to
//	E (e1): S6 a pageview exactly at from
func overviewDB(t *testing.T) *DB {
	db := openTest(t, ":memory:")
	t.Cleanup(func() { db.Close() })
	retry := at("$pageview", "b2", mar(2, 12, 30), "$session_id", "S3", "$pathname", "/docs")
	retry.UUID = "0190a1b2-c3d4-7e5f-8a9b-000000000007"
	first := *retry
	first.Time = mar(2, 12, 0).UnixMilli()
	mustAppend(t, db,
		at("$pageview", "a1", mar(2, 10, 0), "$session_id", "S1", "$pathname", "/", "$set", `{"plan":"pro"}`),
		at("$autocapture", "a1", mar(2, 10, 1), "$session_id", "S1", "$pathname", "/"),
		at("$pageview", "a1", mar(2, 10, 5), "$session_id", "S1", "$pathname", "/pricing"),
		at("$pageleave", "a1", mar(2, 10, 6), "$session_id", "S1", "$pathname", "/pricing"),
		at("$pageview", "b1", mar(2, 11, 0), "$session_id", "S2", "$pathname", "/"),
		at("$pageleave", "b1", mar(2, 11, 2), "$session_id", "S2", "$pathname", "/"),
		&first,
		at("purchase", "a1", mar(2, 13, 0)),
		at("$autocapture", "c1", mar(2, 14, 0), "$session_id", "S4", "$pathname", "/pricing"),
		ev("s", "$pageview", "d1", mar(2, 0, 0).UnixMilli()-1, "$session_id", "S5", "$pathname", "/"),
		at("$pageview", "d1", mar(3, 0, 0), "$session_id", "S5", "$pathname", "/"),
		at("$pageview", "e1", mar(2, 0, 0), "$session_id", "S6", "$pathname", "/"),
	)
	if out := mustAppend(t, db, retry); out[0] != Duplicate {
		t.Fatal("retry stored")
	}
	mustAppend(t, db, at("$identify", "b1", mar(5, 0, 0), "$anon_distinct_id", "b2"))
	return db
}

func TestStats(t *testing.T) {
	db := overviewDB(t)
	day := rng(mar(2, 0, 0), mar(3, 0, 0))
	proID := int64(0)
	c := must(db.SaveCohort(ctx, "s", Cohort{Name: "pro", Kind: CohortProperty, Property: "plan", Op: OpEq, Value: "pro"}))
	proID = c.ID
	cases := []struct {
		name string
		q    Query
		want Stats
	}{
		// Sessions S1 S2 S3 S4 S6; bounces S2 (a pageview and a pageleave),
		// S3 (the retry is not a second event), S6; durations 360+120+0+0+0.
		{"all", day, Stats{Visitors: 4, Pageviews: 5, Sessions: 5, BounceRate: 0.6, AvgSessionSeconds: 96, ViewsPerSession: 1}},
		// Filter scope (SPEC §4): an event-property filter keeps the whole
		// sessions with a passing event; pageviews count the passing ones.
		// /pricing passes in S1 (its pageview and pageleave) and S4: S1
		// whole (two pageviews, 360 s, no bounce) and S4 (no pageview, 0 s).
		{"==", withFilters(day, "$pathname==/pricing"), Stats{Visitors: 2, Pageviews: 1, Sessions: 2, BounceRate: 0, AvgSessionSeconds: 180, ViewsPerSession: 0.5}},
		{"~", withFilters(day, "$pathname~pric"), Stats{Visitors: 2, Pageviews: 1, Sessions: 2, BounceRate: 0, AvgSessionSeconds: 180, ViewsPerSession: 0.5}},
		// S1, S2, S3 and S6 have a passing event, whole: bounces S2 S3 S6,
		// 360+120+0+0 s; the server event (no $pathname) passes too, its
		// person a1 is S1's.
		{"!=", withFilters(day, "$pathname!=/pricing"), Stats{Visitors: 3, Pageviews: 4, Sessions: 4, BounceRate: 0.75, AvgSessionSeconds: 120, ViewsPerSession: 1}},
		{"!~", withFilters(day, "$pathname!~pric"), Stats{Visitors: 3, Pageviews: 4, Sessions: 4, BounceRate: 0.75, AvgSessionSeconds: 120, ViewsPerSession: 1}},
		{"two filters", withFilters(day, "$pathname!=/pricing", "event==$pageview"), Stats{Visitors: 3, Pageviews: 4, Sessions: 4, BounceRate: 0.75, AvgSessionSeconds: 120, ViewsPerSession: 1}},
		// A session property keeps whole sessions: S1 entered at /.
		{"session property", withFilters(day, "$exit_pathname==/pricing"), Stats{Visitors: 1, Pageviews: 2, Sessions: 1, BounceRate: 0, AvgSessionSeconds: 360, ViewsPerSession: 2}},
		{"cohort", Query{Site: "s", From: day.From, To: day.To, Cohort: proID}, Stats{Visitors: 1, Pageviews: 2, Sessions: 1, BounceRate: 0, AvgSessionSeconds: 360, ViewsPerSession: 2}},
		{"empty range", rng(mar(2, 10, 0), mar(2, 10, 0)), Stats{}},
		{"no events in range", rng(mar(20, 0, 0), mar(21, 0, 0)), Stats{}},
		{"unknown site", Query{Site: "nope", From: day.From, To: day.To}, Stats{}},
	}
	for _, c := range cases {
		same(t, c.name, must(db.Stats(ctx, c.q)), c.want)
	}
	if _, err := db.Stats(ctx, Query{Site: "s", From: day.From, To: day.To, Cohort: 999}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("unknown cohort: %v", err)
	}
	if _, err := db.Stats(ctx, rng(mar(3, 0, 0), mar(2, 0, 0))); !errors.Is(err, ErrBadQuery) {
		t.Errorf("to before from: %v", err)
	}
}

func TestBreakdown(t *testing.T) {
	db := overviewDB(t)
	day := rng(mar(2, 0, 0), mar(3, 0, 0))
	cases := []struct {
		name string
		q    Query
		bq   BreakdownQuery
		want []BreakdownRow
	}{
		// The server event has no $pathname and is left out; B's two ids
		// are one visitor of /.
		{"all events", day, BreakdownQuery{Property: "$pathname"}, []BreakdownRow{{"/", 5, 3}, {"/pricing", 3, 2}, {"/docs", 1, 1}}},
		// Ties in count go by value.
		{"pageviews", day, BreakdownQuery{Property: "$pathname", Event: "$pageview"}, []BreakdownRow{{"/", 3, 3}, {"/docs", 1, 1}, {"/pricing", 1, 1}}},
		{"limit", day, BreakdownQuery{Property: "$pathname", Event: "$pageview", Limit: 1}, []BreakdownRow{{"/", 3, 3}}},
		{"by event name", day, BreakdownQuery{Property: "event"}, []BreakdownRow{{"$pageview", 5, 3}, {"$autocapture", 2, 2}, {"$pageleave", 2, 2}, {"purchase", 1, 1}}},
		{"filtered", withFilters(day, "$session_id==S1"), BreakdownQuery{Property: "$pathname"}, []BreakdownRow{{"/", 2, 1}, {"/pricing", 2, 1}}},
		{"a property no event has", day, BreakdownQuery{Property: "nothing"}, nil},
		{"unknown event", day, BreakdownQuery{Property: "$pathname", Event: "nope"}, nil},
	}
	for _, c := range cases {
		same(t, c.name, must(db.Breakdown(ctx, c.q, c.bq)), c.want)
	}
	if _, err := db.Breakdown(ctx, day, BreakdownQuery{}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("no property: %v", err)
	}
}

func trendsDB(t *testing.T) *DB {
	db := openTest(t, ":memory:")
	t.Cleanup(func() { db.Close() })
	mustAppend(t, db,
		at("$pageview", "p1", mar(1, 23, 30), "$browser", "Firefox"),
		at("$pageview", "p1", mar(2, 0, 30), "$browser", "Firefox"),
		at("$pageview", "p2", mar(2, 5, 0), "$browser", "Chrome"),
		at("$pageview", "p1", mar(2, 6, 0), "$browser", "Chrome"),
		at("$pageview", "p1", mar(4, 12, 0)),
		at("signup", "p2", mar(4, 13, 0), "$browser", "Chrome"),
	)
	return db
}

func TestTrends(t *testing.T) {
	db := trendsDB(t)
	ny, _ := time.LoadLocation("America/New_York")
	utc := rng(mar(1, 0, 0), mar(5, 0, 0)) // from=2026-03-01&to=2026-03-04
	nyq := Query{Site: "s", From: time.Date(2026, 3, 1, 0, 0, 0, 0, ny), To: time.Date(2026, 3, 5, 0, 0, 0, 0, ny), TZ: ny}
	days := []string{"2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"}
	str := func(s string) *string { return &s }
	pv := func(data ...float64) TrendSeries { return TrendSeries{Event: "$pageview", Data: data} }
	cases := []struct {
		name string
		q    Query
		tq   TrendsQuery
		want Trends
	}{
		{"total by day", utc, TrendsQuery{}, Trends{days, []TrendSeries{pv(1, 3, 0, 1)}}},
		{"unique by day", utc, TrendsQuery{Math: MathUnique}, Trends{days, []TrendSeries{pv(1, 2, 0, 1)}}},
		{"dau", utc, TrendsQuery{Math: MathDAU}, Trends{days, []TrendSeries{pv(1, 2, 0, 1)}}},
		// In New York (UTC-5) the first two pageviews fall on March 1st.
		{"days in a time zone", nyq, TrendsQuery{}, Trends{days, []TrendSeries{pv(2, 2, 0, 1)}}},
		{"unique in a time zone", nyq, TrendsQuery{Math: MathUnique}, Trends{days, []TrendSeries{pv(1, 2, 0, 1)}}},
		// March 1st is a Sunday: its week starts on Monday February 23rd.
		{"weeks", utc, TrendsQuery{Interval: IntervalWeek}, Trends{[]string{"2026-02-23", "2026-03-02"}, []TrendSeries{pv(1, 4)}}},
		{"months", utc, TrendsQuery{Interval: IntervalMonth}, Trends{[]string{"2026-03"}, []TrendSeries{pv(5)}}},
		{"hours", rng(mar(2, 0, 0), mar(2, 3, 0)), TrendsQuery{Interval: IntervalHour},
			Trends{[]string{"2026-03-02T00:00", "2026-03-02T01:00", "2026-03-02T02:00"}, []TrendSeries{pv(1, 0, 0)}}},
		// A range that starts mid-interval counts only what is in range.
		{"partial first interval", rng(mar(2, 1, 0), mar(3, 0, 0)), TrendsQuery{}, Trends{[]string{"2026-03-02"}, []TrendSeries{pv(2)}}},
		{"two events", utc, TrendsQuery{Events: []string{"$pageview", "signup"}},
			Trends{days, []TrendSeries{pv(1, 3, 0, 1), {Event: "signup", Data: []float64{0, 0, 0, 1}}}}},
		{"unknown event zero-filled", utc, TrendsQuery{Events: []string{"nope"}}, Trends{days, []TrendSeries{{Event: "nope", Data: []float64{0, 0, 0, 0}}}}},
		{"empty range", rng(mar(2, 0, 0), mar(2, 0, 0)), TrendsQuery{}, Trends{[]string{}, []TrendSeries{pv([]float64{}...)}}},
		// Values by total (Chrome 2 pageviews, Firefox 2: tie by value);
		// the pageview without $browser is left out.
		{"breakdown", utc, TrendsQuery{Events: []string{"$pageview", "signup"}, Breakdown: "$browser"},
			Trends{days, []TrendSeries{
				{Event: "$pageview", BreakdownValue: str("Chrome"), Data: []float64{0, 2, 0, 0}},
				{Event: "$pageview", BreakdownValue: str("Firefox"), Data: []float64{1, 1, 0, 0}},
				{Event: "signup", BreakdownValue: str("Chrome"), Data: []float64{0, 0, 0, 1}},
			}}},
		{"breakdown unique", utc, TrendsQuery{Breakdown: "$browser", Math: MathUnique},
			Trends{days, []TrendSeries{
				{Event: "$pageview", BreakdownValue: str("Chrome"), Data: []float64{0, 2, 0, 0}},
				{Event: "$pageview", BreakdownValue: str("Firefox"), Data: []float64{1, 1, 0, 0}},
			}}},
		{"filtered", withFilters(utc, "$browser==Firefox"), TrendsQuery{}, Trends{days, []TrendSeries{pv(1, 1, 0, 0)}}},
	}
	for _, c := range cases {
		same(t, c.name, must(db.Trends(ctx, c.q, c.tq)), c.want)
	}
	for _, bad := range []TrendsQuery{{Interval: "year"}, {Math: "sum"}, {Events: []string{"action:42"}}} {
		if _, err := db.Trends(ctx, utc, bad); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, err := db.Trends(ctx, rng(mar(1, 0, 0), time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)), TrendsQuery{Interval: IntervalHour}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("too many hours: %v", err)
	}
}

func TestTrendsAcrossDST(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	db := openTest(t, ":memory:")
	defer db.Close()
	// US DST ends on 2026-11-01 at 02:00 EDT: 01:00-02:00 happens twice.
	nov := func(d, h, m int) time.Time { return time.Date(2026, 11, d, h, m, 0, 0, time.UTC) }
	mustAppend(t, db,
		at("$pageview", "p", nov(1, 5, 30)), // 01:30 EDT
		at("$pageview", "p", nov(1, 6, 30)), // 01:30 EST
		at("$pageview", "p", nov(2, 4, 30)), // 23:30 EST on Nov 1st: a 25-hour day
	)
	q := Query{Site: "s", From: nov(1, 4, 0), To: nov(1, 8, 0), TZ: ny}
	same(t, "hours", must(db.Trends(ctx, q, TrendsQuery{Interval: IntervalHour})), Trends{
		[]string{"2026-11-01T00:00", "2026-11-01T01:00", "2026-11-01T01:00", "2026-11-01T02:00"},
		[]TrendSeries{{Event: "$pageview", Data: []float64{0, 1, 1, 0}}},
	})
	q = Query{Site: "s", From: time.Date(2026, 11, 1, 0, 0, 0, 0, ny), To: time.Date(2026, 11, 3, 0, 0, 0, 0, ny), TZ: ny}
	same(t, "days", must(db.Trends(ctx, q, TrendsQuery{})), Trends{
		[]string{"2026-11-01", "2026-11-02"}, []TrendSeries{{Event: "$pageview", Data: []float64{3, 0}}},
	})
}

func funnelDB(t *testing.T) *DB {
	db := openTest(t, ":memory:")
	t.Cleanup(func() { db.Close() })
	t0 := mar(2, 10, 0)
	m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	mustAppend(t, db,
		// p1: A B C ten minutes apart.
		at("A", "p1", m(0)), at("B", "p1", m(10)), at("C", "p1", m(20)),
		// p2: B at the same millisecond as A does not follow it.
		at("A", "p2", m(0)), at("B", "p2", m(0)), at("C", "p2", m(5)),
		// p3: C exactly one window after A (inclusive).
		at("A", "p3", m(0)), at("B", "p3", m(30)), at("C", "p3", m(60)),
		// p4: C one millisecond too late.
		at("A", "p4", m(0)), at("B", "p4", m(30)), ev("s", "C", "p4", m(60).UnixMilli()+1),
		// p5: the first A's chain breaks, the second A's completes.
		at("A", "p5", m(0)), at("A", "p5", m(50)), at("B", "p5", m(70)), at("C", "p5", m(80)),
		// p6: no A.
		at("B", "p6", m(0)), at("C", "p6", m(1)),
		// p7: A as an anonymous id, B and C after identifying (the merge
		// itself comes after the range).
		at("A", "p7anon", m(0)), at("B", "p7", m(1)), at("C", "p7", m(2)),
		// p8: B after the range.
		at("A", "p8", m(0)), at("B", "p8", mar(3, 0, 0)),
		// p9: A before the range.
		ev("s", "A", "p9", mar(2, 0, 0).UnixMilli()-1), at("B", "p9", m(1)), at("C", "p9", m(2)),
		// p10: two Bs; the earlier one leads on to C.
		at("A", "p10", m(0)), at("B", "p10", m(10)), at("C", "p10", m(15)), at("B", "p10", m(20)),
	)
	mustAppend(t, db, at("$identify", "p7", mar(4, 0, 0), "$anon_distinct_id", "p7anon"))
	return db
}

func TestFunnel(t *testing.T) {
	db := funnelDB(t)
	day := rng(mar(2, 0, 0), mar(3, 0, 0))
	steps := func(counts ...int) []FunnelStep {
		out := make([]FunnelStep, len(counts))
		for i, c := range counts {
			out[i] = FunnelStep{Event: string(rune('A' + i)), Count: c}
		}
		return out
	}
	abc := []string{"A", "B", "C"}
	same(t, "A B C in 1h", must(db.Funnel(ctx, day, FunnelQuery{Steps: abc, Window: time.Hour})), steps(8, 6, 5))
	// With the default 14 days p4's late C counts.
	same(t, "A B C in 14d", must(db.Funnel(ctx, day, FunnelQuery{Steps: abc})), steps(8, 6, 6))
	// p5's second A reaches B in 20 minutes; p3 and p4 take 30.
	same(t, "A B in 25m", must(db.Funnel(ctx, day, FunnelQuery{Steps: abc[:2], Window: 25 * time.Minute})), steps(8, 4))
	same(t, "one step", must(db.Funnel(ctx, day, FunnelQuery{Steps: abc[:1]})), steps(8))
	same(t, "filters remove C", must(db.Funnel(ctx, withFilters(day, "nothing==", "event!=C"), FunnelQuery{Steps: abc})), steps(8, 6, 0))
	same(t, "unknown step", must(db.Funnel(ctx, day, FunnelQuery{Steps: []string{"A", "nope"}})), []FunnelStep{{"A", 8}, {"nope", 0}})

	// The same event as two steps needs two distinct times.
	db2 := openTest(t, ":memory:")
	defer db2.Close()
	mustAppend(t, db2,
		at("$pageview", "one", mar(2, 1, 0)),
		at("$pageview", "tied", mar(2, 1, 0)), at("$pageview", "tied", mar(2, 1, 0)),
		at("$pageview", "two", mar(2, 1, 0)), at("$pageview", "two", mar(2, 1, 1)),
	)
	same(t, "repeated step", must(db2.Funnel(ctx, day, FunnelQuery{Steps: []string{"$pageview", "$pageview"}})),
		[]FunnelStep{{"$pageview", 3}, {"$pageview", 1}})

	for _, bad := range []FunnelQuery{{}, {Steps: abc, Window: -time.Second}, {Steps: make([]string, 21)}} {
		if _, err := db.Funnel(ctx, day, bad); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func TestParseWindow(t *testing.T) {
	for in, want := range map[string]time.Duration{"14d": 14 * 24 * time.Hour, "3h": 3 * time.Hour, "90m": 90 * time.Minute, "30s": 30 * time.Second, "2w": 14 * 24 * time.Hour} {
		if got, err := ParseWindow(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "14", "0d", "-1d", "1y", "1.5h", "99999999999w"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestRetention(t *testing.T) {
	db := openTest(t, ":memory:")
	defer db.Close()
	d := func(n, h int) time.Time { return mar(2+n, h, 0) } // day n of the range
	mustAppend(t, db,
		at("signup", "p1", d(0, 9)), at("$pageview", "p1", d(1, 9)), at("$pageview", "p1", d(3, 9)),
		at("signup", "p2", d(0, 9)), at("signup", "p2", d(0, 10)), at("$pageview", "p2", d(2, 23)),
		// p3's first signup in range is on day 1 (the one before is out).
		at("signup", "p3", d(-1, 9)), at("signup", "p3", d(1, 9)), at("$pageview", "p3", d(2, 0)),
		// p4 comes back after the range.
		at("signup", "p4", d(3, 9)), at("$pageview", "p4", d(4, 0)),
		// p5 never signs up.
		at("$pageview", "p5", d(1, 9)),
		// p6 returns within its own period only.
		at("signup", "p6", d(1, 9)), at("$pageview", "p6", d(1, 10)),
		// p7 signs up anonymously and comes back identified.
		at("signup", "p7anon", d(0, 9)), at("$pageview", "p7", d(1, 9)),
	)
	mustAppend(t, db, at("$identify", "p7", d(9, 0), "$anon_distinct_id", "p7anon"))
	q := rng(d(0, 0), d(4, 0))
	rq := RetentionQuery{StartEvent: "signup", ReturnEvent: "$pageview", Period: PeriodDay, Periods: 3}
	same(t, "days", must(db.Retention(ctx, q, rq)), []RetentionCohort{
		{"2026-03-02", 3, []int{3, 2, 1}},
		{"2026-03-03", 2, []int{2, 1, 0}},
		{"2026-03-04", 0, []int{0, 0, 0}},
		{"2026-03-05", 1, []int{1, 0, 0}},
	})
	// Periods aligned to from, not to midnight: from 08:00 puts p3's
	// return at midnight into its own period, and brings p4's return into
	// range, in its own period too.
	q = rng(d(0, 8), d(4, 8))
	same(t, "aligned to from", must(db.Retention(ctx, q, rq)), []RetentionCohort{
		{"2026-03-02", 3, []int{3, 2, 1}},
		{"2026-03-03", 2, []int{2, 0, 0}},
		{"2026-03-04", 0, []int{0, 0, 0}},
		{"2026-03-05", 1, []int{1, 0, 0}},
	})
	// Weeks from a Wednesday (b's first pageview, on Monday the 9th, is in
	// the first one); the second is clipped at to, so b's return on the
	// 16th is out of range.
	db2 := openTest(t, ":memory:")
	defer db2.Close()
	mustAppend(t, db2,
		at("$pageview", "a", mar(4, 9, 0)), at("$pageview", "a", mar(9, 9, 0)), at("$pageview", "a", mar(12, 9, 0)),
		at("$pageview", "b", mar(9, 9, 0)), at("$pageview", "b", mar(16, 9, 0)),
		at("$pageview", "c", mar(14, 23, 59)),
	)
	same(t, "weeks", must(db2.Retention(ctx, rng(mar(4, 0, 0), mar(15, 0, 0)), RetentionQuery{Period: PeriodWeek, Periods: 4})), []RetentionCohort{
		{"2026-03-04", 2, []int{2, 1, 0, 0}},
		{"2026-03-11", 1, []int{1, 0, 0, 0}},
	})
	same(t, "default periods", len(must(db2.Retention(ctx, rng(mar(4, 0, 0), mar(5, 0, 0)), RetentionQuery{}))[0].Values), 8)
	same(t, "empty range", must(db2.Retention(ctx, rng(mar(4, 0, 0), mar(4, 0, 0)), RetentionQuery{})), []RetentionCohort{})
	if _, err := db2.Retention(ctx, q, RetentionQuery{Period: "month"}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("period month: %v", err)
	}
}

func TestPaths(t *testing.T) {
	db := openTest(t, ":memory:")
	defer db.Close()
	pv := func(did, sess string, t time.Time, path string) *Event {
		if sess == "" {
			return at("$pageview", did, t, "$pathname", path)
		}
		return at("$pageview", did, t, "$session_id", sess, "$pathname", path)
	}
	mustAppend(t, db,
		pv("a", "s1", mar(2, 10, 0), "/"),
		pv("a", "s1", mar(2, 10, 1), "/pricing"),
		at("$autocapture", "a", mar(2, 10, 2), "$session_id", "s1", "$pathname", "/pricing"),
		pv("a", "s1", mar(2, 10, 3), "/pricing"),
		pv("a", "s1", mar(2, 10, 5), "/"), // out of order: before /signup
		pv("a", "s1", mar(2, 10, 4), "/signup"),
		pv("b", "s2", mar(2, 11, 0), "/"),
		pv("b", "s2", mar(2, 11, 1), "/pricing"),
		pv("c", "s3", mar(2, 12, 0), "/docs"),
		// Without a session: the person's pageviews are one path.
		pv("srv", "", mar(2, 13, 0), "/"),
		pv("srv", "", mar(2, 13, 5), "/docs"),
		// Equal times keep commit order.
		pv("d", "s4", mar(2, 14, 0), "/"),
		pv("d", "s4", mar(2, 14, 0), "/about"),
		// s5 goes on past the range.
		pv("e", "s5", mar(2, 23, 59), "/"),
		pv("e", "s5", mar(3, 0, 0), "/pricing"),
	)
	day := rng(mar(2, 0, 0), mar(3, 0, 0))
	same(t, "all", must(db.Paths(ctx, day, PathsQuery{})), []PathLink{
		{"1_/", "2_/pricing", 2},
		{"1_/", "2_/about", 1},
		{"1_/", "2_/docs", 1},
		{"2_/pricing", "3_/signup", 1},
		{"3_/signup", "4_/", 1},
	})
	same(t, "steps 2", must(db.Paths(ctx, day, PathsQuery{Steps: 2})), []PathLink{
		{"1_/", "2_/pricing", 2},
		{"1_/", "2_/about", 1},
		{"1_/", "2_/docs", 1},
	})
	same(t, "start", must(db.Paths(ctx, day, PathsQuery{Start: "/pricing"})), []PathLink{
		{"1_/pricing", "2_/signup", 1},
		{"2_/signup", "3_/", 1},
	})
	same(t, "unknown start", must(db.Paths(ctx, day, PathsQuery{Start: "/nope"})), []PathLink{})
	same(t, "filtered", must(db.Paths(ctx, withFilters(day, "$pathname!=/pricing"), PathsQuery{})), []PathLink{
		{"1_/", "2_/about", 1},
		{"1_/", "2_/docs", 1},
		{"1_/", "2_/signup", 1},
		{"2_/signup", "3_/", 1},
	})
}

func TestHeatmap(t *testing.T) {
	db := openTest(t, ":memory:")
	defer db.Close()
	click := func(path, x, y, vw string) *Event {
		return at("$autocapture", "p", mar(2, 10, 0), "$event_type", "click", "$pathname", path, "$click_x", x, "$click_y", y, "$viewport_width", vw)
	}
	leave := func(path, depth, vw string) *Event {
		return at("$pageleave", "p", mar(2, 10, 0), "$prev_pageview_pathname", path, "$prev_pageview_max_content", depth, "$viewport_width", vw)
	}
	change := click("/", "0.5", "100", "1280")
	change.Props[0].Val = StringValue("change")
	mustAppend(t, db,
		click("/", "0.504", "104", "1280"), // 0.5, 100
		click("/", "0.496", "96", "1280"),  // 0.5, 100
		click("/", "0.2", "1000", "375"),
		click("/", "0.7", "15", "800"), // 0.7, 20
		click("/", "x", "15", "800"),   // not a number
		click("/", "1.5", "15", "800"), // outside the viewport
		click("/other", "0.5", "100", "1280"),
		change,
		leave("/", "250", "1280"), // reached 0, 100, 200
		leave("/", "99", "375"),   // reached 0
		leave("/", "300", "375"),  // reached 0..300
		leave("/other", "5000", "375"),
	)
	day := rng(mar(2, 0, 0), mar(3, 0, 0))
	same(t, "clicks", must(db.Heatmap(ctx, day, HeatmapQuery{URL: "/"})), []HeatmapPoint{{0.5, 100, 2}, {0.7, 20, 1}, {0.2, 1000, 1}})
	same(t, "mobile clicks", must(db.Heatmap(ctx, day, HeatmapQuery{URL: "/", Viewport: "mobile"})), []HeatmapPoint{{0.2, 1000, 1}})
	same(t, "tablet clicks", must(db.Heatmap(ctx, day, HeatmapQuery{URL: "/", Viewport: "tablet"})), []HeatmapPoint{{0.7, 20, 1}})
	same(t, "scroll", must(db.Heatmap(ctx, day, HeatmapQuery{URL: "/", Type: HeatmapScroll})), []HeatmapPoint{{0, 0, 3}, {0, 100, 2}, {0, 200, 2}, {0, 300, 1}})
	same(t, "mobile scroll", must(db.Heatmap(ctx, day, HeatmapQuery{URL: "/", Type: HeatmapScroll, Viewport: "mobile"})), []HeatmapPoint{{0, 0, 2}, {0, 100, 1}, {0, 200, 1}, {0, 300, 1}})
	same(t, "no such page", must(db.Heatmap(ctx, day, HeatmapQuery{URL: "/nope"})), []HeatmapPoint{})
	for _, bad := range []HeatmapQuery{{}, {URL: "/", Type: "move"}, {URL: "/", Viewport: "watch"}} {
		if _, err := db.Heatmap(ctx, day, bad); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func TestExportInTimeOrder(t *testing.T) {
	db := overviewDB(t)
	var got []string
	err := db.Export(ctx, withFilters(rng(mar(2, 0, 0), mar(3, 0, 0)), "$pathname!=/pricing"), func(ev *Event, pid string) error {
		got = append(got, fmt.Sprintf("%s %s %s %s", time.UnixMilli(ev.Time).UTC().Format("15:04"), ev.Name, ev.DistinctID, pid[:8]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a, b, e := PersonID("s", "a1")[:8], PersonID("s", "b1")[:8], PersonID("s", "e1")[:8]
	want := []string{
		"00:00 $pageview e1 " + e,
		"10:00 $pageview a1 " + a,
		"10:01 $autocapture a1 " + a,
		"11:00 $pageview b1 " + b,
		"11:02 $pageleave b1 " + b,
		"12:00 $pageview b2 " + b, // b2 was merged into b1, first seen
		"13:00 purchase a1 " + a,
	}
	same(t, "export", got, want)
	stop := errors.New("stop")
	n := 0
	if err := db.Export(ctx, rng(mar(2, 0, 0), mar(3, 0, 0)), func(*Event, string) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("stopping: %v after %d", err, n)
	}
}

func TestExportManyBlocks(t *testing.T) {
	db, err := Open(":memory:", Options{BlockEvents: 64, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Commit order is the reverse of time order, across many blocks and
	// more than one export window.
	const n = 3*exportWindow + 17
	for i := n - 1; i >= 0; i -= 500 {
		var evs []*Event
		for j := i; j > i-500 && j >= 0; j-- {
			evs = append(evs, ev("s", "e", fmt.Sprint("d", j%13), int64(j), "i", fmt.Sprint(j)))
		}
		mustAppend(t, db, evs...)
	}
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	next := 0
	err = db.Export(ctx, Query{Site: "s", From: time.UnixMilli(0), To: time.UnixMilli(n)}, func(ev *Event, _ string) error {
		if ev.Time != int64(next) || ev.Props.Str("i") != fmt.Sprint(next) {
			return fmt.Errorf("event %d is %d", next, ev.Time)
		}
		next++
		return nil
	})
	if err != nil || next != n {
		t.Fatalf("%v after %d", err, next)
	}
}

func TestLiveCount(t *testing.T) {
	now := mar(2, 12, 0)
	db, err := Open(":memory:", Options{Now: func() time.Time { return now }, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustAppend(t, db,
		at("$pageview", "a", now.Add(-5*time.Minute)), // just in
		ev("s", "$pageview", "b", now.Add(-5*time.Minute).UnixMilli()-1),
		at("$pageview", "c", now),
		at("$pageview", "c2", now.Add(-time.Minute)),
		at("$identify", "c", now.Add(-time.Hour), "$anon_distinct_id", "c2"),
		at("$pageview", "d", now.Add(time.Minute)), // from the future
	)
	if n := must(db.LiveCount(ctx, "s")); n != 2 {
		t.Fatalf("online %d, want 2 (a, and c with c2)", n)
	}
	if n := must(db.LiveCount(ctx, "other")); n != 0 {
		t.Fatalf("online %d on an empty site", n)
	}
}

func TestSubscribeJSON(t *testing.T) {
	db := openTest(t, ":memory:")
	defer db.Close()
	sub := db.Subscribe("s")
	defer sub.Close()
	mustAppend(t, db, at("$pageview", "a", mar(2, 0, 0), "$pathname", "/x"))
	b := <-sub.C
	if !strings.Contains(string(b), `"event":"$pageview"`) || !strings.Contains(string(b), `"$pathname":"/x"`) {
		t.Fatalf("%s", b)
	}
}
