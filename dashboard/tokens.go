package dashboard

// API tokens (SPEC §10): per-site bearer tokens, read-only or read-write,
// shown once at creation and stored only as their SHA-256. A request with
// `Authorization: Bearer <token>` may use the dashboard's JSON API (not its
// pages) for the token's site with exactly the token's rights, from any
// origin; every use is rate-limited per token. Tokens are managed by a
// logged-in user through GET, POST /api/tokens and DELETE /api/tokens/{id};
// a token cannot manage tokens or share links.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// metaStore is what tokens and share links keep their records in; the
// embedded store has it.
type metaStore interface {
	PutMeta(key, value string) error
	GetMeta(key string) (string, error)
	DeleteMeta(key string) error
	ScanMeta(prefix string, fn func(key, value string) bool) error
}

func (h *Handler) meta() (metaStore, bool) {
	m, ok := h.store.(metaStore)
	return m, ok
}

// apiToken is a token's record; the token itself is not in it.
type apiToken struct {
	ID      string `json:"id"`
	Site    string `json:"site"`
	Name    string `json:"name"`
	Access  string `json:"access"` // "read" or "write"
	Created string `json:"created_at"`
}

const tokenPrefix = "fpt_"

// Rate of bearer calls per token: a burst, refilled at a steady rate.
var (
	tokenBurst = 120.0
	tokenRate  = 20.0 // per second
)

func (h *Handler) tokenRoutes() {
	h.mux.HandleFunc("GET /api/tokens", h.apiTokens)
	h.mux.HandleFunc("POST /api/tokens", h.apiCreateToken)
	h.mux.HandleFunc("DELETE /api/tokens/{id}", h.apiDeleteToken)
}

