package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// pageloadData makes random traffic in which every page load is seen by
// the snippet only, by the server only (no JavaScript, blocked), or by both
// (the server pageview first, or late: after the snippet's). mixed is what
// the store receives; canonical is the same traffic as a perfect count
// would have it: each page load once, as a $pageview — a server pageview no
// snippet confirmed becomes one, a confirmed one is not there.
func pageloadData(seed uint64, base time.Time) (mixed, canonical []*Event) {
	rng := rand.New(rand.NewPCG(seed, 7))
	pages := []string{"/", "/pricing", "/docs", "/blog/a", "/blog/b"}
	n := 0
	for p := 0; p < 120; p++ {
		did := fmt.Sprintf("p%d", p)
		serverDid := fmt.Sprintf("c_%d", p)
		t := base.Add(time.Duration(rng.IntN(20*24)) * time.Hour)
		for s := 0; s < 1+rng.IntN(3); s++ {
			sid := fmt.Sprintf("s%d-%d", p, s)
			ssid := fmt.Sprintf("ss%d-%d", p, s)
			for v := 0; v < 1+rng.IntN(4); v++ {
				t = t.Add(time.Duration(1+rng.IntN(300)) * time.Second)
				n++
				ref := fmt.Sprintf("ref%05d", n)
				path := pages[rng.IntN(len(pages))]
				snippet := ev("s", "$pageview", did, t.UnixMilli(), "$pathname", path, "$session_id", sid, PageviewRef, ref)
				snippet.UUID = fmt.Sprintf("u-%d-js", n)
				server := ev("s", ServerPageview, serverDid, t.Add(-200*time.Millisecond).UnixMilli(), "$pathname", path, "$session_id", ssid, PageviewRef, ref, "$status", "200", "$server_ms", fmt.Sprint(rng.IntN(900)))
				server.UUID = fmt.Sprintf("u-%d-srv", n)
				switch k := rng.IntN(10); {
				case k < 3: // snippet only (count_server off for this page)
					mixed = append(mixed, snippet)
					canonical = append(canonical, snippet)
				case k < 5: // server only
					mixed = append(mixed, server)
					c := *server
					c.Name = "$pageview"
					canonical = append(canonical, &c)
				case k < 9: // both, server first
					mixed = append(mixed, server, snippet)
					canonical = append(canonical, snippet)
				default: // both, the snippet's stored first
					mixed = append(mixed, snippet, server)
					canonical = append(canonical, snippet)
				}
				if rng.IntN(3) == 0 {
					e := ev("s", "signup", did, t.Add(time.Second).UnixMilli(), "$session_id", sid)
					e.UUID = fmt.Sprintf("u-%d-e", n)
					mixed = append(mixed, e)
					canonical = append(canonical, e)
				}
			}
			t = t.Add(time.Duration(1+rng.IntN(48)) * time.Hour)
		}
	}
	return mixed, canonical
}

