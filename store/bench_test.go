package store

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The benchmark site: at least 1,000,000 events over 30 days from about 30,000
// persons (see generate), loaded once per `go test -bench` run.
//
//	go test ./store -run '^$' -bench . -benchtime 20x
//
// With FP_BENCH_HISTORY=1 the store is a file whose whole chunks are moved
// into history files before the benchmarks run, so they read those.
var (
	benchOnce  sync.Once
	benchDB    *DB
	benchStart = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	benchQuery = Query{Site: "s", From: benchStart, To: benchStart.AddDate(0, 0, 30)}
)

func loadBench(b *testing.B) *DB {
	benchOnce.Do(func() {
		path, opts := ":memory:", Options{}
		if os.Getenv("FP_BENCH_HISTORY") != "" {
			dir, err := os.MkdirTemp("", "fp-bench-")
			if err != nil {
				b.Fatal(err)
			}
			path, opts = filepath.Join(dir, "bench.db"), Options{HistoryAfter: -1, CompactEvery: time.Hour}
		}
		db, err := Open(path, opts)
		if err != nil {
			b.Fatal(err)
		}
		began := time.Now()
		batch := make([]*Event, 0, 1000)
		n := 0
		generate(genConfig{Seed: 1, Start: benchStart, Days: 30, Persons: 30000, Events: 1120000}, func(e *Event) {
			if batch = append(batch, e); len(batch) == cap(batch) {
				if _, err := db.Append(ctx, batch); err != nil {
					b.Fatal(err)
				}
				n += len(batch)
				batch = batch[:0]
			}
		})
		if _, err := db.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
		n += len(batch)
		if n < 1000000 {
			b.Fatalf("the generator gave %d events, want at least 1,000,000", n)
		}
		if err := db.Compact(); err != nil {
			b.Fatal(err)
		}
		if err := db.MoveHistory(); err != nil {
			b.Fatal(err)
		}
		t := db.table("s")
		t.mu.RLock()
		roots := t.people.roots()
		persons := 0
		for d, r := range roots {
			if d > 0 && int(r) == d {
				persons++
			}
		}
		b.Logf("loaded %d events (%d stored, %d distinct ids, %d persons) in %v; table %d MiB",
			n, db.Count("s"), t.dids.size()-1, persons, time.Since(began).Round(time.Millisecond), t.memBytes()>>20)
		t.mu.RUnlock()
		runtime.GC()
		benchDB = db
	})
	if benchDB == nil {
		b.Fatal("loading failed")
	}
	return benchDB
}

