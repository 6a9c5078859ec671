package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/firstpartyhq/firstparty/store"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

type env struct {
	t  *testing.T
	db *store.DB
	h  *Handler
	ip netip.Addr
}

func newEnv(t *testing.T, accounts ...Account) *env {
	t.Helper()
	db, err := store.Open(":memory:", store.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, db: db, ip: netip.MustParseAddr("127.0.0.1")}
	e.h = New(Config{Prefix: "/analytics", Site: "example.com", Hosts: []string{"example.com"}, Accounts: accounts,
		Snippet: func(site string) string { return `<script defer src="/_f/app.js"></script>` }},
		db, Options{ClientIP: func(*http.Request) netip.Addr { return e.ip }, Now: func() time.Time { return now }})
	return e
}

func (e *env) do(method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func (e *env) add(evs ...*store.Event) {
	if _, err := e.db.Append(context.Background(), evs); err != nil {
		e.t.Fatal(err)
	}
}

func ev(name, did string, at time.Time, props ...string) *store.Event {
	x := &store.Event{Site: "example.com", Name: name, DistinctID: did, Time: at.UnixMilli()}
	for i := 0; i+1 < len(props); i += 2 {
		x.Props = append(x.Props, store.Prop{Key: props[i], Val: store.StringValue(props[i+1])})
	}
	return x
}

func TestLoopbackOnlyWithoutAuth(t *testing.T) {
	e := newEnv(t)
	if w := e.do("GET", "/api/sites", nil); w.Code != 200 {
		t.Fatalf("loopback: %d %s", w.Code, w.Body)
	}
	e.ip = netip.MustParseAddr("203.0.113.9")
	w := e.do("GET", "/api/sites", map[string]string{"X-Forwarded-For": "127.0.0.1"})
	if w.Code != 403 {
		t.Fatalf("remote client: %d", w.Code)
	}
	// Behind a proxy on loopback, a client can choose the leftmost
	// X-Forwarded-For entry that Caddy takes as its address; the entries the
	// proxy appended give it away.
	e.ip = netip.MustParseAddr("127.0.0.1")
	for _, hdr := range []map[string]string{
		{"X-Forwarded-For": "127.0.0.1, 203.0.113.9"},
		{"X-Real-Ip": "198.51.100.1"},
		{"Forwarded": `for=127.0.0.1, for="[2001:db8::1]:4711"`},
	} {
		if w := e.do("GET", "/api/sites", hdr); w.Code != 403 {
			t.Fatalf("forwarded %v: %d", hdr, w.Code)
		}
	}
	if w := e.do("GET", "/api/sites", map[string]string{"X-Forwarded-For": "127.0.0.1, ::1", "Forwarded": "for=127.0.0.1"}); w.Code != 200 {
		t.Fatalf("local proxy chain: %d", w.Code)
	}
	e.ip = netip.MustParseAddr("::1")
	if w := e.do("GET", "/", nil); w.Code != 200 || w.Header().Get("Content-Security-Policy") == "" {
		t.Fatalf("index: %d %v", w.Code, w.Header())
	}
}

func TestBasicAuth(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	e := newEnv(t, Account{Username: "admin", Hash: hash})
	e.ip = netip.MustParseAddr("198.51.100.7")
	if w := e.do("GET", "/api/sites", nil); w.Code != 401 || !strings.Contains(w.Header().Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("no credentials: %d", w.Code)
	}
	r := httptest.NewRequest("GET", "/api/sites", nil)
	r.SetBasicAuth("admin", "s3cret")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("right password: %d", w.Code)
	}
	// Wrong passwords are limited per client.
	codes := map[int]int{}
	for i := 0; i < 15; i++ {
		r := httptest.NewRequest("GET", "/api/sites", nil)
		r.SetBasicAuth("admin", "guess")
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		codes[w.Code]++
	}
	if codes[401] != maxFails || codes[429] != 15-maxFails {
		t.Fatalf("codes %v", codes)
	}
	// Even the right password waits now; another client does not.
	r = httptest.NewRequest("GET", "/api/sites", nil)
	r.SetBasicAuth("admin", "s3cret")
	w = httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != 429 {
		t.Fatalf("locked out client: %d", w.Code)
	}
	e.ip = netip.MustParseAddr("198.51.100.8")
	w = httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("other client: %d", w.Code)
	}
}

