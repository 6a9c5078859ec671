package caddymodule

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

const testTag = `<script defer src="/_f/app.js?v=1" data-api="/_f"></script>`

func testInjector() *injector { return newInjector(testTag, "/_f/app.js") }

// scanAll runs page through an htmlScanner in the given chunks.
func scanAll(t *testing.T, page string, chunks []int) string {
	t.Helper()
	var out bytes.Buffer
	in := testInjector()
	s := htmlScanner{dst: &out, tag: in.tag, marker: in.marker}
	rest := page
	for _, n := range chunks {
		n = min(n, len(rest))
		if _, err := s.Write([]byte(rest[:n])); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if rest != "" {
		s.Write([]byte(rest))
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestHTMLScanner(t *testing.T) {
	const tag = testTag
	cases := []struct{ name, in, want string }{
		{"head", "<!doctype html><html><head><title>x</title></head><body>hi</body></html>",
			"<!doctype html><html><head><title>x</title>" + tag + "</head><body>hi</body></html>"},
		{"upper case", "<HTML><HEAD><TITLE>x</TITLE></HEAD ><BODY>hi</BODY></HTML>",
			"<HTML><HEAD><TITLE>x</TITLE>" + tag + "</HEAD ><BODY>hi</BODY></HTML>"},
		{"body first", `<!doctype html><title>x</title><body class="a>b" data-x='>'><p>hi</p></body>`,
			`<!doctype html><title>x</title><body class="a>b" data-x='>'>` + tag + `<p>hi</p></body>`},
		{"first head only", "<head></head><body><p>&lt;/head&gt;</p><template></head></template></body>",
			"<head>" + tag + "</head><body><p>&lt;/head&gt;</p><template></head></template></body>"},
		{"header is not head", "<header>x</header><bodyguard><body>y", "<header>x</header><bodyguard><body>" + tag + "y"},
		{"fragment", `<div class="row"><p>partial</p></div>`, `<div class="row"><p>partial</p></div>`},
		{"already has the tag", `<head><script src="/_f/app.js?v=0"></script></head><body></body>`,
			`<head><script src="/_f/app.js?v=0"></script></head><body></body>`},
		{"tag named after head", `<head></head><body><script src="/_f/app.js"></script></body>`,
			`<head>` + tag + `</head><body><script src="/_f/app.js"></script></body>`},
		{"unterminated body tag", `<p>x</p><body class="`, `<p>x</p><body class="`},
		{"cut at the end", "<p>x</p></hea", "<p>x</p></hea"},
		{"empty", "", ""},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := scanAll(t, c.in, nil); got != c.want {
				t.Fatalf("one write:\n got %q\nwant %q", got, c.want)
			}
			// Every split into two writes, byte by byte, and random chunks
			// give the same page.
			for i := 0; i <= len(c.in); i++ {
				if got := scanAll(t, c.in, []int{i}); got != c.want {
					t.Fatalf("split at %d:\n got %q\nwant %q", i, got, c.want)
				}
			}
			ones := make([]int, len(c.in))
			for i := range ones {
				ones[i] = 1
			}
			if got := scanAll(t, c.in, ones); got != c.want {
				t.Fatalf("byte by byte:\n got %q\nwant %q", got, c.want)
			}
			for k := 0; k < 50; k++ {
				var chunks []int
				for n := 0; n < len(c.in); {
					m := 1 + rng.IntN(12)
					chunks = append(chunks, m)
					n += m
				}
				if got := scanAll(t, c.in, chunks); got != c.want {
					t.Fatalf("chunks %v:\n got %q\nwant %q", chunks, got, c.want)
				}
			}
		})
	}
}

// TestHTMLScannerHoldsLittle: once the tag is in, bytes go straight through;
// before, only a few bytes are held back, so a page streams.
func TestHTMLScannerHoldsLittle(t *testing.T) {
	var out bytes.Buffer
	in := testInjector()
	s := htmlScanner{dst: &out, tag: in.tag, marker: in.marker}
	s.Write([]byte("<html><head><title>a long title that streams</title><meta charset=utf-8></he"))
	if held := len(s.buf); held > len(in.marker) {
		t.Errorf("holds %d bytes (%q)", held, s.buf)
	}
	s.Write([]byte("ad><body>"))
	if !s.done || len(s.buf) != 0 || !strings.Contains(out.String(), testTag+"</head><body>") {
		t.Fatalf("after </head>: done %v, held %q, out %q", s.done, s.buf, out.String())
	}
}

// page is a next handler serving body with the given headers.
func page(status int, hdr map[string]string, body []byte) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			// Write in pieces, as a proxy copies.
			for b := body; len(b) > 0; {
				n := min(len(b), 7)
				w.Write(b[:n])
				b = b[n:]
			}
		}
		return nil
	})
}

