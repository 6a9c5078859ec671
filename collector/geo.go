package collector

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/oschwald/geoip2-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/firstpartyhq/firstparty/collector/geodata"
)

// GeoInfo is what a client IP tells about where a visitor is. Empty fields are unknown.
type GeoInfo struct {
	CountryCode      string // ISO 3166-1 alpha-2, upper case, e.g. "DE"
	CountryName      string // English name, e.g. "Germany"
	CityName         string
	Subdivision1Code string // e.g. "BE"
	ContinentCode    string // e.g. "EU"
}

// geoKind is the shape of a database's records.
type geoKind uint8

const (
	geoCity    geoKind = iota + 1 // GeoIP2 City shape: country, continent, city, subdivisions
	geoCountry                    // GeoIP2 Country shape: country, continent
	geoFlat                       // {"country_code": "DE"}, as in the embedded database
)

// GeoLookup resolves IPs. Safe for concurrent use.
type GeoLookup struct {
	kind geoKind
	// Exactly one of the readers is set: g2 for the GeoIP2/GeoLite2 database
	// types that geoip2-golang knows, mm for the embedded database and for
	// other MaxMind DB files (DB-IP, ip-location-db, ...) of a known shape.
	g2 *geoip2.Reader
	mm *maxminddb.Reader

	// mu keeps Close from unmapping a file while a Lookup reads it.
	mu     sync.RWMutex
	closed bool
}

// OpenGeo opens the GeoIP2/GeoLite2 City or Country database at path (via
// github.com/oschwald/geoip2-golang), or, when path is "", the embedded
// country database (flat records {"country_code": "DE"}, read with
// github.com/oschwald/maxminddb-golang). A bad path or file is an error that
// names the path.
//
// A MaxMind DB file whose type geoip2-golang does not know is accepted too
// when its records have the City, Country or flat country_code shape.
func OpenGeo(path string) (*GeoLookup, error) {
	if path == "" {
		mm, err := maxminddb.OpenBytes(geodata.Country)
		if err != nil {
			return nil, fmt.Errorf("geoip: embedded database: %w", err)
		}
		return &GeoLookup{kind: geoFlat, mm: mm}, nil
	}

	g2, err := geoip2.Open(path)
	if err == nil {
		kind := kindFromType(g2.Metadata().DatabaseType)
		if kind == 0 {
			dbType := g2.Metadata().DatabaseType
			_ = g2.Close()
			return nil, fmt.Errorf("geoip: database %s: type %q is not a City or Country database", path, dbType)
		}
		return &GeoLookup{kind: kind, g2: g2}, nil
	}
	var unknown geoip2.UnknownDatabaseTypeError
	if !errors.As(err, &unknown) {
		return nil, fmt.Errorf("geoip: open database %s: %w", path, err)
	}
	if g2 != nil {
		_ = g2.Close()
	}

	// Not a GeoIP2 type name: look at what the records hold.
	mm, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("geoip: open database %s: %w", path, err)
	}
	kind := kindFromRecords(mm)
	if kind == 0 {
		_ = mm.Close()
		return nil, fmt.Errorf("geoip: database %s: type %q holds neither country nor city records", path, unknown.DatabaseType)
	}
	return &GeoLookup{kind: kind, mm: mm}, nil
}

// kindFromType reads a GeoIP2 database type name such as "GeoLite2-City",
// "GeoIP2-Enterprise" or "DBIP-Country-Lite".
func kindFromType(dbType string) geoKind {
	t := strings.ToLower(dbType)
	switch {
	case strings.Contains(t, "city"), strings.Contains(t, "enterprise"):
		return geoCity
	case strings.Contains(t, "country"):
		return geoCountry
	}
	return 0
}

// kindFromRecords tells the shape of a database by the keys of its first
// records, falling back on the type name to tell City from Country.
func kindFromRecords(mm *maxminddb.Reader) geoKind {
	const probe = 64
	seen := 0
	for res := range mm.Networks() {
		if seen++; seen > probe {
			break
		}
		var rec map[string]any
		if res.Decode(&rec) != nil {
			continue
		}
		if _, ok := rec["country_code"]; ok {
			return geoFlat
		}
		if _, ok := rec["city"]; ok {
			return geoCity
		}
		for _, k := range [...]string{"country", "registered_country", "continent"} {
			if _, ok := rec[k]; ok {
				if kindFromType(mm.Metadata.DatabaseType) == geoCity {
					return geoCity
				}
				return geoCountry
			}
		}
	}
	return 0
}

