package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

const signupChain = `span.label:nth-child="1"nth-of-type="1"text="Sign up";` +
	`button.btn.btn-primary:attr__class="btn btn-primary"attr__id="signup"attr__data-track="cta"nth-child="2"nth-of-type="1"text="Sign up";` +
	`div.hero.md:flex:nth-child="1"nth-of-type="1";body:nth-child="2"nth-of-type="1"`

const docsChain = `a.nav:attr__href="/docs?a=1;b=2"href="/docs?a=1;b=2"nth-child="1"nth-of-type="1"text="Say \"docs\"";nav:nth-child="1"nth-of-type="1"`

func TestParseElements(t *testing.T) {
	els := parseElements(signupChain)
	if len(els) != 4 {
		t.Fatalf("%d elements", len(els))
	}
	same(t, "span", els[0], element{tag: "span", classes: []string{"label"}, attrs: []Prop{{"nth-child", StringValue("1")}, {"nth-of-type", StringValue("1")}, {"text", StringValue("Sign up")}}})
	if b := els[1]; b.tag != "button" || fmt.Sprint(b.classes) != "[btn btn-primary]" || b.id() != "signup" || b.text() != "Sign up" {
		t.Errorf("button: %+v", b)
	}
	if d := els[2]; d.tag != "div" || fmt.Sprint(d.classes) != "[hero md:flex]" {
		t.Errorf("a class with a colon: %+v", d)
	}
	a := parseElements(docsChain)
	if len(a) != 2 || a[0].href() != "/docs?a=1;b=2" || a[0].text() != `Say "docs"` || a[1].tag != "nav" {
		t.Errorf("quoted ; and \\\": %+v", a)
	}
	for _, junk := range []string{"", ";", `a:text="unterminated`, `:=";;"`, "div.", `x:y="1"z`} {
		parseElements(junk) // never panics
	}
}

