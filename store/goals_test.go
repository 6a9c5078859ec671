package store

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// refGoals computes goal stats from SPEC §4's text: visitors are the
// persons with any event passing the query; a goal's events are the
// passing events that are its event, its action's, or pageviews of a
// matching path; conversion rate = goal visitors / visitors; revenue the
// sum of the goal events' revenue (else $revenue).
func (r *ref) goals(q Query, goals []Goal) []GoalResult {
	sel := r.selected(q)
	visitors := map[string]bool{}
	for _, e := range sel {
		visitors[r.person(e)] = true
	}
	out := make([]GoalResult, len(goals))
	for i, g := range goals {
		res := GoalResult{Goal: g.Name, GoalID: g.ID}
		persons := map[string]bool{}
		cur := map[string]int{}
		var pathRE *regexp.Regexp
		if g.Path != "" {
			pathRE = regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(g.Path), `\*`, ".*") + "$")
		}
		for _, e := range sel {
			switch {
			case g.Event != "" && e.Name != g.Event:
				continue
			case g.Action != 0 && !r.is(e, fmt.Sprint("action:", g.Action)):
				continue
			case pathRE != nil && (e.Name != "$pageview" || !pathRE.MatchString(e.Props.Str("$pathname"))):
				continue
			}
			res.Events++
			persons[r.person(e)] = true
			rev := e.Props.Str("revenue")
			if rev == "" {
				rev = e.Props.Str("$revenue")
			}
			if v, err := strconv.ParseFloat(rev, 64); err == nil {
				res.Revenue += v
			}
			if c := e.Props.Str("currency"); c != "" {
				cur[strings.ToUpper(c)]++
			}
		}
		res.Visitors = len(persons)
		if len(visitors) > 0 {
			res.ConversionRate = float64(res.Visitors) / float64(len(visitors))
		}
		res.Revenue = math.Round(res.Revenue*1e6) / 1e6
		for c, n := range cur {
			if n > cur[res.Currency] || n == cur[res.Currency] && c < res.Currency {
				res.Currency = c
			}
		}
		out[i] = res
	}
	return out
}

// refDB stores generated events in a database file and in the reference,
// in batches of batch events; edit (when set) may change each event first.
func refDB(t *testing.T, cfg genConfig, batch int, edit func(*Event)) (*DB, *ref) {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "ref.db"), Options{BlockEvents: 256, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rf := newRef()
	seen := map[string]bool{}
	var evs []*Event
	flush := func() {
		mustAppend(t, db, evs...)
		rf.add(seen, evs...)
		evs = nil
	}
	generate(cfg, func(e *Event) {
		if edit != nil {
			edit(e)
		}
		if evs = append(evs, e); len(evs) == batch {
			flush()
		}
	})
	flush()
	return db, rf
}

// TestGoalsMatchReference: goal conversions and revenue over random data
// with merges, under random ranges, filters and cohorts, as the reference
// computes them.
func TestGoalsMatchReference(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	n := 0
	db, rf := refDB(t, genConfig{Seed: 11, Start: start, Days: 10, Persons: 200, Events: 5000, Tick: time.Minute}, 41, func(e *Event) {
		if e.Name != "purchase" {
			return
		}
		n++
		amount := e.Props.Str("amount")
		if n%3 == 0 {
			e.Props.Set("$revenue", StringValue(amount))
		} else {
			e.Props.Set("revenue", StringValue(amount+".25"))
		}
		e.Props.Set("currency", StringValue([]string{"usd", "EUR", "USD"}[n%3]))
	})
	a := must(db.SaveAction(ctx, "s", Action{Name: "pricing", Steps: []ActionStep{{Event: "$pageview", URLContains: "pricing"}, {Event: "purchase"}}}))
	rf.actions[fmt.Sprint("action:", a.ID)] = func(e *Event) bool {
		return e.Name == "$pageview" && strings.Contains(e.Props.Str("$current_url"), "pricing") || e.Name == "purchase"
	}
	goals := []Goal{
		{ID: 1, Name: "Purchase", Event: "purchase"},
		{ID: 2, Name: "Pricing", Action: a.ID},
		{ID: 3, Name: "Docs", Path: "/docs*"},
		{ID: 4, Name: "Home", Path: "/"},
		{ID: 5, Name: "Never", Event: "never"},
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	filters := []string{"$pathname~docs", "$browser==Chrome", "$device_type==Mobile", "plan==pro", "event!=$pageleave"}
	checked := 0
	for i := 0; i < 60; i++ {
		from := start.Add(time.Duration(rnd.IntN(10*24)) * time.Hour)
		q := Query{Site: "s", From: from, To: from.Add(time.Duration(1+rnd.IntN(6*24)) * time.Hour)}
		if rnd.IntN(2) == 0 {
			f, _ := ParseFilter(filters[rnd.IntN(len(filters))])
			q.Filters = append(q.Filters, f)
		}
		got, err := db.GoalStats(ctx, q, goals)
		if err != nil {
			t.Fatal(err)
		}
		want := rf.goals(q, goals)
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Fatalf("query %d %v..%v %v:\n got %+v\nwant %+v", i, q.From, q.To, q.Filters, got, want)
		}
		if want[0].Events > 0 && want[0].Revenue > 0 {
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d queries had purchases with revenue; the data does not test revenue", checked)
	}
}
