package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/firstpartyhq/firstparty/store"
)

// benchFlags makes the 100 flags of bench/flags.sh.
func benchFlags(b testing.TB, db *store.DB) {
	for i := 1; i <= 100; i++ {
		var js string
		switch i % 10 {
		case 0, 1, 2, 3:
			js = fmt.Sprintf(`{"key":"rollout-%d","active":true,"filters":{"groups":[{"rollout_percentage":%d}]}}`, i, i%100)
		case 4, 5, 6:
			js = fmt.Sprintf(`{"key":"split-%d","active":true,"filters":{"groups":[{"rollout_percentage":100}],"multivariate":{"variants":[{"key":"control","rollout_percentage":34},{"key":"a","rollout_percentage":33},{"key":"b","rollout_percentage":33}]},"payloads":{"a":{"color":"blue"},"b":"\"green\""}}}`, i)
		default:
			js = fmt.Sprintf(`{"key":"pro-%d","active":true,"filters":{"groups":[{"properties":[{"key":"plan","operator":"exact","value":"pro","type":"person"},{"key":"$initial_utm_source","operator":"icontains","value":"NEWS","type":"person"}],"rollout_percentage":80},{"properties":[{"key":"email","operator":"regex","value":"@example\\.com$","type":"person"}]}],"payloads":{"true":{"limit":%d}}}}`, i, i)
		}
		var f store.Flag
		if err := json.Unmarshal([]byte(js), &f); err != nil {
			b.Fatal(err)
		}
		if _, err := db.SaveFlag(context.Background(), "bench.example", f); err != nil {
			b.Fatal(err)
		}
	}
}

const benchFlagsBody = `{"token":"phc_bench","distinct_id":"0193a1b2-c3d4-7e5f-8a9b-000000000042","groups":{},"person_properties":{"$initial_referrer":"$direct","$initial_referring_domain":"$direct","$initial_current_url":"https://bench.example/pricing?utm_source=news","$initial_host":"bench.example","$initial_pathname":"/pricing","$initial_utm_source":"news","plan":"pro","$lib":"web","$lib_version":"1.449.2"},"timezone":"Europe/Berlin"}`

// BenchmarkFlags100 is one /flags/?v=2 request with 100 active flags.
func BenchmarkFlags100(b *testing.B) {
	db, err := store.Open(":memory:", store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	benchFlags(b, db)
	c := New(Config{Site: "bench.example"}, db, Options{})
	body := []byte(benchFlagsBody)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		r, _ := http.NewRequest("POST", "http://bench.example/flags/?v=2", bytes.NewReader(body))
		w.Body.Reset()
		c.ServeHTTP(w, r)
	}
	b.SetBytes(int64(w.Body.Len()))
}

// TestFlagsHostileBodies: what a client sends to /flags/ can be refused
// (400, 413) but never makes an answer fail or grow without bound.
func TestFlagsHostileBodies(t *testing.T) {
	f := newFixture(t, Config{MaxBody: 64 << 10})
	var fl store.Flag
	json.Unmarshal([]byte(`{"key":"on","active":true,"filters":{"groups":[{"properties":[{"key":"k0","operator":"is_set"}]}]}}`), &fl)
	if _, err := f.db.SaveFlag(context.Background(), f.c.cfg.Site, fl); err != nil {
		t.Fatal(err)
	}
	many := `{"distinct_id":"a","person_properties":{`
	for i := 0; i < 3000; i++ {
		if i > 0 {
			many += ","
		}
		many += fmt.Sprintf(`"k%d":%d`, i, i)
	}
	many += "}}"
	for _, c := range []struct {
		body string
		code int
	}{
		{`{"distinct_id":`, 400},
		{`[1,2,3]`, 400},
		{`"just a string"`, 400},
		{`{"distinct_id":42,"person_properties":{"k0":true}}`, 200},
		{`{"distinct_id":"a","person_properties":"nope","flag_keys_to_evaluate":7}`, 200},
		{many, 200},
		{`{"distinct_id":"` + string(bytes.Repeat([]byte("x"), 70<<10)) + `"}`, 413},
		{``, 200},
	} {
		code, resp := f.do(req{path: "/flags/?v=2", body: []byte(c.body)})
		if code != c.code || (code == 200 && !json.Valid([]byte(resp))) {
			t.Errorf("%.60s: %d %.200s, want %d", c.body, code, resp, c.code)
		}
	}
	_, resp := f.do(req{path: "/flags/?v=2", body: []byte(`{"distinct_id":42,"person_properties":{"k0":1}}`)})
	var a struct{ FeatureFlags map[string]any }
	if json.Unmarshal([]byte(resp), &a) != nil || a.FeatureFlags["on"] != true {
		t.Errorf("numeric distinct id: %s", resp)
	}
	code, _ := f.do(req{method: "GET", path: "/flags/?v=2"})
	if code != 200 {
		t.Errorf("GET without a body: %d", code)
	}
}

