package collector

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/firstpartyhq/firstparty/collector/geodata"
)

// names builds a GeoIP2 "names" map with an English and a German name, so
// that a lookup picking the wrong language shows.
func names(en, de string) mmdbtype.Map {
	return mmdbtype.Map{"en": mmdbtype.String(en), "de": mmdbtype.String(de)}
}

func countryRec(iso, en, de string) mmdbtype.Map {
	return mmdbtype.Map{
		"iso_code":   mmdbtype.String(iso),
		"geoname_id": mmdbtype.Uint32(1),
		"names":      names(en, de),
	}
}

func continentRec(code, en, de string) mmdbtype.Map {
	return mmdbtype.Map{"code": mmdbtype.String(code), "geoname_id": mmdbtype.Uint32(2), "names": names(en, de)}
}

// Fixture networks, IPv4 and IPv6. The records are made up; only their shape
// follows GeoIP2.
var (
	berlinRec = mmdbtype.Map{
		"city":      mmdbtype.Map{"geoname_id": mmdbtype.Uint32(2950159), "names": names("Berlin", "Berlin")},
		"continent": continentRec("EU", "Europe", "Europa"),
		"country":   countryRec("DE", "Germany", "Deutschland"),
		"location": mmdbtype.Map{
			"latitude":  mmdbtype.Float64(52.52),
			"longitude": mmdbtype.Float64(13.40),
			"time_zone": mmdbtype.String("Europe/Berlin"),
		},
		"postal":             mmdbtype.Map{"code": mmdbtype.String("10115")},
		"registered_country": countryRec("DE", "Germany", "Deutschland"),
		"subdivisions": mmdbtype.Slice{
			mmdbtype.Map{"iso_code": mmdbtype.String("BE"), "names": names("Land Berlin", "Berlin")},
		},
	}
	oxfordRec = mmdbtype.Map{
		"city":      mmdbtype.Map{"names": names("Oxford", "Oxford")},
		"continent": continentRec("EU", "Europe", "Europa"),
		"country":   countryRec("GB", "United Kingdom", "Vereinigtes Königreich"),
		"subdivisions": mmdbtype.Slice{
			mmdbtype.Map{"iso_code": mmdbtype.String("ENG"), "names": names("England", "England")},
			mmdbtype.Map{"iso_code": mmdbtype.String("OXF"), "names": names("Oxfordshire", "Oxfordshire")},
		},
	}
	sydneyRec = mmdbtype.Map{ // IPv6
		"city":      mmdbtype.Map{"names": names("Sydney", "Sydney")},
		"continent": continentRec("OC", "Oceania", "Ozeanien"),
		"country":   countryRec("AU", "Australia", "Australien"),
		"subdivisions": mmdbtype.Slice{
			mmdbtype.Map{"iso_code": mmdbtype.String("NSW"), "names": names("New South Wales", "Neusüdwales")},
		},
	}
	// registeredOnlyRec has no "country", only where the network is
	// registered, and no continent: the lookup falls back on the registered
	// country and takes the continent from the table.
	registeredOnlyRec = mmdbtype.Map{
		"registered_country": countryRec("JP", "Japan", "Japan"),
	}
)

var fixtureNetworks = []struct {
	cidr string
	rec  mmdbtype.Map
}{
	{"81.2.69.0/24", oxfordRec},
	{"89.160.20.0/24", berlinRec},
	{"2a02:2e0::/32", berlinRec},
	{"2402:4e00::/32", sydneyRec},
	{"175.16.199.0/24", registeredOnlyRec},
}

// countryOnly keeps the fields a GeoIP2 Country record has.
func countryOnly(rec mmdbtype.Map) mmdbtype.Map {
	out := mmdbtype.Map{}
	for _, k := range []mmdbtype.String{"continent", "country", "registered_country", "represented_country", "traits"} {
		if v, ok := rec[k]; ok {
			out[k] = v
		}
	}
	return out
}

// writeMMDB writes a database of the given type to dir and returns its path.
func writeMMDB(t testing.TB, dir, dbType string, recs map[string]mmdbtype.DataType) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, RecordSize: 24, Languages: []string{"en", "de"}})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, rec := range recs {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatalf("insert %s: %v", cidr, err)
		}
	}
	path := filepath.Join(dir, strings.ReplaceAll(dbType, " ", "_")+".mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func cityDB(t testing.TB, dir, dbType string) string {
	recs := map[string]mmdbtype.DataType{}
	for _, n := range fixtureNetworks {
		recs[n.cidr] = n.rec
	}
	return writeMMDB(t, dir, dbType, recs)
}

