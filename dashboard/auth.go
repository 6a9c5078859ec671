package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
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

// Login limits (docs/security.md, "Logins").
const (
	// maxFails is how many failed logins one address may make in
	// failWindow; further attempts are answered 429 without a check.
	maxFails   = 10
	failWindow = time.Minute
	// checkSlots is how many bcrypt comparisons run at once, over every
	// client; beyond it a login is answered 429 at once.
	checkSlots = 2
	// verifiedFor is how long a checked user and password are taken
	// without another bcrypt run (every API call carries them).
	verifiedFor = 5 * time.Minute
	// sessionFor is how long a login session cookie lasts.
	sessionFor = 12 * time.Hour
	// maxEntries bounds each of the login tables.
	maxEntries  = 1000
	maxFailKeys = 100000
	sessionName = "fp_dashboard"
)

// logins checks dashboard logins so that they cannot hurt the site: a
// failure is counted on the client's address before bcrypt runs, at most
// checkSlots comparisons run at once, an unknown user costs one comparison
// against a dummy hash of the same cost, and a client that has logged in
// holds a session that the lockout of its address does not touch.
type logins struct {
	accounts []Account
	dummy    func() []byte
	slots    chan struct{}

	mu       sync.Mutex
	fails    map[netip.Prefix][]time.Time
	verified map[[32]byte]time.Time
	inflight map[[32]byte]*check
	sessions map[string]time.Time // token → expiry
}

// check is a bcrypt comparison in flight; requests with the same user and
// password wait for it rather than run their own.
type check struct {
	done chan struct{}
	ok   bool
}

func newLogins(accounts []Account) *logins {
	cost := bcrypt.DefaultCost
	for i, a := range accounts {
		if c, err := bcrypt.Cost(a.Hash); err == nil && (i == 0 || c > cost) {
			cost = c
		}
	}
	l := &logins{
		accounts: accounts,
		dummy:    dummyHash(cost),
		slots:    make(chan struct{}, checkSlots),
		fails:    make(map[netip.Prefix][]time.Time),
		verified: make(map[[32]byte]time.Time),
		inflight: make(map[[32]byte]*check),
		sessions: make(map[string]time.Time),
	}
	if len(accounts) > 0 {
		go l.dummy() // ready before the first unknown user
	}
	return l
}

// dummyHashes holds one dummy hash per bcrypt cost, made once per process.
var dummyHashes sync.Map // int → func() []byte

// dummyHash returns a hash of a random password at cost: an unknown user's
// password is compared with it, so that it costs what a known user's does.
func dummyHash(cost int) func() []byte {
	f, _ := dummyHashes.LoadOrStore(cost, sync.OnceValue(func() []byte {
		b, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
		if err != nil {
			panic("dashboard: making a dummy hash: " + err.Error())
		}
		return b
	}))
	return f.(func() []byte)
}

// checkObserver is told when each bcrypt comparison begins and ends, with
// the hash's cost.
var checkObserver atomic.Pointer[func(begin bool, cost int)]

// ObservePasswordChecks makes f be told when each password comparison
// begins (true) and ends (false), with the cost of the hash compared; nil
// stops it. For tests: they count comparisons instead of timing them.
func ObservePasswordChecks(f func(begin bool, cost int)) {
	if f == nil {
		checkObserver.Store(nil)
		return
	}
	checkObserver.Store(&f)
}

// authorize lets the request in or answers it. Without accounts only
// loopback clients that name a loopback host or one of the block's own get
// in. With accounts: a session cookie, or HTTP Basic auth against the
// bcrypt hashes within the login limits.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request) bool {
	ip := h.opts.ClientIP(r)
	if len(h.cfg.Accounts) == 0 {
		if !ip.IsLoopback() || !forwardedLocal(r) {
			writeError(w, http.StatusForbidden, "the dashboard has no dashboard_auth and answers only local clients")
			return false
		}
		if !h.hostAllowed(r) {
			// A page elsewhere whose name now resolves to 127.0.0.1 (DNS
			// rebinding) sends its own name as Host.
			writeError(w, http.StatusForbidden, "the dashboard has no dashboard_auth and answers only requests for localhost or this site's hosts")
			return false
		}
		return true
	}
	now := h.opts.Now()
	l := h.logins
	if l.session(r, now) {
		return true
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		challenge(w)
		return false
	}
	key := addrKey(ip)
	if !l.allowed(key, now) {
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusTooManyRequests, "too many failed logins from your address; wait a minute")
		return false
	}
	sum := sha256.Sum256([]byte(user + "\x00" + pass))
	if l.recentlyVerified(sum, now) {
		if _, err := r.Cookie(sessionName); err == nil {
			// A client that keeps cookies lost its session (a reload).
			l.startSession(w, r, h.cfg.Prefix, now)
		}
		return true
	}
	switch l.check(user, pass, sum, key, now) {
	case checkOK:
		l.startSession(w, r, h.cfg.Prefix, now)
		return true
	case checkBusy:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "too many logins at once; try again in a second")
		return false
	case checkLocked:
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusTooManyRequests, "too many failed logins from your address; wait a minute")
		return false
	}
	challenge(w)
	return false
}

func challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="Firstparty", charset="UTF-8"`)
	writeError(w, http.StatusUnauthorized, "login required")
}

// hostAllowed reports whether the request's Host is loopback (localhost,
// 127.*, [::1]) or one of the site block's own hosts.
func (h *Handler) hostAllowed(r *http.Request) bool {
	host := hostOf(r)
	if host == "localhost" {
		return true
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return true
	}
	return slices.Contains(h.cfg.Hosts, host)
}

// forwardedLocal reports whether every address the forwarding headers name
// is loopback: behind a local proxy that is not in trusted_proxies, every
// client seems to come from loopback, but the proxy names the real one.
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

// addrKey is what failures are counted on: the address, or its /64 for
// IPv6 (one host usually holds a whole /64).
func addrKey(ip netip.Addr) netip.Prefix {
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

type checkResult int

const (
	checkFailed checkResult = iota
	checkOK
	checkBusy   // every check slot taken
	checkLocked // the address ran out of attempts meanwhile
)

// check compares the password once: the attempt is counted as a failure of
// key before bcrypt runs (and forgiven if it succeeds), and only when one
// of the check slots is free.
func (l *logins) check(user, pass string, sum [32]byte, key netip.Prefix, now time.Time) checkResult {
	l.mu.Lock()
	if c := l.inflight[sum]; c != nil {
		l.mu.Unlock()
		<-c.done
		if c.ok {
			return checkOK
		}
		return checkFailed
	}
	if len(l.recentFails(key, now)) >= maxFails {
		l.mu.Unlock()
		return checkLocked
	}
	select {
	case l.slots <- struct{}{}:
	default:
		l.mu.Unlock()
		return checkBusy
	}
	l.addFail(key, now) // counted before the comparison
	c := &check{done: make(chan struct{})}
	l.inflight[sum] = c
	l.mu.Unlock()

	ok := l.compare(user, pass)
	<-l.slots

	l.mu.Lock()
	delete(l.inflight, sum)
	if ok {
		l.forgive(key, now)
		if len(l.verified) >= maxEntries {
			for k, t := range l.verified {
				if now.Sub(t) >= verifiedFor {
					delete(l.verified, k)
				}
			}
			if len(l.verified) >= maxEntries {
				clear(l.verified)
			}
		}
		l.verified[sum] = now
	}
	c.ok = ok
	close(c.done)
	l.mu.Unlock()
	if ok {
		return checkOK
	}
	return checkFailed
}

// compare runs exactly one bcrypt comparison whatever the user: an unknown
// user's password is compared with the dummy hash.
func (l *logins) compare(user, pass string) bool {
	var hash []byte
	for _, a := range l.accounts {
		if subtle.ConstantTimeCompare([]byte(a.Username), []byte(user)) == 1 && hash == nil {
			hash = a.Hash
		}
	}
	known := hash != nil
	if !known {
		hash = l.dummy()
	}
	obs := checkObserver.Load()
	if obs != nil {
		cost, _ := bcrypt.Cost(hash)
		(*obs)(true, cost)
		defer (*obs)(false, cost)
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	return known && err == nil
}

func (l *logins) recentlyVerified(sum [32]byte, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.verified[sum]
	return ok && now.Sub(t) < verifiedFor
}

func (l *logins) allowed(key netip.Prefix, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recentFails(key, now)) < maxFails
}

// recentFails returns key's failures within the window, dropping older
// ones. l.mu is held.
func (l *logins) recentFails(key netip.Prefix, now time.Time) []time.Time {
	ts := l.fails[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= failWindow {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, key)
	} else {
		l.fails[key] = ts
	}
	return ts
}

// addFail counts a failure of key. l.mu is held.
func (l *logins) addFail(key netip.Prefix, now time.Time) {
	if len(l.fails) >= maxFailKeys {
		// Bound memory under a distributed attack: drop what has aged
		// out, and if that is not enough, start over (the check slots
		// still bound the guessing rate).
		for k := range l.fails {
			l.recentFails(k, now)
		}
		if len(l.fails) >= maxFailKeys {
			clear(l.fails)
		}
	}
	l.fails[key] = append(l.recentFails(key, now), now)
}

// forgive takes back the failure counted at t for a check that succeeded.
// l.mu is held.
func (l *logins) forgive(key netip.Prefix, t time.Time) {
	ts := l.fails[key]
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Equal(t) {
			ts = slices.Delete(ts, i, i+1)
			break
		}
	}
	if len(ts) == 0 {
		delete(l.fails, key)
	} else {
		l.fails[key] = ts
	}
}

// session reports whether the request carries a live session cookie.
func (l *logins) session(r *http.Request, now time.Time) bool {
	c, err := r.Cookie(sessionName)
	if err != nil || c.Value == "" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	exp, ok := l.sessions[c.Value]
	if ok && now.After(exp) {
		delete(l.sessions, c.Value)
		return false
	}
	return ok
}

// startSession sets a session cookie: a random token that the lockout of
// an address does not touch, so that an admin who has logged in keeps
// working while someone else's guesses lock that address.
func (l *logins) startSession(w http.ResponseWriter, r *http.Request, prefix string, now time.Time) {
	token := rand.Text() // 128 random bits
	l.mu.Lock()
	if len(l.sessions) >= maxEntries {
		var oldest string
		for k, exp := range l.sessions {
			if now.After(exp) {
				delete(l.sessions, k)
			} else if oldest == "" || exp.Before(l.sessions[oldest]) {
				oldest = k
			}
		}
		if len(l.sessions) >= maxEntries {
			delete(l.sessions, oldest)
		}
	}
	l.sessions[token] = now.Add(sessionFor)
	l.mu.Unlock()
	path := prefix
	if path == "" {
		path = "/"
	}
	http.SetCookie(w, &http.Cookie{
		Name:     sessionName,
		Value:    token,
		Path:     path,
		MaxAge:   int(sessionFor / time.Second),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
}
