package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rrwebStream synthesises what rrweb's recorder (as r.js configures it:
// mousemove sampled every 50 ms and sent in 500 ms batches, scroll every
// 150 ms, inputs masked) emits over minutes of ordinary browsing of a
// content site, in the batches r.js sends (one every 5 s):
//
//   - a page load every 2 minutes: a meta event and a full snapshot of a
//     page of about 1300 nodes (header, navigation, an article of twenty
//     sections, a sidebar, a footer) with 120 KB of inlined CSS (a CSS framework);
//   - the mouse moving half of the time, scrolling in bursts, a click every
//     ten seconds or so (mousedown, mouseup, click);
//   - the page's own mutations: a ticker changing text every 5 s, a
//     carousel switching classes every 4 s, a menu or dialog of 20 to 40
//     nodes added and removed now and then;
//   - typing into a search field and a form, masked ("*").
//
// The text is random words, which compress worse than real prose, so the
// stored figure is on the high side.
func rrwebStream(r *rand.Rand, start time.Time, dur time.Duration) [][]map[string]any {
	words := strings.Fields("the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part")
	text := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[r.IntN(len(words))])
		}
		return b.String()
	}
	css := func() string {
		var b strings.Builder
		for b.Len() < 120_000 {
			fmt.Fprintf(&b, ".c%d-%s{margin:%dpx %dpx;padding:%dpx;color:#%06x;font-size:%.2frem;display:%s}",
				r.IntN(500), words[r.IntN(len(words))], r.IntN(40), r.IntN(40), r.IntN(20), r.IntN(1<<24), 0.7+r.Float64(), []string{"block", "flex", "grid", "inline-block"}[r.IntN(4)])
		}
		return b.String()
	}
	nextID := 0
	id := func() int { nextID++; return nextID }
	var el func(tag string, attrs map[string]any, kids ...map[string]any) map[string]any
	el = func(tag string, attrs map[string]any, kids ...map[string]any) map[string]any {
		if attrs == nil {
			attrs = map[string]any{}
		}
		k := make([]any, len(kids))
		for i := range kids {
			k[i] = kids[i]
		}
		return map[string]any{"type": 2, "tagName": tag, "attributes": attrs, "childNodes": k, "id": id()}
	}
	txt := func(s string) map[string]any { return map[string]any{"type": 3, "textContent": s, "id": id()} }
	cls := func() map[string]any {
		return map[string]any{"class": fmt.Sprintf("c%d-%s c%d", r.IntN(500), words[r.IntN(len(words))], r.IntN(500))}
	}
	page := func() map[string]any {
		nextID = 0
		var nav, article, side, foot []map[string]any
		for i := 0; i < 40; i++ {
			nav = append(nav, el("li", cls(), el("a", map[string]any{"href": "/" + words[r.IntN(len(words))] + "/" + words[r.IntN(len(words))], "class": "nav-link"}, txt(text(2)))))
		}
		for i := 0; i < 20; i++ {
			var spans []map[string]any
			for j := 0; j < 6; j++ {
				spans = append(spans, el("span", cls(), txt(text(8))), el("a", map[string]any{"href": "/p/" + text(1)}, txt(text(3))))
			}
			article = append(article, el("h2", cls(), txt(text(6))), el("p", cls(), append([]map[string]any{txt(text(60))}, spans...)...),
				el("figure", cls(), el("img", map[string]any{"src": fmt.Sprintf("/img/%d.jpg", r.IntN(1e6)), "alt": text(5), "width": "800", "height": "450"}), el("figcaption", nil, txt(text(12)))))
		}
		for i := 0; i < 30; i++ {
			side = append(side, el("div", cls(), el("h3", nil, txt(text(4))), el("p", nil, txt(text(25))), el("button", map[string]any{"class": "btn"}, txt(text(2)))))
		}
		for i := 0; i < 60; i++ {
			foot = append(foot, el("a", map[string]any{"href": "/" + text(1), "class": "foot-link"}, txt(text(2))))
		}
		form := el("form", map[string]any{"action": "/subscribe"},
			el("input", map[string]any{"type": "text", "name": "q", "value": ""}),
			el("input", map[string]any{"type": "email", "name": "email", "value": ""}),
			el("textarea", map[string]any{"name": "msg"}),
			el("button", map[string]any{"type": "submit"}, txt("Send")))
		html := el("html", map[string]any{"lang": "en"},
			el("head", nil, el("title", nil, txt(text(5))), el("style", map[string]any{"_cssText": css()}), el("meta", map[string]any{"name": "viewport", "content": "width=device-width"})),
			el("body", cls(),
				el("header", cls(), el("nav", cls(), el("ul", nil, nav...))),
				el("main", cls(), el("article", cls(), article...), el("aside", cls(), side...), form),
				el("footer", cls(), foot...)))
		return map[string]any{"node": map[string]any{"type": 0, "childNodes": []any{map[string]any{"type": 1, "name": "html", "publicId": "", "systemId": "", "id": id()}, html}, "id": id()}, "initialOffset": map[string]any{"left": 0, "top": 0}}
	}

	var batches [][]map[string]any
	var cur []map[string]any
	end := start.Add(dur)
	t := start
	ms := func() int64 { return t.UnixMilli() }
	emit := func(typ int, data any) {
		cur = append(cur, map[string]any{"type": typ, "data": data, "timestamp": ms()})
	}
	nextFlush := t.Add(5 * time.Second)
	nextPage := t
	mouseOn := true
	scrollY := 0
	for t.Before(end) {
		if !t.Before(nextPage) {
			emit(4, map[string]any{"href": "https://example.com/" + text(2), "width": 1280, "height": 800})
			emit(2, page())
			scrollY = 0
			nextPage = t.Add(120 * time.Second)
		}
		// 500 ms steps.
		if r.IntN(20) == 0 {
			mouseOn = !mouseOn
		}
		if mouseOn {
			var pos []any
			x, y := r.IntN(1280), r.IntN(800)
			for i := 0; i < 10; i++ {
				x += r.IntN(30) - 15
				y += r.IntN(30) - 15
				pos = append(pos, map[string]any{"x": x, "y": y, "id": r.IntN(nextID) + 1, "timeOffset": -500 + i*50})
			}
			emit(3, map[string]any{"source": 1, "positions": pos})
		}
		if r.IntN(6) == 0 { // a scroll burst
			for i := 0; i < 3; i++ {
				scrollY += r.IntN(300)
				emit(3, map[string]any{"source": 3, "id": 1, "x": 0, "y": scrollY})
			}
		}
		if r.IntN(20) == 0 { // a click
			target := r.IntN(nextID) + 1
			for _, typ := range []int{1, 0, 2} {
				emit(3, map[string]any{"source": 2, "type": typ, "id": target, "x": r.IntN(1280), "y": r.IntN(800), "pointerType": 0})
			}
		}
		if ms()%5000 < 500 { // the ticker
			emit(3, map[string]any{"source": 0, "texts": []any{map[string]any{"id": 7, "value": text(8)}}, "attributes": []any{}, "removes": []any{}, "adds": []any{}})
		}
		if ms()%4000 < 500 { // the carousel
			emit(3, map[string]any{"source": 0, "texts": []any{}, "attributes": []any{map[string]any{"id": 12, "attributes": map[string]any{"class": fmt.Sprintf("slide slide-%d active", r.IntN(5))}}, map[string]any{"id": 13, "attributes": map[string]any{"style": map[string]any{"transform": fmt.Sprintf("translateX(-%dpx)", r.IntN(4)*800)}}}}, "removes": []any{}, "adds": []any{}})
		}
		if r.IntN(40) == 0 { // a menu or dialog opens
			var adds []any
			parent := r.IntN(nextID) + 1
			for i := 0; i < 20+r.IntN(20); i++ {
				adds = append(adds, map[string]any{"parentId": parent, "nextId": nil, "node": el("li", cls(), txt(text(3)))})
			}
			emit(3, map[string]any{"source": 0, "texts": []any{}, "attributes": []any{}, "removes": []any{}, "adds": adds})
		}
		if r.IntN(30) == 0 { // typing, masked
			for i := 1; i <= 8; i++ {
				emit(3, map[string]any{"source": 5, "text": strings.Repeat("*", i), "isChecked": false, "id": nextID - 3})
			}
		}
		t = t.Add(500 * time.Millisecond)
		if !t.Before(nextFlush) {
			batches = append(batches, cur)
			cur = nil
			nextFlush = t.Add(5 * time.Second)
		}
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches
}

