package caddymodule_test

// Access (SPEC §5.1, docs/security.md): who may use the dashboard and what
// a request can make the server keep, each against a real Caddy.

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"golang.org/x/crypto/bcrypt"

	"github.com/firstpartyhq/firstparty/dashboard"
	"github.com/firstpartyhq/firstparty/store"
)

// reply is an answer read whole.
type reply struct {
	code int
	hdr  http.Header
	body string
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// call makes one request; host, when set, is the Host header.
func call(t testing.TB, method, u, host string, hdr map[string]string, body string) reply {
	t.Helper()
	r, err := try(method, u, host, hdr, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return r
}

// try is call for goroutines: it answers the error instead.
func try(method, u, host string, hdr map[string]string, body string) (reply, error) {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return reply{res.StatusCode, res.Header, string(b)}, err
}

// TestSiteOnlyFromConfig: a block without a concrete host must name its
// site (a config error naming `site`), and with one, 10,000 different
// Host headers make no site beside it.
func TestSiteOnlyFromConfig(t *testing.T) {
	for _, addr := range []string{":9080", "http://*.example.com:9080"} {
		caddytest.AssertLoadError(t, testGlobal+addr+` {
	bind 127.0.0.1
	analytics {
		db :memory:
	}
	respond "page" 200
}
`, "caddyfile", "analytics site: required")
	}

	db := filepath.Join(t.TempDir(), "flood.db")
	startCaddy(t, testGlobal+`:9080 {
	bind 127.0.0.1
	analytics {
		db `+db+`
		site flood.example
		rate_limit off
	}
	respond "page" 200
}
`)
	const n = 10000
	var wg sync.WaitGroup
	var bad atomic.Int64
	next := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				host := fmt.Sprintf("h%d.flood-%d.example", i, i%97)
				if r, err := try("POST", endpoint+"/e/", host, nil, fmt.Sprintf(`{"event":"e","distinct_id":"d%d"}`, i)); err != nil || r.code != 200 {
					t.Logf("capture %d: %v %d %s", i, err, r.code, r.body)
					bad.Add(1)
				}
				if i%100 == 0 {
					// The dashboard answers no foreign Host (no auth: loopback
					// names only) and never makes a site from one.
					if r, err := try("GET", api+"/sites?site="+host, host, nil, ""); err != nil || r.code != 403 {
						t.Logf("dashboard %d: %v %d %s", i, err, r.code, r.body)
						bad.Add(1)
					}
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d requests answered otherwise than expected", bad.Load())
	}
	var sites struct{ Sites []string }
	getJSON(t, api+"/sites", &sites)
	if fmt.Sprint(sites.Sites) != "[flood.example]" {
		t.Fatalf("/api/sites after %d Host headers: %v", n, sites.Sites)
	}
	stopCaddy(t)
	st, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := st.Sites(); fmt.Sprint(got) != "[flood.example]" || st.Count("flood.example") != n {
		t.Fatalf("store after %d Host headers: sites %v, %d events of flood.example", n, got, st.Count("flood.example"))
	}
}

// trustedConfig is a server behind two proxies: one on loopback and a
// second hop inside 10.0.0.0/8, both trusted.
func trustedConfig(db, extra string) string {
	return fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	skip_install_trust
	servers {
		trusted_proxies static 127.0.0.1/32 10.0.0.0/8
	}
}
http://127.0.0.1:9080 {
	bind 127.0.0.1
	analytics {
		db %s
		site test.example
		%s
	}
	respond "page" 200
}
`, db, extra)
}

// TestLimitsKeyOnTrustedAddress: with trusted_proxies, the address limits
// key on is the rightmost one that is not a trusted proxy; a client that
// rotates the leftmost X-Forwarded-For entry (which it writes itself) is
// still one client, for capture and for logins.
func TestLimitsKeyOnTrustedAddress(t *testing.T) {
	hash := "$2a$04$wUWzbnN4c.hQzA5tkkEPB.hrb4kjQ40yO9z8i/.0bJ1z3QvNsUVtS" // "correct horse", cost 4
	startCaddy(t, trustedConfig(filepath.Join(t.TempDir(), "xff.db"), "rate_limit 5\n\t\tdashboard_auth admin "+hash))
	// What the proxies write: the client's own claim, then the address
	// the first proxy saw, then the second (trusted) hop.
	xff := func(i int, real string) map[string]string {
		return map[string]string{"X-Forwarded-For": fmt.Sprintf("192.0.2.%d, %s, 10.0.0.2", i%250+1, real)}
	}
	codes := map[int]int{}
	for i := 0; i < 200; i++ {
		codes[call(t, "POST", endpoint+"/e/", "", xff(i, "198.51.100.7"), `{"event":"x","distinct_id":"d"}`).code]++
	}
	if codes[429] < 150 || codes[200] < 20 || codes[200] > 40 {
		t.Fatalf("a client rotating its leftmost X-Forwarded-For: %v, want 20-40 × 200 (burst 20 at 5/s), the rest 429", codes)
	}
	if c := call(t, "POST", endpoint+"/e/", "", xff(0, "198.51.100.70"), `{"event":"x","distinct_id":"d"}`).code; c != 200 {
		t.Fatalf("another client during the flood: %d", c)
	}

	login := func(i int, real, pass string) int {
		req, _ := http.NewRequest("GET", api+"/sites", nil)
		req.SetBasicAuth("admin", pass)
		req.Header.Set("X-Forwarded-For", xff(i, real)["X-Forwarded-For"])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	codes = map[int]int{}
	for i := 0; i < 15; i++ {
		codes[login(i, "198.51.100.8", fmt.Sprintf("guess %d", i))]++
	}
	if codes[401] != 10 || codes[429] != 5 {
		t.Fatalf("wrong passwords from one client rotating its leftmost address: %v, want 10 × 401 then 429", codes)
	}
	if c := login(99, "198.51.100.8", "correct horse"); c != 429 {
		t.Fatalf("the locked-out address with a new leftmost entry: %d, want 429", c)
	}
	if c := login(0, "198.51.100.9", "correct horse"); c != 200 {
		t.Fatalf("another client: %d", c)
	}
}

// checkCounter counts the password comparisons the dashboard runs, through
// its test hook.
type checkCounter struct {
	mu            sync.Mutex
	inFlight, max int
	total         int
	costs         []int
}

func observeChecks(t *testing.T) *checkCounter {
	c := &checkCounter{}
	dashboard.ObservePasswordChecks(func(begin bool, cost int) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !begin {
			c.inFlight--
			return
		}
		c.inFlight++
		c.total++
		c.costs = append(c.costs, cost)
		c.max = max(c.max, c.inFlight)
	})
	t.Cleanup(func() { dashboard.ObservePasswordChecks(nil) })
	return c
}

func (c *checkCounter) get() (inFlight, maxInFlight, total int, costs []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inFlight, c.max, c.total, append([]int(nil), c.costs...)
}

// TestLoginChecksBounded: 40 wrong passwords at once run at most two
// password checks at a time; the others are answered 429 with Retry-After
// at once, and the site's pages keep answering meanwhile.
func TestLoginChecksBounded(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("the right one"), 12)
	if err != nil {
		t.Fatal(err)
	}
	c := observeChecks(t)
	startCaddy(t, trustedConfig(filepath.Join(t.TempDir(), "pw.db"), "dashboard_auth admin "+string(hash)))
	const n = 40
	var wg sync.WaitGroup
	results := make([]reply, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Each from its own address: the per-address limit is not
			// what stops them.
			r, err := try("GET", api+"/sites", "", map[string]string{
				"Authorization":   "Basic " + basic("admin", fmt.Sprintf("wrong %d", i)),
				"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", i+1),
			}, "")
			if err != nil {
				t.Errorf("login %d: %v", i, err)
			}
			results[i] = r
		}()
	}
	close(start)
	WaitFor(t, "a password check running", 10*time.Second, func() (bool, string) {
		inFlight, _, total, _ := c.get()
		return inFlight > 0, fmt.Sprintf("%d checks so far", total)
	})
	if r := call(t, "GET", base+"/", "", nil, ""); r.code != 200 || r.body != "page" {
		t.Fatalf("the site's page during the login flood: %d %q", r.code, r.body)
	}
	wg.Wait()
	_, maxInFlight, total, _ := c.get()
	codes := map[int]int{}
	for _, r := range results {
		codes[r.code]++
		if r.code == 429 && r.hdr.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After: %v", r.hdr)
		}
	}
	t.Logf("40 concurrent wrong passwords: %v, %d checks, at most %d at once", codes, total, maxInFlight)
	if maxInFlight > 2 {
		t.Fatalf("%d password checks ran at once, want at most 2", maxInFlight)
	}
	if codes[401] != total || codes[401]+codes[429] != n || codes[429] == 0 {
		t.Fatalf("answers %v for %d checks: want one 401 per check and 429 for the rest", codes, total)
	}
}

func basic(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// TestUnknownUserCostsTheSame: a wrong password for an unknown user runs
// the same password check (same bcrypt cost) as one for a known user.
func TestUnknownUserCostsTheSame(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("the right one"), 7)
	if err != nil {
		t.Fatal(err)
	}
	c := observeChecks(t)
	startCaddy(t, trustedConfig(filepath.Join(t.TempDir(), "pw.db"), "dashboard_auth admin "+string(hash)))
	try := func(user, ip string) int {
		return call(t, "GET", api+"/sites", "", map[string]string{
			"Authorization":   "Basic " + basic(user, "not it"),
			"X-Forwarded-For": ip,
		}, "").code
	}
	if code := try("admin", "198.51.100.1"); code != 401 {
		t.Fatalf("known user, wrong password: %d", code)
	}
	_, _, known, costs := c.get()
	if code := try("nobody", "198.51.100.2"); code != 401 {
		t.Fatalf("unknown user: %d", code)
	}
	_, _, all, costs2 := c.get()
	if known != 1 || all != 2 || costs[0] != 7 || costs2[1] != 7 {
		t.Fatalf("checks: known user %d (costs %v), unknown user %d (costs %v); want one check of cost 7 each", known, costs, all-known, costs2[known:])
	}
}

// TestLockoutPerAddress: an address that ran out of login attempts is
// locked alone: another address logs in, and a session started before the
// lockout keeps working from the locked address.
func TestLockoutPerAddress(t *testing.T) {
	hash := "$2a$04$wUWzbnN4c.hQzA5tkkEPB.hrb4kjQ40yO9z8i/.0bJ1z3QvNsUVtS" // "correct horse", cost 4
	startCaddy(t, trustedConfig(filepath.Join(t.TempDir(), "lock.db"), "dashboard_auth admin "+hash))
	try := func(ip, pass, cookie string) reply {
		hdr := map[string]string{"X-Forwarded-For": ip}
		if pass != "" {
			hdr["Authorization"] = "Basic " + basic("admin", pass)
		}
		if cookie != "" {
			hdr["Cookie"] = cookie
		}
		return call(t, "GET", api+"/sites", "", hdr, "")
	}
	const a, b = "198.51.100.20", "198.51.100.21"
	first := try(a, "correct horse", "")
	cookie := strings.Split(first.hdr.Get("Set-Cookie"), ";")[0]
	if first.code != 200 || !strings.HasPrefix(cookie, "fp_dashboard=") {
		t.Fatalf("login: %d, cookie %q", first.code, first.hdr.Get("Set-Cookie"))
	}
	codes := map[int]int{}
	for i := 0; i < 12; i++ {
		codes[try(a, fmt.Sprintf("guess %d", i), "").code]++
	}
	if codes[401] != 10 || codes[429] != 2 {
		t.Fatalf("guesses from %s: %v, want 10 × 401 then 429", a, codes)
	}
	if r := try(a, "correct horse", ""); r.code != 429 {
		t.Fatalf("the locked address, right password, no session: %d, want 429", r.code)
	}
	if r := try(a, "", cookie); r.code != 200 {
		t.Fatalf("the locked address with the session started before: %d %s", r.code, r.body)
	}
	if r := try(a, "", "fp_dashboard=forged"); r.code != 401 {
		t.Fatalf("a forged session: %d", r.code)
	}
	if r := try(b, "correct horse", ""); r.code != 200 {
		t.Fatalf("another address: %d %s", r.code, r.body)
	}
}

// TestDNSRebinding: without dashboard_auth, a request on loopback whose
// Host is another name (a page whose name was rebound to 127.0.0.1) is
// refused, reads and writes alike; loopback names and the block's own
// hosts are served.
func TestDNSRebinding(t *testing.T) {
	startCaddy(t, testGlobal+`:9080 {
	bind 127.0.0.1
	analytics {
		db :memory:
		site test.example
	}
	respond "page" 200
}
`)
	evil := map[string]string{"Origin": "http://evil.example:9080", "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
	if r := call(t, "GET", api+"/sites", "evil.example:9080", nil, ""); r.code != 403 {
		t.Fatalf("GET with Host evil.example: %d %s", r.code, r.body)
	}
	if r := call(t, "POST", api+"/actions", "evil.example:9080", evil, `{"name":"rebound","steps":[{"event":"$pageview"}]}`); r.code != 403 {
		t.Fatalf("POST /api/actions with Host evil.example: %d %s", r.code, r.body)
	}
	for _, host := range []string{"127.0.0.1:9080", "localhost:9080", "[::1]:9080", "127.0.0.2:9080", "LOCALHOST"} {
		if r := call(t, "GET", api+"/actions", host, nil, ""); r.code != 200 || strings.Contains(r.body, "rebound") {
			t.Fatalf("Host %s: %d %s", host, r.code, r.body)
		}
	}

	// A block's own host is served.
	startCaddy(t, testGlobal+`http://dash.example:9080 {
	bind 127.0.0.1
	analytics {
		db :memory:
	}
	respond "page" 200
}
`)
	if r := call(t, "GET", api+"/sites", "dash.example:9080", nil, ""); r.code != 200 || !strings.Contains(r.body, `"dash.example"`) {
		t.Fatalf("the block's own host: %d %s", r.code, r.body)
	}
}

// TestDashboardScopedToItsSite: two blocks share one db; each dashboard
// answers for its own site only, whether the other has a password or not.
func TestDashboardScopedToItsSite(t *testing.T) {
	hash := "$2a$04$wUWzbnN4c.hQzA5tkkEPB.hrb4kjQ40yO9z8i/.0bJ1z3QvNsUVtS" // "correct horse", cost 4
	db := filepath.Join(t.TempDir(), "shared.db")
	startCaddy(t, fmt.Sprintf(testGlobal+`http://127.0.0.1:9080 {
	bind 127.0.0.1
	analytics {
		db %[1]s
		site secret.example
		rate_limit off
		dashboard_auth admin %[2]s
	}
	respond "secret" 200
}
http://localhost:9080 {
	bind 127.0.0.1
	analytics {
		db %[1]s
		site open.example
		rate_limit off
	}
	respond "open" 200
}
`, db, hash))
	for _, s := range []struct{ base, name string }{{base, "secret"}, {"http://localhost:9080", "open"}} {
		if r := call(t, "POST", s.base+"/_f/e/", "", nil, `{"event":"`+s.name+`-event","distinct_id":"`+s.name+`-person"}`); r.code != 200 {
			t.Fatalf("capture on %s: %d %s", s.name, r.code, r.body)
		}
	}
	day := "&from=" + time.Now().Add(-24*time.Hour).UTC().Format(time.RFC3339)
	auth := map[string]string{"Authorization": "Basic " + basic("admin", "correct horse")}
	write := map[string]string{"Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
	cases := []struct {
		base  string
		hdr   map[string]string
		own   string
		other string
	}{
		{"http://localhost:9080/analytics", nil, "open.example", "secret.example"},
		{base + "/analytics", auth, "secret.example", "open.example"},
	}
	for _, c := range cases {
		var sites struct{ Sites []string }
		r := call(t, "GET", c.base+"/api/sites", "", c.hdr, "")
		if json.Unmarshal([]byte(r.body), &sites) != nil || fmt.Sprint(sites.Sites) != "["+c.own+"]" {
			t.Fatalf("%s/api/sites: %d %s, want only %s", c.base, r.code, r.body, c.own)
		}
		for _, path := range []string{"/api/events?site=", "/api/stats?site=", "/api/export?site=", "/api/persons?site=", "/api/actions?site=", "/api/recordings?site=", "/api/persons/x-person?site=", "/api/live/count?site="} {
			if r := call(t, "GET", c.base+path+c.other+day, "", c.hdr, ""); r.code != 404 {
				t.Errorf("%s%s%s: %d %s, want 404", c.base, path, c.other, r.code, r.body)
			}
		}
		h := map[string]string{}
		for k, v := range c.hdr {
			h[k] = v
		}
		for k, v := range write {
			h[k] = v
		}
		if r := call(t, "POST", c.base+"/api/actions?site="+c.other, "", h, `{"name":"planted","steps":[{"event":"x"}]}`); r.code != 404 {
			t.Errorf("POST %s/api/actions?site=%s: %d %s", c.base, c.other, r.code, r.body)
		}
		r = call(t, "GET", c.base+"/api/events?site="+c.own+day, "", c.hdr, "")
		if r.code != 200 || !strings.Contains(r.body, strings.TrimSuffix(c.own, ".example")+"-event") || strings.Contains(r.body, strings.TrimSuffix(c.other, ".example")+"-event") {
			t.Errorf("%s own events: %d %s", c.base, r.code, r.body)
		}
	}
	stopCaddy(t)
	st, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, site := range []string{"open.example", "secret.example"} {
		if as, err := st.Actions(context.Background(), site); err != nil || len(as) != 0 {
			t.Errorf("actions planted in %s: %v %v", site, as, err)
		}
	}
}

// TestCSVExportEscapesFormulas: a cell that a spreadsheet would run as a
// formula is exported with a leading '.
func TestCSVExportEscapesFormulas(t *testing.T) {
	startCaddy(t, config(":memory:", ""))
	hostile := []string{`=cmd|' /C calc'!A0`, `+HYPERLINK("http://evil.example","x")`, `-2+3+cmd|' /C calc'!A0`, `@SUM(1+1)*cmd|' /C calc'!A0`, "\t=1+1", "\r=1+1"}
	var batch []map[string]any
	for i, v := range hostile {
		batch = append(batch, map[string]any{"event": v, "distinct_id": fmt.Sprintf("d%d", i), "properties": map[string]any{"k": v}})
		batch = append(batch, map[string]any{"event": fmt.Sprintf("e%d", i), "distinct_id": v})
	}
	batch = append(batch, map[string]any{"event": "plain", "distinct_id": "safe-id"})
	body, _ := json.Marshal(map[string]any{"api_key": "k", "batch": batch})
	if code, resp := post(t, "/batch/", body, map[string]string{"Content-Type": "application/json"}); code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	r := call(t, "GET", api+"/export?format=csv&from="+time.Now().Add(-24*time.Hour).UTC().Format(time.RFC3339), "", nil, "")
	if r.code != 200 {
		t.Fatalf("export: %d %s", r.code, r.body)
	}
	rows, err := csv.NewReader(strings.NewReader(r.body)).ReadAll()
	if err != nil || len(rows) != len(batch)+1 {
		t.Fatalf("csv: %v, %d rows: %s", err, len(rows), r.body)
	}
	seen := map[string]bool{}
	for _, row := range rows[1:] {
		for col, cell := range row[:4] {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("row %v column %d starts a formula: %q", row, col, cell)
			}
			if v, ok := strings.CutPrefix(cell, "'"); ok {
				seen[v] = true
			}
		}
		if row[1] == "plain" && row[2] != "safe-id" {
			t.Errorf("a plain cell changed: %v", row)
		}
	}
	for _, v := range hostile {
		// The collector may trim surrounding white space; the rest is kept
		// behind the quote.
		if !seen[v] && !seen[strings.TrimSpace(v)] {
			t.Errorf("%q not exported as '%q: %v", v, v, seen)
		}
	}
}

// TestDashboardPaths: a doubled slash keeps the dashboard's prefix, and a
// recording whose session id holds "/" and other odd characters opens.
func TestDashboardPaths(t *testing.T) {
	startCaddy(t, config(":memory:", "record on"))
	r := call(t, "GET", base+"/analytics//api/sites", "", nil, "")
	if loc := r.hdr.Get("Location"); r.code >= 300 && r.code < 400 && !strings.HasPrefix(loc, "/analytics/") {
		t.Fatalf("//api/sites redirects to %q, out of the dashboard", loc)
	}
	var sites struct{ Sites []string }
	getJSON(t, base+"/analytics//api/sites", &sites) // follows the redirect
	if fmt.Sprint(sites.Sites) != "[test.example]" {
		t.Fatalf("//api/sites: %v", sites.Sites)
	}
	if r := call(t, "GET", base+"/analytics/api", "", nil, ""); r.code >= 300 && r.code < 400 && !strings.HasPrefix(r.hdr.Get("Location"), "/analytics/") {
		t.Fatalf("/api redirects to %q", r.hdr.Get("Location"))
	}

	now := time.Now().UnixMilli()
	ids := []string{"a/b", "x y?#%&=+;é", "..", ".", "~", "/lead", "trail/"}
	var batch []map[string]any
	for i, id := range ids {
		batch = append(batch, map[string]any{"event": "$snapshot", "properties": map[string]any{
			"distinct_id": fmt.Sprintf("p%d", i), "$session_id": id, "$window_id": "w",
			"$snapshot_data": []any{
				map[string]any{"type": 4, "timestamp": now + int64(i), "data": map[string]any{"href": "https://test.example/", "width": 800, "height": 600}},
				map[string]any{"type": 3, "timestamp": now + int64(i) + 1000, "data": map[string]any{"source": 1, "positions": []any{}}},
			}}})
	}
	body, _ := json.Marshal(batch)
	if code, resp := post(t, "/s/", body, map[string]string{"Content-Type": "application/json"}); code != 200 {
		t.Fatalf("posting recordings: %d %s", code, resp)
	}
	for _, id := range ids {
		u := api + "/recordings/" + url.PathEscape(id)
		if id == "." || id == ".." {
			// No client sends a dot segment as it is: the UI uses ?session=.
			u = api + "/recordings/~?session=" + url.QueryEscape(id)
		}
		var evs []map[string]any
		WaitFor(t, "the recording of "+id, 10*time.Second, func() (bool, string) {
			r := call(t, "GET", u, "", nil, "")
			evs = nil
			return r.code == 200 && json.Unmarshal([]byte(r.body), &evs) == nil && len(evs) == 2, fmt.Sprintf("%s: %d %s", u, r.code, r.body)
		})
		if id != "." && id != ".." {
			page := call(t, "GET", base+"/analytics/recordings/"+url.PathEscape(id), "", nil, "")
			if page.code != 200 || !strings.Contains(page.hdr.Get("Content-Type"), "text/html") || !strings.Contains(page.hdr.Get("Content-Security-Policy"), "'unsafe-inline'") {
				t.Errorf("replay page of %q: %d %v", id, page.code, page.hdr)
			}
		}
	}
}

// TestLiveSubscribersCapped: live streams beyond the cap (200 per database)
// are answered 503; a place freed is taken again.
func TestLiveSubscribersCapped(t *testing.T) {
	startCaddy(t, config(":memory:", ""))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
	open := func() (*http.Response, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", api+"/live", nil)
		res, err := client.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		return res, cancel
	}
	type stream struct {
		res    *http.Response
		cancel context.CancelFunc
	}
	var streams []stream
	t.Cleanup(func() {
		for _, s := range streams {
			s.cancel()
			s.res.Body.Close()
		}
	})
	for i := 0; i < dashboard.DefaultLiveMax; i++ {
		res, cancel := open()
		streams = append(streams, stream{res, cancel})
		if res.StatusCode != 200 {
			t.Fatalf("stream %d: %d", i+1, res.StatusCode)
		}
		line := make([]byte, len(": connected"))
		if _, err := io.ReadFull(res.Body, line); err != nil || string(line) != ": connected" {
			t.Fatalf("stream %d: %q %v", i+1, line, err)
		}
	}
	res, cancel := open()
	var b []byte
	if res.StatusCode != 200 { // a stream accepted would never end
		b, _ = io.ReadAll(res.Body)
	}
	res.Body.Close()
	cancel()
	if res.StatusCode != 503 {
		t.Fatalf("stream %d: %d %s, want 503", dashboard.DefaultLiveMax+1, res.StatusCode, b)
	}
	// Capture is not slowed by them.
	if code, resp := post(t, "/e/", []byte(`{"event":"x","distinct_id":"d"}`), nil); code != 200 {
		t.Fatalf("capture with %d streams open: %d %s", dashboard.DefaultLiveMax, code, resp)
	}
	streams[0].cancel()
	streams[0].res.Body.Close()
	WaitFor(t, "the freed place taken", 10*time.Second, func() (bool, string) {
		res, cancel := open()
		code := res.StatusCode
		if code == 200 {
			streams = append(streams, stream{res, cancel})
			return true, ""
		}
		res.Body.Close()
		cancel()
		return false, fmt.Sprint(code)
	})
}

// TestRecordingOddIdsInBrowser: in Chromium, the recordings list opens the
// replay of sessions whose ids hold "/" or other odd characters, or are a
// dot segment, through the links the UI builds.
func TestRecordingOddIdsInBrowser(t *testing.T) {
	findChromium(t)
	startCaddy(t, config(":memory:", "record on"))
	ids := []string{"a/b", "..", "x y?#%&é"}
	at := time.Now().UnixMilli()
	var batch []map[string]any
	for i, id := range ids {
		page := map[string]any{"type": 0, "id": 1, "childNodes": []any{
			map[string]any{"type": 2, "id": 2, "tagName": "html", "attributes": map[string]any{}, "childNodes": []any{
				map[string]any{"type": 2, "id": 3, "tagName": "head", "attributes": map[string]any{}, "childNodes": []any{}},
				map[string]any{"type": 2, "id": 4, "tagName": "body", "attributes": map[string]any{}, "childNodes": []any{
					map[string]any{"type": 2, "id": 5, "tagName": "p", "attributes": map[string]any{"id": "odd"}, "childNodes": []any{
						map[string]any{"type": 3, "id": 6, "textContent": fmt.Sprintf("session %d", i)}}},
				}},
			}},
		}}
		batch = append(batch, map[string]any{"event": "$snapshot", "properties": map[string]any{
			"distinct_id": fmt.Sprintf("p%d", i), "$session_id": id, "$window_id": "w",
			"$snapshot_data": []any{
				map[string]any{"type": 4, "timestamp": at + int64(i)*10, "data": map[string]any{"href": "https://test.example/", "width": 800, "height": 600}},
				map[string]any{"type": 2, "timestamp": at + int64(i)*10 + 1, "data": map[string]any{"node": page, "initialOffset": map[string]any{"left": 0, "top": 0}}},
				map[string]any{"type": 3, "timestamp": at + int64(i)*10 + 2000, "data": map[string]any{"source": 1, "positions": []any{map[string]any{"x": 5, "y": 5, "id": 5, "timeOffset": 0}}}},
			}}})
	}
	body, _ := json.Marshal(batch)
	if code, resp := post(t, "/s/", body, map[string]string{"Content-Type": "application/json"}); code != 200 {
		t.Fatalf("posting recordings: %d %s", code, resp)
	}
	b := StartBrowser(t)
	d := openDash(t, b)
	frame := `document.querySelector('#replay-player iframe')`
	for i, id := range ids {
		d.Navigate(dashURL("/recordings", nil))
		row := `document.querySelector('#recordings-table tr[data-session=` + strconv.Quote(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(id)) + `] a.watch')`
		d.until("the recording "+id+" listed", loaded+` && `+row)
		d.js(row + `.click()`)
		d.until("the recording "+id+" replayed", frame+` && `+frame+`.contentDocument && `+frame+`.contentDocument.getElementById('odd')?.textContent === `+strconv.Quote(fmt.Sprintf("session %d", i)))
	}
	d.noErrors("replaying odd session ids")
}
