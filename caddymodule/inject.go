package caddymodule

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"iter"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// injector puts the snippet's script tag into HTML pages passing through
// (`inject`): before </head>, else right after the <body> tag, as the page
// streams, without buffering it. Compressed pages (gzip, zstd, e.g. from an
// `encode` directive or an upstream) are decoded, injected and encoded again
// the same way. Anything else passes untouched, as do pages that already
// load the snippet.
type injector struct {
	tag []byte
	// marker is the snippet's path; a page whose head names it already has
	// the tag.
	marker []byte
	// etagSuffix marks the ETag of an injected page, so that its
	// revalidation can be told apart and passed on without it.
	etagSuffix string
	// refAt is where a data-ref attribute goes into tag (-1: nowhere).
	refAt int
}

// tagWithRef returns the tag with a data-ref attribute: the page's
// $pageview_ref, which the snippet's pageview echoes (SPEC §8).
func (in *injector) tagWithRef(ref string) []byte {
	if ref == "" || in.refAt < 0 {
		return in.tag
	}
	b := make([]byte, 0, len(in.tag)+len(ref)+12)
	b = append(b, in.tag[:in.refAt]...)
	b = append(b, ` data-ref="`...)
	b = append(b, ref...)
	b = append(b, '"')
	return append(b, in.tag[in.refAt:]...)
}

func newInjector(tag, snippetPath string) *injector {
	sum := sha256.Sum256([]byte(tag))
	return &injector{
		tag:        []byte(tag),
		marker:     []byte(snippetPath),
		etagSuffix: "-fp" + hex.EncodeToString(sum[:4]),
		refAt:      strings.LastIndex(tag, "></script>"),
	}
}

// maxBodyTag bounds how far past "<body" the end of that tag is looked for.
const maxBodyTag = 8 << 10

// serve runs next with the response wrapped for injection. Only GET and
// HEAD are candidates; the request is changed only where an injected page
// needs it: Accept-Encoding without codings that cannot be re-encoded (br)
// for requests that accept HTML, and If-None-Match without our ETag suffix.
//
// With watch, the response is also observed: watch gets its status, headers,
// time to first byte and whether the snippet went in (with ref, which the
// tag then carries) once the response is done. in may be nil: observed only.
func (in *injector) serve(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, watch pageWatcher) (err error) {
	iw := &injectWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, in: in, head: r.Method == http.MethodHead, watch: watch}
	if watch != nil {
		iw.start = time.Now()
	}
	if in != nil {
		r = iw.prepareRequest(r)
	}
	defer func() {
		if cerr := iw.close(); err == nil {
			err = cerr
		}
		if iw.watch != nil {
			res := pageResult{status: iw.status, header: iw.Header(), ttfb: iw.ttfb, ref: iw.ref}
			var he caddyhttp.HandlerError
			switch {
			case iw.status == 0 && errors.As(err, &he):
				// The handler behind failed (file_server's 404): Caddy's
				// error routes answer, past this writer.
				res.status, res.fromError, res.ttfb = he.StatusCode, true, time.Since(iw.start)
			case iw.status == 0 && err == nil:
				res.status = http.StatusOK // nothing written: net/http answers 200
			}
			if iw.scan.injected || iw.rec != nil && iw.rec.scan.injected {
				res.injected = true
			}
			iw.watch.pageDone(r, res)
		}
	}()
	return next.ServeHTTP(iw, r)
}

// pageWatcher is told about the responses passing through.
type pageWatcher interface {
	// pageRef returns a new $pageview_ref for a page about to be
	// injected ("" for none).
	pageRef() string
	// pageDone is called once a response is done.
	pageDone(r *http.Request, res pageResult)
}

// pageResult is what the module learns of a response it passed through.
type pageResult struct {
	status   int
	header   http.Header
	ttfb     time.Duration
	injected bool // the snippet tag (with ref) went into the page
	ref      string
	// fromError: the status is a handler error's; Caddy's error routes
	// answered it, so the headers are not known here.
	fromError bool
}

