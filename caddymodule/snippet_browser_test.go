package caddymodule_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The pages of the test site. None carries the snippet: `inject` puts it in.
var snippetPages = map[string]string{
	"index.html": `<!doctype html>
<html><head><meta charset="utf-8"><title>Home</title>
<style>body{margin:0;font:16px sans-serif} .tall{height:3000px} button{margin:4px}</style></head>
<body>
<nav><a id="to-other" class="nav-link" href="/other.html">Other page</a></nav>
<main>
<button id="buy" class="btn primary" data-testid="buy-button">Buy now</button>
<button id="rage">Does nothing</button>
<div class="ph-no-capture"><button id="secret">Secret</button></div>
<div data-fp-no-capture><span><button id="secret2">Also secret</button></span></div>
<form id="signup" action="/signup">
  <input id="email" type="text" name="email">
  <input id="pw" type="password" name="password">
  <textarea id="note" name="note"></textarea>
  <select id="plan" name="plan"><option>free</option><option>pro</option></select>
  <button id="submit" type="submit">Sign up</button>
</form>
<div class="tall"></div>
</main>
<script>document.getElementById('signup').addEventListener('submit', function (e) { e.preventDefault() })</script>
</body></html>
`,
	"other.html": `<!doctype html><html><head><title>Other</title></head><body><p>Other page</p></body></html>
`,
	"spa.html": `<!doctype html><html><head><title>SPA</title></head><body><p id="app">SPA</p></body></html>
`,
}

func snippetSite(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range snippetPages {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// snippetConfig serves dir with `inject`; extra goes into the analytics
// block, and route is put in front of everything (for outages).
func snippetConfig(db, dir, extra, route string) string {
	return fmt.Sprintf(testGlobal+`http://127.0.0.1:9080 {
	bind 127.0.0.1
	%s
	analytics {
		db %s
		site test.example
		rate_limit off
		inject
		%s
	}
	root * %s
	file_server
}
`, route, db, extra, dir)
}

// waitEvents polls the events API until cond accepts the stored events.
func waitEvents(t *testing.T, what string, cond func([]apiEvent) bool) []apiEvent {
	t.Helper()
	var evs []apiEvent
	WaitFor(t, what, 20*time.Second, func() (bool, string) {
		evs = events(t, "")
		return cond(evs), summary(evs)
	})
	return evs
}

func summary(evs []apiEvent) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s %v; ", e.Event, e.Properties["$pathname"])
	}
	return b.String()
}

func named(evs []apiEvent, name string) []apiEvent {
	var out []apiEvent
	for _, e := range evs {
		if e.Event == name {
			out = append(out, e)
		}
	}
	return out
}

func has(name string, n int) func([]apiEvent) bool {
	return func(evs []apiEvent) bool { return len(named(evs, name)) >= n }
}

func str(v any) string { s, _ := v.(string); return s }

