package dashboard

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"html"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"

	"go.uber.org/zap"
)

func zapErr(err error) zap.Field { return zap.Error(err) }

func (h *Handler) apiSettings(w http.ResponseWriter, r *http.Request) {
	b, err := json.Marshal(h.cfg.Settings())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// The UI is plain HTML, CSS and ES modules, no build step; uPlot is vendored
// by ui/vendor/vendor.sh from its npm lockfile. node_modules is left out.
//
//go:embed ui/index.html ui/theme.js ui/app.css ui/favicon.svg ui/js
//go:embed ui/vendor/uPlot.iife.min.js ui/vendor/uPlot.min.css
//go:embed ui/replay.css ui/vendor/rrweb-player.min.js ui/vendor/rrweb-player.min.css
var uiFiles embed.FS

// uiPages are the first path segments of the single-page app: a deep link
// to any of them is answered with the app's page, which routes itself.
var uiPages = []string{"insights", "persons", "events", "live", "cohorts", "actions", "goals", "settings", "flags", "experiments"}

// uiRoutes adds the app's page, its deep links and its assets.
func (h *Handler) uiRoutes(m prefixMux) {
	m.HandleFunc("GET /{$}", h.serveIndex)
	for _, p := range uiPages {
		m.HandleFunc("GET /"+p, h.serveIndex)
		m.HandleFunc("GET /"+p+"/", h.serveIndex)
	}
	m.HandleFunc("GET /assets/{version}/{file...}", h.serveAsset)
}

// asset is an embedded file with its gzip form, compressed once.
type asset struct {
	body, gz []byte
	ctype    string
}

// uiAssets holds every embedded file and a version: a hash of all of them.
// Asset URLs carry the version, so they are cached forever, and relative
// imports between modules keep working.
type uiAssets struct {
	version string
	files   map[string]*asset
	index   string
}

var loadUIAssets = sync.OnceValue(func() *uiAssets {
	a := &uiAssets{files: make(map[string]*asset)}
	sum := sha256.New()
	err := fs.WalkDir(uiFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "ui/")
		sum.Write([]byte(name + "\x00"))
		sum.Write(b)
		if name == "index.html" {
			a.index = string(b)
			return nil
		}
		ctype := mime.TypeByExtension(path.Ext(name))
		switch path.Ext(name) {
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		case ".css":
			ctype = "text/css; charset=utf-8"
		case ".svg":
			ctype = "image/svg+xml"
		}
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		a.files[name] = &asset{body: b, gz: gzipBytes(b), ctype: ctype}
		return nil
	})
	if err != nil {
		panic("dashboard: reading embedded UI: " + err.Error())
	}
	a.version = hex.EncodeToString(sum.Sum(nil))[:12]
	return a
})

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// serveIndex serves the app's page: the embedded index.html with the
// dashboard's prefix, the asset version and the default site filled in.
func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request) {
	a := loadUIAssets()
	page := strings.NewReplacer(
		"{{prefix}}", html.EscapeString(h.cfg.Prefix),
		"{{version}}", a.version,
		"{{site}}", html.EscapeString(h.site(r)),
	).Replace(a.index)
	sum := sha256.Sum256([]byte(page))
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write([]byte(page))
}

// serveAsset serves an embedded file, gzip-compressed when the client takes
// it. Files of the current version are immutable; an old version's URL gets
// today's file, revalidated.
func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	a := loadUIAssets()
	f, ok := a.files[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", f.ctype)
	hd.Set("Vary", "Accept-Encoding")
	if r.PathValue("version") == a.version {
		hd.Set("Cache-Control", "private, max-age=31536000, immutable")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	etag := `"` + a.version + `"`
	hd.Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if acceptsGzip(r) {
		hd.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	w.Write(body)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}
