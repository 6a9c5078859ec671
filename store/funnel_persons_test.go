package store

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// refFunnelReach is SPEC §4's funnel definition read literally, per
// person: the largest k such that some step-1 event e1 in range starts a
// chain e1 < e2 < … < ek (strictly later times), each ei an event of step
// i in range, ek at most window after e1. Every chain is tried.
func refFunnelReach(r *ref, evs []*Event, steps []string, window int64) int {
	best := 0
	var walk func(k int, prev, t0 int64) int
	walk = func(k int, prev, t0 int64) int {
		if k == len(steps) {
			return k
		}
		got := k
		for _, e := range evs {
			if e.Time > prev && e.Time <= t0+window && r.is(e, steps[k]) {
				got = max(got, walk(k+1, e.Time, t0))
				if got == len(steps) {
					break
				}
			}
		}
		return got
	}
	for _, e0 := range evs {
		if r.is(e0, steps[0]) {
			best = max(best, walk(1, e0.Time, e0.Time))
		}
	}
	return best
}

// TestFunnelPersonsMatchReference checks the persons behind each funnel
// step (those who reached it, those who dropped off after it) against the
// reference over random queries, steps and windows.
func TestFunnelPersonsMatchReference(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	db, err := Open(filepath.Join(t.TempDir(), "fp.db"), Options{BlockEvents: 256, CompactAfter: 1000, CompactEvery: time.Hour, OnError: func(err error) { t.Error(err) }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rf := newRef()
	seen := map[string]bool{}
	var batch []*Event
	flush := func() {
		mustAppend(t, db, batch...)
		rf.add(seen, batch...)
		batch = nil
	}
	generate(genConfig{Seed: 11, Start: start, Days: 6, Persons: 120, Events: 2500, Tick: time.Minute}, func(e *Event) {
		batch = append(batch, e)
		if len(batch) >= 50 {
			flush()
		}
	})
	flush()
	a := must(db.SaveAction(ctx, "s", Action{Name: "pricing", Steps: []ActionStep{{Event: "$pageview", URLContains: "pricing"}}}))
	rf.actions[fmt.Sprint("action:", a.ID)] = func(e *Event) bool {
		return e.Name == "$pageview" && strings.Contains(e.Props.Str("$current_url"), "pricing")
	}

	rnd := rand.New(rand.NewPCG(5, 6))
	pick := func(xs ...string) string { return xs[rnd.IntN(len(xs))] }
	events := []string{"$pageview", "$autocapture", "$pageleave", "purchase", fmt.Sprint("action:", a.ID)}
	nonEmpty := 0
	for round := 0; round < 40 && !t.Failed(); round++ {
		from := start.Add(time.Duration(rnd.IntN(4*24)) * time.Hour)
		q := Query{Site: "s", From: from, To: from.Add(time.Duration(12+rnd.IntN(4*24)) * time.Hour)}
		if rnd.IntN(3) == 0 {
			f, _ := ParseFilter(pick("$browser==Chrome", "$pathname!=/blog", "$device_type==Mobile"))
			q.Filters = []Filter{f}
		}
		fq := FunnelQuery{Window: time.Duration(1+rnd.IntN(2*24*60)) * time.Minute}
		for n := 2 + rnd.IntN(3); n > 0; n-- {
			fq.Steps = append(fq.Steps, pick(events...))
		}
		// The reference: each person's reach, over the events in range.
		byPerson := map[string][]*Event{}
		for _, e := range rf.selected(q) {
			byPerson[rf.person(e)] = append(byPerson[rf.person(e)], e)
		}
		reach := map[string]int{}
		for p, evs := range byPerson {
			reach[p] = refFunnelReach(rf, evs, fq.Steps, fq.Window.Milliseconds())
		}
		counts := must(db.Funnel(ctx, q, fq))
		for step := 1; step <= len(fq.Steps); step++ {
			for _, dropped := range []bool{false, true} {
				if dropped && step == len(fq.Steps) {
					continue
				}
				var want []string
				for p, k := range reach {
					if dropped && k == step || !dropped && k >= step {
						want = append(want, p)
					}
				}
				sort.Strings(want)
				got, total, err := db.FunnelPersons(ctx, q, FunnelPersonsQuery{FunnelQuery: fq, Step: step, Dropped: dropped, Limit: 1000})
				if err != nil {
					t.Fatal(err)
				}
				var gotIDs []string
				for _, p := range got {
					gotIDs = append(gotIDs, rf.find(p.DistinctIDs[0]))
				}
				sort.Strings(gotIDs)
				name := fmt.Sprintf("round %d %v steps %v window %v step %d dropped %v", round, q.Filters, fq.Steps, fq.Window, step, dropped)
				same(t, name, gotIDs, want)
				if total != len(want) {
					t.Errorf("%s: total %d, want %d", name, total, len(want))
				}
				if !dropped && total != counts[step-1].Count {
					t.Errorf("%s: %d persons, the funnel counts %d", name, total, counts[step-1].Count)
				}
				if len(want) > 0 {
					nonEmpty++
				}
			}
		}
	}
	if nonEmpty < 40 {
		t.Fatalf("only %d non-empty answers: the data does not exercise the funnel", nonEmpty)
	}
	// Paging: a limit keeps the first persons of the order, total stays.
	fq := FunnelPersonsQuery{FunnelQuery: FunnelQuery{Steps: []string{"$pageview", "$autocapture"}}, Step: 1, Limit: 3}
	q := Query{Site: "s", From: start, To: start.AddDate(0, 0, 7)}
	got, total := must2(db.FunnelPersons(ctx, q, fq))
	if len(got) != 3 || total <= 3 {
		t.Fatalf("limit 3: %d persons of %d", len(got), total)
	}
	for i := 1; i < len(got); i++ {
		if got[i].CreatedAt > got[i-1].CreatedAt {
			t.Errorf("persons not most recently created first: %d then %d", got[i-1].CreatedAt, got[i].CreatedAt)
		}
	}
	for _, bad := range []FunnelPersonsQuery{
		{FunnelQuery: FunnelQuery{Steps: []string{"$pageview", "x"}}, Step: 0},
		{FunnelQuery: FunnelQuery{Steps: []string{"$pageview", "x"}}, Step: 3},
		{FunnelQuery: FunnelQuery{Steps: []string{"$pageview", "x"}}, Step: 2, Dropped: true},
	} {
		if _, _, err := db.FunnelPersons(ctx, q, bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// BenchmarkFunnelPersons lists the persons who dropped off after step 2
// of BenchmarkFunnel's funnel over the 1M-event site (compare the two).
func BenchmarkFunnelPersons(b *testing.B) {
	benchReport(b, func(db *DB) ([]Person, error) {
		ps, _, err := db.FunnelPersons(ctx, benchQuery, FunnelPersonsQuery{
			FunnelQuery: FunnelQuery{Steps: []string{"$pageview", "$autocapture", "purchase"}}, Step: 2, Dropped: true, Limit: 100})
		return ps, err
	})
}
