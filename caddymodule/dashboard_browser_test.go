package caddymodule_test

// Browser tests of the dashboard: a real Caddy with the module, traffic
// loaded through the capture endpoint, and a real headless Chromium
// looking at every page. The traffic is generated from a fixed seed, and
// the numbers the pages must show are counted here from the generated
// traffic, not asked of the API.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// dashVisitor is one person of the generated traffic.
type dashVisitor struct {
	anon, user       string // user: the id after $identify, "" if never
	email            string
	country          string // ISO code, "" for none
	device, browser  string
	os, referrer     string
	utmSource, utmCp string
	sessions         []dashSession
}

// dashSession is one visit: pages in order, then custom events.
type dashSession struct {
	id     string
	start  time.Time
	pages  []string
	custom []string
}

type weighted[T any] struct {
	w int
	v T
}

func pick[T any](r *rand.Rand, opts []weighted[T]) T {
	total := 0
	for _, o := range opts {
		total += o.w
	}
	n := r.IntN(total)
	for _, o := range opts {
		if n < o.w {
			return o.v
		}
		n -= o.w
	}
	return opts[len(opts)-1].v
}

var (
	dashCountries = []weighted[string]{{30, "US"}, {15, "DE"}, {10, "GB"}, {8, "FR"}, {8, "IN"}, {6, "CA"}, {5, "BR"}, {5, "JP"}, {4, "NL"}, {3, "SE"}, {6, ""}}
	dashDevices   = []weighted[[3]string]{
		{30, [3]string{"Desktop", "Chrome", "Windows"}}, {14, [3]string{"Desktop", "Chrome", "Mac OS X"}},
		{12, [3]string{"Desktop", "Safari", "Mac OS X"}}, {10, [3]string{"Desktop", "Firefox", "Windows"}},
		{5, [3]string{"Desktop", "Firefox", "Linux"}}, {6, [3]string{"Desktop", "Edge", "Windows"}},
		{12, [3]string{"Mobile", "Chrome", "Android"}}, {14, [3]string{"Mobile", "Mobile Safari", "iOS"}},
		{4, [3]string{"Tablet", "Mobile Safari", "iOS"}},
	}
	dashReferrers = []weighted[string]{
		{34, ""}, {28, "https://www.google.com/"}, {12, "https://news.ycombinator.com/item?id=4242"},
		{8, "https://duckduckgo.com/"}, {7, "https://github.com/firstpartyhq/firstparty"}, {6, "https://t.co/x1y2"},
		{5, "https://www.reddit.com/r/selfhosted/"},
	}
	dashUTM = []weighted[[2]string]{{80, [2]string{"", ""}}, {12, [2]string{"newsletter", "autumn-launch"}}, {8, [2]string{"twitter", "launch-week"}}}
	// Entry pages, and where people go next from each page ("" leaves).
	dashEntries = []weighted[string]{{40, "/"}, {18, "/blog/launch"}, {14, "/pricing"}, {16, "/docs"}, {12, "/blog/privacy-first"}}
	dashNext    = map[string][]weighted[string]{
		"/":                   {{30, "/pricing"}, {25, "/docs"}, {15, "/blog/launch"}, {10, "/about"}, {20, ""}},
		"/pricing":            {{40, "/signup"}, {20, "/docs"}, {10, "/"}, {30, ""}},
		"/docs":               {{40, "/docs/install"}, {15, "/pricing"}, {45, ""}},
		"/docs/install":       {{25, "/signup"}, {15, "/docs"}, {60, ""}},
		"/blog/launch":        {{30, "/"}, {25, "/pricing"}, {10, "/blog/privacy-first"}, {35, ""}},
		"/blog/privacy-first": {{30, "/"}, {20, "/blog/launch"}, {50, ""}},
		"/about":              {{30, "/pricing"}, {70, ""}},
		"/signup":             {{30, "/docs/install"}, {70, ""}},
	}
	dashTitles = map[string]string{
		"/": "Firstparty — analytics in your web server", "/pricing": "Pricing", "/docs": "Documentation",
		"/docs/install": "Install", "/blog/launch": "We launched", "/blog/privacy-first": "Why privacy-first",
		"/about": "About us", "/signup": "Sign up",
	}
)

// dashTraffic makes n visitors whose sessions all lie in [from, to).
func dashTraffic(r *rand.Rand, tag string, n int, from, to time.Time) []dashVisitor {
	span := to.Sub(from) - 40*time.Minute
	var out []dashVisitor
	for i := 0; i < n; i++ {
		dev := pick(r, dashDevices)
		utm := pick(r, dashUTM)
		v := dashVisitor{
			anon: fmt.Sprintf("anon-%s-%03d", tag, i), country: pick(r, dashCountries),
			device: dev[0], browser: dev[1], os: dev[2], referrer: pick(r, dashReferrers),
			utmSource: utm[0], utmCp: utm[1],
		}
		start := from.Add(time.Duration(r.Int64N(int64(span))))
		visits := 1
		if r.IntN(100) < 35 {
			visits += 1 + r.IntN(3)
		}
		signedUp := false
		for k := 0; k < visits; k++ {
			at := start.Add(time.Duration(k) * (20*time.Hour + time.Duration(r.IntN(10*60))*time.Minute))
			if !at.Add(30 * time.Minute).Before(to) {
				break
			}
			s := dashSession{id: fmt.Sprintf("s-%s-%03d-%d", tag, i, k), start: at}
			page := pick(r, dashEntries)
			if k > 0 && r.IntN(2) == 0 {
				page = "/docs"
			}
			for page != "" && len(s.pages) < 6 {
				s.pages = append(s.pages, page)
				if len(s.pages) == 1 && r.IntN(100) < 42 {
					break // a bounce
				}
				page = pick(r, dashNext[page])
			}
			if !signedUp && slices.Contains(s.pages, "/signup") && r.IntN(100) < 65 {
				signedUp = true
				s.custom = append(s.custom, "signed_up")
				if r.IntN(100) < 70 {
					v.user = fmt.Sprintf("user-%s-%03d", tag, i)
					v.email = fmt.Sprintf("person%03d@%s.example", i, tag)
					s.custom = append(s.custom, "$identify")
				}
			} else if signedUp && r.IntN(100) < 55 && !slices.Contains(v.customs(), "purchase") {
				s.custom = append(s.custom, "purchase")
			}
			v.sessions = append(v.sessions, s)
		}
		out = append(out, v)
	}
	return out
}

