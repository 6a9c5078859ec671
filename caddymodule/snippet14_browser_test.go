package caddymodule_test

// The snippet's part of what only the server can see (SPEC §8): the
// $pageview_ref it echoes from its tag, nothing at all from automated
// browsers, and nothing kept in the browser with data-persistence="none".
// The pages carry the tag themselves (no `inject`), so these tests depend
// only on the snippet.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/domstorage"
	"github.com/chromedp/cdproto/indexeddb"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"
)

// tag14 is the snippet tag as the server writes it, with attrs added.
func tag14(attrs string) string {
	return `<script defer src="/_f/app.js" data-api="/_f" ` + attrs + `></script>`
}

func page14(title, tag, body string) string {
	return `<!doctype html><html><head><meta charset="utf-8"><title>` + title + `</title>` + tag + `</head><body>` + body + `</body></html>
`
}

// site14 writes pages into a new directory and returns it.
func site14(t *testing.T, pages map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range pages {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// config14 serves dir with the analytics endpoint but no `inject`; with
// accessLog set, every request is logged there as JSON.
func config14(db, dir, accessLog string) string {
	logBlock := ""
	if accessLog != "" {
		logBlock = fmt.Sprintf("log {\n\t\toutput file %s\n\t\tformat json\n\t}", accessLog)
	}
	return fmt.Sprintf(testGlobal+`http://127.0.0.1:9080 {
	bind 127.0.0.1
	%s
	analytics {
		db %s
		site test.example
		rate_limit off
	}
	root * %s
	file_server
}
`, logBlock, db, dir)
}

// wireEvent is one event as the snippet sent it.
type wireEvent struct {
	Event      string         `json:"event"`
	Properties map[string]any `json:"properties"`
}

// wireLog records the events a tab posts to the capture endpoint, read from
// the request bodies the browser reports over CDP, so it sees what the
// snippet sent, before the server changes anything. Chromium does not
// report the beacon a page sends while it unloads: wait for a page's
// events to go out before leaving it.
type wireLog struct {
	mu       sync.Mutex
	events   []wireEvent
	requests int
	bad      []string
}

func recordWire(t *testing.T, tab *Tab) *wireLog {
	t.Helper()
	w := &wireLog{}
	err := chromedp.Listen(tab.Ctx, func(ev any) {
		e, ok := ev.(*network.EventRequestWillBeSent)
		if !ok || e.Request == nil || !strings.HasPrefix(e.Request.URL, endpoint+"/e/") {
			return
		}
		var body []byte
		for _, p := range e.Request.PostDataEntries {
			body = append(body, p.Bytes...)
		}
		var b struct{ Batch []wireEvent }
		w.mu.Lock()
		defer w.mu.Unlock()
		w.requests++
		if err := json.Unmarshal(body, &b); err != nil {
			w.bad = append(w.bad, fmt.Sprintf("%v: %.200q", err, body))
			return
		}
		w.events = append(w.events, b.Batch...)
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// named returns the recorded events called name.
func (w *wireLog) named(name string) []wireEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []wireEvent
	for _, e := range w.events {
		if e.Event == name {
			out = append(out, e)
		}
	}
	return out
}

func (w *wireLog) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.bad) > 0 {
		t.Errorf("capture requests whose body could not be read: %v", w.bad)
	}
}

// TestSnippetPageviewRef: the first $pageview of a page load carries the
// tag's data-ref as $pageview_ref; an SPA navigation's page view and other
// events do not; a page whose tag has no data-ref sends no $pageview_ref.
func TestSnippetPageviewRef(t *testing.T) {
	dir := site14(t, map[string]string{
		"ref.html":   page14("Ref", tag14(`data-ref="abc123"`), `<button id="b">b</button><a id="next" href="/noref.html">next</a>`),
		"noref.html": page14("No ref", tag14(``), `<p>no ref</p>`),
	})
	startCaddy(t, config14(filepath.Join(t.TempDir(), "ref.db"), dir, ""))
	tab := StartBrowser(t).NewTab()
	wire := recordWire(t, tab)

	tab.Navigate(base + "/ref.html")
	tab.WaitPage(`window.firstparty && firstparty.capture`, 10*time.Second)
	Eval[chromedp.Void](tab, `firstparty.capture('custom_after_load'); history.pushState({}, '', '/ref/spa')`)
	tab.WaitPage(`location.pathname == '/ref/spa'`, 5*time.Second)
	evs := waitEvents(t, "the load's and the SPA navigation's page views and the custom event", func(evs []apiEvent) bool {
		return has("$pageview", 2)(evs) && has("custom_after_load", 1)(evs)
	})
	pv := named(evs, "$pageview")
	byPath := map[string]apiEvent{}
	for _, e := range pv {
		byPath[str(e.Properties["$pathname"])] = e
	}
	if got := byPath["/ref.html"].Properties["$pageview_ref"]; got != "abc123" {
		t.Errorf("the page load's $pageview_ref = %v, want abc123 (%s)", got, asJSON(byPath["/ref.html"]))
	}
	spa, ok := byPath["/ref/spa"]
	if !ok {
		t.Fatalf("no page view of the SPA navigation: %s", summary(evs))
	}
	if v, ok := spa.Properties["$pageview_ref"]; ok {
		t.Errorf("the SPA navigation's page view has $pageview_ref %v", v)
	}
	for _, e := range evs {
		if _, ok := e.Properties["$pageview_ref"]; ok && e.Event != "$pageview" {
			t.Errorf("%s carries $pageview_ref", e.Event)
		}
	}

	// A new page load without data-ref: no property at all.
	tab.DoAndWaitLoad(chromedp.Click(chromedp.CSS("#next")))
	evs = waitEvents(t, "the page view without data-ref", func(evs []apiEvent) bool {
		for _, e := range named(evs, "$pageview") {
			if e.Properties["$pathname"] == "/noref.html" {
				return true
			}
		}
		return false
	})
	for _, e := range named(evs, "$pageview") {
		if _, ok := e.Properties["$pageview_ref"]; ok && e.Properties["$pathname"] == "/noref.html" {
			t.Errorf("a tag without data-ref sent $pageview_ref: %s", asJSON(e))
		}
	}

	// What left the browser says the same.
	WaitFor(t, "three page views on the wire", 10*time.Second, func() (bool, string) {
		n := len(wire.named("$pageview"))
		return n >= 3, fmt.Sprint(n, " page views")
	})
	var refs []string
	for _, e := range wire.named("$pageview") {
		refs = append(refs, fmt.Sprintf("%v=%v", e.Properties["$pathname"], e.Properties["$pageview_ref"]))
	}
	if want := "[/ref.html=abc123 /ref/spa=<nil> /noref.html=<nil>]"; fmt.Sprint(refs) != want {
		t.Errorf("sent page views %v, want %s", refs, want)
	}
	wire.check(t)
	if ex := tab.Exceptions(); len(ex) > 0 {
		t.Errorf("page exceptions: %v", ex)
	}
}

// webdriverUA marks the automated browser's requests in the access log.
var webdriverUA = strings.Replace(DesktopUA, "Chrome/156.0.0.0", "Chrome/156.0.0.9", 1)

// startWebdriverBrowser launches Chromium as automation tools do: without
// StartBrowser's disable-blink-features=AutomationControlled, so
// navigator.webdriver is true.
func startWebdriverBrowser(t *testing.T) *Browser {
	t.Helper()
	exe := findChromium(t)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("enable-automation", true),
		chromedp.Flag("user-agent", webdriverUA),
		chromedp.WindowSize(1280, 800),
	)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("starting %s: %v", exe, err)
	}
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	return &Browser{ctx: bctx, t: t}
}