// prepareRequest returns r, or a copy with the headers an injected page
// needs changed.
func (iw *injectWriter) prepareRequest(r *http.Request) *http.Request {
	ae := r.Header.Get("Accept-Encoding")
	inm := r.Header.Get("If-None-Match")
	dropBr := ae != "" && strings.Contains(r.Header.Get("Accept"), "text/html") && hasOtherCoding(ae)
	stripTag := inm != "" && strings.Contains(inm, iw.in.etagSuffix)
	if !dropBr && !stripTag {
		return r
	}
	r2 := r.Clone(r.Context())
	if dropBr {
		r2.Header.Set("Accept-Encoding", keepCodings(ae))
	}
	if stripTag {
		r2.Header.Set("If-None-Match", strings.ReplaceAll(inm, iw.in.etagSuffix, ""))
		iw.revalidating = true
	}
	return r2
}

// hasOtherCoding reports whether Accept-Encoding names a coding the
// injector cannot encode again.
func hasOtherCoding(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		name, _, _ := strings.Cut(part, ";")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "gzip", "zstd", "identity", "":
		default:
			return true
		}
	}
	return false
}

func keepCodings(ae string) string {
	var keep []string
	for _, part := range strings.Split(ae, ",") {
		name, _, _ := strings.Cut(part, ";")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "gzip", "zstd", "identity":
			keep = append(keep, strings.TrimSpace(part))
		}
	}
	if len(keep) == 0 {
		return "identity"
	}
	return strings.Join(keep, ", ")
}

// The states of an injectWriter.
const (
	undecided = iota // no status yet
	passing          // not a page to inject into: straight through
	scanning         // a plain HTML page: through the scanner
	recoding         // a compressed HTML page: decode, scan, encode
)

// injectWriter wraps the response of one request.
type injectWriter struct {
	caddyhttp.ResponseWriterWrapper
	in           *injector // nil: nothing is injected, the response is only watched
	head         bool
	revalidating bool
	state        int
	scan         htmlScanner
	rec          *recoder

	// A plain page whose length is known keeps a length: its header
	// waits (pending, the status) until the scanner knows whether the tag
	// goes in, holding what comes before (at most maxHeld bytes); then the
	// length is the page's, plus the tag's if it went in. Past maxHeld, or
	// when flushed first, the header goes without a length, as for any
	// page of unknown length.
	pending int
	length  int64
	tagLen  int
	held    []byte

	ref    string // the page's $pageview_ref, "" for none
	watch  pageWatcher
	start  time.Time
	ttfb   time.Duration
	status int
}

func (iw *injectWriter) WriteHeader(code int) {
	if iw.state != undecided {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		iw.ResponseWriter.WriteHeader(code) // informational: the real status follows
		return
	}
	iw.state = passing
	iw.status = code
	if iw.watch != nil {
		iw.ttfb = time.Since(iw.start)
	}
	h := iw.Header()
	switch {
	case iw.in == nil:
	case code == http.StatusNotModified && iw.revalidating:
		// Revalidated our injected page: answer with its ETag.
		iw.markETag(h)
	case iw.wantsInjection(code, h):
		iw.markETag(h)
		h.Del("Accept-Ranges")
		length := h.Get("Content-Length")
		h.Del("Content-Length")
		if iw.head {
			break
		}
		if iw.watch != nil {
			iw.ref = iw.watch.pageRef()
		}
		tag := iw.in.tagWithRef(iw.ref)
		iw.state = scanning
		if enc := strings.ToLower(h.Get("Content-Encoding")); enc == "gzip" || enc == "zstd" {
			iw.scan = htmlScanner{dst: iw.ResponseWriter, tag: tag, marker: iw.in.marker}
			iw.rec = newRecoder(enc, iw.ResponseWriter, iw.in, tag)
			iw.state = recoding
			break
		}
		iw.scan = htmlScanner{dst: heldOut{iw}, tag: tag, marker: iw.in.marker}
		if n, err := strconv.ParseInt(length, 10, 64); err == nil && n >= 0 && length[0] != '+' {
			iw.pending, iw.length, iw.tagLen = code, n, len(tag)
			return
		}
	}
	iw.ResponseWriter.WriteHeader(code)
}

// maxHeld bounds what a page's header waits for (see injectWriter.pending).
const maxHeld = 32 << 10

// heldOut is where the scanner of a plain page writes: held while the
// header waits, then through.
type heldOut struct{ iw *injectWriter }

