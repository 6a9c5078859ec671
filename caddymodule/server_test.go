package caddymodule_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"

// staticSite serves files from a new directory through the analytics
// handler with inject (so count_server) and the extra settings.
func staticSite(t *testing.T, files map[string]string, extra string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	startCaddy(t, testGlobal+fmt.Sprintf(`
http://127.0.0.1:9080 {
	bind 127.0.0.1
	analytics {
		db %s
		site test.example
		inject
		rate_limit off
		%s
	}
	root * %s
	file_server
}
`, filepath.Join(t.TempDir(), "site.db"), extra, dir))
}

// serverSite serves a small static site with inject (so count_server is
// on) and downloads, and answers the dashboard API.
func serverSite(t *testing.T, extra string) {
	t.Helper()
	staticSite(t, map[string]string{
		"index.html": "<!doctype html><html><head><title>home</title></head><body>home</body></html>",
		"docs.html":  "<!doctype html><html><head><title>docs</title></head><body>docs</body></html>",
		"report.pdf": strings.Repeat("%PDF-1.4 fake ", 500),
		"feed.xml":   `<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>`,
		"style.css":  "body{}",
	}, "downloads .pdf .zip\n\t\t"+extra)
}

// visit GETs a path as a browser without JavaScript would.
func visit(t *testing.T, path string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("User-Agent", firefoxUA)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

type statsAnswer struct {
	Visitors  int      `json:"visitors"`
	Pageviews int      `json:"pageviews"`
	Sessions  int      `json:"sessions"`
	JSShare   *float64 `json:"js_share"`
}

// waitStats polls /api/stats until cond holds (server events are stored
// in the background, after the page is sent).
func waitStats(t *testing.T, query string, cond func(statsAnswer) bool) statsAnswer {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st statsAnswer
		getJSON(t, api+"/stats?from=2020-01-01"+query, &st)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never got there: %+v", st)
		}
		time.Sleep(20 * time.Millisecond) // polling the background commit
	}
}

var dataRefRE = regexp.MustCompile(`data-ref="([A-Za-z0-9_-]+)"`)

// TestServerPageviews: page loads without JavaScript are counted once each
// by the server (one visitor, one session), HEAD, prefetches, assets and
// Googlebot are not; a 404 page is counted with its referrer.
func TestServerPageviews(t *testing.T) {
	serverSite(t, "")
	bot0 := metricValue(t, `caddy_analytics_events_rejected_total{reason="bot",site="test.example"}`)
	for _, p := range []string{"/", "/docs.html", "/", "/docs.html", "/"} {
		if code, body := visit(t, p, nil); code != 200 || !dataRefRE.MatchString(body) {
			t.Fatalf("GET %s: %d %.300s", p, code, body)
		}
	}
	visit(t, "/style.css", nil)
	visit(t, "/", map[string]string{"Sec-Purpose": "prefetch"})
	visit(t, "/", map[string]string{"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"})
	req, _ := http.NewRequest("HEAD", base+"/", nil)
	req.Header.Set("User-Agent", firefoxUA)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
	}
	if code, _ := visit(t, "/missing-page", map[string]string{"Referer": "https://old.example/links"}); code != 404 {
		t.Fatalf("missing page answered %d", code)
	}
	st := waitStats(t, "", func(s statsAnswer) bool { return s.Pageviews >= 6 })
	if st.Pageviews != 6 || st.Visitors != 1 || st.Sessions != 1 {
		t.Errorf("stats %+v, want 6 pageviews (5 pages and a 404) of 1 visitor in 1 session", st)
	}
	if st.JSShare == nil || *st.JSShare != 0 {
		t.Errorf("js_share %v without any snippet, want 0", st.JSShare)
	}
	if d := metricValue(t, `caddy_analytics_events_rejected_total{reason="bot",site="test.example"}`) - bot0; d != 1 {
		t.Errorf("bot rejections rose by %v, want 1 (Googlebot)", d)
	}
	var rep struct {
		ServerPageviews int `json:"server_pageviews"`
		NotFound        []struct {
			Path      string
			Count     int
			Referrers []struct{ Value string }
		} `json:"not_found"`
		Slow []struct {
			Path  string
			Count int
			P90   float64 `json:"p90_ms"`
		}
	}
	getJSON(t, api+"/server?from=2020-01-01", &rep)
	if rep.ServerPageviews != 6 || len(rep.NotFound) != 1 || rep.NotFound[0].Path != "/missing-page" || len(rep.NotFound[0].Referrers) != 1 || rep.NotFound[0].Referrers[0].Value != "https://old.example/links" {
		t.Errorf("server report %+v", rep)
	}
	if len(rep.Slow) != 2 || rep.Slow[0].Count+rep.Slow[1].Count != 5 {
		t.Errorf("slow pages %+v, want / and /docs.html with 5 pages", rep.Slow)
	}
}