func TestCrossOriginWritesRefused(t *testing.T) {
	e := newEnv(t)
	e.add(ev("$pageview", "victim", now.Add(-time.Hour)))
	w := e.do("DELETE", "/api/persons/victim", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
	if w.Code != 403 {
		t.Fatalf("cross-site delete: %d", w.Code)
	}
	if _, err := e.db.Person(context.Background(), "example.com", "victim"); err != nil {
		t.Fatal("person deleted by a cross-site request")
	}
	w = e.do("DELETE", "/api/persons/victim", map[string]string{"Sec-Fetch-Site": "same-origin"})
	if w.Code != 204 {
		t.Fatalf("same-origin delete: %d %s", w.Code, w.Body)
	}
	if w := e.do("GET", "/api/persons/victim", nil); w.Code != 404 {
		t.Fatalf("after delete: %d", w.Code)
	}
}

func TestEventsAndPersonsAPI(t *testing.T) {
	e := newEnv(t)
	e.add(
		ev("$pageview", "a", now.Add(-2*time.Hour), "$pathname", "/x"),
		ev("$pageview", "b", now.Add(-time.Hour), "$pathname", "/y"),
		ev("$identify", "b", now.Add(-30*time.Minute), "$anon_distinct_id", "a"),
		ev("old", "a", now.AddDate(0, 0, -10)),
	)
	var page struct {
		Results []struct {
			Event      string `json:"event"`
			DistinctID string `json:"distinct_id"`
			PersonID   string `json:"person_id"`
			Properties map[string]any
		}
		Next *string
	}
	w := e.do("GET", "/api/events?limit=2", nil)
	if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if len(page.Results) != 2 || page.Results[0].Event != "$identify" || page.Next == nil {
		t.Fatalf("%s", w.Body)
	}
	w = e.do("GET", "/api/events?limit=2&cursor="+*page.Next, nil)
	json.Unmarshal(w.Body.Bytes(), &page)
	if len(page.Results) != 1 || page.Next != nil {
		t.Fatalf("second page (the 10-day-old event is outside the default 7 days): %s", w.Body)
	}
	w = e.do("GET", "/api/events?distinct_id=a&from=2026-11-01&to=2026-11-24", nil)
	json.Unmarshal(w.Body.Bytes(), &page)
	if len(page.Results) != 4 {
		t.Fatalf("person's events with the merged id, date-only to including the day: %s", w.Body)
	}
	w = e.do("GET", "/api/events?filter=$pathname==/y", nil)
	json.Unmarshal(w.Body.Bytes(), &page)
	if len(page.Results) != 1 || page.Results[0].Properties["$pathname"] != "/y" {
		t.Fatalf("filtered: %s", w.Body)
	}
	for _, bad := range []string{"/api/events?from=yesterday", "/api/events?limit=-1", "/api/events?tz=Mars/Base", "/api/events?filter=nope", "/api/events?cursor=zz"} {
		if w := e.do("GET", bad, nil); w.Code != 400 || !strings.Contains(w.Body.String(), "error") {
			t.Errorf("%s: %d %s", bad, w.Code, w.Body)
		}
	}

	w = e.do("GET", "/api/persons", nil)
	var persons struct{ Results []map[string]any }
	json.Unmarshal(w.Body.Bytes(), &persons)
	if len(persons.Results) != 1 {
		t.Fatalf("persons: %s", w.Body)
	}
	id := persons.Results[0]["id"].(string)
	w = e.do("GET", "/api/persons/"+id, nil)
	var one map[string]any
	if json.Unmarshal(w.Body.Bytes(), &one) != nil || one["id"] != id || len(one["distinct_ids"].([]any)) != 2 {
		t.Fatalf("person: %s", w.Body)
	}
	w = e.do("GET", "/api/persons/"+id+"/export", nil)
	if w.Code != 200 || strings.Count(w.Body.String(), "\n") != 5 {
		t.Fatalf("export: %d %s", w.Code, w.Body)
	}
	if w := e.do("GET", "/api/persons/nobody", nil); w.Code != 404 {
		t.Fatalf("unknown person: %d", w.Code)
	}
	w = e.do("GET", "/api/snippet", nil)
	if !strings.Contains(w.Body.String(), `"html":"\u003cscript defer src=\"/_f/app.js\"\u003e\u003c/script\u003e"`) {
		t.Fatalf("snippet: %s", w.Body)
	}
	w = e.do("GET", "/api/sites", nil)
	if w.Body.String() != `{"sites":["example.com"]}` {
		t.Fatalf("sites: %s", w.Body)
	}
	if w := e.do("GET", "/api/nope", nil); w.Code != 404 {
		t.Fatalf("unknown api: %d", w.Code)
	}
}
