package collector

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/tidwall/gjson"
)

var fuzzPaths = []string{"/e/", "/batch/", "/i/v0/e/", "/engage/", "/s/", "/i/v1/analytics/events", "/flags/?v=2", "/decide/", "/capture", "/track"}

// FuzzCapture sends arbitrary bodies, content types and queries through the
// whole capture handler: it must never panic, never answer 5xx, and answer
// 200 only with a body it could read.
func FuzzCapture(f *testing.F) {
	seeds := []string{
		`{"event":"$pageview","properties":{"distinct_id":"a","$current_url":"https://x.example/p?utm_source=s"}}`,
		`{"api_key":"k","batch":[{"event":"e","distinct_id":"d","timestamp":"2026-11-24T11:00:00Z","uuid":""}],"sent_at":"2026-11-24T11:00:01Z"}`,
		`[{"event":"$snapshot","properties":{"$snapshot_data":[{"type":2,"cv":"2024-10","data":"\u001f\u008b","timestamp":1}],"$session_id":"s","distinct_id":"d"}}]`,
		`{"$distinct_id":"d","$set":{"a":1}}`,
		`{"batch":[{"event":"$identify","distinct_id":"u","properties":{"$anon_distinct_id":"a"},"$set":{"e":"x"}}]}`,
		`{"event":"x","distinct_id":"d","timestamp":1764000000000,"offset":5}`,
		`{"event":"x","distinct_id":"d","properties":{"deep":[[[[[[[[[[1]]]]]]]]]]}}`,
		`data=eyJldmVudCI6IngiLCJkaXN0aW5jdF9pZCI6ImQifQ==`,
		"{\"event\":\"\xff\",\"distinct_id\":\"\xfe\"}",
		`[1,2,3]`, `null`, ``, `{`, `{"batch":{}}`, `{"batch":"x"}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), "", "application/json", []byte(s))
		f.Add(uint8(i), "compression=gzip-js", "text/plain", gzipBytes([]byte(s)))
		f.Add(uint8(i), "compression=base64", "application/x-www-form-urlencoded", []byte("data="+url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(s)))))
	}
	db, err := store.Open(":memory:", store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	c := New(Config{Site: "fuzz.example", MaxBody: 64 << 10}, db, Options{
		ClientIP: func(*http.Request) netip.Addr { return netip.MustParseAddr("203.0.113.1") },
		Now:      func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) },
	})
	f.Fuzz(func(t *testing.T, pathIdx uint8, query, contentType string, body []byte) {
		path := fuzzPaths[int(pathIdx)%len(fuzzPaths)]
		if query != "" {
			if strings.Contains(path, "?") {
				path += "&" + url.PathEscape(query)
			} else {
				path += "?" + url.PathEscape(query)
			}
		}
		r := httptest.NewRequest(http.MethodPost, "http://fuzz.example"+path, bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		r.Header.Set("User-Agent", chromeUA)
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		switch w.Code {
		case 200, 400, 401, 413:
		default:
			t.Fatalf("%s: status %d: %s", path, w.Code, w.Body)
		}
		if !gjson.Valid(w.Body.String()) {
			t.Fatalf("answer is not JSON: %q", w.Body)
		}
	})
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// FuzzParseTime: any JSON value either parses to a time in the accepted
// window or is refused; never a panic.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{`"2026-11-24T10:00:00Z"`, `1764000000000`, `"1764000000000"`, `"2026-11-24 10:00:00"`, `"x"`, `1e300`, `-1`, `"2026-11-24T10:00:00.123456789+14:00"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
		ev := gjson.Parse(`{"timestamp":` + s + `}`)
		if ts, ok := eventTime(ev, gjson.Result{}, now, false); ok && (ts < earliest || ts > now.Add(maxFuture).UnixMilli()) {
			t.Fatalf("%s gave %d outside the window", s, ts)
		}
	})
}

// FuzzRemoteConfig sends arbitrary GET paths and queries to the remote
// config and flags endpoints (and the snippet paths next to them): never
// a panic or a 5xx, and a config answered 200 is JSON or the JS wrapper.
func FuzzRemoteConfig(f *testing.F) {
	for _, s := range []string{
		"/array/phc_x/config", "/array/phc_x/config.js", "/array//config", "/array/%ff/config.js?x=1",
		"/flags/?v=2&config=true", "/decide/?v=3&ip=1&_=1764000000000&ver=1.200.0&compression=base64",
		"/app.js", "/app.js?v=0", "/r.js", "/nope", "/array/a/b/c",
	} {
		f.Add(s)
	}
	db, err := store.Open(":memory:", store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	c := New(Config{Site: "fuzz.example", Record: true}, db, Options{})
	f.Fuzz(func(t *testing.T, target string) {
		r, err := http.NewRequest(http.MethodGet, "http://fuzz.example/"+strings.TrimPrefix(target, "/"), nil)
		if err != nil {
			return
		}
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s: %d %s", target, w.Code, w.Body)
		}
		if w.Code == 200 && strings.Contains(w.Header().Get("Content-Type"), "json") && !gjson.Valid(w.Body.String()) {
			t.Fatalf("%s: not JSON: %q", target, w.Body)
		}
	})
}
