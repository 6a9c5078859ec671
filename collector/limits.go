package collector

import (
	"unicode/utf8"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/tidwall/gjson"
)

// Limits bound what one visitor can make the server keep (SPEC §5.1). They
// hold whatever is sent: the store grows with the configured limits, never
// with the size of what arrives.
type Limits struct {
	// Value is the longest string property value kept, in bytes; longer
	// values are cut at a UTF-8 boundary. A few properties that the real
	// SDKs send long (autocapture's $elements_chain, URLs) and JSON values
	// get longValueFactor times as much.
	Value int
	// Properties is how many properties of one event are kept; the rest
	// are dropped.
	Properties int
	// Recording is the most bytes stored for one session's recording.
	Recording int64
	// Recordings is the most recording bytes stored for one site a day
	// (UTC).
	Recordings int64
}

// Default limits. They never cut what the PostHog SDKs send in ordinary
// use: posthog-js events carry 50–80 properties, `$set_once` on identify
// about 40, and an `$elements_chain` of a deep Tailwind page a few KiB.
const (
	DefaultValueLimit      = 2 << 10
	DefaultPropertiesLimit = 300
	DefaultRecordingLimit  = 20 << 20
	DefaultRecordingsLimit = 2 << 30

	// longValueFactor is how much longer than Limits.Value a long-by-nature
	// property or a JSON value may be.
	longValueFactor = 16
	// maxIDLen bounds an event name and a distinct id; longer drops the
	// event (reason too_long).
	maxIDLen = 200
	// maxKeyLen bounds a property name; longer drops the property.
	maxKeyLen = 200
)

// withDefaults fills the zero fields.
func (l Limits) withDefaults() Limits {
	if l.Value <= 0 {
		l.Value = DefaultValueLimit
	}
	if l.Properties <= 0 {
		l.Properties = DefaultPropertiesLimit
	}
	if l.Recording <= 0 {
		l.Recording = DefaultRecordingLimit
	}
	if l.Recordings <= 0 {
		l.Recordings = DefaultRecordingsLimit
	}
	return l
}

// longProps are sent long by the SDKs in ordinary use.
var longProps = map[string]bool{
	"$elements_chain":      true,
	"$current_url":         true,
	"$referrer":            true,
	"$initial_current_url": true,
	"$initial_referrer":    true,
}

// personUpdates are the JSON objects of person properties; their members
// are held to the same limits as an event's properties.
var personUpdates = map[string]bool{"$set": true, "$set_once": true}

// capProps applies the limits to an event's properties in place and
// returns them with the number of properties cut or dropped. A $snapshot's
// rrweb data is bounded by the recording limits instead.
func (l *Limits) capProps(name string, ps store.Props) (store.Props, int) {
	cut := 0
	out := ps[:0]
	for i := range ps {
		// Read in place: most properties stay where they are.
		p := &ps[i]
		if len(out) >= l.Properties {
			cut++
			continue
		}
		if len(p.Key) > maxKeyLen {
			cut++
			continue
		}
		val, changed := p.Val.S, false
		switch p.Val.Kind {
		case store.KindString:
			// Only a value over the common bound needs its key's.
			max := l.Value
			if len(val) > max && longProps[p.Key] {
				max *= longValueFactor
			}
			if len(val) > max {
				val, changed = cutUTF8(val, max), true
				cut++
			}
		case store.KindJSON:
			if name == "$snapshot" && p.Key == "$snapshot_data" {
				break
			}
			if personUpdates[p.Key] {
				var n int
				val, n = l.capObject(val)
				changed = true
				cut += n
				break
			}
			if len(val) > l.Value*longValueFactor {
				cut++
				continue
			}
		case store.KindNumber:
			if len(val) > 64 {
				cut++
				continue
			}
		}
		if len(out) == i && !changed {
			out = out[:i+1] // nothing before it dropped, nothing cut
			continue
		}
		q := *p
		q.Val.S = val
		out = append(out, q) // at i or before: never over what is still to read
	}
	// Clear the tail so dropped values are not kept alive by the slab.
	for i := len(out); i < len(ps); i++ {
		ps[i] = store.Prop{}
	}
	return out, cut
}

// capObject applies the limits to the members of a JSON object of person
// properties and returns it re-encoded when anything changed.
func (l *Limits) capObject(raw string) (string, int) {
	if len(raw) <= l.Value && len(raw) < 256 {
		return raw, 0
	}
	var ps store.Props
	cut := 0
	gjson.Parse(raw).ForEach(func(k, v gjson.Result) bool {
		ps = append(ps, store.Prop{Key: validUTF8(k.Str), Val: jsonValue(v)})
		return true
	})
	ps, cut = l.capProps("", ps)
	if cut == 0 {
		return raw, 0
	}
	return string(ps.AppendJSON(nil)), cut
}

// cutUTF8 returns at most max bytes of s, never splitting a character.
func cutUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// capRecordings drops the snapshots of sessions whose recording has reached
// Limits.Recording, and all of them once the site's recordings of the day
// have reached Limits.Recordings; the client is answered 200 as usual and
// the drop is counted (reason recording_limit).
func (c *Collector) capRecordings(site string, snaps []store.Snapshot) []store.Snapshot {
	if len(snaps) == 0 {
		return snaps
	}
	kept := snaps[:0]
	dropped := 0
	for _, sn := range snaps {
		session, day := c.store.RecordingUsage(site, sn.SessionID)
		if session >= c.cfg.Limits.Recording || day >= c.cfg.Limits.Recordings {
			dropped++
			continue
		}
		kept = append(kept, sn)
	}
	if dropped > 0 {
		c.metrics.Rejected(site, ReasonRecordingCap, dropped)
	}
	return kept
}
