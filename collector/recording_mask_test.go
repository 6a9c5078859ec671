package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// maskPage is a full snapshot of a page with every kind of field: ids 1
// document, 2 html, 3 body; each field's secret names it.
const maskPage = `{"type":2,"timestamp":1,"data":{"initialOffset":{"top":0,"left":0},"node":{"type":0,"id":1,"childNodes":[
 {"type":2,"id":2,"tagName":"html","attributes":{},"childNodes":[
  {"type":2,"id":3,"tagName":"body","attributes":{},"childNodes":[
   {"type":2,"id":10,"tagName":"input","attributes":{"type":"text","value":"SECRET-text"},"childNodes":[]},
   {"type":2,"id":11,"tagName":"input","attributes":{"type":"hidden","name":"csrf","value":"SECRET-hidden"},"childNodes":[]},
   {"type":2,"id":12,"tagName":"input","attributes":{"value":"SECRET-notype"},"childNodes":[]},
   {"type":2,"id":13,"tagName":"input","attributes":{"type":"PASSWORD","value":"SECRET-pw"},"childNodes":[]},
   {"type":2,"id":14,"tagName":"input","attributes":{"type":"checkbox","value":"on","checked":true},"childNodes":[]},
   {"type":2,"id":15,"tagName":"input","attributes":{"type":"submit","value":"PUBLIC-Send"},"childNodes":[]},
   {"type":2,"id":20,"tagName":"textarea","attributes":{"value":"SECRET-area"},"childNodes":[]},
   {"type":2,"id":21,"tagName":"TEXTAREA","attributes":{},"childNodes":[{"type":3,"id":22,"textContent":"SECRET-areachild"}]},
   {"type":2,"id":30,"tagName":"select","attributes":{"value":"SECRET-select"},"childNodes":[
    {"type":2,"id":31,"tagName":"option","attributes":{"value":"a","selected":true},"childNodes":[{"type":3,"id":32,"textContent":"PUBLIC-option"}]}]},
   {"type":2,"id":40,"tagName":"div","attributes":{"contenteditable":"true"},"childNodes":[
    {"type":3,"id":41,"textContent":"SECRET-editable"},
    {"type":2,"id":42,"tagName":"b","attributes":{},"childNodes":[{"type":3,"id":43,"textContent":"SECRET-nested"}]},
    {"type":2,"id":44,"tagName":"style","attributes":{},"childNodes":[{"type":3,"id":45,"textContent":"PUBLIC-css{}"}]}]},
   {"type":2,"id":46,"tagName":"div","attributes":{"contenteditable":""},"childNodes":[{"type":3,"id":47,"textContent":"SECRET-emptyattr"}]},
   {"type":2,"id":48,"tagName":"div","attributes":{"contentEditable":"plaintext-only"},"childNodes":[{"type":3,"id":49,"textContent":"SECRET-plaintext"}]},
   {"type":2,"id":50,"tagName":"p","attributes":{"data-fp-mask":""},"childNodes":[{"type":3,"id":51,"textContent":"SECRET-fpmask"}]},
   {"type":2,"id":52,"tagName":"p","attributes":{"contenteditable":"false"},"childNodes":[{"type":3,"id":53,"textContent":"PUBLIC-noteditable"}]},
   {"type":2,"id":60,"tagName":"p","attributes":{},"childNodes":[{"type":3,"id":61,"textContent":"PUBLIC-text"}]},
   {"type":2,"id":62,"tagName":"li","attributes":{"value":"PUBLIC-li"},"childNodes":[]},
   {"type":2,"id":63,"tagName":"span","attributes":{},"childNodes":[{"type":3,"id":64,"textContent":"PUBLIC-span"}]}
  ]}]}]}}}`

func mut(parts string) string {
	return `{"type":3,"timestamp":2,"data":{"source":0,"texts":[],"attributes":[],"removes":[],"adds":[]` + parts + `}}`
}

