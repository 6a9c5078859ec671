// Package collector takes events in: it serves the snippet and PostHog's
// capture endpoints, decodes every body encoding the SDKs use, validates and
// enriches the events and commits them to the store. A request reads top to
// bottom as body → decode → validate → enrich → commit.
package collector

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// errTooLarge is a body over max_body, before or after decompression.
var errTooLarge = errors.New("body too large")

// badRequest is an undecodable body: 400, nothing stored.
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return badRequest{fmt.Sprintf(format, args...)} }

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBody reads at most max bytes of the request body.
func readBody(r *http.Request, max int64, buf *bytes.Buffer) error {
	if r.ContentLength > max {
		return errTooLarge
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, max+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		return badf("reading body: %v", err)
	}
	if n > max {
		return errTooLarge
	}
	return nil
}

// decodeBody turns a request body into JSON text, whatever the SDK did to
// it: gzip (recognised by its magic bytes whatever the headers say, by
// ?compression=gzip-js or gzip, or by Content-Encoding), a form field
// data=<base64 JSON> (?compression=base64 or a form content type), or
// plain JSON (also as text/plain from sendBeacon). Decompressed output is
// bounded by max as well, so a zip bomb gets 413.
func decodeBody(r *http.Request, body []byte, max int64) ([]byte, error) {
	q := r.URL.Query()
	compression := strings.ToLower(q.Get("compression"))
	if compression == "lz64" {
		return nil, badf("compression=lz64 is not supported; use gzip-js or base64")
	}
	body = bytes.TrimLeft(body, " \t\r\n")
	if len(body) == 0 {
		return nil, badf("empty body")
	}
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	// A JSON body under a form content type (curl -d) is taken as JSON.
	if bytes.HasPrefix(body, []byte("data=")) || (strings.HasPrefix(ct, "application/x-www-form-urlencoded") && !looksLikeJSON(body) && !isGzip(body)) {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, badf("bad form body: %v", err)
		}
		data := form.Get("data")
		if data == "" {
			return nil, badf("form body without a data field")
		}
		body = []byte(data)
		if compression == "base64" || !looksLikeJSON(body) {
			dec, err := decodeBase64(data)
			if err != nil {
				return nil, badf("data field is neither JSON nor base64: %v", err)
			}
			body = dec
		}
	} else if compression == "base64" && !looksLikeJSON(body) && !isGzip(body) {
		dec, err := decodeBase64(string(body))
		if err != nil {
			return nil, badf("bad base64 body: %v", err)
		}
		body = dec
	}
	if isGzip(body) || compression == "gzip-js" || compression == "gzip" || strings.Contains(strings.ToLower(r.Header.Get("Content-Encoding")), "gzip") {
		if !isGzip(body) {
			return nil, badf("body is not gzip although the request says so")
		}
		return gunzip(body, max)
	}
	return body, nil
}

func looksLikeJSON(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}

func isGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	// posthog-js uses the standard alphabet; accept the URL-safe one and
	// missing padding too.
	s = strings.NewReplacer("-", "+", "_", "/", " ", "+").Replace(s)
	s = strings.TrimRight(s, "=")
	return base64.RawStdEncoding.DecodeString(s)
}

func gunzip(b []byte, max int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, badf("bad gzip body: %v", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, max+1))
	if err != nil {
		return nil, badf("bad gzip body: %v", err)
	}
	if int64(len(out)) > max {
		return nil, errTooLarge
	}
	return out, nil
}
