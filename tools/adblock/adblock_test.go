package adblock_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/tools/adblock"
)

// request is one line of check.mjs's input; Page is optional.
type request struct {
	URL  string `json:"url"`
	Type string `json:"type"`
	Page string `json:"page,omitempty"`
}

// result is one line of check.mjs's output.
type result struct {
	URL     string   `json:"url"`
	Type    string   `json:"type"`
	Blocked bool     `json:"blocked"`
	Filter  *string  `json:"filter"`
	By      []string `json:"by"`
	List    *string  `json:"list"`
}

// judges are the engine/environment pairs check.mjs evaluates by default.
var judges = []string{"ubo/chromium", "ubo/firefox", "ubo/firefox-mobile", "ubo/ubol", "ghostery"}

// mustBlock are requests the lists are known to block. If one of them
// passes, the checker is broken (lists not loaded, types or page ignored),
// and a pass for our URLs would mean nothing.
var mustBlock = []request{
	{URL: "https://example.com/js/plausible.js", Type: adblock.Script},
	{URL: "https://example.com/matomo.js", Type: adblock.Script},
	{URL: "https://www.google-analytics.com/analytics.js", Type: adblock.Script},
	{URL: "https://us-assets.i.posthog.com/static/array.js", Type: adblock.Script},
	{URL: "https://us.i.posthog.com/i/v0/e/", Type: adblock.XHR},
	{URL: "https://example.com/ingest/e/?ip=1", Type: adblock.XHR},
	// Why a prefix must not end in /s: ublock-privacy blocks PostHog's
	// remote config under it.
	{URL: "https://example.com/s/array/phc_abc123/config", Type: adblock.XHR},
	{URL: "https://example.com/hit/e/", Type: adblock.Ping}, // `.com/hit$ping`
}

// mustPass are near misses of mustBlock that the lists do not block: they
// prove the request type and the page reach the engines.
var mustPass = []request{
	{URL: "https://example.com/hit/e/", Type: adblock.XHR},
	{URL: "https://example.com/s/array/phc_abc123/config", Type: adblock.XHR, Page: "https://other.example.org/"}, // rule is $1p
}

// randomPrefixes are examples of the per-deployment prefixes a site may use
// instead of the default: 4 to 6 lowercase letters and digits.
var randomPrefixes = append([]string{"/k3x9q", "/a7m2", "/zq81vd", "/p0tx4", "/h2wn", "/x9c3be", "/4fj7", "/mq2k8"}, generated...)

// generated are endpoints that `endpoint random` gives (RandomEndpoint) for
// a spread of site ids.
var generated = func() []string {
	var out []string
	for _, site := range []string{"example.com", "www.example.com", "shop.example.org", "localhost", "blog.example.net", "app.example.io", "test.example", "a.b.c.example.co.uk"} {
		out = append(out, adblock.RandomEndpoint(site))
	}
	for i := 0; i < 40; i++ {
		out = append(out, adblock.RandomEndpoint("site-"+strconv.Itoa(i)+".example"))
	}
	return out
}()

func TestDefaultURLsNotBlocked(t *testing.T) {
	var reqs []request
	reqs = append(reqs, mustBlock...)
	reqs = append(reqs, mustPass...)
	ours := map[string][]adblock.Probe{adblock.DefaultEndpoint: adblock.URLs(adblock.DefaultEndpoint)}
	for _, p := range randomPrefixes {
		ours[p] = adblock.URLs(p)
	}
	for _, endpoint := range append([]string{adblock.DefaultEndpoint}, randomPrefixes...) {
		for _, p := range ours[endpoint] {
			reqs = append(reqs, request{URL: p.URL, Type: p.Type})
		}
	}

	results := runChecker(t, reqs)

	t.Run("known blocked", func(t *testing.T) {
		for i, r := range results[:len(mustBlock)] {
			if !r.Blocked {
				t.Errorf("%s (%s) is not blocked; the lists block it, so the checker is misconfigured", mustBlock[i].URL, mustBlock[i].Type)
				continue
			}
			for _, j := range judges {
				if !slices.Contains(r.By, j) {
					t.Errorf("%s (%s) is not blocked by %s (only by %v): that engine is misconfigured", r.URL, r.Type, j, r.By)
				}
			}
		}
	})
	t.Run("near misses pass", func(t *testing.T) {
		for i, r := range results[len(mustBlock) : len(mustBlock)+len(mustPass)] {
			if r.Blocked {
				t.Errorf("%s (%s, page %q) is blocked by %s: the checker ignores the request type or page", r.URL, r.Type, mustPass[i].Page, describe(r))
			}
		}
	})
	rest := results[len(mustBlock)+len(mustPass):]
	for _, endpoint := range append([]string{adblock.DefaultEndpoint}, randomPrefixes...) {
		n := len(ours[endpoint])
		got := rest[:n]
		rest = rest[n:]
		t.Run("endpoint "+endpoint, func(t *testing.T) {
			for _, r := range got {
				if testing.Verbose() && !r.Blocked {
					t.Logf("pass %s (%s)", r.URL, r.Type)
				}
				if r.Blocked {
					t.Errorf("BLOCKED %s (%s) by %s", r.URL, r.Type, describe(r))
				}
			}
		})
	}
}

func describe(r result) string {
	s := "filter " + deref(r.Filter)
	if r.List != nil {
		s += " from " + *r.List
	}
	return s + " in " + strings.Join(r.By, ", ")
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}

