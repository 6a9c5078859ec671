package collector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// What only the server sees (SPEC §8): the module tells the collector about
// the responses worth keeping — pages (server pageviews), downloads, feed
// fetches — and the collector stores them as events in the background, so
// a page never waits for the store.

// ServerHit is one response the module saw.
type ServerHit struct {
	// Event is store.ServerPageview, store.Download or store.FeedFetch.
	Event string
	// Status is the response status.
	Status int
	// ServerMs is the time from the request to the first byte of the
	// response of the handler behind, in milliseconds.
	ServerMs float64
	// Ref is the $pageview_ref written into the page's snippet tag; the
	// snippet's pageview echoes it.
	Ref string
}

// CookielessID is the distinct id posthog-js (cookieless mode) and the
// snippet (persistence none) send; the server puts its own daily id in its
// place.
const CookielessID = "$posthog_cookieless"

const (
	// serverQueue bounds the server events waiting for the store; beyond
	// it they are dropped and counted (reason overload).
	serverQueue = 8192
	serverBatch = 2048
	// serverLinger is how long the first queued event waits for others:
	// nobody waits for these events, and one commit of many costs far less
	// than many of one.
	serverLinger = 500 * time.Millisecond
	// sessionGap ends a server-made session.
	sessionGap = 30 * time.Minute
	// maxServerSessions bounds the open sessions remembered.
	maxServerSessions = 1 << 17

	ReasonOverload = "overload"
	ReasonPrefetch = "prefetch"
)

// serverSide is the collector's state for server events and cookieless ids.
type serverSide struct {
	once  sync.Once
	queue chan *serverRaw
	// full tells the shipper a batch is waiting, so it need not wait for
	// the linger to end. The shipper sleeps through its linger and is
	// woken once per batch, not once per event.
	full chan struct{}
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	sessions map[string]serverSession
}

type serverSession struct {
	id   string
	last time.Time
}

// serverRaw is what ServerHit takes from a request: the raw facts, copied
// on the request's goroutine. The shipper makes the event of it (ids,
// session, properties, enrichment) in the background, so a page pays only
// for the copy.
type serverRaw struct {
	hit     ServerHit
	now     time.Time
	ip      netip.Addr
	ua      string
	device  Device
	host    string
	url     url.URL // the request's, for $pathname, UTM and $current_url
	referer string
	https   bool
}

// ServerHit stores what the server saw of r, unless r is a bot's, a
// prefetch, or from a browser asking not to be tracked. It never blocks.
func (c *Collector) ServerHit(r *http.Request, hit ServerHit) {
	site := c.cfg.Site
	if isPrefetch(r) {
		return
	}
	if c.cfg.RespectDNT && (r.Header.Get("DNT") == "1" || r.Header.Get("Sec-GPC") == "1") {
		c.metrics.Rejected(site, ReasonDNT, 1)
		return
	}
	raw := &serverRaw{hit: hit, now: c.now(), ip: c.clientIP(r), ua: r.UserAgent(), host: r.Host, url: *r.URL, referer: r.Referer(), https: r.TLS != nil}
	var bot bool
	raw.device, bot = c.ua.Parse(raw.ua) // cached: the same few strings make most traffic
	if bot && hit.Event != store.FeedFetch {
		c.metrics.Rejected(site, ReasonBot, 1)
		return
	}
	c.server.once.Do(c.startServer)
	select {
	case c.server.queue <- raw:
		if len(c.server.queue) >= serverBatch {
			select {
			case c.server.full <- struct{}{}:
			default:
			}
		}
	default:
		c.metrics.Rejected(site, ReasonOverload, 1)
	}
}

// serverProps is the room the properties of one server event take: its
// own (at most 15), enrichment's (11), $current_url and $datacenter.
const serverProps = 28