func serveInject(t *testing.T, method string, reqHdr map[string]string, next caddyhttp.Handler) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "/page", nil)
	for k, v := range reqHdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	if err := testInjector().serve(w, r, next, nil); err != nil {
		t.Fatal(err)
	}
	return w
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zst(b []byte) []byte {
	w, _ := zstd.NewWriter(nil)
	return w.EncodeAll(b, nil)
}

func TestInjectResponses(t *testing.T) {
	html := []byte("<!doctype html><html><head><title>t</title></head><body>" + strings.Repeat("<p>lorem ipsum</p>", 5000) + "</body></html>")
	want := bytes.Replace(html, []byte("</head>"), []byte(testTag+"</head>"), 1)
	length := strconv.Itoa(len(html))
	htmlHdr := map[string]string{"Content-Type": "text/html; charset=utf-8", "Content-Length": length, "ETag": `"abc"`, "Accept-Ranges": "bytes"}
	with := func(m map[string]string, k, v string) map[string]string {
		c := map[string]string{}
		for a, b := range m {
			c[a] = b
		}
		if v == "" {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}

	t.Run("plain html", func(t *testing.T) {
		w := serveInject(t, "GET", nil, page(200, htmlHdr, html))
		if !bytes.Equal(w.Body.Bytes(), want) {
			t.Fatalf("body not injected: %.300q", w.Body.String())
		}
		// The length is the injected page's (the header waited for the
		// scanner to find the place of the tag).
		h := w.Header()
		if h.Get("Content-Length") != strconv.Itoa(len(want)) || h.Get("Accept-Ranges") != "" || !strings.HasPrefix(h.Get("ETag"), `W/"abc-fp`) {
			t.Errorf("headers %v", h)
		}
	})
	t.Run("sniffed html", func(t *testing.T) {
		w := serveInject(t, "GET", nil, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			_, err := w.Write(html)
			return err
		}))
		if !bytes.Equal(w.Body.Bytes(), want) {
			t.Fatalf("body not injected: %.300q", w.Body.String())
		}
	})
	t.Run("gzip", func(t *testing.T) {
		w := serveInject(t, "GET", map[string]string{"Accept-Encoding": "gzip"}, page(200, with(htmlHdr, "Content-Encoding", "gzip"), gz(html)))
		if w.Header().Get("Content-Encoding") != "gzip" || w.Header().Get("Content-Length") != "" {
			t.Fatalf("headers %v", w.Header())
		}
		zr, err := gzip.NewReader(w.Body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("gzip body (%v): %.300q", err, got)
		}
	})
	t.Run("zstd", func(t *testing.T) {
		w := serveInject(t, "GET", map[string]string{"Accept-Encoding": "zstd"}, page(200, with(htmlHdr, "Content-Encoding", "zstd"), zst(html)))
		d, _ := zstd.NewReader(w.Body)
		got, err := io.ReadAll(d)
		if err != nil || !bytes.Equal(got, want) || w.Header().Get("Content-Encoding") != "zstd" {
			t.Fatalf("zstd body (%v): %.300q", err, got)
		}
	})
	t.Run("corrupt gzip", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/", nil)
		w := httptest.NewRecorder()
		if err := testInjector().serve(w, r, page(200, with(htmlHdr, "Content-Encoding", "gzip"), []byte("not gzip at all")), nil); err == nil {
			t.Fatal("no error for a corrupt gzip body")
		}
	})
	untouched := []struct {
		name   string
		status int
		hdr    map[string]string
	}{
		{"css", 200, with(htmlHdr, "Content-Type", "text/css")},
		{"brotli", 200, with(htmlHdr, "Content-Encoding", "br")},
		{"partial", 206, with(htmlHdr, "Content-Range", "bytes 0-10/100")},
		{"no-transform", 200, with(htmlHdr, "Cache-Control", "public, no-transform")},
		{"not found", 404, htmlHdr},
		{"xhtml", 200, with(htmlHdr, "Content-Type", "application/xhtml+xml")},
	}
	for _, c := range untouched {
		t.Run(c.name, func(t *testing.T) {
			w := serveInject(t, "GET", nil, page(c.status, c.hdr, html))
			if !bytes.Equal(w.Body.Bytes(), html) || w.Header().Get("Content-Length") != length || w.Header().Get("ETag") != `"abc"` || w.Code != c.status {
				t.Fatalf("touched: %d %v %.100q", w.Code, w.Header(), w.Body.String())
			}
		})
	}
	t.Run("head", func(t *testing.T) {
		w := serveInject(t, "HEAD", nil, page(200, htmlHdr, nil))
		if w.Body.Len() != 0 || w.Header().Get("Content-Length") != "" || !strings.HasPrefix(w.Header().Get("ETag"), `W/"abc-fp`) {
			t.Fatalf("HEAD: %v %q", w.Header(), w.Body.String())
		}
	})
}

