package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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
