package dashboard

// Share links (SPEC §10): POST /api/shares makes {dashboard}/share/<token>,
// a read-only overview of one site that needs no login, optionally behind a
// password; DELETE /api/shares/{id} revokes it. Through a share link only
// the overview's numbers come out — stats, breakdowns and trends of
// pageviews by the overview's properties. Persons, events, recordings,
// exports, live data, definitions and every other API are refused.

import (
	"encoding/json"
	"html"
	"net/http"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// shareLink is a share link's record; the token itself is not in it.
type shareLink struct {
	ID       string `json:"id"`
	Site     string `json:"site"`
	Name     string `json:"name"`
	PassHash string `json:"pass_hash,omitempty"` // bcrypt
	Created  string `json:"created_at"`
}

// shareSession is a browser that gave a share link's password.
type shareSession struct {
	share   string
	expires time.Time
}

const (
	sharePrefix     = "fps_"
	shareCookie     = "fp_share"
	shareSessionTTL = 12 * time.Hour
)

// shareProps are the properties a share link may break down or filter by:
// the overview's, none about a person.
var shareProps = map[string]bool{
	"$pathname": true, "$entry_pathname": true, "$exit_pathname": true, "$host": true,
	"$referring_domain": true, "$entry_referring_domain": true, "$channel_type": true,
	"utm_source": true, "utm_medium": true, "utm_campaign": true, "utm_content": true, "utm_term": true,
	"$geoip_country_code": true, "$geoip_city_name": true, "$geoip_subdivision_1_code": true,
	"$device_type": true, "$browser": true, "$os": true, "event": true,
}

func (h *Handler) shareRoutes() {
	h.mux.HandleFunc("GET /api/shares", h.apiShares)
	h.mux.HandleFunc("POST /api/shares", h.apiCreateShare)
	h.mux.HandleFunc("DELETE /api/shares/{id}", h.apiDeleteShare)
}

func (s shareLink) public() map[string]any {
	return map[string]any{"id": s.ID, "site": s.Site, "name": s.Name, "password": s.PassHash != "", "created_at": s.Created}
}

func (h *Handler) apiShares(w http.ResponseWriter, r *http.Request) {
	ms, ok := h.meta()
	if !ok {
		writeError(w, http.StatusNotImplemented, "this store keeps no share links")
		return
	}
	site := h.site(r)
	var out []shareLink
	err := ms.ScanMeta("share:", func(_, v string) bool {
		var s shareLink
		if json.Unmarshal([]byte(v), &s) == nil && s.Site == site {
			out = append(out, s)
		}
		return true
	})
	if err != nil {
		storeError(w, err)
		return
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created < out[j].Created })
	res := make([]map[string]any, 0, len(out))
	for _, s := range out {
		res = append(res, s.public())
	}
	writeResult(w, map[string]any{"results": res})
}

func (h *Handler) apiCreateShare(w http.ResponseWriter, r *http.Request) {
	ms, ok := h.meta()
	if !ok {
		writeError(w, http.StatusNotImplemented, "this store keeps no share links")
		return
	}
	var req struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, `body: want {"name", "password"} (both optional)`)
			return
		}
	}
	if len(req.Name) > 200 || len(req.Password) > 72 {
		writeError(w, http.StatusBadRequest, "name at most 200 bytes, password at most 72")
		return
	}
	s := shareLink{ID: newID(), Site: h.site(r), Name: req.Name, Created: h.opts.Now().UTC().Format(time.RFC3339)}
	if req.Password != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(req.Password), bcrypt.DefaultCost)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		s.PassHash = string(hash)
	}
	secret := newSecret(sharePrefix)
	b, _ := json.Marshal(s)
	if err := ms.PutMeta("share:"+secretHash(secret), string(b)); err != nil {
		storeError(w, err)
		return
	}
	out := s.public()
	out["token"] = secret
	out["url"] = h.cfg.Prefix + "/share/" + secret
	b, _ = json.Marshal(out)
	writeJSON(w, http.StatusCreated, b)
}

func (h *Handler) apiDeleteShare(w http.ResponseWriter, r *http.Request) {
	ms, ok := h.meta()
	if !ok {
		writeError(w, http.StatusNotImplemented, "this store keeps no share links")
		return
	}
	site, id := h.site(r), r.PathValue("id")
	key := ""
	ms.ScanMeta("share:", func(k, v string) bool {
		var s shareLink
		if json.Unmarshal([]byte(v), &s) == nil && s.ID == id && s.Site == site {
			key = k
			return false
		}
		return true
	})
	if key == "" {
		writeError(w, http.StatusNotFound, "no such share link")
		return
	}
	if err := ms.DeleteMeta(key); err != nil {
		storeError(w, err)
		return
	}
	h.guestOnce.Do(h.initGuests)
	h.guest.mu.Lock()
	for k, s := range h.guest.sessions {
		if s.share == id {
			delete(h.guest.sessions, k)
		}
	}
	h.guest.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// serveShare answers {dashboard}/share/<token>[/...].
func (h *Handler) serveShare(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/share/")
	secret, sub, _ := strings.Cut(rest, "/")
	sub = "/" + sub
	now := h.opts.Now()
	var s shareLink
	ms, ok := h.meta()
	v, err := "", error(nil)
	if ok {
		v, err = ms.GetMeta("share:" + secretHash(secret))
	}
	if !ok || err != nil || json.Unmarshal([]byte(v), &s) != nil {
		sharePage(w, http.StatusNotFound, "Not shared", "<p>This link does not exist or was revoked.</p>", "")
		return
	}
	if !h.guest.limits.take("s:"+s.ID, now) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "rate limit")
		return
	}
	base := h.cfg.Prefix + "/share/" + secret
	if strings.HasPrefix(sub, "/assets/") && r.Method == http.MethodGet {
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = sub, ""
		h.mux.ServeHTTP(w, withPrefix(r2, h.cfg.Prefix))
		return
	}
	if s.PassHash != "" && !h.shareSessionOK(r, s.ID, now) {
		if sub != "/" {
			writeError(w, http.StatusUnauthorized, "this share link asks for a password")
			return
		}
		if r.Method == http.MethodPost {
			h.sharePassword(w, r, s, base, now)
			return
		}
		passwordForm(w, http.StatusOK, base, "")
		return
	}
	switch {
	case sub == "/" && r.Method == http.MethodGet:
		h.shareOverview(w, s, base)
	case strings.HasPrefix(sub, "/api/"):
		h.shareAPI(w, r, s, sub)
	default:
		writeError(w, http.StatusNotFound, "not found")
	}
}