// TestInjectRequestHeaders: only requests for pages change: br is taken out
// of Accept-Encoding (it could not be re-encoded) and our ETag suffix out of
// If-None-Match, and the 304 carries the injected page's ETag again.
func TestInjectRequestHeaders(t *testing.T) {
	in := testInjector()
	var seen http.Header
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		seen = r.Header.Clone()
		if r.Header.Get("If-None-Match") == `W/"abc"` {
			w.Header().Set("ETag", `"abc"`)
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("ETag", `"abc"`)
		_, err := io.WriteString(w, "<head></head>")
		return err
	})
	serve := func(hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/", nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		if err := in.serve(w, r, next, nil); err != nil {
			t.Fatal(err)
		}
		return w
	}
	serve(map[string]string{"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Accept-Encoding": "gzip, deflate, br, zstd"})
	if got := seen.Get("Accept-Encoding"); got != "gzip, zstd" {
		t.Errorf("page request went on with Accept-Encoding %q", got)
	}
	serve(map[string]string{"Accept": "image/avif,*/*", "Accept-Encoding": "gzip, br"})
	if got := seen.Get("Accept-Encoding"); got != "gzip, br" {
		t.Errorf("image request went on with Accept-Encoding %q", got)
	}
	w := serve(nil)
	etag := w.Header().Get("ETag")
	if !strings.HasPrefix(etag, `W/"abc-fp`) {
		t.Fatalf("ETag %q", etag)
	}
	w = serve(map[string]string{"If-None-Match": etag})
	if w.Code != http.StatusNotModified || w.Header().Get("ETag") != etag || seen.Get("If-None-Match") != `W/"abc"` {
		t.Errorf("revalidation: %d, ETag %q, upstream saw If-None-Match %q", w.Code, w.Header().Get("ETag"), seen.Get("If-None-Match"))
	}
}

// TestInjectStreams: a page that flushes its head and then waits reaches the
// client with the tag before the rest is written, plain (of unknown or
// known length) and gzipped.
func TestInjectStreams(t *testing.T) {
	for _, enc := range []string{"", "length", "gzip"} {
		t.Run("encoding "+enc, func(t *testing.T) {
			release := make(chan struct{})
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				w.Header().Set("Content-Type", "text/html")
				if enc == "length" {
					w.Header().Set("Content-Length", strconv.Itoa(len("<html><head><title>slow</title></head><body>rest</body></html>")))
				}
				var out io.Writer = w
				var zw *gzip.Writer
				if enc == "gzip" {
					w.Header().Set("Content-Encoding", "gzip")
					zw = gzip.NewWriter(w)
					out = zw
				}
				io.WriteString(out, "<html><head><title>slow</title></head><body>")
				if zw != nil {
					zw.Flush()
				}
				http.NewResponseController(w).Flush()
				<-release
				io.WriteString(out, "rest</body></html>")
				if zw != nil {
					zw.Close()
				}
				return nil
			})
			in := testInjector()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := in.serve(w, r, next, nil); err != nil {
					t.Error(err)
				}
			}))
			defer srv.Close()
			defer close(release)
			req, _ := http.NewRequest("GET", srv.URL, nil)
			if enc == "gzip" {
				req.Header.Set("Accept-Encoding", enc) // no transparent decoding by the client
			} else {
				req.Header.Set("Accept-Encoding", "identity")
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body io.Reader = res.Body
			if enc == "gzip" {
				zr, err := gzip.NewReader(bufio.NewReader(res.Body))
				if err != nil {
					t.Fatal(err)
				}
				body = zr
			}
			want := "<html><head><title>slow</title>" + testTag + "</head><body>"
			got := make([]byte, len(want))
			done := make(chan error, 1)
			go func() { _, err := io.ReadFull(body, got); done <- err }()
			select {
			case err := <-done:
				if err != nil || string(got) != want {
					t.Fatalf("%v: %q", err, got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the head did not arrive before the page finished: buffered")
			}
		})
	}
}

