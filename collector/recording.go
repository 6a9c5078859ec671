package collector

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/tidwall/gjson"
)

// maxSnapshotData bounds one decompressed rrweb payload.
const maxSnapshotData = 32 << 20

// splitSnapshots takes the `$snapshot` events out of events and returns them
// as recording data; the rest are ordinary events.
func splitSnapshots(events []*store.Event) (rest []*store.Event, snaps []store.Snapshot) {
	rest = events[:0:0]
	for _, ev := range events {
		if ev.Name != "$snapshot" {
			rest = append(rest, ev)
			continue
		}
		data, _ := ev.Props.Get("$snapshot_data")
		if data.Kind != store.KindJSON {
			continue
		}
		raw := data.S
		if len(raw) > 0 && raw[0] == '{' {
			raw = "[" + raw + "]"
		}
		// Copies: the store keeps them, and props may point into the request buffer.
		sid, wid := strings.Clone(ev.Props.Str("$session_id")), strings.Clone(ev.Props.Str("$window_id"))
		plain := normalizeRRWeb(raw)
		// Masking of what visitors typed, whatever the recorder did: recording_mask.go.
		plain = recordingMasks.mask(ev.Site+"\x00"+sid+"\x00"+wid, plain)
		snaps = append(snaps, store.Snapshot{
			SessionID:  sid,
			WindowID:   wid,
			DistinctID: ev.DistinctID,
			Data:       plain,
		})
	}
	return rest, snaps
}

// normalizeRRWeb undoes posthog-js's compression of rrweb events: with
// cv "2024-10", a full snapshot's data is a string of gzip bytes, one
// character per byte, and so are the texts, attributes, removes and adds of
// mutation and style-sheet incremental snapshots. Stored recordings hold
// plain rrweb events, which the player reads as they are; an event that
// does not decode is kept as it came.
func normalizeRRWeb(raw string) []byte {
	if !strings.Contains(raw, `"cv"`) {
		return []byte(raw)
	}
	out := make([]byte, 0, len(raw))
	out = append(out, '[')
	n := 0
	gjson.Parse(raw).ForEach(func(_, ev gjson.Result) bool {
		if n > 0 {
			out = append(out, ',')
		}
		n++
		if plain, ok := decompressEvent(ev); ok {
			out = append(out, plain...)
		} else {
			out = append(out, ev.Raw...)
		}
		return true
	})
	return append(out, ']')
}

// compressedParts are the members of an incremental snapshot's data that
// posthog-js compresses.
var compressedParts = map[string]bool{"texts": true, "attributes": true, "removes": true, "adds": true}

// decompressEvent returns ev without "cv" and with its compressed parts
// decoded; false when it has nothing to decode or a part does not decode.
func decompressEvent(ev gjson.Result) ([]byte, bool) {
	if !ev.Get("cv").Exists() {
		return nil, false
	}
	d := ev.Get("data")
	var data []byte
	switch d.Type {
	case gjson.String:
		plain, ok := gunzipLatin1(d.Str)
		if !ok || !gjson.ValidBytes(plain) {
			return nil, false
		}
		data = plain
	case gjson.JSON:
		if !d.IsObject() {
			return nil, false
		}
		ok := true
		data = rewriteObject(d, func(k, v gjson.Result) []byte {
			if !compressedParts[k.Str] || v.Type != gjson.String {
				return []byte(v.Raw)
			}
			plain, good := gunzipLatin1(v.Str)
			if !good || !gjson.ValidBytes(plain) {
				ok = false
			}
			return plain
		})
		if !ok {
			return nil, false
		}
	default:
		return nil, false
	}
	return rewriteObject(ev, func(k, v gjson.Result) []byte {
		switch k.Str {
		case "cv":
			return nil
		case "data":
			return data
		}
		return []byte(v.Raw)
	}), true
}

// rewriteObject copies a JSON object with each member's value replaced by
// what value returns; nil leaves the member out.
func rewriteObject(obj gjson.Result, value func(k, v gjson.Result) []byte) []byte {
	out := []byte{'{'}
	obj.ForEach(func(k, v gjson.Result) bool {
		raw := value(k, v)
		if raw == nil {
			return true
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, k.Raw...)
		out = append(out, ':')
		out = append(out, raw...)
		return true
	})
	return append(out, '}')
}

// gunzipLatin1 reads a string whose characters are bytes (U+0000–U+00FF)
// as gzip data.
func gunzipLatin1(s string) ([]byte, bool) {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return nil, false
		}
		b = append(b, byte(r))
	}
	if !isGzip(b) {
		return nil, false
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, false
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxSnapshotData+1))
	if err != nil || len(out) > maxSnapshotData {
		return nil, false
	}
	return out, true
}
