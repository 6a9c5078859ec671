package caddymodule_test

// Recording privacy (SPEC §5.1, docs/security-recording.md): what a visitor
// types never reaches the file, whether our recorder masks it in the
// browser or a recorder that does not mask sends it to the server.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/tidwall/buntdb"

	"github.com/firstpartyhq/firstparty/store"
)

// maskHook runs before the page's scripts: the recorder then posts plain
// JSON (no CompressionStream), and every body it sends to /s/ is kept in
// window.__fpSent, so the test sees what left the browser.
const maskHook = `(() => {
  window.CompressionStream = undefined;
  window.__fpSent = [];
  const f = window.fetch;
  window.fetch = function (u, o) {
    try { if (String(u).includes('/s/') && o && typeof o.body === 'string') window.__fpSent.push(o.body) } catch (e) {}
    return f.apply(this, arguments);
  };
  const sb = navigator.sendBeacon.bind(navigator);
  navigator.sendBeacon = function (u, b) {
    try { if (String(u).includes('/s/') && typeof b === 'string') window.__fpSent.push(b) } catch (e) {}
    return sb(u, b);
  };
})()`

const maskPageHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>Mask</title></head>
<body>
<form id="f" onsubmit="return false">
  <input id="in" type="text" name="q">
  <input id="hid" type="hidden" name="token" value="hidden-secret-93d1">
  <textarea id="ta" name="note"></textarea>
  <select id="sel" name="plan"><option value="">choose</option><option value="plan-pro">Pro</option></select>
