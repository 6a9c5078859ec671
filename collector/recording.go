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
		snaps = append(snaps, store.Snapshot{
			SessionID:  ev.Props.Str("$session_id"),
			WindowID:   ev.Props.Str("$window_id"),
			DistinctID: ev.DistinctID,
			Data:       normalizeRRWeb(raw),
		})
	}
	return rest, snaps
}

// normalizeRRWeb undoes posthog-js's compression of rrweb events: with
// cv "2024-10", an event's data (full snapshots, and some incremental ones)
// is a string of gzip bytes, one character per byte. Stored recordings hold
// plain rrweb events, which the player reads as they are.
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
		d := ev.Get("data")
		if !ev.Get("cv").Exists() || d.Type != gjson.String {
			out = append(out, ev.Raw...)
			return true
		}
		plain, ok := gunzipLatin1(d.Str)
		if !ok || !gjson.ValidBytes(plain) {
			out = append(out, ev.Raw...)
			return true
		}
		out = append(out, '{')
		first := true
		ev.ForEach(func(k, v gjson.Result) bool {
			if k.Str == "cv" {
				return true
			}
			if !first {
				out = append(out, ',')
			}
			first = false
			out = append(out, k.Raw...)
			out = append(out, ':')
			if k.Str == "data" {
				out = append(out, plain...)
			} else {
				out = append(out, v.Raw...)
			}
			return true
		})
		out = append(out, '}')
		return true
	})
	return append(out, ']')
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
