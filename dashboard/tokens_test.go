package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/firstpartyhq/firstparty/store"
)

// guestEnv is a dashboard with a login, on a database file, seen from a
// client that is not loopback, with its logs kept.
type guestEnv struct {
	t      *testing.T
	path   string
	db     *store.DB
	h      *Handler
	logs   *observer.ObservedLogs
	mu     sync.Mutex
	clock  time.Time
	cookie *http.Cookie
}

func newGuestEnv(t *testing.T) *guestEnv {
	t.Helper()
	e := &guestEnv{t: t, path: filepath.Join(t.TempDir(), "g.db"), clock: now}
	db, err := store.Open(e.path, store.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	core, logs := observer.New(zapcore.DebugLevel)
	e.logs = logs
	e.h = New(Config{Prefix: "/analytics", Site: "example.com", Accounts: []Account{{Username: "admin", Hash: hash}}}, db,
		Options{ClientIP: func(*http.Request) netip.Addr { return netip.MustParseAddr("203.0.113.9") }, Logger: zap.New(core),
			Now: func() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.clock }})
	var evs []*store.Event
	for i := 0; i < 20; i++ {
		evs = append(evs, &store.Event{Site: "example.com", Name: "$pageview", DistinctID: fmt.Sprintf("p%d", i%7), Time: now.Add(-time.Duration(i) * time.Hour).UnixMilli(),
			Props: store.Props{{Key: "$pathname", Val: store.StringValue(fmt.Sprintf("/page%d", i%3))}, {Key: "$email", Val: store.StringValue(fmt.Sprintf("p%d@example.com", i%7))}}})
	}
	if _, err := db.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	return e
}

type auth func(*http.Request)

func basic(r *http.Request) { r.SetBasicAuth("admin", "pw") }
func bearer(tok string) auth {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}
func withCookie(c *http.Cookie) auth { return func(r *http.Request) { r.AddCookie(c) } }

