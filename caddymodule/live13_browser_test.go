package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// capture13 posts events (timestamps as time.Time) through /batch/.
func capture13(t *testing.T, evs ...map[string]any) {
	t.Helper()
	dashLoad(t, evs)
}

func ev13(event, did string, at time.Time, props map[string]any) map[string]any {
	if props == nil {
		props = map[string]any{}
	}
	return map[string]any{"event": event, "distinct_id": did, "timestamp": at, "properties": props}
}

func pv13(did, path string, at time.Time) map[string]any {
	return ev13("$pageview", did, at, map[string]any{"$current_url": "https://test.example" + path, "$session_id": "s-" + did})
}

// shot13 writes a full-page screenshot of the tab to
// $FIRSTPARTY_SCREENSHOTS (else a temporary directory) and checks that it
// is a real picture.
func shot13(t *testing.T, d *dashTab, name string) {
	t.Helper()
	dir := os.Getenv("FIRSTPARTY_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(d.Ctx, 20*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	file := filepath.Join(dir, name+".png")
	if err := os.WriteFile(file, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	checkImage(t, file, buf)
}

const liveRows = `[...document.querySelectorAll('#live-stream li')]`
const livePages = `[...document.querySelectorAll('#live-pages .rank-row')].map((r) => r.querySelector('.rank-label').textContent)`

// TestLiveLastFiveMinutesInBrowser: the live view opens with the events of
// the last five minutes (an event of three minutes ago is listed and
// counted at once, one of ten minutes ago is not), names persons by their
// email, adds what arrives, and lets an event leave the list and the
// counts when it is five minutes old.
func TestLiveLastFiveMinutesInBrowser(t *testing.T) {
	findChromium(t)
	startCaddy(t, config(filepath.Join(t.TempDir(), "live13.db"), ""))
	now := time.Now().UTC()
	capture13(t,
		ev13("$identify", "carol-user", now.Add(-20*time.Minute), map[string]any{"$anon_distinct_id": "carol-anon", "$set": map[string]any{"email": "carol@example.com"}}),
		pv13("old-visitor", "/old", now.Add(-10*time.Minute)),
		pv13("ada-anon", "/pricing", now.Add(-3*time.Minute)),
		ev13("$identify", "ada-user", now.Add(-3*time.Minute+time.Second), map[string]any{"$anon_distinct_id": "ada-anon", "$set": map[string]any{"email": "ada@example.com"}}),
		pv13("bob", "/docs", now.Add(-4*time.Minute)),
		// Leaves the window a few seconds after the page opens.
		pv13("dave", "/leaving", now.Add(-5*time.Minute+9*time.Second)),
	)
	var count struct{ Online int }
	getJSON(t, api+"/live/count", &count)
	if count.Online != 3 {
		t.Fatalf("API online %d, want 3 (ada, bob, dave)", count.Online)
	}

	d := openDash(t, StartBrowser(t))
	d.Navigate(dashURL("/live", nil))
	// At once, without any new event: the last five minutes.
	d.until("the last five minutes listed and counted",
		liveRows+`.length === 4 && document.getElementById('online-count').textContent === '3' && document.getElementById('live-pageviews').textContent === '3'`)
	stream := Eval[string](d.Tab, `document.getElementById('live-stream').innerText`)
	for _, want := range []string{"/pricing", "/docs", "/leaving", "ada@example.com", "bob", "dave"} {
		if !strings.Contains(stream, want) {
			t.Errorf("live list lacks %q:\n%s", want, stream)
		}
	}
	for _, not := range []string{"/old", "old-visitor", "ada-anon"} {
		if strings.Contains(stream, not) {
			t.Errorf("live list shows %q (older than 5 minutes, or an id where the email is known):\n%s", not, stream)
		}
	}
	pages := Eval[[]string](d.Tab, livePages)
	if len(pages) != 3 || !slices.Contains(pages, "/pricing") || !slices.Contains(pages, "/docs") || !slices.Contains(pages, "/leaving") {
		t.Errorf("pages viewed now %v, want /pricing, /docs, /leaving", pages)
	}
	// Persons in the list agree with "online".
	persons := Eval[int](d.Tab, `new Set(`+liveRows+`.map((li) => li.querySelector('.live-person').getAttribute('href').split('?')[0])).size`)
	if persons != 3 {
		t.Errorf("%d persons in the list, online says 3", persons)
	}
	shot13(t, d, "live")

	// What arrives is added, named, and counted.
	d.until("the stream connected", `document.getElementById('live-state').textContent === 'Connected'`)
	capture13(t, pv13("carol-user", "/new", time.Now().UTC()))
	d.until("carol's pageview streamed and counted",
		liveRows+`[0]?.textContent.includes('/new') && `+liveRows+`[0].textContent.includes('carol@example.com') && document.getElementById('online-count').textContent === '4' && `+livePages+`.includes('/new')`)

	// The window slides: dave's pageview leaves the list and the counts.
	WaitFor(t, "dave's pageview to leave the window", 40*time.Second, func() (bool, string) {
		v, err := evalJS[string](d, `document.getElementById('online-count').textContent + ' ' + document.getElementById('live-pageviews').textContent + ' | ' + `+livePages+`.join(',') + ' | ' + document.getElementById('live-stream').innerText.replace(/\n/g, ' ')`)
		if err != nil {
			return false, err.Error()
		}
		ok, _ := evalJS[bool](d, `document.getElementById('online-count').textContent === '3' && document.getElementById('live-pageviews').textContent === '3' && !`+livePages+`.includes('/leaving') && !document.getElementById('live-stream').innerText.includes('/leaving')`)
		return ok, v
	})
	d.noErrors("live")
}

// TestNamesInBrowser: the events list, the recordings list and the replay
// page name an identified person by their email, for the events sent with
// the anonymous id too; the APIs carry it as `person`.
func TestNamesInBrowser(t *testing.T) {
	findChromium(t)
	startCaddy(t, config(filepath.Join(t.TempDir(), "names13.db"), "record on"))
	now := time.Now().UTC()
	capture13(t,
		pv13("anon-1", "/", now.Add(-2*time.Hour)),
		ev13("$identify", "user-1", now.Add(-2*time.Hour+time.Second), map[string]any{"$anon_distinct_id": "anon-1", "$set": map[string]any{"email": "grace@example.com"}, "$session_id": "s-anon-1"}),
		pv13("stranger", "/about", now.Add(-time.Hour)),
	)
	postRecording13(t, "anon-1", "s-anon-1", now.Add(-2*time.Hour))

	var evs struct {
		Results []struct {
			DistinctID string `json:"distinct_id"`
			Person     string `json:"person"`
		} `json:"results"`
	}
	getJSON(t, api+"/events", &evs)
	if len(evs.Results) != 3 {
		t.Fatalf("events %+v", evs.Results)
	}
	for _, e := range evs.Results {
		want := "grace@example.com"
		if e.DistinctID == "stranger" {
			want = "stranger"
		}
		if e.Person != want {
			t.Errorf("API event of %s: person %q, want %q", e.DistinctID, e.Person, want)
		}
	}
	var recs struct {
		Results []struct {
			Person string `json:"person"`
		} `json:"results"`
	}
	getJSON(t, api+"/recordings?from="+url.QueryEscape(now.Add(-24*time.Hour).Format(time.RFC3339)), &recs)
	if len(recs.Results) != 1 || recs.Results[0].Person != "grace@example.com" {
		t.Fatalf("API recordings %+v, want one of grace@example.com", recs.Results)
	}

	d := openDash(t, StartBrowser(t))
	d.Navigate(dashURL("/events", nil))
	d.until("the events listed", loaded+` && document.querySelectorAll('#events-table tr.ev-row').length === 3`)
	shown := Eval[[]string](d.Tab, `[...document.querySelectorAll('#events-table .ev-person')].map((a) => a.textContent)`)
	if fmt.Sprint(shown) != "[stranger grace@example.com grace@example.com]" {
		t.Errorf("events list shows persons %v, want stranger and grace@example.com twice", shown)
	}
	d.Navigate(dashURL("/recordings", nil))
	d.until("the recording listed", loaded+` && document.querySelector('#recordings-table .rec-person')`)
	if got := Eval[string](d.Tab, `document.querySelector('#recordings-table .rec-person').textContent`); got != "grace@example.com" {
		t.Errorf("recordings list shows %q, want grace@example.com", got)
	}
	d.js(`document.querySelector('#recordings-table a.watch').click()`)
	d.until("the replay names the person", `document.getElementById('replay-person')?.textContent === 'grace@example.com'`)
	d.noErrors("names")
}

// postRecording13 stores a small rrweb recording of a session.
func postRecording13(t *testing.T, did, session string, at time.Time) {
	t.Helper()
	ms := at.UnixMilli()
	page := map[string]any{"type": 0, "id": 1, "childNodes": []any{
		map[string]any{"type": 2, "id": 2, "tagName": "html", "attributes": map[string]any{}, "childNodes": []any{
			map[string]any{"type": 2, "id": 3, "tagName": "head", "attributes": map[string]any{}, "childNodes": []any{}},
			map[string]any{"type": 2, "id": 4, "tagName": "body", "attributes": map[string]any{}, "childNodes": []any{
				map[string]any{"type": 2, "id": 5, "tagName": "p", "attributes": map[string]any{}, "childNodes": []any{
					map[string]any{"type": 3, "id": 6, "textContent": "hello"}}},
			}},
		}},
	}}
	body, _ := json.Marshal([]any{map[string]any{"event": "$snapshot", "properties": map[string]any{
		"distinct_id": did, "$session_id": session, "$window_id": "w",
		"$snapshot_data": []any{
			map[string]any{"type": 4, "timestamp": ms, "data": map[string]any{"href": "https://test.example/", "width": 800, "height": 600}},
			map[string]any{"type": 2, "timestamp": ms + 1, "data": map[string]any{"node": page, "initialOffset": map[string]any{"left": 0, "top": 0}}},
			map[string]any{"type": 3, "timestamp": ms + 3000, "data": map[string]any{"source": 1, "positions": []any{map[string]any{"x": 5, "y": 5, "id": 5, "timeOffset": 0}}}},
		}}}})
	if code, resp := post(t, "/s/", body, map[string]string{"Content-Type": "application/json"}); code != 200 {
		t.Fatalf("posting a recording: %d %s", code, resp)
	}
}

// watchOnCard is true when the person page's "Watch recording" button lies
// inside its card and is what a click at its centre reaches (not clipped
// by a scrolled table).
const watchOnCard = `(() => {
	const card = document.getElementById('person-recordings');
	const btn = card && card.querySelector('a.watch');
	if (!btn) return false;
	btn.scrollIntoView({ block: 'center', inline: 'nearest' });
	const c = card.getBoundingClientRect(), b = btn.getBoundingClientRect();
	const wrap = card.querySelector('.table-wrap');
	const hit = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
	return b.width > 0 && b.left >= c.left && b.right <= c.right && b.top >= c.top && b.bottom <= c.bottom &&
		wrap.scrollWidth <= wrap.clientWidth + 1 && !!hit && btn.contains(hit);
})()`

// TestPersonCardAndPhoneBarInBrowser: on the person page "Watch recording"
// is within its card at desktop and phone widths; at 390 px the top bar
// shows that more sections are off to the right (a fade and a "›" that
// scrolls them into view), and none when they all fit.
func TestPersonCardAndPhoneBarInBrowser(t *testing.T) {
	findChromium(t)
	startCaddy(t, config(filepath.Join(t.TempDir(), "card13.db"), "record on"))
	now := time.Now().UTC()
	capture13(t,
		pv13("anon-2", "/", now.Add(-time.Hour)),
		ev13("$identify", "user-2", now.Add(-time.Hour+time.Second), map[string]any{"$anon_distinct_id": "anon-2", "$set": map[string]any{"email": "a.very.long.address.for.layout@example.com", "name": "Linus"}, "$session_id": "s-anon-2"}),
	)
	postRecording13(t, "anon-2", "s-anon-2", now.Add(-time.Hour))

	d := openDash(t, StartBrowser(t))
	for _, w := range []int64{1280, 1024, 390} {
		opts := []chromedp.EmulateViewportOption{}
		if w < 720 {
			opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateScale(2)) // a phone, its screenshot at 2x
		}
		d.Do(chromedp.EmulateViewport(w, 844, opts...))
		d.Navigate(dashURL("/persons/user-2", nil))
		d.until(fmt.Sprintf("Watch recording on the card at %d px", w), watchOnCard)
	}
	// Nothing of the person page sticks out to the right on a phone.
	if over := Eval[string](d.Tab, `(() => { const w = document.documentElement.clientWidth; if (document.documentElement.scrollWidth <= w) return '';
		return document.documentElement.scrollWidth + ' > ' + w + ': ' + [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > w + 1).slice(0, 6)
			.map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + String(e.className)).join(', '); })()`); over != "" {
		t.Errorf("the person page overflows at 390 px: %s", over)
	}
	d.js(`scrollTo(0, 0)`)
	shot13(t, d, "person-phone")

	// The phone's top bar: sections hidden to the right are announced.
	d.Do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	d.Navigate(dashURL("/", nil))
	d.until("the top bar's hint", `document.getElementById('nav').scrollWidth > document.getElementById('nav').clientWidth &&
		!document.getElementById('nav-more').hidden && document.getElementById('navwrap').classList.contains('more-right')`)
	hint := Eval[map[string]any](d.Tab, `(() => {
		const b = document.getElementById('nav-more').getBoundingClientRect();
		const n = document.getElementById('nav').getBoundingClientRect();
		return { fade: getComputedStyle(document.getElementById('navwrap'), '::after').opacity, left: b.left, right: b.right, w: b.width, top: b.top, navTop: n.top, navBottom: n.bottom, vw: innerWidth };
	})()`)
	if hint["fade"] != "1" || hint["w"].(float64) < 20 || hint["right"].(float64) > hint["vw"].(float64) || hint["top"].(float64) < hint["navTop"].(float64)-4 || hint["top"].(float64) > hint["navBottom"].(float64) {
		t.Errorf("the top bar's hint is not visible at 390 px: %v", hint)
	}
	// "›" brings the hidden sections into view, until the last.
	for i := 0; i < 10 && !Eval[bool](d.Tab, `document.getElementById('nav-more').hidden`); i++ {
		before := Eval[float64](d.Tab, `document.getElementById('nav').scrollLeft`)
		d.js(`document.getElementById('nav-more').click()`)
		// Most of a width further, or to the end; the scroll is smooth:
		// wait until it has arrived.
		d.until("the sections scrolled", `((n) => n.scrollLeft >= Math.min(`+strconv.FormatFloat(before, 'f', -1, 64)+` + Math.max(80, n.clientWidth * 0.7), n.scrollWidth - n.clientWidth) - 1)(document.getElementById('nav'))`)
	}
	d.until("the last section in view and the hint gone", `document.getElementById('nav-more').hidden &&
		(() => { const a = [...document.querySelectorAll('#nav a')].pop().getBoundingClientRect(); return a.right <= innerWidth + 1; })() &&
		document.getElementById('navwrap').classList.contains('more-left')`)
	// The current section is scrolled into view on a deep link.
	d.Navigate(dashURL("/settings", nil))
	d.until("Settings in view", `(() => { const a = document.querySelector('#nav a.active'); const r = a.getBoundingClientRect(); return a.dataset.page === 'settings' && r.left >= 0 && r.right <= innerWidth + 1; })()`)

	// Wide enough for every section: no hint.
	d.Do(chromedp.EmulateViewport(2400, 900))
	d.Navigate(dashURL("/", nil))
	d.until("no hint when all fit", `document.getElementById('nav').scrollWidth <= document.getElementById('nav').clientWidth && document.getElementById('nav-more').hidden`)
	d.noErrors("person card and top bar")
}

// TestScreenshots13InBrowser writes the overview, goals and persons pages
// over generated traffic with two goals, for a person to look at
// (FIRSTPARTY_SCREENSHOTS=dir; a temporary directory otherwise), and
// checks that each is a real picture of a finished page.
func TestScreenshots13InBrowser(t *testing.T) {
	findChromium(t)
	startCaddy(t, dashConfig(filepath.Join(t.TempDir(), "shots13.db")))
	newDashWorld(t, 300)
	for _, g := range []string{`{"name":"Signed up","event":"signed_up"}`, `{"name":"Saw pricing","path":"/pricing*"}`} {
		if code, res := send(t, "POST", api+"/goals", []byte(g), map[string]string{"Content-Type": "application/json"}); code != 201 {
			t.Fatalf("POST /goals %s: %d %s", g, code, res)
		}
	}
	d := openDash(t, StartBrowser(t))
	for _, p := range []struct{ name, path, ready string }{
		{"overview", "/", overviewReady + ` && document.querySelectorAll('#panel-goals .goal-rate').length === 2`},
		{"goals", "/goals", loaded + ` && document.querySelectorAll('#goals-table tbody tr').length === 2`},
		{"persons", "/persons", loaded + ` && document.querySelectorAll('#persons-table tbody tr').length > 50`},
	} {
		d.Navigate(dashURL(p.path, nil))
		d.until(p.name, p.ready)
		shot13(t, d, p.name)
	}
	d.noErrors("screenshots")
}