// TestInjectKeepsLength: a plain page of known length keeps a length on the
// wire — its own plus the tag's when the tag went in, its own when not —
// however it is written; a page whose head is too long to wait for goes
// without one (chunked). Seen by a real client, through a real server.
func TestInjectKeepsLength(t *testing.T) {
	head := "<!doctype html><html><head><title>t</title></head><body>"
	html := head + strings.Repeat("<p>lorem ipsum</p>", 600) + "</body></html>"
	injected := strings.Replace(html, "</head>", testTag+"</head>", 1)
	longHead := "<html><head><script>" + strings.Repeat("x", 2*maxHeld) + "</script></head><body>b</body></html>"
	dir := t.TempDir()
	file := dir + "/index.html"
	if err := os.WriteFile(file, []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	pieces := func(body string, n int) caddyhttp.Handler {
		return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			for b := body; len(b) > 0; {
				k := min(len(b), n)
				if _, err := io.WriteString(w, b[:k]); err != nil {
					return err
				}
				b = b[k:]
			}
			return nil
		})
	}
	cases := []struct {
		name   string
		next   caddyhttp.Handler
		want   string
		length int64 // -1: none
	}{
		{"one write", pieces(html, len(html)), injected, int64(len(injected))},
		{"in pieces", pieces(html, 7), injected, int64(len(injected))},
		{"from a file", caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			http.ServeContent(w, r, "index.html", time.Time{}, f)
			return nil
		}), injected, int64(len(injected))},
		{"has the snippet", pieces(strings.Replace(html, "</head>", testTag+"</head>", 1), 7), injected, int64(len(injected))},
		{"no place for the tag", pieces("just text, no head or body", 5), "just text, no head or body", 26},
		{"head too long to wait", pieces(longHead, 4096), strings.Replace(longHead, "</head>", testTag+"</head>", 1), -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := testInjector()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := in.serve(w, r, c.next, nil); err != nil {
					t.Error(err)
				}
			}))
			defer srv.Close()
			res, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || string(body) != c.want {
				t.Fatalf("%v: body %.200q", err, body)
			}
			if res.ContentLength != c.length {
				t.Errorf("length %d on the wire, want %d (Transfer-Encoding %v)", res.ContentLength, c.length, res.TransferEncoding)
			}
		})
	}
}

// FuzzInjectLength: whatever the page and however the handler behind cuts
// it into writes (and flushes), a page of known length comes out as the
// scanner makes it, and the length the header carries, if any, is the
// length of what was sent.
func FuzzInjectLength(f *testing.F) {
	for _, s := range []string{
		"<!doctype html><html><head><title>x</title></head><body><p>hi</p></body></html>",
		"<html><BODY class=a>text</BODY>",
		"<head><script src=\"/_f/app.js\"></script></head>",
		"no tags at all", "<", "</hea", "<body", "<body x='>'>", "</HEAD >",
	} {
		f.Add([]byte(s), []byte{1, 3, 7}, uint8(0))
		f.Add([]byte(s), []byte{2}, uint8(1))
	}
	in := testInjector()
	f.Fuzz(func(t *testing.T, page []byte, cuts []byte, flushAt uint8) {
		var want bytes.Buffer
		s := &htmlScanner{dst: &want, tag: in.tag, marker: in.marker}
		s.Write(page)
		s.flush()
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Content-Length", strconv.Itoa(len(page)))
			w.WriteHeader(http.StatusOK)
			rest := page
			for i, c := range cuts {
				if flushAt != 0 && i == int(flushAt) {
					http.NewResponseController(w).Flush()
				}
				n := min(int(c), len(rest))
				if _, err := w.Write(rest[:n]); err != nil {
					return err
				}
				rest = rest[n:]
			}
			_, err := w.Write(rest)
			return err
		})
		w := httptest.NewRecorder()
		if err := in.serve(w, httptest.NewRequest("GET", "/", nil), next, nil); err != nil {
			t.Fatal(err)
		}
		res := w.Result()
		body, _ := io.ReadAll(res.Body)
		if !bytes.Equal(body, want.Bytes()) {
			t.Fatalf("cut into writes %v (flush at %d), the page came out differently:\n%q\n%q", cuts, flushAt, want.Bytes(), body)
		}
		if cl := res.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(body)) {
			t.Fatalf("Content-Length %s for %d bytes", cl, len(body))
		}
	})
}