// TestServerPageviewConfirmed: the snippet's pageview echoing the page's
// data-ref confirms the server pageview: the page load counts once, and
// js_share says the snippet ran.
func TestServerPageviewConfirmed(t *testing.T) {
	serverSite(t, "")
	_, body := visit(t, "/", nil)
	m := dataRefRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no data-ref in %s", body)
	}
	waitStats(t, "", func(s statsAnswer) bool { return s.Pageviews == 1 })
	pv := fmt.Sprintf(`{"event":"$pageview","distinct_id":"js-visitor","properties":{"$current_url":"%s/","$session_id":"sess-1","$pageview_ref":%q}}`, base, m[1])
	if code, resp := post(t, "/e/", []byte(pv), map[string]string{"User-Agent": firefoxUA}); code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	st := waitStats(t, "", func(s statsAnswer) bool { return s.JSShare != nil && *s.JSShare == 1 })
	if st.Pageviews != 1 || st.Visitors != 1 || st.Sessions != 1 {
		t.Errorf("stats %+v, want the page load once: 1 pageview, 1 visitor, 1 session", st)
	}
	// A second page load without the snippet counts by the server.
	visit(t, "/docs.html", nil)
	st = waitStats(t, "", func(s statsAnswer) bool { return s.Pageviews == 2 })
	if st.JSShare == nil || *st.JSShare != 0.5 {
		t.Errorf("js_share %v, want 0.5", st.JSShare)
	}
}

