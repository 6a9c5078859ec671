package store

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"
)

// TestFilteredSteps: a step or series `E|<filter>` (SPEC §4) is E's events
// where the filter passes — in trends, funnels and breakdowns, for plain
// events and actions alike — checked against the reference with the same
// predicate written out.
func TestFilteredSteps(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	db, rf := refDB(t, genConfig{Seed: 5, Start: start, Days: 8, Persons: 150, Events: 4000, Tick: time.Minute}, 4000, nil)
	a := must(db.SaveAction(ctx, "s", Action{Name: "pageviews", Steps: []ActionStep{{Event: "$pageview"}}}))
	act := fmt.Sprint("action:", a.ID)
	rf.actions[act] = func(e *Event) bool { return e.Name == "$pageview" }
	for _, name := range []string{"$pageview|$pathname==/pricing", "$pageview|$pathname~docs", act + "|$pathname!=/", "purchase|plan==pro", "$pageview|$browser==Nope"} {
		base, fs, _ := cutPipe(name)
		f, _ := ParseFilter(fs)
		rf.actions[name] = func(e *Event) bool { return rf.is(e, base) && refPass(f, refProp(e, f.Prop)) }
	}
	q := Query{Site: "s", From: start, To: start.Add(9 * 24 * time.Hour)}
	cmp := func(what string, got, want any) {
		t.Helper()
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if string(g) != string(w) {
			t.Errorf("%s:\n got %s\nwant %s", what, g, w)
		}
	}
	tq := TrendsQuery{Events: []string{"$pageview|$pathname==/pricing", act + "|$pathname!=/", "purchase|plan==pro", "$pageview|$browser==Nope"}, Interval: "day", Math: MathTotal}
	got, err := db.Trends(ctx, q, tq)
	if err != nil {
		t.Fatal(err)
	}
	cmp("trends", got, rf.trends(q, tq))
	if got.Series[0].Event != "$pageview|$pathname==/pricing" {
		t.Errorf("series label %q", got.Series[0].Event)
	}
	nonzero := 0.0
	for _, v := range got.Series[0].Data {
		nonzero += v
	}
	if nonzero == 0 {
		t.Fatal("no pricing pageviews: the data does not test the filter")
	}
	fq := FunnelQuery{Steps: []string{"$pageview|$pathname~docs", "$pageview|$pathname==/pricing", "purchase|plan==pro"}, Window: 7 * 24 * time.Hour}
	steps, err := db.Funnel(ctx, q, fq)
	if err != nil {
		t.Fatal(err)
	}
	cmp("funnel", steps, rf.funnel(q, fq))
	bq := BreakdownQuery{Property: "$browser", Event: "$pageview|$pathname~docs"}
	rows, err := db.Breakdown(ctx, q, bq)
	if err != nil {
		t.Fatal(err)
	}
	cmp("breakdown", rows, rf.breakdown(q, bq))
	if _, err := db.Trends(ctx, q, TrendsQuery{Events: []string{"$pageview|nonsense"}}); err == nil {
		t.Error("a step with a broken filter was accepted")
	}
}

func cutPipe(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '|' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// TestTrendsMath: math=sum|avg|min|max aggregates math_property's numeric
// values per interval (events without a number left out), with and
// without a breakdown, as a direct computation over the events gives.
func TestTrendsMath(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	db := openMem(t)
	var evs []*Event
	generate(genConfig{Seed: 9, Start: start, Days: 6, Persons: 200, Events: 8000, Tick: time.Minute}, func(e *Event) {
		if e.Name == "purchase" && len(evs)%5 == 0 {
			e.Props.Set("amount", StringValue("n/a")) // not a number: left out
		}
		evs = append(evs, e)
	})
	mustAppend(t, db, evs...)
	q := Query{Site: "s", From: start, To: start.Add(7 * 24 * time.Hour)}
	for _, m := range []string{MathSum, MathAvg, MathMin, MathMax} {
		for _, bd := range []string{"", "plan"} {
			got, err := db.Trends(ctx, q, TrendsQuery{Events: []string{"purchase"}, Interval: "day", Math: m, MathProperty: "amount", Breakdown: bd})
			if err != nil {
				t.Fatal(err)
			}
			type acc struct {
				sum, min, max float64
				n             int
			}
			want := map[string]map[string]*acc{}
			for _, e := range evs {
				x, err := strconv.ParseFloat(e.Props.Str("amount"), 64)
				if e.Name != "purchase" || err != nil || e.Time < q.From.UnixMilli() || e.Time >= q.To.UnixMilli() {
					continue
				}
				v := ""
				if bd != "" {
					if v = e.Props.Str(bd); v == "" {
						continue
					}
				}
				day := time.UnixMilli(e.Time).UTC().Format("2006-01-02")
				if want[v] == nil {
					want[v] = map[string]*acc{}
				}
				a := want[v][day]
				if a == nil {
					a = &acc{min: x, max: x}
					want[v][day] = a
				}
				a.sum += x
				a.n++
				a.min, a.max = min(a.min, x), max(a.max, x)
			}
			if len(got.Series) != len(want) {
				t.Fatalf("%s by %q: %d series, want %d", m, bd, len(got.Series), len(want))
			}
			checked := 0
			for _, s := range got.Series {
				v := ""
				if s.BreakdownValue != nil {
					v = *s.BreakdownValue
				}
				for i, label := range got.Labels {
					a := want[v][label]
					exp := 0.0
					if a != nil {
						checked++
						exp = map[string]float64{MathSum: a.sum, MathAvg: a.sum / float64(a.n), MathMin: a.min, MathMax: a.max}[m]
					}
					if math.Abs(s.Data[i]-exp) > 1e-6 {
						t.Errorf("%s by %q, %q on %s: %v, want %v", m, bd, v, label, s.Data[i], exp)
					}
				}
			}
			if checked < 4 {
				t.Fatalf("%s by %q: only %d intervals with purchases", m, bd, checked)
			}
		}
	}
	if _, err := db.Trends(ctx, q, TrendsQuery{Math: MathSum}); err == nil {
		t.Error("math=sum without math_property was accepted")
	}
}
