package dashboard

import (
	"crypto/tls"
	"errors"
	"net/http/httptest"
	"testing"
)

// TestInstallCheckTarget: the install check fetches only the site's own
// hosts, on the port the dashboard was reached at or the scheme's default;
// a path is taken on the dashboard's own host.
func TestInstallCheckTarget(t *testing.T) {
	h := &Handler{cfg: Config{Site: "example.com", Hosts: []string{"example.com", "www.example.com"}}}
	for _, c := range []struct {
		host, in, want string // want "" = refused
		tls            bool
	}{
		{"example.com", "/", "http://example.com/", false},
		{"example.com", "", "http://example.com", false},
		{"example.com:8443", "/pricing?x=1#top", "https://example.com:8443/pricing?x=1", true},
		{"www.example.com", "https://example.com/a", "https://example.com/a", false},
		{"example.com", "example.com/a", "http://example.com/a", false},
		{"example.com", "http://WWW.Example.COM./b", "http://WWW.Example.COM./b", false},
		{"example.com:8080", "http://example.com:8080/", "http://example.com:8080/", false},
		{"example.com:8080", "http://www.example.com:8080/", "", false}, // not the host reached, not a default port
		{"example.com", "http://example.com:2019/config/", "", false},   // the admin port
		{"localhost:8080", "/", "", false},                              // a path on a host that is not the site's
		{"example.com", "http://localhost/", "", false},
		{"example.com", "http://127.0.0.1/", "", false},
		{"example.com", "http://169.254.169.254/latest/meta-data/", "", false},
		{"example.com", "http://example.com.evil.org/", "", false},
		{"example.com", "http://evil.org/?example.com", "", false},
		{"example.com", "http://example.com@evil.org/", "", false},
		{"example.com", "http://user:pw@example.com/", "", false},
		{"example.com", "//evil.org/", "", false},
		{"example.com", "file:///etc/passwd", "", false},
		{"example.com", "gopher://example.com/", "", false},
		{"example.com", "http://[::1]/", "", false},
	} {
		r := httptest.NewRequest("POST", "/api/install_check", nil)
		r.Host = c.host
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		u, err := h.checkTarget(r, c.in)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("Host %s, %q: fetches %s, want refused", c.host, c.in, u)
		case c.want == "" && !errors.Is(err, errForeignHost):
			t.Errorf("Host %s, %q: %v, want errForeignHost", c.host, c.in, err)
		case c.want != "" && err != nil:
			t.Errorf("Host %s, %q: %v, want %s", c.host, c.in, err, c.want)
		case c.want != "" && u.String() != c.want:
			t.Errorf("Host %s, %q: fetches %s, want %s", c.host, c.in, u, c.want)
		}
	}
}

func TestSnippetAndPosthogIn(t *testing.T) {
	tag := `<script defer src="/_f/app.js?v=abc" data-api="/_f"></script>`
	for page, want := range map[string]bool{
		`<head><script defer src="/_f/app.js?v=old" data-api="/_f"></script></head>`: true,
		`<head><script src='/_f/app.js'></script></head>`:                            true,
		`<head><script src="/other/app.js"></script></head>`:                         false,
		`<p>/_f/app.js</p>`: false,
		``:                  false,
	} {
		if got := snippetIn(page, tag); got != want {
			t.Errorf("snippetIn(%q) = %v, want %v", page, got, want)
		}
	}
	if !posthogIn(`<script>posthog.init('phc', {api_host: 'https://example.com/_f'})</script>`, "/_f") {
		t.Error("posthog-js sending here not found")
	}
	if posthogIn(`<script>posthog.init('phc', {api_host: 'https://us.i.posthog.com'})</script>`, "/_f") {
		t.Error("posthog-js sending elsewhere taken for ours")
	}
}
