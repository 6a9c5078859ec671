package caddymodule_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/posthog/posthog-go"

	_ "github.com/firstpartyhq/firstparty/caddymodule"
)

// The integration tests run a real Caddy in this process (caddytest) on
// loopback ports: admin 2999, HTTP 9080.
const (
	base     = "http://127.0.0.1:9080"
	endpoint = base + "/_f"
	api      = base + "/analytics/api"
)

func config(db string, extra string) string {
	return fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	skip_install_trust
	metrics
}
http://127.0.0.1:9080 {
	bind 127.0.0.1
	analytics {
		db %s
		site test.example
		rate_limit off
		%s
	}
	respond "page" 200
}
`, db, extra)
}

// testGlobal is the global options block of the in-process test servers:
// admin and HTTP on fixed loopback ports, no HTTPS, no grace period.
const testGlobal = `{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	skip_install_trust
}
`

func startCaddy(t *testing.T, cfg string) *caddytest.Tester {
	t.Helper()
	tc := caddytest.NewTester(t)
	tc.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	// The previous test's server closed its connections at once (grace
	// period 1ns); a kept-alive connection to it would answer EOF.
	http.DefaultClient.CloseIdleConnections()
	tc.Client.CloseIdleConnections()
	settle(base)
	return tc
}

// settle waits until three new connections in a row to url are answered
// (with any status): while the previous config's server is being stopped,
// a connection can still land in its accept queue and be reset. HEAD, so
// that no server pageview is counted.
func settle(url string) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	for ok, tries := 0, 0; ok < 3 && tries < 100; tries++ {
		res, err := c.Head(url + "/")
		if err != nil {
			ok = 0
			time.Sleep(20 * time.Millisecond)
			continue
		}
		res.Body.Close()
		ok++
	}
}

// requireTool skips when a tool is missing on a developer's machine, and
// fails in CI (FIRSTPARTY_REQUIRE_ALL=1), where .ci/run installs it.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("FIRSTPARTY_REQUIRE_ALL") != "" {
			t.Fatalf("%s is required but not installed", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

type apiEvent struct {
	UUID       string         `json:"uuid"`
	Event      string         `json:"event"`
	DistinctID string         `json:"distinct_id"`
	PersonID   string         `json:"person_id"`
	Timestamp  time.Time      `json:"timestamp"`
	Properties map[string]any `json:"properties"`
}

func getJSON(t *testing.T, url string, into any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
}

// events lists every stored event of test.example in the last day, oldest
// first.
func events(t *testing.T, query string) []apiEvent {
	t.Helper()
	var all []apiEvent
	cursor := ""
	for {
		var page struct {
			Results []apiEvent
			Next    *string
		}
		u := api + "/events?limit=1000&from=" + time.Now().Add(-24*time.Hour).UTC().Format(time.RFC3339) + query
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		getJSON(t, u, &page)
		all = append(all, page.Results...)
		if page.Next == nil {
			break
		}
		cursor = *page.Next
	}
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	return all
}

func post(t *testing.T, path string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	return send(t, "POST", endpoint+path, body, hdr)
}

// send makes one request and answers its status and body.
func send(t *testing.T, method, url string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
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

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// TestPosthogGoSDK drives the real posthog-go client against Caddy.
func TestPosthogGoSDK(t *testing.T) {
	startCaddy(t, config(filepath.Join(t.TempDir(), "go.db"), ""))
	client, err := posthog.NewWithConfig("phc_go", posthog.Config{Endpoint: endpoint, BatchSize: 100, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	mustEnqueue := func(m posthog.Message) {
		if err := client.Enqueue(m); err != nil {
			t.Fatal(err)
		}
	}
	mustEnqueue(posthog.Capture{DistinctId: "go-user", Event: "go_signed_up", Properties: posthog.NewProperties().Set("plan", "pro")})
	mustEnqueue(posthog.Capture{DistinctId: "go-user", Event: "go_clicked", Groups: posthog.NewGroups().Set("company", "acme")})
	mustEnqueue(posthog.Capture{DistinctId: "go-user", Event: "go_clicked", Uuid: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a99"})
	mustEnqueue(posthog.Capture{DistinctId: "go-user", Event: "go_clicked", Uuid: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a99"})
	mustEnqueue(posthog.Identify{DistinctId: "go-user", Properties: posthog.NewProperties().Set("email", "go@example.com")})
	mustEnqueue(posthog.Alias{DistinctId: "go-user", Alias: "go-legacy"})
	mustEnqueue(posthog.GroupIdentify{Type: "company", Key: "acme", Properties: posthog.NewProperties().Set("size", 5)})
	if _, err := client.IsFeatureEnabled(posthog.FeatureFlagPayload{Key: "probe-flag", DistinctId: "go-user"}); err != nil {
		t.Logf("flags answer: %v", err)
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}

	evs := events(t, "")
	count := map[string]int{}
	for _, e := range evs {
		count[e.Event]++
	}
	want := map[string]int{"go_signed_up": 1, "go_clicked": 2, "$identify": 1, "$create_alias": 1, "$groupidentify": 1}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%s: %d events, want %d (all: %v)", k, count[k], n, count)
		}
	}
	var person map[string]any
	getJSON(t, api+"/persons/go-legacy", &person)
	if fmt.Sprint(person["distinct_ids"]) != "[go-user go-legacy]" || person["properties"].(map[string]any)["email"] != "go@example.com" {
		t.Errorf("person %v", person)
	}
	for _, e := range evs {
		if e.Event == "go_signed_up" && (e.Properties["plan"] != "pro" || e.Properties["$lib"] != "posthog-go") {
			t.Errorf("capture properties %v", e.Properties)
		}
	}
}

// TestPosthogNodeSDK drives the real posthog-node client (npm) against
// Caddy: gzip batches with Content-Encoding, identify with $set inside
// properties, alias, flags.
func TestPosthogNodeSDK(t *testing.T) {
	requireTool(t, "node")
	npm := requireTool(t, "npm")
	dir, _ := filepath.Abs("testdata/sdk-node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "posthog-node")); err != nil {
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
	}
	startCaddy(t, config(filepath.Join(t.TempDir(), "node.db"), ""))
	cmd := exec.Command("node", "send.mjs", endpoint)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	evs := events(t, "")
	count := map[string]int{}
	for _, e := range evs {
		count[e.Event]++
		if e.Properties["$lib"] != "posthog-node" && e.Event != "$groupidentify" {
			t.Errorf("event %s lacks $lib: %v", e.Event, e.Properties)
		}
	}
	want := map[string]int{"node_signed_up": 1, "node_clicked": 2, "$identify": 1, "$create_alias": 1, "$groupidentify": 1}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%s: %d events, want %d (all: %v)\nnode said: %s", k, count[k], n, count, out)
		}
	}
	var person map[string]any
	getJSON(t, api+"/persons/node-legacy", &person)
	if fmt.Sprint(person["distinct_ids"]) != "[node-user node-legacy]" || person["properties"].(map[string]any)["email"] != "node@example.com" {
		t.Errorf("person %v", person)
	}
}

// TestEndpointsThroughCaddy sends the browser SDK's encodings through Caddy
// and checks routing, answers, metrics and that other paths reach the next
// handler.
func TestEndpointsThroughCaddy(t *testing.T) {
	startCaddy(t, config(filepath.Join(t.TempDir(), "ep.db"), "token phc_tok"))
	// Counters live in Caddy's registry for the whole process; other tests
	// of this package count under the same site, so compare differences.
	counters := []string{
		`caddy_analytics_events_total{kind="pageview",site="test.example"}`,
		`caddy_analytics_events_rejected_total{reason="token",site="test.example"}`,
		`caddy_analytics_events_rejected_total{reason="bad_body",site="test.example"}`,
	}
	before := map[string]float64{}
	for _, c := range counters {
		before[c] = metricValue(t, c)
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	batch := `{"api_key":"phc_tok","sent_at":"` + now + `","batch":[{"event":"$pageview","timestamp":"` + now + `","properties":{"distinct_id":"browser-1","token":"phc_tok","$current_url":"http://test.example/docs?utm_source=hn","$session_id":"s-1"}}]}`
	code, body := post(t, "/i/v0/e/", gzipped([]byte(batch)), map[string]string{"Content-Type": "text/plain", "User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"})
	if code != 200 || body != `{"status":1}` {
		t.Fatalf("%d %s", code, body)
	}
	code, _ = post(t, "/e", []byte(`{"event":"x","distinct_id":"d","api_key":"wrong"}`), nil)
	if code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	code, _ = post(t, "/e", []byte(`{"event":`), nil)
	if code != 400 {
		t.Fatalf("bad json: %d", code)
	}
	evs := events(t, "")
	if len(evs) != 1 || evs[0].Properties["utm_source"] != "hn" || evs[0].Properties["$browser"] != "Safari" || evs[0].Properties["$pathname"] != "/docs" {
		t.Fatalf("events %+v", evs)
	}
	res, err := http.Get(base + "/some/page")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "page" {
		t.Fatalf("next handler not reached: %q", b)
	}
	for _, c := range counters {
		if d := metricValue(t, c) - before[c]; d != 1 {
			t.Errorf("%s went up by %v, want 1", c, d)
		}
	}
	if v := metricValue(t, `caddy_analytics_stored_events{site="test.example"}`); v != 1 {
		t.Errorf("stored_events %v, want 1", v)
	}
	if v := metricValue(t, `caddy_analytics_ingest_seconds_count`); v < 1 {
		t.Errorf("ingest_seconds_count %v", v)
	}
}

// metricValue reads one series from Caddy's /metrics (0 when absent).
func metricValue(t *testing.T, series string) float64 {
	t.Helper()
	res, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok && strings.HasPrefix(line, series+"{") {
			// A series named without labels matches its first labelled line.
			_, rest, ok = strings.Cut(line, "} ")
		}
		if ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// TestSharedStoreAcrossBlocksAndReload: two site blocks name one db, and a
// reload keeps it open with everything in it.
func TestSharedStoreAcrossBlocksAndReload(t *testing.T) {
	db := filepath.Join(t.TempDir(), "shared.db")
	two := fmt.Sprintf(testGlobal+`http://127.0.0.1:9080 {
	bind 127.0.0.1
	analytics {
		db %[1]s
		site one.example
		rate_limit off
	}
	respond "one" 200
}
http://localhost:9080 {
	bind 127.0.0.1
	analytics {
		db %[1]s
		site two.example
		rate_limit off
		%[2]s
	}
	respond "two" 200
}
`, db, "")
	startCaddy(t, two)
	if code, body := post(t, "/e/", []byte(`{"event":"one","distinct_id":"a"}`), nil); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	req, _ := http.NewRequest("POST", "http://localhost:9080/_f/e/", strings.NewReader(`{"event":"two","distinct_id":"b"}`))
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("%v %v", err, res)
	}
	res.Body.Close()
	// Each block's dashboard shows its own site only (SPEC §5.1).
	for u, want := range map[string]string{api: "[one.example]", "http://localhost:9080/analytics/api": "[two.example]"} {
		var sites struct{ Sites []string }
		getJSON(t, u+"/sites", &sites)
		if fmt.Sprint(sites.Sites) != want {
			t.Fatalf("%s/sites: %v, want %s", u, sites.Sites, want)
		}
	}
	// Reload with a changed config: the store stays open and keeps its data.
	startCaddy(t, strings.Replace(two, `respond "one" 200`, `respond "one again" 200`, 1))
	var page struct{ Results []apiEvent }
	getJSON(t, "http://localhost:9080/analytics/api/events?from="+time.Now().Add(-24*time.Hour).UTC().Format(time.RFC3339), &page)
	if evs := page.Results; len(evs) != 1 || evs[0].Event != "two" {
		t.Fatalf("after reload: %+v", evs)
	}
}

// TestBadConfigNamesDirectiveAndValue: a bad value fails the load with an
// error naming it.
func TestBadConfigNamesDirectiveAndValue(t *testing.T) {
	caddytest.AssertLoadError(t, config(":memory:", "sync sometimes"), "caddyfile", `analytics sync: unknown value \"sometimes\"`)
	caddytest.AssertLoadError(t, config(":memory:", "geoip /nonexistent/City.mmdb"), "caddyfile", "/nonexistent/City.mmdb")
}