// accessEntry is one request of Caddy's JSON access log.
type accessEntry struct {
	Request struct {
		URI     string              `json:"uri"`
		Headers map[string][]string `json:"headers"`
	} `json:"request"`
	Status int `json:"status"`
}

// readAccessLog returns the requests logged so far.
func readAccessLog(t *testing.T, path string) []accessEntry {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []accessEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e accessEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Request.URI != "" {
			out = append(out, e)
		}
	}
	return out
}

// endpointRequests counts, per path, the requests to the endpoint (other
// than the snippet itself) from browsers whose User-Agent is ua, and the
// requests for the snippet.
func endpointRequests(entries []accessEntry, ua string) (calls map[string]int, snippet int) {
	calls = map[string]int{}
	for _, e := range entries {
		if got := e.Request.Headers["User-Agent"]; len(got) != 1 || got[0] != ua {
			continue
		}
		path, _, _ := strings.Cut(e.Request.URI, "?")
		switch {
		case path == "/_f/app.js":
			snippet++
		case strings.HasPrefix(path, "/_f/"):
			calls[path]++
		}
	}
	return calls, snippet
}

// TestSnippetWebdriverSendsNothing: a browser that says it is automated
// (navigator.webdriver) loads the snippet and sends no request to the
// endpoint, events, page hide and recording included; the same pages in a
// browser without the flag do send, and the server's access log, which
// sees every request of both, tells them apart by User-Agent.
func TestSnippetWebdriverSendsNothing(t *testing.T) {
	tag := tag14(`data-ref="abc123" data-record="on"`)
	dir := site14(t, map[string]string{
		"wd.html":  page14("WD", tag, `<button id="buy">Buy</button><a id="next" href="/wd2.html">next</a>`),
		"wd2.html": page14("WD 2", tag, `<p>second</p>`),
	})
	accessLog := filepath.Join(t.TempDir(), "access.log")
	startCaddy(t, config14(filepath.Join(t.TempDir(), "wd.db"), dir, accessLog))

	// The automated browser: a page load, a click, a custom event, an SPA
	// navigation, a page hide (the link) and the next page's events.
	wd := startWebdriverBrowser(t).NewTab()
	wd.Navigate(base + "/wd.html")
	wd.WaitPage(`window.firstparty && firstparty.capture`, 10*time.Second)
	if !Eval[bool](wd, `navigator.webdriver === true`) {
		t.Fatal("navigator.webdriver is not true in the automated browser: the test would prove nothing")
	}
	wd.Do(chromedp.Click(chromedp.CSS("#buy")))
	Eval[chromedp.Void](wd, `firstparty.capture('wd_custom'); firstparty.identify('wd-user'); history.pushState({}, '', '/wd/spa')`)
	wd.WaitPage(`location.pathname == '/wd/spa'`, 5*time.Second)
	wd.DoAndWaitLoad(chromedp.Click(chromedp.CSS("#next")))
	wd.WaitPage(`window.firstparty && firstparty.capture`, 10*time.Second)
	Eval[chromedp.Void](wd, `firstparty.capture('wd_custom_2')`)

	// The control: the same page in a browser without the flag, after
	// everything above, with the same one-second batching. By the time its
	// event is stored, anything the automated browser sent has arrived.
	ctl := StartBrowser(t).NewTab()
	ctl.Navigate(base + "/wd.html")
	ctl.WaitPage(`window.firstparty && firstparty.capture`, 10*time.Second)
	if Eval[bool](ctl, `navigator.webdriver === true`) {
		t.Fatal("navigator.webdriver is true in the control browser")
	}
	Eval[chromedp.Void](ctl, `firstparty.capture('control_custom')`)
	evs := waitEvents(t, "the control browser's events", func(evs []apiEvent) bool {
		return has("$pageview", 1)(evs) && has("control_custom", 1)(evs)
	})
	var ctlCalls map[string]int
	WaitFor(t, "the control browser's capture and recorder requests in the access log", 10*time.Second, func() (bool, string) {
		ctlCalls, _ = endpointRequests(readAccessLog(t, accessLog), DesktopUA)
		return ctlCalls["/_f/e/"] > 0 && ctlCalls["/_f/r.js"] > 0, fmt.Sprint(ctlCalls)
	})

	wdCalls, wdSnippet := endpointRequests(readAccessLog(t, accessLog), webdriverUA)
	if wdSnippet < 1 { // the second page may take it from the cache
		t.Errorf("the access log has no snippet load from the automated browser: it does not see that browser")
	}
	if len(wdCalls) > 0 {
		t.Errorf("the automated browser sent %v", wdCalls)
	}
	for _, e := range evs {
		if strings.HasPrefix(e.Event, "wd_") || e.DistinctID == "wd-user" || e.Properties["$pathname"] != "/wd.html" {
			t.Errorf("stored from the automated browser: %s", asJSON(e))
		}
	}
	if n := len(named(evs, "$pageview")); n != 1 {
		t.Errorf("%d page views stored, want the control's 1: %s", n, summary(evs))
	}
	for _, tab := range []*Tab{wd, ctl} {
		if ex := tab.Exceptions(); len(ex) > 0 {
			t.Errorf("page exceptions: %v", ex)
		}
	}
}