// BenchmarkFlags100New is BenchmarkFlags100 with a distinct id never seen
// before on every request (no cached hashes).
func BenchmarkFlags100New(b *testing.B) {
	db, err := store.Open(":memory:", store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	benchFlags(b, db)
	c := New(Config{Site: "bench.example"}, db, Options{})
	w := httptest.NewRecorder()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		body := bytes.Replace([]byte(benchFlagsBody), []byte("000000000042"), fmt.Appendf(nil, "%012d", n), 1)
		r, _ := http.NewRequest("POST", "http://bench.example/flags/?v=2", bytes.NewReader(body))
		w.Body.Reset()
		c.ServeHTTP(w, r)
	}
}

// TestFlagsGzip: a client that accepts gzip gets the /flags/ and /decide/
// answers compressed from the second time the same answer comes, and they
// decompress to the same answer as a plain one (requestId apart); a client
// that does not, or refuses gzip with q=0, gets them plain.
func TestFlagsGzip(t *testing.T) {
	db, err := store.Open(":memory:", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	benchFlags(t, db)
	c := New(Config{Site: "bench.example"}, db, Options{})
	ask := func(path, body, accept string) (*httptest.ResponseRecorder, map[string]any) {
		t.Helper()
		r := httptest.NewRequest("POST", "http://bench.example"+path, strings.NewReader(body))
		if accept != "" {
			r.Header.Set("Accept-Encoding", accept)
		}
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		if !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Accept-Encoding") {
			t.Errorf("%s: no Vary: Accept-Encoding", path)
		}
		raw := w.Body.Bytes()
		if w.Header().Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if raw, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(w.Body.Len()) {
			t.Errorf("Content-Length %s for %d bytes", cl, w.Body.Len())
		}
		var ans map[string]any
		if err := json.Unmarshal(raw, &ans); err != nil {
			t.Fatalf("%s: %v in %s", path, err, raw)
		}
		if ans["requestId"] == nil {
			t.Fatalf("%s: no requestId", path)
		}
		delete(ans, "requestId")
		return w, ans
	}
	const chromium = "gzip, deflate, br, zstd"
	for i := 0; i < 150; i++ {
		body := strings.Replace(benchFlagsBody, "000000000042", fmt.Sprintf("%012d", i), 1)
		if i%3 == 0 {
			body = strings.Replace(body, `"plan":"pro"`, `"plan":"free","email":"a@example.com"`, 1)
		}
		for _, path := range []string{"/flags/?v=2", "/decide/?v=3", "/flags/?v=2&config=true"} {
			pw, plain := ask(path, body, "")
			ask(path, body, chromium) // may go plain: the first time
			zw, zipped := ask(path, body, chromium)
			if pw.Header().Get("Content-Encoding") != "" || zw.Header().Get("Content-Encoding") != "gzip" {
				t.Fatalf("%s: encodings %q and %q", path, pw.Header().Get("Content-Encoding"), zw.Header().Get("Content-Encoding"))
			}
			if _, cfg := plain["hasFeatureFlags"]; cfg != (path != "/flags/?v=2") {
				t.Fatalf("%s: remote config fields present: %v", path, cfg)
			}
			if !reflect.DeepEqual(plain, zipped) {
				t.Fatalf("%s %d: gzip answer differs:\n%v\n%v", path, i, plain, zipped)
			}
			if zw.Body.Len()*4 > pw.Body.Len() {
				t.Fatalf("%s: %d bytes compressed to only %d", path, pw.Body.Len(), zw.Body.Len())
			}
			if i == 0 && path == "/flags/?v=2" {
				t.Logf("%d bytes, %d compressed", pw.Body.Len(), zw.Body.Len())
			}
		}
	}
	for _, accept := range []string{"gzip;q=0", "br, zstd", "identity", "x-gzip; q=0.0, deflate"} {
		if w, _ := ask("/flags/?v=2", benchFlagsBody, accept); w.Header().Get("Content-Encoding") != "" {
			t.Errorf("Accept-Encoding %q got %q", accept, w.Header().Get("Content-Encoding"))
		}
	}
	// A distinct id never seen before: its answer goes plain the first
	// time.
	fresh := strings.Replace(benchFlagsBody, "000000000042", "999999999999", 1)
	if w, _ := ask("/flags/?v=2", fresh, chromium); w.Header().Get("Content-Encoding") != "" {
		t.Errorf("a first answer went %q", w.Header().Get("Content-Encoding"))
	}
	for _, accept := range []string{"GZIP", "deflate, gzip;q=0.5", "*"} {
		ask("/flags/?v=2", benchFlagsBody, accept)
		if w, _ := ask("/flags/?v=2", benchFlagsBody, accept); w.Header().Get("Content-Encoding") != "gzip" {
			t.Errorf("Accept-Encoding %q got %q", accept, w.Header().Get("Content-Encoding"))
		}
	}
}

// BenchmarkFlags100NewGzip is BenchmarkFlags100New for a client that
// accepts gzip.
func BenchmarkFlags100NewGzip(b *testing.B) {
	db, err := store.Open(":memory:", store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	benchFlags(b, db)
	c := New(Config{Site: "bench.example"}, db, Options{})
	w := httptest.NewRecorder()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		body := bytes.Replace([]byte(benchFlagsBody), []byte("000000000042"), fmt.Appendf(nil, "%012d", n), 1)
		r, _ := http.NewRequest("POST", "http://bench.example/flags/?v=2", bytes.NewReader(body))
		r.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
		w.Body.Reset()
		c.ServeHTTP(w, r)
	}
}