func num(v any) float64 { f, _ := v.(float64); return f }

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestSnippetInBrowser drives the injected snippet in Chromium: pageview,
// autocapture with the element chain and heatmap coordinates, nothing from
// form fields or no-capture areas, rage clicks, the API, and a page hide
// whose beacon carries $pageleave and what was still queued.
func TestSnippetInBrowser(t *testing.T) {
	dir := snippetSite(t)
	startCaddy(t, snippetConfig(filepath.Join(t.TempDir(), "snip.db"), dir, "", ""))
	b := StartBrowser(t)
	tab := b.NewTab()

	tab.Navigate(base + "/?utm_source=news&utm_medium=mail")
	tab.WaitPage(`window.firstparty && firstparty.get_distinct_id()`, 10*time.Second)
	anon := Eval[string](tab, `firstparty.get_distinct_id()`)

	evs := waitEvents(t, "the first $pageview", has("$pageview", 1))
	pv := named(evs, "$pageview")[0]
	p := pv.Properties
	for k, want := range map[string]any{
		"$lib": "firstparty", "$pathname": "/", "$host": "127.0.0.1:9080", "title": "Home",
		"utm_source": "news", "utm_medium": "mail", "$browser": "Chrome", "$os": "Linux",
		"$device_type": "Desktop", "$referring_domain": "$direct", "$viewport_width": float64(1280),
	} {
		if p[k] != want {
			t.Errorf("$pageview %s = %v, want %v", k, p[k], want)
		}
	}
	if pv.DistinctID != anon || !uuidV7.MatchString(pv.UUID) || !uuidV7.MatchString(str(p["$session_id"])) || !uuidV7.MatchString(str(p["$window_id"])) || num(p["$screen_width"]) == 0 {
		t.Errorf("$pageview ids: %s", asJSON(pv))
	}

	// Clicks: the element chain in PostHog's format, coordinates for heatmaps.
	tab.Do(chromedp.Click(chromedp.CSS("#buy")))
	evs = waitEvents(t, "the click on #buy", has("$autocapture", 1))
	click := named(evs, "$autocapture")[0].Properties
	chain := str(click["$elements_chain"])
	if !strings.HasPrefix(chain, `button.btn.primary:attr__class="btn primary"attr__data-testid="buy-button"attr__id="buy"attr_id="buy"nth-child="1"nth-of-type="1"text="Buy now";main:`) ||
		!strings.Contains(chain, ";body:") || click["$event_type"] != "click" || click["$el_text"] != "Buy now" {
		t.Errorf("click: %s", asJSON(click))
	}
	if x := num(click["$click_x"]); x <= 0 || x >= 1 || num(click["$click_y"]) <= 0 || click["$viewport_height"] == nil {
		t.Errorf("click coordinates: x %v y %v", click["$click_x"], click["$click_y"])
	}

	// Form fields: typed text and the password never leave the page;
	// no-capture areas send nothing; a password field sends nothing at all.
	tab.Do(
		chromedp.SendKeys(chromedp.CSS("#email"), "typed-secret-mail@example.com"),
		chromedp.SendKeys(chromedp.CSS("#pw"), "hunter2-typed-password"),
		chromedp.SendKeys(chromedp.CSS("#note"), "typed-secret-note"),
		chromedp.SetValue(chromedp.CSS("#plan"), "pro"),
		chromedp.Click(chromedp.CSS("#secret")),
		chromedp.Click(chromedp.CSS("#secret2")),
		chromedp.Click(chromedp.CSS("#submit")),
	)
	Eval[chromedp.Void](tab, `document.getElementById('plan').dispatchEvent(new Event('change', {bubbles: true}))`)
	evs = waitEvents(t, "the submit", func(evs []apiEvent) bool {
		for _, e := range named(evs, "$autocapture") {
			if e.Properties["$event_type"] == "submit" {
				return true
			}
		}
		return false
	})
	changed := map[string]bool{}
	for _, e := range named(evs, "$autocapture") {
		chain := str(e.Properties["$elements_chain"])
		if strings.Contains(chain, `"secret`) || strings.Contains(chain, `type="password"`) || strings.Contains(chain, "ph-no-capture") {
			t.Errorf("captured from a no-capture area or a password field: %s", chain)
		}
		if e.Properties["$event_type"] == "change" {
			changed[strings.SplitN(chain, ":", 2)[0]] = true
		}
		if e.Properties["$event_type"] == "submit" && !strings.HasPrefix(chain, `form:attr__action="/signup"attr__id="signup"`) {
			t.Errorf("submit chain %s", chain)
		}
	}
	if !changed["input"] || !changed["textarea"] || !changed["select"] {
		t.Errorf("change events for %v, want input, textarea and select", changed)
	}

	// Rage clicks: three quick clicks in one place.
	tab.Do(chromedp.Click(chromedp.CSS("#rage")), chromedp.Click(chromedp.CSS("#rage")), chromedp.Click(chromedp.CSS("#rage")))
	evs = waitEvents(t, "a $rageclick", has("$rageclick", 1))
	if rc := named(evs, "$rageclick"); len(rc) != 1 || !strings.HasPrefix(str(rc[0].Properties["$elements_chain"]), "button:") {
		t.Errorf("$rageclick: %s", asJSON(rc))
	}

	// The API.
	Eval[chromedp.Void](tab, `firstparty.register({tier: 'gold'}); firstparty.capture('plan_chosen', {plan: 'pro'}); firstparty.identify('user-42', {email: 'u@example.com'}); firstparty.alias('legacy-42')`)
	evs = waitEvents(t, "custom, identify and alias", func(evs []apiEvent) bool {
		return len(named(evs, "plan_chosen")) == 1 && len(named(evs, "$identify")) == 1 && len(named(evs, "$create_alias")) == 1
	})
	custom := named(evs, "plan_chosen")[0]
	if custom.Properties["plan"] != "pro" || custom.Properties["tier"] != "gold" || custom.DistinctID != anon {
		t.Errorf("custom event: %s", asJSON(custom))
	}
	ident := named(evs, "$identify")[0]
	if ident.DistinctID != "user-42" || ident.Properties["$anon_distinct_id"] != anon {
		t.Errorf("$identify: %s", asJSON(ident))
	}
	var person map[string]any
	getJSON(t, api+"/persons/"+anon, &person)
	if ids := fmt.Sprint(person["distinct_ids"]); !strings.Contains(ids, anon) || !strings.Contains(ids, "user-42") || !strings.Contains(ids, "legacy-42") {
		t.Errorf("person: %s", asJSON(person))
	}

	// Page hide: scroll, queue an event, leave. The beacon carries it and
	// the $pageleave.
	session := str(pv.Properties["$session_id"])
	Eval[chromedp.Void](tab, `window.scrollTo(0, 1500); firstparty.capture('last_words')`)
	tab.WaitPage(`window.scrollY >= 1500`, 5*time.Second)
	Eval[chromedp.Void](tab, `window.dispatchEvent(new Event('scroll'))`)
	tab.DoAndWaitLoad(chromedp.Click(chromedp.CSS("#to-other")))
	evs = waitEvents(t, "the page hide beacon and the next page", func(evs []apiEvent) bool {
		return len(named(evs, "last_words")) == 1 && len(named(evs, "$pageleave")) == 1 && len(named(evs, "$pageview")) == 2
	})
	leave := named(evs, "$pageleave")[0].Properties
	if leave["$prev_pageview_pathname"] != "/" || leave["$pathname"] != "/" || num(leave["$prev_pageview_duration"]) <= 0 ||
		num(leave["$prev_pageview_max_scroll"]) < 1500 || num(leave["$prev_pageview_max_content"]) < 1500+800-200 {
		t.Errorf("$pageleave: %s", asJSON(leave))
	}
	if f := num(leave["$prev_pageview_max_scroll_percentage"]); f <= 0.3 || f > 1 {
		t.Errorf("max scroll percentage %v", f)
	}
	if f := num(leave["$prev_pageview_max_content_percentage"]); f <= 0.5 || f > 1 {
		t.Errorf("max content percentage %v", f)
	}
	next := named(evs, "$pageview")[1]
	if next.DistinctID != "user-42" || next.Properties["$pathname"] != "/other.html" || next.Properties["$session_id"] != session || next.Properties["$window_id"] != pv.Properties["$window_id"] {
		t.Errorf("next page lost the identity or session: %s", asJSON(next))
	}
	if next.Properties["$referrer"] != base+"/?utm_source=news&utm_medium=mail" || next.Properties["$referring_domain"] != "127.0.0.1:9080" && next.Properties["$referring_domain"] != "127.0.0.1" {
		t.Errorf("referrer %v / %v", next.Properties["$referrer"], next.Properties["$referring_domain"])
	}

	// Nothing typed was stored anywhere, and every event is there once.
	all := asJSON(evs)
	for _, typed := range []string{"typed-secret", "hunter2"} {
		if strings.Contains(all, typed) {
			t.Errorf("stored events contain what the visitor typed (%s)", typed)
		}
	}
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.UUID] {
			t.Errorf("uuid %s stored twice", e.UUID)
		}
		seen[e.UUID] = true
	}
	if ex := tab.Exceptions(); len(ex) > 0 {
		t.Errorf("page exceptions: %v", ex)
	}
}

