package collector

import (
	"net/netip"
	"net/url"
	"strings"

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
	u, err := url.Parse(raw)
	if err != nil {
		return
	}
	setIfSome(ps, "$host", u.Host)
	if _, ok := ps.Get("$pathname"); !ok {
		p := u.Path
		if p == "" && u.Host != "" {
			p = "/"
		}
		setIfSome(ps, "$pathname", p)
	}
	if u.RawQuery == "" || !strings.Contains(u.RawQuery, "utm_") {
		return
	}
	q := u.Query()
	for _, k := range utmKeys {
		setIfSome(ps, k, q.Get(k))
	}
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
