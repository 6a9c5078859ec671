package collector

import (
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/firstpartyhq/firstparty/store"
)

// BenchmarkServerHit is the server's cost of one server pageview: building
// and enriching the event on the request's goroutine, then storing it in a
// background batch (waited for at the end, so its cost is in ns/op).
func BenchmarkServerHit(b *testing.B) {
	db, err := store.Open(":memory:", store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	geo, _ := OpenGeo("")
	c := New(Config{Site: "bench.example"}, db, Options{Geo: geo})
	r := httptest.NewRequest("GET", "http://bench.example/docs/page?utm_source=x", nil)
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36")
	r.Header.Set("Referer", "https://news.ycombinator.com/")
	r.RemoteAddr = "84.128.1.1:5555"
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.ServerHit(r, ServerHit{Event: store.ServerPageview, Status: 200, ServerMs: 1.5, Ref: "abcdefghijklmnop"})
		// Keep the queue from overflowing (a server at this rate drops
		// and counts): wait while it is more than half full.
		for c.server.queue != nil && len(c.server.queue) > serverQueue/2 {
			runtime.Gosched()
		}
	}
	c.Close()
	b.StopTimer()
	if n := db.Count("bench.example"); n != b.N {
		b.Fatalf("%d of %d stored", n, b.N)
	}
}

// BenchmarkServerHitCapture is what a page pays on its own goroutine for
// one server pageview: the copy of the request's facts into the queue (the
// events are made and stored in the background, not measured here).
func BenchmarkServerHitCapture(b *testing.B) {
	db, err := store.Open(":memory:", store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	c := New(Config{Site: "bench.example"}, db, Options{})
	// A queue nobody ships from: emptied here when full.
	c.server.once.Do(func() {
		c.server.queue = make(chan *serverRaw, 1024)
		c.server.full = make(chan struct{}, 1)
	})
	r := httptest.NewRequest("GET", "http://bench.example/docs/page?utm_source=x", nil)
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36")
	r.Header.Set("Referer", "https://news.ycombinator.com/")
	r.RemoteAddr = "84.128.1.1:5555"
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.ServerHit(r, ServerHit{Event: store.ServerPageview, Status: 200, ServerMs: 1.5, Ref: "abcdefghijklmnop"})
		if len(c.server.queue) == cap(c.server.queue) {
			b.StopTimer()
			for len(c.server.queue) > 0 {
				<-c.server.queue
			}
			b.StartTimer()
		}
	}
}
