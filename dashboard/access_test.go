package dashboard

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestHostCheckWithoutAuth: without accounts, only loopback names and the
// block's own hosts are served (DNS rebinding).
func TestHostCheckWithoutAuth(t *testing.T) {
	e := newEnv(t)
	for host, want := range map[string]int{
		"example.com": 200, "EXAMPLE.COM:443": 200, "example.com.": 200,
		"localhost": 200, "localhost:2015": 200, "127.0.0.1:80": 200, "127.9.9.9": 200, "[::1]:8080": 200,
		"evil.example": 403, "evil.example:80": 403, "localhost.evil.example": 403, "10.0.0.1": 403, "": 403,
		"[::ffff:127.0.0.1]": 200, "0.0.0.0": 403,
	} {
		r := httptest.NewRequest("GET", "/api/sites", nil)
		r.Host = host
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Host %q: %d, want %d", host, w.Code, want)
		}
	}
}

// TestOtherSiteIs404: another `?site=` is not this dashboard's.
func TestOtherSiteIs404(t *testing.T) {
	e := newEnv(t)
	e.want("/api/sites", 200, `{"sites":["example.com"]}`)
	e.want("/api/stats?site=other.example", 404, `{"error":"no such site"}`)
	if w := e.do("GET", "/api/stats?site=example.com", nil); w.Code != 200 {
		t.Errorf("own site: %d %s", w.Code, w.Body)
	}
}

// TestRedirectsKeepPrefix: the redirects of the mux stay under the prefix.
func TestRedirectsKeepPrefix(t *testing.T) {
	e := newEnv(t)
	for path, want := range map[string]string{
		"//api/sites":       "/analytics/api/sites",
		"/api/../api/sites": "/analytics/api/sites",
		"/api":              "/analytics/api/",
		"/assets/v1":        "/analytics/assets/v1/",
	} {
		w := e.do("GET", path, nil)
		if w.Code < 300 || w.Code > 399 || w.Header().Get("Location") != want {
			t.Errorf("%s: %d Location %q, want a redirect to %s", path, w.Code, w.Header().Get("Location"), want)
		}
	}
}

func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"=1+1": "'=1+1", "+1": "'+1", "-1": "'-1", "@x": "'@x", "\tx": "'\tx", "\rx": "'\rx",
		"": "", "a=b": "a=b", " =x": " =x", "{\"k\":\"=x\"}": "{\"k\":\"=x\"}", "'=x": "'=x",
	} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSameCredentialsShareOneCheck: requests carrying the same user and
// password while it is being checked wait for that check; none takes a
// slot of its own or is refused.
func TestSameCredentialsShareOneCheck(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), 8)
	e := newEnv(t, Account{Username: "admin", Hash: hash})
	var checks atomic.Int64
	ObservePasswordChecks(func(begin bool, _ int) {
		if begin {
			checks.Add(1)
		}
	})
	t.Cleanup(func() { ObservePasswordChecks(nil) })
	var wg sync.WaitGroup
	codes := make([]int, 10)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest("GET", "/api/sites", nil)
			r.SetBasicAuth("admin", "s3cret")
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, r)
			codes[i] = w.Code
		}()
	}
	wg.Wait()
	if n := checks.Load(); n != 1 {
		t.Errorf("%d checks for one user and password", n)
	}
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("request %d: %d", i, c)
		}
	}
}