// TestDownloadsAndFeeds: a full download is counted, a Range request for
// the same file is not counted again; a feed reader's fetch is stored with
// the subscriber count its User-Agent gives.
func TestDownloadsAndFeeds(t *testing.T) {
	serverSite(t, "")
	if code, _ := visit(t, "/report.pdf", nil); code != 200 {
		t.Fatal(code)
	}
	if code, _ := visit(t, "/report.pdf", map[string]string{"Range": "bytes=100-199"}); code != 206 {
		t.Fatalf("range request answered %d", code)
	}
	if code, _ := visit(t, "/feed.xml", map[string]string{"User-Agent": "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 43 subscribers; like FeedFetcher-Google)"}); code != 200 {
		t.Fatal(code)
	}
	visit(t, "/feed.xml", map[string]string{"User-Agent": "NewsBlur Feed Fetcher - 5 subscribers - https://www.newsblur.com/site/1/t"})
	deadline := time.Now().Add(10 * time.Second)
	for {
		var dl struct {
			Results []struct {
				Value string
				Count int
			}
		}
		getJSON(t, api+"/breakdown?from=2020-01-01&event=$download&property=$pathname", &dl)
		var rep struct {
			Feeds []struct {
				Path        string
				Subscribers int
				Fetches     int
			}
		}
		getJSON(t, api+"/server?from=2020-01-01", &rep)
		if len(dl.Results) == 1 && len(rep.Feeds) == 1 && rep.Feeds[0].Fetches == 2 {
			if dl.Results[0].Value != "/report.pdf" || dl.Results[0].Count != 1 {
				t.Errorf("downloads %+v, want /report.pdf once", dl.Results)
			}
			if rep.Feeds[0].Path != "/feed.xml" || rep.Feeds[0].Subscribers != 48 {
				t.Errorf("feeds %+v, want /feed.xml with 43 + 5 subscribers", rep.Feeds)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("downloads %+v, feeds %+v", dl, rep)
		}
		time.Sleep(20 * time.Millisecond) // polling the background commit
	}
	// Neither a download nor a feed fetch is a pageview.
	var st statsAnswer
	getJSON(t, api+"/stats?from=2020-01-01", &st)
	if st.Pageviews != 0 {
		t.Errorf("%d pageviews from downloads and feeds", st.Pageviews)
	}
}

// TestCookielessThroughCaddy: with persistence none, events sent with the
// cookieless id get the server's daily id and session: two pages of one
// visit are one person and one session, joined with the server pageviews
// of the same visitor; another User-Agent is another person.
func TestCookielessThroughCaddy(t *testing.T) {
	serverSite(t, "persistence none")
	_, body := visit(t, "/", nil)
	if !strings.Contains(body, `data-persistence="none"`) {
		t.Fatalf("tag without data-persistence=none: %s", body)
	}
	ref := dataRefRE.FindStringSubmatch(body)[1]
	send := func(ua, path, ref string) {
		pv := fmt.Sprintf(`{"event":"$pageview","distinct_id":"$posthog_cookieless","properties":{"$current_url":"%s%s","$pageview_ref":%q}}`, base, path, ref)
		if code, resp := post(t, "/e/", []byte(pv), map[string]string{"User-Agent": ua}); code != 200 {
			t.Fatalf("%d %s", code, resp)
		}
	}
	send(firefoxUA, "/", ref)
	visit(t, "/docs.html", nil) // a page the snippet did not confirm (blocked)
	send(firefoxUA, "/pricing", "")
	send("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15", "/", "")
	st := waitStats(t, "", func(s statsAnswer) bool { return s.Pageviews == 4 })
	if st.Visitors != 2 || st.Sessions != 2 {
		t.Errorf("stats %+v, want 4 pageviews of 2 visitors in 2 sessions", st)
	}
	for _, e := range events(t, "") {
		if !strings.HasPrefix(e.DistinctID, "c_") {
			t.Errorf("event %s kept distinct id %q", e.Event, e.DistinctID)
		}
	}
}

// TestDatacenterTraffic: events from a hosting network's address (here
// Hetzner's, through a trusted proxy) are marked $datacenter and left out
// of the reports unless bots=include.
func TestDatacenterTraffic(t *testing.T) {
	startCaddy(t, proxiedConfig(filepath.Join(t.TempDir(), "dc.db"), "rate_limit off"))
	for ip, did := range map[string]string{"5.9.10.10": "scraper", "84.128.1.1": "person"} {
		code, resp := post(t, "/e/", []byte(`{"event":"$pageview","distinct_id":"`+did+`","properties":{"$current_url":"https://test.example/"}}`),
			map[string]string{"X-Forwarded-For": ip, "User-Agent": firefoxUA})
		if code != 200 {
			t.Fatalf("%d %s", code, resp)
		}
	}
	var st statsAnswer
	getJSON(t, api+"/stats?from=2020-01-01", &st)
	if st.Visitors != 1 || st.Pageviews != 1 {
		t.Errorf("stats %+v, want the hosting network's visitor left out", st)
	}
	getJSON(t, api+"/stats?from=2020-01-01&bots=include", &st)
	if st.Visitors != 2 {
		t.Errorf("stats with bots=include %+v, want 2 visitors", st)
	}
	evs := events(t, "&bots=include")
	marked := 0
	for _, e := range evs {
		if e.Properties["$datacenter"] == true {
			marked++
			if e.DistinctID != "scraper" {
				t.Errorf("%s's event marked $datacenter", e.DistinctID)
			}
		}
	}
	if marked != 1 {
		t.Errorf("%d events marked $datacenter, want 1", marked)
	}
}
