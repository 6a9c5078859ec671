package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkHistoryScale stores FP_HIST_EVENTS events (default 2,000,000)
// shaped like posthog-js traffic (~1 KB of JSON each: the generator's
// sessions, persons and merges, plus the properties posthog-js adds) into a
// file store under FP_HIST_DIR (kept, and reused when it is there already),
// then measures, in a fresh process: restart to serving, resident memory
// (RssAnon), and the §4 query times over 30 days and over one day. Run by
// bench/history.sh; not part of the test suite.
func BenchmarkHistoryScale(b *testing.B) {
	n := 2_000_000
	if v, err := strconv.Atoi(os.Getenv("FP_HIST_EVENTS")); err == nil {
		n = v
	}
	dir := os.Getenv("FP_HIST_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("scale-%d.db", n))
	if _, err := os.Stat(path); err != nil {
		scaleGenerate(b, path, n)
	}
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHistoryScaleChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "FP_HIST_MEASURE="+path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if k, v, ok := strings.Cut(line, "METRIC "); ok && k == "" {
				f := strings.Fields(v)
				if len(f) == 2 {
					x, _ := strconv.ParseFloat(f[1], 64)
					b.ReportMetric(x, f[0])
				}
			}
			if strings.HasPrefix(line, "history_bench_test") {
				b.Log(line)
			}
		}
	}
	size := func(p string) int64 {
		var t int64
		filepath.Walk(p, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				t += fi.Size()
			}
			return nil
		})
		return t
	}
	logBytes, histBytes := size(path), size(HistoryDir(path))
	b.ReportMetric(float64(logBytes)/1e6, "log-MB")
	b.ReportMetric(float64(histBytes)/1e6, "history-MB")
	b.ReportMetric(float64(logBytes+histBytes)/float64(n), "disk-B/event")
}

// posthogExtras are the properties posthog-js adds to every event that the
// generator leaves out.
func posthogExtras(i int, e *Event) {
	e.Props = append(e.Props,
		Prop{"$lib", StringValue("web")}, Prop{"$lib_version", StringValue("1.449.2")},
		Prop{"$insert_id", StringValue(fmt.Sprintf("%016x", uint64(i)*0x9E3779B97F4A7C15))},
		Prop{"$time", NumberValue(float64(e.Time) / 1000)},
		Prop{"$device_id", StringValue("0191d0c8-" + e.DistinctID)},
		Prop{"$window_id", StringValue(fmt.Sprintf("0191d0c8-%08x", i/40))},
		Prop{"$pageview_id", StringValue(fmt.Sprintf("0191d0c9-%08x", i/6))},
		Prop{"$screen_height", NumberValue(1080)}, Prop{"$screen_width", NumberValue(1920)},
		Prop{"$viewport_height", NumberValue(967)},
		Prop{"$raw_user_agent", StringValue("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")},
		Prop{"$browser_version", NumberValue(131)}, Prop{"$os_version", StringValue("10.15.7")},
		Prop{"$timezone", StringValue("Europe/Berlin")}, Prop{"$is_identified", BoolValue(strings.Contains(e.DistinctID, "@"))},
		Prop{"$configured_session_timeout_ms", NumberValue(1800000)},
		Prop{"$referrer", StringValue("https://www.google.com/")}, Prop{"$initial_referrer", StringValue("$direct")},
		Prop{"token", StringValue("phc_8e2Vn4Q3bZxExampleProjectKey00000")},
		Prop{"$process_person_profile", BoolValue(true)},
	)
}