func (v *dashVisitor) customs() []string {
	var c []string
	for _, s := range v.sessions {
		c = append(c, s.custom...)
	}
	return c
}

// events turns a visitor into capture events as posthog-js sends them.
func (v *dashVisitor) events() []map[string]any {
	var out []map[string]any
	did := v.anon
	for _, s := range v.sessions {
		t := s.start
		prev := ""
		for i, p := range s.pages {
			u := "https://test.example" + p
			ref := "https://test.example" + prev
			if i == 0 {
				ref = v.referrer
				if v.utmSource != "" && s.id[len(s.id)-1] == '0' {
					u += "?utm_source=" + v.utmSource + "&utm_medium=email&utm_campaign=" + v.utmCp
				}
			}
			props := v.props(s)
			props["$current_url"] = u
			props["$referrer"] = ref
			props["title"] = dashTitles[p]
			out = append(out, map[string]any{"event": "$pageview", "distinct_id": did, "timestamp": t, "properties": props})
			t = t.Add(35*time.Second + time.Duration(len(p))*3*time.Second)
			prev = p
		}
		for _, c := range s.custom {
			props := v.props(s)
			ev := map[string]any{"event": c, "distinct_id": did, "timestamp": t, "properties": props}
			switch c {
			case "$identify":
				ev["distinct_id"] = v.user
				props["$anon_distinct_id"] = v.anon
				ev["$set"] = map[string]any{"email": v.email, "plan": "free"}
				did = v.user
			case "signed_up":
				props["plan"] = "free"
			case "purchase":
				props["plan"] = "pro"
				props["amount"] = 29
			}
			out = append(out, ev)
			t = t.Add(20 * time.Second)
		}
	}
	return out
}

func (v *dashVisitor) props(s dashSession) map[string]any {
	p := map[string]any{
		"$session_id": s.id, "$browser": v.browser, "$os": v.os, "$device_type": v.device,
		"$lib": "web", "$screen_width": 1440,
	}
	if v.country != "" {
		p["$geoip_country_code"] = v.country
	}
	return p
}

// dashXSS is what an attacker can put in every field the dashboard shows:
// each payload would set window.__xss or change the title if it ran.
const (
	xssPath  = `/<img src=x onerror="window.__xss=1;document.title='pwned'">`
	xssRef   = `"><svg onload="window.__xss=2">`
	xssTitle = `<script>window.__xss=3;document.title='pwned'</script>`
	xssProp  = `<img src=x onerror=window.__xss=4>`
	xssID    = `"><img src=x onerror=window.__xss=5>`
	xssName  = `<svg/onload=window.__xss=6>`
	xssEvent = `<b onmouseover=window.__xss=7>clicked</b>`
)

func dashXSSEvents(at time.Time) []map[string]any {
	props := func() map[string]any {
		return map[string]any{
			"$session_id": "s-xss", "$current_url": "https://test.example/x", "$pathname": xssPath,
			"$referrer": "https://evil.example/", "$referring_domain": xssRef, "title": xssTitle, "note": xssProp,
			"$browser": xssName, "$geoip_country_code": "<i>", "utm_campaign": xssTitle,
		}
	}
	id := map[string]any{"event": "$identify", "distinct_id": xssID, "timestamp": at.Add(2 * time.Second), "properties": props(),
		"$set": map[string]any{"name": xssName, "bio": xssProp}}
	return []map[string]any{
		{"event": "$pageview", "distinct_id": xssID, "timestamp": at, "properties": props()},
		{"event": xssEvent, "distinct_id": xssID, "timestamp": at.Add(time.Second), "properties": props()},
		id,
	}
}

// dashLoad posts the events to the capture endpoint in batches.
func dashLoad(t *testing.T, evs []map[string]any) {
	t.Helper()
	for i := 0; i < len(evs); i += 250 {
		batch := evs[i:min(i+250, len(evs))]
		for _, e := range batch {
			if ts, ok := e["timestamp"].(time.Time); ok {
				e["timestamp"] = ts.UTC().Format(time.RFC3339Nano)
			}
		}
		body, err := json.Marshal(map[string]any{"api_key": "phc_dash", "batch": batch})
		if err != nil {
			t.Fatal(err)
		}
		code, res := post(t, "/batch/", body, map[string]string{"Content-Type": "application/json"})
		if code != 200 {
			t.Fatalf("loading traffic: %d %s", code, res)
		}
	}
}

// dashConfig is the dashboard's site as Caddyfile.example has it (no
// `encode`: the dashboard compresses its own assets), plus a page on
// another origin (localhost) for cross-origin attempts.
func dashConfig(db string) string {
	return fmt.Sprintf(testGlobal+`http://127.0.0.1:9080 {
	bind 127.0.0.1
	analytics {
		db %s
		site test.example
		rate_limit off
	}
	respond "page" 200
}
http://localhost:9080 {
	bind 127.0.0.1
	header Content-Type "text/html; charset=utf-8"
	respond "<!doctype html><title>another origin</title><p>another origin</p>" 200
}
`, db)
}

// dashEv is one generated event as the expectations need it.
type dashEv struct {
	person string // the visitor it belongs to (one person per visitor)
	at     time.Time
	event  string
	props  map[string]any
}

// dashWorld is the loaded traffic and what the pages must show, counted
// from the traffic itself.
type dashWorld struct {
	visitors []dashVisitor
	evs      []dashEv
	now      time.Time
}

func newDashWorld(t *testing.T, n int) *dashWorld {
	now := time.Now().UTC().Truncate(time.Second)
	// All traffic lies in the last five days: inside the default "last 7
	// days" of any time zone.
	r := rand.New(rand.NewPCG(42, 2026))
	w := &dashWorld{visitors: dashTraffic(r, "d", n, now.Add(-5*24*time.Hour), now.Add(-15*time.Minute)), now: now}
	var all []map[string]any
	for i := range w.visitors {
		v := &w.visitors[i]
		for _, e := range v.events() {
			w.evs = append(w.evs, dashEv{v.anon, e["timestamp"].(time.Time), e["event"].(string), e["properties"].(map[string]any)})
			all = append(all, e)
		}
	}
	for _, e := range dashXSSEvents(now.Add(-10 * time.Minute)) {
		w.evs = append(w.evs, dashEv{xssID, e["timestamp"].(time.Time), e["event"].(string), e["properties"].(map[string]any)})
		all = append(all, e)
	}
	dashLoad(t, all)
	return w
}