// browserStorage is what the browser keeps for the test site's origin, as
// the page sees it and as DevTools does.
func browserStorage(t *testing.T, tab *Tab) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, 10*time.Second)
	defer cancel()
	var kept []string
	js := Eval[string](tab, `(async () => {
		const dbs = indexedDB.databases ? (await indexedDB.databases()).map(d => d.name) : [];
		return JSON.stringify({cookie: document.cookie, local: localStorage.length, session: sessionStorage.length, idb: dbs});
	})()`)
	if js != `{"cookie":"","local":0,"session":0,"idb":[]}` {
		kept = append(kept, "page: "+js)
	}
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/", base + "/_f/e/"}})
	if err != nil {
		t.Fatalf("Network.getCookies: %v", err)
	}
	for _, c := range cookies.Cookies {
		kept = append(kept, "cookie "+c.Name)
	}
	all, err := chromedp.CallBrowser(ctx, storage.GetCookies, storage.GetCookiesParams{BrowserContextID: chromedp.FromContext(tab.Ctx).BrowserContextID})
	if err != nil {
		t.Fatalf("Storage.getCookies: %v", err)
	}
	for _, c := range all.Cookies {
		kept = append(kept, "browser cookie "+c.Name+" for "+c.Domain)
	}
	if _, err := chromedp.Call(ctx, domstorage.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("DOMStorage.enable: %v", err)
	}
	for _, local := range []bool{true, false} {
		items, err := chromedp.Call(ctx, domstorage.GetDOMStorageItems, domstorage.GetDOMStorageItemsParams{
			StorageID: &domstorage.StorageID{StorageKey: domstorage.SerializedStorageKey(base + "/"), IsLocalStorage: local},
		})
		if err != nil {
			t.Fatalf("DOMStorage.getDOMStorageItems: %v", err)
		}
		for _, it := range items.Entries {
			kept = append(kept, fmt.Sprintf("storage (local %v) %v", local, it))
		}
	}
	names, err := chromedp.Call(ctx, indexeddb.RequestDatabaseNames, indexeddb.RequestDatabaseNamesParams{StorageKey: base + "/"})
	if err != nil {
		t.Fatalf("IndexedDB.requestDatabaseNames: %v", err)
	}
	for _, n := range names.DatabaseNames {
		kept = append(kept, "indexedDB "+n)
	}
	return strings.Join(kept, "; ")
}

