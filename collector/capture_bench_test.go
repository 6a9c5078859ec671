package collector

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstpartyhq/firstparty/store"
)

// batch1KEvent is one posthog-js event of about 1.3 KB (the shape of
// bench/batch1k.lua): the properties posthog-js 1.449.2 sends on every
// event, distinct_id and token inside properties. %[1]s is the event name,
// %[2]s its uuid, %[3]d a counter, %[4]s the extras of its kind.
const batch1KEvent = `{"event":"%[1]s","uuid":"%[2]s","timestamp":"2026-11-24T12:%02[5]d:%02[6]d.%03[7]dZ","properties":{` +
	`"$os":"Mac OS X","$os_version":"10.15.7","$browser":"Chrome","$device_type":"Desktop","$timezone":"Europe/Berlin",` +
	`"$current_url":"https://shop.example.com/products/widget-%[8]d?ref=%[9]d","$host":"shop.example.com","$pathname":"/products/widget-%[8]d",` +
	`"$raw_user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",` +
	`"$browser_version":156,"$screen_height":1117,"$screen_width":1728,"$viewport_height":959,"$viewport_width":1728,` +
	`"$lib":"web","$lib_version":"1.449.2","$insert_id":"%014[3]x","$time":%[10]d.%03[11]d,` +
	`"distinct_id":"0193a1b2-7777-7000-8000-%012[12]x","$device_id":"0193a1b2-7777-7000-8000-%012[12]x","$is_identified":false,` +
	`"$initial_referrer":"https://www.google.com/","$referrer":"https://www.google.com/","$referring_domain":"www.google.com",` +
	`"$session_id":"0193a1b2-5555-7000-8000-%012[13]x","$window_id":"019ab68e-c065-7bc5-9918-%012[14]x","$pageview_id":"019ab697-d49d-7f96-a2d0-%012[15]x",` +
	`"$configured_session_timeout_ms":1800000,"$process_person_profile":false,"token":"phc_8e2Vn4Q3bZxExampleProjectKey00000"%[4]s}}`

// batch1KBody is a /batch/ envelope of n such events; uuids are the offsets
// of their uuids in it, so that a benchmark can make them new each time.
func batch1KBody(n int) (body []byte, uuids []int) {
	var b bytes.Buffer
	b.WriteString(`{"api_key":"phc_8e2Vn4Q3bZxExampleProjectKey00000","sent_at":"2026-11-24T12:00:00.000Z","batch":[`)
	names := []string{"$pageview", "$autocapture", "$autocapture", "$pageleave"}
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		name := names[i%4]
		page := i % 50
		var extra string
		switch name {
		case "$pageview":
			extra = fmt.Sprintf(`,"title":"Widget %d - Shop"`, page)
		case "$autocapture":
			extra = fmt.Sprintf(`,"$event_type":"click","$el_text":"Buy now","$elements_chain":"button.cta:nth-child=\"%d\"nth-of-type=\"1\"text=\"Buy now\";div.card:nth-child=\"2\""`, page%5+1)
		case "$pageleave":
			extra = fmt.Sprintf(`,"$prev_pageview_pathname":"/products/widget-%d","$prev_pageview_duration":%d.%d,"$prev_pageview_max_scroll_percentage":0.%d`, page, page%40, page%10, page%10)
		}
		ms := 1764000000000 + int64(i)*37
		ev := fmt.Sprintf(batch1KEvent, name, "019ab697-e825-7cb5-a971-000000000000", rand.Uint64()>>8,
			extra, (i/60)%60, i%60, i%1000, page, i%7, ms/1000, ms%1000, (i*7919)%5000, (i*31)%20000, rand.Uint64()>>16, rand.Uint64()>>16)
		uuids = append(uuids, b.Len()+strings.Index(ev, "019ab697-e825"))
		b.WriteString(ev)
	}
	b.WriteString("]}")
	return b.Bytes(), uuids
}

// BenchmarkCaptureBatch1K is the server's cost of a /batch/ of 50
// posthog-js events of ~1.3 KB each, through the collector into a store on
// disk (group commit, table, compaction in the background), from
// concurrent clients. cpu-ns/event (the process's CPU time, compaction of
// what was stored included) is the figure to compare with bench/ingest.sh;
// ns/event depends on what else the machine runs.
func BenchmarkCaptureBatch1K(b *testing.B) {
	db, err := store.Open(filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	geo, _ := OpenGeo("")
	c := New(Config{Site: "bench.example"}, db, Options{Geo: geo})
	const perBatch = 50
	tmpl, offs := batch1KBody(perBatch)
	b.SetBytes(int64(len(tmpl)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		body := bytes.Clone(tmpl)
		const hex = "0123456789abcdef"
		for pb.Next() {
			for _, o := range offs {
				// A new uuid for every event: the last 12 hex digits.
				x := rand.Uint64()
				for j := 24; j < 36; j++ {
					body[o+j] = hex[x&15]
					x >>= 4
				}
			}
			r := httptest.NewRequest("POST", "/batch/", bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("User-Agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36")
			r.RemoteAddr = "84.128.1.1:5555"
			w := httptest.NewRecorder()
			c.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
	// Wait for the compactor to be done with what this run stored: its
	// CPU is part of the cost of an event.
	db.Compact()
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBatch), "ns/event")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu)/float64(b.N*perBatch), "cpu-ns/event")
	}
	if n := db.Count("bench.example"); n != b.N*perBatch {
		b.Fatalf("%d of %d stored", n, b.N*perBatch)
	}
}