// runChecker runs check.mjs over reqs and returns one result per request, in
// order. It skips the test when Node.js is not installed.
func runChecker(t *testing.T, reqs []request) []result {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found in PATH: the ad-block list check needs Node.js 18+ and npm (CI installs them)")
	}
	readInputs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	if !installed() {
		npm, err := exec.LookPath("npm")
		if err != nil {
			t.Skip("npm not found in PATH: it is needed once to install tools/adblock/node_modules (npm ci)")
		}
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in tools/adblock: %v\n%s", err, out)
		}
	}

	in, err := json.Marshal(map[string]any{"page": adblock.Page, "requests": reqs})
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, node, "check.mjs")
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node check.mjs: %v\n%s", err, stderr.Bytes())
	}
	var out struct {
		Results []result `json:"results"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("decoding check.mjs output: %v\n%s", err, stdout.Bytes())
	}
	if len(out.Results) != len(reqs) {
		t.Fatalf("check.mjs answered %d results for %d requests", len(out.Results), len(reqs))
	}
	for i, r := range out.Results {
		if r.URL != reqs[i].URL || r.Type != reqs[i].Type {
			t.Fatalf("result %d is for %s (%s), want %s (%s)", i, r.URL, r.Type, reqs[i].URL, reqs[i].Type)
		}
	}
	return out.Results
}

// readInputs reads what check.mjs reads. Files that only node opens are
// unknown to go test's cache, which would otherwise replay an old result
// after the lists or the checker change.
func readInputs(t *testing.T) {
	t.Helper()
	lists, err := filepath.Glob(filepath.Join("..", "..", "testdata", "adblock-lists", "*.txt.gz"))
	if err != nil || len(lists) == 0 {
		t.Fatalf("no filter list in testdata/adblock-lists (err %v)", err)
	}
	for _, f := range append(lists, "check.mjs", "package-lock.json") {
		if _, err := os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
}

// installed reports whether npm ci has already run.
func installed() bool {
	for _, pkg := range []string{"@gorhill/ubo-core", "@ghostery/adblocker"} {
		if _, err := os.Stat(filepath.Join("node_modules", pkg, "package.json")); err != nil {
			return false
		}
	}
	return true
}

// TestURLs pins the probe list to what the browser requests (SPEC §3), so
// that a path cannot silently drop out of the check.
func TestURLs(t *testing.T) {
	got := map[adblock.Probe]bool{}
	for _, p := range adblock.URLs(adblock.DefaultEndpoint) {
		if got[p] {
			t.Errorf("duplicate probe %v", p)
		}
		got[p] = true
	}
	base := "https://example.com" + adblock.DefaultEndpoint
	want := []adblock.Probe{
		{URL: base + "/" + adblock.DefaultSnippetName, Type: adblock.Script},
		{URL: base + "/" + adblock.DefaultSnippetName + "?v=1a2b3c4d", Type: adblock.Script},
		{URL: base + "/array/phc_abc123/config.js", Type: adblock.Script},
		{URL: base + "/static/array.js", Type: adblock.Script},
		{URL: base + "/" + adblock.RecorderChunkName, Type: adblock.Script},
		{URL: base + "/flags/?v=2", Type: adblock.XHR},
		{URL: base + "/decide/", Type: adblock.XHR},
		{URL: base + "/array/phc_abc123/config", Type: adblock.XHR},
	}
	for _, p := range []string{"/e/", "/i/v0/e/", "/batch/", "/capture/", "/track/", "/engage/", "/s/"} {
		want = append(want,
			adblock.Probe{URL: base + p, Type: adblock.XHR},
			adblock.Probe{URL: base + p, Type: adblock.Ping},
			adblock.Probe{URL: base + strings.TrimSuffix(p, "/"), Type: adblock.XHR})
	}
	for _, p := range want {
		if !got[p] {
			t.Errorf("URLs(%q) lacks %s (%s)", adblock.DefaultEndpoint, p.URL, p.Type)
		}
	}

	for _, e := range []string{"_f", "/_f/", "_f/"} {
		if !slices.Equal(adblock.URLs(e), adblock.URLs("/_f")) {
			t.Errorf("URLs(%q) differs from URLs(%q)", e, "/_f")
		}
	}
	if u := adblock.URLs("/a/b")[0].URL; !strings.HasPrefix(u, "https://example.com/a/b/") {
		t.Errorf("URLs(%q)[0] = %s, want it under https://example.com/a/b/", "/a/b", u)
	}
}

// TestRandomEndpoint pins the shape of RandomEndpoint: stable, five
// characters alternating letter and digit, different across sites.
func TestRandomEndpoint(t *testing.T) {
	shape := regexp.MustCompile(`^/[a-z][0-9][a-z][0-9][a-z]$`)
	seen := map[string]string{}
	for i := 0; i < 2000; i++ {
		site := "site-" + strconv.Itoa(i) + ".example"
		e := adblock.RandomEndpoint(site)
		if !shape.MatchString(e) || strings.HasPrefix(e, "/hit") {
			t.Fatalf("RandomEndpoint(%q) = %q", site, e)
		}
		if e != adblock.RandomEndpoint(site) {
			t.Fatalf("RandomEndpoint(%q) is not stable", site)
		}
		seen[e] = site
	}
	// 26*10*26*10*26 = 1.76 million prefixes: 2000 sites must nearly all differ.
	if len(seen) < 1990 {
		t.Errorf("only %d distinct endpoints for 2000 sites", len(seen))
	}
}
