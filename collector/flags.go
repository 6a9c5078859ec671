package collector

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/tidwall/gjson"
)

// Feature flags (SPEC §9): /flags/?v=2 and /decide/?v=3|4 answer the flags
// of one distinct id in PostHog's formats; /api/feature_flag/local_evaluation
// and /flags/definitions give server SDKs the definitions, behind the
// site's secret flags key. Evaluation reads the store's immutable snapshot,
// so these answers never wait for a commit.

// maxFlagProps bounds the person_properties of one request.
const maxFlagProps = 1000

// site is the site a request is about: the configured one (a request's
// Host never names a site).
func (c *Collector) site(*http.Request) string { return c.cfg.Site }

func (c *Collector) flagStore() store.FlagStore {
	fs, _ := c.store.(store.FlagStore)
	return fs
}

// hasFlags reports whether the site has an active flag.
func (c *Collector) hasFlags(site string) bool {
	fs := c.flagStore()
	return fs != nil && fs.HasActiveFlags(site)
}

func (c *Collector) serveFlagPaths(w http.ResponseWriter, r *http.Request, path string) {
	cors(w, r)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	switch path {
	case "/flags/definitions", "/api/feature_flag/local_evaluation":
		c.serveDefinitions(w, r)
	default:
		c.serveFlags(w, r, path == "/decide")
	}
}

// flagBuf holds what one answer needs, reused across requests.
type flagBuf struct {
	body  bytes.Buffer
	out   []byte
	gz    []byte
	wires []*store.FlagWire
	props store.Props
	keys  []string
}

var flagBufs = sync.Pool{New: func() any { return new(flagBuf) }}

// serveFlags answers /flags/ and /decide/ for the distinct id of the body
// (JSON, gzip or a base64 form, as capture takes them).
func (c *Collector) serveFlags(w http.ResponseWriter, r *http.Request, decide bool) {
	fb := flagBufs.Get().(*flagBuf)
	defer func() {
		if fb.body.Cap() <= 64<<10 && cap(fb.out) <= 1<<20 && cap(fb.gz) <= 1<<20 {
			flagBufs.Put(fb)
		}
	}()
	fb.body.Reset()
	req := store.FlagRequest{Site: c.site(r)}
	token := ""
	if r.Method == http.MethodPost {
		if err := readFlagsBody(r, c.cfg.MaxBody, &fb.body); err != nil {
			c.failBody(w, err)
			return
		}
	} else if d := r.URL.Query().Get("data"); d != "" {
		fb.body.WriteString("data=" + d)
	}
	if len(bytes.TrimSpace(fb.body.Bytes())) > 0 {
		js, err := decodeBody(r, fb.body.Bytes(), c.cfg.MaxBody)
		if err == nil {
			js = repairUTF8(js)
			err = checkJSON(js)
		}
		if err != nil {
			c.failBody(w, err)
			return
		}
		// Nothing of the body outlives the request (the store copies what
		// it keeps), so gjson reads it in place.
		root := gjson.Parse(unsafeString(js))
		if !root.IsObject() {
			c.failBody(w, badf("body must be a JSON object"))
			return
		}
		// One pass over the top level: distinct_id, the token (the first
		// of token, api_key, $token that is set), person_properties and
		// flag_keys_to_evaluate.
		// A key given twice counts the first time, as gjson's Get has it.
		var toks [3]string
		var seen [6]bool
		once := func(i int) bool {
			first := !seen[i]
			seen[i] = true
			return first
		}
		fb.props, fb.keys = fb.props[:0], fb.keys[:0]
		root.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "distinct_id":
				if once(3) {
					req.DistinctID = jsonText(v)
				}
			case "token", "api_key", "$token":
				i := strings.Index("token api_key $token", k.Str) / 6 // 0, 1, 2
				if once(i) {
					toks[i] = jsonText(v)
				}
			case "person_properties":
				if !once(4) {
					break
				}
				v.ForEach(func(k, v gjson.Result) bool {
					fb.props = append(fb.props, store.Prop{Key: k.String(), Val: store.ValueFromJSON(v)})
					return len(fb.props) < maxFlagProps
				})
			case "flag_keys_to_evaluate":
				if !once(5) {
					break
				}
				v.ForEach(func(_, v gjson.Result) bool {
					fb.keys = append(fb.keys, v.String())
					return len(fb.keys) < 10000
				})
			}
			return true
		})
		for _, t := range toks {
			if t != "" {
				token = t
				break
			}
		}
		req.Props, req.Keys = fb.props, fb.keys
	}
	if c.cfg.Token != "" && token != "" && token != c.cfg.Token {
		writeError(w, http.StatusUnauthorized, "wrong token")
		return
	}
	fb.wires = fb.wires[:0]
	if fs := c.flagStore(); fs != nil && req.DistinctID != "" {
		fb.wires = fs.EvaluateFlagWires(req, fb.wires)
	}
	b := store.AppendFlagsJSON(fb.out[:0], fb.wires)
	b = append(b, `,"errorsWhileComputingFlags":false,"quotaLimited":[],"requestId":`...)
	b = store.AppendJSONString(b, store.NewUUID(c.now()))
	if decide || strings.Contains(r.URL.RawQuery, "config") && r.URL.Query().Get("config") == "true" {
		cfg := c.remoteConfig(c.cfg.Token, c.hasFlags(req.Site))
		// The decide answer carries the remote config fields at its top level.
		b = append(b, ',')
		b = append(b, cfg[1:len(cfg)-1]...)
		b = append(b, `,"config":{"enable_collect_everything":true}`...)
	}
	b = append(b, '}')
	fb.out = b
	h := w.Header()
	h.Add("Vary", "Accept-Encoding")
	if len(b) >= gzipFlagsFrom && acceptsGzip(r) {
		// Compressed from renderings compressed beforehand, when the same
		// answer came before (store's AppendFlagsGzip): a fifth of the
		// size, for about a microsecond.
		if z, ok := store.AppendFlagsGzip(fb.gz[:0], fb.wires, b); ok {
			fb.gz = z
			h.Set("Content-Encoding", "gzip")
			b = z
		}
	}
	// A length, not chunks: the answer goes out in one write.
	h.Set("Content-Length", strconv.Itoa(len(b)))
	writeJSON(w, http.StatusOK, b)
}