</form>
<div id="ce" contenteditable="true" style="min-height:3em;border:1px solid"></div>
<p id="fm" data-fp-mask>fpmask-secret-5e0a</p>
<p id="ctl">initial text</p>
</body></html>
`

// What the visitor types, and what the page holds that must stay out.
const (
	typedInput    = "typed-input-7c41"
	typedArea     = "typed-area-02be"
	typedEdit1    = "typed-edit-one-a9f3"
	typedEdit2    = "typed-edit-two-61cd"
	hiddenSecret  = "hidden-secret-93d1"
	fpMaskSecret  = "fpmask-secret-5e0a"
	controlText   = "control-by-script-4b7e"
	controlMarker = "control-event-d20c"
)

var maskSecrets = []string{typedInput, typedArea, typedEdit1, typedEdit2, hiddenSecret, fpMaskSecret}

// TestRecordingMaskInBrowser: with `record on`, a visitor types with real
// key events into a text input, a textarea and a contenteditable element
// (two lines), chooses a select option with the keyboard; the page has a
// hidden input and a [data-fp-mask] element with secrets. None of these
// strings leaves the browser (the recorder's request bodies), is in the
// recording API's answer or in the database (every file raw, and the store
// decoded: recordings, events, every block decompressed). A text the
// page's script writes is recorded, in all of them: the check finds what
// is there.
func TestRecordingMaskInBrowser(t *testing.T) {
	dir := snippetSite(t)
	if err := os.WriteFile(filepath.Join(dir, "mask.html"), []byte(maskPageHTML), 0o644); err != nil {
		t.Fatal(err)
	}
	dbDir := t.TempDir()
	dbPath := filepath.Join(dbDir, "mask.db")
	startCaddy(t, snippetConfig(dbPath, dir, "record on", ""))
	b := StartBrowser(t)
	tab := b.NewTab(InitScript(maskHook))
	tab.Navigate(base + "/mask.html")
	tab.WaitPage(`window.__fpRecording === 'on'`, 15*time.Second)
	sid := Eval[string](tab, `firstparty.get_session_id()`)
	WaitFor(t, "the full snapshot", 15*time.Second, func() (bool, string) {
		evs := rrwebEvents(t, sid)
		return countType(evs, 2) >= 1, fmt.Sprintf("%d events", len(evs))
	})

	tab.Do(
		chromedp.SendKeys(chromedp.CSS("#in"), typedInput),
		chromedp.SendKeys(chromedp.CSS("#ta"), typedArea),
		chromedp.SendKeys(chromedp.CSS("#ce"), typedEdit1+kb.Enter+typedEdit2),
		chromedp.SendKeys(chromedp.CSS("#sel"), kb.ArrowDown),
		chromedp.Click(chromedp.CSS("#ctl")), // blurs the select: its change event
	)
	// The keys reached the page.
	state := Eval[string](tab, `[document.querySelector('#in').value, document.querySelector('#ta').value, document.querySelector('#ce').innerText.replace(/\s+/g, ' '), document.querySelector('#sel').value].join('|')`)
	if want := typedInput + "|" + typedArea + "|" + typedEdit1 + " " + typedEdit2 + "|plan-pro"; state != want {
		t.Fatalf("the page holds %q, typed %q", state, want)
	}
	// The page's script writes text (a text change and an added node), and
	// the page sends an event, after everything typed.
	Eval[chromedp.Void](tab, `(() => { const p = document.querySelector('#ctl'); p.firstChild.data = '`+controlText+`'; p.appendChild(document.createTextNode(' and more')); firstparty.capture('mask_marker', {marker: '`+controlMarker+`'}) })()`)

	// The periodic flush sends it all.
	var answer []byte
	WaitFor(t, "the script's text in the recording", 20*time.Second, func() (bool, string) {
		res, err := http.Get(api + "/recordings/" + sid)
		if err != nil {
			return false, err.Error()
		}
		answer, _ = io.ReadAll(res.Body)
		res.Body.Close()
		return bytes.Contains(answer, []byte(controlText)), fmt.Sprintf("%d bytes", len(answer))
	})
	waitEvents(t, "the marker event", has("mask_marker", 1))

	// What left the browser.
	sent := Eval[string](tab, `window.__fpSent.join('\n')`)
	if !strings.Contains(sent, controlText) {
		t.Fatalf("the request bodies do not hold the script's text: the hook saw nothing (%d bytes)", len(sent))
	}
	absent(t, "the recorder's requests", sent)
	// The recording API's answer.
	absent(t, "GET /api/recordings/{id}", string(answer))
	for _, u := range []string{api + "/events?limit=1000", api + "/export"} {
		_, body := send(t, "GET", u, nil, nil)
		if u == api+"/export" && !strings.Contains(body, controlMarker) {
			t.Errorf("%s lacks the marker event", u)
		}
		absent(t, u, body)
	}

	// The recording as rrweb events: typing made input and text-change
	// events, masked; the select's value is '***'; no state of a choice.
	var evs []map[string]any
	if err := json.Unmarshal(answer, &evs); err != nil {
		t.Fatal(err)
	}
	selID, ceID := nodeID(evs, "sel"), nodeID(evs, "ce")
	if selID == 0 || ceID == 0 {
		t.Fatalf("no #sel or #ce in the full snapshot: %.2000s", answer)
	}
	inputs := map[float64][]string{}
	for _, d := range incremental(evs, 5) {
		inputs[num(d["id"])] = append(inputs[num(d["id"])], str(d["text"]))
	}
	if sel := inputs[selID]; len(sel) == 0 || sel[len(sel)-1] != "***" {
		t.Errorf("select's input events %q, want a last '***' (all: %v)", sel, inputs)
	}
	if len(inputs) < 3 {
		t.Errorf("input events of %d fields, want input, textarea and select: %v", len(inputs), inputs)
	}
	for id, texts := range inputs {
		for _, s := range texts {
			if strings.Trim(s, "*") != "" {
				t.Errorf("input event of node %v holds %q", id, s)
			}
		}
	}
	var editTexts int
	for _, d := range incremental(evs, 0) {
		for _, tx := range list(d["texts"]) {
			if m, _ := tx.(map[string]any); m != nil && str(m["value"]) != "" && strings.Trim(str(m["value"]), "* \n") == "" {
				editTexts++
			}
		}
		for _, a := range list(d["adds"]) {
			if m, _ := a.(map[string]any); m != nil && num(m["parentId"]) == ceID {
				editTexts++
			}
		}
	}
	if editTexts == 0 {
		t.Errorf("no masked mutation from typing into #ce: the test typed nowhere recorded")
	}
	if bytes.Contains(answer, []byte(`"checked"`)) || bytes.Contains(answer, []byte(`"selected"`)) {
		t.Errorf("a choice's state is recorded")
	}

	// The database: every file raw, and decoded.
	stopCaddy(t)
	files, err := os.ReadDir(dbDir)
	if err != nil || len(files) == 0 {
		t.Fatalf("db dir: %v %d files", err, len(files))
	}
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(dbDir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		absent(t, "file "+f.Name()+" (raw)", string(raw))
	}
	viaStore, viaFile := decodedStore(t, dbPath, "test.example")
	for _, want := range []string{controlText, controlMarker} {
		if !strings.Contains(viaStore, want) || !strings.Contains(viaFile, want) {
			t.Fatalf("the decoded store lacks %q: the check would find nothing", want)
		}
	}
	absent(t, "the store read back", viaStore)
	absent(t, "the file decoded", viaFile)
}

// TestRecordingMaskServerSide: a recorder that does not mask (posthog-js
// with maskAllInputs:false and no mask for contenteditable) posts what the
// visitor typed, plain and in posthog-js's compressed form; the stored
// recordings, read back after the store is reopened, hold none of it, and
// hold the page's own text.
func TestRecordingMaskServerSide(t *testing.T) {
	dbDir := t.TempDir()
	dbPath := filepath.Join(dbDir, "srv.db")
	startCaddy(t, config(dbPath, "record on"))
	now := time.Now().UnixMilli()
	full := `{"node":{"type":0,"id":1,"childNodes":[{"type":2,"id":2,"tagName":"html","attributes":{},"childNodes":[{"type":2,"id":3,"tagName":"body","attributes":{},"childNodes":[
	  {"type":2,"id":4,"tagName":"input","attributes":{"type":"text","value":"srv-input-value-11"},"childNodes":[]},
	  {"type":2,"id":5,"tagName":"input","attributes":{"type":"hidden","value":"srv-hidden-value-12"},"childNodes":[]},
	  {"type":2,"id":6,"tagName":"textarea","attributes":{"value":"srv-area-value-13"},"childNodes":[]},
	  {"type":2,"id":7,"tagName":"div","attributes":{"contenteditable":"true"},"childNodes":[{"type":3,"id":8,"textContent":"srv-edit-text-14"}]},
	  {"type":2,"id":9,"tagName":"p","attributes":{"data-fp-mask":""},"childNodes":[{"type":3,"id":10,"textContent":"srv-fpmask-text-15"}]},
	  {"type":2,"id":11,"tagName":"input","attributes":{"type":"checkbox","checked":true},"childNodes":[]},
	  {"type":2,"id":12,"tagName":"p","attributes":{},"childNodes":[{"type":3,"id":13,"textContent":"srv-page-text-control"}]}]}]}]},"initialOffset":{"top":0,"left":0}}`
	mutation := `{"source":0,"texts":[{"id":8,"value":"srv-typed-edit-16"},{"id":13,"value":"srv-page-change-control"}],
	  "attributes":[{"id":4,"attributes":{"value":"srv-attr-value-17"}}],"removes":[],
	  "adds":[{"parentId":7,"nextId":null,"node":{"type":3,"id":20,"textContent":"srv-added-edit-18"}}]}`
	input := `{"source":5,"id":4,"text":"srv-typed-input-19","isChecked":false}`
	batch := func(sid, fullData, mutData string) []byte {
		return []byte(fmt.Sprintf(`[{"event":"$snapshot","properties":{"$snapshot_data":[
		  {"type":4,"data":{"href":"https://test.example/form","width":1280,"height":800},"timestamp":%d},
		  {"type":2,%s,"timestamp":%d},
		  {"type":3,"data":%s,"timestamp":%d},
		  {"type":3,"data":%s,"timestamp":%d}],
		  "$session_id":%q,"$window_id":"w1","distinct_id":"anon-1","token":"phc_x"},"timestamp":"%s"}]`,
			now, fullData, now+1, mutData, now+2, input, now+3, sid, time.Now().UTC().Format(time.RFC3339)))
	}
	// Plain rrweb events.
	if code, resp := post(t, "/s/", batch("plain-sess", `"data":`+full, mutation), nil); code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	// posthog-js's compressed form: gzip bytes as a string of characters.
	latin := func(s string) string {
		var r []rune
		for _, c := range gzipped([]byte(s)) {
			r = append(r, rune(c))
		}
		j, _ := json.Marshal(string(r))
		return string(j)
	}
	var mut map[string]json.RawMessage
	if err := json.Unmarshal([]byte(mutation), &mut); err != nil {
		t.Fatal(err)
	}
	cmut := fmt.Sprintf(`{"source":0,"texts":%s,"attributes":%s,"removes":%s,"adds":%s}`, latin(string(mut["texts"])), latin(string(mut["attributes"])), latin(string(mut["removes"])), latin(string(mut["adds"])))
	phBatch := bytes.Replace(batch("ph-sess", `"cv":"2024-10","data":`+latin(full), cmut), []byte(`{"type":3,"data":{"source":0`), []byte(`{"type":3,"cv":"2024-10","data":{"source":0`), 1)
	if code, resp := post(t, "/s/", gzipped(phBatch), map[string]string{"Content-Type": "text/plain"}); code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	secrets := []string{"srv-input-value-11", "srv-hidden-value-12", "srv-area-value-13", "srv-edit-text-14", "srv-fpmask-text-15",
		"srv-typed-edit-16", "srv-attr-value-17", "srv-added-edit-18", "srv-typed-input-19"}
	for _, sid := range []string{"plain-sess", "ph-sess"} {
		evs := rrwebEvents(t, sid)
		raw, _ := json.Marshal(evs)
		if len(evs) != 4 || !bytes.Contains(raw, []byte("srv-page-change-control")) {
			t.Fatalf("%s stored %s", sid, raw)
		}
	}

	stopCaddy(t)
	viaStore, viaFile := decodedStore(t, dbPath, "test.example")
	decoded := viaStore + viaFile
	for _, want := range []string{"srv-page-text-control", "srv-page-change-control"} {
		if strings.Count(viaStore, want) < 2 || strings.Count(viaFile, want) < 2 {
			t.Fatalf("the decoded store lacks %q twice (both sessions)", want)
		}
	}
	for _, s := range secrets {
		if strings.Contains(decoded, s) {
			t.Errorf("%q is stored", s)
		}
	}
	if strings.Contains(decoded, `"checked"`) || strings.Contains(decoded, `"cv"`) {
		t.Errorf("a checked state or a compressed part is stored")
	}
	files, _ := os.ReadDir(dbDir)
	for _, f := range files {
		raw, _ := os.ReadFile(filepath.Join(dbDir, f.Name()))
		for _, s := range secrets {
			if bytes.Contains(raw, []byte(s)) {
				t.Errorf("%q in file %s", s, f.Name())
			}
		}
	}
}

// absent fails the test for each of maskSecrets in s.
func absent(t *testing.T, where, s string) {
	t.Helper()
	absentOf(t, where, s, maskSecrets)
}

func absentOf(t *testing.T, where, s string, secrets []string) {
	t.Helper()
	for _, secret := range secrets {
		if strings.Contains(s, secret) {
			t.Errorf("%s holds %q", where, secret)
		}
	}
}

// TestPosthogJSUnmaskedRecordingMasked: the real posthog-js recorder told
// not to mask (session_recording.maskAllInputs: false) records a visitor
// typing with real keys into a text input, a textarea and a
// contenteditable element, and a page with a hidden input and a
// [data-fp-mask] element. What its rrweb emits holds all of it in clear
// (seen by wrapping the recorder in the page); the server masks it: the
// recording API and the reopened store (decoded) hold none of it, and hold
// the text the page's script wrote.
func TestPosthogJSUnmaskedRecordingMasked(t *testing.T) {
	bundle := posthogJS(t)
	recorder, err := os.ReadFile(filepath.Join("testdata", "posthog-js", "node_modules", "posthog-js", "dist", "lazy-recorder.js"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		phInput   = "ph-typed-input-3e9a"
		phArea    = "ph-typed-area-77c2"
		phEdit    = "ph-typed-edit-d41b"
		phHidden  = "ph-hidden-secret-5f08"
		phFPMask  = "ph-fpmask-secret-b3c6"
		phControl = "ph-control-by-script-0a1d"
	)
	secrets := []string{phInput, phArea, phEdit, phHidden, phFPMask}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "vendor"), 0o755)
	os.WriteFile(filepath.Join(dir, "vendor", "array.js"), bundle, 0o644)
	os.WriteFile(filepath.Join(dir, "vendor", "recorder.js"), recorder, 0o644)
	os.WriteFile(filepath.Join(dir, "wrap.js"), []byte(`// Keeps a copy of every event posthog-js's rrweb emits, before posthog-js compresses it.
window.__phEmitted = [];
(function () {
  var r = window.__PosthogExtensions__ && window.__PosthogExtensions__.rrweb;
  if (!r) return;
  var rec = r.record;
  var wrapped = function (o) {
    var emit = o.emit;
    o.emit = function (ev, c) { try { window.__phEmitted.push(JSON.stringify(ev)) } catch (e) {} return emit(ev, c) };
    return rec(o);
  };
  for (var k in rec) wrapped[k] = rec[k];
  r.record = wrapped;
})();
`), 0o644)
	os.WriteFile(filepath.Join(dir, "init.js"), []byte(`posthog.init('phc_mask', {api_host: location.origin + '/_f', session_recording: {maskAllInputs: false}})`), 0o644)
	os.WriteFile(filepath.Join(dir, "form.html"), []byte(`<!doctype html>
<html><head><meta charset="utf-8"><title>Unmasked by posthog-js</title>
<script src="/vendor/array.js"></script>
<script src="/vendor/recorder.js"></script>
<script src="/wrap.js"></script>
<script src="/init.js"></script>
</head><body>
<input id="in" type="text">
<input id="hid" type="hidden" value="`+phHidden+`">
<textarea id="ta"></textarea>
<div id="ce" contenteditable="true" style="min-height:3em;border:1px solid"></div>
<p data-fp-mask>`+phFPMask+`</p>
<p id="ctl">initial text</p>
</body></html>
`), 0o644)
	dbDir := t.TempDir()
	dbPath := filepath.Join(dbDir, "ph.db")
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
`, dbPath, dir))

	tab := StartBrowser(t).NewTab()
	tab.Navigate(base + "/form.html")
	tab.WaitPage(`window.posthog && posthog.__loaded && posthog.sessionRecordingStarted() && window.__phEmitted.length > 0`, 20*time.Second)
	session := Eval[string](tab, `posthog.get_session_id()`)
	tab.Do(
		chromedp.SendKeys(chromedp.CSS("#in"), phInput),
		chromedp.SendKeys(chromedp.CSS("#ta"), phArea),
		chromedp.SendKeys(chromedp.CSS("#ce"), phEdit),
		chromedp.Click(chromedp.CSS("#ctl")),
	)
	Eval[chromedp.Void](tab, `document.querySelector('#ctl').firstChild.data = '`+phControl+`'`)
	// posthog-js's recorder emitted everything in clear.
	tab.WaitPage(`window.__phEmitted.join('').includes('`+phControl+`')`, 10*time.Second)
	emitted := Eval[string](tab, `window.__phEmitted.join('\n')`)
	for _, s := range secrets {
		if !strings.Contains(emitted, s) {
			t.Errorf("posthog-js's recorder masked %q itself: the test proves nothing about the server", s)
		}
	}
	var answer string
	WaitFor(t, "the script's text in the stored recording", 30*time.Second, func() (bool, string) {
		_, answer = send(t, "GET", api+"/recordings/"+session, nil, nil)
		return strings.Contains(answer, phControl), fmt.Sprintf("%d bytes", len(answer))
	})
	absentOf(t, "GET /api/recordings/{id}", answer, secrets)
	stopCaddy(t)
	viaStore, viaFile := decodedStore(t, dbPath, "test.example")
	if !strings.Contains(viaStore, phControl) || !strings.Contains(viaFile, phControl) {
		t.Fatal("the decoded store lacks the script's text: the check would find nothing")
	}
	absentOf(t, "the store read back", viaStore, secrets)
	absentOf(t, "the file decoded", viaFile, secrets)
	files, _ := os.ReadDir(dbDir)
	for _, f := range files {
		raw, _ := os.ReadFile(filepath.Join(dbDir, f.Name()))
		absentOf(t, "file "+f.Name()+" (raw)", string(raw), secrets)
	}
}

// nodeID is the rrweb id of the element with the HTML id in the first full
// snapshot.
func nodeID(evs []map[string]any, htmlID string) float64 {
	var find func(n map[string]any) float64
	find = func(n map[string]any) float64 {
		if a, _ := n["attributes"].(map[string]any); a != nil && a["id"] == htmlID {
			return num(n["id"])
		}
		for _, c := range list(n["childNodes"]) {
			if m, _ := c.(map[string]any); m != nil {
				if id := find(m); id != 0 {
					return id
				}
			}
		}
		return 0
	}
	for _, e := range evs {
		if num(e["type"]) == 2 {
			if d, _ := e["data"].(map[string]any); d != nil {
				if n, _ := d["node"].(map[string]any); n != nil {
					return find(n)
				}
			}
		}
	}
	return 0
}

func list(v any) []any { l, _ := v.([]any); return l }

// decodedStore reads a closed store two ways and returns all it holds as
// text: through the store (every recording of every tab, every event), and
// with buntdb alone, every key and value with each compressed part
// decompressed (event blocks are 'F' version flags payload, S2 or zstd;
// recording chunks hold zstd frames): a string absent from both is absent
// from the file, compressed or not.
func decodedStore(t *testing.T, path, site string) (viaStore, viaFile string) {
	t.Helper()
	var out bytes.Buffer
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, r := range db.Recordings(ctx, site, 0, math.MaxInt64) {
		for tab := 1; tab <= max(r.Tabs, 1); tab++ {
			data, err := db.RecordingTab(ctx, site, r.SessionID, tab)
			if err != nil {
				t.Fatalf("recording %s tab %d: %v", r.SessionID, tab, err)
			}
			out.Write(data)
		}
	}
	var evBuf []byte
	err = db.Export(ctx, store.Query{Site: site, From: time.Now().Add(-24 * time.Hour), To: time.Now().Add(time.Hour), TZ: time.UTC}, func(ev *store.Event, pid string) error {
		evBuf = ev.AppendJSON(evBuf, pid)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out.Write(evBuf)
	db.Close()
	viaStore = out.String()
	out.Reset()

	bdb, err := buntdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	zd, _ := zstd.NewReader(nil)
	defer zd.Close()
	zmagic := []byte{0x28, 0xb5, 0x2f, 0xfd}
	bdb.View(func(tx *buntdb.Tx) error {
		return tx.Ascend("", func(k, v string) bool {
			out.WriteString(k + "\n" + v + "\n")
			if len(v) > 3 && v[0] == 'F' && v[1] == 1 {
				if v[2]&2 != 0 {
					if b, err := s2.Decode(nil, []byte(v[3:])); err == nil {
						out.Write(b)
					}
				} else if v[2]&1 != 0 {
					if b, err := zd.DecodeAll([]byte(v[3:]), nil); err == nil {
						out.Write(b)
					}
				}
			}
			for i := 0; ; {
				j := bytes.Index([]byte(v[i:]), zmagic)
				if j < 0 {
					break
				}
				if b, err := zd.DecodeAll([]byte(v[i+j:]), nil); err == nil {
					out.Write(b)
				}
				i += j + 1
			}
			out.WriteByte('\n')
			return true
		})
	})
	return viaStore, out.String()
}
