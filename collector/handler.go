package collector

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/tidwall/gjson"
)

// Config is what the collector needs to know about its site.
type Config struct {
	// Site is the site id events are stored under.
	Site string
	// Token, when set, is the only api_key/token accepted.
	Token string
	// MaxBody bounds a request body, before and after decompression;
	// recordings (/s/) may be recordingBodyFactor times larger.
	MaxBody int64
	// RateLimit is the capture requests a second allowed per client IP
	// (burst four times that); 0 disables the limit.
	RateLimit float64
	// StoreIP keeps the client IP as $ip; otherwise it is used for GeoIP
	// and dropped.
	StoreIP bool
	// Record turns session recording on in the remote config.
	Record bool
	// RecordSample is the fraction of sessions recorded (0 < r < 1); 0 or
	// 1 records every session.
	RecordSample float64
	// RespectDNT answers capture requests carrying DNT: 1 or Sec-GPC: 1
	// with 200 and stores nothing of them.
	RespectDNT bool
	// Limits bound what one event and one session can make the server
	// keep; zero fields get the defaults.
	Limits Limits
}

// Metrics receives what the collector counts.
type Metrics interface {
	// Stored counts events stored, by kind (pageview, custom, ...).
	Stored(site, kind string, n int)
	// Rejected counts events not stored, by reason.
	Rejected(site, reason string, n int)
	// Truncated counts properties cut or dropped by the limits.
	Truncated(site string, n int)
	// Observe records how long a capture request took.
	Observe(d time.Duration)
}

type noMetrics struct{}

func (noMetrics) Stored(string, string, int)   {}
func (noMetrics) Rejected(string, string, int) {}
func (noMetrics) Truncated(string, int)        {}
func (noMetrics) Observe(time.Duration)        {}

// Collector serves everything under the capture endpoint.
type Collector struct {
	cfg        Config
	store      store.Store
	enrich     enricher
	ua         *UAParser
	limiter    *rateLimiter
	metrics    Metrics
	clientIP   func(*http.Request) netip.Addr
	now        func() time.Time
	datacenter func(netip.Addr) bool
	server     serverSide

	// Snippet serves GET /<name>.js and the lazily loaded chunks; nil
	// answers 404.
	Snippet http.Handler
}

// Options are the collaborators of a Collector; nil fields get defaults.
type Options struct {
	Geo      *GeoLookup
	UA       *UAParser
	Metrics  Metrics
	ClientIP func(*http.Request) netip.Addr
	Now      func() time.Time
	// Datacenter reports an address of a hosting network; its events are
	// marked $datacenter (SPEC §8). nil marks none.
	Datacenter func(netip.Addr) bool
}

// New returns a collector for one site.
func New(cfg Config, st store.Store, o Options) *Collector {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if o.UA == nil {
		o.UA = NewUAParser(4096)
	}
	if o.Metrics == nil {
		o.Metrics = noMetrics{}
	}
	if o.ClientIP == nil {
		o.ClientIP = remoteAddrIP
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Collector{
		cfg:        cfg,
		store:      st,
		enrich:     enricher{geo: o.Geo, storeIP: cfg.StoreIP, urls: newURLCache()},
		ua:         o.UA,
		limiter:    newRateLimiter(cfg.RateLimit),
		metrics:    o.Metrics,
		clientIP:   o.ClientIP,
		now:        o.Now,
		datacenter: o.Datacenter,
	}
}

func remoteAddrIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// route names the capture endpoints.
type route int

const (
	routeNone route = iota
	routeCapture
	routeEngage
	routeRecording
	routeV1
)

// ServeHTTP serves a request whose path is relative to the endpoint
// ("/e/", "/batch", ...). Every path works with and without the trailing
// slash.
func (c *Collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	var rt route
	switch path {
	case "/e", "/i/v0/e", "/capture", "/track", "/batch":
		rt = routeCapture
	case "/engage":
		rt = routeEngage
	case "/s":
		rt = routeRecording
	case "/i/v1/analytics/events":
		rt = routeV1
	case "/decide", "/flags", "/flags/definitions", "/api/feature_flag/local_evaluation":
		c.serveFlagPaths(w, r, path) // flags.go
		return
	default:
		if rest, ok := strings.CutPrefix(path, "/array/"); ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			c.serveConfig(w, r, rest)
			return
		}
		if c.Snippet != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			c.Snippet.ServeHTTP(w, r)
			return
		}
		writeError(w, http.StatusNotFound, "no such endpoint")
		return
	}
	cors(w, r)
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	case http.MethodGet:
		// Old clients send GET with ?data=; accept it like a form body.
		if r.URL.Query().Get("data") == "" {
			writeError(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
	default:
		writeError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	c.capture(w, r, rt)
}

// cors lets pages on other origins send events, as PostHog's capture does.
func cors(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if o := r.Header.Get("Origin"); o != "" {
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Add("Vary", "Origin")
	} else {
		h.Set("Access-Control-Allow-Origin", "*")
	}
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, Content-Encoding")
		h.Set("Access-Control-Max-Age", "86400")
	}
}

