package caddymodule_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// serverBrowserSite serves two linked pages with inject (so count_server)
// and the given extra settings.
func serverBrowserSite(t *testing.T, extra string) {
	t.Helper()
	staticSite(t, map[string]string{
		"index.html": `<!doctype html><html><head><meta charset="utf-8"><title>home</title></head><body><a id="next" href="/docs.html">docs</a></body></html>`,
		"docs.html":  `<!doctype html><html><head><meta charset="utf-8"><title>docs</title></head><body>docs</body></html>`,
	}, extra)
}

// browseTwoPages loads the home page in a fresh Chromium and follows its
// link, waiting until each page's snippet has sent its pageview.
func browseTwoPages(t *testing.T) *Tab {
	t.Helper()
	tab := StartBrowser(t).NewTab()
	tab.Navigate(base + "/")
	tab.WaitPage(`window.firstparty && firstparty.capture`, 10*time.Second)
	waitEvents(t, "the first page view", has("$pageview", 1))
	tab.DoAndWaitLoad(chromedp.Click(chromedp.CSS("#next")))
	tab.WaitPage(`window.firstparty && firstparty.capture`, 10*time.Second)
	waitEvents(t, "the second page view", has("$pageview", 2))
	return tab
}

// TestServerPageviewsInBrowser: a real Chromium visit of two pages through
// inject with count_server is counted once per page (the snippet confirms
// each server pageview), with js_share 1.
func TestServerPageviewsInBrowser(t *testing.T) {
	serverBrowserSite(t, "")
	browseTwoPages(t)
	// Both server pageviews are stored (in the background) and confirmed.
	st := waitStats(t, "", func(s statsAnswer) bool { return s.JSShare != nil && *s.JSShare == 1 })
	var rep struct {
		ServerPageviews int `json:"server_pageviews"`
	}
	getJSON(t, api+"/server?from=2020-01-01", &rep)
	if rep.ServerPageviews != 2 || st.Pageviews != 2 || st.Visitors != 1 || st.Sessions != 1 {
		t.Errorf("stats %+v with %d server pageviews, want 2 pageviews of 1 visitor in 1 session (each page once)", st, rep.ServerPageviews)
	}
}

// TestCookielessInBrowser: with persistence none, a real Chromium visit of
// two pages leaves the browser's cookies, localStorage, sessionStorage and
// IndexedDB empty, while the two pages are one person and one session on
// the server, each page counted once.
func TestCookielessInBrowser(t *testing.T) {
	serverBrowserSite(t, "persistence none")
	tab := browseTwoPages(t)
	if kept := browserStorage(t, tab); kept != "" {
		t.Errorf("the browser keeps: %s", kept)
	}
	st := waitStats(t, "", func(s statsAnswer) bool { return s.JSShare != nil && *s.JSShare == 1 })
	if st.Pageviews != 2 || st.Visitors != 1 || st.Sessions != 1 {
		t.Errorf("stats %+v, want 2 pageviews of 1 visitor in 1 session", st)
	}
	for _, e := range events(t, "") {
		if !strings.HasPrefix(e.DistinctID, "c_") {
			t.Errorf("%s stored under %q, not the server's daily id", e.Event, e.DistinctID)
		}
	}
}
