package caddymodule_test

// Session replay and heatmaps end to end in headless Chromium: the snippet
// with `record on` loads r.js, which records the visit with every input
// masked; the recording is listed and served by the dashboard API and
// plays in the dashboard's replay page; click coordinates land where the
// clicks were and the heatmap page draws them over the page.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/firstpartyhq/firstparty/collector"
	"github.com/firstpartyhq/firstparty/store"
)

type apiRecording struct {
	SessionID  string  `json:"session_id"`
	DistinctID string  `json:"distinct_id"`
	Start      string  `json:"start"`
	DurationS  float64 `json:"duration_s"`
}

func recordingsList(t *testing.T) []apiRecording {
	t.Helper()
	var res struct{ Results []apiRecording }
	getJSON(t, api+"/recordings?from="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), &res)
	return res.Results
}

// rrwebEvents is a recording as /api/recordings/{id} answers it.
func rrwebEvents(t *testing.T, session string) []map[string]any {
	t.Helper()
	res, err := http.Get(api + "/recordings/" + session)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode == 404 {
		return nil
	}
	var evs []map[string]any
	if err := json.NewDecoder(res.Body).Decode(&evs); err != nil {
		t.Fatal(err)
	}
	return evs
}

// incremental returns the incremental snapshots (type 3) of a source.
func incremental(evs []map[string]any, source int) []map[string]any {
	var out []map[string]any
	for _, e := range evs {
		if num(e["type"]) != 3 {
			continue
		}
		if d, ok := e["data"].(map[string]any); ok && num(d["source"]) == float64(source) {
			out = append(out, d)
		}
	}
	return out
}

func countType(evs []map[string]any, typ int) int {
	n := 0
	for _, e := range evs {
		if num(e["type"]) == float64(typ) {
			n++
		}
	}
	return n
}

// stopCaddy loads a config without the analytics handler, which closes
// the database file.
func stopCaddy(t *testing.T) {
	t.Helper()
	if err := loadConfig(testGlobal + `http://127.0.0.1:9080 {
	bind 127.0.0.1
	respond "closed" 200
}
`); err != nil {
		t.Fatal(err)
	}
}