// gzipFlagsFrom is the size from which a /flags/ answer goes compressed to
// clients that accept gzip; below it the gzip framing gains nothing.
const gzipFlagsFrom = 1024

// acceptsGzip reports whether the request's Accept-Encoding takes gzip
// (or anything), with a weight above 0.
func acceptsGzip(r *http.Request) bool {
	for _, line := range r.Header.Values("Accept-Encoding") {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ",")
			name, params, _ := strings.Cut(part, ";")
			name = strings.TrimSpace(name)
			if !strings.EqualFold(name, "gzip") && !strings.EqualFold(name, "x-gzip") && name != "*" {
				continue
			}
			q := 1.0
			for params != "" {
				var p string
				p, params, _ = strings.Cut(params, ";")
				if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
						q = f
					}
				}
			}
			return q > 0
		}
	}
	return false
}

// readFlagsBody is readBody reading a body of announced length in one
// read (each read through Caddy sets the connection's deadline again, and
// one more read would only find its end).
func readFlagsBody(r *http.Request, max int64, buf *bytes.Buffer) error {
	n := r.ContentLength
	if n <= 0 || n > max {
		return readBody(r, max, buf)
	}
	buf.Grow(int(n))
	b := buf.AvailableBuffer()[:n]
	if _, err := io.ReadFull(r.Body, b); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		return badf("reading body: %v", err)
	}
	buf.Write(b)
	return nil
}

// jsonText is a JSON string as is and a number as its literal (some
// clients send numeric distinct ids).
func jsonText(v gjson.Result) string {
	switch v.Type {
	case gjson.String:
		return v.Str
	case gjson.Number:
		return v.Raw
	}
	return ""
}

// errNoKey is a local-evaluation request without the site's secret key.
var errNoKey = errors.New("a valid secret flags key (Authorization: Bearer phs_...) is required")

// serveDefinitions answers the local-evaluation endpoints with the site's
// flag definitions, to holders of its secret flags key only.
func (c *Collector) serveDefinitions(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	site := c.site(r)
	key := ""
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		key = strings.TrimSpace(a[7:])
	}
	fs := c.flagStore()
	if fs == nil || key == "" || !fs.CheckFlagsKey(site, key) {
		writeError(w, http.StatusUnauthorized, errNoKey.Error())
		return
	}
	if tok := r.URL.Query().Get("token"); c.cfg.Token != "" && tok != "" && tok != c.cfg.Token {
		writeError(w, http.StatusUnauthorized, "wrong token")
		return
	}
	writeJSON(w, http.StatusOK, fs.LocalEvaluation(site))
}
