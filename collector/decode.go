package collector

import (
	"bytes"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// maxDepth bounds JSON nesting; PostHog payloads are a few levels deep.
const maxDepth = 64

// maxBatch bounds the events of one request.
const maxBatch = 10000

// payload is a decoded capture body: the events and what the envelope says
// about all of them.
type payload struct {
	events []gjson.Result
	// apiKey is the envelope's api_key/token.
	apiKey string
	// sentAt is the envelope's sent_at (or created_at of the v1 endpoint).
	sentAt gjson.Result
}

// parsePayload reads the shapes PostHog clients send: one event object, a
// bare array of events (/s/ from posthog-js), or an envelope
// {"api_key", "batch": [...], "sent_at"} (browser, node, go, python) or
// {"data": [...]} (old clients).
func parsePayload(js []byte) (payload, error) {
	var p payload
	js = repairUTF8(js)
	if err := checkJSON(js); err != nil {
		return p, err
	}
	// No copy: the events' strings point into the request's buffer, which
	// outlives them (the store copies what it keeps before Append returns).
	root := gjson.Parse(unsafeString(js))
	switch {
	case root.IsArray():
		p.events = root.Array()
	case root.IsObject():
		p.apiKey = firstString(root, "api_key", "token", "$token")
		p.sentAt = root.Get("sent_at")
		if !p.sentAt.Exists() {
			p.sentAt = root.Get("created_at")
		}
		batch := root.Get("batch")
		if !batch.Exists() {
			batch = root.Get("data")
		}
		switch {
		case batch.IsArray():
			p.events = batch.Array()
		case batch.IsObject():
			p.events = []gjson.Result{batch}
		case batch.Exists():
			return p, badf("batch must be an array of events")
		default:
			p.events = []gjson.Result{root}
		}
	default:
		return p, badf("body must be a JSON object or array")
	}
	if len(p.events) == 0 {
		return p, badf("no events in body")
	}
	if len(p.events) > maxBatch {
		return p, badf("%d events in one request; at most %d", len(p.events), maxBatch)
	}
	return p, nil
}

// repairUTF8 replaces invalid UTF-8 with U+FFFD, as encoding/json does, so
// that one bad string does not cost a whole batch.
func repairUTF8(js []byte) []byte {
	if utf8.Valid(js) {
		return js
	}
	return bytes.ToValidUTF8(js, []byte("\uFFFD"))
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// checkJSON validates js and bounds its nesting, so that no later step
// recurses without limit.
func checkJSON(js []byte) error {
	if !gjson.ValidBytes(js) {
		return badf("body is not valid JSON")
	}
	depth := 0
	inStr := false
	for i := 0; i < len(js); i++ {
		c := js[i]
		if inStr {
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
			if depth > maxDepth {
				return badf("JSON nested deeper than %d levels", maxDepth)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// firstString returns the first of keys that holds a string or number.
func firstString(r gjson.Result, keys ...string) string {
	for _, k := range keys {
		v := r.Get(gjsonKey(k))
		switch v.Type {
		case gjson.String:
			if v.Str != "" {
				return v.Str
			}
		case gjson.Number:
			return v.Raw
		}
	}
	return ""
}

// gjsonKey escapes the characters gjson paths treat specially.
func gjsonKey(k string) string {
	for i := 0; i < len(k); i++ {
		switch k[i] {
		case '.', '*', '?', '|', '#', '@', '\\', '!', '=', '<', '>', '%':
			b := make([]byte, 0, len(k)+4)
			for j := 0; j < len(k); j++ {
				switch k[j] {
				case '.', '*', '?', '|', '#', '@', '\\', '!', '=', '<', '>', '%':
					b = append(b, '\\')
				}
				b = append(b, k[j])
			}
			return string(b)
		}
	}
	return k
}