// newSecret returns a random URL-safe secret with prefix.
func newSecret(prefix string) string {
	var b [32]byte
	rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// tokensOf lists the site's tokens by creation.
func (h *Handler) tokensOf(ms metaStore, site string) ([]apiToken, error) {
	var out []apiToken
	err := ms.ScanMeta("token:", func(_, v string) bool {
		var t apiToken
		if json.Unmarshal([]byte(v), &t) == nil && t.Site == site {
			out = append(out, t)
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created < out[j].Created })
	return out, err
}

func (h *Handler) apiTokens(w http.ResponseWriter, r *http.Request) {
	ms, ok := h.meta()
	if !ok {
		writeError(w, http.StatusNotImplemented, "this store keeps no tokens")
		return
	}
	ts, err := h.tokensOf(ms, h.site(r))
	if err != nil {
		storeError(w, err)
		return
	}
	writeResult(w, struct {
		Results []apiToken `json:"results"`
	}{nonNil(ts)})
}

func (h *Handler) apiCreateToken(w http.ResponseWriter, r *http.Request) {
	ms, ok := h.meta()
	if !ok {
		writeError(w, http.StatusNotImplemented, "this store keeps no tokens")
		return
	}
	var req struct {
		Name   string `json:"name"`
		Access string `json:"access"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: want {\"name\", \"access\": \"read\"|\"write\"}")
		return
	}
	if req.Access == "" {
		req.Access = "read"
	}
	if req.Access != "read" && req.Access != "write" {
		writeError(w, http.StatusBadRequest, `access: "read" or "write"`)
		return
	}
	if len(req.Name) > 200 {
		writeError(w, http.StatusBadRequest, "name: at most 200 bytes")
		return
	}
	secret := newSecret(tokenPrefix)
	t := apiToken{ID: newID(), Site: h.site(r), Name: req.Name, Access: req.Access, Created: h.opts.Now().UTC().Format(time.RFC3339)}
	b, _ := json.Marshal(t)
	if err := ms.PutMeta("token:"+secretHash(secret), string(b)); err != nil {
		storeError(w, err)
		return
	}
	// The token is in this answer and nowhere else.
	out, _ := json.Marshal(struct {
		apiToken
		Token string `json:"token"`
	}{t, secret})
	writeJSON(w, http.StatusCreated, out)
}

func (h *Handler) apiDeleteToken(w http.ResponseWriter, r *http.Request) {
	ms, ok := h.meta()
	if !ok {
		writeError(w, http.StatusNotImplemented, "this store keeps no tokens")
		return
	}
	site, id := h.site(r), r.PathValue("id")
	key := ""
	ms.ScanMeta("token:", func(k, v string) bool {
		var t apiToken
		if json.Unmarshal([]byte(v), &t) == nil && t.ID == id && t.Site == site {
			key = k
			return false
		}
		return true
	})
	if key == "" {
		writeError(w, http.StatusNotFound, "no such token")
		return
	}
	if err := ms.DeleteMeta(key); err != nil {
		storeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// bearerToken returns the token of an Authorization: Bearer header.
func bearerToken(r *http.Request) (string, bool) {
	a := r.Header.Get("Authorization")
	if len(a) < 7 || !strings.EqualFold(a[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(a[7:]), true
}

// serveGuest answers the requests that are not a logged-in user's: bearer
// API calls and share links. It reports whether it answered; when it did
// not, the request goes through the usual login.
func (h *Handler) serveGuest(w http.ResponseWriter, r *http.Request) bool {
	h.guestOnce.Do(h.initGuests)
	if tok, ok := bearerToken(r); ok {
		h.serveBearer(w, r, tok)
		return true
	}
	if strings.HasPrefix(r.URL.Path, "/share/") {
		h.serveShare(w, r)
		return true
	}
	return false
}

// guests is the state of tokens and share links.
type guests struct {
	limits   rateLimits // per token / share link
	badGuess rateLimits // failed bearer tokens and share passwords per client
	mu       sync.Mutex
	sessions map[string]shareSession // share-link password sessions
}

func (h *Handler) initGuests() {
	h.guest = &guests{sessions: map[string]shareSession{}}
	h.guest.limits.init(tokenBurst, tokenRate)
	h.guest.badGuess.init(10, 10.0/60) // ten wrong guesses, then one every 6 s
}

func (h *Handler) serveBearer(w http.ResponseWriter, r *http.Request, secret string) {
	now := h.opts.Now()
	ip := h.opts.ClientIP(r)
	if !h.guest.badGuess.peek(ip.String(), now) {
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusTooManyRequests, "too many bad tokens; wait a minute")
		return
	}
	var t apiToken
	ms, ok := h.meta()
	v, err := "", errors.New("no tokens")
	if ok {
		v, err = ms.GetMeta("token:" + secretHash(secret))
	}
	if err != nil || json.Unmarshal([]byte(v), &t) != nil {
		h.guest.badGuess.take(ip.String(), now)
		w.Header().Set("WWW-Authenticate", `Bearer realm="Firstparty", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "unknown or revoked token")
		return
	}
	if !h.guest.limits.take("t:"+t.ID, now) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "token rate limit")
		return
	}
	p := r.URL.Path
	if !strings.HasPrefix(p, "/api/") {
		writeError(w, http.StatusForbidden, "API tokens open the API, not the dashboard's pages")
		return
	}
	if p == "/api/tokens" || strings.HasPrefix(p, "/api/tokens/") || p == "/api/shares" || strings.HasPrefix(p, "/api/shares/") {
		writeError(w, http.StatusForbidden, "tokens and share links are managed by a logged-in user")
		return
	}
	if t.Access != "write" && r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusForbidden, "this token is read-only")
		return
	}
	if !h.scopeSite(w, r, t.Site) {
		return
	}
	// No same-origin rule for bearer calls: the token is the credential.
	h.mux.ServeHTTP(w, withPrefix(r, h.cfg.Prefix))
}

// scopeSite pins the request to site: another ?site= is 404.
func (h *Handler) scopeSite(w http.ResponseWriter, r *http.Request, site string) bool {
	q := r.URL.Query()
	if s := q.Get("site"); site != h.cfg.Site || s != "" && s != site {
		// A token or link of another block's site (blocks may share a
		// database) opens nothing here.
		writeError(w, http.StatusNotFound, "no such site")
		return false
	}
	q.Set("site", site)
	u := *r.URL
	u.RawQuery = q.Encode()
	r.URL = &u
	return true
}

// rateLimits are token buckets by key.
type rateLimits struct {
	mu      sync.Mutex
	burst   float64
	rate    float64
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func (l *rateLimits) init(burst, rate float64) {
	l.burst, l.rate, l.buckets = burst, rate, map[string]*bucket{}
}

func (l *rateLimits) fill(key string, now time.Time) *bucket {
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) > 100000 { // bound memory under a flood of keys
			clear(l.buckets)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	if d := now.Sub(b.at).Seconds(); d > 0 {
		b.tokens = min(l.burst, b.tokens+d*l.rate)
	}
	b.at = now
	return b
}

// take spends one use; false when none is left.
func (l *rateLimits) take(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.fill(key, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// peek reports whether a use is left, without spending it.
func (l *rateLimits) peek(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fill(key, now).tokens >= 1
}
