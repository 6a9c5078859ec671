// Package dashboard serves Firstparty's web UI and its JSON API, behind the
// dashboard's authentication. Assets are embedded; every value that came
// from a visitor is sent as JSON and rendered as text.
package dashboard

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/firstpartyhq/firstparty/store"
)

// Config is what the dashboard needs from the module.
type Config struct {
	// Prefix is the path the dashboard is served under, e.g. /analytics.
	Prefix string
	// Site is the one site this dashboard shows; required. Another
	// `?site=` is answered 404, whatever else shares the store.
	Site string
	// Hosts are the site block's own host names: without Accounts, a
	// request's Host must be one of them or loopback (no DNS rebinding).
	Hosts []string
	// Accounts may log in; without any, only loopback clients are served.
	Accounts []Account
	// Snippet returns the script tag that loads the snippet for a site.
	Snippet func(site string) string
	// Settings returns the site's configuration as the module sees it.
	Settings func() any
	// LiveMax bounds the live (SSE) streams open on one database at once,
	// over every dashboard sharing it; beyond it a stream is answered 503.
	// Default: DefaultLiveMax.
	LiveMax int
}

// DefaultLiveMax is the default bound on live streams per database.
const DefaultLiveMax = 200

// Options are the dashboard's collaborators.
type Options struct {
	// ClientIP is the client's address as Caddy trusts it (the rightmost
	// address that is not a trusted proxy). Logins are limited per
	// address.
	ClientIP func(*http.Request) netip.Addr
	Logger   *zap.Logger
	Now      func() time.Time
}

// Handler serves the dashboard.
type Handler struct {
	cfg    Config
	store  store.Store
	opts   Options
	mux    prefixMux
	csrf   *http.CrossOriginProtection
	logins *logins
	live   *liveCount

	guestOnce sync.Once // ops: API tokens and share links (tokens.go, shares.go)
	guest     *guests
}

// New returns the dashboard handler.
func New(cfg Config, st store.Store, o Options) *Handler {
	if o.ClientIP == nil {
		o.ClientIP = func(r *http.Request) netip.Addr {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			ip, _ := netip.ParseAddr(host)
			return ip.Unmap()
		}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if cfg.Snippet == nil {
		cfg.Snippet = func(string) string { return "" }
	}
	if cfg.Settings == nil {
		cfg.Settings = func() any { return nil }
	}
	if cfg.LiveMax <= 0 {
		cfg.LiveMax = DefaultLiveMax
	}
	cfg.Prefix = strings.TrimSuffix(cfg.Prefix, "/")
	h := &Handler{cfg: cfg, store: st, opts: o, csrf: http.NewCrossOriginProtection()}
	h.logins = newLogins(cfg.Accounts)
	h.live = liveCounter(st)
	h.mux = prefixMux{ServeMux: http.NewServeMux(), prefix: cfg.Prefix}
	h.routes()
	h.tokenRoutes() // ops: tokens.go
	h.shareRoutes() // ops: shares.go
	return h
}

// prefixMux registers its patterns under the dashboard's prefix, so that
// the redirects http.ServeMux makes (a cleaned path, a trailing slash) keep
// the prefix: GET /analytics//api/sites goes to /analytics/api/sites.
type prefixMux struct {
	*http.ServeMux
	prefix string
}

// HandleFunc registers "[METHOD ]/path" as "[METHOD ]<prefix>/path".
func (m prefixMux) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	method, p, ok := strings.Cut(pattern, " ")
	if !ok {
		method, p = "", pattern
	} else {
		method += " "
	}
	m.ServeMux.HandleFunc(method+m.prefix+p, f)
}

// ServeHTTP serves a request whose path is relative to the prefix.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	if h.cfg.Site == "" {
		writeError(w, http.StatusInternalServerError, "the dashboard has no site configured")
		return
	}
	if h.serveGuest(w, r) { // ops: bearer tokens and share links (tokens.go, shares.go)
		return
	}
	if !h.authorize(w, r) {
		return
	}
	if err := h.csrf.Check(r); err != nil {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	if q := r.URL.Query(); q.Has("site") && q.Get("site") != h.cfg.Site {
		// Only this block's site, even when blocks share the store.
		writeError(w, http.StatusNotFound, "no such site")
		return
	}
	h.mux.ServeHTTP(w, withPrefix(r, h.cfg.Prefix))
}

// withPrefix returns a shallow copy of r whose path has the prefix back in
// front, escaped path included (a session id may hold an escaped "/").
func withPrefix(r *http.Request, prefix string) *http.Request {
	if prefix == "" {
		return r
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path = prefix + r.URL.Path
	u.RawPath = ""
	if r.URL.RawPath != "" {
		u.RawPath = (&url.URL{Path: prefix}).EscapedPath() + r.URL.RawPath
	}
	r2.URL = &u
	return r2
}

// securityHeaders are sent with every dashboard response. The CSP allows
// no inline script and no other origin.
func securityHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'; object-src 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "SAMEORIGIN")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// site returns the site a request is about: always the configured one
// (ServeHTTP answers another `?site=` with 404).
func (h *Handler) site(*http.Request) string {
	return h.cfg.Site
}

// hostOf returns the request's host name without port, lower case.
func hostOf(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b := []byte(`{"error":`)
	b = store.AppendJSONString(b, msg)
	writeJSON(w, status, append(b, '}'))
}