// flatRecord is the record of the embedded database.
type flatRecord struct {
	CountryCode string `maxminddb:"country_code"`
}

// Lookup returns what the database knows about ip. It never panics; a
// private, loopback, link-local, unspecified, multicast or invalid address,
// an address the database does not hold, and a closed or nil GeoLookup all
// give the zero GeoInfo.
func (g *GeoLookup) Lookup(ip netip.Addr) (info GeoInfo) {
	if g == nil {
		return GeoInfo{}
	}
	ip = ip.Unmap().WithZone("")
	if !geoRoutable(ip) {
		return GeoInfo{}
	}
	defer func() {
		if recover() != nil {
			info = GeoInfo{}
		}
	}()

	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return GeoInfo{}
	}

	switch {
	case g.kind == geoFlat:
		var rec flatRecord
		if g.mm.Lookup(ip).Decode(&rec) != nil {
			return GeoInfo{}
		}
		info.CountryCode = rec.CountryCode
	case g.g2 != nil && g.kind == geoCity:
		rec, err := g.g2.City(ip)
		if err != nil || rec == nil {
			return GeoInfo{}
		}
		info = fromCity(rec)
	case g.g2 != nil:
		rec, err := g.g2.Country(ip)
		if err != nil || rec == nil {
			return GeoInfo{}
		}
		info = fromCountry(rec)
	case g.kind == geoCity:
		var rec geoip2.City
		if g.mm.Lookup(ip).Decode(&rec) != nil {
			return GeoInfo{}
		}
		info = fromCity(&rec)
	default:
		var rec geoip2.Country
		if g.mm.Lookup(ip).Decode(&rec) != nil {
			return GeoInfo{}
		}
		info = fromCountry(&rec)
	}
	return completeGeo(info)
}

func fromCity(rec *geoip2.City) GeoInfo {
	info := GeoInfo{
		CountryCode:   rec.Country.ISOCode,
		CountryName:   rec.Country.Names.English,
		CityName:      rec.City.Names.English,
		ContinentCode: rec.Continent.Code,
	}
	if len(rec.Subdivisions) > 0 {
		info.Subdivision1Code = rec.Subdivisions[0].ISOCode
	}
	if info.CountryCode == "" {
		// Some networks (anycast, satellite, some mobile ranges) carry only
		// the country they are registered in.
		info.CountryCode = rec.RegisteredCountry.ISOCode
		info.CountryName = rec.RegisteredCountry.Names.English
	}
	return info
}

func fromCountry(rec *geoip2.Country) GeoInfo {
	info := GeoInfo{
		CountryCode:   rec.Country.ISOCode,
		CountryName:   rec.Country.Names.English,
		ContinentCode: rec.Continent.Code,
	}
	if info.CountryCode == "" {
		info.CountryCode = rec.RegisteredCountry.ISOCode
		info.CountryName = rec.RegisteredCountry.Names.English
	}
	return info
}

// completeGeo normalises the country code and fills the country name and
// continent from the code where the database left them out. A region code
// that is no country (AP, EU) becomes just a continent.
func completeGeo(info GeoInfo) GeoInfo {
	if info.CountryCode == "" {
		return info
	}
	code := info.CountryCode
	if len(code) == 2 && (code[0] >= 'a' && code[0] <= 'z' || code[1] >= 'a' && code[1] <= 'z') {
		code = strings.ToUpper(code)
	}
	c, ok := lookupCountry(code)
	if !ok {
		if cont, isRegion := regionContinents[code]; isRegion {
			info.CountryCode, info.CountryName = "", ""
			if info.ContinentCode == "" {
				info.ContinentCode = cont
			}
			return info
		}
		info.CountryCode = code
		return info
	}
	info.CountryCode = c.code // the table's string: no copy of the record's is kept
	if info.CountryName == "" {
		info.CountryName = c.name
	}
	if info.ContinentCode == "" {
		info.ContinentCode = c.continent
	}
	return info
}

// cgnat is the shared address space of RFC 6598 (carrier-grade NAT).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// geoRoutable reports whether ip is worth looking up: a valid global unicast
// address that is not private, loopback, link-local or shared.
func geoRoutable(ip netip.Addr) bool {
	return ip.IsValid() && ip.IsGlobalUnicast() && !ip.IsPrivate() && !cgnat.Contains(ip)
}

// Close releases the database. Lookups after Close give the zero GeoInfo.
func (g *GeoLookup) Close() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	if g.g2 != nil {
		return g.g2.Close()
	}
	if g.mm != nil {
		return g.mm.Close()
	}
	return nil
}
