package collector

import (
	"net/netip"
	"net/url"
	"strings"
	"sync"

	"github.com/firstpartyhq/firstparty/store"
)

// visitor is what the request says about who sent it, worked out once per
// request and shared by its events.
type visitor struct {
	ip     netip.Addr
	ua     string
	device Device
	bot    bool

	geo     GeoInfo
	geoDone bool
}

// enricher adds the properties PostHog's ingestion adds, under PostHog's
// names. Values the client already sent are kept.
type enricher struct {
	geo     *GeoLookup
	storeIP bool
	// urls remembers what fromURL read from recent page URLs; nil reads
	// every URL.
	urls *urlCache
}

func (e *enricher) enrich(ev *store.Event, v *visitor, geoDisable bool) {
	ps := &ev.Props
	if cur := ps.Str("$current_url"); cur != "" {
		e.fromURL(ps, cur)
		if _, ok := ps.Get("$referring_domain"); !ok {
			ps.Set("$referring_domain", store.StringValue(referringDomain(ps.Str("$referrer"))))
		}
	}
	if _, ok := ps.Get("$browser"); !ok && v.device.Browser != "" {
		setIfSome(ps, "$browser", v.device.Browser)
		setIfSome(ps, "$browser_version", v.device.BrowserVersion)
		setIfSome(ps, "$os", v.device.OS)
		setIfSome(ps, "$os_version", v.device.OSVersion)
		setIfSome(ps, "$device_type", v.device.DeviceType)
	}
	if !geoDisable && e.geo != nil && v.ip.IsValid() {
		if !v.geoDone {
			v.geo = e.geo.Lookup(v.ip)
			v.geoDone = true
		}
		setIfSome(ps, "$geoip_country_code", v.geo.CountryCode)
		setIfSome(ps, "$geoip_country_name", v.geo.CountryName)
		setIfSome(ps, "$geoip_city_name", v.geo.CityName)
		setIfSome(ps, "$geoip_subdivision_1_code", v.geo.Subdivision1Code)
		setIfSome(ps, "$geoip_continent_code", v.geo.ContinentCode)
	}
	if e.storeIP && v.ip.IsValid() {
		ps.Set("$ip", store.StringValue(v.ip.String()))
	} else {
		ps.Delete("$ip")
	}
}

func setIfSome(ps *store.Props, k, v string) {
	if v != "" {
		ps.SetIfMissing(k, store.StringValue(v))
	}
}

var utmKeys = [...]string{"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"}

// fromURL adds $host, $pathname and the UTM parameters of $current_url.
func (e *enricher) fromURL(ps *store.Props, raw string) {
	f, ok := e.urls.get(raw)
	if !ok {
		f = readURL(raw)
		e.urls.put(raw, &f)
	}
	if !f.ok {
		return
	}
	setIfSome(ps, "$host", f.host)
	if _, ok := ps.Get("$pathname"); !ok {
		setIfSome(ps, "$pathname", f.path)
	}
	for i, k := range utmKeys {
		setIfSome(ps, k, f.utm[i])
	}
}

// urlFacts is what fromURL takes from a URL.
type urlFacts struct {
	ok         bool // the URL parses
	host, path string
	utm        [len(utmKeys)]string
}

func readURL(raw string) urlFacts {
	u, err := url.Parse(raw)
	if err != nil {
		return urlFacts{}
	}
	f := urlFacts{ok: true, host: u.Host, path: u.Path}
	if f.path == "" && u.Host != "" {
		f.path = "/"
	}
	if u.RawQuery == "" || !strings.Contains(u.RawQuery, "utm_") {
		return f
	}
	q := u.Query()
	for i, k := range utmKeys {
		f.utm[i] = q.Get(k)
	}
	return f
}

// urlCache maps recent page URLs to their facts: a page's URL comes back
// with most of its events. It holds at most 2 × urlCacheSize URLs of at
// most maxCachedURL bytes, in two generations: when the current one is
// full it becomes the previous one, whose URLs are dropped (counted).
type urlCache struct {
	mu        sync.Mutex
	cur, prev map[string]*urlFacts
	dropped   int // URLs forgotten when a generation was dropped
}

const (
	urlCacheSize = 2048
	maxCachedURL = 256
)

func newURLCache() *urlCache { return &urlCache{cur: make(map[string]*urlFacts)} }

func (c *urlCache) get(raw string) (urlFacts, bool) {
	if c == nil || len(raw) > maxCachedURL {
		return urlFacts{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.cur[raw]; ok {
		return *f, true
	}
	if f, ok := c.prev[raw]; ok {
		c.insert(strings.Clone(raw), f)
		return *f, true
	}
	return urlFacts{}, false
}

// put remembers f for raw. Its strings may point into a request's buffer:
// the cache keeps copies.
func (c *urlCache) put(raw string, f *urlFacts) {
	if c == nil || len(raw) > maxCachedURL {
		return
	}
	k := *f
	k.host, k.path = strings.Clone(k.host), strings.Clone(k.path)
	for i := range k.utm {
		k.utm[i] = strings.Clone(k.utm[i])
	}
	*f = k // the event gets the copies too: one set of strings for both
	c.mu.Lock()
	defer c.mu.Unlock()
	c.insert(strings.Clone(raw), &k)
}

// insert adds raw (a key the cache may keep) to the current generation.
func (c *urlCache) insert(raw string, f *urlFacts) {
	if len(c.cur) >= urlCacheSize {
		c.dropped += len(c.prev)
		c.prev, c.cur = c.cur, make(map[string]*urlFacts, urlCacheSize)
	}
	c.cur[raw] = f
}

// referringDomain is the host of a referrer URL, or "$direct" for none (the
// value posthog-js uses).
func referringDomain(ref string) string {
	if ref == "" || ref == "$direct" {
		return "$direct"
	}
	u, err := url.Parse(ref)
	if err != nil || u.Host == "" {
		return "$direct"
	}
	return u.Host
}