// TestTenMinuteRecordingSize: a 10-minute recording of ordinary browsing,
// sent as r.js sends it (a batch every 5 s), is stored in under 1 MB, both
// as the store counts it and as the database file grows.
func TestTenMinuteRecordingSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rec.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.AddSite("example.com")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	before := fi.Size()
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	batches := rrwebStream(rand.New(rand.NewPCG(6, 10)), start, 10*time.Minute)
	raw, events := 0, 0
	for _, b := range batches {
		data, _ := json.Marshal(b)
		raw += len(data)
		events += len(b)
		if err := db.AppendSnapshots(context.Background(), "example.com", []Snapshot{{SessionID: "s-10min", WindowID: "w", DistinctID: "visitor", Data: data}}); err != nil {
			t.Fatal(err)
		}
	}
	recs := db.Recordings(context.Background(), "example.com", 0, 1<<62)
	if len(recs) != 1 || recs[0].Events != events || recs[0].End-recs[0].Start < (9*time.Minute+50*time.Second).Milliseconds() {
		t.Fatalf("recordings %+v (events sent %d)", recs, events)
	}
	stored := recs[0].Bytes
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	fi, _ = os.Stat(path)
	file := fi.Size() - before
	t.Logf("10-minute recording: %d rrweb events in %d batches, %d B of JSON; stored %d B (%.1f%%), database file +%d B",
		events, len(batches), raw, stored, 100*float64(stored)/float64(raw), file)
	if raw < 3<<19 {
		t.Errorf("the synthetic stream is only %d B of JSON: not a realistic 10 minutes", raw)
	}
	const limit = 1 << 20
	if stored >= limit || file >= limit {
		t.Errorf("a 10-minute recording takes %d B stored, %d B of file: over 1 MB", stored, file)
	}
}
