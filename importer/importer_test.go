package importer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/dashboard"
	"github.com/firstpartyhq/firstparty/importer"
	"github.com/firstpartyhq/firstparty/store"
)

// The fixtures are made by `go run ./tools/fixtures` in the shapes of the
// real exports; manifest.json says what the generator put in them.
const fixtures = "../testdata/import"

type fileFacts struct {
	Format   string `json:"format"`
	Rows     int    `json:"rows"`
	Events   int    `json:"events"`
	Ignored  int    `json:"ignored"`
	BadLines []int  `json:"bad_lines"`
}

type manifest struct {
	Files         map[string]*fileFacts `json:"files"`
	PlausibleDays map[string]struct {
		Visitors, Pageviews, Bounces, Visits, VisitDuration int
	} `json:"plausible_days"`
	PlausiblePages map[string]int `json:"plausible_pages"`
	CaddyKeptPaths map[string]int `json:"caddy_kept_paths"`
}

func readManifest(t *testing.T) manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func open(t *testing.T, path string) *store.DB {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func lines(bad []importer.BadRow) []int {
	var out []int
	for _, b := range bad {
		out = append(out, b.Line)
	}
	return out
}

var allTime = store.Query{From: time.Unix(0, 0), To: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}

// TestImportTwiceIsOnce imports each fixture twice into a file database:
// the first import stores what the file holds, names its bad rows by line
// and skips them; the second stores nothing new; reopening shows the same.
func TestImportTwiceIsOnce(t *testing.T) {
	m := readManifest(t)
	for name, facts := range m.Files {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "i.db")
			db := open(t, path)
			const site = "imp.example"
			file := filepath.Join(fixtures, name)
			var progress strings.Builder
			r1, err := importer.Import(context.Background(), db, facts.Format, []string{file}, importer.Options{Site: site, Progress: &progress})
			if err != nil {
				t.Fatal(err)
			}
			if got := lines(r1.Bad); !slices.Equal(got, facts.BadLines) {
				t.Fatalf("bad rows at lines %v, want %v (%v)", got, facts.BadLines, r1.Bad)
			}
			for _, b := range r1.Bad {
				if !strings.Contains(progress.String(), b.String()) {
					t.Errorf("bad row %s not reported in the progress output", b)
				}
			}
			if r1.Rows != facts.Rows || r1.Ignored != facts.Ignored {
				t.Fatalf("rows %d ignored %d, want %d and %d", r1.Rows, r1.Ignored, facts.Rows, facts.Ignored)
			}
			if r1.Stored != facts.Events || db.Count(site) != facts.Events {
				t.Fatalf("stored %d (count %d), want %d", r1.Stored, db.Count(site), facts.Events)
			}
			st1, err := db.Stats(context.Background(), withSite(allTime, site))
			if err != nil {
				t.Fatal(err)
			}
			r2, err := importer.Import(context.Background(), db, facts.Format, []string{file}, importer.Options{Site: site})
			if err != nil {
				t.Fatal(err)
			}
			if r2.Stored != 0 || r2.Duplicates != facts.Events || db.Count(site) != facts.Events {
				t.Fatalf("second import stored %d, %d duplicates, count %d; want 0, %d, %d", r2.Stored, r2.Duplicates, db.Count(site), facts.Events, facts.Events)
			}
			db.Close()
			db = open(t, path)
			defer db.Close()
			st2, err := db.Stats(context.Background(), withSite(allTime, site))
			if err != nil {
				t.Fatal(err)
			}
			if (st1.JSShare == nil) != (st2.JSShare == nil) || st1.JSShare != nil && *st1.JSShare != *st2.JSShare {
				t.Fatalf("js_share %v after reopening, %v before", st2.JSShare, st1.JSShare)
			}
			st1.JSShare, st2.JSShare = nil, nil // pointers, compared above
			if db.Count(site) != facts.Events || st1 != st2 {
				t.Fatalf("after reopening: count %d, stats %+v; after the first import %+v", db.Count(site), st2, st1)
			}
			if facts.Format == "plausible" && (st2.ImportedDays == 0 || st2.Pageviews == 0) {
				t.Fatalf("plausible: no imported aggregates in the stats: %+v", st2)
			}
			t.Logf("%s: %d rows, %d events, %d left out, bad lines %v, stats %+v", name, r1.Rows, r1.Stored, r1.Ignored, lines(r1.Bad), st2)
		})
	}
}

