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
	// sentAt is the envelope's sent_at (or created_at of the v1 endpoint),
	// parsed once when an event needs it.
	sentAt sentAtMemo
	// index, when set, says where the body's containers end.
	index *jsonIndex
}

// parsePayload reads the shapes PostHog clients send: one event object, a
// bare array of events (/s/ from posthog-js), or an envelope
// {"api_key", "batch": [...], "sent_at"} (browser, node, go, python) or
// {"data": [...]} (old clients).
func parsePayload(js []byte) (payload, error) {
	var p payload
	js = repairUTF8(js)
	p.index = newJSONIndex()
	if err := checkJSONIndex(js, p.index); err != nil {
		return p, err
	}
	p.index.utf8 = true // repaired above
	// No copy: the events' strings point into the request's buffer, which
	// outlives them (the store copies what it keeps before Append returns).
	root := gjson.Parse(unsafeString(js))
	switch {
	case root.IsArray():
		p.events = p.index.elements(root.Raw)
	case root.IsObject():
		// One pass over the envelope (a batch is most of the body).
		var apiKey, token, dollarToken, sentAt, createdAt, batch, data gjson.Result
		p.index.eachMember(root.Raw, func(k string, v gjson.Result) bool {
			switch k {
			case "api_key":
				first(&apiKey, v)
			case "token":
				first(&token, v)
			case "$token":
				first(&dollarToken, v)
			case "sent_at":
				first(&sentAt, v)
			case "created_at":
				first(&createdAt, v)
			case "batch":
				first(&batch, v)
			case "data":
				first(&data, v)
			}
			return true
		})
		p.apiKey = firstOf(apiKey, token, dollarToken)
		p.sentAt.r = sentAt
		if !sentAt.Exists() {
			p.sentAt.r = createdAt
		}
		if !batch.Exists() {
			batch = data
		}
		switch {
		case batch.IsArray():
			p.events = p.index.elements(batch.Raw)
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
func checkJSON(js []byte) error { return checkJSONIndex(js, nil) }

// checkJSONIndex is checkJSON that also fills x (see jsonIndex).
func checkJSONIndex(js []byte, x *jsonIndex) error {
	ok, depth := validJSON(js, x)
	if !ok {
		return badf("body is not valid JSON")
	}
	if depth > maxDepth {
		return badf("JSON nested deeper than %d levels", maxDepth)
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