// TestServerPageviewsCountedOnce: every §4 report over traffic with server
// pageviews mixed in (some page loads seen only by the server, some by both,
// in either order) equals the report over the same traffic counted once
// per page load — also after the log is replayed.
func TestServerPageviewsCountedOnce(t *testing.T) {
	base := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for seed := uint64(1); seed <= 3; seed++ {
		mixed, canonical := pageloadData(seed, base)
		dir := t.TempDir()
		a, err := Open(dir+"/mixed.db", Options{CompactEvery: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		b := openMem(t)
		// In small batches, as capture requests come.
		for i := 0; i < len(mixed); i += 7 {
			mustAppend(t, a, mixed[i:min(i+7, len(mixed))]...)
		}
		mustAppend(t, b, canonical...)
		q := Query{Site: "s", From: base, To: base.Add(40 * 24 * time.Hour)}
		check := func(a *DB, when string) {
			t.Helper()
			for name, run := range map[string]func(db *DB) (any, error){
				"stats": func(db *DB) (any, error) {
					st, err := db.Stats(ctx, q)
					st.JSShare = nil
					return st, err
				},
				"breakdown": func(db *DB) (any, error) {
					return db.Breakdown(ctx, q, BreakdownQuery{Property: "$pathname", Event: "$pageview"})
				},
				"trends": func(db *DB) (any, error) {
					return db.Trends(ctx, q, TrendsQuery{Events: []string{"$pageview", "signup"}, Interval: "day", Math: "unique"})
				},
				"funnel": func(db *DB) (any, error) {
					return db.Funnel(ctx, q, FunnelQuery{Steps: []string{"$pageview", "signup", "$pageview"}})
				},
				"retention": func(db *DB) (any, error) {
					return db.Retention(ctx, q, RetentionQuery{Period: "week", Periods: 4})
				},
				"paths": func(db *DB) (any, error) { return db.Paths(ctx, q, PathsQuery{Steps: 4}) },
				"filtered stats": func(db *DB) (any, error) {
					fq := q
					fq.Filters = []Filter{{Prop: "$pathname", Op: OpEq, Value: "/pricing"}}
					st, err := db.Stats(ctx, fq)
					st.JSShare = nil
					return st, err
				},
			} {
				got, err := run(a)
				if err != nil {
					t.Fatal(err)
				}
				want, err := run(b)
				if err != nil {
					t.Fatal(err)
				}
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(want)
				if string(gj) != string(wj) {
					t.Errorf("seed %d %s, %s:\n got %s\nwant %s", seed, when, name, gj, wj)
				}
			}
			// js_share: confirmed over all server pageviews.
			srv, all, confirmed := 0, 0, 0
			refs := map[string]bool{}
			for _, e := range mixed {
				if e.Name == "$pageview" {
					refs[e.Props.Str(PageviewRef)] = true
				}
			}
			for _, e := range mixed {
				if e.Name == ServerPageview {
					all++
					if refs[e.Props.Str(PageviewRef)] {
						confirmed++
					}
				}
			}
			rep, err := a.Server(context.Background(), q, 10)
			if err != nil {
				t.Fatal(err)
			}
			srv = rep.ServerPageviews
			if srv != all || rep.JSShare != float64(confirmed)/float64(all) {
				t.Errorf("seed %d %s: server pageviews %d js_share %v, want %d and %v", seed, when, srv, rep.JSShare, all, float64(confirmed)/float64(all))
			}
			st, _ := a.Stats(ctx, q)
			if st.JSShare == nil || *st.JSShare != rep.JSShare {
				t.Errorf("stats js_share %v, server report %v", st.JSShare, rep.JSShare)
			}
		}
		check(a, "live")
		a.Close()
		a, err = Open(dir+"/mixed.db", Options{CompactEvery: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		check(a, "after reopening")
		a.Close()
	}
}

// TestServerReport: 404 pages with their referrers, slow pages by median
// and p90, feed subscribers from feed readers' counts and direct fetchers.
func TestServerReport(t *testing.T) {
	db := openMem(t)
	base := time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	var evs []*Event
	add := func(e *Event) { evs = append(evs, e) }
	for i := 0; i < 5; i++ {
		add(ev("s", ServerPageview, fmt.Sprint("v", i), base+int64(i), "$pathname", "/missing", "$status", "404", "$referrer", "https://a.example/"))
	}
	add(ev("s", ServerPageview, "v9", base, "$pathname", "/missing", "$status", "404", "$referrer", "https://b.example/"))
	add(ev("s", ServerPageview, "v9", base, "$pathname", "/gone", "$status", "410"))
	for i := 1; i <= 10; i++ {
		add(ev("s", ServerPageview, "v1", base+int64(i), "$pathname", "/slow", "$status", "200", "$server_ms", fmt.Sprint(i*100)))
		add(ev("s", ServerPageview, "v1", base+int64(i), "$pathname", "/fast", "$status", "200", "$server_ms", fmt.Sprint(i)))
	}
	// A visitor's timings that are no finite number count as 0 ms: the
	// report stays JSON (a NaN or an infinity would not).
	for _, bad := range []string{"NaN", "1e400", "-Inf", "+inf"} {
		add(ev("s", ServerPageview, "v2", base, "$pathname", "/odd", "$status", "200", "$server_ms", bad))
	}
	for day := int64(0); day < 3; day++ {
		at := base + day*msPerDay
		add(ev("s", FeedFetch, "feedly", at, "$pathname", "/feed.xml", FeedReader, "Feedly", FeedSubscribers, fmt.Sprint(40+day)))
		add(ev("s", FeedFetch, "inoreader", at, "$pathname", "/feed.xml", FeedReader, "Inoreader", FeedSubscribers, "7"))
		for j := int64(0); j <= day; j++ { // 1, 2, 3 direct fetchers a day
			add(ev("s", FeedFetch, fmt.Sprint("direct", day, j), at, "$pathname", "/feed.xml", FeedReader, "curl"))
		}
	}
	mustAppend(t, db, evs...)
	rep, err := db.Server(ctx, Query{Site: "s", From: time.UnixMilli(base - 1000), To: time.UnixMilli(base + 5*msPerDay)}, 10)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(rep.NotFound)
	if want := `[{"path":"/missing","count":6,"referrers":[{"value":"https://a.example/","count":5,"visitors":0},{"value":"https://b.example/","count":1,"visitors":0}]},{"path":"/gone","count":1,"referrers":null}]`; string(got) != want {
		t.Errorf("not found:\n got %s\nwant %s", got, want)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Errorf("the report is not JSON: %v", err)
	}
	if len(rep.Slow) != 3 || rep.Slow[2].Path != "/odd" || rep.Slow[2].P90Ms != 0 || rep.Slow[0].Path != "/slow" || rep.Slow[0].MedianMs != 550 || rep.Slow[0].P90Ms != 910 || rep.Slow[0].Count != 10 {
		t.Errorf("slow: %+v", rep.Slow)
	}
	if len(rep.Feeds) != 1 || rep.Feeds[0].Subscribers != 42+7+3 || rep.Feeds[0].Fetches != 6+6 {
		t.Errorf("feeds: %+v, want 52 subscribers (42 Feedly + 7 Inoreader + 3 direct on the busiest day), 12 fetches", rep.Feeds)
	}
	if n := FeedSubscribersOf("Feedly/1.0 (+http://www.feedly.com/fetcher.html; 43 subscribers; like FeedFetcher-Google)"); n != 43 {
		t.Errorf("Feedly UA: %d", n)
	}
	if n := FeedSubscribersOf("NewsBlur Feed Fetcher - 7 subscribers - https://www.newsblur.com/site/1/x"); n != 7 {
		t.Errorf("NewsBlur UA: %d", n)
	}
	if n := FeedSubscribersOf("Mozilla/5.0 (X11; Linux x86_64)"); n != -1 {
		t.Errorf("browser UA: %d", n)
	}
}

// TestDatacenterLeftOut: events marked $datacenter are left out of reports
// unless the query includes bots.
func TestDatacenterLeftOut(t *testing.T) {
	db := openMem(t)
	base := time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	dc := ev("s", "$pageview", "bot", base, "$pathname", "/")
	dc.Props = append(dc.Props, Prop{Key: Datacenter, Val: Value{Kind: KindTrue}})
	mustAppend(t, db, ev("s", "$pageview", "human", base, "$pathname", "/"), dc)
	q := Query{Site: "s", From: time.UnixMilli(base - 1000), To: time.UnixMilli(base + 1000)}
	st, _ := db.Stats(ctx, q)
	if st.Visitors != 1 || st.Pageviews != 1 {
		t.Errorf("without bots: %+v, want 1 visitor", st)
	}
	q.IncludeBots = true
	st, _ = db.Stats(ctx, q)
	if st.Visitors != 2 || st.Pageviews != 2 {
		t.Errorf("with bots=include: %+v, want 2 visitors", st)
	}
}

// TestDaySaltDeleted: the salt of a day is kept for that day only; when
// the next day's is made, the old one is gone from the file.
func TestDaySaltDeleted(t *testing.T) {
	path := t.TempDir() + "/salt.db"
	db, err := Open(path, Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s1, err := db.DaySalt(20000)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := db.DaySalt(20000); string(again) != string(s1) {
		t.Fatal("the same day gave two salts")
	}
	db.Close()
	db, err = Open(path, Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := db.DaySalt(20000); string(again) != string(s1) {
		t.Fatal("the day's salt did not survive a restart")
	}
	s2, err := db.DaySalt(20001)
	if err != nil || string(s2) == string(s1) {
		t.Fatalf("next day's salt: %x, %v", s2, err)
	}
	if _, err := db.DaySalt(20000); err == nil {
		t.Error("a past day's salt was given out again")
	}
	db.Close()
	raw := readFile(t, path)
	if containsHex(raw, s1) {
		t.Error("the past day's salt is still in the file")
	}
	if !containsHex(raw, s2) {
		t.Error("today's salt is not in the file (the check cannot see salts)")
	}
}

func openMem(t *testing.T) *DB {
	t.Helper()
	db, err := Open(":memory:", Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func containsHex(raw, b []byte) bool {
	return bytes.Contains(raw, []byte(hex.EncodeToString(b)))
}