func scaleGenerate(b *testing.B, path string, n int) {
	db, err := Open(path, Options{OnError: func(err error) { b.Error(err) }})
	if err != nil {
		b.Fatal(err)
	}
	batches := make(chan []*Event, 4)
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range batches {
				if _, err := db.Append(ctx, batch); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	start := time.Now()
	i := 0
	var batch []*Event
	generate(genConfig{Seed: 42, Start: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Days: 30, Persons: n / 40, Events: n, Tick: time.Second}, func(e *Event) {
		posthogExtras(i, e)
		i++
		batch = append(batch, e)
		if len(batch) == 1000 {
			batches <- batch
			batch = nil
		}
	})
	batches <- batch
	close(batches)
	wg.Wait()
	took := time.Since(start)
	b.ReportMetric(float64(i)/took.Seconds(), "ingest-events/s")
	b.Logf("stored %d events in %v (%.0f events/s)", i, took.Round(time.Millisecond), float64(i)/took.Seconds())
	if err := db.Compact(); err != nil {
		b.Fatal(err)
	}
	if err := db.MoveHistory(); err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
}

// TestHistoryScaleChild measures a stored file in a fresh process for
// BenchmarkHistoryScale.
func TestHistoryScaleChild(t *testing.T) {
	path := os.Getenv("FP_HIST_MEASURE")
	if path == "" {
		t.Skip("run by BenchmarkHistoryScale")
	}
	metric := func(name string, v float64) { fmt.Printf("METRIC %s %g\n", name, v) }
	// CPU time of the process, for figures that a loaded machine's wall
	// clock would blur.
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	startCPU := cpu()
	start := time.Now()
	db, err := Open(path, Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	metric("restart-s", time.Since(start).Seconds())
	metric("restart-cpu-s", (cpu() - startCPU).Seconds())
	metric("events", float64(db.Count("s")))
	rss := func() {
		b, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(b), "\n") {
			for _, k := range []string{"RssAnon:", "RssFile:"} {
				if strings.HasPrefix(l, k) {
					f := strings.Fields(l)
					kb, _ := strconv.ParseFloat(f[1], 64)
					metric(strings.TrimSuffix(k, ":")+"-MB", kb/1024)
				}
			}
		}
	}
	// The highest RssAnon while the queries run, sampled.
	rssAnon := func() float64 {
		b, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "RssAnon:") {
				kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
				return kb / 1024
			}
		}
		return 0
	}
	var peak float64
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, rssAnon())
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	end := time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)
	month := Query{Site: "s", From: end.AddDate(0, 0, -30), To: end}
	day := Query{Site: "s", From: end.AddDate(0, 0, -1), To: end}
	time1 := func(name string, f func() error) {
		best, bestCPU := time.Duration(1<<62), time.Duration(1<<62)
		for r := 0; r < 3; r++ { // the first run also reads the files in
			s, c := time.Now(), cpu()
			if err := f(); err != nil {
				t.Fatal(err)
			}
			best = min(best, time.Since(s))
			bestCPU = min(bestCPU, cpu()-c)
			if r == 0 {
				metric(name+"-cold-ms", float64(time.Since(s).Microseconds())/1000)
			}
		}
		metric(name+"-ms", float64(best.Microseconds())/1000)
		metric(name+"-cpu-ms", float64(bestCPU.Microseconds())/1000)
	}
	for _, x := range []struct {
		name string
		q    Query
	}{{"30d", month}, {"1d", day}} {
		q := x.q
		time1("stats-"+x.name, func() error { _, err := db.Stats(ctx, q); return err })
		time1("breakdown-"+x.name, func() error {
			_, err := db.Breakdown(ctx, q, BreakdownQuery{Property: "$pathname", Limit: 10})
			return err
		})
		time1("trends-"+x.name, func() error {
			_, err := db.Trends(ctx, q, TrendsQuery{Interval: IntervalDay, Math: MathUnique, Events: []string{"$pageview"}})
			return err
		})
	}
	time1("funnel-30d", func() error {
		_, err := db.Funnel(ctx, month, FunnelQuery{Steps: []string{"$pageview", "$autocapture", "purchase"}, Window: 24 * time.Hour})
		return err
	})
	time1("retention-30d", func() error {
		_, err := db.Retention(ctx, month, RetentionQuery{StartEvent: "$pageview", ReturnEvent: "$pageview", Period: PeriodDay, Periods: 14})
		return err
	})
	close(stop)
	<-stopped
	metric("RssAnon-peak-MB", peak)
	rss()
	// A breakdown by a property that is not a column yet builds its column
	// over every stored row on first use (outside the figures above, which
	// use the columns every site keeps).
	time1("breakdown-new-column-30d", func() error {
		_, err := db.Breakdown(ctx, month, BreakdownQuery{Property: "$os_version", Limit: 10})
		return err
	})
	metric("RssAnon-after-new-column-MB", rssAnon())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	metric("go-heap-inuse-MB", float64(ms.HeapInuse)/(1<<20))
	metric("go-heap-idle-unreleased-MB", float64(ms.HeapIdle-ms.HeapReleased)/(1<<20))
	metric("off-heap-MB", float64(offHeapBytes.Load())/(1<<20))
	// What the process keeps once the runtime has handed back the heap
	// the queries left (the compactor does this after an idle period).
	debug.FreeOSMemory()
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "RssAnon:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			metric("RssAnon-settled-MB", kb/1024)
		}
	}
	if f := os.Getenv("FP_HIST_HEAPPROF"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		pprof.WriteHeapProfile(out)
		out.Close()
	}
}