// recordingBodyFactor is how much larger than max_body a recording's body
// may be.
const recordingBodyFactor = 8

func (c *Collector) capture(w http.ResponseWriter, r *http.Request, rt route) {
	start := c.now()
	defer func() { c.metrics.Observe(time.Since(start)) }()
	// The site comes from the configuration only: a request's Host never
	// makes a site (or a metric series).
	site := c.cfg.Site
	ip := c.clientIP(r)
	if !c.limiter.allow(ip, start) {
		c.metrics.Rejected(site, ReasonRateLimit, 1)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "rate limited")
		return
	}

	limit := c.cfg.MaxBody
	if rt == routeRecording {
		// A full snapshot of a large page is one rrweb event that cannot be
		// split; recordings get room for it.
		limit *= recordingBodyFactor
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if int64(buf.Cap()) <= 2*c.cfg.MaxBody { // a recording's big buffer is not kept
			bufPool.Put(buf)
		}
	}()
	var body []byte
	if r.Method == http.MethodGet {
		buf.WriteString("data=" + r.URL.Query().Get("data"))
	} else if err := readBody(r, limit, buf); err != nil {
		c.failBody(w, err)
		return
	}
	body = buf.Bytes()
	js, err := decodeBody(r, body, limit)
	if err != nil {
		c.failBody(w, err)
		return
	}

	var p payload
	if rt == routeEngage {
		p, err = parseEngage(repairUTF8(js), start)
	} else {
		p, err = parsePayload(js)
	}
	defer p.index.release() // the events' Results point into js, not into it
	if err != nil {
		c.failBody(w, err)
		return
	}

	if c.cfg.RespectDNT && (r.Header.Get("DNT") == "1" || r.Header.Get("Sec-GPC") == "1") {
		// The browser asked not to be tracked: it gets the answer it
		// expects, and nothing of it is kept.
		c.metrics.Rejected(site, ReasonDNT, len(p.events))
		writeJSON(w, http.StatusOK, okBody)
		return
	}
	v := visitor{ip: ip, ua: r.UserAgent()}
	v.device, v.bot = c.ua.Parse(v.ua)
	dc := c.datacenter != nil && ip.IsValid() && c.datacenter(ip)
	if v.bot {
		// Bots get the answer they expect and are only counted.
		c.metrics.Rejected(site, ReasonBot, len(p.events))
		writeJSON(w, http.StatusOK, okBody)
		return
	}
	bearer := ""
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		bearer = strings.TrimSpace(a[7:])
	}

	results := make([]incoming, len(p.events))
	var events []*store.Event
	var firstBad *incoming
	rejected := map[string]int{}
	truncated := 0
	slab := newPropSlab(len(js)/24 + enrichRoom)
	// Nothing keeps an event's properties past the request: the store
	// copies what it keeps before Append returns (their strings point into
	// the pooled body buffer too).
	defer slab.release()
	for i, e := range p.events {
		in := parseEvent(e, &p, start, slab, &c.cfg.Limits)
		if in.reason == "" && c.cfg.Token != "" {
			tok := in.token
			if tok == "" {
				tok = bearer
			}
			if tok != c.cfg.Token {
				in = reject(ReasonToken, "wrong token")
			}
		}
		results[i] = in
		if in.reason != "" {
			rejected[in.reason]++
			if firstBad == nil {
				firstBad = &results[i]
			}
			continue
		}
		in.ev.Site = site
		truncated += in.cut
		if in.ev.DistinctID == CookielessID {
			if err := c.cookieless(in.ev, &v, start); err != nil {
				c.metrics.Rejected(site, ReasonUnavailable, len(p.events))
				w.Header().Set("Retry-After", "1")
				writeError(w, http.StatusServiceUnavailable, "storage unavailable, retry later")
				return
			}
		}
		c.enrich.enrich(in.ev, &v, in.geoDisable)
		if dc {
			in.ev.Props.Set(store.Datacenter, store.Value{Kind: store.KindTrue})
		}
		events = append(events, in.ev)
	}
	for reason, n := range rejected {
		c.metrics.Rejected(site, reason, n)
	}
	if truncated > 0 {
		c.metrics.Truncated(site, truncated)
	}
	if len(events) == 0 {
		status := http.StatusBadRequest
		if rejected[ReasonToken] > 0 {
			status = http.StatusUnauthorized
		}
		writeError(w, status, firstBad.detail)
		return
	}

	// A client that goes away still gets its events committed: the store
	// finishes a commit it has started.
	ctx := context.WithoutCancel(r.Context())
	events, snaps := splitSnapshots(events)
	snaps = c.capRecordings(site, snaps)
	var outcomes []store.Outcome
	if len(snaps) > 0 {
		err = c.store.AppendSnapshots(ctx, site, snaps)
	}
	if err == nil && len(events) > 0 {
		outcomes, err = c.store.Append(ctx, events)
	}
	if err != nil {
		c.metrics.Rejected(site, ReasonUnavailable, len(events)+len(snaps))
		w.Header().Set("Retry-After", "1")
		if errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrClosed) {
			writeError(w, http.StatusServiceUnavailable, "storage unavailable, retry later")
			return
		}
		writeError(w, http.StatusInternalServerError, "storage error")
		return
	}
	if len(snaps) > 0 {
		c.metrics.Stored(site, "snapshot", len(snaps))
	}
	kinds := map[string]int{}
	dups := 0
	for i, ev := range events {
		if outcomes[i] == store.Duplicate {
			dups++
			continue
		}
		kinds[eventKind(ev.Name)]++
	}
	for k, n := range kinds {
		c.metrics.Stored(site, k, n)
	}
	if dups > 0 {
		c.metrics.Rejected(site, ReasonDuplicate, dups)
	}
	if rt != routeV1 {
		writeJSON(w, http.StatusOK, okBody)
		return
	}
	dup := make(map[*store.Event]bool, dups)
	for i, ev := range events {
		if outcomes[i] == store.Duplicate {
			dup[ev] = true
		}
	}
	writeJSON(w, http.StatusOK, v1Answer(results, dup))
}