func (o heldOut) Write(p []byte) (int, error) {
	iw := o.iw
	if iw.pending != 0 {
		switch {
		case iw.scan.done:
			// Decided: the tag went in or never will.
			n := iw.length
			if iw.scan.injected {
				n += int64(iw.tagLen)
			}
			if err := iw.sendHeader(n); err != nil {
				return 0, err
			}
		case len(iw.held)+len(p) <= maxHeld:
			iw.held = append(iw.held, p...)
			return len(p), nil
		default:
			if err := iw.sendHeader(-1); err != nil {
				return 0, err
			}
		}
	}
	return iw.ResponseWriter.Write(p)
}

// sendHeader sends the waiting header with Content-Length n (-1: none),
// then what was held.
func (iw *injectWriter) sendHeader(n int64) error {
	if n >= 0 {
		iw.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	}
	code := iw.pending
	iw.pending = 0
	iw.ResponseWriter.WriteHeader(code)
	held := iw.held
	iw.held = nil
	if len(held) > 0 {
		if _, err := iw.ResponseWriter.Write(held); err != nil {
			return err
		}
	}
	return nil
}

// wantsInjection: a full HTML page (2xx), in an encoding we can recode,
// that asks for no-transform nowhere.
func (iw *injectWriter) wantsInjection(code int, h http.Header) bool {
	if code < 200 || code > 299 || code == http.StatusNoContent || code == http.StatusResetContent || code == http.StatusPartialContent {
		return false
	}
	if h.Get("Content-Range") != "" || strings.Contains(strings.ToLower(h.Get("Cache-Control")), "no-transform") {
		return false
	}
	if !isHTMLType(h.Get("Content-Type")) {
		return false
	}
	if v := h.Values("Content-Encoding"); len(v) > 1 {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding"))) {
	case "", "identity", "gzip", "zstd":
		return true
	}
	return false
}