// count is the number of persons with an event in [from, to) matching.
func (w *dashWorld) count(from, to time.Time, match func(dashEv) bool) int {
	seen := map[string]bool{}
	for _, e := range w.evs {
		if !e.at.Before(from) && e.at.Before(to) && (match == nil || match(e)) {
			seen[e.person] = true
		}
	}
	return len(seen)
}

func propIs(k, v string) func(dashEv) bool {
	return func(e dashEv) bool { return fmt.Sprint(e.props[k]) == v && e.props[k] != nil }
}

// pathIs matches events whose $pathname (as enrichment derives it from
// $current_url) is p.
func pathIs(p string) func(dashEv) bool {
	return func(e dashEv) bool {
		if v, ok := e.props["$pathname"]; ok {
			return v == p
		}
		u, _ := e.props["$current_url"].(string)
		pu, err := url.Parse(u)
		return u != "" && err == nil && pu.Path == p
	}
}

// apiVisitors asks the API for the visitors of a range and filters.
func apiVisitors(t *testing.T, from, to string, filters ...string) int {
	t.Helper()
	q := url.Values{"from": {from}, "to": {to}, "tz": {"UTC"}, "site": {"test.example"}, "filter": filters}
	var st struct{ Visitors int }
	getJSON(t, api+"/stats?"+q.Encode(), &st)
	return st.Visitors
}

// dashTab is a tab of the dashboard in UTC, collecting console errors and
// uncaught exceptions.
type dashTab struct {
	*Tab
	t    *testing.T
	mu   sync.Mutex
	errs []string
}

// openDash opens an isolated tab (its own storage, so remembered tabs and
// themes do not leak between subtests) for the subtest t.
func openDash(t *testing.T, b *Browser, opts ...TabOption) *dashTab {
	t.Helper()
	bt := &Browser{ctx: b.ctx, t: t}
	tab := bt.NewTab(append([]TabOption{Isolated()}, opts...)...)
	d := &dashTab{Tab: tab, t: t}
	if _, err := chromedp.Call(tab.Ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "UTC"}); err != nil {
		t.Fatalf("time zone: %v", err)
	}
	msgs := chromedp.Console(tab.Ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				d.mu.Lock()
				d.errs = append(d.errs, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				d.mu.Unlock()
			}
		}
	}()
	return d
}

// noErrors fails the test if the console had an error or an exception.
func (d *dashTab) noErrors(where string) {
	d.t.Helper()
	d.mu.Lock()
	errs := d.errs
	d.errs = nil
	d.mu.Unlock()
	if ex := d.Exceptions(); len(ex) > 0 && len(errs) == 0 {
		errs = ex
	}
	if len(errs) > 0 {
		d.t.Errorf("%s: console errors: %s", where, strings.Join(errs, "\n"))
	}
}

