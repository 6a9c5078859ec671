package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/tidwall/gjson"
)

var testNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

const chromeUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"

type countingMetrics struct {
	mu        sync.Mutex
	stored    map[string]int
	rejected  map[string]int
	truncated int
}

func newCounting() *countingMetrics {
	return &countingMetrics{stored: map[string]int{}, rejected: map[string]int{}}
}
func (m *countingMetrics) Stored(site, kind string, n int) {
	m.mu.Lock()
	m.stored[kind] += n
	m.mu.Unlock()
}
func (m *countingMetrics) Rejected(site, reason string, n int) {
	m.mu.Lock()
	m.rejected[reason] += n
	m.mu.Unlock()
}
func (m *countingMetrics) Truncated(site string, n int) {
	m.mu.Lock()
	m.truncated += n
	m.mu.Unlock()
}
func (m *countingMetrics) Observe(time.Duration) {}

type fixture struct {
	t   *testing.T
	db  *store.DB
	c   *Collector
	m   *countingMetrics
	ip  string
	now time.Time
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	db, err := store.Open(":memory:", store.Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	geo, err := OpenGeo("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { geo.Close() })
	if cfg.Site == "" {
		cfg.Site = "example.com"
	}
	f := &fixture{t: t, db: db, m: newCounting(), ip: "8.8.8.8", now: testNow}
	f.c = New(cfg, db, Options{
		Geo:      geo,
		Metrics:  f.m,
		ClientIP: func(*http.Request) netip.Addr { return netip.MustParseAddr(f.ip) },
		Now:      func() time.Time { return f.now },
	})
	return f
}

type req struct {
	method, path string
	body         []byte
	headers      map[string]string
}

func (f *fixture) do(r req) (int, string) {
	f.t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	hr := httptest.NewRequest(r.method, r.path, bytes.NewReader(r.body))
	hr.Header.Set("User-Agent", chromeUA)
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.c.ServeHTTP(w, hr)
	return w.Code, w.Body.String()
}

func (f *fixture) events() []*store.Event {
	f.t.Helper()
	var all []*store.Event
	q := store.EventQuery{Site: "example.com", To: 1 << 62, Limit: 1000}
	for {
		p, err := f.db.Events(context.Background(), q)
		if err != nil {
			f.t.Fatal(err)
		}
		all = append(all, p.Results...)
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	// oldest first reads better in tests
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	return all
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// The shapes of sdk-wire.md, request by request.

func TestPosthogJSGzipTextPlainBatch(t *testing.T) {
	f := newFixture(t, Config{})
	body := `{"api_key":"phc_x","sent_at":"2026-11-24T11:59:59.000Z","batch":[
	 {"event":"$pageview","timestamp":"2026-11-24T11:59:58.500Z","uuid":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
	  "properties":{"distinct_id":"anon-1","token":"phc_x","$current_url":"https://example.com/pricing?utm_source=news&utm_campaign=fall","$referrer":"https://www.google.com/search?q=x","$session_id":"s1","$lib":"web"}},
	 {"event":"$autocapture","timestamp":"2026-11-24T11:59:58.900Z","uuid":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
	  "properties":{"distinct_id":"anon-1","token":"phc_x","$current_url":"https://example.com/pricing","$event_type":"click","$elements_chain":"button.cta:text=\"Buy\"nth-child=\"1\"nth-of-type=\"1\""}}]}`
	code, resp := f.do(req{path: "/i/v0/e/", body: gz([]byte(body)), headers: map[string]string{"Content-Type": "text/plain"}})
	if code != 200 || resp != `{"status":1}` {
		t.Fatalf("%d %s", code, resp)
	}
	evs := f.events()
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	pv := evs[0]
	// sent_at was 1s before now and the event 0.5s before that: skew-corrected.
	if want := ms(testNow) - 500; pv.Time != want {
		t.Errorf("time %d, want %d", pv.Time, want)
	}
	if pv.DistinctID != "anon-1" || pv.UUID != "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b" {
		t.Errorf("event %s", pv.AppendJSON(nil, ""))
	}
	want := map[string]string{
		"$pathname": "/pricing", "$host": "example.com", "utm_source": "news", "utm_campaign": "fall",
		"$referring_domain": "www.google.com", "$browser": "Chrome", "$os": "Linux", "$device_type": "Desktop",
		"$geoip_country_code": "US", "$geoip_country_name": "United States", "$geoip_continent_code": "NA",
	}
	for k, v := range want {
		if got := pv.Props.Str(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"distinct_id", "token", "$ip"} {
		if _, ok := pv.Props.Get(k); ok {
			t.Errorf("%s kept in properties", k)
		}
	}
	if f.m.stored["pageview"] != 1 || f.m.stored["autocapture"] != 1 {
		t.Errorf("metrics %v", f.m.stored)
	}
}

func TestPosthogJSWithoutConfigBase64Form(t *testing.T) {
	f := newFixture(t, Config{})
	ev := `{"api_key":"phc_x","batch":[{"event":"$pageleave","timestamp":"2026-11-24T11:00:00.000Z","properties":{"distinct_id":"a","$current_url":"https://example.com/"}}],"sent_at":"2026-11-24T11:00:00.000Z"}`
	form := "data=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(ev)))
	code, resp := f.do(req{path: "/e/?compression=base64", body: []byte(form), headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
	if code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	// The beacon variant: text/plain JSON without query.
	code, resp = f.do(req{path: "/e", body: []byte(`{"event":"custom","properties":{"distinct_id":"a"}}`), headers: map[string]string{"Content-Type": "text/plain;charset=UTF-8"}})
	if code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	// curl -d sends JSON under a form content type.
	code, resp = f.do(req{path: "/e/", body: []byte(`{"event":"curl","distinct_id":"a"}`), headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
	if code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	evs := f.events()
	if len(evs) != 3 || evs[0].Name != "$pageleave" || evs[1].Name != "custom" {
		t.Fatalf("events %v", eventNames(evs))
	}
	if evs[0].Props.Str("$referring_domain") != "$direct" {
		t.Errorf("referring domain %q", evs[0].Props.Str("$referring_domain"))
	}
	if evs[1].Time != ms(testNow) {
		t.Errorf("no timestamp should mean now, got %d", evs[1].Time)
	}
}

func eventNames(evs []*store.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Name)
	}
	return out
}

func TestPosthogNodeGzipBatch(t *testing.T) {
	f := newFixture(t, Config{})
	f.ip = "81.2.69.160"
	body := `{"api_key":"phc_x","batch":[
	 {"event":"signed_up","distinct_id":"user-1","properties":{"$lib":"posthog-node","$geoip_disable":true,"plan":"pro","$groups":{"company":"acme"}},"timestamp":"2026-11-24T11:59:59.000Z","uuid":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a00"},
	 {"event":"$identify","distinct_id":"user-1","properties":{"$lib":"posthog-node","$set":{"email":"u@x"},"$set_once":{"first":"2026"},"$geoip_disable":true},"timestamp":"2026-11-24T11:59:59.000Z","uuid":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01"},
	 {"event":"$create_alias","distinct_id":"user-1","properties":{"alias":"legacy-7","distinct_id":"user-1","$geoip_disable":true},"timestamp":"2026-11-24T11:59:59.000Z","uuid":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a02"}],
	 "sent_at":"2026-11-24T11:59:59.000Z"}`
	code, resp := f.do(req{path: "/batch/", body: gz([]byte(body)), headers: map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip", "User-Agent": "posthog-node/5.70.0"}})
	if code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	evs := f.events()
	if len(evs) != 3 {
		t.Fatalf("%d events", len(evs))
	}
	if evs[0].Props.Str("$geoip_country_code") != "" {
		t.Error("$geoip_disable was not honoured")
	}
	if evs[0].Props.Str("$browser") != "" {
		t.Error("a server SDK user agent gave a browser")
	}
	p, err := f.db.Person(context.Background(), "example.com", "legacy-7")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(p.DistinctIDs) != "[user-1 legacy-7]" || p.Properties.Str("email") != "u@x" || p.Properties.Str("first") != "2026" {
		t.Errorf("person %s", p.AppendJSON(nil))
	}
}

func TestPosthogGoShapes(t *testing.T) {
	f := newFixture(t, Config{})
	body := `{"api_key":"phc_x","batch":[
	 {"type":"capture","event":"clicked","distinct_id":"u9","properties":{"$lib":"posthog-go"},"timestamp":"2026-11-24T11:59:58.123456789Z","library":"posthog-go","uuid":""},
	 {"type":"capture","event":"clicked","distinct_id":"u9","properties":{"$lib":"posthog-go"},"timestamp":"2026-11-24T11:59:58.123456789Z","library":"posthog-go","uuid":""},
	 {"type":"identify","event":"$identify","distinct_id":"u9","$set":{"name":"Nine"},"properties":{"$lib":"posthog-go"},"timestamp":"2026-11-24T11:59:58Z"},
	 {"type":"alias","event":"$create_alias","properties":{"distinct_id":"u9","alias":"old-9"},"timestamp":"2026-11-24T11:59:58Z"},
	 {"event":"$groupidentify","distinct_id":"$company_acme","properties":{"$group_type":"company","$group_key":"acme","$group_set":{"size":5}},"timestamp":"2026-11-24T11:59:58Z"}]}`
	code, resp := f.do(req{path: "/batch", body: []byte(body), headers: map[string]string{"Content-Type": "application/json", "User-Agent": "posthog-go/1.5.2"}})
	if code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	evs := f.events()
	if len(evs) != 5 {
		t.Fatalf("%d events: two captures with empty uuids are two events", len(evs))
	}
	var clicks []string
	for _, e := range evs {
		if e.Name == "clicked" {
			clicks = append(clicks, e.UUID)
		}
	}
	if len(clicks) != 2 || clicks[0] == "" || clicks[0] == clicks[1] {
		t.Errorf("server must make distinct uuids, got %q", clicks)
	}
	for _, e := range evs {
		if e.Name == "clicked" && e.Time != time.Date(2026, 11, 24, 11, 59, 58, 123e6, time.UTC).UnixMilli() {
			t.Errorf("nanosecond timestamp read as %d", e.Time)
		}
	}
	p, err := f.db.Person(context.Background(), "example.com", "old-9")
	if err != nil || p.Properties.Str("name") != "Nine" || len(p.DistinctIDs) != 2 {
		t.Fatalf("person %v %v", p, err)
	}
}

func TestEngage(t *testing.T) {
	f := newFixture(t, Config{})
	code, resp := f.do(req{path: "/engage/", body: []byte(`{"$token":"phc_x","$distinct_id":"e1","$set":{"plan":"pro"}}`)})
	if code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	code, _ = f.do(req{path: "/engage", body: []byte(`[{"$distinct_id":"e1","$set_once":{"plan":"free","src":"ad"}}]`)})
	if code != 200 {
		t.Fatal(code)
	}
	p, err := f.db.Person(context.Background(), "example.com", "e1")
	if err != nil || p.Properties.Str("plan") != "pro" || p.Properties.Str("src") != "ad" {
		t.Fatalf("person %v %v", p, err)
	}
}

func TestV1Endpoint(t *testing.T) {
	f := newFixture(t, Config{Token: "phc_secret"})
	body := `{"created_at":"2026-11-24T12:00:00Z","batch":[
	 {"event":"a","distinct_id":"v","uuid":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4aaa","timestamp":"2026-11-24T11:00:00Z"},
	 {"event":"a","distinct_id":"v","uuid":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4aaa","timestamp":"2026-11-24T11:00:00Z"},
	 {"event":"","distinct_id":"v"}]}`
	code, resp := f.do(req{path: "/i/v1/analytics/events", body: []byte(body), headers: map[string]string{"Authorization": "Bearer phc_secret"}})
	if code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	var ans struct {
		Status  int
		Results []struct{ Status, UUID, Reason string }
	}
	if err := json.Unmarshal([]byte(resp), &ans); err != nil {
		t.Fatal(err)
	}
	if len(ans.Results) != 3 || ans.Results[0].Status != "ok" || ans.Results[1].Status != "duplicate" || ans.Results[2].Status != "rejected" || ans.Results[2].Reason != ReasonBadEvent {
		t.Fatalf("answer %s", resp)
	}
	code, _ = f.do(req{path: "/i/v1/analytics/events", body: []byte(body), headers: map[string]string{"Authorization": "Bearer wrong"}})
	if code != 401 {
		t.Fatalf("wrong bearer got %d", code)
	}
}

func TestRecordingGzipFullSnapshot(t *testing.T) {
	f := newFixture(t, Config{})
	full := `{"node":{"type":0,"childNodes":[]},"initialOffset":{"top":0,"left":0}}`
	var latin []rune
	for _, b := range gz([]byte(full)) {
		latin = append(latin, rune(b))
	}
	dataStr, _ := json.Marshal(string(latin))
	body := `[{"event":"$snapshot","properties":{"$snapshot_data":[
	  {"type":4,"data":{"href":"https://example.com/","width":800,"height":600},"timestamp":1764000000000},
	  {"type":2,"cv":"2024-10","data":` + string(dataStr) + `,"timestamp":1764000000001},
	  {"type":3,"data":{"source":2,"type":2,"id":5},"timestamp":1764000005000}],
	  "$session_id":"sess-1","$window_id":"w1","distinct_id":"anon-r","token":"phc_x"},"sent_at":"2026-11-24T12:00:00Z","timestamp":"2026-11-24T12:00:00Z"}]`
	code, resp := f.do(req{path: "/s/", body: gz([]byte(body)), headers: map[string]string{"Content-Type": "text/plain"}})
	if code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	if n := len(f.events()); n != 0 {
		t.Fatalf("snapshots stored as %d analytics events", n)
	}
	recs := f.db.Recordings(context.Background(), "example.com", 0, 1<<62)
	if len(recs) != 1 || recs[0].SessionID != "sess-1" || recs[0].DistinctID != "anon-r" || recs[0].End-recs[0].Start != 5000 {
		t.Fatalf("recordings %+v", recs)
	}
	data, err := f.db.Recording(context.Background(), "example.com", "sess-1")
	if err != nil {
		t.Fatal(err)
	}
	var evs []map[string]any
	if err := json.Unmarshal(data, &evs); err != nil || len(evs) != 3 {
		t.Fatalf("%v %s", err, data)
	}
	if _, ok := evs[1]["cv"]; ok {
		t.Error("cv left in the stored full snapshot")
	}
	if node, ok := evs[1]["data"].(map[string]any)["node"]; !ok || node == nil {
		t.Errorf("full snapshot not decompressed: %s", data)
	}
}

func TestFlagsAndConfig(t *testing.T) {
	f := newFixture(t, Config{Record: true})
	for _, p := range []string{"/flags/?v=2", "/flags", "/decide/?v=3"} {
		code, resp := f.do(req{path: p, body: []byte(`{"token":"phc_x","distinct_id":"a"}`)})
		var ans map[string]any
		if code != 200 || json.Unmarshal([]byte(resp), &ans) != nil {
			t.Fatalf("%s: %d %s", p, code, resp)
		}
		if _, ok := ans["flags"].(map[string]any); !ok {
			t.Errorf("%s: no flags map: %s", p, resp)
		}
		if _, ok := ans["featureFlags"].(map[string]any); !ok {
			t.Errorf("%s: no featureFlags map: %s", p, resp)
		}
	}
	code, js := f.do(req{method: "GET", path: "/array/phc_x/config.js"})
	if code != 200 || !strings.Contains(js, `_POSTHOG_REMOTE_CONFIG["phc_x"]`) || !strings.Contains(js, `"elementsChainAsString":true`) || !strings.Contains(js, `"endpoint":"/s/"`) {
		t.Fatalf("%d %s", code, js)
	}
	code, cfg := f.do(req{method: "GET", path: "/array/phc_x/config"})
	var c map[string]any
	if code != 200 || json.Unmarshal([]byte(cfg), &c) != nil || c["supportedCompression"] == nil {
		t.Fatalf("%d %s", code, cfg)
	}
	// A token cannot break out of the script.
	_, js = f.do(req{method: "GET", path: "/array/" + url.PathEscape(`"]</script><script>alert(1)//`) + "/config.js"})
	if strings.Contains(js, "</script>") {
		t.Fatalf("token not escaped: %s", js)
	}
}

func TestBadInputLosesNothingElse(t *testing.T) {
	f := newFixture(t, Config{MaxBody: 4096})
	cases := []struct {
		name string
		r    req
		code int
	}{
		{"not json", req{path: "/e/", body: []byte(`{"event":`)}, 400},
		{"empty", req{path: "/e/", body: nil}, 400},
		{"array of junk", req{path: "/batch/", body: []byte(`[1,2,3]`)}, 400},
		{"no distinct id", req{path: "/e/", body: []byte(`{"event":"x","properties":{}}`)}, 400},
		{"seconds not ms", req{path: "/e/", body: []byte(`{"event":"x","distinct_id":"d","timestamp":1764000000}`)}, 400},
		{"far future", req{path: "/e/", body: []byte(`{"event":"x","distinct_id":"d","timestamp":"2099-01-01T00:00:00Z"}`)}, 400},
		{"bad gzip", req{path: "/e/?compression=gzip-js", body: []byte("\x1f\x8bnope")}, 400},
		{"deep", req{path: "/e/", body: []byte(strings.Repeat("[", 100) + strings.Repeat("]", 100))}, 400},
		{"too large", req{path: "/e/", body: bytes.Repeat([]byte(" "), 5000)}, 413},
		{"zip bomb", req{path: "/e/", body: gz(bytes.Repeat([]byte(" "), 100000))}, 413},
		{"lz64", req{path: "/e/?compression=lz64", body: []byte("xyz")}, 400},
		{"properties not object", req{path: "/e/", body: []byte(`{"event":"x","distinct_id":"d","properties":[1]}`)}, 400},
	}
	for _, c := range cases {
		code, resp := f.do(c.r)
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, resp, c.code)
		}
		if !strings.Contains(resp, `"error"`) {
			t.Errorf("%s: no error message: %s", c.name, resp)
		}
	}
	if n := len(f.events()); n != 0 {
		t.Fatalf("%d events stored from bad requests", n)
	}
	// A batch with bad events among good ones keeps the good ones.
	body := `{"batch":[{"event":"good","distinct_id":"a"},{"event":5,"distinct_id":"a"},{"distinct_id":"a"},{"event":"good2","distinct_id":"b","timestamp":"garbage"},{"event":"good3","properties":{"distinct_id":"c","bad` + "\xff" + `":"v` + "\xfe" + `"}}]}`
	code, resp := f.do(req{path: "/batch/", body: []byte(body)})
	if code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	evs := f.events()
	if fmt.Sprint(eventNames(evs)) != "[good good3]" {
		t.Fatalf("stored %v", eventNames(evs))
	}
	if _, ok := evs[1].Props.Get("bad\uFFFD"); !ok || evs[1].Props.Str("bad\uFFFD") != "v\uFFFD" {
		t.Errorf("bad UTF-8 not repaired: %s", evs[1].AppendJSON(nil, ""))
	}
	if f.m.rejected[ReasonBadEvent] < 2 || f.m.rejected[ReasonBadTimestamp] < 1 {
		t.Errorf("rejections %v", f.m.rejected)
	}
}

func TestTokenAndRateLimitAndBots(t *testing.T) {
	f := newFixture(t, Config{Token: "phc_right", RateLimit: 1})
	code, _ := f.do(req{path: "/e/", body: []byte(`{"event":"x","distinct_id":"d","api_key":"phc_wrong"}`)})
	if code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	code, _ = f.do(req{path: "/e/", body: []byte(`{"event":"x","distinct_id":"d","properties":{"token":"phc_right"}}`)})
	if code != 200 {
		t.Fatalf("right token: %d", code)
	}
	// Burst of 4 at 1/s: the first requests (one already made) pass, then 429.
	got429 := false
	for i := 0; i < 6; i++ {
		code, _ = f.do(req{path: "/e/", body: []byte(`{"event":"x","distinct_id":"d","api_key":"phc_right"}`)})
		got429 = got429 || code == 429
	}
	if !got429 {
		t.Fatal("rate limit never hit")
	}
	// Another IP is still served.
	f.ip = "1.1.1.1"
	code, _ = f.do(req{path: "/e/", body: []byte(`{"event":"x","distinct_id":"d","api_key":"phc_right"}`)})
	if code != 200 {
		t.Fatalf("other IP: %d", code)
	}
	// Time passing refills the bucket.
	f.ip = "8.8.8.8"
	f.now = f.now.Add(2 * time.Second)
	code, _ = f.do(req{path: "/e/", body: []byte(`{"event":"x","distinct_id":"d","api_key":"phc_right"}`)})
	if code != 200 {
		t.Fatalf("after refill: %d", code)
	}
	before := len(f.events())
	code, _ = f.do(req{path: "/e/", body: []byte(`{"event":"x","distinct_id":"d","api_key":"phc_right"}`), headers: map[string]string{"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}})
	if code != 200 || len(f.events()) != before || f.m.rejected[ReasonBot] != 1 {
		t.Fatalf("bot: %d, events %d→%d, %v", code, before, len(f.events()), f.m.rejected)
	}
}

func TestStoreIP(t *testing.T) {
	for _, keep := range []bool{false, true} {
		f := newFixture(t, Config{StoreIP: keep})
		f.do(req{path: "/e/", body: []byte(`{"event":"x","distinct_id":"d","properties":{"$ip":"9.9.9.9"}}`)})
		ev := f.events()[0]
		ip, has := ev.Props.Get("$ip")
		if has != keep || (keep && ip.S != "8.8.8.8") {
			t.Errorf("store_ip %v: $ip %v %q", keep, has, ip.S)
		}
	}
}

func TestTrailingSlashesAndMethods(t *testing.T) {
	f := newFixture(t, Config{})
	for _, p := range []string{"/e", "/e/", "/i/v0/e", "/i/v0/e/", "/capture", "/capture/", "/track", "/track/", "/batch", "/batch/"} {
		code, resp := f.do(req{path: p, body: []byte(`{"event":"x","distinct_id":"d"}`)})
		if code != 200 {
			t.Errorf("%s: %d %s", p, code, resp)
		}
	}
	code, _ := f.do(req{method: "PUT", path: "/e/", body: []byte(`{}`)})
	if code != 405 {
		t.Errorf("PUT: %d", code)
	}
	code, _ = f.do(req{method: "OPTIONS", path: "/e/", headers: map[string]string{"Origin": "https://other.example"}})
	if code != 204 {
		t.Errorf("OPTIONS: %d", code)
	}
	code, _ = f.do(req{method: "GET", path: "/nope"})
	if code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC).UnixMilli()
	for _, s := range []string{
		`"2026-11-24T10:00:00Z"`, `"2026-11-24T10:00:00.000Z"`, `"2026-11-24T11:00:00+01:00"`,
		`"2026-11-24T10:00:00"`, `"2026-11-24 10:00:00"`, `"2026-11-24T10:00:00.000000000Z"`,
		fmt.Sprint(want),
	} {
		got, ok := parseTime(gjson.Parse(s))
		if !ok || got != want {
			t.Errorf("%s: %d %v", s, got, ok)
		}
	}
	if got, ok := parseTime(gjson.Parse(fmt.Sprintf("%q", fmt.Sprint(want)))); !ok || got != want {
		t.Errorf("ms as string: %d %v", got, ok)
	}
	for _, bad := range []string{`"yesterday"`, `true`, `{}`, `""`} {
		if _, ok := parseTime(gjson.Parse(bad)); ok {
			t.Errorf("%s parsed", bad)
		}
	}
}