// isHTMLType reports whether a Content-Type is text/html and well-formed.
func isHTMLType(ct string) bool {
	switch ct {
	case "text/html; charset=utf-8", "text/html":
		return true // what servers send, without the parser's allocations
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "text/html"
}

// markETag turns the page's ETag into a weak one of the injected page.
func (iw *injectWriter) markETag(h http.Header) {
	et := h.Get("ETag")
	if et == "" || strings.Contains(et, iw.in.etagSuffix) {
		return
	}
	et = strings.TrimPrefix(et, "W/")
	if len(et) < 2 || et[0] != '"' || et[len(et)-1] != '"' {
		h.Del("ETag")
		return
	}
	h.Set("ETag", `W/`+et[:len(et)-1]+iw.in.etagSuffix+`"`)
}

func (iw *injectWriter) Write(p []byte) (int, error) {
	if iw.state == undecided {
		h := iw.Header()
		if h.Get("Content-Type") == "" && h.Get("Content-Encoding") == "" && len(p) > 0 {
			// As net/http would: sniff the type from the first bytes.
			h.Set("Content-Type", http.DetectContentType(p))
		}
		iw.WriteHeader(http.StatusOK)
	}
	switch iw.state {
	case scanning:
		return iw.scan.Write(p)
	case recoding:
		return iw.rec.Write(p)
	}
	return iw.ResponseWriter.Write(p)
}

// ReadFrom keeps the underlying writer's fast path (sendfile) for
// responses passing through.
func (iw *injectWriter) ReadFrom(r io.Reader) (int64, error) {
	if iw.state == passing {
		return iw.ResponseWriterWrapper.ReadFrom(r)
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	// readerOnly: an *os.File would otherwise copy itself with a buffer
	// of its own (File.WriteTo), made anew for every page.
	return io.CopyBuffer(writerOnly{iw}, readerOnly{r}, *bp)
}

type writerOnly struct{ io.Writer }

type readerOnly struct{ io.Reader }

// copyBufs are the buffers pages are copied through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// FlushError sends what the page has given so far: the scanner's held-back
// bytes and the encoder's buffer go out first.
func (iw *injectWriter) FlushError() error {
	switch iw.state {
	case scanning:
		if err := iw.scan.flush(); err != nil {
			return err
		}
		if iw.pending != 0 {
			if err := iw.sendHeader(-1); err != nil {
				return err
			}
		}
	case recoding:
		if err := iw.rec.flush(); err != nil {
			return err
		}
	}
	return http.NewResponseController(iw.ResponseWriter).Flush()
}

func (iw *injectWriter) Flush() { _ = iw.FlushError() }

// close ends the page: the rest of what the scanner held, the end of the
// compressed stream.
func (iw *injectWriter) close() error {
	switch iw.state {
	case scanning:
		iw.state = passing
		err := iw.scan.flush()
		if iw.pending != 0 && err == nil {
			// Still undecided at the end: nothing went in, and the page
			// is what was held.
			err = iw.sendHeader(int64(len(iw.held)))
		}
		return err
	case recoding:
		iw.state = passing
		return iw.rec.close()
	}
	return nil
}

// htmlScanner writes HTML through to dst, putting tag before the first
// </head>, or after the first <body ...> when the body comes first. It holds
// back only the few bytes that might begin a tag it looks for, and nothing
// once the tag is in.
type htmlScanner struct {
	dst    io.Writer
	tag    []byte
	marker []byte
	buf    []byte
	done   bool
	// injected is set once the tag is written.
	injected bool
}

func (s *htmlScanner) Write(p []byte) (int, error) {
	if s.done {
		return s.dst.Write(p)
	}
	b := p
	if len(s.buf) > 0 {
		s.buf = append(s.buf, p...)
		b = s.buf
	}
	// Else p is scanned where it is: only what must be held is copied.
	if err := s.advance(b, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes out everything held.
func (s *htmlScanner) flush() error {
	if s.done {
		return nil
	}
	return s.advance(s.buf, true)
}

// advance scans b, which is what is held followed by what came since.
func (s *htmlScanner) advance(b []byte, final bool) error {
	at, keep := s.find(b, final)
	switch {
	case s.done: // no sane place for the tag: leave the page alone
	case at >= 0:
		s.done = true
		if !bytes.Contains(b[:at], s.marker) {
			s.buf = nil
			s.injected = true
			return s.write(b[:at], s.tag, b[at:])
		}
	case bytes.Contains(b, s.marker):
		// The page loads the snippet itself.
		s.done = true
	case final:
		keep = len(b)
	default:
		// The snippet's path may straddle the next write.
		keep = max(0, min(keep, len(b)-len(s.marker)+1))
	}
	if s.done {
		s.buf = nil
		return s.write(b)
	}
	if err := s.write(b[:keep]); err != nil {
		return err
	}
	s.buf = append(s.buf[:0], b[keep:]...)
	return nil
}

func (s *htmlScanner) write(parts ...[]byte) error {
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		if _, err := s.dst.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// find returns where the tag goes in b (-1: not in b) and, when it is not
// there, from where b must be held back because it may begin "</head" or
// "<body". When final, a partial match at the end is no match. A body tag
// too long to be real ends the search.
func (s *htmlScanner) find(b []byte, final bool) (at, keep int) {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '<')
		if j < 0 {
			return -1, len(b)
		}
		j += i
		rest := b[j:]
		switch {
		case hasPrefixFold(rest, "</head"):
			if len(rest) == 6 {
				if final {
					return -1, len(b)
				}
				return -1, j
			}
			if endsName(rest[6]) {
				return j, 0
			}
		case hasPrefixFold(rest, "<body"):
			if len(rest) == 5 {
				if final {
					return -1, len(b)
				}
				return -1, j
			}
			if endsName(rest[5]) {
				end := tagEnd(rest)
				if end >= 0 {
					return j + end + 1, 0
				}
				if final || len(rest) > maxBodyTag {
					s.done = true // no sane body tag: leave the page alone
					return -1, len(b)
				}
				return -1, j
			}
		case !final && len(rest) < 6 && (hasPrefixFold(rest, "</head"[:len(rest)]) || len(rest) < 5 && hasPrefixFold(rest, "<body"[:len(rest)])):
			return -1, j
		}
		i = j + 1
	}
}

func hasPrefixFold[T []byte | string](b T, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

func endsName(c byte) bool {
	return c == '>' || c == '/' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

// tagEnd is the index of the '>' that ends the tag b starts with, skipping
// quoted attribute values; -1 when b ends first.
func tagEnd(b []byte) int {
	var quote byte
	for i := 1; i < len(b); i++ {
		c := b[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return i
		}
	}
	return -1
}

// A recoder decodes a compressed page as it streams, scans it and encodes
// it again with the same coding. The decoder pulls its input; the response
// pushes it. A coroutine (iter.Pull) joins the two without a goroutine or a
// buffer: each Write hands the bytes over and runs the decoder until it
// wants more.
type recoder struct {
	input []byte
	eof   bool
	err   error
	next  func() (struct{}, bool)
	stop  func()
	enc   encoder
	scan  htmlScanner
	dec   decoder
	codec string
}

type encoder interface {
	io.WriteCloser
	Flush() error
	Reset(io.Writer)
}

type decoder interface {
	io.Reader
	Reset(io.Reader) error
}

var (
	gzipEncoders = sync.Pool{New: func() any { w, _ := gzip.NewWriterLevel(nil, 5); return w }}
	zstdEncoders = sync.Pool{New: func() any {
		w, _ := zstd.NewWriter(nil, zstd.WithWindowSize(128<<10), zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true), zstd.WithEncoderLevel(zstd.SpeedDefault))
		return w
	}}
	gzipDecoders = sync.Pool{New: func() any { return new(gzip.Reader) }}
	zstdDecoders = sync.Pool{New: func() any {
		d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(64<<20))
		return zstdReader{d}
	}}
	recodeBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}
)

// zstdReader adapts *zstd.Decoder to decoder.
type zstdReader struct{ *zstd.Decoder }

func newRecoder(codec string, dst io.Writer, in *injector, tag []byte) *recoder {
	rc := &recoder{codec: codec}
	if codec == "gzip" {
		rc.enc = gzipEncoders.Get().(*gzip.Writer)
		rc.dec = gzipDecoders.Get().(*gzip.Reader)
	} else {
		rc.enc = zstdEncoders.Get().(*zstd.Encoder)
		rc.dec = zstdDecoders.Get().(zstdReader)
	}
	rc.enc.Reset(dst)
	rc.scan = htmlScanner{dst: rc.enc, tag: tag, marker: in.marker}
	rc.next, rc.stop = iter.Pull(rc.run)
	return rc
}

var errStopped = errors.New("inject: response abandoned")

// run is the coroutine: decode until the input ends, scanning into the
// encoder. pullSource.Read yields whenever it has no input.
func (rc *recoder) run(yield func(struct{}) bool) {
	src := &pullSource{rc: rc, yield: yield}
	if err := rc.dec.Reset(src); err != nil {
		if err != io.EOF { // an empty body stays empty
			rc.err = err
		}
		return
	}
	bp := recodeBufs.Get().(*[]byte)
	defer recodeBufs.Put(bp)
	for {
		n, err := rc.dec.Read(*bp)
		if n > 0 {
			if _, werr := rc.scan.Write((*bp)[:n]); werr != nil {
				rc.err = werr
				return
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			rc.err = err
			return
		}
	}
}

type pullSource struct {
	rc    *recoder
	yield func(struct{}) bool
}

func (s *pullSource) Read(p []byte) (int, error) {
	for len(s.rc.input) == 0 {
		if s.rc.eof {
			return 0, io.EOF
		}
		if !s.yield(struct{}{}) {
			return 0, errStopped
		}
	}
	n := copy(p, s.rc.input)
	s.rc.input = s.rc.input[n:]
	return n, nil
}

// Write decodes p as far as it goes.
func (rc *recoder) Write(p []byte) (int, error) {
	if rc.err != nil {
		return 0, rc.err
	}
	rc.input = p
	rc.next()
	rc.input = nil
	if rc.err != nil {
		return 0, rc.err
	}
	return len(p), nil
}

func (rc *recoder) flush() error {
	if rc.err != nil {
		return rc.err
	}
	if err := rc.scan.flush(); err != nil {
		return err
	}
	return rc.enc.Flush()
}

// close feeds the decoder the end of its input, finishes the encoded
// stream and returns the coders to their pools.
func (rc *recoder) close() error {
	rc.eof = true
	rc.next()
	rc.stop()
	err := rc.err
	if err == nil {
		err = rc.scan.flush()
	}
	if err == nil {
		err = rc.enc.Close()
	}
	rc.enc.Reset(nil)
	if rc.codec == "gzip" {
		gzipEncoders.Put(rc.enc)
		gzipDecoders.Put(rc.dec)
	} else {
		zstdEncoders.Put(rc.enc)
		rc.dec.Reset(nil)
		zstdDecoders.Put(rc.dec)
	}
	return err
}