// serverEvent makes the event of a server hit (nil when the store cannot
// give the day's salt: dropped, counted).
func (c *Collector) serverEvent(raw *serverRaw) *store.Event {
	site := c.cfg.Site
	hit := &raw.hit
	v := visitor{ip: raw.ip, ua: raw.ua, device: raw.device}
	did, err := c.visitorID(v.ip, v.ua, raw.now)
	if err != nil {
		c.metrics.Rejected(site, ReasonUnavailable, 1)
		return nil
	}
	ev := &store.Event{Site: site, Name: hit.Event, DistinctID: did, Time: raw.now.UnixMilli()}
	ps := make(store.Props, 0, serverProps)
	// What enrichment would read back from $current_url, set directly:
	// parsing the URL we just built is a good part of the cost.
	path := raw.url.Path
	if path == "" {
		path = "/"
	}
	ps = append(ps,
		store.Prop{Key: "$lib", Val: store.StringValue("server")},
		store.Prop{Key: "$status", Val: store.Value{Kind: store.KindNumber, S: strconv.Itoa(hit.Status)}},
		store.Prop{Key: "$server_ms", Val: store.Value{Kind: store.KindNumber, S: strconv.FormatFloat(hit.ServerMs, 'f', 1, 64)}},
		store.Prop{Key: "$host", Val: store.StringValue(raw.host)},
		store.Prop{Key: "$pathname", Val: store.StringValue(cutUTF8(path, c.cfg.Limits.Value))},
	)
	if q := raw.url.RawQuery; q != "" && strings.Contains(q, "utm_") {
		vals := raw.url.Query()
		for _, k := range utmKeys {
			if v := vals.Get(k); v != "" {
				ps = append(ps, store.Prop{Key: k, Val: store.StringValue(cutUTF8(v, c.cfg.Limits.Value))})
			}
		}
	}
	ref := raw.referer
	if ref != "" {
		ps = append(ps, store.Prop{Key: "$referrer", Val: store.StringValue(cutUTF8(ref, c.cfg.Limits.Value*longValueFactor))})
	}
	ps = append(ps, store.Prop{Key: "$referring_domain", Val: store.StringValue(referringDomain(ref))})
	if hit.Ref != "" {
		ps = append(ps, store.Prop{Key: store.PageviewRef, Val: store.StringValue(hit.Ref)})
	}
	if hit.Event == store.FeedFetch {
		ps = append(ps, store.Prop{Key: store.FeedReader, Val: store.StringValue(feedReader(v.ua))})
		if n := store.FeedSubscribersOf(v.ua); n >= 0 {
			ps = append(ps, store.Prop{Key: store.FeedSubscribers, Val: store.Value{Kind: store.KindNumber, S: strconv.Itoa(n)}})
		}
	} else {
		ps = append(ps, store.Prop{Key: "$session_id", Val: store.StringValue(c.serverSession(did, raw.now))})
	}
	ev.Props = ps
	c.enrich.enrich(ev, &v, false)
	// After enrichment, which would parse it again.
	scheme := "http"
	if raw.https {
		scheme = "https"
	}
	ev.Props = append(ev.Props, store.Prop{Key: "$current_url", Val: store.StringValue(cutUTF8(scheme+"://"+raw.host+raw.url.RequestURI(), c.cfg.Limits.Value*longValueFactor))})
	if c.datacenter != nil && v.ip.IsValid() && c.datacenter(v.ip) {
		ev.Props.Set(store.Datacenter, store.Value{Kind: store.KindTrue})
	}
	return ev
}

// isPrefetch reports a speculative load, which is no visit.
func isPrefetch(r *http.Request) bool {
	for _, h := range [...]string{"Sec-Purpose", "Purpose", "X-Purpose", "X-Moz"} {
		if v := strings.ToLower(r.Header.Get(h)); strings.Contains(v, "prefetch") || strings.Contains(v, "prerender") || v == "preview" {
			return true
		}
	}
	return false
}

// feedReader names a feed reader from its User-Agent: the product before
// the first "/", "(" or " - ".
func feedReader(ua string) string {
	name := ua
	for _, sep := range [...]string{"/", "(", " - ", ";"} {
		if i := strings.Index(name, sep); i > 0 {
			name = name[:i]
		}
	}
	name = strings.TrimSpace(name)
	if len(name) > 64 {
		name = cutUTF8(name, 64)
	}
	return name
}

