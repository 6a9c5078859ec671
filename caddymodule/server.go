package caddymodule

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"path"
	"strings"

	"github.com/firstpartyhq/firstparty/collector"
	"github.com/firstpartyhq/firstparty/store"
)

// What only the server sees (SPEC §8). The handler watches the GET
// responses it passes through: with count_server, every HTML page it
// injects the snippet into (and every 404/410 page) becomes a server
// pageview carrying the ref the injected tag carries; feed responses become
// feed fetches; with downloads, full responses of those file types become
// downloads. The collector stores them in the background.

// pageRef makes the $pageview_ref of one page: 96 random bits.
func (h *Handler) pageRef() string {
	if !h.countServer {
		return ""
	}
	var b [12]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// pageDone turns a finished response into a server event, if it is one.
func (h *Handler) pageDone(r *http.Request, res pageResult) {
	ms := float64(res.ttfb.Microseconds()) / 1000
	if h.isDownload(r.URL.Path) {
		if res.status == http.StatusOK && res.header.Get("Content-Range") == "" {
			h.collector.ServerHit(r, collector.ServerHit{Event: store.Download, Status: res.status, ServerMs: ms})
		}
		return
	}
	if !h.countServer {
		return
	}
	mt := mediaType(res.header.Get("Content-Type"))
	if res.fromError && looksLikePage(r) {
		mt = "text/html"
	}
	switch {
	case isFeedType(mt, r.URL.Path):
		if res.status == http.StatusOK || res.status == http.StatusNotModified {
			h.collector.ServerHit(r, collector.ServerHit{Event: store.FeedFetch, Status: res.status, ServerMs: ms})
		}
	case mt == "text/html":
		switch {
		case res.status == http.StatusNotFound || res.status == http.StatusGone:
			h.collector.ServerHit(r, collector.ServerHit{Event: store.ServerPageview, Status: res.status, ServerMs: ms})
		case res.status >= 200 && res.status < 300 && (res.injected || !h.Inject):
			// With inject, a page that loads the snippet by itself carries
			// no ref: its pageview would not confirm a server pageview, so
			// none is made. Without inject (count_server on alone) every
			// page is counted by the server only.
			h.collector.ServerHit(r, collector.ServerHit{Event: store.ServerPageview, Status: res.status, ServerMs: ms, Ref: res.ref})
		}
	}
}

// mediaType is the lower-case type/subtype of a Content-Type, without
// parameters (cheaper than mime.ParseMediaType, and this runs for every
// response: only pages and feeds are kept).
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	for i := 0; i < len(ct); i++ {
		if c := ct[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(ct)
		}
	}
	return ct
}

// looksLikePage reports whether a request whose answer is not known here
// (an error page) asked for a page: a browser navigation, or a path without
// a file extension or with a page's.
func looksLikePage(r *http.Request) bool {
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		return true
	}
	switch strings.ToLower(path.Ext(r.URL.Path)) {
	case "", ".html", ".htm", ".php", ".asp", ".aspx":
		return true
	}
	return false
}

// isDownload reports whether p names a file of a `downloads` type.
func (h *Handler) isDownload(p string) bool {
	if len(h.Downloads) == 0 {
		return false
	}
	ext := strings.ToLower(path.Ext(p))
	if ext == "" {
		return false
	}
	for _, d := range h.Downloads {
		if ext == d {
			return true
		}
	}
	return false
}

// isFeedType reports an RSS, Atom or JSON feed response.
func isFeedType(mt, p string) bool {
	switch mt {
	case "application/rss+xml", "application/atom+xml", "application/feed+json", "application/rdf+xml":
		return true
	case "text/xml", "application/xml":
		base := strings.ToLower(path.Base(p))
		return strings.HasSuffix(base, ".rss") || strings.HasSuffix(base, ".atom") || strings.Contains(base, "feed") || strings.Contains(base, "rss") || strings.Contains(base, "atom")
	}
	return false
}