// TestSnippetSPA: pushState, replaceState, popstate and hashchange are page
// views, each closing the previous page with a $pageleave.
func TestSnippetSPA(t *testing.T) {
	dir := snippetSite(t)
	startCaddy(t, snippetConfig(filepath.Join(t.TempDir(), "spa.db"), dir, "", ""))
	// A call queued before the snippet loaded is played when it does.
	tab := StartBrowser(t).NewTab(InitScript(`window.firstparty = [['capture', 'queued_before_load', {q: 1}]]`))
	tab.Navigate(base + "/spa.html")
	waitEvents(t, "the first $pageview and the queued call", func(evs []apiEvent) bool {
		return has("$pageview", 1)(evs) && has("queued_before_load", 1)(evs)
	})
	steps := []struct{ js, path string }{
		{`history.pushState({}, '', '/spa/a')`, "/spa/a"},
		{`history.replaceState({}, '', '/spa/b')`, "/spa/b"},
		{`history.replaceState({}, '', '/spa/b')`, ""}, // same URL: no page view
		{`history.back()`, "/spa.html"},
		{`location.hash = 'section'`, "/spa.html#section"},
	}
	for _, s := range steps {
		Eval[chromedp.Void](tab, s.js)
		if s.path != "" {
			tab.WaitPage(fmt.Sprintf(`location.pathname + location.hash == %q`, s.path), 5*time.Second)
		}
	}
	evs := waitEvents(t, "five page views", has("$pageview", 5))
	var got []string
	for _, e := range named(evs, "$pageview") {
		u := str(e.Properties["$current_url"])
		got = append(got, strings.TrimPrefix(u, base))
	}
	if want := "[/spa.html /spa/a /spa/b /spa.html /spa.html#section]"; fmt.Sprint(got) != want {
		t.Errorf("page views %v, want %s", got, want)
	}
	var left []string
	for _, e := range named(evs, "$pageleave") {
		left = append(left, str(e.Properties["$prev_pageview_pathname"]))
		if num(e.Properties["$prev_pageview_duration"]) <= 0 {
			t.Errorf("$pageleave without duration: %s", asJSON(e.Properties))
		}
	}
	if want := "[/spa.html /spa/a /spa/b /spa.html]"; fmt.Sprint(left) != want {
		t.Errorf("page leaves %v, want %s", left, want)
	}
}