// benchReport times one report over the whole range; the first call,
// outside the timing, builds the columns it needs.
func benchReport[T any](b *testing.B, run func(db *DB) (T, error)) {
	db := loadBench(b)
	if _, err := run(db); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := run(db); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStats(b *testing.B) {
	benchReport(b, func(db *DB) (Stats, error) { return db.Stats(ctx, benchQuery) })
}

func BenchmarkStatsFiltered(b *testing.B) {
	q := withFilters(benchQuery, "$browser==Chrome", "$pathname!=/")
	benchReport(b, func(db *DB) (Stats, error) { return db.Stats(ctx, q) })
}

func BenchmarkBreakdown(b *testing.B) {
	benchReport(b, func(db *DB) ([]BreakdownRow, error) {
		return db.Breakdown(ctx, benchQuery, BreakdownQuery{Property: "$pathname"})
	})
}

func BenchmarkBreakdownPageviews(b *testing.B) {
	benchReport(b, func(db *DB) ([]BreakdownRow, error) {
		return db.Breakdown(ctx, benchQuery, BreakdownQuery{Property: "$referring_domain", Event: "$pageview"})
	})
}

func BenchmarkTrends(b *testing.B) {
	benchReport(b, func(db *DB) (Trends, error) { return db.Trends(ctx, benchQuery, TrendsQuery{}) })
}

func BenchmarkTrendsUniqueHourly(b *testing.B) {
	benchReport(b, func(db *DB) (Trends, error) {
		return db.Trends(ctx, benchQuery, TrendsQuery{Events: []string{"$pageview", "$autocapture"}, Interval: IntervalHour, Math: MathUnique})
	})
}

func BenchmarkTrendsBreakdown(b *testing.B) {
	benchReport(b, func(db *DB) (Trends, error) {
		return db.Trends(ctx, benchQuery, TrendsQuery{Math: MathDAU, Breakdown: "$browser"})
	})
}

func BenchmarkFunnel(b *testing.B) {
	benchReport(b, func(db *DB) ([]FunnelStep, error) {
		return db.Funnel(ctx, benchQuery, FunnelQuery{Steps: []string{"$pageview", "$autocapture", "purchase"}})
	})
}

func BenchmarkFunnelAction(b *testing.B) {
	db := loadBench(b)
	a, err := db.SaveAction(ctx, "s", Action{Name: "signup", Steps: []ActionStep{{Event: "$autocapture", Selector: "#signup"}, {Event: "$pageview", URLContains: "/signup"}}})
	if err != nil {
		b.Fatal(err)
	}
	steps := []string{"$pageview", "action:" + strconv.FormatInt(a.ID, 10), "purchase"}
	benchReport(b, func(db *DB) ([]FunnelStep, error) {
		return db.Funnel(ctx, benchQuery, FunnelQuery{Steps: steps})
	})
}

func BenchmarkRetention(b *testing.B) {
	q := benchQuery
	q.To = q.From.AddDate(0, 0, 28)
	benchReport(b, func(db *DB) ([]RetentionCohort, error) {
		return db.Retention(ctx, q, RetentionQuery{Period: PeriodWeek, Periods: 4})
	})
}

func BenchmarkRetentionDaily(b *testing.B) {
	benchReport(b, func(db *DB) ([]RetentionCohort, error) {
		return db.Retention(ctx, benchQuery, RetentionQuery{Period: PeriodDay, Periods: 30})
	})
}

func BenchmarkPaths(b *testing.B) {
	benchReport(b, func(db *DB) ([]PathLink, error) { return db.Paths(ctx, benchQuery, PathsQuery{}) })
}

func BenchmarkHeatmap(b *testing.B) {
	benchReport(b, func(db *DB) ([]HeatmapPoint, error) {
		return db.Heatmap(ctx, benchQuery, HeatmapQuery{URL: "/"})
	})
}

func BenchmarkHeatmapScroll(b *testing.B) {
	benchReport(b, func(db *DB) ([]HeatmapPoint, error) {
		return db.Heatmap(ctx, benchQuery, HeatmapQuery{URL: "/", Type: HeatmapScroll})
	})
}

func BenchmarkLiveCount(b *testing.B) {
	benchReport(b, func(db *DB) (int, error) { return db.LiveCount(ctx, "s") })
}

func BenchmarkCohortStats(b *testing.B) {
	db := loadBench(b)
	c, err := db.SaveCohort(ctx, "s", Cohort{Name: "buyers", Kind: CohortBehavioral, Event: "purchase", Days: 30})
	if err != nil {
		b.Fatal(err)
	}
	q := benchQuery
	q.Cohort = c.ID
	benchReport(b, func(db *DB) (Stats, error) { return db.Stats(ctx, q) })
}

func BenchmarkExport(b *testing.B) {
	benchReport(b, func(db *DB) (int, error) {
		n := 0
		err := db.Export(ctx, benchQuery, func(*Event, string) error { n++; return nil })
		return n, err
	})
}

// Session scope (SPEC §4): a filter on a session property keeps whole
// sessions; one on an event property keeps the sessions with a passing
// event, and stats are computed over those sessions.

func BenchmarkStatsSessionScoped(b *testing.B) {
	q := withFilters(benchQuery, "$entry_referring_domain==news.ycombinator.com")
	benchReport(b, func(db *DB) (Stats, error) { return db.Stats(ctx, q) })
}

func BenchmarkStatsEventScoped(b *testing.B) {
	q := withFilters(benchQuery, "$referring_domain==news.ycombinator.com", "$pathname==/pricing")
	benchReport(b, func(db *DB) (Stats, error) { return db.Stats(ctx, q) })
}

func BenchmarkBreakdownEntryPages(b *testing.B) {
	benchReport(b, func(db *DB) ([]BreakdownRow, error) {
		return db.Breakdown(ctx, benchQuery, BreakdownQuery{Property: "$entry_pathname", Event: "$pageview"})
	})
}

func BenchmarkBreakdownSessionScoped(b *testing.B) {
	q := withFilters(benchQuery, "$entry_pathname==/pricing")
	benchReport(b, func(db *DB) ([]BreakdownRow, error) {
		return db.Breakdown(ctx, q, BreakdownQuery{Property: "$channel_type", Event: "$pageview"})
	})
}

func BenchmarkGoalStats(b *testing.B) {
	goals := []Goal{
		{ID: 1, Name: "Signed up", Path: "/signup"},
		{ID: 2, Name: "Docs", Path: "/docs/*"},
		{ID: 3, Name: "Purchase", Event: "purchase"},
	}
	benchReport(b, func(db *DB) ([]GoalResult, error) { return db.GoalStats(ctx, benchQuery, goals) })
}

func BenchmarkGoalStatsSessionScoped(b *testing.B) {
	goals := []Goal{{ID: 1, Name: "Signed up", Path: "/signup"}, {ID: 3, Name: "Purchase", Event: "purchase"}}
	q := withFilters(benchQuery, "$entry_referring_domain==google.com")
	benchReport(b, func(db *DB) ([]GoalResult, error) { return db.GoalStats(ctx, q, goals) })
}
