package collector

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

// The browser snippet, built from snippet/src/snippet.js by snippet/build.mjs
// and committed: minified, and precompressed with gzip and brotli.
//
//go:embed snippet/app.js snippet/app.js.gz snippet/app.js.br
//go:embed recorder/r.js recorder/r.js.gz recorder/r.js.br
var snippetFiles embed.FS

var (
	snippetJS, snippetGzip, snippetBrotli = mustRead("snippet/app.js"), mustRead("snippet/app.js.gz"), mustRead("snippet/app.js.br")

	// The session recording chunk, built from recorder/src/recorder.js and
	// rrweb's recorder by recorder/build.mjs; the snippet loads it when
	// recording is on.
	recorderJS, recorderGzip, recorderBrotli = mustRead("recorder/r.js"), mustRead("recorder/r.js.gz"), mustRead("recorder/r.js.br")

	// RecorderVersion is a hash of the recording chunk's content (its ETag).
	RecorderVersion = contentHash(recorderJS)

	// SnippetVersion is a hash of the snippet and the recording chunk. The
	// script tag puts it in the snippet's URL (?v=), the snippet passes it on
	// to the chunk's, and both URLs are cached for a year: a change to
	// either file changes both URLs.
	SnippetVersion = contentHash(snippetJS, recorderJS)
)

func mustRead(name string) []byte {
	b, err := snippetFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}

func contentHash(files ...[]byte) string {
	h := sha256.New()
	for _, b := range files {
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// SnippetHandler serves the snippet as GET /<Name> under the endpoint, and
// the recording chunk as GET /<Recorder>: brotli, gzip or plain as the
// browser accepts, with an ETag; cached for a year (immutable) when the URL
// carries the current version, for five minutes otherwise. Other paths are
// 404.
type SnippetHandler struct {
	// Name is the snippet's file name, e.g. "app.js".
	Name string
	// Recorder is the recording chunk's file name, e.g. "r.js"; "" serves
	// none.
	Recorder string
}

// Cache lifetimes of the snippet.
const (
	snippetCacheVersioned   = "public, max-age=31536000, immutable"
	snippetCacheUnversioned = "public, max-age=300"
)

func (s SnippetHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.NotFound(w, r)
		return
	}
	var plain, gz, br []byte
	var version string
	switch {
	case r.URL.Path == "/"+s.Name:
		plain, gz, br, version = snippetJS, snippetGzip, snippetBrotli, SnippetVersion
	case s.Recorder != "" && r.URL.Path == "/"+s.Recorder:
		plain, gz, br, version = recorderJS, recorderGzip, recorderBrotli, RecorderVersion
	default:
		http.NotFound(w, r)
		return
	}
	body, enc := plain, ""
	switch {
	case accepts(r, "br"):
		body, enc = br, "br"
	case accepts(r, "gzip"):
		body, enc = gz, "gzip"
	}
	etag := `"` + version + `"`
	if enc != "" {
		etag = `"` + version + "-" + enc + `"`
	}
	h := w.Header()
	h.Set("Content-Type", "application/javascript; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept-Encoding")
	h.Set("ETag", etag)
	if r.URL.Query().Get("v") == SnippetVersion {
		h.Set("Cache-Control", snippetCacheVersioned)
	} else {
		h.Set("Cache-Control", snippetCacheUnversioned)
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if enc != "" {
		h.Set("Content-Encoding", enc)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// etagMatches is If-None-Match's weak comparison against one ETag.
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// accepts reports whether the request's Accept-Encoding allows coding (a
// q-value of 0 refuses it; "*" stands for codings not named).
func accepts(r *http.Request, coding string) bool {
	star := false
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		ok := true
		if q, found := strings.CutPrefix(strings.TrimSpace(params), "q="); found {
			f, err := strconv.ParseFloat(strings.TrimSpace(q), 64)
			ok = err == nil && f > 0
		}
		switch name {
		case coding:
			return ok
		case "*":
			star = ok
		}
	}
	return star
}