// privacySignals makes the tab's pages send Do Not Track (?dnt) or Global
// Privacy Control (?gpc), as browsers with those settings expose them.
const privacySignals = `(() => {
	if (location.search.includes('dnt')) Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'});
	if (location.search.includes('gpc')) Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true});
})()`

// TestSnippetPrivacy: Do Not Track and Global Privacy Control send and
// store nothing (unless respect_dnt off); opting out holds across pages
// until opting in.
func TestSnippetPrivacy(t *testing.T) {
	dir := snippetSite(t)
	db := filepath.Join(t.TempDir(), "priv.db")
	startCaddy(t, snippetConfig(db, dir, "", ""))
	b := StartBrowser(t)
	tab := b.NewTab(InitScript(privacySignals))
	// A browser with these settings also sends them as request headers,
	// which the server honours (for its own server pageviews too).
	headers := map[string]network.Headers{"/?dnt": {"DNT": "1"}, "/?gpc": {"Sec-GPC": "1"}, "": {}}
	setHeaders := func(u string) {
		t.Helper()
		if _, err := chromedp.Call(tab.Ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: headers[u]}); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"/?dnt", "/?gpc"} {
		setHeaders(u)
		tab.Navigate(base + u)
		tab.WaitPage(`window.firstparty`, 10*time.Second)
		if !Eval[bool](tab, `firstparty.has_opted_out_capturing()`) {
			t.Errorf("%s: the snippet does not see the signal", u)
		}
		Eval[chromedp.Void](tab, `firstparty.capture('must_not_send'); document.getElementById('buy').click(); firstparty.identify('dnt-user')`)
		if stored := Eval[string](tab, `localStorage.getItem('_fp') + document.cookie + sessionStorage.getItem('_fpw')`); stored != "null" && stored != "nullnull" {
			t.Errorf("%s: stored %q in the browser", u, stored)
		}
	}
	// The same tab without the signals: its page view arrives after
	// anything the signalling pages could have sent, page hide included.
	setHeaders("")
	tab.Navigate(base + "/other.html")
	evs := waitEvents(t, "the page view without signals", has("$pageview", 1))
	if len(evs) != 1 || evs[0].Properties["$pathname"] != "/other.html" {
		t.Fatalf("events from pages with DNT/GPC: %s", summary(evs))
	}

	// Opt out: nothing more, also on the next page; opt in: back.
	Eval[chromedp.Void](tab, `firstparty.opt_out_capturing(); firstparty.capture('opted_out')`)
	tab.Navigate(base + "/")
	tab.WaitPage(`window.firstparty`, 10*time.Second)
	if !Eval[bool](tab, `firstparty.has_opted_out_capturing()`) {
		t.Error("opt-out did not last to the next page")
	}
	tab.Do(chromedp.Click(chromedp.CSS("#buy")))
	Eval[chromedp.Void](tab, `firstparty.capture('opted_out'); firstparty.opt_in_capturing(); firstparty.capture('opted_in')`)
	evs = waitEvents(t, "the event after opting in", has("opted_in", 1))
	if len(named(evs, "opted_out")) > 0 || len(named(evs, "$autocapture")) > 0 || len(named(evs, "$pageview")) != 1 {
		t.Errorf("events while opted out: %s", summary(evs))
	}

	// respect_dnt off: the same signal no longer stops anything.
	startCaddy(t, snippetConfig(db, dir, "respect_dnt off", ""))
	tab.Navigate(base + "/?dnt&off")
	waitEvents(t, "a page view with DNT under respect_dnt off", func(evs []apiEvent) bool {
		for _, e := range named(evs, "$pageview") {
			if strings.HasSuffix(str(e.Properties["$current_url"]), "?dnt&off") {
				return true
			}
		}
		return false
	})
}