var okBody = []byte(`{"status":1}`)

// v1Answer is the answer of /i/v1/analytics/events: the status and one
// result per event of the batch, in order.
func v1Answer(results []incoming, dup map[*store.Event]bool) []byte {
	b := []byte(`{"status":1,"results":[`)
	for i, in := range results {
		if i > 0 {
			b = append(b, ',')
		}
		if in.reason != "" {
			b = append(b, `{"status":"rejected","reason":`...)
			b = store.AppendJSONString(b, in.reason)
			b = append(b, `,"error":`...)
			b = store.AppendJSONString(b, in.detail)
			b = append(b, '}')
			continue
		}
		status := "ok"
		if dup[in.ev] {
			status = "duplicate"
		}
		b = append(b, `{"status":"`...)
		b = append(b, status...)
		b = append(b, `","uuid":`...)
		b = store.AppendJSONString(b, in.ev.UUID)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

func (c *Collector) failBody(w http.ResponseWriter, err error) {
	if errors.Is(err, errTooLarge) {
		c.metrics.Rejected(c.cfg.Site, ReasonTooLarge, 1)
		writeError(w, http.StatusRequestEntityTooLarge, "body larger than max_body")
		return
	}
	c.metrics.Rejected(c.cfg.Site, ReasonBadBody, 1)
	writeError(w, http.StatusBadRequest, err.Error())
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b := []byte(`{"status":0,"error":`)
	b = store.AppendJSONString(b, msg)
	writeJSON(w, status, append(b, '}'))
}

// parseEngage reads /engage/ bodies, person updates of the form
// {"$distinct_id", "$token", "$set" | "$set_once" | "$unset"} (one or an
// array), as `$set` events.
func parseEngage(js []byte, now time.Time) (payload, error) {
	var p payload
	if err := checkJSON(js); err != nil {
		return p, err
	}
	root := gjson.Parse(unsafeString(js))
	var items []gjson.Result
	switch {
	case root.IsArray():
		items = root.Array()
	case root.IsObject():
		if b := root.Get("batch"); b.IsArray() {
			items = b.Array()
			p.apiKey = firstString(root, "api_key", "token")
		} else {
			items = []gjson.Result{root}
		}
	default:
		return p, badf("body must be a JSON object or array")
	}
	if len(items) == 0 || len(items) > maxBatch {
		return p, badf("engage body must hold 1 to %d updates", maxBatch)
	}
	for _, it := range items {
		if !it.IsObject() {
			p.events = append(p.events, it)
			continue
		}
		// Rewrite as an event: {"event":"$set","distinct_id":...,"token":...,
		// "timestamp":..., "$set":..., "$set_once":..., "$unset":...}.
		b := []byte(`{"event":"$set"`)
		for _, k := range [...][2]string{{"$distinct_id", "distinct_id"}, {"distinct_id", "distinct_id"}, {"$token", "token"}, {"token", "token"}, {"api_key", "token"}, {"$set", "$set"}, {"$set_once", "$set_once"}, {"$unset", "$unset"}, {"timestamp", "timestamp"}} {
			if v := it.Get(gjsonKey(k[0])); v.Exists() {
				b = append(b, ',')
				b = store.AppendJSONString(b, k[1])
				b = append(b, ':')
				b = append(b, v.Raw...)
			}
		}
		b = append(b, '}')
		p.events = append(p.events, gjson.ParseBytes(b))
	}
	return p, nil
}
