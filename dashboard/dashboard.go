// Package dashboard serves Firstparty's web UI and its JSON API, behind the
// dashboard's authentication. Assets are embedded; every value that came
// from a visitor is sent as JSON and rendered as text.
package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/firstpartyhq/firstparty/store"
)

// Account is a dashboard login with a bcrypt password hash.
type Account struct {
	Username string
	Hash     []byte
}

// CheckHash reports whether hash is a usable bcrypt hash.
func CheckHash(hash []byte) error {
	if _, err := bcrypt.Cost(hash); err != nil {
		return errors.New("not a bcrypt hash (make one with `caddy hash-password`)")
	}
	return nil
}

// Config is what the dashboard needs from the module.
type Config struct {
	// Prefix is the path the dashboard is served under, e.g. /analytics.
	Prefix string
	// Site is the default site; "" means the request's host.
	Site string
	// Accounts may log in; without any, only loopback clients are served.
	Accounts []Account
	// Snippet returns the script tag that loads the snippet for a site.
	Snippet func(site string) string
	// Settings returns the site's configuration as the module sees it.
	Settings func() any
}

// Options are the dashboard's collaborators.
type Options struct {
	// ClientIP is the client's address (Caddy's, honouring
	// trusted_proxies).
	ClientIP func(*http.Request) netip.Addr
	Logger   *zap.Logger
	Now      func() time.Time
}

// Handler serves the dashboard.
type Handler struct {
	cfg    Config
	store  store.Store
	opts   Options
	mux    *http.ServeMux
	csrf   *http.CrossOriginProtection
	authOK sync.Map // sha256(user:password) → time verified
	fails  failLimiter

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
	h := &Handler{cfg: cfg, store: st, opts: o, csrf: http.NewCrossOriginProtection()}
	h.fails.init()
	h.mux = http.NewServeMux()
	h.routes()
	h.tokenRoutes() // ops: tokens.go
	h.shareRoutes() // ops: shares.go
	return h
}

// ServeHTTP serves a request whose path is relative to the prefix.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
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
	h.mux.ServeHTTP(w, r)
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

// authorize lets the request in or answers it: without accounts only
// loopback clients get in; with accounts, HTTP Basic auth against the bcrypt
// hashes, with failed attempts limited per client.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request) bool {
	ip := h.opts.ClientIP(r)
	if len(h.cfg.Accounts) == 0 {
		if ip.IsLoopback() && forwardedLocal(r) {
			return true
		}
		writeError(w, http.StatusForbidden, "the dashboard has no dashboard_auth and answers only local clients")
		return false
	}
	now := h.opts.Now()
	if !h.fails.allowed(ip, now) {
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusTooManyRequests, "too many failed logins; wait a minute")
		return false
	}
	user, pass, ok := r.BasicAuth()
	if ok && h.checkPassword(user, pass, now) {
		return true
	}
	if ok {
		h.fails.fail(ip, now)
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="Firstparty", charset="UTF-8"`)
	writeError(w, http.StatusUnauthorized, "login required")
	return false
}

// forwardedLocal reports whether every address the forwarding headers name
// is loopback. Caddy's client IP with trusted_proxies (not strict) is the
// leftmost X-Forwarded-For entry, which the client chooses; a proxy appends
// the real client's address after it, so any non-loopback entry means the
// request came from elsewhere.
func forwardedLocal(r *http.Request) bool {
	for _, name := range []string{"X-Forwarded-For", "X-Real-Ip", "Forwarded", "True-Client-Ip", "Cf-Connecting-Ip"} {
		for _, v := range r.Header.Values(name) {
			for _, part := range strings.Split(v, ",") {
				part = strings.TrimSpace(part)
				if name == "Forwarded" {
					// for=1.2.3.4;proto=https, for="[::1]:80"
					found := false
					for _, kv := range strings.Split(part, ";") {
						if k, val, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && strings.EqualFold(k, "for") {
							part, found = strings.Trim(val, `"`), true
						}
					}
					if !found {
						continue
					}
				}
				if !isLoopbackAddr(part) {
					return false
				}
			}
		}
	}
	return true
}

func isLoopbackAddr(s string) bool {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().IsLoopback()
	}
	ip, err := netip.ParseAddr(strings.Trim(s, "[]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// checkPassword compares against the bcrypt hash; successes are cached for
// a few minutes (bcrypt is slow on purpose, and every API call carries the
// credentials).
func (h *Handler) checkPassword(user, pass string, now time.Time) bool {
	sum := sha256.Sum256([]byte(user + "\x00" + pass))
	if t, ok := h.authOK.Load(sum); ok && now.Sub(t.(time.Time)) < 5*time.Minute {
		return true
	}
	for _, a := range h.cfg.Accounts {
		if subtle.ConstantTimeCompare([]byte(a.Username), []byte(user)) == 1 &&
			bcrypt.CompareHashAndPassword(a.Hash, []byte(pass)) == nil {
			h.authOK.Store(sum, now)
			return true
		}
	}
	return false
}

// failLimiter allows a client ten failed logins a minute.
type failLimiter struct {
	mu    sync.Mutex
	fails map[netip.Addr][]time.Time
}

const maxFails = 10

func (f *failLimiter) init() { f.fails = make(map[netip.Addr][]time.Time) }

func (f *failLimiter) recent(ip netip.Addr, now time.Time) []time.Time {
	ts := f.fails[ip]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > time.Minute {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(f.fails, ip)
	} else {
		f.fails[ip] = ts
	}
	return ts
}

func (f *failLimiter) allowed(ip netip.Addr, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recent(ip, now)) < maxFails
}

func (f *failLimiter) fail(ip netip.Addr, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.fails) > 100000 { // bound memory under a distributed attack
		clear(f.fails)
	}
	f.fails[ip] = append(f.recent(ip, now), now)
}

// site returns the site a request is about.
func (h *Handler) site(r *http.Request) string {
	if s := r.URL.Query().Get("site"); s != "" {
		return s
	}
	if h.cfg.Site != "" {
		return h.cfg.Site
	}
	return HostOf(r)
}

// HostOf returns the request's host name without port, lower case.
func HostOf(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.Trim(host, "[]"))
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