// TestSnippetPersistence: localstorage (the default) and cookie keep the
// visitor across pages, memory keeps nothing in the browser; and with
// cookies and storage refused the snippet still sends, and throws nothing.
func TestSnippetPersistence(t *testing.T) {
	dir := snippetSite(t)
	b := StartBrowser(t)
	cases := []struct {
		mode, extra, init string
		sameVisitor       bool
		kept              string // JS: what the browser keeps, "" when nothing
	}{
		{"localstorage", "", "", true, `localStorage.getItem('_fp') ? 'ls' : ''`},
		{"cookie", "persistence cookie", "", true, `(document.cookie.includes('_fp=') ? 'cookie' : '') + (localStorage.getItem('_fp') ? 'ls' : '')`},
		{"memory", "persistence memory", "", false, `document.cookie + (localStorage.length || '') + (sessionStorage.length || '')`},
		{"storage refused", "", `(() => {
			const deny = () => { throw new DOMException('denied', 'SecurityError') };
			Object.defineProperty(window, 'localStorage', {get: deny});
			Object.defineProperty(window, 'sessionStorage', {get: deny});
			Object.defineProperty(Document.prototype, 'cookie', {get: deny, set: deny});
		})()`, false, `''`},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			startCaddy(t, snippetConfig(filepath.Join(t.TempDir(), "p.db"), dir, c.extra, ""))
			var opts []TabOption
			opts = append(opts, Isolated())
			if c.init != "" {
				opts = append(opts, InitScript(c.init))
			}
			tab := b.NewTab(opts...)
			tab.Navigate(base + "/")
			tab.WaitPage(`window.firstparty`, 10*time.Second)
			want := map[string]string{"localstorage": "ls", "cookie": "cookie"}[c.mode]
			if got := Eval[string](tab, c.kept); got != want {
				t.Errorf("the browser keeps %q, want %q", got, want)
			}
			tab.DoAndWaitLoad(chromedp.Click(chromedp.CSS("#to-other")))
			evs := waitEvents(t, "two page views", has("$pageview", 2))
			pv := named(evs, "$pageview")
			if same := pv[0].DistinctID == pv[1].DistinctID; same != c.sameVisitor {
				t.Errorf("same visitor on the next page: %v, want %v (%s, %s)", same, c.sameVisitor, pv[0].DistinctID, pv[1].DistinctID)
			}
			if ex := tab.Exceptions(); len(ex) > 0 {
				t.Errorf("page exceptions: %v", ex)
			}
		})
	}
}

// fetchLog records the status of every fetch the page makes (0: network
// error) in window.__posts.
const fetchLog = `(() => {
	window.__posts = [];
	const f = window.fetch;
	window.fetch = function () {
		const p = f.apply(this, arguments);
		p.then(r => __posts.push(r.status), () => __posts.push(0));
		return p;
	};
})()`