// eval is Eval that reports a failure of the page (a navigation in
// between) as an error instead of failing the test.
func evalJS[T any](d *dashTab, js string) (T, error) {
	ctx, cancel := context.WithTimeout(d.Ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// until waits for the JavaScript condition, failing with what the page
// shows (and its console errors) at the deadline.
func (d *dashTab) until(what, cond string) {
	d.t.Helper()
	WaitFor(d.t, what, 15*time.Second, func() (bool, string) {
		v, err := evalJS[bool](d, "!!("+cond+")")
		if err == nil && v {
			return true, ""
		}
		state, _ := evalJS[string](d, `location.pathname + location.search + ' | ' + (document.getElementById('main')?.innerText || '').slice(0, 600)`)
		d.mu.Lock()
		defer d.mu.Unlock()
		return false, fmt.Sprintf("%v; page: %s; console errors: %v", err, state, d.errs)
	})
}

func (d *dashTab) js(js string) {
	d.t.Helper()
	if _, err := evalJS[chromedp.Void](d, js); err != nil {
		d.t.Fatalf("evaluating %s: %v", js, err)
	}
}

func (d *dashTab) click(sel string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.Ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		d.t.Fatalf("clicking %s: %v", sel, err)
	}
}

// visitorsShown is the overview's "Unique visitors" figure.
func (d *dashTab) visitorsShown() string {
	v, _ := evalJS[string](d, `document.querySelector('#stat-visitors .stat-value')?.textContent || ''`)
	return v
}

// untilVisitors waits for the overview to show n visitors.
func (d *dashTab) untilVisitors(what string, n int) {
	d.t.Helper()
	d.until(what+": "+strconv.Itoa(n)+" visitors", `(document.querySelector('#stat-visitors .stat-value')?.textContent || '').replace(/\D/g, '') === '`+strconv.Itoa(n)+`'`)
}

// loaded is true when the page has rendered and nothing is loading.
const loaded = `document.getElementById('main').dataset.page && !document.querySelector('#main .spinner, #main .skeleton') && document.getElementById('main').children.length > 0`

// overviewReady: the headline numbers, the chart and every panel.
const overviewReady = loaded + ` && document.querySelector('#stat-visitors .stat-value') && document.querySelector('#main-chart canvas') &&
	['pages', 'sources', 'locations', 'devices'].every((p) => document.querySelector('#panel-' + p + ' .rank-row, #panel-' + p + ' .empty'))`

// noAlert: no page section shows an error box.
const noAlert = `!document.querySelector('#main .error, #main [role=alert]')`

func dashURL(path string, q url.Values) string {
	u := base + "/analytics" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// TestDashboardInBrowser loads generated traffic into a real Caddy and
// looks at the dashboard in Chromium: every page, filters, date ranges,
// screenshots, hostile event values, first-load weight, themes, a phone,
// and a cross-origin page trying to write.
func TestDashboardInBrowser(t *testing.T) {
	findChromium(t)
	startCaddy(t, dashConfig(filepath.Join(t.TempDir(), "dash.db")))
	w := newDashWorld(t, 300)
	b := StartBrowser(t)
	now := w.now
	day := func(d time.Time) string { return d.Format("2006-01-02") }
	today := now.Truncate(24 * time.Hour)

	// Definitions the cohorts and actions pages show.
	for _, c := range []struct{ path, body string }{
		{"/cohorts", `{"name":"Buyers","kind":"behavioral","performed":"purchase","days":30}`},
		{"/actions", `{"name":"Signed up","steps":[{"event":"signed_up"}]}`},
	} {
		res, err := http.Post(api+c.path, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 201 {
			t.Fatalf("POST %s: %d %s", c.path, res.StatusCode, body)
		}
	}
	var cohorts struct{ Results []struct{ ID int } }
	getJSON(t, api+"/cohorts", &cohorts)
	var buyers int
	for _, v := range w.visitors {
		if slices.Contains(v.customs(), "purchase") {
			buyers++
		}
	}
	if len(cohorts.Results) != 1 || buyers == 0 {
		t.Fatalf("cohorts %v, %d buyers", cohorts, buyers)
	}
	cohortID := strconv.Itoa(cohorts.Results[0].ID)
	// A person of the traffic who signed up and identified.
	var known dashVisitor
	for _, v := range w.visitors {
		if v.user != "" {
			known = v
			break
		}
	}

	t.Run("pages", func(t *testing.T) {
		d := openDash(t, b)
		funnel := url.Values{"step": {"$pageview", "signed_up", "purchase"}}
		for _, p := range []struct{ name, url, ready string }{
			{"overview", dashURL("/", nil), overviewReady},
			{"trends", dashURL("/insights/trends", nil), `document.querySelector('#trends-chart canvas') && document.querySelectorAll('#trends-table tbody tr').length > 0`},
			{"funnel", dashURL("/insights/funnel", funnel), `document.querySelectorAll('#funnel-bars .funnel-step').length === 3`},
			{"retention", dashURL("/insights/retention", nil), `document.querySelectorAll('#retention-table tbody tr').length > 2`},
			{"paths", dashURL("/insights/paths", nil), `document.querySelectorAll('#paths-chart svg path').length > 3`},
			{"persons", dashURL("/persons", nil), `document.querySelectorAll('#persons-table tbody tr').length > 50`},
			{"person", dashURL("/persons/"+url.PathEscape(known.user), nil), `document.getElementById('person-name')?.textContent === ` + strconv.Quote(known.email) + ` && document.querySelectorAll('#person-events tr.ev-row').length > 1 && document.getElementById('person-ids')?.textContent.includes(` + strconv.Quote(known.anon) + `)`},
			{"events", dashURL("/events", nil), `document.querySelectorAll('#events-table tr.ev-row').length === 50`},
			{"live", dashURL("/live", nil), `document.getElementById('live-state')?.textContent === 'Connected' && /^\d+$/.test(document.getElementById('online-count')?.textContent)`},
			{"cohorts", dashURL("/cohorts", nil), `document.querySelector('#cohorts-table tbody tr')?.textContent.includes('Buyers')`},
			{"cohort", dashURL("/cohorts/"+cohortID, nil), `document.getElementById('cohort-count')?.textContent === '` + strconv.Itoa(buyers) + `'`},
			{"overview of a cohort", dashURL("/", url.Values{"cohort": {cohortID}}), `document.querySelector('#filters .cohort-name')?.textContent === 'Buyers'`},
			{"actions", dashURL("/actions", nil), `document.querySelector('#actions-table tbody tr')?.textContent.includes('Signed up')`},
			{"settings", dashURL("/settings", nil), `document.querySelector('#snippet-card')?.textContent.includes('/_f/app.js') && document.querySelectorAll('#config-table tr').length > 5 &&
				((row) => row('max_body') === '1 MiB' && row('rate_limit') === 'off' && row('site') === 'test.example')((k) => [...document.querySelectorAll('#config-table tr')].find((r) => r.cells[0].querySelector('code')?.textContent === k)?.cells[1].textContent)`},
		} {
			d.Navigate(p.url)
			d.until(p.name+" rendered", loaded+" && "+p.ready)
			if ok, _ := evalJS[bool](d, noAlert); !ok {
				txt, _ := evalJS[string](d, `document.querySelector('#main .error, #main [role=alert]').textContent`)
				t.Errorf("%s: an error box: %s", p.name, txt)
			}
			d.noErrors(p.name)
		}
	})

	t.Run("filters", func(t *testing.T) {
		d := openDash(t, b)
		from, to := day(today.Add(-6*24*time.Hour)), day(today)
		all := w.count(today.Add(-6*24*time.Hour), today.Add(24*time.Hour), nil)
		if all != len(w.visitors)+1 {
			t.Fatalf("generated %d persons, counted %d", len(w.visitors)+1, all)
		}
		d.Navigate(dashURL("/", nil))
		d.until("the overview", overviewReady)
		d.untilVisitors("the last 7 days", all)

		// A click on a country filters the whole page.
		us := w.count(today.Add(-6*24*time.Hour), today.Add(24*time.Hour), propIs("$geoip_country_code", "US"))
		if got := apiVisitors(t, from, to, "$geoip_country_code==US"); got != us || us == 0 || us == all {
			t.Fatalf("US visitors: API %d, traffic %d of %d", got, us, all)
		}
		d.click(`#panel-locations .rank-row[data-value="US"]`)
		d.untilVisitors("filtered by country", us)
		d.until("every panel filtered", overviewReady+` && document.querySelectorAll('#panel-locations .rank-row').length === 1 &&
			document.querySelector('.filter-chip')?.dataset.filter === '$geoip_country_code==US' && new URLSearchParams(location.search).get('filter') === '$geoip_country_code==US'`)
		pagesTop, _ := evalJS[string](d, `document.querySelector('#panel-pages .rank-row .rank-num').textContent`)
		if n, _ := strconv.Atoi(strings.ReplaceAll(pagesTop, ",", "")); n == 0 || n > us {
			t.Errorf("top page of US visitors shows %q visitors, at most %d", pagesTop, us)
		}

		// Then a page: both filters hold.
		both := w.count(today.Add(-6*24*time.Hour), today.Add(24*time.Hour), func(e dashEv) bool {
			return propIs("$geoip_country_code", "US")(e) && pathIs("/pricing")(e)
		})
		if got := apiVisitors(t, from, to, "$geoip_country_code==US", "$pathname==/pricing"); got != both || both == 0 || both == us {
			t.Fatalf("US visitors of /pricing: API %d, traffic %d (US %d)", got, both, us)
		}
		d.click(`#panel-pages .rank-row[data-value="/pricing"]`)
		d.untilVisitors("filtered by country and page", both)
		d.until("two filter chips", `document.querySelectorAll('.filter-chip').length === 2`)

		// Dropping the country keeps the page.
		pricing := w.count(today.Add(-6*24*time.Hour), today.Add(24*time.Hour), pathIs("/pricing"))
		if got := apiVisitors(t, from, to, "$pathname==/pricing"); got != pricing {
			t.Fatalf("/pricing visitors: API %d, traffic %d", got, pricing)
		}
		d.click(`.filter-chip[data-filter="$geoip_country_code==US"] .chip-x`)
		d.untilVisitors("filtered by page only", pricing)

		// The date range: yesterday, from the picker.
		d.Navigate(dashURL("/", nil))
		d.until("the overview", overviewReady)
		yesterday := w.count(today.Add(-24*time.Hour), today, nil)
		if got := apiVisitors(t, day(today.Add(-24*time.Hour)), day(today.Add(-24*time.Hour))); got != yesterday || yesterday == 0 || yesterday == all {
			t.Fatalf("yesterday: API %d, traffic %d of %d", got, yesterday, all)
		}
		d.js(`(() => { const s = document.getElementById('period'); s.value = 'yesterday'; s.dispatchEvent(new Event('change', {bubbles: true})); })()`)
		d.untilVisitors("yesterday", yesterday)
		d.until("the picker shows yesterday", `document.getElementById('period').value === 'yesterday' && new URLSearchParams(location.search).get('period') === 'yesterday'`)

		// A custom range of three whole days.
		cf, ct := today.Add(-4*24*time.Hour), today.Add(-2*24*time.Hour)
		custom := w.count(cf, ct.Add(24*time.Hour), nil)
		if got := apiVisitors(t, day(cf), day(ct)); got != custom || custom == yesterday || custom == all {
			t.Fatalf("custom range: API %d, traffic %d", got, custom)
		}
		d.js(`(() => { const s = document.getElementById('period'); s.value = 'custom'; s.dispatchEvent(new Event('change', {bubbles: true})); })()`)
		d.until("the custom range form", `!document.querySelector('.custom-range').hidden`)
		d.js(`document.getElementById('range-from').value = '` + day(cf) + `'; document.getElementById('range-to').value = '` + day(ct) + `'`)
		d.click(`.custom-range button[type=submit]`)
		d.untilVisitors("the custom range", custom)
		d.until("the range in the URL and the chart", overviewReady+` && new URLSearchParams(location.search).get('from') === '`+day(cf)+`'`)
		d.noErrors("filters")
	})

	shots := os.Getenv("FIRSTPARTY_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	screenshot := func(t *testing.T, d *dashTab, name string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(d.Ctx, 20*time.Second)
		defer cancel()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		file := filepath.Join(shots, name+".png")
		if err := os.WriteFile(file, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		checkImage(t, file, buf)
	}

	t.Run("screenshots", func(t *testing.T) {
		d := openDash(t, b)
		d.Navigate(dashURL("/", nil))
		d.until("the overview", overviewReady)
		screenshot(t, d, "overview")
		d.Navigate(dashURL("/insights/funnel", url.Values{"step": {"$pageview", "signed_up", "purchase"}}))
		d.until("the funnel", loaded+` && document.querySelectorAll('#funnel-bars .funnel-step').length === 3`)
		screenshot(t, d, "funnel")
		d.Navigate(dashURL("/insights/retention", nil))
		d.until("the retention table", loaded+` && document.querySelectorAll('#retention-table tbody tr').length > 2`)
		screenshot(t, d, "retention")
		if os.Getenv("FIRSTPARTY_SCREENSHOTS") != "" {
			// More pages, for a person to look at.
			for _, p := range []struct{ name, url, ready string }{
				{"trends", dashURL("/insights/trends", url.Values{"event": {"$pageview", "signed_up"}}), `document.querySelector('#trends-chart canvas')`},
				{"paths", dashURL("/insights/paths", nil), `document.querySelector('#paths-chart svg')`},
				{"events", dashURL("/events", nil), `document.querySelector('#events-table tr.ev-row')`},
				{"person", dashURL("/persons/"+url.PathEscape(known.user), nil), `document.querySelector('#person-events tr.ev-row')`},
				{"persons", dashURL("/persons", nil), `document.querySelector('#persons-table tbody tr')`},
				{"cohort", dashURL("/cohorts/"+cohortID, nil), `document.getElementById('cohort-count')`},
				{"actions", dashURL("/actions", nil), `document.querySelector('#actions-table tbody tr')`},
				{"settings", dashURL("/settings", nil), `document.querySelector('#config-table tr')`},
			} {
				d.Navigate(p.url)
				d.until(p.name, loaded+" && "+p.ready)
				screenshot(t, d, p.name)
			}
		}
		d.noErrors("screenshots")
	})

	// An attacker's values anywhere an event's values are shown are text.
	xssSafe := `window.__xss === undefined && document.title !== 'pwned' &&
		!document.querySelector('[onerror], [onload], [onmouseover], img[src="x"], #main script') &&
		[...document.scripts].every((s) => s.src)`
	hasText := func(ss ...string) string {
		var parts []string
		for _, s := range ss {
			parts = append(parts, `document.body.innerText.includes(`+strconv.Quote(s)+`)`)
		}
		return strings.Join(parts, " && ")
	}
	t.Run("xss", func(t *testing.T) {
		d := openDash(t, b)
		// The events list, and the details of the hostile pageview.
		d.Navigate(dashURL("/events", nil))
		// The person is shown by their (hostile) name; the id in the details.
		d.until("the hostile events listed", loaded+` && `+hasText(xssEvent, xssName, xssPath, xssTitle))
		d.js(`[...document.querySelectorAll('#events-table tr.ev-row')].find((r) => r.textContent.includes(` + strconv.Quote(xssTitle) + `)).click()`)
		d.until("the hostile pageview's properties", `document.querySelector('#events-table .ev-detail') && `+hasText(xssProp, xssRef, xssName, xssID))
		d.until("no payload ran in the events list", xssSafe)

		// The person page.
		d.Navigate(dashURL("/persons/"+url.PathEscape(xssID), nil))
		d.until("the hostile person", loaded+` && document.getElementById('person-name')?.textContent === `+strconv.Quote(xssName)+
			` && document.querySelectorAll('#person-events tr.ev-row').length === 3 && `+hasText(xssProp, xssID, xssEvent, xssTitle))
		d.until("no payload ran on the person page", xssSafe)

		// The overview's breakdowns, filtered to the hostile events (the
		// filter chip shows the value too).
		d.Navigate(dashURL("/", url.Values{"filter": {"note==" + xssProp}}))
		d.until("the hostile breakdowns", overviewReady+` && `+hasText(xssPath, xssRef, "<i>", xssProp))
		d.click(`#panel-devices .tab[data-tab="browsers"]`)
		d.until("the hostile browser", `document.querySelector('#panel-devices .rank-row')?.dataset.value === `+strconv.Quote(xssName)+` && `+hasText(xssName))
		d.click(`#panel-sources .tab[data-tab="utm_campaign"]`)
		d.until("the hostile campaign", `document.querySelector('#panel-sources .rank-row')?.dataset.value === `+strconv.Quote(xssTitle)+` && `+hasText(xssTitle))
		d.until("no payload ran on the overview", xssSafe)

		// The live view, as the events arrive.
		d.Navigate(dashURL("/live", nil))
		d.until("the live stream connected", `document.getElementById('live-state')?.textContent === 'Connected'`)
		dashLoad(t, dashXSSEvents(time.Now()))
		d.until("the hostile events live", `document.getElementById('live-received').textContent === '3' && document.querySelectorAll('#live-stream li').length === 3 && `+hasText(xssEvent, xssPath, xssName))
		d.until("no payload ran in the live view", xssSafe)

		// Insights: a breakdown by the hostile browser, the hostile event
		// as a funnel step, the hostile path in the paths chart.
		hostile := url.Values{"filter": {"note==" + xssProp}}
		trends := url.Values{"filter": {"note==" + xssProp}, "breakdown": {"$browser"}, "event": {"$pageview", xssEvent}}
		d.Navigate(dashURL("/insights/trends", trends))
		d.until("the hostile trends breakdown", loaded+` && `+hasText(xssName, xssEvent))
		d.until("no payload ran in trends", xssSafe)
		d.Navigate(dashURL("/insights/funnel", url.Values{"step": {"$pageview", xssEvent}, "filter": {"note==" + xssProp}}))
		d.until("the hostile funnel step", loaded+` && document.querySelectorAll('.funnel-step').length === 2 && `+hasText(xssEvent))
		d.until("no payload ran in the funnel", xssSafe)
		// A second page view in the hostile session makes a path.
		dashLoad(t, []map[string]any{{"event": "$pageview", "distinct_id": xssID, "timestamp": time.Now().Add(3 * time.Second),
			"properties": map[string]any{"$session_id": "s-xss", "$current_url": "https://test.example/after", "$pathname": "/after", "note": xssProp}}})
		d.Navigate(dashURL("/insights/paths", hostile))
		d.until("the hostile path", loaded+` && document.querySelector('#paths-chart svg') && [...document.querySelectorAll('#paths-chart title')].some((e) => e.textContent.startsWith(`+strconv.Quote(xssPath+": ")+`))`)
		d.until("no payload ran in paths", xssSafe)

		// The persons list, searched for the hostile person.
		d.Navigate(dashURL("/persons", url.Values{"search": {"onerror=window.__xss=5"}}))
		d.until("the hostile person listed", loaded+` && document.querySelector('#persons-table tbody tr') && `+hasText(xssName))
		d.until("no payload ran in the persons list", xssSafe)

		// The heatmap's page picker lists the hostile path; the frame
		// refuses it (not a path of this site's pages that it can show).
		d.Navigate(dashURL("/heatmap", url.Values{"url": {xssPath}}))
		d.until("the hostile path in the page picker", loaded+` && [...document.querySelectorAll('#heatmap-page option')].some((o) => o.textContent === `+strconv.Quote(xssPath)+`)`)
		d.until("no payload ran on the heatmap page", xssSafe)

		// A recording of the hostile visitor whose page carried the payloads:
		// listed as text, replayed in a frame where nothing runs.
		at := time.Now().UnixMilli()
		page := map[string]any{"type": 0, "id": 1, "childNodes": []any{
			map[string]any{"type": 2, "id": 2, "tagName": "html", "attributes": map[string]any{}, "childNodes": []any{
				map[string]any{"type": 2, "id": 3, "tagName": "head", "attributes": map[string]any{}, "childNodes": []any{}},
				map[string]any{"type": 2, "id": 4, "tagName": "body", "attributes": map[string]any{"onload": "window.parent.__xss=8"}, "childNodes": []any{
					map[string]any{"type": 2, "id": 5, "tagName": "img", "attributes": map[string]any{"src": "x", "onerror": "window.parent.__xss=9"}, "childNodes": []any{}},
					map[string]any{"type": 2, "id": 6, "tagName": "p", "attributes": map[string]any{"id": "hostile"}, "childNodes": []any{
						map[string]any{"type": 3, "id": 7, "textContent": xssTitle}}},
				}},
			}},
		}}
		snaps, _ := json.Marshal([]map[string]any{{"event": "$snapshot", "properties": map[string]any{
			"distinct_id": xssID, "$session_id": "s-xss-rec", "$window_id": "w", "token": "phc_dash",
			"$snapshot_data": []any{
				map[string]any{"type": 4, "timestamp": at, "data": map[string]any{"href": "https://test.example" + xssPath, "width": 800, "height": 600}},
				map[string]any{"type": 2, "timestamp": at + 1, "data": map[string]any{"node": page, "initialOffset": map[string]any{"left": 0, "top": 0}}},
				map[string]any{"type": 3, "timestamp": at + 3000, "data": map[string]any{"source": 1, "positions": []any{map[string]any{"x": 5, "y": 5, "id": 6, "timeOffset": 0}}}},
			}}}})
		if code, res := post(t, "/s/", snaps, map[string]string{"Content-Type": "application/json"}); code != 200 {
			t.Fatalf("posting the hostile recording: %d %s", code, res)
		}
		d.Navigate(dashURL("/recordings", nil))
		d.until("the hostile recording listed", loaded+` && document.querySelector('#recordings-table tr[data-session="s-xss-rec"]') && `+hasText(xssName))
		d.until("no payload ran in the recordings list", xssSafe)
		d.Navigate(dashURL("/recordings/s-xss-rec", nil))
		frame := `document.querySelector('#replay-player iframe')`
		d.until("the hostile recording replayed", frame+` && `+frame+`.contentDocument && `+frame+`.contentDocument.getElementById('hostile')?.textContent === `+strconv.Quote(xssTitle))
		d.until("no payload ran in the replay", xssSafe+` && !`+frame+`.contentDocument.querySelector('script')`)
		// The recorded page's own handlers (onload, onerror) are refused by
		// the replay frame's sandbox, which Chromium reports; that report is
		// the proof, not an error of ours.
		d.mu.Lock()
		var rest []string
		for _, e := range d.errs {
			if !strings.Contains(e, "Blocked script execution") || !strings.Contains(e, "sandboxed") {
				rest = append(rest, e)
			}
		}
		d.errs = rest
		d.mu.Unlock()
		d.noErrors("xss")
	})

	t.Run("first_load_size", func(t *testing.T) {
		d := openDash(t, b)
		d.Navigate(dashURL("/", nil))
		d.until("the overview", overviewReady)
		type entry struct {
			Name                       string
			Transfer, Encoded, Decoded float64
		}
		res, err := evalJS[[]entry](d, `[...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')].map((e) =>
			({name: e.name, transfer: e.transferSize, encoded: e.encodedBodySize, decoded: e.decodedBodySize}))`)
		if err != nil {
			t.Fatal(err)
		}
		var total, decoded float64
		var js int
		for _, e := range res {
			total += e.Transfer
			decoded += e.Decoded
			if strings.Contains(e.Name, "/assets/") && (strings.HasSuffix(e.Name, ".js") || strings.HasSuffix(e.Name, ".css")) {
				js++
				if e.Transfer == 0 {
					t.Errorf("%s: transferred 0 bytes on a first load (from a cache?)", e.Name)
				}
				if e.Decoded > 2000 && e.Encoded > e.Decoded*0.6 {
					t.Errorf("%s: %v bytes sent for %v: not compressed", e.Name, e.Encoded, e.Decoded)
				}
			}
		}
		t.Logf("first load of the overview: %d requests, %.1f KB transferred (%.1f KB decoded)", len(res), total/1024, decoded/1024)
		if js < 5 || total < 20*1024 {
			t.Errorf("measured %d assets, %v bytes: the measurement missed the load: %s", js, total, asJSON(res))
		}
		if total > 300*1024 {
			t.Errorf("first load transferred %.1f KB, over 300 KB: %s", total/1024, asJSON(res))
		}
		d.noErrors("first load")
	})

	t.Run("themes", func(t *testing.T) {
		d := openDash(t, b)
		media := func(scheme string) {
			if _, err := chromedp.Call(d.Ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
				t.Fatal(err)
			}
		}
		// The luminance of the page's and a card's background, and of the text.
		lum := `(() => { const l = (el, p) => { const m = getComputedStyle(el)[p].match(/\d+(\.\d+)?/g).map(Number); return (0.2126 * m[0] + 0.7152 * m[1] + 0.0722 * m[2]) / 255; };
			return [l(document.body, 'backgroundColor'), l(document.querySelector('.card'), 'backgroundColor'), l(document.body, 'color')]; })()`
		check := func(what string, dark bool) {
			t.Helper()
			cond := `((v) => v[0] < 0.15 && v[1] < 0.2 && v[2] > 0.7)(` + lum + `)`
			if !dark {
				cond = `((v) => v[0] > 0.85 && v[1] > 0.9 && v[2] < 0.2)(` + lum + `)`
			}
			d.until(what, overviewReady+" && "+cond)
		}
		media("dark")
		d.Navigate(dashURL("/", nil))
		check("the dark theme from the system", true)
		screenshot(t, d, "overview-dark")
		media("light")
		check("the light theme from the system", false)
		d.click("#theme-toggle")
		check("the dark theme from the toggle", true)
		d.until("the choice remembered", `document.documentElement.dataset.theme === 'dark' && localStorage.getItem('fp-theme') === 'dark'`)
		d.Navigate(dashURL("/insights/funnel", url.Values{"step": {"$pageview", "signed_up"}}))
		d.until("the funnel in the remembered dark theme", loaded+` && document.documentElement.dataset.theme === 'dark' && document.querySelectorAll('.funnel-step').length === 2`)
		d.Navigate(dashURL("/", nil))
		d.click("#theme-toggle")
		check("the light theme from the toggle", false)
		d.noErrors("themes")
	})

	t.Run("phone", func(t *testing.T) {
		d := openDash(t, b)
		ctx, cancel := context.WithTimeout(d.Ctx, 10*time.Second)
		err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		// What sticks out to the right of the page, if anything.
		overflow := `(() => { const w = document.documentElement.clientWidth; if (document.documentElement.scrollWidth <= w) return '';
			return document.documentElement.scrollWidth + ' > ' + w + ': ' + [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > w + 1 && !e.closest('.table-wrap, .chart, .sankey, .rank')).slice(0, 5)
				.map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\s+/).join('.') : '')).join(', '); })()`
		for _, p := range []struct{ name, url, ready string }{
			{"overview", dashURL("/", nil), overviewReady},
			{"funnel", dashURL("/insights/funnel", url.Values{"step": {"$pageview", "signed_up", "purchase"}}), `document.querySelectorAll('.funnel-step').length === 3`},
			{"retention", dashURL("/insights/retention", nil), `document.querySelector('#retention-table tbody tr')`},
			{"paths", dashURL("/insights/paths", nil), `document.querySelector('#paths-chart svg')`},
			{"events", dashURL("/events", nil), `document.querySelector('#events-table tr.ev-row')`},
			{"persons", dashURL("/persons", nil), `document.querySelector('#persons-table tbody tr')`},
			{"person", dashURL("/persons/"+url.PathEscape(known.user), nil), `document.querySelector('#person-events tr.ev-row')`},
			{"live", dashURL("/live", nil), `document.getElementById('live-state')?.textContent === 'Connected'`},
			{"settings", dashURL("/settings", nil), `document.querySelector('#config-table tr')`},
		} {
			d.Navigate(p.url)
			d.until(p.name+" on a phone", loaded+" && "+p.ready)
			if s, err := evalJS[string](d, overflow); err != nil || s != "" {
				t.Errorf("%s on a phone: the page overflows horizontally: %s %v", p.name, s, err)
			}
			if p.name == "overview" {
				screenshot(t, d, "overview-phone")
			}
		}
		d.noErrors("phone")
	})

	t.Run("cross_origin_page", func(t *testing.T) {
		// A page of another origin posts to the dashboard's API with the
		// browser's credentials, as a CSRF attack would: refused.
		d := openDash(t, b)
		d.Navigate("http://localhost:9080/")
		typ, err := evalJS[string](d, `fetch('`+api+`/actions', {method: 'POST', mode: 'no-cors', credentials: 'include',
			headers: {'Content-Type': 'text/plain'}, body: JSON.stringify({name: 'csrf-made', steps: [{event: '$pageview'}]})}).then((r) => r.type)`)
		if err != nil || typ != "opaque" {
			t.Fatalf("the cross-origin request was not sent: %q %v", typ, err)
		}
		var acts struct{ Results []struct{ Name string } }
		getJSON(t, api+"/actions", &acts)
		for _, a := range acts.Results {
			if a.Name == "csrf-made" {
				t.Fatal("a cross-origin page created an action")
			}
		}
		// The dashboard itself may.
		d.Navigate(dashURL("/actions", nil))
		d.until("the actions page", loaded)
		st, err := evalJS[float64](d, `fetch('/analytics/api/actions', {method: 'POST', headers: {'Content-Type': 'application/json'},
			body: JSON.stringify({name: 'same-origin-made', steps: [{event: '$pageview'}]})}).then((r) => r.status)`)
		if err != nil || st != 201 {
			t.Fatalf("same-origin POST: %v %v", st, err)
		}
	})
}

// checkImage fails unless the PNG is a real picture of a page: big enough,
// many colours, not one flat colour.
func checkImage(t *testing.T, name string, b []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	r := img.Bounds()
	if r.Dx() < 700 || r.Dy() < 500 {
		t.Errorf("%s: %dx%d", name, r.Dx(), r.Dy())
	}
	colors := map[[3]uint32]int{}
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y += 3 {
		for x := r.Min.X; x < r.Max.X; x += 3 {
			c := color3(img, x, y)
			colors[c]++
			n++
		}
	}
	most := 0
	for _, k := range colors {
		most = max(most, k)
	}
	if len(colors) < 64 || most > n*9/10 {
		t.Errorf("%s: a blank image? %d colours, the commonest covers %d of %d samples", name, len(colors), most, n)
	}
	t.Logf("screenshot %s (%dx%d, %d KB)", name, r.Dx(), r.Dy(), len(b)/1024)
}

func color3(img image.Image, x, y int) [3]uint32 {
	r, g, b, _ := img.At(x, y).RGBA()
	return [3]uint32{r >> 8, g >> 8, b >> 8}
}

// TestDashboardWritesNeedSameOrigin: through Caddy, every state-changing
// API call from another origin is refused and changes nothing, the same
// calls from the dashboard's origin work, and the pages' CSP allows no
// inline script.
func TestDashboardWritesNeedSameOrigin(t *testing.T) {
	startCaddy(t, dashConfig(filepath.Join(t.TempDir(), "csrf.db")))
	at := time.Now().Add(-time.Hour)
	dashLoad(t, []map[string]any{{"event": "$pageview", "distinct_id": "victim", "timestamp": at, "properties": map[string]any{"$current_url": "https://test.example/"}}})

	do := func(method, path, body string, hdr map[string]string) (int, string) {
		t.Helper()
		h := map[string]string{}
		if body != "" {
			h["Content-Type"] = "application/json"
		}
		for k, v := range hdr {
			h[k] = v
		}
		return send(t, method, api+path, []byte(body), h)
	}
	same := map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": base}
	code, body := do("POST", "/actions", `{"name":"kept","steps":[{"event":"$pageview"}]}`, same)
	if code != 201 {
		t.Fatalf("same-origin POST: %d %s", code, body)
	}
	var made struct{ ID int }
	json.Unmarshal([]byte(body), &made)
	action := "/actions/" + strconv.Itoa(made.ID)

	hostile := map[string]map[string]string{
		"cross-site fetch":      {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		"same-site subdomain":   {"Sec-Fetch-Site": "same-site", "Origin": "http://evil.127.0.0.1:9080"},
		"old browser, Origin":   {"Origin": "https://evil.example"},
		"other port, Origin":    {"Origin": "http://127.0.0.1:9081"},
		"form from a null page": {"Sec-Fetch-Site": "cross-site", "Origin": "null"},
	}
	for name, hdr := range hostile {
		for _, c := range []struct{ method, path, body string }{
			{"POST", "/actions", `{"name":"evil","steps":[{"event":"$pageview"}]}`},
			{"PUT", action, `{"name":"evil","steps":[{"event":"$pageview"}]}`},
			{"DELETE", action, ""},
			{"POST", "/cohorts", `{"name":"evil","kind":"behavioral","performed":"$pageview","days":7}`},
			{"DELETE", "/persons/victim", ""},
		} {
			if code, body := do(c.method, c.path, c.body, hdr); code != 403 {
				t.Errorf("%s: %s %s: %d %s", name, c.method, c.path, code, body)
			}
		}
	}
	var acts struct{ Results []struct{ Name string } }
	getJSON(t, api+"/actions", &acts)
	var cohorts struct{ Results []any }
	getJSON(t, api+"/cohorts", &cohorts)
	if len(acts.Results) != 1 || acts.Results[0].Name != "kept" || len(cohorts.Results) != 0 {
		t.Errorf("cross-origin calls changed definitions: %v %v", acts, cohorts)
	}
	var person map[string]any
	getJSON(t, api+"/persons/victim", &person)

	// The same calls from the dashboard's own origin work.
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"PUT", action, `{"name":"renamed","steps":[{"event":"$pageview"}]}`, 200},
		{"POST", "/cohorts", `{"name":"all","kind":"behavioral","performed":"$pageview","days":7}`, 201},
		{"DELETE", action, "", 204},
		{"DELETE", "/persons/victim", "", 204},
	} {
		if code, body := do(c.method, c.path, c.body, same); code != c.want {
			t.Errorf("same-origin %s %s: %d %s", c.method, c.path, code, body)
		}
	}

	// The CSP of the page and its assets: scripts from the origin only,
	// none inline, and the page carries none.
	res, err := http.Get(base + "/analytics/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	csp := res.Header.Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			directives[f[0]] = strings.Join(f[1:], " ")
		}
	}
	script := directives["script-src"]
	if script == "" {
		script = directives["default-src"]
	}
	if script != "'self'" || directives["default-src"] != "'self'" || directives["object-src"] != "'none'" || directives["base-uri"] == "" ||
		strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP %q", csp)
	}
	if m := regexp.MustCompile(`(?is)<script\b[^>]*>\s*[^<\s]`).Find(page); m != nil {
		t.Errorf("inline script in the page: %s", m)
	}
	if m := regexp.MustCompile(`(?i)\son[a-z]+\s*=`).Find(page); m != nil {
		t.Errorf("inline event handler in the page: %s", m)
	}
	if !bytes.Contains(page, []byte(`<script type="module" src="/analytics/assets/`)) {
		t.Errorf("the page loads no app script: %s", page)
	}
}
