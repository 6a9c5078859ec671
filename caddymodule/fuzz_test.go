package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// FuzzCaddyfile feeds arbitrary text to the analytics block's parser: it
// must never panic; what it accepts must survive a JSON round trip (the
// form Caddy runs), and what it refuses must say why, naming the directive.
func FuzzCaddyfile(f *testing.F) {
	for _, s := range []string{
		"db :memory:\nsite example.com\nendpoint /_f\ndashboard /analytics",
		"dashboard_auth admin $2a$04$wUWzbnN4c.hQzA5tkkEPB.hrb4kjQ40yO9z8i/.0bJ1z3QvNsUVtS",
		"inject\nrecord on\npersistence memory\nrespect_dnt off\nstore_ip on",
		"retention 400d\nsync always\ntoken phc_x\nmax_body 1MiB\nrate_limit 50",
		"endpoint random\ndashboard off",
		"rate_limit -1", "max_body lots", "retention forever", "sync sometimes", "record maybe",
		"geoip", "site", "{\n}", "unknown_thing 1", "db a b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		// Caddy's lexer refuses some text before any directive sees it
		// (NewTestDispenser would exit the process on that).
		tokens, err := caddyfile.Tokenize([]byte("analytics {\n"+body+"\n}"), "Caddyfile")
		if err != nil {
			return
		}
		var h Handler
		err = h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens))
		if err == nil && h.Site == "" {
			h.Site = "fuzz.example" // as the adapter names it after the block's host
		}
		if err == nil {
			err = h.Validate()
		}
		if err != nil {
			if !strings.Contains(err.Error(), "analytics") && !strings.Contains(err.Error(), "Caddyfile:") {
				t.Fatalf("error does not name the directive: %v", err)
			}
			return
		}
		raw, err := json.Marshal(&h)
		if err != nil {
			t.Fatal(err)
		}
		var back Handler
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		again, _ := json.Marshal(&back)
		if !bytes.Equal(raw, again) {
			t.Fatalf("JSON round trip changed it:\n%s\n%s", raw, again)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("accepted, then refused from its JSON: %v", err)
		}
	})
}

// FuzzInject: whatever the page and however it is cut into writes, the
// streamed result is the one of a single write, and it is the page itself
// with at most the tag added, right before "</head" or right after a
// "<body ...>" tag.
func FuzzInject(f *testing.F) {
	for _, s := range []string{
		"<!doctype html><html><head><title>x</title></head><body><p>hi</p></body></html>",
		"<html><BODY class=a>text</BODY>",
		"<head><script src=\"/_f/app.js\"></script></head>",
		"no tags at all", "<", "</hea", "<body", "<body x='>'>", "</HEAD >",
	} {
		f.Add([]byte(s), []byte{1, 3, 7})
	}
	const tag = `<script defer src="/_f/app.js?v=1"></script>`
	run := func(page []byte, cuts []byte) []byte {
		var out bytes.Buffer
		s := &htmlScanner{dst: &out, tag: []byte(tag), marker: []byte("/_f/app.js")}
		rest := page
		for _, c := range cuts {
			n := min(int(c), len(rest))
			if _, err := s.Write(rest[:n]); err != nil {
				panic(err)
			}
			rest = rest[n:]
		}
		if _, err := s.Write(rest); err != nil {
			panic(err)
		}
		if err := s.flush(); err != nil {
			panic(err)
		}
		return out.Bytes()
	}
	f.Fuzz(func(t *testing.T, page []byte, cuts []byte) {
		whole := run(page, nil)
		if cut := run(page, cuts); !bytes.Equal(whole, cut) {
			t.Fatalf("cut into writes %v the page came out differently:\n%q\n%q", cuts, whole, cut)
		}
		if bytes.Equal(whole, page) {
			return
		}
		at := bytes.Index(whole, []byte(tag))
		if at < 0 || !bytes.Equal(append(whole[:at:at], whole[at+len(tag):]...), page) {
			t.Fatalf("the page was changed beyond the tag:\n%q\n%q", page, whole)
		}
		after := strings.ToLower(string(page[at:]))
		before := strings.ToLower(string(page[:at]))
		if !strings.HasPrefix(after, "</head") && !(strings.HasSuffix(before, ">") && strings.Contains(before, "<body")) {
			t.Fatalf("tag put at %d, neither before </head nor after <body>: %q", at, page)
		}
	})
}

// FuzzServe sends arbitrary methods, paths and queries to a provisioned
// handler, under the endpoint (snippet, recorder, capture, remote config),
// under the dashboard and elsewhere (inject): no panic, no 5xx.
func FuzzServe(f *testing.F) {
	for _, s := range []string{
		"/_f/app.js", "/_f/app.js?v=abc", "/_f/r.js", "/_f/array/phc_x/config", "/_f/array/phc_x/config.js",
		"/_f/flags/?v=2&config=true", "/_f/decide/?v=3", "/_f/e/", "/_f/../analytics/api/sites",
		"/analytics/", "/analytics/api/stats?from=x&to=y", "/analytics/api/events?cursor=%ff", "/analytics/app.js",
		"/analytics/api/persons/%00", "/analytics/api/export?format=csv&from=2026-01-01", "/", "/index.html",
	} {
		f.Add("GET", s, "gzip")
		f.Add("POST", s, "")
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{DB: ":memory:", Site: "fuzz.example", Inject: true, Record: true}
	if err := h.Provision(ctx); err != nil {
		f.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.Cleanup() })
	page := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<html><head></head><body>page</body></html>")
		return nil
	})
	methods := map[string]bool{"GET": true, "HEAD": true, "POST": true, "DELETE": true, "OPTIONS": true, "PUT": true}
	f.Fuzz(func(t *testing.T, method, target, acceptEncoding string) {
		if !methods[method] {
			method = "GET"
		}
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		r, err := http.NewRequest(method, "http://127.0.0.1"+target, nil)
		if err != nil {
			return // not a request a server could receive
		}
		r.Body = http.NoBody // as a server's request always has
		// The live view streams until the client goes: let it go soon.
		rctx, cancel := context.WithTimeout(r.Context(), 50*time.Millisecond)
		defer cancel()
		r = r.WithContext(rctx)
		r.RemoteAddr = "127.0.0.1:1234"
		r.Header.Set("Accept-Encoding", acceptEncoding)
		r.Header.Set("Accept", "text/html")
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, page); err != nil {
			var he caddyhttp.HandlerError
			if e, ok := err.(caddyhttp.HandlerError); ok {
				he = e
			}
			if he.StatusCode >= 500 || he.StatusCode == 0 {
				t.Fatalf("%s %s: %v", method, target, err)
			}
			return
		}
		if w.Code >= 500 {
			t.Fatalf("%s %s: %d %s", method, target, w.Code, w.Body)
		}
	})
}