// TestSnippetOutageAndRecovery: while the endpoint is down the snippet keeps
// its events and retries with backoff; while answers get lost after the
// events were stored it retries with the same uuids, which the store takes
// once; after recovery everything is there exactly once.
func TestSnippetOutageAndRecovery(t *testing.T) {
	dir := snippetSite(t)
	db := filepath.Join(t.TempDir(), "outage.db")
	up := snippetConfig(db, dir, "", "")
	startCaddy(t, up)
	tab := StartBrowser(t).NewTab(InitScript(fetchLog))
	tab.Navigate(base + "/other.html")
	waitEvents(t, "the page view", has("$pageview", 1))

	// Down: no analytics handler at all, the endpoint answers 503.
	startCaddy(t, fmt.Sprintf(testGlobal+`http://127.0.0.1:9080 {
	bind 127.0.0.1
	respond /_f/* "down" 503
	root * %s
	file_server
}
`, dir))
	start := Eval[int](tab, `__posts.length`)
	Eval[chromedp.Void](tab, `firstparty.capture('during_outage', {n: 1}); firstparty.capture('during_outage', {n: 2})`)
	// Two failed tries: the first and one retry after backoff.
	tab.WaitPage(fmt.Sprintf(`__posts.slice(%d).filter(s => s == 503).length >= 2`, start), 15*time.Second)

	// Answers lost: the events are stored, the answer is replaced by 503.
	// (The site's own analytics block, ordered first, moves out of the way.)
	startCaddy(t, snippetConfig(db, dir, "endpoint /_elsewhere", `route /_f/* {
		intercept {
			@stored status 2xx
			handle_response @stored {
				respond "answer lost" 503
			}
		}
		analytics {
			db `+db+`
			site test.example
			rate_limit off
			dashboard off
		}
	}`))
	start = Eval[int](tab, `__posts.length`)
	Eval[chromedp.Void](tab, `window.dispatchEvent(new Event('online'))`) // the browser says it is back: retry now
	tab.WaitPage(fmt.Sprintf(`__posts.slice(%d).filter(s => s == 503).length >= 2`, start), 15*time.Second)
	evs := events(t, "")
	if n := len(named(evs, "during_outage")); n != 2 {
		t.Fatalf("while answers were lost: %d during_outage events stored, want 2 (%s)", n, summary(evs))
	}

	// Recovery.
	startCaddy(t, up)
	Eval[chromedp.Void](tab, `window.dispatchEvent(new Event('online')); firstparty.capture('after_recovery')`)
	tab.WaitPage(`__posts.length && __posts[__posts.length - 1] == 200`, 15*time.Second)
	evs = waitEvents(t, "the event after recovery", has("after_recovery", 1))
	if n := len(named(evs, "during_outage")); n != 2 {
		t.Errorf("%d during_outage events, want 2", n)
	}
	ns := map[float64]bool{}
	for _, e := range named(evs, "during_outage") {
		ns[num(e.Properties["n"])] = true
	}
	if !ns[1] || !ns[2] {
		t.Errorf("during_outage events %s", asJSON(named(evs, "during_outage")))
	}
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.UUID] {
			t.Errorf("uuid %s (%s) stored twice", e.UUID, e.Event)
		}
		seen[e.UUID] = true
	}
	if ex := tab.Exceptions(); len(ex) > 0 {
		t.Errorf("page exceptions: %v", ex)
	}
}

