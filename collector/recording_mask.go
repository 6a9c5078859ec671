package collector

// Server-side masking of session recordings (SPEC §5.1, docs/security-recording.md).
//
// Firstparty's own recorder masks on the client, but posthog-js's recorder
// (or any rrweb recorder) may send what a visitor typed: maskAllInputs:false,
// no mask for contenteditable, hidden inputs verbatim. So before recording
// data is stored, the collector masks, whatever the client did:
//
//   - the `text` of every Input event (incremental source 5), and its
//     isChecked (always false);
//   - the `value` of input (all types but the page's own buttons, checkbox
//     and radio, whose value the page wrote), textarea and select elements,
//     in full snapshots, added nodes and attribute changes; `checked` of
//     inputs and `selected` of options are dropped;
//   - the text of every node inside a textarea, a contenteditable element
//     (any value but "false") or a [data-fp-mask] element, in full
//     snapshots, added nodes and text changes (what typing into a
//     contenteditable element makes), except the CSS of a <style>.
//
// A value becomes as many '*' as it has characters, text keeps its
// whitespace (as rrweb's own mask does), so masked data masks to itself.
//
// Text changes and added nodes name their node by id only, so the masker
// keeps, per site, session and window, each node's parent and kind, learnt
// from the window's full snapshot and its mutations. When it does not know a
// node (no full snapshot seen since the process started, the window was
// evicted, or the node is not in its map) it masks, as if the node were in
// an editable element: a replay may then show page text as '*', never the
// reverse. An event it cannot read (still-compressed parts, a full snapshot
// without its node tree, no rrweb event type 0-6, a key twice) is dropped.

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Bounds of the masker's memory: windows kept, nodes kept in all and in one
// window (beyond which the window is masked as unknown until its next full
// snapshot). A node takes about 50 B, so at most some 100 MB.
const (
	maskMaxWindows      = 4096
	maskMaxNodes        = 2_000_000
	maskMaxWindowNodes  = 200_000
	maskMaxAncestorWalk = 4096
)

// maskDropped counts recording events dropped because the masker could not
// read them.
var maskDropped atomic.Int64

// recordingMasks is the collector's masker; windows of all sites, keyed by
// site, session and window id.
var recordingMasks = newMaskCache()

// Node kinds.
const (
	fTextarea  = 1 << iota // a textarea: its text is masked
	fEditable              // contenteditable (not "false")
	fFPMask                // [data-fp-mask]
	fFormValue             // its value attribute is what a visitor enters
	fInput                 // an input (checked is dropped; type may change fFormValue)
	fOption                // an option (selected is dropped)
	fStyle                 // style: its text (CSS) is not masked

	fMaskRoot = fTextarea | fEditable | fFPMask
)

type maskNode struct {
	parent int64
	flags  uint16
}

type maskWindow struct {
	mu    sync.Mutex
	dirty bool               // the event being masked changed
	nodes map[int64]maskNode // nil: unknown, everything masked
	used  uint64             // cache clock at last use
	count int                // len(nodes) as the cache last counted it
}

type maskCache struct {
	mu      sync.Mutex
	windows map[string]*maskWindow
	clock   uint64
	total   int
}

func newMaskCache() *maskCache {
	return &maskCache{windows: map[string]*maskWindow{}}
}

// mask returns the rrweb events in data (a JSON array) masked, for the
// window that key names. It returns data itself when nothing changed.
func (c *maskCache) mask(key string, data []byte) []byte {
	c.mu.Lock()
	c.clock++
	w := c.windows[key]
	if w == nil {
		w = &maskWindow{}
		c.windows[key] = w
		c.evict(key)
	}
	w.used = c.clock
	c.mu.Unlock()

	w.mu.Lock()
	out := w.mask(data)
	n := len(w.nodes)
	w.mu.Unlock()

	c.mu.Lock()
	if c.windows[key] == w {
		c.total += n - w.count
		w.count = n
		if c.total > maskMaxNodes {
			c.evict(key)
		}
	}
	c.mu.Unlock()
	return out
}