func (h *Handler) shareSessionOK(r *http.Request, id string, now time.Time) bool {
	c, err := r.Cookie(shareCookie)
	if err != nil {
		return false
	}
	h.guest.mu.Lock()
	defer h.guest.mu.Unlock()
	ss, ok := h.guest.sessions[secretHash(c.Value)]
	return ok && ss.share == id && now.Before(ss.expires)
}

func (h *Handler) sharePassword(w http.ResponseWriter, r *http.Request, s shareLink, base string, now time.Time) {
	ip := h.opts.ClientIP(r).String()
	if !h.guest.badGuess.peek(ip, now) {
		w.Header().Set("Retry-After", "60")
		passwordForm(w, http.StatusTooManyRequests, base, "Too many wrong passwords; wait a minute.")
		return
	}
	if err := h.csrf.Check(r); err != nil {
		passwordForm(w, http.StatusForbidden, base, "Cross-origin request refused.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	pass := r.PostFormValue("password")
	if bcrypt.CompareHashAndPassword([]byte(s.PassHash), []byte(pass)) != nil {
		h.guest.badGuess.take(ip, now)
		passwordForm(w, http.StatusUnauthorized, base, "Wrong password.")
		return
	}
	sess := newSecret("")
	h.guest.mu.Lock()
	for k, v := range h.guest.sessions { // drop expired ones
		if now.After(v.expires) {
			delete(h.guest.sessions, k)
		}
	}
	if len(h.guest.sessions) < 100000 {
		h.guest.sessions[secretHash(sess)] = shareSession{share: s.ID, expires: now.Add(shareSessionTTL)}
	}
	h.guest.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: shareCookie, Value: sess, Path: base, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(shareSessionTTL.Seconds())})
	http.Redirect(w, r, base, http.StatusSeeOther)
}

// shareAPI answers the overview's API calls of a share link.
func (h *Handler) shareAPI(w http.ResponseWriter, r *http.Request, s shareLink, sub string) {
	if r.Method != http.MethodGet {
		writeError(w, http.StatusForbidden, "a share link is read-only")
		return
	}
	switch sub {
	case "/api/stats", "/api/breakdown", "/api/trends":
	default:
		writeError(w, http.StatusForbidden, "a share link shows the overview only")
		return
	}
	q := r.URL.Query()
	if q.Get("cohort") != "" {
		writeError(w, http.StatusForbidden, "a share link shows the overview only")
		return
	}
	for _, k := range []string{"property", "breakdown"} {
		if p := q.Get(k); p != "" && !shareProps[p] {
			writeError(w, http.StatusForbidden, "a share link breaks down by the overview's properties only")
			return
		}
	}
	for _, e := range q["event"] {
		if e != "$pageview" {
			writeError(w, http.StatusForbidden, "a share link shows pageviews only")
			return
		}
	}
	for _, f := range q["filter"] {
		i := strings.IndexAny(f, "=!~")
		if i <= 0 || !shareProps[f[:i]] {
			writeError(w, http.StatusForbidden, "a share link filters by the overview's properties only")
			return
		}
	}
	if !h.scopeSite(w, r, s.Site) {
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = sub, ""
	h.mux.ServeHTTP(w, withPrefix(r2, h.cfg.Prefix))
}

func (h *Handler) shareOverview(w http.ResponseWriter, s shareLink, base string) {
	a := loadUIAssets()
	title := s.Site
	if s.Name != "" {
		title = s.Name
	}
	body := `<main id="share" class="share" data-base="` + html.EscapeString(base) + `" data-site="` + html.EscapeString(s.Site) + `"><p>Loading…</p></main>` +
		`<script type="module" src="` + html.EscapeString(base) + `/assets/` + a.version + `/js/share.js"></script>`
	sharePage(w, http.StatusOK, title, body, base+"/assets/"+a.version+"/app.css")
}

func passwordForm(w http.ResponseWriter, status int, base, msg string) {
	body := `<main class="share share-login"><h1>This overview is protected</h1>`
	if msg != "" {
		body += `<p class="error" role="alert">` + html.EscapeString(msg) + `</p>`
	}
	body += `<form method="post" action="` + html.EscapeString(base) + `"><label>Password <input type="password" name="password" autocomplete="current-password" autofocus required></label> <button type="submit">View</button></form></main>`
	sharePage(w, status, "Password required", body, "")
}

func sharePage(w http.ResponseWriter, status int, title, body, css string) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer") // the token is in the URL
	w.WriteHeader(status)
	page := `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex"><title>` + html.EscapeString(title) + `</title>`
	if css != "" {
		page += `<link rel="stylesheet" href="` + html.EscapeString(css) + `">`
	}
	w.Write([]byte(page + `</head><body>` + body + `</body></html>`))
}
