package store

import (
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"
)

// TestParallelScansAnswerAsOne: on a site of several chunks, every report
// whose scan is split over workers gives the answer of a single worker,
// whatever the number of workers (more than the chunks too), with person
// sets as bits or as pairs, and with filters, cohorts and actions.
func TestParallelScansAnswerAsOne(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	db, err := Open(":memory:", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var batch []*Event
	n := 0
	generate(genConfig{Seed: 12, Start: start, Days: 40, Persons: 9000, Events: 5*chunkSize + 9000, Tick: time.Second}, func(e *Event) {
		batch = append(batch, e)
		if len(batch) == 1000 {
			must(db.Append(ctx, batch))
			n += len(batch)
			batch = batch[:0]
		}
	})
	must(db.Append(ctx, batch))
	n += len(batch)
	if tb := db.table("s"); tb.ts.numChunks() < 5 {
		t.Fatalf("%d events fill %d chunks, want 5 or more", n, tb.ts.numChunks())
	}
	action := must(db.SaveAction(ctx, "s", Action{Name: "signup", Steps: []ActionStep{
		{Event: "$autocapture", Selector: "#signup"}, {Event: "$pageview", URLContains: "/signup"}}}))
	actionID := "action:" + strconv.FormatInt(action.ID, 10)
	buyers := must(db.SaveCohort(ctx, "s", Cohort{Name: "buyers", Kind: CohortBehavioral, Event: "purchase", Days: 60}))

	all := Query{Site: "s", From: start, To: start.AddDate(0, 0, 40)}
	edges := Query{Site: "s", From: start.Add(27 * time.Hour), To: start.AddDate(0, 0, 33).Add(-5 * time.Hour)}
	queries := map[string]Query{
		"all":           all,
		"edges":         edges,
		"filtered":      withFilters(all, "$browser==Chrome", "$pathname!=/"),
		"event scoped":  withFilters(edges, "$referring_domain==news.ycombinator.com", "$pathname==/pricing"),
		"session scope": withFilters(all, "$entry_pathname==/pricing"),
		"cohort":        {Site: "s", From: all.From, To: all.To, Cohort: buyers.ID},
		"one day":       {Site: "s", From: start.AddDate(0, 0, 10), To: start.AddDate(0, 0, 11)},
		"long":          {Site: "s", From: start.AddDate(0, 0, -60), To: start.AddDate(0, 0, 50)},
	}
	answers := func() map[string]string {
		out := map[string]string{}
		put := func(name string, v any, err error) {
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = string(b)
		}
		for qn, q := range queries {
			st, err := db.Stats(ctx, q)
			if err == nil && st.JSShare != nil {
				out[qn+" js share"] = fmt.Sprint(*st.JSShare)
			}
			put(qn+" stats", st, err)
			for _, bq := range []BreakdownQuery{{Property: "$pathname"}, {Property: "$referring_domain", Event: "$pageview"},
				{Property: "$channel_type", Event: "$pageview"}, {Property: "$entry_pathname"}, {Property: "event", Event: actionID}} {
				v, err := db.Breakdown(ctx, q, bq)
				put(fmt.Sprintf("%s breakdown %+v", qn, bq), v, err)
			}
			for _, tq := range []TrendsQuery{{}, {Math: MathUnique}, {Events: []string{"$pageview", "$autocapture", actionID}, Interval: IntervalHour, Math: MathDAU},
				{Math: MathDAU, Breakdown: "$browser"}, {Breakdown: "$pathname", Interval: IntervalWeek},
				{Events: []string{"purchase"}, Math: MathSum, MathProperty: "amount"}, {Events: []string{"purchase"}, Math: MathAvg, MathProperty: "amount", Breakdown: "$browser"}} {
				v, err := db.Trends(ctx, q, tq)
				put(fmt.Sprintf("%s trends %+v", qn, tq), v, err)
			}
			for _, fq := range []FunnelQuery{{Steps: []string{"$pageview", "$autocapture", "purchase"}, Window: 24 * time.Hour},
				{Steps: []string{"$pageview", actionID, "$pageview", "purchase"}}, {Steps: []string{"purchase"}}} {
				v, err := db.Funnel(ctx, q, fq)
				put(fmt.Sprintf("%s funnel %+v", qn, fq), v, err)
			}
			for _, rq := range []RetentionQuery{{Periods: 14}, {Period: PeriodWeek, Periods: 5, ReturnEvent: "purchase"}, {StartEvent: actionID, Periods: 60}} {
				v, err := db.Retention(ctx, q, rq)
				put(fmt.Sprintf("%s retention %+v", qn, rq), v, err)
			}
		}
		return out
	}
	t.Logf("%d events stored", n)
	check := func(stage string) {
		t.Helper()
		defer scanWorkers.Store(0)
		scanWorkers.Store(1)
		began := time.Now()
		want := answers()
		t.Logf("%d answers in %v", len(want), time.Since(began))
		for _, w := range []int32{2, 7} {
			scanWorkers.Store(w)
			got := answers()
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s, %d workers, %s:\n got %s\nwant %s", stage, w, k, got[k], v)
				}
			}
		}
		// Person sets as (key, person) pairs, not bits; funnel parts of
		// 64 persons.
		was, wasPart := maxSetBits, maxPartBits
		maxSetBits, maxPartBits = 0, 6
		defer func() { maxSetBits, maxPartBits = was, wasPart }()
		scanWorkers.Store(3)
		got := answers()
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s, pairs and small parts, 3 workers, %s:\n got %s\nwant %s", stage, k, got[k], v)
			}
		}
	}
	check("in memory")
}

// TestHeapLimitFollowsLiveHeap: moving history (as the compactor does
// regularly) sets the soft memory limit to the live heap plus as much
// again, at least heapHeadroom more, and moves it as the live heap
// grows; a limit set by someone else is left alone.
func TestHeapLimitFollowsLiveHeap(t *testing.T) {
	was := debug.SetMemoryLimit(-1)
	defer func() {
		debug.SetMemoryLimit(was)
		heapLimitMu.Lock()
		heapLimit = 0
		heapLimitMu.Unlock()
	}()
	db, err := Open(":memory:", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	live := func() int64 {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		return int64(s[0].Value.Uint64())
	}
	check := func() int64 {
		t.Helper()
		runtime.GC()
		l := live()
		must(0, db.MoveHistory())
		got := debug.SetMemoryLimit(-1)
		if want := l + max(l, heapHeadroom); got < want-(8<<20) || got > want+(8<<20) {
			t.Fatalf("limit %d MiB for a live heap of %d MiB, want %d MiB", got>>20, l>>20, want>>20)
		}
		return got
	}
	debug.SetMemoryLimit(math.MaxInt64)
	first := check()
	// A live heap above the headroom: the limit is twice it.
	keep := make([][]byte, 0, 640)
	for range 640 {
		b := make([]byte, 1<<20)
		b[0] = 1
		keep = append(keep, b)
	}
	if second := check(); second < first+(600<<20) {
		t.Errorf("limit %d MiB after 640 MiB more live, was %d MiB", second>>20, first>>20)
	}
	runtime.KeepAlive(keep)
	// Someone else's limit stays.
	debug.SetMemoryLimit(3 << 30)
	must(0, db.MoveHistory())
	if got := debug.SetMemoryLimit(-1); got != 3<<30 {
		t.Errorf("limit %d after the operator set 3 GiB", got)
	}
}