// TestMaskRecording: what each kind of event holds after the server's
// mask, for a window whose full snapshot the masker saw and for one it did
// not.
func TestMaskRecording(t *testing.T) {
	for _, c := range []struct {
		name            string
		batches         []string // each a JSON array of events
		absent, present []string
	}{
		{"full snapshot", []string{"[" + maskPage + "]"},
			[]string{"SECRET", `"checked"`, `"selected"`},
			[]string{"PUBLIC-Send", "PUBLIC-option", "PUBLIC-css{}", "PUBLIC-noteditable", "PUBLIC-text", "PUBLIC-li", `"value":"on"`, `"name":"csrf","type":"hidden","value":"*************"`, `"textContent":"****************"`}},
		{"input events", []string{`[{"type":3,"timestamp":3,"data":{"source":5,"id":10,"text":"SECRET typed","isChecked":true,"userTriggered":true}},
			{"type":3,"timestamp":4,"data":{"source":5,"id":11,"text":"*****","isChecked":false}}]`},
			[]string{"SECRET", `"isChecked":true`},
			[]string{`"text":"************"`, `"text":"*****"`, `"userTriggered":true`}},
		{"typing into contenteditable", []string{"[" + maskPage + "]",
			"[" + mut(`,"texts":[{"id":41,"value":"SECRET-t1"},{"id":43,"value":"SECRET-t2"},{"id":61,"value":"PUBLIC-changed"},{"id":45,"value":"PUBLIC-css2"}]`) + "]",
			"[" + mut(`,"adds":[{"parentId":40,"nextId":null,"node":{"type":2,"id":70,"tagName":"div","attributes":{},"childNodes":[]}},
				{"parentId":70,"nextId":null,"node":{"type":3,"id":71,"textContent":"SECRET-newline"}},
				{"parentId":3,"nextId":null,"node":{"type":2,"id":72,"tagName":"p","attributes":{},"childNodes":[{"type":3,"id":73,"textContent":"PUBLIC-added"}]}}]`) + "]",
			"[" + mut(`,"texts":[{"id":71,"value":"SECRET-more"},{"id":73,"value":"PUBLIC-added2"}]`) + "]"},
			[]string{"SECRET"},
			[]string{"PUBLIC-changed", "PUBLIC-css2", "PUBLIC-added", "PUBLIC-added2", `"value":"*********"`, `"textContent":"**************"`}},
		{"adds whose parent comes later in the same event", []string{"[" + maskPage + "]",
			"[" + mut(`,"adds":[{"parentId":80,"nextId":null,"node":{"type":3,"id":81,"textContent":"SECRET-child"}},
				{"parentId":3,"nextId":null,"node":{"type":2,"id":80,"tagName":"div","attributes":{"contenteditable":"true"},"childNodes":[]}}]`) + "]"},
			[]string{"SECRET"}, []string{`"contenteditable":"true"`}},
		{"element made editable later", []string{"[" + maskPage + "]",
			"[" + mut(`,"attributes":[{"id":63,"attributes":{"contenteditable":"true"}}]`) + "]",
			"[" + mut(`,"texts":[{"id":64,"value":"SECRET-edited"}]`) + "]",
			"[" + mut(`,"attributes":[{"id":63,"attributes":{"contenteditable":null}}]`) + "]",
			"[" + mut(`,"texts":[{"id":64,"value":"PUBLIC-again"}]`) + "]"},
			[]string{"SECRET"}, []string{"PUBLIC-again"}},
		{"attribute changes", []string{"[" + maskPage + "]",
			"[" + mut(`,"attributes":[{"id":10,"attributes":{"value":"SECRET-attr"}},{"id":20,"attributes":{"value":"SECRET-areaattr"}},
				{"id":14,"attributes":{"checked":""}},{"id":31,"attributes":{"selected":""}},{"id":62,"attributes":{"value":"PUBLIC-li2"}},
				{"id":15,"attributes":{"value":"PUBLIC-Send2"}},{"id":999,"attributes":{"value":"SECRET-unknown","title":"PUBLIC-title"}}]`) + "]",
			"[" + mut(`,"attributes":[{"id":15,"attributes":{"type":"text"}},{"id":15,"attributes":{"value":"SECRET-nowtext"}}]`) + "]"},
			[]string{"SECRET", `"checked"`, `"selected"`}, []string{"PUBLIC-li2", "PUBLIC-Send2", "PUBLIC-title"}},
		{"removed and re-added node", []string{"[" + maskPage + "]",
			"[" + mut(`,"removes":[{"parentId":3,"id":60}],"adds":[{"parentId":40,"nextId":null,"node":{"type":2,"id":60,"tagName":"p","attributes":{},"childNodes":[{"type":3,"id":61,"textContent":"SECRET-moved"}]}}]`) + "]"},
			[]string{"SECRET"}, nil},
		{"a window never seen: everything masked", []string{
			"[" + mut(`,"texts":[{"id":41,"value":"SECRET-t"}],"adds":[{"parentId":3,"nextId":null,"node":{"type":3,"id":90,"textContent":"SECRET-a"}}],"attributes":[{"id":10,"attributes":{"value":"SECRET-v","checked":true}}]`) + "]"},
			[]string{"SECRET", `"checked"`}, []string{`"value":"********"`}},
		{"unreadable events dropped, others kept", []string{`[{"type":3,"cv":"2024-10","data":{"source":0,"texts":"SECRET-gz","adds":[]}},
			{"type":2,"data":"SECRET-gzfull"}, 5, "SECRET-str", {"type":2}, {"type":3,"data":{"source":0,"adds":{"x":"SECRET-obj"}}},
			{"type":3,"data":{"source":1},"data":{"source":5,"id":1,"text":"SECRET-dupdata"}}, {"type":3,"data":{"source":1,"source":5,"id":1,"text":"SECRET-dupsrc"}},
			{"type":3,"data":{"source":"5","text":"SECRET-strsrc"}}, {"type":"3","data":{"source":5,"text":"SECRET-strtype"}}, {"type":9,"data":"SECRET-type9"},
			{"chunk_id":"c","data":"SECRET-oldchunk"},
			{"type":4,"timestamp":1,"data":{"href":"https://example.com/PUBLIC-meta","width":1,"height":1}},
			{"type":3,"timestamp":2,"data":{"source":1,"positions":[{"x":1,"y":2,"id":3,"timeOffset":0}]}}]`},
			[]string{"SECRET"}, []string{"PUBLIC-meta", `"positions"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			mc := newMaskCache()
			var all strings.Builder
			for i, b := range c.batches {
				out := mc.mask("site\x00s\x00w", []byte(b))
				var evs []any
				if err := json.Unmarshal(out, &evs); err != nil {
					t.Fatalf("batch %d: not JSON: %v %s", i, err, out)
				}
				all.Write(out)
			}
			got := all.String()
			for _, s := range c.absent {
				if strings.Contains(got, s) {
					t.Errorf("%q stored: %s", s, got)
				}
			}
			for _, s := range c.present {
				if !strings.Contains(got, s) {
					t.Errorf("%q missing: %s", s, got)
				}
			}
		})
	}
}

// TestMaskRecordingUnchanged: a batch with nothing to mask is stored as it
// came (the same bytes), and masked data masks to itself.
func TestMaskRecordingUnchanged(t *testing.T) {
	mc := newMaskCache()
	in := `[{"type":4,"timestamp":1,"data":{"href":"https://x/","width":1,"height":1}},{"type":3,"timestamp":2,"data":{"source":2,"type":2,"id":3,"x":1,"y":1}}]`
	if out := mc.mask("k", []byte(in)); string(out) != in {
		t.Errorf("changed: %s", out)
	}
	once := mc.mask("k2", []byte("["+maskPage+","+mut(`,"texts":[{"id":41,"value":"abc def"}]`)+"]"))
	twice := newMaskCache().mask("k2", once)
	if string(once) != string(twice) {
		t.Errorf("masking masked data changed it:\n%s\n%s", once, twice)
	}
	if !strings.Contains(string(once), `"value":"*** ***"`) {
		t.Errorf("text mask keeps whitespace: %s", once)
	}
}

// TestMaskRecordingBounds: windows beyond the cap are evicted (their
// mutations then masked as unknown), and the node count follows.
func TestMaskRecordingBounds(t *testing.T) {
	mc := newMaskCache()
	for i := 0; i < maskMaxWindows+10; i++ {
		mc.mask(fmt.Sprint("w", i), []byte("["+maskPage+"]"))
	}
	mc.mu.Lock()
	n, total := len(mc.windows), mc.total
	_, first := mc.windows["w0"]
	mc.mu.Unlock()
	if n > maskMaxWindows || first || total > maskMaxNodes || total == 0 {
		t.Fatalf("%d windows, %d nodes, oldest kept %v", n, total, first)
	}
	out := mc.mask("w0", []byte("["+mut(`,"texts":[{"id":61,"value":"was-public"}]`)+"]"))
	if strings.Contains(string(out), "was-public") {
		t.Errorf("an evicted window's text change kept: %s", out)
	}
	out = mc.mask(fmt.Sprint("w", maskMaxWindows+9), []byte("["+mut(`,"texts":[{"id":61,"value":"still-public"}]`)+"]"))
	if !strings.Contains(string(out), "still-public") {
		t.Errorf("a recent window forgot its page: %s", out)
	}
}

// FuzzMaskRecording: any batch masks to JSON without a panic; Input events
// hold only '*'; masking again (with the state the first pass had) changes
// nothing.
func FuzzMaskRecording(f *testing.F) {
	f.Add("[" + maskPage + "]")
	f.Add("[" + mut(`,"texts":[{"id":41,"value":"x"}],"adds":[{"parentId":1,"node":{"type":3,"id":9,"textContent":"y"}}]`) + "]")
	f.Add(`[{"type":3,"data":{"source":5,"id":1,"text":"héllo","isChecked":true}}]`)
	f.Add(`[{"type":3,"cv":"x","data":{"source":0,"texts":"zz"}}, 1, null, "s", [], {}]`)
	f.Add(`{"type":2}`)
	f.Fuzz(func(t *testing.T, in string) {
		out := newMaskCache().mask("k", []byte(in))
		if !json.Valid([]byte(in)) {
			return
		}
		var evs []any
		dec := json.NewDecoder(strings.NewReader(string(out)))
		dec.UseNumber()
		if err := dec.Decode(&evs); err != nil {
			t.Fatalf("not a JSON array: %v %s", err, out)
		}
		for _, e := range evs {
			ev, _ := e.(map[string]any)
			d, _ := ev["data"].(map[string]any)
			if ev != nil && d != nil && fmt.Sprint(ev["type"]) == "3" && fmt.Sprint(d["source"]) == "5" {
				if s, ok := d["text"].(string); ok && strings.Trim(s, "*") != "" {
					t.Fatalf("input text kept: %s", out)
				}
				if d["isChecked"] == true {
					t.Fatalf("checked kept: %s", out)
				}
			}
		}
		if again := newMaskCache().mask("k", out); string(again) != string(out) {
			t.Fatalf("not idempotent:\n%s\n%s", out, again)
		}
	})
}

// BenchmarkMaskRecording: a batch with a full snapshot of a page of some
// 6000 nodes with 2000 inputs, 200 text changes and 200 mouse events,
// masked as the collector stores it: from a recorder that did not mask
// (every event re-encoded) and from ours (masked already: read, kept).
func BenchmarkMaskRecording(b *testing.B) {
	for _, c := range []struct{ name, value string }{{"unmasked", "value"}, {"masked", "*****"}} {
		b.Run(c.name, func(b *testing.B) {
			var page strings.Builder
			page.WriteString(`[{"type":2,"timestamp":1,"data":{"initialOffset":{"top":0,"left":0},"node":{"type":0,"id":1,"childNodes":[{"type":2,"id":2,"tagName":"body","attributes":{},"childNodes":[`)
			id := 3
			for i := 0; i < 2000; i++ {
				if i > 0 {
					page.WriteByte(',')
				}
				fmt.Fprintf(&page, `{"type":2,"id":%d,"tagName":"div","attributes":{"class":"row item-%d","style":"color:red"},"childNodes":[{"type":3,"id":%d,"textContent":"Some text of the page, row %d"},{"type":2,"id":%d,"tagName":"input","attributes":{"type":"text","value":%q},"childNodes":[]}]}`, id, i, id+1, i, id+2, c.value)
				id += 3
			}
			page.WriteString(`]}]}}}`)
			for i := 0; i < 200; i++ {
				fmt.Fprintf(&page, `,{"type":3,"timestamp":%d,"data":{"source":0,"texts":[{"id":%d,"value":"changed %d"}],"attributes":[],"removes":[],"adds":[]}}`, 2+i, 4+3*i, i)
				fmt.Fprintf(&page, `,{"type":3,"timestamp":%d,"data":{"source":1,"positions":[{"x":%d,"y":5,"id":3,"timeOffset":0}]}}`, 2+i, i)
			}
			page.WriteString(`]`)
			data := []byte(page.String())
			if !json.Valid(data) {
				b.Fatal("not JSON")
			}
			mc := newMaskCache()
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				mc.mask("k", data)
			}
		})
	}
}

// TestRecordingPlainBatchesOneSession: plain (not gzip) $snapshot bodies of
// one session, among others', make one recording with all their events.
// The session id splitSnapshots hands the store is a copy: props point into
// the request's pooled buffer, which the next request overwrites, and the
// store keys its map of recordings by the string it is given (without the
// copy: one recording per batch, the first one's full snapshot unreachable).
func TestRecordingPlainBatchesOneSession(t *testing.T) {
	f := newFixture(t, Config{MaxBody: 1 << 20})
	for i := 0; i < 5; i++ {
		body := strings.Repeat(" ", i) + fmt.Sprintf(`[{"event":"$snapshot","properties":{"$session_id":"sess-plain-%d","$window_id":"w","distinct_id":"d","$snapshot_data":[{"type":3,"timestamp":%d,"data":{"source":1,"positions":[]}}]}}]`, 0, 1764000000000+i)
		if code, resp := f.do(req{path: "/s/", body: []byte(body), headers: map[string]string{"Content-Type": "text/plain;charset=UTF-8"}}); code != 200 {
			t.Fatalf("%d %s", code, resp)
		}
		other := fmt.Sprintf(`[{"event":"$snapshot","properties":{"$session_id":"XXXX-XXXXX-%d","$window_id":"v","distinct_id":"e","$snapshot_data":[{"type":3,"timestamp":%d,"data":{"source":1,"positions":[]}}]}}]`, i, 1764000000000+i)
		if code, resp := f.do(req{path: "/s/", body: []byte(other), headers: map[string]string{"Content-Type": "text/plain;charset=UTF-8"}}); code != 200 {
			t.Fatalf("%d %s", code, resp)
		}
	}
	n := 0
	for _, r := range f.db.Recordings(context.Background(), "example.com", 0, 1<<62) {
		if r.SessionID == "sess-plain-0" {
			n++
			if r.Events != 5 {
				t.Errorf("%+v", r)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d recordings of sess-plain-0: %+v", n, f.db.Recordings(context.Background(), "example.com", 0, 1<<62))
	}
}