// TestRecordingInBrowser: with `record on`, a visit that types into a text
// and a password field is recorded with both masked; neither typed value
// is stored anywhere (API, recording, events, the raw file); the recording
// is listed, and the dashboard's replay page plays it: the player's iframe
// shows the recorded page with its styles, time advances, and a click on
// an event of the session jumps to it.
func TestRecordingInBrowser(t *testing.T) {
	dir := snippetSite(t)
	dbPath := filepath.Join(t.TempDir(), "rec.db")
	startCaddy(t, snippetConfig(dbPath, dir, "record on", ""))
	b := StartBrowser(t)
	tab := b.NewTab()

	const typedText, typedPassword = "visible-typed-text-4711", "secret-typed-pw-0815"
	tab.Navigate(base + "/index.html")
	tab.WaitPage(`window.__fpRecording === 'on' && !!document.querySelector('script[src$="/r.js?v='+`+strconv.Quote(collector.SnippetVersion)+`+'"]')`, 15*time.Second)
	sid := Eval[string](tab, `firstparty.get_session_id()`)
	did := Eval[string](tab, `firstparty.get_distinct_id()`)
	if sid == "" || did == "" {
		t.Fatalf("ids: session %q distinct %q", sid, did)
	}
	// The full snapshot goes out at once.
	WaitFor(t, "the full snapshot", 15*time.Second, func() (bool, string) {
		evs := rrwebEvents(t, sid)
		return countType(evs, 2) >= 1 && countType(evs, 4) >= 1, fmt.Sprintf("%d events", len(evs))
	})

	tab.Do(chromedp.SendKeys(chromedp.CSS("#email"), typedText))
	tab.Do(chromedp.SendKeys(chromedp.CSS("#pw"), typedPassword))
	// The recorder sends what it has every few seconds: the text field's
	// value (rrweb records a field's value as it changes, on blur) goes
	// out without the page being left.
	WaitFor(t, "the text input sent by the periodic flush", 15*time.Second, func() (bool, string) {
		n := len(incremental(rrwebEvents(t, sid), 5))
		return n >= 1, fmt.Sprintf("%d input events", n)
	})
	tab.Do(chromedp.Click(chromedp.CSS("#buy")))
	Eval[chromedp.Void](tab, `(() => { const p = document.createElement('p'); p.id = 'added-later'; p.textContent = 'added by a mutation'; document.querySelector('main').prepend(p) })()`)
	// Leaving the page sends the rest with the page-hide beacon.
	tab.DoAndWaitLoad(chromedp.Click(chromedp.CSS("#to-other")))

	var evs []map[string]any
	WaitFor(t, "inputs, the click and the mutation in the recording", 20*time.Second, func() (bool, string) {
		evs = rrwebEvents(t, sid)
		inputs := incremental(evs, 5)
		clicks := 0
		for _, d := range incremental(evs, 2) {
			if num(d["type"]) == 2 {
				clicks++
			}
		}
		raw, _ := json.Marshal(evs)
		return len(inputs) >= 2 && clicks >= 1 && bytes.Contains(raw, []byte("added by a mutation")) && countType(evs, 2) >= 2,
			fmt.Sprintf("%d events, %d inputs, %d clicks, %d full snapshots", len(evs), len(inputs), clicks, countType(evs, 2))
	})
	// Every input is masked: the last value of each field is as many '*'
	// as were typed.
	last := map[float64]string{}
	for _, d := range incremental(evs, 5) {
		last[num(d["id"])] = str(d["text"])
	}
	masked := map[string]bool{}
	for _, v := range last {
		masked[v] = true
	}
	if !masked[strings.Repeat("*", len(typedText))] || !masked[strings.Repeat("*", len(typedPassword))] {
		t.Errorf("inputs not masked as expected: %v", last)
	}

	recs := recordingsList(t)
	var rec *apiRecording
	for i := range recs {
		if recs[i].SessionID == sid {
			rec = &recs[i]
		}
	}
	if rec == nil || rec.DistinctID != did || rec.DurationS <= 0 {
		t.Fatalf("recording of %s not listed right: %s", sid, asJSON(recs))
	}
	// The snippet's events carry the same session.
	pv := named(waitEvents(t, "the page views", has("$pageview", 2)), "$pageview")
	if str(pv[0].Properties["$session_id"]) != sid {
		t.Errorf("$pageview session %v, recording %s", pv[0].Properties["$session_id"], sid)
	}

	// The dashboard: the list links to the replay, which plays.
	dash := b.NewTab()
	dash.Navigate(base + "/analytics/recordings")
	dash.WaitPage(fmt.Sprintf(`!!document.querySelector('#recordings-table tr[data-session=%q] a.watch')`, sid), 15*time.Second)
	// Client-side routing to the replay loads the page again, for its CSP.
	dash.DoAndWaitLoad(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#recordings-table tr[data-session=%q] a.watch`, sid))))
	frame := `document.querySelector('#replay-player iframe')`
	dash.WaitPage(frame+` && `+frame+`.contentDocument && `+frame+`.contentDocument.querySelector('#buy')`, 20*time.Second)
	// The recorded page's stylesheet applies inside the player (.tall is
	// 3000 px high by the page's <style>), so the CSP let it in.
	if h := Eval[float64](dash, frame+`.contentDocument.querySelector('.tall').getBoundingClientRect().height`); h != 3000 {
		t.Errorf("recorded styles not applied in the replay: .tall is %v px high", h)
	}
	if sb := Eval[string](dash, frame+`.getAttribute('sandbox') || ''`); strings.Contains(sb, "allow-scripts") {
		t.Errorf("replay iframe may run scripts: sandbox %q", sb)
	}
	// The player's controls: speeds and skipping inactivity.
	if ctl := Eval[string](dash, `document.querySelector('#replay-player .rr-controller').textContent`); !strings.Contains(ctl, "8x") || !strings.Contains(strings.ToLower(ctl), "skip inactive") {
		t.Errorf("player controls: %q", ctl)
	}
	// Time advances.
	t0 := Eval[float64](dash, `+document.getElementById('replay-player').dataset.time`)
	dash.WaitPage(fmt.Sprintf(`+document.getElementById('replay-player').dataset.time > %v`, t0), 15*time.Second)
	// The session's events are listed beside the player; clicking one
	// jumps there, and the player shows the mutation made after it.
	dash.WaitPage(`document.querySelectorAll('#replay-event-list .replay-ev').length >= 3`, 15*time.Second)
	names := Eval[string](dash, `[...document.querySelectorAll('#replay-event-list .ev-name')].map(e => e.textContent).join(',')`)
	if !strings.Contains(names, "Pageview") && !strings.Contains(names, "pageview") {
		t.Errorf("event list: %s", names)
	}
	clickEvent := func(i string) float64 {
		return Eval[float64](dash, `(() => { const b = [...document.querySelectorAll('#replay-event-list .replay-ev')]; const x = b[`+i+`]; x.click(); return +x.dataset.offset })()`)
	}
	firstOffset := clickEvent("0")
	dash.WaitPage(fmt.Sprintf(`+document.getElementById('replay-player').dataset.time < %v`, firstOffset+400), 10*time.Second)
	lastOffset := clickEvent("b.length - 1")
	dash.WaitPage(fmt.Sprintf(`Math.abs(+document.getElementById('replay-player').dataset.time - %v) < 400`, lastOffset), 10*time.Second)
	if lastOffset-firstOffset < 800 {
		t.Errorf("events only %v ms apart: the jumps prove nothing", lastOffset-firstOffset)
	}
	if ex := append(tab.Exceptions(), dash.Exceptions()...); len(ex) > 0 {
		t.Errorf("page exceptions: %v", ex)
	}
	// Every visitor string is text: the dashboard's own pages have no
	// element the recording made (the replay is inside its iframe).
	if n := Eval[int](dash, `document.querySelectorAll('#buy, #added-later').length`); n != 0 {
		t.Errorf("%d recorded elements in the dashboard's document", n)
	}

	// The person's page lists the recording with a link to watch it, and
	// an event of the session links to it too.
	dash.Navigate(base + "/analytics/persons/" + did)
	watch := fmt.Sprintf(`document.querySelector('#person-recordings tr[data-session=%q] a.watch')`, sid)
	dash.WaitPage(watch, 15*time.Second)
	if href := Eval[string](dash, watch+`.getAttribute('href')`); !strings.HasSuffix(strings.Split(href, "?")[0], "/analytics/recordings/"+sid) {
		t.Errorf("person page's recording link %q", href)
	}
	dash.WaitPage(`!!document.querySelector('#person-events .ev-row')`, 15*time.Second)
	Eval[chromedp.Void](dash, `document.querySelector('#person-events .ev-row').click()`)
	dash.WaitPage(`!!document.querySelector('#person-events .ev-detail a.watch-recording')`, 5*time.Second)
	if href := Eval[string](dash, `document.querySelector('#person-events .ev-detail a.watch-recording').getAttribute('href')`); !strings.Contains(href, "/analytics/recordings/"+sid) {
		t.Errorf("event's recording link %q", href)
	}

	// Nothing typed is stored: not in the API's answers...
	for _, u := range []string{api + "/recordings/" + sid, api + "/events?limit=1000", api + "/export"} {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body := new(bytes.Buffer)
		body.ReadFrom(res.Body)
		res.Body.Close()
		if bytes.Contains(body.Bytes(), []byte(typedText)) || bytes.Contains(body.Bytes(), []byte(typedPassword)) {
			t.Errorf("%s holds a typed value", u)
		}
	}
	// ... nor in the file, raw or decoded, after the store is closed.
	stopCaddy(t)
	raw, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(typedText)) || bytes.Contains(raw, []byte(typedPassword)) {
		t.Error("the database file holds a typed value")
	}
	db, err := store.Open(dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var all []byte
	for _, r := range db.Recordings(context.Background(), "test.example", 0, math.MaxInt64) {
		data, err := db.Recording(context.Background(), "test.example", r.SessionID)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, data...)
	}
	if !bytes.Contains(all, []byte("added by a mutation")) {
		t.Fatal("the reopened file has not the recording")
	}
	err = db.Export(context.Background(), store.Query{Site: "test.example", From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour), TZ: time.UTC}, func(ev *store.Event, pid string) error {
		all = ev.AppendJSON(all, pid)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(all, []byte(`"$pageview"`)) {
		t.Fatal("the reopened file has not the events")
	}
	if bytes.Contains(all, []byte(typedText)) || bytes.Contains(all, []byte(typedPassword)) {
		t.Error("a typed value is stored (decoded from the file)")
	}
}

// TestHeatmapInBrowser: clicks of a visitor come out of /api/heatmap where
// the clicked elements are, and the dashboard's heatmap page shows the
// real page without running its scripts and paints the clicks over those
// elements; the scroll view draws too.
func TestHeatmapInBrowser(t *testing.T) {
	dir := snippetSite(t)
	startCaddy(t, snippetConfig(filepath.Join(t.TempDir(), "heat.db"), dir, "", ""))
	b := StartBrowser(t)
	tab := b.NewTab()
	tab.Navigate(base + "/index.html")
	waitEvents(t, "the page view", has("$pageview", 1))

	type spot struct{ X, Y, W float64 }
	center := func(sel string) spot {
		return Eval[spot](tab, fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect(); return {X: r.left + r.width / 2, Y: r.top + r.height / 2 + scrollY, W: innerWidth} })()`, sel))
	}
	// #buy near the top, #submit further down after a scroll.
	tab.Do(chromedp.Click(chromedp.CSS("#buy")))
	buy := center("#buy")
	Eval[chromedp.Void](tab, `window.scrollTo(0, 60)`)
	tab.Do(chromedp.Click(chromedp.CSS("#submit")))
	submit := center("#submit")
	waitEvents(t, "two clicks", has("$autocapture", 2))

	var hm struct {
		Points []struct{ X, Y, Count float64 }
	}
	getJSON(t, api+"/heatmap?url=/index.html&type=click&viewport=desktop", &hm)
	for name, s := range map[string]spot{"#buy": buy, "#submit": submit} {
		found := false
		for _, p := range hm.Points {
			if math.Abs(p.X-s.X/s.W) <= 0.011 && math.Abs(p.Y-s.Y) <= 10 {
				found = true
			}
		}
		if !found {
			t.Errorf("no heatmap point at %s (x %.3f, y %.0f): %v", name, s.X/s.W, s.Y, hm.Points)
		}
	}
	if buy.W < 1024 {
		t.Fatalf("the visitor's viewport (%v px) is not a desktop one", buy.W)
	}

	// The overlay page.
	dash := b.NewTab()
	dash.Navigate(base + "/analytics/heatmap?url=/index.html&type=click")
	dash.WaitPage(`document.querySelector('#heatmap-canvas') && document.querySelector('#heatmap-canvas').dataset.drawn === '2'`, 20*time.Second)
	if sb := Eval[string](dash, `document.querySelector('#heatmap-frame').getAttribute('sandbox')`); sb != "allow-same-origin" {
		t.Errorf("frame sandbox %q", sb)
	}
	if !Eval[bool](dash, `!!document.querySelector('#heatmap-frame').contentDocument.querySelector('#buy')`) {
		t.Error("the real page is not in the frame")
	}
	// The frame shows the page at the desktop width, so the page's own
	// layout puts #buy where the visitor clicked it; the canvas is painted
	// there and not far away.
	alpha := func(x, y float64) float64 {
		return Eval[float64](dash, fmt.Sprintf(`document.querySelector('#heatmap-canvas').getContext('2d').getImageData(%d, %d, 1, 1).data[3]`, int(x), int(y)))
	}
	for name, s := range map[string]spot{"#buy": buy, "#submit": submit} {
		fx := Eval[spot](dash, fmt.Sprintf(`(() => { const d = document.querySelector('#heatmap-frame').contentDocument; const r = d.querySelector(%q).getBoundingClientRect(); return {X: r.left + r.width / 2, Y: r.top + r.height / 2, W: d.documentElement.clientWidth} })()`, name))
		if math.Abs(fx.X-s.X) > 2 || math.Abs(fx.Y-s.Y) > 2 {
			t.Errorf("%s is at (%v, %v) in the frame, the visitor clicked (%v, %v)", name, fx.X, fx.Y, s.X, s.Y)
		}
		if a := alpha(s.X/s.W*1280, s.Y); a < 100 {
			t.Errorf("no paint over %s: alpha %v", name, a)
		}
	}
	if a := alpha(1200, 2500); a != 0 {
		t.Errorf("paint where nobody clicked: alpha %v", a)
	}
	// The frame ran no script: no page view came from it.
	Eval[chromedp.Void](tab, `firstparty.capture('flush_marker')`)
	evs := waitEvents(t, "the marker", has("flush_marker", 1))
	if n := len(named(evs, "$pageview")); n != 1 {
		t.Errorf("%d page views: the heatmap frame counted one", n)
	}

	// Scroll depth: the visitor leaves, the $pageleave carries the depth.
	Eval[chromedp.Void](tab, `window.scrollTo(0, 1200)`)
	tab.WaitPage(`scrollY >= 1200`, 5*time.Second)
	tab.DoAndWaitLoad(chromedp.Navigate(base + "/other.html"))
	waitEvents(t, "the page leave", has("$pageleave", 1))
	dash.Navigate(base + "/analytics/heatmap?url=/index.html&type=scroll")
	dash.WaitPage(`document.querySelector('#heatmap-canvas') && +document.querySelector('#heatmap-canvas').dataset.drawn > 10`, 20*time.Second)
	// Above the deepest point reached nothing is shaded; far below it is.
	if a := alpha(640, 500); a != 0 {
		t.Errorf("shade over a part every view reached: alpha %v", a)
	}
	if a := alpha(640, 2800); a < 100 {
		t.Errorf("no shade below the deepest scroll: alpha %v", a)
	}
	if ex := append(tab.Exceptions(), dash.Exceptions()...); len(ex) > 0 {
		t.Errorf("page exceptions: %v", ex)
	}
}

// TestPosthogRecordingThroughCaddy: a posthog-js style recording batch
// (gzip sent as text/plain, the full snapshot compressed as a string of
// bytes under cv "2024-10") is stored and replayable: the API answers the
// plain rrweb events.
func TestPosthogRecordingThroughCaddy(t *testing.T) {
	startCaddy(t, config(filepath.Join(t.TempDir(), "ph.db"), "record on 50%"))
	full := `{"node":{"type":0,"childNodes":[{"type":2,"tagName":"html","attributes":{},"childNodes":[],"id":2}],"id":1},"initialOffset":{"top":0,"left":0}}`
	var latin []rune
	for _, c := range gzipped([]byte(full)) {
		latin = append(latin, rune(c))
	}
	data, _ := json.Marshal(string(latin))
	now := time.Now().UnixMilli()
	body := fmt.Sprintf(`[{"event":"$snapshot","properties":{"$snapshot_data":[
	  {"type":4,"data":{"href":"https://test.example/","width":1280,"height":800},"timestamp":%d},
	  {"type":2,"cv":"2024-10","data":%s,"timestamp":%d},
	  {"type":3,"data":{"source":2,"type":2,"id":2,"x":5,"y":6},"timestamp":%d}],
	  "$session_id":"ph-sess","$window_id":"ph-win","distinct_id":"ph-anon","token":"phc_x"},"timestamp":"%s"}]`,
		now, data, now+1, now+2500, time.Now().UTC().Format(time.RFC3339))
	code, resp := post(t, "/s/", gzipped([]byte(body)), map[string]string{"Content-Type": "text/plain"})
	if code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	evs := rrwebEvents(t, "ph-sess")
	if len(evs) != 3 {
		t.Fatalf("stored %s", asJSON(evs))
	}
	if _, ok := evs[1]["cv"]; ok || evs[1]["data"].(map[string]any)["node"] == nil {
		t.Errorf("full snapshot not decoded: %s", asJSON(evs[1]))
	}
	recs := recordingsList(t)
	if len(recs) != 1 || recs[0].SessionID != "ph-sess" || recs[0].DistinctID != "ph-anon" || recs[0].DurationS != 2.5 {
		t.Errorf("recordings %s", asJSON(recs))
	}
	// posthog-js is told to sample half the sessions.
	var cfg struct {
		SessionRecording struct {
			SampleRate *string `json:"sampleRate"`
			Endpoint   string  `json:"endpoint"`
		} `json:"sessionRecording"`
	}
	getJSON(t, endpoint+"/array/phc_x/config", &cfg)
	if cfg.SessionRecording.SampleRate == nil || *cfg.SessionRecording.SampleRate != "0.5" || cfg.SessionRecording.Endpoint != "/s/" {
		t.Errorf("remote config %s", asJSON(cfg))
	}
}

// sampledIn is r.js's sampling decision for a session id (FNV-1a of the
// id, as a fraction of 2^32, below the rate).
func sampledIn(sid string, rate float64) bool {
	h := uint32(2166136261)
	for _, c := range sid {
		h ^= uint32(c)
		h *= 16777619
	}
	return float64(h)/4294967296 < rate
}

// TestRecordingSampled: with `record on 50%`, the snippet tag carries the
// rate and r.js records a session or not as its id decides, the same on
// every page of the session; a session left out sends no recording.
func TestRecordingSampled(t *testing.T) {
	dir := snippetSite(t)
	startCaddy(t, snippetConfig(filepath.Join(t.TempDir(), "sample.db"), dir, "record on 50%", ""))
	b := StartBrowser(t)
	seen := map[bool]string{}
	for i := 0; i < 12 && len(seen) < 2; i++ {
		tab := b.NewTab(Isolated())
		tab.Navigate(base + "/index.html")
		if tag := Eval[string](tab, `document.querySelector('script[data-record]').dataset.recordSample || ''`); tag != "0.5" {
			t.Fatalf("data-record-sample %q", tag)
		}
		tab.WaitPage(`window.__fpRecording === 'on' || window.__fpRecording === 'out'`, 15*time.Second)
		sid := Eval[string](tab, `firstparty.get_session_id()`)
		on := Eval[string](tab, `window.__fpRecording`) == "on"
		if want := sampledIn(sid, 0.5); on != want {
			t.Fatalf("session %s: recording %v, want %v", sid, on, want)
		}
		// The next page of the session decides alike.
		tab.Navigate(base + "/other.html")
		tab.WaitPage(`window.__fpRecording === 'on' || window.__fpRecording === 'out'`, 15*time.Second)
		if again := Eval[string](tab, `firstparty.get_session_id() + ' ' + window.__fpRecording`); again != sid+" "+map[bool]string{true: "on", false: "out"}[on] {
			t.Fatalf("second page: %s, first: %s %v", again, sid, on)
		}
		if _, ok := seen[on]; !ok {
			seen[on] = sid
		}
	}
	if len(seen) < 2 {
		t.Fatalf("12 sessions all decided alike: %v", seen)
	}
	// The recorded session is stored; by the time it is, the other one
	// (recorded earlier or later, but never) is not.
	WaitFor(t, "the sampled session's recording", 15*time.Second, func() (bool, string) {
		evs := rrwebEvents(t, seen[true])
		return countType(evs, 2) >= 1, fmt.Sprintf("%d events", len(evs))
	})
	for _, r := range recordingsList(t) {
		if r.SessionID == seen[false] {
			t.Errorf("session %s was sampled out but recorded", r.SessionID)
		}
	}
}

// TestRecordingNewSession: when the visitor comes back after 30 minutes
// idle, the snippet starts a new session and the recorder begins its
// recording with a full snapshot of the page as it is now.
func TestRecordingNewSession(t *testing.T) {
	dir := snippetSite(t)
	startCaddy(t, snippetConfig(filepath.Join(t.TempDir(), "newsess.db"), dir, "record on", ""))
	tab := StartBrowser(t).NewTab()
	tab.Navigate(base + "/index.html")
	tab.WaitPage(`window.__fpRecording === 'on'`, 15*time.Second)
	first := Eval[string](tab, `firstparty.get_session_id()`)
	WaitFor(t, "the first session's full snapshot", 15*time.Second, func() (bool, string) {
		evs := rrwebEvents(t, first)
		return countType(evs, 2) >= 1, fmt.Sprintf("%d events", len(evs))
	})
	// 31 minutes pass; the page changes meanwhile; the visitor acts.
	Eval[chromedp.Void](tab, `(() => { const real = Date.now; Date.now = () => real() + 31 * 60 * 1000;
		const p = document.createElement('p'); p.id = 'after-idle'; p.textContent = 'state after idle'; document.body.prepend(p) })()`)
	WaitFor(t, "a new session", 15*time.Second, func() (bool, string) {
		tab.Do(chromedp.MouseClickXY(200, 200))
		s := Eval[string](tab, `firstparty.get_session_id()`)
		return s != first, s
	})
	second := Eval[string](tab, `firstparty.get_session_id()`)
	WaitFor(t, "the new session's recording to start with a full snapshot", 15*time.Second, func() (bool, string) {
		evs := rrwebEvents(t, second)
		if len(evs) == 0 {
			return false, "none"
		}
		raw, _ := json.Marshal(evs)
		firstType := num(evs[0]["type"])
		return (firstType == 4 || firstType == 2) && countType(evs, 2) >= 1 && bytes.Contains(raw, []byte("state after idle")),
			fmt.Sprintf("%d events, first of type %v, types %v", len(evs), firstType, func() (ts []any) {
				for _, e := range evs {
					ts = append(ts, e["type"])
				}
				return
			}())
	})
	if n := len(recordingsList(t)); n != 2 {
		t.Errorf("%d recordings, want 2", n)
	}
}

// TestPosthogJSRecordingInBrowser: the real posthog-js recorder (its
// recorder bundle loaded beside array.js, as an npm build does) records
// against Firstparty with `record on`: its /s/ payloads (gzip, cv
// "2024-10" full snapshots) are stored under posthog-js's session id,
// decoded, replayable, and without what was typed into inputs.
func TestPosthogJSRecordingInBrowser(t *testing.T) {
	bundle := posthogJS(t)
	recorder, err := os.ReadFile(filepath.Join("testdata", "posthog-js", "node_modules", "posthog-js", "dist", "lazy-recorder.js"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "vendor"), 0o755)
	os.WriteFile(filepath.Join(dir, "vendor", "array.js"), bundle, 0o644)
	os.WriteFile(filepath.Join(dir, "vendor", "recorder.js"), recorder, 0o644)
	os.WriteFile(filepath.Join(dir, "rec.html"), []byte(`<!doctype html>
<html><head><meta charset="utf-8"><title>Recorded by posthog-js</title>
<script src="/vendor/array.js"></script>
<script src="/vendor/recorder.js"></script>
<script src="/init.js"></script>
</head><body>
<h1 id="ph-title">Checkout</h1>
<input id="ph-name" type="text">
<input id="ph-pass" type="password">
<button id="ph-pay">Pay</button>
</body></html>
`), 0o644)
	os.WriteFile(filepath.Join(dir, "init.js"), []byte(`posthog.init('phc_rec', {api_host: location.origin + '/_f'})`), 0o644)
	startCaddy(t, fmt.Sprintf(testGlobal+`http://127.0.0.1:9080 {
	bind 127.0.0.1
	analytics {
		db %s
		site test.example
		rate_limit off
		record on
	}
	root * %s
	file_server
}
`, filepath.Join(t.TempDir(), "phrec.db"), dir))

	tab := StartBrowser(t).NewTab()
	tab.Navigate(base + "/rec.html")
	tab.WaitPage(`window.posthog && posthog.__loaded && window._POSTHOG_REMOTE_CONFIG && _POSTHOG_REMOTE_CONFIG.phc_rec && posthog.sessionRecordingStarted()`, 20*time.Second)
	session := Eval[string](tab, `posthog.get_session_id()`)
	tab.Do(chromedp.SendKeys(chromedp.CSS("#ph-name"), "ph-visible-name"))
	tab.Do(chromedp.SendKeys(chromedp.CSS("#ph-pass"), "ph-secret-pass"))
	tab.Do(chromedp.Click(chromedp.CSS("#ph-pay")))
	// posthog-js flushes its snapshot buffer on a timer; wait for the full
	// snapshot and the typing to be stored.
	var evs []map[string]any
	WaitFor(t, "posthog-js's recording with a full snapshot and input events", 30*time.Second, func() (bool, string) {
		evs = rrwebEvents(t, session)
		full := 0
		for _, e := range evs {
			if e["type"] == float64(2) {
				full++
			}
		}
		inputs := len(incremental(evs, 5))
		return full > 0 && inputs > 0, fmt.Sprintf("%d events, %d full, %d input", len(evs), full, inputs)
	})
	raw := asJSON(evs)
	for _, e := range evs {
		if _, ok := e["cv"]; ok {
			t.Fatalf("a compressed (cv) snapshot was stored as is: %.300s", asJSON(e))
		}
	}
	if !strings.Contains(raw, "Checkout") || !strings.Contains(raw, "ph-pay") {
		t.Errorf("the full snapshot lacks the page: %.500s", raw)
	}
	if strings.Contains(raw, "ph-secret-pass") {
		t.Error("the typed password is in the recording")
	}
	var found bool
	for _, r := range recordingsList(t) {
		found = found || r.SessionID == session
	}
	if !found {
		t.Errorf("session %s not listed: %s", session, asJSON(recordingsList(t)))
	}
	// The dashboard replays it: the recorded page is rebuilt in the player.
	dash := StartBrowser(t).NewTab()
	dash.Navigate(base + "/analytics/recordings/" + session)
	frame := `document.querySelector('#replay-player iframe')`
	dash.WaitPage(frame+` && `+frame+`.contentDocument && `+frame+`.contentDocument.getElementById('ph-title')?.textContent === 'Checkout'`, 20*time.Second)
}