// visitorID is the cookieless id of a visitor: a hash of the site, the
// client address, the User-Agent and the salt of the day, so it is the same
// within a UTC day and cannot be linked across days (SPEC §8).
func (c *Collector) visitorID(ip netip.Addr, ua string, now time.Time) (string, error) {
	salt, err := c.store.DaySalt(now.UTC().Unix() / 86400)
	if err != nil {
		return "", err
	}
	var buf [512]byte
	b := append(buf[:0], salt...)
	b = append(b, c.cfg.Site...)
	b = append(b, 0)
	b = append(b, ip.AsSlice()...)
	b = append(b, 0)
	b = append(b, ua...)
	sum := sha256.Sum256(b)
	var out [2 + 24]byte
	out[0], out[1] = 'c', '_'
	hex.Encode(out[2:], sum[:12])
	return string(out[:]), nil
}

// serverSession returns the session of a server-identified visitor: the
// same id while events come less than 30 minutes apart.
func (c *Collector) serverSession(did string, now time.Time) string {
	s := &c.server
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions == nil {
		s.sessions = make(map[string]serverSession)
	}
	cur, ok := s.sessions[did]
	if !ok || now.Sub(cur.last) > sessionGap || now.Before(cur.last.Add(-sessionGap)) {
		if !ok && len(s.sessions) >= maxServerSessions {
			for k, v := range s.sessions {
				if now.Sub(v.last) > sessionGap {
					delete(s.sessions, k)
				}
			}
			if len(s.sessions) >= maxServerSessions {
				clear(s.sessions)
			}
		}
		sum := sha256.Sum256([]byte(did + "\x00" + strconv.FormatInt(now.UnixNano(), 10)))
		cur.id = "s_" + hex.EncodeToString(sum[:12])
	}
	if now.After(cur.last) {
		cur.last = now
	}
	s.sessions[did] = cur
	return cur.id
}

// cookieless gives an event sent with the cookieless id the server's id
// and session.
func (c *Collector) cookieless(ev *store.Event, v *visitor, now time.Time) error {
	did, err := c.visitorID(v.ip, v.ua, now)
	if err != nil {
		return err
	}
	ev.DistinctID = did
	ev.Props.Delete("$device_id")
	if ev.Props.Str("$session_id") == "" {
		ev.Props.Set("$session_id", store.StringValue(c.serverSession(did, now)))
	}
	return nil
}

func (c *Collector) startServer() {
	s := &c.server
	s.queue = make(chan *serverRaw, serverQueue)
	s.full = make(chan struct{}, 1)
	s.stop = make(chan struct{})
	s.done = make(chan struct{})
	go c.shipServer()
}

// shipServer makes the events of queued server hits and commits them in
// batches.
func (c *Collector) shipServer() {
	s := &c.server
	defer close(s.done)
	batch := make([]*store.Event, 0, serverBatch)
	add := func(raw *serverRaw) {
		if ev := c.serverEvent(raw); ev != nil {
			batch = append(batch, ev)
		}
	}
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if _, err := c.store.Append(context.Background(), batch); err != nil {
			c.metrics.Rejected(c.cfg.Site, ReasonUnavailable, len(batch))
		} else {
			kinds := map[string]int{}
			for _, ev := range batch {
				kinds[eventKind(ev.Name)]++
			}
			for k, n := range kinds {
				c.metrics.Stored(c.cfg.Site, k, n)
			}
		}
		clear(batch)
		batch = batch[:0]
	}
	for {
		select {
		case raw := <-s.queue:
			// Let what comes within the linger gather in the queue, up
			// to a batch, then take it.
			linger := time.NewTimer(serverLinger)
			if len(s.queue) < serverBatch-1 {
				select {
				case <-linger.C:
				case <-s.full:
				case <-s.stop:
				}
			}
			linger.Stop()
			add(raw)
		take:
			for n := 1; n < serverBatch; n++ {
				select {
				case raw := <-s.queue:
					add(raw)
				default:
					break take
				}
			}
			select { // a signal for what was just taken
			case <-s.full:
			default:
			}
			flush()
		case <-s.stop:
			for {
				select {
				case raw := <-s.queue:
					add(raw)
					if len(batch) == serverBatch {
						flush()
					}
				default:
					flush()
					return
				}
			}
		}
	}
}

// Close stores the server events still queued and stops.
func (c *Collector) Close() {
	s := &c.server
	started := false
	s.once.Do(func() {}) // no start after Close
	if s.stop != nil {
		started = true
	}
	if started {
		select {
		case <-s.stop:
		default:
			close(s.stop)
		}
		<-s.done
	}
}