func TestSelector(t *testing.T) {
	chain := parseElements(signupChain)
	for sel, want := range map[string]bool{
		"button":                      true,
		"button.btn-primary":          true, // an ancestor of the clicked span
		".btn.btn-primary":            true,
		"button.btn-secondary":        false,
		"#signup":                     true,
		"button#signup":               true,
		"span#signup":                 false,
		"[id=signup]":                 true,
		`[data-track="cta"]`:          true,
		"[data-track=other]":          false,
		"[data-track]":                true,
		"[href]":                      false,
		"div > button":                true,
		"body > button":               false,
		"body button":                 true,
		"div.hero span.label":         true,
		"span > button":               false,
		"button > span.label":         true,
		"body > div > button > span":  true,
		"body > div > span":           false,
		"a":                           false,
		"*":                           true,
		"div   >   button   span":     true,
		"BUTTON":                      true,
		"[nth-child=\"2\"]":           true,
		"div.hero > button.btn#nope":  false,
		"body div.hero button > span": true,
	} {
		s, err := parseSelector(sel)
		if err != nil {
			t.Errorf("%q: %v", sel, err)
			continue
		}
		if got := s.matches(chain); got != want {
			t.Errorf("%q matches: %v, want %v", sel, got, want)
		}
	}
	for _, bad := range []string{"", " ", ">", "a >", "> a", "a > > b", "a[", "a..b", "a.", "#", "a:hover", "[=x]", "a,b"} {
		if _, err := parseSelector(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func actionsDB(t *testing.T) *DB {
	db := openTest(t, ":memory:")
	t.Cleanup(func() { db.Close() })
	mustAppend(t, db,
		at("$autocapture", "a", mar(2, 10, 0), "$event_type", "click", "$elements_chain", signupChain, "$el_text", "Sign up", "$current_url", "https://x.com/pricing?utm=1"),
		at("$autocapture", "a", mar(2, 10, 1), "$event_type", "click", "$elements_chain", docsChain, "$current_url", "https://x.com/"),
		at("$pageview", "b", mar(2, 10, 2), "$current_url", "https://x.com/pricing"),
		at("signed_up", "b", mar(2, 10, 3)),
		at("$autocapture", "c", mar(2, 10, 4), "$event_type", "click", "$elements_chain", `button:nth-child="1"nth-of-type="1"`, "$el_text", "Buy"),
		at("$pageview", "c", mar(2, 10, 5), "$current_url", "https://y.org/"),
	)
	return db
}

func TestActions(t *testing.T) {
	db := actionsDB(t)
	day := rng(mar(2, 0, 0), mar(3, 0, 0))
	cases := []struct {
		steps []ActionStep
		want  []BreakdownRow // by event name
	}{
		{[]ActionStep{{Event: "$autocapture", Selector: "button.btn-primary"}}, []BreakdownRow{{"$autocapture", 1, 1}}},
		{[]ActionStep{{Selector: "nav > a.nav"}}, []BreakdownRow{{"$autocapture", 1, 1}}},
		{[]ActionStep{{Event: "$pageview", URLContains: "/pricing"}, {Event: "signed_up"}}, []BreakdownRow{{"$pageview", 1, 1}, {"signed_up", 1, 1}}},
		{[]ActionStep{{URLContains: "x.com"}}, []BreakdownRow{{"$autocapture", 2, 1}, {"$pageview", 1, 1}}},
		{[]ActionStep{{Text: `Say "docs"`}}, []BreakdownRow{{"$autocapture", 1, 1}}}, // the clicked element's text
		{[]ActionStep{{Text: "Buy"}}, []BreakdownRow{{"$autocapture", 1, 1}}},        // $el_text
		{[]ActionStep{{Text: "Sign up", URLContains: "nowhere"}}, nil},
		{[]ActionStep{{Href: "/docs?a=1;b=2"}}, []BreakdownRow{{"$autocapture", 1, 1}}},
		{[]ActionStep{{Event: "$autocapture", Href: "/docs"}}, nil},
		{[]ActionStep{{Event: "never"}}, nil},
		// Every step of an event matching counts it once.
		{[]ActionStep{{Event: "$pageview"}, {URLContains: "/pricing"}}, []BreakdownRow{{"$pageview", 2, 2}, {"$autocapture", 1, 1}}},
	}
	for i, c := range cases {
		a, err := db.SaveAction(ctx, "s", Action{Name: fmt.Sprint("a", i), Steps: c.steps})
		if err != nil {
			t.Fatal(err)
		}
		got := must(db.Breakdown(ctx, day, BreakdownQuery{Property: "event", Event: fmt.Sprint("action:", a.ID)}))
		same(t, fmt.Sprintf("%+v", c.steps), got, c.want)
	}

	// An action wherever an event name goes.
	a := must(db.SaveAction(ctx, "s", Action{Name: "signup", Steps: []ActionStep{{Selector: "#signup"}, {Event: "signed_up"}}}))
	id := fmt.Sprint("action:", a.ID)
	same(t, "trends", must(db.Trends(ctx, day, TrendsQuery{Events: []string{id}})).Series, []TrendSeries{{Event: id, Data: []float64{2}}})
	same(t, "funnel", must(db.Funnel(ctx, day, FunnelQuery{Steps: []string{"$pageview", id}})), []FunnelStep{{"$pageview", 2}, {id, 1}})
	same(t, "retention", must(db.Retention(ctx, day, RetentionQuery{StartEvent: id, ReturnEvent: id, Periods: 1})), []RetentionCohort{{"2026-03-02", 2, []int{2}}})
	page := must(db.Events(ctx, EventQuery{Site: "s", To: 1 << 62, Event: id}))
	if len(page.Results) != 2 || page.Results[0].Name != "signed_up" || page.Results[1].Name != "$autocapture" {
		t.Errorf("events list: %s", jsonAll(page.Results))
	}
	if _, err := db.Events(ctx, EventQuery{Site: "s", To: 1 << 62, Event: "action:999"}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("unknown action in the events list: %v", err)
	}
	for _, bad := range []Action{
		{Steps: []ActionStep{{Event: "x"}}},
		{Name: "no steps"},
		{Name: "empty step", Steps: []ActionStep{{}}},
		{Name: "bad selector", Steps: []ActionStep{{Selector: "a >"}}},
		{Name: "nested", Steps: []ActionStep{{Event: id}}},
	} {
		if _, err := db.SaveAction(ctx, "s", bad); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%+v saved: %v", bad, err)
		}
	}
	if _, err := db.SaveAction(ctx, "s", Action{ID: 999, Name: "x", Steps: []ActionStep{{Event: "x"}}}); err != ErrNotFound {
		t.Errorf("update of a missing action: %v", err)
	}
}

func TestDefinitionsPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "defs.db")
	db := openTest(t, path)
	a1 := must(db.SaveAction(ctx, "s", Action{Name: "one", Steps: []ActionStep{{Event: "x"}}}))
	a2 := must(db.SaveAction(ctx, "s", Action{Name: "two", Steps: []ActionStep{{Event: "y", URLContains: "/p"}}}))
	c1 := must(db.SaveCohort(ctx, "s", Cohort{Name: "buyers", Kind: "behavioural", Event: "purchase", Days: 30}))
	c2 := must(db.SaveCohort(ctx, "other", Cohort{Name: "pro", Kind: CohortProperty, Property: "plan", Value: "pro"}))
	if a1.ID == a2.ID || c1.ID == a2.ID || c2.ID == c1.ID {
		t.Fatalf("ids %d %d %d %d", a1.ID, a2.ID, c1.ID, c2.ID)
	}
	a2.Name = "two renamed"
	must(db.SaveAction(ctx, "s", a2))
	if err := db.DeleteAction(ctx, "s", a1.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteAction(ctx, "s", a1.ID); err != ErrNotFound {
		t.Fatalf("second delete: %v", err)
	}
	db.Close()

	db = openTest(t, path)
	defer db.Close()
	same(t, "actions", must(db.Actions(ctx, "s")), []Action{{ID: a2.ID, Name: "two renamed", Steps: []ActionStep{{Event: "y", URLContains: "/p"}}}})
	same(t, "cohorts", must(db.Cohorts(ctx, "s")), []Cohort{{ID: c1.ID, Name: "buyers", Kind: CohortBehavioral, Event: "purchase", Days: 30}})
	same(t, "other site", must(db.Cohorts(ctx, "other")), []Cohort{{ID: c2.ID, Name: "pro", Kind: CohortProperty, Property: "plan", Op: OpEq, Value: "pro"}})
	if _, err := db.Action(ctx, "other", a2.ID); err != ErrNotFound {
		t.Fatalf("another site's action: %v", err)
	}
	a3 := must(db.SaveAction(ctx, "s", Action{Name: "three", Steps: []ActionStep{{Event: "z"}}}))
	if a3.ID <= c2.ID {
		t.Fatalf("id %d reused after reopening (last %d)", a3.ID, c2.ID)
	}
}

func TestCohorts(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	db := openTest(t, ":memory:")
	defer db.Close()
	// to is 2026-03-10 00:00 in New York; 3 days back is 03-07 00:00 EST.
	to := time.Date(2026, 3, 10, 0, 0, 0, 0, ny)
	start := time.Date(2026, 3, 7, 0, 0, 0, 0, ny)
	mustAppend(t, db,
		at("purchase", "in-first", start),
		ev("s", "purchase", "out-before", start.UnixMilli()-1),
		at("purchase", "out-at-to", to),
		ev("s", "purchase", "in-last", to.UnixMilli()-1),
		at("$pageview", "in-first", start.AddDate(0, 0, -10)),
		at("$pageview", "out-before", start.AddDate(0, 0, -10)),
		at("$pageview", "anon", start.AddDate(0, 0, -10), "$set", `{"plan":"pro"}`),
		at("purchase", "anon", start.AddDate(0, 0, -20)),
		at("$identify", "user", start.AddDate(0, 0, -9), "$anon_distinct_id", "anon", "$set", `{"email":"u@example.com"}`),
		at("$pageview", "free", start.AddDate(0, 0, -10), "$set", `{"plan":"free"}`),
	)
	buyers := must(db.SaveCohort(ctx, "s", Cohort{Name: "buyers", Kind: CohortBehavioral, Event: "purchase", Days: 3}))
	q := Query{Site: "s", From: start.AddDate(0, 0, -30), To: to, TZ: ny}
	members := func(c Cohort, q Query) []string {
		ps, n := must2(db.CohortPersons(ctx, q, c.ID, 0))
		if n != len(ps) {
			t.Errorf("count %d for %d persons", n, len(ps))
		}
		var out []string
		for _, p := range ps {
			out = append(out, p.DistinctIDs[0])
		}
		return out
	}
	same(t, "buyers", members(buyers, q), []string{"in-last", "in-first"})
	// The window follows to: ten days earlier only anon bought.
	same(t, "buyers earlier", members(buyers, Query{Site: "s", From: q.From, To: start.AddDate(0, 0, -17), TZ: ny}), []string{"anon"})
	// A cohort restricts reports to its persons' events, all of them.
	st := must(db.Stats(ctx, Query{Site: "s", From: q.From, To: q.To, TZ: ny, Cohort: buyers.ID}))
	if st.Visitors != 2 || st.Pageviews != 1 {
		t.Errorf("stats of buyers: %+v", st)
	}

	for _, c := range []struct {
		op, value string
		want      []string
	}{
		{"==", "pro", []string{"anon"}}, // merged: user's ids, anon's properties
		{"!=", "pro", []string{"out-at-to", "in-last", "free", "out-before", "in-first"}}, // newest first
		{"~", "r", []string{"free", "anon"}},
		{"!~", "r", []string{"out-at-to", "in-last", "out-before", "in-first"}},
		{"==", "", []string{"out-at-to", "in-last", "out-before", "in-first"}},
	} {
		co := must(db.SaveCohort(ctx, "s", Cohort{Name: "plan", Kind: CohortProperty, Property: "plan", Op: Op(c.op), Value: c.value}))
		same(t, "plan"+c.op+c.value, members(co, q), c.want)
	}
	email := must(db.SaveCohort(ctx, "s", Cohort{Name: "email", Kind: CohortProperty, Property: "email", Op: OpContains, Value: "@example"}))
	ps, _ := must2(db.CohortPersons(ctx, q, email.ID, 0))
	if len(ps) != 1 || fmt.Sprint(ps[0].DistinctIDs) != "[anon user]" {
		t.Errorf("email cohort: %+v", ps)
	}

	if err := db.DeleteCohort(ctx, "s", buyers.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Stats(ctx, Query{Site: "s", From: q.From, To: q.To, Cohort: buyers.ID}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("deleted cohort: %v", err)
	}
	if _, _, err := db.CohortPersons(ctx, q, buyers.ID, 0); err != ErrNotFound {
		t.Errorf("deleted cohort's persons: %v", err)
	}
	for _, bad := range []Cohort{
		{Kind: CohortProperty, Property: "p"},
		{Name: "x"},
		{Name: "x", Kind: CohortBehavioral, Days: 3},
		{Name: "x", Kind: CohortBehavioral, Event: "e"},
		{Name: "x", Kind: CohortBehavioral, Event: "action:12345", Days: 1},
		{Name: "x", Kind: CohortProperty},
		{Name: "x", Kind: CohortProperty, Property: "p", Op: "<"},
	} {
		if _, err := db.SaveCohort(ctx, "s", bad); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%+v saved: %v", bad, err)
		}
	}
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}