func countryDB(t testing.TB, dir, dbType string) string {
	recs := map[string]mmdbtype.DataType{}
	for _, n := range fixtureNetworks {
		recs[n.cidr] = countryOnly(n.rec)
	}
	return writeMMDB(t, dir, dbType, recs)
}

func openGeo(t testing.TB, path string) *GeoLookup {
	t.Helper()
	g, err := OpenGeo(path)
	if err != nil {
		t.Fatalf("OpenGeo(%q): %v", path, err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

type geoCase struct {
	ip   string
	want GeoInfo
}

func checkGeo(t *testing.T, g *GeoLookup, cases []geoCase) {
	t.Helper()
	for _, c := range cases {
		if got := g.Lookup(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("Lookup(%s) = %+v, want %+v", c.ip, got, c.want)
		}
	}
}

var (
	wantBerlin = GeoInfo{CountryCode: "DE", CountryName: "Germany", CityName: "Berlin", Subdivision1Code: "BE", ContinentCode: "EU"}
	wantOxford = GeoInfo{CountryCode: "GB", CountryName: "United Kingdom", CityName: "Oxford", Subdivision1Code: "ENG", ContinentCode: "EU"}
	wantSydney = GeoInfo{CountryCode: "AU", CountryName: "Australia", CityName: "Sydney", Subdivision1Code: "NSW", ContinentCode: "OC"}
	wantJapan  = GeoInfo{CountryCode: "JP", CountryName: "Japan", ContinentCode: "AS"}
)

// cityOnlyFields drops what a Country database cannot know.
func cityOnlyFields(g GeoInfo) GeoInfo {
	g.CityName, g.Subdivision1Code = "", ""
	return g
}

func TestOpenGeoCity(t *testing.T) {
	dir := t.TempDir()
	for _, dbType := range []string{"GeoIP2-City", "GeoLite2-City", "DBIP-City-Lite"} {
		t.Run(dbType, func(t *testing.T) {
			g := openGeo(t, cityDB(t, dir, dbType))
			if g.kind != geoCity || g.g2 == nil {
				t.Fatalf("kind %d, geoip2 reader %v: want a City database read by geoip2", g.kind, g.g2 != nil)
			}
			checkGeo(t, g, []geoCase{
				{"81.2.69.142", wantOxford},
				{"89.160.20.112", wantBerlin},
				{"::ffff:89.160.20.112", wantBerlin}, // IPv4-mapped IPv6
				{"2a02:2e0:3fe:1001:302::1", wantBerlin},
				{"2402:4e00:8000::1", wantSydney},
				{"175.16.199.1", wantJapan},
				{"8.8.8.8", GeoInfo{}},           // not in the fixture
				{"2a03:2880::1", GeoInfo{}},      // not in the fixture
				{"127.0.0.1", GeoInfo{}},         // loopback
				{"10.0.0.1", GeoInfo{}},          // private
				{"::1", GeoInfo{}},               // loopback
				{"fe80::1", GeoInfo{}},           // link-local
				{"100.64.1.1", GeoInfo{}},        // carrier-grade NAT
				{"224.0.0.1", GeoInfo{}},         // multicast
				{"0.0.0.0", GeoInfo{}},           // unspecified
				{"fd00::1", GeoInfo{}},           // unique local
				{"255.255.255.255", GeoInfo{}},   // broadcast
				{"2a02:2e0::1%eth0", wantBerlin}, // a zone does not matter
			})
		})
	}
}

func TestOpenGeoCountry(t *testing.T) {
	dir := t.TempDir()
	for _, dbType := range []string{"GeoIP2-Country", "GeoLite2-Country"} {
		t.Run(dbType, func(t *testing.T) {
			g := openGeo(t, countryDB(t, dir, dbType))
			if g.kind != geoCountry || g.g2 == nil {
				t.Fatalf("kind %d, geoip2 reader %v: want a Country database read by geoip2", g.kind, g.g2 != nil)
			}
			checkGeo(t, g, []geoCase{
				{"81.2.69.142", cityOnlyFields(wantOxford)},
				{"89.160.20.112", cityOnlyFields(wantBerlin)},
				{"2a02:2e0::1", cityOnlyFields(wantBerlin)},
				{"2402:4e00::1", cityOnlyFields(wantSydney)},
				{"175.16.199.1", wantJapan},
				{"8.8.8.8", GeoInfo{}},
				{"127.0.0.1", GeoInfo{}},
				{"10.0.0.1", GeoInfo{}},
				{"::1", GeoInfo{}},
			})
		})
	}
}

// A database whose type geoip2-golang does not know is read by the shape of
// its records.
func TestOpenGeoUnknownTypes(t *testing.T) {
	dir := t.TempDir()

	g := openGeo(t, cityDB(t, dir, "Example-Location-Plus"))
	if g.kind != geoCity || g.mm == nil {
		t.Fatalf("city-shaped: kind %d, maxminddb reader %v", g.kind, g.mm != nil)
	}
	checkGeo(t, g, []geoCase{{"89.160.20.1", wantBerlin}, {"2402:4e00::1", wantSydney}, {"175.16.199.1", wantJapan}})

	g = openGeo(t, countryDB(t, dir, "Example-Geo"))
	if g.kind != geoCountry || g.mm == nil {
		t.Fatalf("country-shaped: kind %d, maxminddb reader %v", g.kind, g.mm != nil)
	}
	checkGeo(t, g, []geoCase{{"81.2.69.1", cityOnlyFields(wantOxford)}, {"2a02:2e0::1", cityOnlyFields(wantBerlin)}})

	// Flat records like the embedded database's, under a type name that
	// says "country": the records decide. Lower-case codes and region codes
	// are normalised.
	flat := writeMMDB(t, dir, "country ipvAll", map[string]mmdbtype.DataType{
		"81.2.69.0/24":    mmdbtype.Map{"country_code": mmdbtype.String("GB")},
		"89.160.20.0/24":  mmdbtype.Map{"country_code": mmdbtype.String("de")},
		"2402:4e00::/32":  mmdbtype.Map{"country_code": mmdbtype.String("AP")},
		"175.16.199.0/24": mmdbtype.Map{"country_code": mmdbtype.String("QQ")},
	})
	g = openGeo(t, flat)
	if g.kind != geoFlat {
		t.Fatalf("flat: kind %d", g.kind)
	}
	checkGeo(t, g, []geoCase{
		{"81.2.69.1", GeoInfo{CountryCode: "GB", CountryName: "United Kingdom", ContinentCode: "EU"}},
		{"89.160.20.1", GeoInfo{CountryCode: "DE", CountryName: "Germany", ContinentCode: "EU"}},
		{"2402:4e00::1", GeoInfo{ContinentCode: "AS"}},
		{"175.16.199.1", GeoInfo{CountryCode: "QQ"}}, // unknown code: kept, nothing derived
	})
}

func TestOpenGeoErrors(t *testing.T) {
	dir := t.TempDir()

	missing := filepath.Join(dir, "no-such.mmdb")
	notMMDB := filepath.Join(dir, "not-a-database.mmdb")
	if err := os.WriteFile(notMMDB, []byte("this is not a MaxMind DB file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.mmdb")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	asn := writeMMDB(t, dir, "GeoLite2-ASN", map[string]mmdbtype.DataType{
		"81.2.69.0/24": mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(20712)},
	})
	odd := writeMMDB(t, dir, "Example-Threat-List", map[string]mmdbtype.DataType{
		"81.2.69.0/24": mmdbtype.Map{"score": mmdbtype.Uint32(7)},
	})

	for _, path := range []string{missing, notMMDB, empty, dir, asn, odd} {
		g, err := OpenGeo(path)
		if err == nil {
			_ = g.Close()
			t.Errorf("OpenGeo(%q): no error", path)
			continue
		}
		if g != nil {
			t.Errorf("OpenGeo(%q): non-nil GeoLookup with error %v", path, err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("OpenGeo(%q): error %q does not name the path", path, err)
		}
	}
}

func TestEmbeddedGeo(t *testing.T) {
	g := openGeo(t, "")
	if g.kind != geoFlat {
		t.Fatalf("embedded database: kind %d, want flat", g.kind)
	}
	us := GeoInfo{CountryCode: "US", CountryName: "United States", ContinentCode: "NA"}
	checkGeo(t, g, []geoCase{
		// Public resolvers and long-standing networks whose operators have
		// not moved country.
		{"8.8.8.8", us},              // Google Public DNS
		{"::ffff:8.8.8.8", us},       // the same, IPv4-mapped
		{"2001:4860:4860::8888", us}, // Google Public DNS, IPv6
		{"9.9.9.9", us},              // Quad9 (registered in the US)
		{"193.99.144.80", GeoInfo{CountryCode: "DE", CountryName: "Germany", ContinentCode: "EU"}},      // heise.de
		{"194.25.2.129", GeoInfo{CountryCode: "DE", CountryName: "Germany", ContinentCode: "EU"}},       // Deutsche Telekom DNS
		{"133.242.0.1", GeoInfo{CountryCode: "JP", CountryName: "Japan", ContinentCode: "AS"}},          // SAKURA Internet
		{"200.160.2.3", GeoInfo{CountryCode: "BR", CountryName: "Brazil", ContinentCode: "SA"}},         // NIC.br
		{"81.2.69.142", GeoInfo{CountryCode: "GB", CountryName: "United Kingdom", ContinentCode: "EU"}}, // Andrews & Arnold
		{"41.0.0.1", GeoInfo{CountryCode: "ZA", CountryName: "South Africa", ContinentCode: "AF"}},      // Telkom SA
		{"127.0.0.1", GeoInfo{}},
		{"10.0.0.1", GeoInfo{}},
		{"192.168.1.1", GeoInfo{}},
		{"172.16.0.1", GeoInfo{}},
		{"::1", GeoInfo{}},
		{"fe80::1", GeoInfo{}},
	})
	if got := g.Lookup(netip.Addr{}); got != (GeoInfo{}) {
		t.Errorf("Lookup(invalid) = %+v, want zero", got)
	}
}

// Every country code in the embedded data must be in the table, so that each
// gets a name and continent; the only other codes allowed are regions.
func TestEmbeddedCodesInTable(t *testing.T) {
	if testing.Short() {
		t.Skip("walks the whole embedded database")
	}
	db, err := maxminddb.OpenBytes(geodata.Country)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	seen := map[string]bool{}
	for res := range db.Networks() {
		var rec flatRecord
		if err := res.Decode(&rec); err != nil {
			t.Fatalf("%s: %v", res.Prefix(), err)
		}
		seen[rec.CountryCode] = true
	}
	if len(seen) < 200 {
		t.Errorf("only %d distinct codes in the embedded database", len(seen))
	}
	for code := range seen {
		if _, ok := lookupCountry(code); ok {
			continue
		}
		if _, ok := regionContinents[code]; !ok {
			t.Errorf("code %q of the embedded database is in neither table", code)
		}
	}
}

func TestCountryTable(t *testing.T) {
	continents := map[string]bool{"AF": true, "AN": true, "AS": true, "EU": true, "NA": true, "OC": true, "SA": true}
	perContinent := map[string]int{}
	for i, c := range countryList {
		if len(c.code) != 2 || c.code != strings.ToUpper(c.code) || c.name == "" || !continents[c.continent] {
			t.Errorf("bad row %+v", c)
		}
		if i > 0 && countryList[i-1].code >= c.code {
			t.Errorf("rows not sorted and unique at %s", c.code)
		}
		if got, ok := lookupCountry(c.code); !ok || got != c {
			t.Errorf("lookupCountry(%s) = %+v, %v", c.code, got, ok)
		}
		perContinent[c.continent]++
	}
	if len(countryList) != 250 {
		t.Errorf("%d rows, want the 249 ISO 3166-1 codes and XK", len(countryList))
	}
	// A few facts, to catch a shifted column.
	for code, want := range map[string]countryInfo{
		"DE": {"DE", "Germany", "EU"}, "US": {"US", "United States", "NA"}, "BR": {"BR", "Brazil", "SA"},
		"AU": {"AU", "Australia", "OC"}, "EG": {"EG", "Egypt", "AF"}, "JP": {"JP", "Japan", "AS"},
		"AQ": {"AQ", "Antarctica", "AN"}, "RU": {"RU", "Russia", "EU"}, "TR": {"TR", "Türkiye", "AS"},
		"PA": {"PA", "Panama", "NA"}, "GL": {"GL", "Greenland", "NA"}, "CY": {"CY", "Cyprus", "EU"},
	} {
		if got, _ := lookupCountry(code); got != want {
			t.Errorf("lookupCountry(%s) = %+v, want %+v", code, got, want)
		}
	}
	for _, bad := range []string{"", "D", "DEU", "de", "A1", "ZZ", "[]", "\xff\xff"} {
		if _, ok := lookupCountry(bad); ok {
			t.Errorf("lookupCountry(%q) found a row", bad)
		}
	}
	// Rough sizes of the continents, to catch a wholesale mistake.
	for cont, min := range map[string]int{"AF": 55, "AS": 50, "EU": 50, "NA": 38, "OC": 25, "SA": 14, "AN": 5} {
		if perContinent[cont] < min {
			t.Errorf("continent %s has %d countries, want at least %d", cont, perContinent[cont], min)
		}
	}
}

func TestGeoLookupClose(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{"", cityDB(t, dir, "GeoIP2-City")} {
		g, err := OpenGeo(path)
		if err != nil {
			t.Fatal(err)
		}
		ip := netip.MustParseAddr("89.160.20.1")
		if path == "" {
			ip = netip.MustParseAddr("8.8.8.8")
		}
		if g.Lookup(ip) == (GeoInfo{}) {
			t.Fatalf("%q: lookup before Close found nothing", path)
		}
		if err := g.Close(); err != nil {
			t.Fatalf("%q: Close: %v", path, err)
		}
		if err := g.Close(); err != nil {
			t.Errorf("%q: second Close: %v", path, err)
		}
		if got := g.Lookup(ip); got != (GeoInfo{}) {
			t.Errorf("%q: Lookup after Close = %+v, want zero", path, got)
		}
	}
	var nilLookup *GeoLookup
	if got := nilLookup.Lookup(netip.MustParseAddr("8.8.8.8")); got != (GeoInfo{}) {
		t.Errorf("nil GeoLookup: %+v", got)
	}
	if err := nilLookup.Close(); err != nil {
		t.Errorf("nil GeoLookup Close: %v", err)
	}
}

// Lookups from many goroutines, with Close racing them at the end (run with
// -race to make this mean something).
func TestGeoLookupConcurrent(t *testing.T) {
	g, err := OpenGeo(cityDB(t, t.TempDir(), "GeoIP2-City"))
	if err != nil {
		t.Fatal(err)
	}
	ips := []netip.Addr{
		netip.MustParseAddr("89.160.20.1"), netip.MustParseAddr("2402:4e00::1"), netip.MustParseAddr("81.2.69.1"),
	}
	want := []GeoInfo{wantBerlin, wantSydney, wantOxford}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 500 {
				k := (w + i) % len(ips)
				if got := g.Lookup(ips[k]); got != want[k] {
					t.Errorf("Lookup(%s) = %+v", ips[k], got)
					return
				}
			}
		})
	}
	wg.Wait()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			if got := g.Lookup(ips[0]); got != wantBerlin && got != (GeoInfo{}) {
				t.Errorf("Lookup during Close = %+v", got)
				return
			}
		}
	}()
	if err := g.Close(); err != nil {
		t.Error(err)
	}
	<-done
}

// benchIPs are public addresses spread over networks and families.
var benchIPs = []netip.Addr{
	netip.MustParseAddr("8.8.8.8"),
	netip.MustParseAddr("193.99.144.80"),
	netip.MustParseAddr("133.242.0.1"),
	netip.MustParseAddr("200.160.2.3"),
	netip.MustParseAddr("2001:4860:4860::8888"),
	netip.MustParseAddr("2a00:1450:4001:80b::200e"),
	netip.MustParseAddr("41.0.0.1"),
	netip.MustParseAddr("81.2.69.142"),
}

func BenchmarkGeoLookup(b *testing.B) {
	g := openGeo(b, "")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if g.Lookup(benchIPs[i%len(benchIPs)]).CountryCode == "" {
			b.Fatal("no country")
		}
		i++
	}
}

func BenchmarkGeoLookupCityFixture(b *testing.B) {
	g := openGeo(b, cityDB(b, b.TempDir(), "GeoIP2-City"))
	ips := []netip.Addr{netip.MustParseAddr("89.160.20.1"), netip.MustParseAddr("2402:4e00::1")}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if g.Lookup(ips[i%len(ips)]).CityName == "" {
			b.Fatal("no city")
		}
		i++
	}
}