func (e *guestEnv) do(method, path, body string, a ...auth) *httptest.ResponseRecorder {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, "http://example.com"+path, rd)
	if strings.HasPrefix(body, "{") {
		r.Header.Set("Content-Type", "application/json")
	} else if body != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, f := range a {
		f(r)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func (e *guestEnv) want(w *httptest.ResponseRecorder, status int, what string) {
	e.t.Helper()
	if w.Code != status {
		e.t.Fatalf("%s: %d %s, want %d", what, w.Code, strings.TrimSpace(w.Body.String()), status)
	}
}

// noSecret checks that secret is neither in the database file nor in the
// logs.
func (e *guestEnv) noSecret(secret string) {
	e.t.Helper()
	b, err := os.ReadFile(e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	if strings.Contains(string(b), secret) {
		e.t.Fatalf("the database file holds the secret %q in clear", secret)
	}
	if !strings.Contains(string(b), secretHash(secret)) {
		e.t.Fatalf("the database file does not hold the secret's hash (scan is not looking at the right file?)")
	}
	for _, entry := range e.logs.All() {
		line := entry.Message
		for k, v := range entry.ContextMap() {
			line += fmt.Sprintf(" %s=%v", k, v)
		}
		if strings.Contains(line, secret) {
			e.t.Fatalf("a log line holds the secret: %s", line)
		}
	}
}

func TestAPITokens(t *testing.T) {
	e := newGuestEnv(t)
	// Only a logged-in user makes tokens.
	e.want(e.do("POST", "/api/tokens", `{"name":"ci","access":"read"}`), 401, "token without login")
	var ro, rw struct {
		ID, Token, Access string
	}
	w := e.do("POST", "/api/tokens", `{"name":"ci","access":"read"}`, basic)
	e.want(w, 201, "create read token")
	json.Unmarshal(w.Body.Bytes(), &ro)
	w = e.do("POST", "/api/tokens", `{"name":"deploy","access":"write"}`, basic)
	e.want(w, 201, "create write token")
	json.Unmarshal(w.Body.Bytes(), &rw)
	if ro.Token == "" || rw.Token == "" || ro.Access != "read" || rw.Access != "write" {
		t.Fatalf("tokens %+v %+v", ro, rw)
	}
	// Shown once: the list has no secret.
	w = e.do("GET", "/api/tokens", "", basic)
	e.want(w, 200, "list tokens")
	if strings.Contains(w.Body.String(), ro.Token) || !strings.Contains(w.Body.String(), ro.ID) {
		t.Fatalf("token list %s", w.Body)
	}

	// A read token reads the API, from any origin...
	w = e.do("GET", "/api/stats?from=2026-11-20&to=2026-11-24", "", bearer(ro.Token), func(r *http.Request) {
		r.Header.Set("Origin", "https://elsewhere.example")
		r.Header.Set("Sec-Fetch-Site", "cross-site")
	})
	e.want(w, 200, "read token: stats")
	var st store.Stats
	json.Unmarshal(w.Body.Bytes(), &st)
	if st.Pageviews != 20 {
		t.Fatalf("stats through the token: %+v", st)
	}
	e.want(e.do("GET", "/api/events", "", bearer(ro.Token)), 200, "read token: events")
	// ...but writes nothing, opens no page, no other site, no token admin.
	e.want(e.do("POST", "/api/actions", `{"name":"a","steps":[{"event":"$pageview"}]}`, bearer(ro.Token)), 403, "read token: create action")
	e.want(e.do("DELETE", "/api/persons/p1", "", bearer(ro.Token)), 403, "read token: delete person")
	e.want(e.do("GET", "/", "", bearer(ro.Token)), 403, "read token: UI page")
	e.want(e.do("GET", "/api/stats?site=other.example", "", bearer(ro.Token)), 404, "read token: another site")
	e.want(e.do("GET", "/api/tokens", "", bearer(rw.Token)), 403, "write token: list tokens")
	e.want(e.do("POST", "/api/shares", `{}`, bearer(rw.Token)), 403, "write token: make a share link")
	// A write token writes, cross-origin too.
	e.want(e.do("POST", "/api/actions", `{"name":"a","steps":[{"event":"$pageview"}]}`, bearer(rw.Token), func(r *http.Request) {
		r.Header.Set("Origin", "https://elsewhere.example")
		r.Header.Set("Sec-Fetch-Site", "cross-site")
	}), 201, "write token: create action")
	// A login's cross-origin write is still refused (the same-origin rule
	// holds for everything but bearer calls).
	e.want(e.do("POST", "/api/actions", `{"name":"b","steps":[{"event":"$pageview"}]}`, basic, func(r *http.Request) {
		r.Header.Set("Origin", "https://elsewhere.example")
		r.Header.Set("Sec-Fetch-Site", "cross-site")
	}), 403, "login: cross-origin write")

	// Every use is rate-limited.
	limited := 0
	for i := 0; i < 200 && limited == 0; i++ {
		if w := e.do("GET", "/api/sites", "", bearer(rw.Token)); w.Code == 429 {
			limited = i
		}
	}
	if limited == 0 {
		t.Fatal("200 calls in the same instant were not rate-limited")
	}
	e.mu.Lock()
	e.clock = e.clock.Add(10 * time.Second)
	e.mu.Unlock()
	e.want(e.do("GET", "/api/sites", "", bearer(rw.Token)), 200, "after the limit refills")

	// Revoked: 401. Unknown: 401.
	e.want(e.do("DELETE", "/api/tokens/"+ro.ID, "", basic), 204, "revoke")
	e.want(e.do("GET", "/api/stats", "", bearer(ro.Token)), 401, "revoked token")
	e.want(e.do("GET", "/api/stats", "", bearer("fpt_nope")), 401, "unknown token")
	e.want(e.do("DELETE", "/api/tokens/"+ro.ID, "", basic), 404, "revoke twice")

	e.noSecret(ro.Token)
	e.noSecret(rw.Token)
	t.Logf("rate limit after %d calls in one instant", limited)
}

func TestShareLinks(t *testing.T) {
	e := newGuestEnv(t)
	e.want(e.do("POST", "/api/shares", `{}`), 401, "share link without login")
	var open, locked struct{ ID, Token, URL string }
	w := e.do("POST", "/api/shares", `{"name":"Public stats"}`, basic)
	e.want(w, 201, "create share")
	json.Unmarshal(w.Body.Bytes(), &open)
	if !strings.HasPrefix(open.URL, "/analytics/share/") || !strings.HasSuffix(open.URL, open.Token) {
		t.Fatalf("share %+v", open)
	}
	base := strings.TrimPrefix(open.URL, "/analytics")

	// The overview page and its numbers, without login.
	w = e.do("GET", base, "")
	e.want(w, 200, "share page")
	if !strings.Contains(w.Body.String(), "/js/share.js") || strings.Contains(w.Body.String(), "p1@example.com") {
		t.Fatalf("share page: %s", w.Body)
	}
	w = e.do("GET", base+"/api/stats?from=2026-11-20&to=2026-11-24", "")
	e.want(w, 200, "share stats")
	var st store.Stats
	json.Unmarshal(w.Body.Bytes(), &st)
	if st.Pageviews != 20 || st.Visitors != 7 {
		t.Fatalf("share stats %+v", st)
	}
	e.want(e.do("GET", base+"/api/breakdown?property=$pathname&event=$pageview&from=2026-11-20&to=2026-11-24", ""), 200, "share breakdown")
	e.want(e.do("GET", base+"/api/trends?event=$pageview&interval=day&from=2026-11-20&to=2026-11-24", ""), 200, "share trends")
	a := loadUIAssets()
	e.want(e.do("GET", base+"/assets/"+a.version+"/js/share.js", ""), 200, "share page script")
	// Nothing else.
	for _, p := range []string{"/api/persons", "/api/persons/p1", "/api/persons/p1/export", "/api/events", "/api/recordings",
		"/api/export?format=csv", "/api/live", "/api/actions", "/api/cohorts", "/api/settings", "/api/snippet",
		"/api/breakdown?property=$email", "/api/breakdown?property=distinct_id", "/api/stats?filter=$email==p1@example.com",
		"/api/trends?event=$identify", "/api/stats?cohort=1"} {
		w := e.do("GET", base+p, "")
		e.want(w, 403, "share "+p)
		if strings.Contains(w.Body.String(), "@example.com") {
			t.Fatalf("%s leaked a person: %s", p, w.Body)
		}
	}
	e.want(e.do("DELETE", base+"/api/persons/p1", ""), 403, "share delete")
	e.want(e.do("GET", base+"/api/stats?site=other.example", ""), 404, "share of another site")
	e.want(e.do("GET", "/", ""), 401, "the dashboard itself still asks for a login")

	// A password asks first.
	w = e.do("POST", "/api/shares", `{"password":"s3cret"}`, basic)
	e.want(w, 201, "create locked share")
	json.Unmarshal(w.Body.Bytes(), &locked)
	lbase := strings.TrimPrefix(locked.URL, "/analytics")
	w = e.do("GET", lbase, "")
	e.want(w, 200, "locked share page")
	if !strings.Contains(w.Body.String(), `type="password"`) || strings.Contains(w.Body.String(), "share.js") {
		t.Fatalf("locked share page does not ask for the password: %s", w.Body)
	}
	e.want(e.do("GET", lbase+"/api/stats", ""), 401, "locked share stats without password")
	e.want(e.do("POST", lbase, "password=wrong"), 401, "wrong password")
	w = e.do("POST", lbase, "password=s3cret")
	e.want(w, 303, "right password")
	var c *http.Cookie
	for _, ck := range w.Result().Cookies() {
		if ck.Name == shareCookie {
			c = ck
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != locked.URL {
		t.Fatalf("session cookie %+v", c)
	}
	e.want(e.do("GET", lbase+"/api/stats", "", withCookie(c)), 200, "locked share stats after the password")
	e.want(e.do("GET", base+"/api/stats", "", withCookie(c)), 200, "the open share is unaffected")
	w = e.do("GET", lbase, "", withCookie(c))
	if w.Code != 200 || !strings.Contains(w.Body.String(), "share.js") {
		t.Fatalf("locked share page after the password: %d %s", w.Code, w.Body)
	}
	e.want(e.do("GET", lbase+"/api/events", "", withCookie(c)), 403, "locked share events")

	// Revoked: gone, cookie or not.
	e.want(e.do("DELETE", "/api/shares/"+locked.ID, "", basic), 204, "revoke share")
	e.want(e.do("GET", lbase, "", withCookie(c)), 404, "revoked share page")
	e.want(e.do("GET", lbase+"/api/stats", "", withCookie(c)), 404, "revoked share stats")
	e.want(e.do("GET", base+"/api/stats", ""), 200, "the other share still works")

	e.noSecret(open.Token)
	e.noSecret(locked.Token)
	if b, _ := os.ReadFile(e.path); strings.Contains(string(b), "s3cret") {
		t.Fatal("the share password is in the database in clear")
	}
}
