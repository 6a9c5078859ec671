package caddymodule

import (
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// BenchmarkClientIP measures what finding the trusted client address costs
// a request behind two trusted proxies (one server-side probe per trusted
// hop), against a request from an untrusted peer.
//
//	go test ./caddymodule -run '^$' -bench ClientIP -benchmem
func BenchmarkClientIP(b *testing.B) {
	cfg := `{"admin":{"disabled":true},"apps":{"http":{"servers":{"bench":{"listen":["127.0.0.1:0"],
		"trusted_proxies":{"source":"static","ranges":["127.0.0.1/32","10.0.0.0/8"]}}}}}}`
	if err := caddy.Load([]byte(cfg), true); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { caddy.Stop() })
	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		b.Fatal(err)
	}
	srv := app.(*caddyhttp.App).Servers["bench"]
	for _, c := range []struct{ name, peer, xff, want string }{
		{"untrusted-peer", "203.0.113.5:4000", "192.0.2.1", "203.0.113.5"},
		{"two-trusted-hops", "127.0.0.1:4000", "192.0.2.1, 198.51.100.7, 10.0.0.2", "198.51.100.7"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		r.Header.Set("X-Forwarded-For", c.xff)
		r = caddyhttp.PrepareRequest(r, caddy.NewEmptyReplacer(), nil, srv)
		if got := clientIP(r).String(); got != c.want {
			b.Fatalf("%s: clientIP = %s, want %s", c.name, got, c.want)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				clientIP(r)
			}
		})
	}
}