// posthogJS installs the pinned posthog-js (testdata/posthog-js) when
// needed and returns its dist/array.js.
func posthogJS(t *testing.T) []byte {
	t.Helper()
	requireTool(t, "node")
	npm := requireTool(t, "npm")
	dir, _ := filepath.Abs("testdata/posthog-js")
	bundle := filepath.Join(dir, "node_modules", "posthog-js", "dist", "array.js")
	if _, err := os.Stat(bundle); err != nil {
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
	}
	b, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPosthogJSInBrowser: the real posthog-js, api_host = origin +
// endpoint, against Firstparty: page views, autocapture (it needs the
// remote config), custom events, identify and the page-hide beacon are
// stored and enriched.
func TestPosthogJSInBrowser(t *testing.T) {
	bundle := posthogJS(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "vendor"), 0o755)
	os.WriteFile(filepath.Join(dir, "vendor", "array.js"), bundle, 0o644)
	os.WriteFile(filepath.Join(dir, "other.html"), []byte(snippetPages["other.html"]), 0o644)
	os.WriteFile(filepath.Join(dir, "ph.html"), []byte(`<!doctype html>
<html><head><meta charset="utf-8"><title>PostHog page</title>
<script src="/vendor/array.js"></script>
<script>posthog.init('phc_e2e', {api_host: location.origin + '/_f', request_batching: true})</script>
</head><body>
<button id="ph-buy" class="cta big">Buy with PostHog</button>
<input id="ph-secret" type="password">
<a id="ph-leave" href="/other.html">Leave</a>
</body></html>
`), 0o644)
	startCaddy(t, fmt.Sprintf(testGlobal+`http://127.0.0.1:9080 {
	bind 127.0.0.1
	analytics {
		db %s
		site test.example
		rate_limit off
	}
	root * %s
	file_server
}
`, filepath.Join(t.TempDir(), "ph.db"), dir))

	tab := StartBrowser(t).NewTab()
	tab.Navigate(base + "/ph.html?utm_source=phtest")
	evs := waitEvents(t, "posthog-js's $pageview", has("$pageview", 1))
	anon := evs[0].DistinctID
	// Autocapture starts once the remote config is in.
	tab.WaitPage(`window.posthog && posthog.__loaded && window._POSTHOG_REMOTE_CONFIG && _POSTHOG_REMOTE_CONFIG.phc_e2e`, 15*time.Second)
	tab.Do(chromedp.SendKeys(chromedp.CSS("#ph-secret"), "ph-typed-password"))
	tab.Do(chromedp.Click(chromedp.CSS("#ph-buy")))
	Eval[chromedp.Void](tab, `posthog.capture('ph_custom', {plan: 'pro'}); posthog.identify('ph-user', {email: 'ph@example.com'})`)
	waitEvents(t, "autocapture, custom and identify", func(evs []apiEvent) bool {
		return has("$autocapture", 1)(evs) && has("ph_custom", 1)(evs) && has("$identify", 1)(evs)
	})
	Eval[chromedp.Void](tab, `posthog.capture('ph_queued')`) // goes out with the page-hide beacon
	tab.DoAndWaitLoad(chromedp.Click(chromedp.CSS("#ph-leave")))
	evs = waitEvents(t, "the page-hide beacon", func(evs []apiEvent) bool {
		return has("$pageleave", 1)(evs) && has("ph_queued", 1)(evs)
	})

	pv := named(evs, "$pageview")[0].Properties
	for k, want := range map[string]any{"$lib": "web", "$pathname": "/ph.html", "utm_source": "phtest", "$browser": "Chrome", "$device_type": "Desktop", "$referring_domain": "$direct", "title": "PostHog page"} {
		if pv[k] != want {
			t.Errorf("$pageview %s = %v, want %v", k, pv[k], want)
		}
	}
	var buy map[string]any
	for _, e := range named(evs, "$autocapture") {
		if strings.Contains(str(e.Properties["$elements_chain"]), `attr__id="ph-buy"`) {
			buy = e.Properties
		}
		if strings.Contains(str(e.Properties["$elements_chain"]), "password") {
			t.Errorf("autocapture of the password field: %s", asJSON(e.Properties))
		}
	}
	if buy == nil || buy["$event_type"] != "click" || !strings.HasPrefix(str(buy["$elements_chain"]), "button.big.cta:") {
		t.Errorf("no click on #ph-buy in %s", asJSON(named(evs, "$autocapture")))
	}
	if c := named(evs, "ph_custom")[0]; c.Properties["plan"] != "pro" || c.DistinctID != anon {
		t.Errorf("custom: %s", asJSON(c))
	}
	if id := named(evs, "$identify")[0]; id.DistinctID != "ph-user" || id.Properties["$anon_distinct_id"] != anon {
		t.Errorf("identify: %s", asJSON(id))
	}
	if q := named(evs, "ph_queued")[0]; q.DistinctID != "ph-user" {
		t.Errorf("queued event: %s", asJSON(q))
	}
	if strings.Contains(asJSON(evs), "ph-typed-password") {
		t.Error("the typed password was stored")
	}
	var person map[string]any
	getJSON(t, api+"/persons/ph-user", &person)
	if ids := fmt.Sprint(person["distinct_ids"]); !strings.Contains(ids, anon) {
		t.Errorf("identify did not merge the anonymous id: %s", asJSON(person))
	}
}
