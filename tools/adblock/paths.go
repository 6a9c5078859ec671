// Package adblock holds the default names of Firstparty's first-party URLs,
// chosen so that ad blockers' filter lists do not block them, and the list of
// requests a browser makes under them, which the test in this directory
// checks against the real lists (testdata/adblock-lists) with check.mjs.
// See RESULT.md for how the defaults were chosen.
//
// The package is imported by the Caddy module for its defaults, so it uses
// the standard library only.
package adblock

import (
	"crypto/sha256"
	"strings"
)

const (
	// DefaultEndpoint is the default path prefix of the snippet and the
	// capture endpoints. The leading underscore keeps it out of the way of a
	// site's own routes (like /_next or /_astro); "f" carries no tracking
	// meaning in any list, unlike /fp (fingerprinting), /t, /p or /o.
	DefaultEndpoint = "/_f"

	// DefaultSnippetName is the file name of the tracking snippet under the
	// endpoint. A list cannot block a name this common everywhere without
	// breaking sites.
	DefaultSnippetName = "app.js"

	// RecorderChunkName is the file name of the lazily loaded session
	// recording code under the endpoint. Lists block names that say rrweb,
	// recorder or replay; this one says nothing.
	RecorderChunkName = "r.js"

	// Page is the page the probes are requested from: the site itself, as
	// every one of our requests is first-party.
	Page = "https://example.com/"
)

// RandomEndpoint is a per-deployment endpoint that looks random but is
// stable for a seed (the site id): "/" and five characters alternating a
// letter and a digit, starting with a letter ("/k3x9q"). With no two letters
// in a row it spells no word, so no word rule of a filter list can match it;
// in particular it never starts with "hit", which substring matchers block
// for sendBeacon (EasyPrivacy's `.com/hit$ping`, see RESULT.md).
func RandomEndpoint(seed string) string {
	const letters, digits = "abcdefghijklmnopqrstuvwxyz", "0123456789"
	sum := sha256.Sum256([]byte("firstparty endpoint\x00" + seed))
	b := []byte{'/'}
	for i := 0; i < 5; i++ {
		if i%2 == 0 {
			b = append(b, letters[int(sum[i])%len(letters)])
		} else {
			b = append(b, digits[int(sum[i])%len(digits)])
		}
	}
	return string(b)
}

// Request types, as browsers' webRequest API and the engines name them.
const (
	Script = "script"
	XHR    = "xmlhttprequest" // fetch() and XMLHttpRequest
	Ping   = "ping"           // navigator.sendBeacon
)

// Probe is one request a visitor's browser makes to Firstparty.
type Probe struct {
	URL  string `json:"url"`
	Type string `json:"type"`
}

// Paths the browser POSTs or GETs with fetch, XHR or sendBeacon, as PostHog's
// protocol names them. Each is probed with and without its trailing slash.
var dataPaths = []string{
	"/e/",
	"/i/v0/e/",
	"/batch/",
	"/capture/",
	"/track/",
	"/engage/",
	"/s/", // session recording; fixed by the protocol, so a prefix ending in /s is out
	"/decide/",
	"/flags/",
	"/array/phc_abc123/config",
}

// URLs returns every request a browser makes under endpoint, on the host of
// Page, with the type it is made as.
func URLs(endpoint string) []Probe {
	base := strings.TrimSuffix(Page, "/") + "/" + strings.Trim(endpoint, "/")
	base = strings.TrimSuffix(base, "/") // an empty endpoint means the site root
	var out []Probe
	for _, p := range []string{
		"/" + DefaultSnippetName,
		"/" + DefaultSnippetName + "?v=1a2b3c4d",
		"/" + RecorderChunkName,
		"/" + RecorderChunkName + "?v=1a2b3c4d",
		"/array/phc_abc123/config.js",
		"/static/array.js",
	} {
		out = append(out, Probe{base + p, Script})
	}
	for _, p := range dataPaths {
		variants := []string{p}
		if bare := strings.TrimSuffix(p, "/"); bare != p {
			variants = append(variants, bare)
		}
		for _, v := range variants {
			out = append(out, Probe{base + v, XHR}, Probe{base + v, Ping})
		}
	}
	for _, v := range []string{"/flags/?v=2", "/flags/?v=2&config=true", "/decide/?v=4"} {
		out = append(out, Probe{base + v, XHR})
	}
	return out
}
