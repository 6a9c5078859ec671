package caddymodule

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// ServeHTTP sends requests under the endpoint to the collector and those
// under the dashboard to the dashboard; everything else goes on to next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if rest, ok := under(r.URL.Path, h.Endpoint); ok {
		h.collector.ServeHTTP(w, withPath(r, h.Endpoint, rest))
		return nil
	}
	if h.dashboard != nil {
		if rest, ok := under(r.URL.Path, h.Dashboard); ok {
			h.dashboard.ServeHTTP(w, withPath(r, h.Dashboard, rest))
			return nil
		}
	}
	if (h.Inject || h.watching) && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		var in *injector
		if h.Inject {
			in = h.inject
		}
		var watch pageWatcher
		if h.watching && r.Method == http.MethodGet {
			watch = h
		}
		return in.serve(w, r, next, watch)
	}
	return next.ServeHTTP(w, r)
}

// under reports whether path is prefix or below it, and the rest ("/" at
// least).
func under(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok {
		return "", false
	}
	if rest == "" {
		return "/", true
	}
	if rest[0] != '/' {
		return "", false
	}
	return rest, true
}

// withPath returns a shallow copy of r with its URL path replaced by rest,
// the part after prefix. The escaped form is kept when it differs, so that
// an escaped "/" inside a segment (a session id) stays one segment.
func withPath(r *http.Request, prefix, rest string) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = rest, ""
	if r.URL.RawPath != "" {
		escPrefix := (&url.URL{Path: prefix}).EscapedPath()
		if raw, ok := strings.CutPrefix(r.URL.EscapedPath(), escPrefix); ok {
			if raw == "" {
				raw = "/"
			}
			if p, err := url.PathUnescape(raw); err == nil && p == rest {
				u.RawPath = raw
			}
		}
	}
	r2.URL = &u
	return r2
}