// TestSnippetPersistenceNone: with data-persistence="none" two page loads
// leave nothing in the browser (no cookie, localStorage, sessionStorage or
// IndexedDB, as the page and DevTools see it), and every event goes out
// with distinct_id "$posthog_cookieless" and no session, window or device
// id, for the server to fill in; opting out lasts for the page only.
func TestSnippetPersistenceNone(t *testing.T) {
	none := `data-persistence="none"`
	dir := site14(t, map[string]string{
		"n1.html": page14("None 1", tag14(`data-ref="abc123" `+none+` data-record="on"`), `<button id="buy">Buy</button><a id="next" href="/n2.html">next</a>`),
		"n2.html": page14("None 2", tag14(`data-ref="def456" `+none), `<p>second</p>`),
	})
	startCaddy(t, config14(filepath.Join(t.TempDir(), "none.db"), dir, ""))
	// A fresh browser (profile) of its own: nothing stored before.
	tab := StartBrowser(t).NewTab()
	wire := recordWire(t, tab)

	tab.Navigate(base + "/n1.html")
	tab.WaitPage(`window.firstparty && firstparty.capture`, 10*time.Second)
	if id := Eval[string](tab, `firstparty.get_distinct_id()`); id != "$posthog_cookieless" {
		t.Errorf("get_distinct_id() = %q", id)
	}
	tab.Do(chromedp.Click(chromedp.CSS("#buy")))
	Eval[chromedp.Void](tab, `firstparty.register({plan: 'pro'}); firstparty.capture('none_custom'); firstparty.alias('must-not-alias')`)
	WaitFor(t, "the first page's events on the wire", 10*time.Second, func() (bool, string) {
		return len(wire.named("none_custom")) > 0, fmt.Sprint(len(wire.named("$pageview")), " page views")
	})
	tab.DoAndWaitLoad(chromedp.Click(chromedp.CSS("#next")))
	tab.WaitPage(`window.firstparty && firstparty.capture`, 10*time.Second)
	Eval[chromedp.Void](tab, `firstparty.capture('none_custom_2')`)
	evs := waitEvents(t, "two page views, the click, the page leave and the custom events", func(evs []apiEvent) bool {
		return has("$pageview", 2)(evs) && has("$autocapture", 1)(evs) && has("$pageleave", 1)(evs) && has("none_custom", 1)(evs) && has("none_custom_2", 1)(evs)
	})

	if kept := browserStorage(t, tab); kept != "" {
		t.Errorf("the browser keeps: %s", kept)
	}

	// On the wire: the sentinel id, no client session, window or device
	// ids, each page load's own $pageview_ref, no alias.
	WaitFor(t, "the events on the wire", 10*time.Second, func() (bool, string) {
		wire.mu.Lock()
		state := fmt.Sprintf("%d requests, %d events, unreadable %v", wire.requests, len(wire.events), wire.bad)
		wire.mu.Unlock()
		return len(wire.named("$pageview")) >= 2 && len(wire.named("none_custom_2")) >= 1, state
	})
	wire.mu.Lock()
	sent := append([]wireEvent(nil), wire.events...)
	wire.mu.Unlock()
	var refs []string
	for _, e := range sent {
		p := e.Properties
		if p["distinct_id"] != "$posthog_cookieless" || p["$cookieless_mode"] != true {
			t.Errorf("%s sent with distinct_id %v, $cookieless_mode %v", e.Event, p["distinct_id"], p["$cookieless_mode"])
		}
		for _, k := range []string{"$session_id", "$window_id", "$device_id", "$anon_distinct_id"} {
			if v, ok := p[k]; ok {
				t.Errorf("%s sent with %s %v", e.Event, k, v)
			}
		}
		if e.Event == "$pageview" {
			refs = append(refs, fmt.Sprintf("%v=%v", p["$pathname"], p["$pageview_ref"]))
		}
		if e.Event == "$create_alias" {
			t.Errorf("alias of the cookieless id sent: %v", p)
		}
	}
	if want := "[/n1.html=abc123 /n2.html=def456]"; fmt.Sprint(refs) != want {
		t.Errorf("page views sent %v, want %s", refs, want)
	}
	wire.check(t)

	// Stored: the two page loads and their events arrived, under one id
	// (the sentinel until the server replaces it; then the server's id).
	pv := named(evs, "$pageview")
	if pv[0].DistinctID != pv[1].DistinctID || uuidV7.MatchString(pv[0].DistinctID) || pv[0].DistinctID == "" {
		t.Errorf("page views stored under %q and %q, want one id made by no browser", pv[0].DistinctID, pv[1].DistinctID)
	}
	for _, e := range evs {
		if e.DistinctID != pv[0].DistinctID {
			t.Errorf("%s stored under %q, the page views under %q", e.Event, e.DistinctID, pv[0].DistinctID)
		}
		if v, ok := e.Properties["$window_id"]; ok {
			t.Errorf("%s stored with $window_id %v", e.Event, v)
		}
		if v, ok := e.Properties["$session_id"]; ok && v != pv[0].Properties["$session_id"] {
			t.Errorf("%s stored in session %v, the first page view in %v", e.Event, v, pv[0].Properties["$session_id"])
		}
	}
	if named(evs, "none_custom")[0].Properties["plan"] != "pro" {
		t.Errorf("registered property lost: %s", asJSON(named(evs, "none_custom")[0]))
	}
	if len(named(evs, "$create_alias")) > 0 {
		t.Error("an alias of the cookieless id was stored")
	}

	// No recording without a session id kept in the browser: r.js was not
	// even loaded.
	if Eval[bool](tab, `performance.getEntriesByType('resource').some(e => e.name.includes('/r.js'))`) {
		t.Error("the recorder was loaded in cookieless mode")
	}

	// Opting out holds for the page and is not remembered.
	Eval[chromedp.Void](tab, `firstparty.opt_out_capturing(); firstparty.capture('after_opt_out')`)
	if !Eval[bool](tab, `firstparty.has_opted_out_capturing()`) {
		t.Error("opt-out did not take")
	}
	if kept := browserStorage(t, tab); kept != "" {
		t.Errorf("the opt-out was kept in the browser: %s", kept)
	}
	tab.Navigate(base + "/n1.html")
	tab.WaitPage(`window.firstparty && firstparty.capture`, 10*time.Second)
	if Eval[bool](tab, `firstparty.has_opted_out_capturing()`) {
		t.Error("the opt-out was remembered though nothing may be stored")
	}

	// The checks can fail: what a page stores, they see.
	Eval[chromedp.Void](tab, `localStorage.setItem('probe', '1'); sessionStorage.setItem('probe', '1'); document.cookie = 'probe=1; Path=/'`)
	kept := browserStorage(t, tab)
	for _, want := range []string{`"local":1`, `"session":1`, "cookie probe", "browser cookie probe", "storage (local true)", "storage (local false)"} {
		if !strings.Contains(kept, want) {
			t.Errorf("the storage check does not see %q in what the page stored: %s", want, kept)
		}
	}
	if ex := tab.Exceptions(); len(ex) > 0 {
		t.Errorf("page exceptions: %v", ex)
	}
}
