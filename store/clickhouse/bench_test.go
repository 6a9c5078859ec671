package clickhouse

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

// BenchmarkClickHouse measures, on a real two-shard cluster on loopback,
// the shipping rate (events/s from the local log's outbox into ClickHouse)
// and the §4 reports over 30 days, beside the embedded store's answer to
// the same query. Events: FIRSTPARTY_CH_BENCH_EVENTS (default 1,000,000;
// 10,000,000 needs about 10 GB of memory and a quarter of an hour).
//
//	go test ./store/clickhouse -run XXX -bench ClickHouse -benchtime 5x -timeout 2h
func BenchmarkClickHouse(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("FIRSTPARTY_CH_BENCH_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	// Events as posthog-js sends them (about 1 KB of JSON, some 30
	// properties) unless FIRSTPARTY_CH_BENCH_SMALL is set (4 properties).
	full := os.Getenv("FIRSTPARTY_CH_BENCH_SMALL") == ""
	c := chtest.Start(b)
	dir := b.TempDir()
	local, err := store.Open(filepath.Join(dir, "bench.db"), store.Options{CompactEvery: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer local.Close()
	opts := Options{URLs: []string{c.Shards[0].URL(), c.Shards[1].URL()}, Database: "bench", Cluster: chtest.ClusterName,
		Batch: 10000, Flush: 100 * time.Millisecond}
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	span := 30 * 24 * time.Hour
	rnd := rand.New(rand.NewPCG(1, 2))
	pages := []string{"/", "/pricing", "/docs", "/blog", "/signup", "/login", "/about", "/docs/start", "/docs/api", "/blog/launch"}
	browsers := []string{"Chrome", "Safari", "Firefox", "Edge"}
	names := []string{"$pageview", "$pageview", "$pageview", "$pageview", "$pageview", "$pageview", "$pageview", "$autocapture", "$pageleave", "purchase"}
	var appendTime, shipTime time.Duration
	const round = 200_000 // events appended with shipping off, then shipped
	for done := 0; done < n; {
		// Fill the outbox with a backend that cannot reach ClickHouse.
		dead, err := New(local, Options{URLs: []string{"http://127.0.0.1:1"}, Database: "bench", Flush: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		for end := min(n, done+round); done < end; {
			batch := make([]*store.Event, 0, 1000)
			for ; len(batch) < 1000 && done < end; done++ {
				p := rnd.IntN(50000)
				ts := start.Add(time.Duration(float64(span) * float64(done) / float64(n))) // (done*span overflows int64)
				ev := &store.Event{Site: "s", Name: names[rnd.IntN(len(names))], DistinctID: fmt.Sprint("u", p),
					UUID: fmt.Sprintf("0190cccc-0000-7000-8000-%012d", done), Time: ts.UnixMilli(),
					Props: store.Props{
						{Key: "$session_id", Val: store.StringValue(fmt.Sprint(p, "-", ts.YearDay()))},
						{Key: "$pathname", Val: store.StringValue(pages[rnd.IntN(len(pages))])},
						{Key: "$browser", Val: store.StringValue(browsers[p%len(browsers)])},
						{Key: "$current_url", Val: store.StringValue("https://example.com" + pages[rnd.IntN(len(pages))])},
					}}
				if full {
					ev.Props = append(ev.Props, realProps(rnd, p, ts)...)
				}
				batch = append(batch, ev)
			}
			if _, err := dead.Append(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
		appendTime += time.Since(t0)
		dead.Stop()
		t0 = time.Now()
		live, err := New(local, opts)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		err = live.Flush(ctx)
		cancel()
		shipTime += time.Since(t0)
		live.Stop()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d events: local commit + outbox %.0f events/s; shipping %.0f events/s", n, float64(n)/appendTime.Seconds(), float64(n)/shipTime.Seconds())
	b.Run("ship", func(b *testing.B) { // the figures above, as metrics
		b.ReportMetric(float64(n)/shipTime.Seconds(), "shipped-events/s")
		b.ReportMetric(float64(n)/appendTime.Seconds(), "committed-events/s")
	})
	ch, err := New(local, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer ch.Stop()
	ctx := context.Background()
	q := store.Query{Site: "s", From: start, To: start.Add(span)}
	day := store.Query{Site: "s", From: start.Add(10 * 24 * time.Hour), To: start.Add(11 * 24 * time.Hour)}
	reports := []struct {
		name string
		run  func(r store.Reports, q store.Query) error
	}{
		{"stats", func(r store.Reports, q store.Query) error { _, err := r.Stats(ctx, q); return err }},
		{"breakdown", func(r store.Reports, q store.Query) error {
			_, err := r.Breakdown(ctx, q, store.BreakdownQuery{Property: "$pathname"})
			return err
		}},
		{"trends", func(r store.Reports, q store.Query) error {
			_, err := r.Trends(ctx, q, store.TrendsQuery{Interval: store.IntervalDay, Math: store.MathUnique})
			return err
		}},
		{"funnel", func(r store.Reports, q store.Query) error {
			_, err := r.Funnel(ctx, q, store.FunnelQuery{Steps: []string{"$pageview", "$autocapture", "purchase"}, Window: 24 * time.Hour})
			return err
		}},
		{"retention", func(r store.Reports, q store.Query) error {
			_, err := r.Retention(ctx, q, store.RetentionQuery{Period: store.PeriodWeek, Periods: 4})
			return err
		}},
		{"paths", func(r store.Reports, q store.Query) error {
			_, err := r.Paths(ctx, q, store.PathsQuery{Steps: 5})
			return err
		}},
		{"heatmap", func(r store.Reports, q store.Query) error {
			_, err := r.Heatmap(ctx, q, store.HeatmapQuery{URL: "/pricing"})
			return err
		}},
		{"goals", func(r store.Reports, q store.Query) error {
			_, err := r.GoalStats(ctx, q, []store.Goal{{ID: 1, Name: "buy", Event: "purchase"}, {ID: 2, Name: "docs", Path: "/docs*"}})
			return err
		}},
		{"server", func(r store.Reports, q store.Query) error {
			_, err := r.Server(ctx, q, 10)
			return err
		}},
	}
	for _, rep := range reports {
		for _, rng := range []struct {
			name string
			q    store.Query
		}{{"30d", q}, {"1d", day}} {
			for _, be := range []struct {
				name string
				r    store.Reports
			}{{"clickhouse", ch}, {"embedded", local}} {
				b.Run(rep.name+"/"+rng.name+"/"+be.name, func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						if err := rep.run(be.r, rng.q); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
	if s, l := ch.Answered(); len(l) > 0 {
		b.Fatalf("answered locally %v (in SQL %v): the benchmark must measure ClickHouse", l, s)
	}
}

// realProps are the properties posthog-js adds to every event.
func realProps(rnd *rand.Rand, p int, ts time.Time) store.Props {
	str := func(k, v string) store.Prop { return store.Prop{Key: k, Val: store.StringValue(v)} }
	num := func(k string, v float64) store.Prop { return store.Prop{Key: k, Val: store.NumberValue(v)} }
	oses := []string{"Windows", "Mac OS X", "iOS", "Android", "Linux"}
	refs := []string{"$direct", "https://www.google.com/", "https://news.ycombinator.com/", "https://t.co/"}
	ref := refs[rnd.IntN(len(refs))]
	return store.Props{
		str("$os", oses[p%len(oses)]), str("$os_version", fmt.Sprint(10+p%5, ".", p%3)),
		str("$device_type", []string{"Desktop", "Mobile"}[p%2]), str("$browser_version", fmt.Sprint(120+p%8)),
		num("$screen_height", float64(700+p%400)), num("$screen_width", float64(1200+p%700)),
		num("$viewport_height", float64(600+p%300)), num("$viewport_width", float64(1100+p%600)),
		str("$lib", "web"), str("$lib_version", "1.200.0"), str("$host", "example.com"),
		str("$referrer", ref), str("$referring_domain", strings.TrimSuffix(strings.TrimPrefix(ref, "https://"), "/")),
		str("$initial_referrer", ref), str("$device_id", fmt.Sprintf("0190dddd-0000-7000-8000-%012d", p)),
		str("$window_id", fmt.Sprintf("0190eeee-0000-7000-8000-%012d", p)),
		str("$pageview_id", fmt.Sprintf("0190ffff-0000-7000-8000-%012d", rnd.IntN(1<<30))),
		str("$insert_id", fmt.Sprintf("%016x", rnd.Uint64())), num("$time", float64(ts.UnixMilli())/1000),
		str("$timezone", "Europe/Berlin"), str("$browser_language", "en-US"), num("$raw_user_agent_len", 120),
		str("utm_source", []string{"", "newsletter", "twitter"}[p%3]), str("$title", "Example — the page title"),
		str("$process_person_profile", "true"), str("$configured_session_timeout_ms", "1800000"),
		str("$user_agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"),
	}
}