func withSite(q store.Query, site string) store.Query {
	q.Site = site
	return q
}

// TestCaddyLogRules: only HTML GETs answered 2xx/404/410, from browsers,
// not prefetches, become $server_pageview events, with the §8 properties.
func TestCaddyLogRules(t *testing.T) {
	m := readManifest(t)
	db := open(t, ":memory:")
	defer db.Close()
	const site = "ex.com"
	if _, err := importer.Import(context.Background(), db, "caddylog", []string{filepath.Join(fixtures, "caddy.log")}, importer.Options{Site: site}); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Breakdown(context.Background(), withSite(allTime, site), store.BreakdownQuery{Property: "$pathname", Event: "$server_pageview", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range rows {
		got[r.Value] = r.Count
	}
	if len(got) != len(m.CaddyKeptPaths) {
		t.Fatalf("pages %v, want %v", got, m.CaddyKeptPaths)
	}
	for p, n := range m.CaddyKeptPaths {
		if got[p] != n {
			t.Fatalf("page %s: %d pageviews, want %d (all: %v)", p, got[p], n, got)
		}
	}
	page, err := db.Events(context.Background(), store.EventQuery{Site: site, To: 1 << 62, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]bool{}
	for _, e := range page.Results {
		st, _ := e.Props.Get("$status")
		ms, _ := e.Props.Get("$server_ms")
		if e.Name != "$server_pageview" || st.Kind != store.KindNumber || ms.Kind != store.KindNumber ||
			e.Props.Str("$browser") == "" || e.Props.Str("$os") == "" || e.Props.Str("$device_type") == "" ||
			!strings.HasPrefix(e.Props.Str("$current_url"), "https://ex.com/") || e.Props.Str("$host") != "ex.com" || e.Props.Str("$session_id") == "" {
			t.Fatalf("event without the server pageview properties: %+v", e)
		}
		if len(e.DistinctID) != 32 {
			t.Fatalf("distinct id %q is not a hash", e.DistinctID)
		}
		statuses[st.S] = true
	}
	for _, s := range []string{"200", "404", "410"} {
		if !statuses[s] {
			t.Errorf("no pageview with status %s: %v", s, statuses)
		}
	}
	// The campaign of a landing page is kept.
	if rows, _ := db.Breakdown(context.Background(), withSite(allTime, site), store.BreakdownQuery{Property: "utm_source"}); len(rows) != 1 || rows[0].Value != "newsletter" {
		t.Fatalf("utm_source breakdown %v", rows)
	}
}

// TestPlausibleDaysInStats: /api/stats over imported Plausible days gives
// the imported numbers plus those days' own events; a range over part of
// the days takes only those; top pages add the imported pageviews.
func TestPlausibleDaysInStats(t *testing.T) {
	m := readManifest(t)
	db := open(t, filepath.Join(t.TempDir(), "p.db"))
	defer db.Close()
	const site = "ex.com"
	if _, err := importer.Import(context.Background(), db, "plausible", []string{filepath.Join(fixtures, "plausible.zip")}, importer.Options{Site: site}); err != nil {
		t.Fatal(err)
	}
	var days []string
	for d := range m.PlausibleDays {
		days = append(days, d)
	}
	slices.Sort(days)
	// Real events on two of the days: one session of 3 pageviews over 100 s
	// and one bounced session.
	d0, _ := time.Parse("2006-01-02", days[3])
	at := func(s int) int64 { return d0.Add(10*time.Hour + time.Duration(s)*time.Second).UnixMilli() }
	pv := func(did, sid, path string, s int) *store.Event {
		return &store.Event{Site: site, Name: "$pageview", DistinctID: did, Time: at(s), Props: store.Props{
			{Key: "$session_id", Val: store.StringValue(sid)}, {Key: "$pathname", Val: store.StringValue(path)}}}
	}
	if _, err := db.Append(context.Background(), []*store.Event{pv("a", "s1", "/pricing", 0), pv("a", "s1", "/", 50), pv("a", "s1", "/pricing", 100), pv("b", "s2", "/only-ours", 30)}); err != nil {
		t.Fatal(err)
	}
	h := dashboard.New(dashboard.Config{Prefix: "/analytics", Site: site}, db, dashboard.Options{})
	get := func(path string, into any) {
		t.Helper()
		req := httptest.NewRequest("GET", "http://localhost"+path, nil)
		req.RemoteAddr = "127.0.0.1:1234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		if err := json.Unmarshal(w.Body.Bytes(), into); err != nil {
			t.Fatal(err)
		}
	}
	check := func(from, to string, withEvents bool) {
		t.Helper()
		var want struct{ vis, pv, bounces, visits, dur int }
		n := 0
		for _, d := range days {
			if d >= from && d <= to {
				p := m.PlausibleDays[d]
				want.vis += p.Visitors
				want.pv += p.Pageviews
				want.bounces += p.Bounces
				want.visits += p.Visits
				want.dur += p.VisitDuration
				n++
			}
		}
		if withEvents {
			want.vis += 2
			want.pv += 4
			want.visits += 2
			want.bounces++
			want.dur += 100
		}
		var st struct {
			Visitors     int     `json:"visitors"`
			Pageviews    int     `json:"pageviews"`
			Sessions     int     `json:"sessions"`
			Bounce       float64 `json:"bounce_rate"`
			Avg          float64 `json:"avg_session_seconds"`
			ImportedDays int     `json:"imported_days"`
		}
		get("/api/stats?from="+from+"&to="+to, &st)
		wantBounce := float64(want.bounces) / float64(want.visits)
		wantAvg := float64(want.dur) / float64(want.visits)
		if st.Visitors != want.vis || st.Pageviews != want.pv || st.Sessions != want.visits || st.ImportedDays != n ||
			abs(st.Bounce-wantBounce) > 1e-9 || abs(st.Avg-wantAvg) > 1e-6 {
			t.Fatalf("%s..%s: stats %+v, want %+v over %d days (bounce %.4f, avg %.2f)", from, to, st, want, n, wantBounce, wantAvg)
		}
	}
	check(days[0], days[len(days)-1], true)
	check(days[3], days[3], true)
	check(days[10], days[20], false)

	var bd struct {
		Results []store.BreakdownRow `json:"results"`
	}
	get("/api/breakdown?property=$pathname&event=$pageview&from="+days[0]+"&to="+days[len(days)-1], &bd)
	got := map[string]int{}
	for _, r := range bd.Results {
		got[r.Value] = r.Count
	}
	if got["/pricing"] != m.PlausiblePages["/pricing"]+2 || got["/"] != m.PlausiblePages["/"]+1 || got["/only-ours"] != 1 {
		t.Fatalf("top pages %v, imported %v", got, m.PlausiblePages)
	}
	// The chart: imported pageviews (and visitors) of each day plus the
	// day's own.
	var tr struct {
		Labels []string `json:"labels"`
		Series []struct {
			Data []int `json:"data"`
		} `json:"series"`
	}
	for _, math := range []string{"total", "unique"} {
		get("/api/trends?event=$pageview&interval=day&math="+math+"&from="+days[0]+"&to="+days[len(days)-1], &tr)
		if len(tr.Labels) != len(days) || len(tr.Series) != 1 {
			t.Fatalf("trends %+v", tr)
		}
		for i, d := range tr.Labels {
			want := m.PlausibleDays[d].Pageviews
			if math == "unique" {
				want = m.PlausibleDays[d].Visitors
			}
			if d == days[3] {
				want += map[string]int{"total": 4, "unique": 2}[math]
			}
			if tr.Series[0].Data[i] != want {
				t.Fatalf("trends %s on %s: %d, want %d", math, d, tr.Series[0].Data[i], want)
			}
		}
	}

	// With a filter the imported aggregates cannot answer, they are left out.
	var st struct {
		Pageviews int `json:"pageviews"`
	}
	get("/api/stats?filter=$pathname==/pricing&from="+days[0]+"&to="+days[len(days)-1], &st)
	if st.Pageviews != 2 {
		t.Fatalf("filtered stats: %d pageviews, want only the events' 2", st.Pageviews)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
