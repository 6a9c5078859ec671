package collector

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// maxSnippetGzip is the budget of the core snippet, gzipped. Plausible's
// script is about 1.4-2.7 KB, GoatCounter's 2.1-3.3 KB, posthog-js 120 KB.
const maxSnippetGzip = 4096

func TestSnippetSize(t *testing.T) {
	t.Logf("snippet: %d B, gzip %d B, brotli %d B, version %s", len(snippetJS), len(snippetGzip), len(snippetBrotli), SnippetVersion)
	if len(snippetGzip) > maxSnippetGzip {
		t.Errorf("snippet is %d B gzipped, over the %d B budget", len(snippetGzip), maxSnippetGzip)
	}
	// Measure it rather than trust the committed .gz: a fresh gzip -9 of the
	// script must fit too.
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(snippetJS)
	zw.Close()
	if buf.Len() > maxSnippetGzip {
		t.Errorf("snippet gzips to %d B, over the %d B budget", buf.Len(), maxSnippetGzip)
	}
	if len(snippetBrotli) >= len(snippetGzip) {
		t.Errorf("brotli file (%d B) not smaller than gzip (%d B): is it really brotli?", len(snippetBrotli), len(snippetGzip))
	}
	zr, err := gzip.NewReader(bytes.NewReader(snippetGzip))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(plain, snippetJS) {
		t.Fatalf("app.js.gz is not app.js gzipped (%v)", err)
	}
	if bytes.Contains(snippetJS, []byte("__VERSION__")) || !bytes.Contains(snippetJS, []byte("window,document,navigator,location")) {
		t.Errorf("app.js does not look built: %.200s", snippetJS)
	}
}

// TestSnippetBuildUpToDate rebuilds the snippet with node and checks that the
// committed files (including the brotli one) are what src/snippet.js builds
// to.
func TestSnippetBuildUpToDate(t *testing.T) {
	checkBuild(t, "snippet", filepath.Join("node_modules", "terser"))
}

// checkBuild runs `node build.mjs --check` in dir: the committed, embedded
// files must be what their source and lockfile build to. npm ci first when
// node_modules lacks marker; --ignore-scripts, as no dependency needs its
// install script (esbuild's only checks its binary, an optional dependency).
func checkBuild(t *testing.T, dir, marker string) {
	node := requireTool(t, "node")
	dir, _ = filepath.Abs(dir)
	if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
		cmd := exec.Command(requireTool(t, "npm"), "ci", "--no-audit", "--no-fund", "--ignore-scripts")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
	}
	cmd := exec.Command(node, "build.mjs", "--check")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// requireTool skips when a tool is missing on a developer's machine, and
// fails in CI (FIRSTPARTY_REQUIRE_ALL=1), where .ci/run installs it.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("FIRSTPARTY_REQUIRE_ALL") != "" {
			t.Fatalf("%s is required but not installed", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

func TestSnippetHandler(t *testing.T) {
	h := SnippetHandler{Name: "app.js"}
	get := func(method, target string, hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	cases := []struct {
		name, method, target, acceptEncoding string
		wantEnc                              string
		wantBody                             []byte
		wantCache                            string
	}{
		{"brotli versioned", "GET", "/app.js?v=" + SnippetVersion, "gzip, deflate, br, zstd", "br", snippetBrotli, snippetCacheVersioned},
		{"gzip", "GET", "/app.js?v=" + SnippetVersion, "gzip", "gzip", snippetGzip, snippetCacheVersioned},
		{"br refused", "GET", "/app.js", "br;q=0, gzip;q=0.5", "gzip", snippetGzip, snippetCacheUnversioned},
		{"identity", "GET", "/app.js", "", "", snippetJS, snippetCacheUnversioned},
		{"star", "GET", "/app.js", "*", "br", snippetBrotli, snippetCacheUnversioned},
		{"old version", "GET", "/app.js?v=0000", "gzip", "gzip", snippetGzip, snippetCacheUnversioned},
		{"head", "HEAD", "/app.js", "gzip", "gzip", nil, snippetCacheUnversioned},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := get(c.method, c.target, map[string]string{"Accept-Encoding": c.acceptEncoding})
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			hd := w.Header()
			if hd.Get("Content-Encoding") != c.wantEnc || hd.Get("Cache-Control") != c.wantCache {
				t.Errorf("encoding %q cache %q", hd.Get("Content-Encoding"), hd.Get("Cache-Control"))
			}
			if !strings.HasPrefix(hd.Get("Content-Type"), "application/javascript") || hd.Get("Vary") != "Accept-Encoding" || hd.Get("ETag") == "" {
				t.Errorf("headers %v", hd)
			}
			want := c.wantBody
			if c.method == "GET" && !bytes.Equal(w.Body.Bytes(), want) {
				t.Errorf("body is not the %q file", c.wantEnc)
			}
			if c.method == "HEAD" {
				want = snippetGzip
				if w.Body.Len() != 0 {
					t.Errorf("HEAD: body of %d B", w.Body.Len())
				}
			}
			if hd.Get("Content-Length") != strconv.Itoa(len(want)) {
				t.Errorf("Content-Length %s, body %d", hd.Get("Content-Length"), len(want))
			}
		})
	}

	w := get("GET", "/app.js", map[string]string{"Accept-Encoding": "gzip"})
	etag := w.Header().Get("ETag")
	if w = get("GET", "/app.js", map[string]string{"Accept-Encoding": "gzip", "If-None-Match": `"x", ` + etag}); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("If-None-Match %s: %d", etag, w.Code)
	}
	if w = get("GET", "/app.js", map[string]string{"Accept-Encoding": "br", "If-None-Match": etag}); w.Code != 200 {
		t.Errorf("gzip ETag answered for a brotli response: %d", w.Code)
	}
	for _, p := range []string{"/other.js", "/app.jsx", "/r.js"} {
		if w := get("GET", p, nil); w.Code != 404 {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
}