// evict drops the least recently used windows (not keep) while there are
// too many windows or nodes. c.mu is held.
func (c *maskCache) evict(keep string) {
	for len(c.windows) > maskMaxWindows || c.total > maskMaxNodes {
		var oldest string
		var at uint64
		for k, w := range c.windows {
			if k != keep && (oldest == "" || w.used < at) {
				oldest, at = k, w.used
			}
		}
		if oldest == "" {
			return
		}
		c.total -= c.windows[oldest].count
		delete(c.windows, oldest)
	}
}

// mask masks one batch of the window's events. w.mu is held.
func (w *maskWindow) mask(data []byte) []byte {
	arr := gjson.ParseBytes(data)
	if !arr.IsArray() {
		maskDropped.Add(1)
		return []byte("[]")
	}
	out := make([]byte, 0, len(data)+16)
	out = append(out, '[')
	changed, n := false, 0
	arr.ForEach(func(_, ev gjson.Result) bool {
		raw, ok := w.event(ev)
		if !ok {
			maskDropped.Add(1)
			changed = true
			return true
		}
		if raw == nil {
			raw = []byte(ev.Raw)
		} else {
			changed = true
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, raw...)
		return true
	})
	if !changed {
		return data
	}
	return append(out, ']')
}

// event masks one rrweb event: nil when it stays as it came, false when it
// is to be dropped.
func (w *maskWindow) event(ev gjson.Result) ([]byte, bool) {
	if !ev.IsObject() || dupKey(ev, "type") || dupKey(ev, "data") {
		return nil, false
	}
	t := ev.Get("type")
	if t.Type != gjson.Number || t.Num != float64(int64(t.Num)) || t.Num < 0 || t.Num > 6 {
		return nil, false // not an rrweb event: a player would not read it either
	}
	typ := int64(t.Num)
	src := ev.Get("data.source")
	if typ == 3 && src.Exists() && (src.Type != gjson.Number || dupKey(ev.Get("data"), "source")) {
		return nil, false
	}
	switch {
	case typ == 2:
	case typ == 3 && (src.Num == 0 || src.Num == 5):
	default:
		return nil, true
	}
	var obj map[string]any
	dec := json.NewDecoder(strings.NewReader(ev.Raw))
	dec.UseNumber()
	if dec.Decode(&obj) != nil {
		return nil, false
	}
	data, _ := obj["data"].(map[string]any)
	if data == nil {
		return nil, false
	}
	ok := false
	w.dirty = false
	switch {
	case typ == 2:
		ok = w.fullSnapshot(data)
	case src.Int() == 0:
		ok = w.mutation(data)
	default:
		ok = w.input(data)
	}
	if !ok {
		return nil, false
	}
	if !w.dirty {
		return nil, true // as it came: masked already, or nothing to mask
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(obj) != nil {
		return nil, false
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), true
}

// dupKey says whether obj has key more than once. gjson reads the first,
// encoding/json and browsers the last: such an event could pass as a
// mouse move here and replay as an input.
func dupKey(obj gjson.Result, key string) bool {
	n := 0
	obj.ForEach(func(k, _ gjson.Result) bool {
		if k.Str == key {
			n++
		}
		return n < 2
	})
	return n > 1
}

// put sets m[k] to masked, noting a change.
func (w *maskWindow) put(m map[string]any, k, old, masked string) {
	if masked != old {
		m[k] = masked
		w.dirty = true
	}
}

// drop deletes m[k], noting a change.
func (w *maskWindow) drop(m map[string]any, k string) {
	delete(m, k)
	w.dirty = true
}

// fullSnapshot masks a full snapshot and starts the window's node map anew.
func (w *maskWindow) fullSnapshot(data map[string]any) bool {
	node, _ := data["node"].(map[string]any)
	if node == nil {
		return false
	}
	w.nodes = map[int64]maskNode{}
	w.walk(node, 0, false, false)
	return true
}

// input masks an Input event.
func (w *maskWindow) input(data map[string]any) bool {
	if s, ok := data["text"].(string); ok {
		w.put(data, "text", s, maskValue(s))
	} else if data["text"] != nil {
		w.drop(data, "text")
	}
	if v, ok := data["isChecked"]; ok && v != false {
		data["isChecked"] = false
		w.dirty = true
	}
	return true
}

// mutation masks a DOM mutation event, as the player applies it: removes,
// adds, texts, attributes.
func (w *maskWindow) mutation(data map[string]any) bool {
	var parts [4][]any
	for i, k := range [4]string{"removes", "adds", "texts", "attributes"} {
		v, present := data[k]
		if !present || v == nil {
			continue
		}
		a, ok := v.([]any)
		if !ok {
			return false // still compressed, or not rrweb
		}
		parts[i] = a
	}
	if w.nodes != nil {
		for _, r := range parts[0] {
			if m, _ := r.(map[string]any); m != nil {
				if id, ok := num(m["id"]); ok {
					delete(w.nodes, id)
				}
			}
		}
	}
	// Adds name their parents, which may be added in the same event: learn
	// them all first, then mask each under what its parent is.
	for _, a := range parts[1] {
		if m, _ := a.(map[string]any); m != nil {
			if node, _ := m["node"].(map[string]any); node != nil {
				parent, _ := num(m["parentId"])
				w.walk(node, parent, false, false)
			}
		}
	}
	for _, a := range parts[1] {
		m, _ := a.(map[string]any)
		if m == nil {
			continue
		}
		node, _ := m["node"].(map[string]any)
		if node == nil {
			continue
		}
		parent, ok := num(m["parentId"])
		masked := !ok || w.masked(parent)
		w.walk(node, parent, masked, ok && w.isStyle(parent))
	}
	for _, t := range parts[2] {
		m, _ := t.(map[string]any)
		if m == nil {
			continue
		}
		s, isStr := m["value"].(string)
		if !isStr {
			continue
		}
		id, ok := num(m["id"])
		if !ok || w.maskedText(id) {
			w.put(m, "value", s, maskText(s))
		}
	}
	for _, a := range parts[3] {
		m, _ := a.(map[string]any)
		if m == nil {
			continue
		}
		attrs, _ := m["attributes"].(map[string]any)
		if attrs == nil {
			continue
		}
		id, ok := num(m["id"])
		n, known := w.nodes[id]
		known = known && ok
		if known {
			n.flags = kindChange(n.flags, attrs)
			if w.nodes != nil {
				w.nodes[id] = n
			}
		}
		for k, v := range attrs {
			switch strings.ToLower(k) {
			case "value":
				if s, isStr := v.(string); isStr && (!known || n.flags&fFormValue != 0) {
					w.put(attrs, k, s, maskValue(s))
				}
			case "checked":
				if !known || n.flags&fInput != 0 {
					w.drop(attrs, k)
				}
			case "selected":
				if !known || n.flags&fOption != 0 {
					w.drop(attrs, k)
				}
			}
		}
	}
	if len(w.nodes) > maskMaxWindowNodes {
		w.nodes = nil
	}
	return true
}

// walk learns a serialized node tree under parent and, with masked, masks
// it; style says parent is a <style> (whose text is CSS).
func (w *maskWindow) walk(n map[string]any, parent int64, masked, style bool) {
	id, hasID := num(n["id"])
	typ, _ := num(n["type"])
	var flags uint16
	switch typ {
	case 2: // element
		attrs, _ := n["attributes"].(map[string]any)
		tag, _ := n["tagName"].(string)
		flags = elementKind(strings.ToLower(tag), attrs)
		if attrs != nil {
			for k, v := range attrs {
				switch strings.ToLower(k) {
				case "value":
					if s, ok := v.(string); ok && flags&fFormValue != 0 {
						w.put(attrs, k, s, maskValue(s))
					}
				case "checked":
					if flags&fInput != 0 {
						w.drop(attrs, k)
					}
				case "selected":
					if flags&fOption != 0 {
						w.drop(attrs, k)
					}
				}
			}
		}
	case 3, 4, 5: // text, CDATA, comment
		if s, ok := n["textContent"].(string); ok && masked && !style {
			w.put(n, "textContent", s, maskText(s))
		}
	}
	if hasID && w.nodes != nil {
		w.nodes[id] = maskNode{parent: parent, flags: flags}
	}
	kids, _ := n["childNodes"].([]any)
	for _, k := range kids {
		if m, _ := k.(map[string]any); m != nil {
			w.walk(m, id, masked || flags&fMaskRoot != 0, flags&fStyle != 0)
		}
	}
}

// masked says whether the node id or one of its ancestors is a textarea, an
// editable or a [data-fp-mask] element, or whether that is unknown.
func (w *maskWindow) masked(id int64) bool {
	if w.nodes == nil {
		return true
	}
	for i := 0; i < maskMaxAncestorWalk; i++ {
		n, ok := w.nodes[id]
		if !ok {
			return true
		}
		if n.flags&fMaskRoot != 0 {
			return true
		}
		if n.parent == 0 {
			return false
		}
		id = n.parent
	}
	return true
}

// maskedText is masked for a text node: not the CSS of a <style>.
func (w *maskWindow) maskedText(id int64) bool {
	if n, ok := w.nodes[id]; ok && w.isStyle(n.parent) {
		return false
	}
	return w.masked(id)
}

func (w *maskWindow) isStyle(id int64) bool {
	n, ok := w.nodes[id]
	return ok && n.flags&fStyle != 0
}

// elementKind classifies an element by its tag and attributes.
func elementKind(tag string, attrs map[string]any) uint16 {
	var f uint16
	switch tag {
	case "textarea":
		f = fTextarea | fFormValue
	case "select":
		f = fFormValue
	case "input":
		f = fInput | fFormValue // type text unless attrs say otherwise
	case "option":
		f = fOption
	case "style":
		f = fStyle
	}
	return kindChange(f, attrs)
}

// kindChange applies attributes (new values; nil for removed) to a kind.
func kindChange(f uint16, attrs map[string]any) uint16 {
	for k, v := range attrs {
		switch strings.ToLower(k) {
		case "contenteditable":
			f &^= fEditable
			if editable(v) {
				f |= fEditable
			}
		case "data-fp-mask":
			f &^= fFPMask
			if v != nil && v != false {
				f |= fFPMask
			}
		}
	}
	if t, set := attrs["type"]; set && f&fInput != 0 {
		s, _ := t.(string)
		f &^= fFormValue
		if !pageValueInput[strings.ToLower(strings.TrimSpace(s))] {
			f |= fFormValue
		}
	}
	return f
}

// pageValueInput are the input types whose value attribute the page wrote
// (a button's label, a checkbox's "on"); every other type, unknown ones
// included (a browser treats them as text), holds what a visitor entered.
var pageValueInput = map[string]bool{"submit": true, "button": true, "reset": true, "image": true, "checkbox": true, "radio": true}

// editable: a contenteditable attribute's value makes an element editable
// unless it is "false" (an invalid value inherits, so it may be editable).
func editable(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		return !strings.EqualFold(strings.TrimSpace(v), "false")
	}
	return true
}

// maskValue masks what a visitor entered: one '*' per character.
func maskValue(s string) string {
	if strings.Trim(s, "*") == "" {
		return s
	}
	return strings.Repeat("*", utf8.RuneCountInString(s))
}

// maskText masks text as rrweb does: every character but whitespace
// becomes '*'.
func maskText(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return r
		}
		return '*'
	}, s)
}

// num reads a JSON number (json.Number, as the decoder gives) as an id.
func num(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	if err != nil {
		f, ferr := n.Float64()
		if ferr != nil || f != float64(int64(f)) {
			return 0, false
		}
		i = int64(f)
	}
	return i, true
}
