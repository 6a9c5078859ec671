package caddymodule_test

// Shared helpers of the tests that drive a real headless Chromium (Debian's
// chromium package) with chromedp against the in-process Caddy: start a
// browser, open a tab, run JavaScript, and wait for a condition with a
// deadline instead of sleeping.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// DesktopUA is the User-Agent the browser sends: a desktop Chrome. Headless
// Chrome's own (HeadlessChrome/...) makes posthog-js send nothing and is
// dropped by the bot filter; as a launch flag it also applies to
// sendBeacon requests, which a per-tab override does not reach.
const DesktopUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"

// findChromium returns the browser binary, skipping the test when there is
// none (failing under FIRSTPARTY_REQUIRE_ALL, as CI sets it).
func findChromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("FIRSTPARTY_REQUIRE_ALL") != "" {
		t.Fatal("chromium is required but not installed")
	}
	t.Skip("chromium not installed")
	return ""
}

// Browser is one headless Chromium with a fresh profile, closed when the
// test ends.
type Browser struct {
	ctx context.Context
	t   testing.TB
}

// StartBrowser launches Chromium for the test.
func StartBrowser(t testing.TB) *Browser {
	t.Helper()
	exe := findChromium(t)
	opts := []chromedp.ExecAllocatorOption{
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
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-blink-features", "AutomationControlled"), // navigator.webdriver false
		chromedp.Flag("user-agent", DesktopUA),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
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

// Tab is a browser tab with the page errors it has seen.
type Tab struct {
	Ctx context.Context
	t   testing.TB

	mu         sync.Mutex
	exceptions []string
}

// TabOption changes how a tab is opened.
type TabOption func(*tabConfig)

type tabConfig struct {
	isolated bool
	scripts  []string
}

// Isolated opens the tab in a new browser context: its own cookies and
// storage, as a private window has.
func Isolated() TabOption { return func(c *tabConfig) { c.isolated = true } }

// InitScript runs js in every document of the tab before the page's own
// scripts.
func InitScript(js string) TabOption {
	return func(c *tabConfig) { c.scripts = append(c.scripts, js) }
}

// NewTab opens a tab, closed when the test ends.
func (b *Browser) NewTab(opts ...TabOption) *Tab {
	b.t.Helper()
	var cfg tabConfig
	for _, o := range opts {
		o(&cfg)
	}
	tab := &Tab{t: b.t}
	var copts []chromedp.ContextOption
	if cfg.isolated {
		copts = append(copts, chromedp.WithNewBrowserContext())
	}
	copts = append(copts, chromedp.WithListener(func(ev any) {
		if ex, ok := ev.(*runtime.EventExceptionThrown); ok {
			tab.mu.Lock()
			tab.exceptions = append(tab.exceptions, exceptionText(ex))
			tab.mu.Unlock()
		}
	}))
	ctx, cancel := chromedp.NewContext(b.ctx, copts...)
	b.t.Cleanup(cancel)
	tab.Ctx = ctx
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("opening a tab: %v", err)
	}
	for _, js := range cfg.scripts {
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: js}); err != nil {
			b.t.Fatalf("init script: %v", err)
		}
	}
	return tab
}

func exceptionText(ex *runtime.EventExceptionThrown) string {
	d := ex.ExceptionDetails
	if d == nil {
		return "exception"
	}
	s := d.Text
	if d.Exception != nil {
		s += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s (%s:%d)", s, d.URL, d.LineNumber)
}

// Exceptions returns the uncaught exceptions of the tab's pages so far.
func (tab *Tab) Exceptions() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]string(nil), tab.exceptions...)
}

// Do runs actions in the tab, failing the test on an error.
func (tab *Tab) Do(actions ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tab.t.Fatalf("browser: %v", err)
	}
}

// Navigate loads url and waits for its load event.
func (tab *Tab) Navigate(url string) {
	tab.t.Helper()
	tab.Do(chromedp.Navigate(url))
}

// Eval evaluates a JavaScript expression in the page (promises awaited)
// and decodes its value into T.
func Eval[T any](tab *Tab, js string) T {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tab.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// WaitPage waits until the JavaScript expression is truthy in the page.
// A page that goes away while it waits (a navigation) is polled again in
// the next one.
func (tab *Tab) WaitPage(js string, timeout time.Duration) {
	tab.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithDeadline(tab.Ctx, deadline)
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(20*time.Millisecond)))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || tab.Ctx.Err() != nil {
			tab.t.Fatalf("waiting for %s in the page: %v", js, err)
		}
	}
}

// DoAndWaitLoad runs an action that navigates (a click on a link) and
// waits for the new page's load event.
func (tab *Tab) DoAndWaitLoad(action chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, action)); err != nil {
		tab.t.Fatalf("browser: %v", err)
	}
}

// WaitFor calls cond until it reports true, at short intervals, failing
// the test at the deadline with cond's last description of what it saw.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := 20 * time.Millisecond
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, state)
		}
		time.Sleep(interval) // polling, not waiting for a guessed duration
		interval = min(interval*2, 200*time.Millisecond)
	}
}

// asJSON is v as one line of JSON, for failure messages.
func asJSON(v any) string {
	b, _ := json.Marshal(v)
	s := string(b)
	if len(s) > 4000 {
		s = s[:4000] + "…"
	}
	return strings.TrimSpace(s)
}
