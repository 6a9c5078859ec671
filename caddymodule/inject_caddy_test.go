package caddymodule_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// injectSite writes a small site to serve: pages, a stylesheet and a page
// that already loads the snippet.
func injectSite(t *testing.T) (dir string, index []byte) {
	t.Helper()
	dir = t.TempDir()
	index = []byte("<!doctype html>\n<html><head><meta charset=utf-8><title>Inject</title></head>\n<body>" + strings.Repeat("<p>Lorem ipsum dolor sit amet.</p>\n", 400) + "</body></html>\n")
	files := map[string][]byte{
		"index.html":  index,
		"style.css":   []byte(strings.Repeat("p { color: red }\n", 100)),
		"has.html":    []byte(`<html><head><script defer src="/_f/app.js"></script></head><body>` + strings.Repeat("x", 1000) + `</body></html>`),
		"nohead.html": []byte(`<!doctype html><title>t</title><body class="b">` + strings.Repeat("y", 1000) + `</body>`),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, index
}

// upstream is a backend for reverse_proxy: a gzip page with its compressed
// Content-Length, a plain page with Content-Length, and a brotli-labelled
// page sent whatever the request accepts.
func upstream(t *testing.T, page []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	zw.Write(page)
	zw.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		switch r.URL.Path {
		case "/proxy/gz":
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				h.Set("Content-Length", fmt.Sprint(len(page)))
				w.Write(page)
				return
			}
			h.Set("Content-Encoding", "gzip")
			h.Set("Content-Length", fmt.Sprint(zbuf.Len()))
			w.Write(zbuf.Bytes())
		case "/proxy/plain":
			h.Set("Content-Length", fmt.Sprint(len(page)))
			w.Write(page)
		case "/proxy/br":
			h.Set("Content-Encoding", "br")
			w.Write([]byte("\x1b\x00not really brotli"))
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type fetched struct {
	status int
	header http.Header
	raw    []byte // as sent
	body   []byte // decoded, the injected tag's data-ref taken out
	refs   []string
}

// pageRefRE is the data-ref attribute of an injected tag: a fresh
// $pageview_ref for every page (SPEC §8).
var pageRefRE = regexp.MustCompile(` data-ref="([A-Za-z0-9_-]{16})"`)

func fetch(t *testing.T, method, url string, hdr map[string]string) fetched {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	f := fetched{status: res.StatusCode, header: res.Header, raw: raw, body: raw}
	switch res.Header.Get("Content-Encoding") {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: gzip: %v", url, err)
		}
		if f.body, err = io.ReadAll(zr); err != nil {
			t.Fatalf("%s: gzip: %v", url, err)
		}
	case "zstd":
		d, _ := zstd.NewReader(bytes.NewReader(raw))
		if f.body, err = io.ReadAll(d); err != nil {
			t.Fatalf("%s: zstd: %v", url, err)
		}
	}
	if cl := res.Header.Get("Content-Length"); cl != "" && cl != fmt.Sprint(len(raw)) {
		t.Errorf("%s: Content-Length %s for %d bytes", url, cl, len(raw))
	}
	for _, m := range pageRefRE.FindAllSubmatch(f.body, -1) {
		f.refs = append(f.refs, string(m[1]))
	}
	f.body = pageRefRE.ReplaceAll(f.body, nil)
	return f
}

// TestInjectThroughCaddy: `inject` with file_server, `encode` (which
// compresses before the injector sees the page) and reverse_proxy.
func TestInjectThroughCaddy(t *testing.T) {
	dir, index := injectSite(t)
	up := upstream(t, index)
	startCaddy(t, fmt.Sprintf(testGlobal+`http://127.0.0.1:9080 {
	bind 127.0.0.1
	analytics {
		db :memory:
		site test.example
		inject
	}
	handle /proxy/* {
		reverse_proxy %s
	}
	handle {
		encode zstd gzip
		root * %s
		file_server
	}
}
`, up, dir))

	// The tag as the module builds it, from the snippet API of the dashboard.
	var snip struct{ HTML string }
	getJSON(t, api+"/snippet", &snip)
	tag := snip.HTML
	if !strings.Contains(tag, `src="/_f/app.js?v=`) {
		t.Fatalf("snippet tag %q", tag)
	}
	want := bytes.Replace(index, []byte("</head>"), []byte(tag+"</head>"), 1)
	browser := map[string]string{"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for a, b := range browser {
			m[a] = b
		}
		return m
	}

	for _, c := range []struct {
		name, path, acceptEncoding, wantEncoding string
	}{
		{"file_server plain", "/", "", ""},
		{"encode gzip", "/", "gzip", "gzip"},
		{"encode zstd", "/index.html", "gzip, deflate, br, zstd", "zstd"},
		{"proxy gzip with Content-Length", "/proxy/gz", "gzip, br", "gzip"},
		{"proxy plain with Content-Length", "/proxy/plain", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := fetch(t, "GET", base+c.path, with("Accept-Encoding", c.acceptEncoding))
			if f.status != 200 || f.header.Get("Content-Encoding") != c.wantEncoding {
				t.Fatalf("%d, Content-Encoding %q", f.status, f.header.Get("Content-Encoding"))
			}
			if !bytes.Equal(f.body, want) {
				t.Fatalf("page not injected exactly once before </head>:\n%.400s", f.body)
			}
			if len(f.refs) != 1 {
				t.Fatalf("injected tag carries %d data-ref attributes, want 1", len(f.refs))
			}
		})
	}

	t.Run("body without head", func(t *testing.T) {
		f := fetch(t, "GET", base+"/nohead.html", browser)
		if !bytes.HasPrefix(f.body, []byte(`<!doctype html><title>t</title><body class="b">`+tag+"yyy")) {
			t.Fatalf("%.300s", f.body)
		}
	})
	t.Run("already has the tag", func(t *testing.T) {
		f := fetch(t, "GET", base+"/has.html", with("Accept-Encoding", "gzip"))
		orig, _ := os.ReadFile(filepath.Join(dir, "has.html"))
		if !bytes.Equal(f.body, orig) {
			t.Fatalf("page changed: %.300s", f.body)
		}
	})
	t.Run("stylesheet untouched", func(t *testing.T) {
		f := fetch(t, "GET", base+"/style.css", map[string]string{"Accept": "text/css,*/*;q=0.1"})
		orig, _ := os.ReadFile(filepath.Join(dir, "style.css"))
		if !bytes.Equal(f.raw, orig) || f.header.Get("Content-Length") != fmt.Sprint(len(orig)) {
			t.Fatalf("css changed: %v", f.header)
		}
	})
	t.Run("brotli upstream passes untouched", func(t *testing.T) {
		f := fetch(t, "GET", base+"/proxy/br", with("Accept-Encoding", "br"))
		if string(f.raw) != "\x1b\x00not really brotli" || f.header.Get("Content-Encoding") != "br" {
			t.Fatalf("%q %v", f.raw, f.header)
		}
	})
	t.Run("head", func(t *testing.T) {
		f := fetch(t, "HEAD", base+"/", browser)
		if f.status != 200 || len(f.raw) != 0 || f.header.Get("Content-Length") != "" {
			t.Fatalf("HEAD: %d %v", f.status, f.header)
		}
	})
	t.Run("revalidation", func(t *testing.T) {
		f := fetch(t, "GET", base+"/", with("Accept-Encoding", "gzip"))
		etag := f.header.Get("ETag")
		if !strings.HasPrefix(etag, `W/"`) || !strings.Contains(etag, "-fp") {
			t.Fatalf("ETag %q", etag)
		}
		h := with("Accept-Encoding", "gzip")
		h["If-None-Match"] = etag
		// (encode answers a 304 without its -gzip suffix; ours stays.)
		suffix := etag[strings.LastIndex(etag, "-fp"):]
		if g := fetch(t, "GET", base+"/", h); g.status != http.StatusNotModified || !strings.HasSuffix(g.header.Get("ETag"), suffix) {
			t.Fatalf("If-None-Match %s: %d, ETag %q", etag, g.status, g.header.Get("ETag"))
		}
	})
	t.Run("range untouched", func(t *testing.T) {
		f := fetch(t, "GET", base+"/", map[string]string{"Range": "bytes=0-99"})
		if f.status != http.StatusPartialContent || !bytes.Equal(f.raw, index[:100]) {
			t.Fatalf("%d %q", f.status, f.raw)
		}
	})
	t.Run("snippet served", func(t *testing.T) {
		src := tag[strings.Index(tag, `src="`)+5:]
		src = strings.ReplaceAll(src[:strings.Index(src, `"`)], "&amp;", "&")
		f := fetch(t, "GET", base+src, map[string]string{"Accept-Encoding": "gzip, br"})
		if f.status != 200 || f.header.Get("Content-Encoding") != "br" || f.header.Get("Cache-Control") != "public, max-age=31536000, immutable" || f.header.Get("ETag") == "" {
			t.Fatalf("%s: %d %v", src, f.status, f.header)
		}
	})
}
