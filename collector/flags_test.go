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
