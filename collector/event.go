package collector

import (
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/tidwall/gjson"
	"github.com/tidwall/pretty"
)

// Why an event was not stored; the values label
// caddy_analytics_events_rejected_total.
const (
	ReasonBadBody      = "bad_body"
	ReasonBadEvent     = "bad_event"
	ReasonBadTimestamp = "bad_timestamp"
	ReasonToken        = "token"
	ReasonBot          = "bot"
	ReasonDuplicate    = "duplicate"
	ReasonRateLimit    = "rate_limit"
	ReasonTooLarge     = "too_large"
	ReasonUnavailable  = "unavailable"
	ReasonTooLong      = "too_long"
	ReasonDNT          = "dnt"
	ReasonRecordingCap = "recording_limit"
)

// maxUUIDLen bounds an event's uuid.
const maxUUIDLen = 200

// incoming is one event of a request after validation.
type incoming struct {
	ev         *store.Event
	token      string
	geoDisable bool
	// reason and detail say why the event is dropped; empty when valid.
	reason, detail string
	// cut is how many properties the limits cut or dropped.
	cut int
}

func reject(reason, detail string) incoming { return incoming{reason: reason, detail: detail} }

// propSlab hands out the property slices of one request's events from one
// allocation. Each event's slice keeps room for the properties enrichment
// adds, so appending to it never reallocates or reaches a neighbour.
type propSlab struct{ buf store.Props }

// enrichRoom is how many properties enrichment may add to an event.
const enrichRoom = 16

// slabPool keeps the slabs of earlier requests: a batch of 50 posthog-js
// events needs about 100 KB of them.
var slabPool = sync.Pool{New: func() any { return new(propSlab) }}

// maxPooledSlab is the largest slab kept for reuse, in properties.
const maxPooledSlab = 1 << 16

// newPropSlab returns a slab with room for about n properties.
func newPropSlab(n int) *propSlab {
	s := slabPool.Get().(*propSlab)
	if cap(s.buf) < n {
		s.buf = make(store.Props, 0, n)
	}
	return s
}

// release hands the slab back once no event of the request is used any
// more; what it held is cleared so that it keeps nothing alive. Only the
// used part needs clearing: nothing is written past len (finish appends
// the room it hands out), and what lies there was cleared by the release
// before or never used.
func (s *propSlab) release() {
	if cap(s.buf) > maxPooledSlab {
		return
	}
	clear(s.buf)
	s.buf = s.buf[:0]
	slabPool.Put(s)
}

func (s *propSlab) start() int { return len(s.buf) }

func (s *propSlab) finish(start int) store.Props {
	n := len(s.buf)
	for i := 0; i < enrichRoom; i++ {
		s.buf = append(s.buf, store.Prop{})
	}
	return s.buf[start : n : n+enrichRoom]
}

// eventFields are the members of an event object that parseEvent reads,
// each the first occurrence of its key (as gjson's Get finds it), gathered
// in one pass over the object.
type eventFields struct {
	event, distinctID, dollarDistinctID, uuid, apiKey, token gjson.Result
	properties, timestamp, sentAt, offset                    gjson.Result
	set, setOnce, unset                                      gjson.Result
}

// first stores v in *dst unless an earlier member of that key did.
// A member's value is never empty text, so an empty Raw means none yet.
func first(dst *gjson.Result, v gjson.Result) {
	if dst.Raw == "" {
		*dst = v
	}
}

func (f *eventFields) read(x *jsonIndex, r gjson.Result) {
	x.eachMember(r.Raw, func(k string, v gjson.Result) bool {
		switch k {
		case "event":
			first(&f.event, v)
		case "distinct_id":
			first(&f.distinctID, v)
		case "$distinct_id":
			first(&f.dollarDistinctID, v)
		case "uuid":
			first(&f.uuid, v)
		case "api_key":
			first(&f.apiKey, v)
		case "token":
			first(&f.token, v)
		case "properties":
			first(&f.properties, v)
		case "timestamp":
			first(&f.timestamp, v)
		case "sent_at":
			first(&f.sentAt, v)
		case "offset":
			first(&f.offset, v)
		case "$set":
			first(&f.set, v)
		case "$set_once":
			first(&f.setOnce, v)
		case "$unset":
			first(&f.unset, v)
		}
		return true
	})
}

// eachProp walks an event's properties as gjson's ForEach does: the
// members of an object, and a null (the only other value let through) as
// one member with an empty key.
func eachProp(x *jsonIndex, props gjson.Result, fn func(k string, v gjson.Result) bool) {
	if props.Type == gjson.JSON {
		// Nothing reads a property's Num: its Raw is what is kept.
		x.walkMembers(props.Raw, false, fn)
		return
	}
	props.ForEach(func(k, v gjson.Result) bool { return fn(k.Str, v) })
}

// stringOf is what firstString takes from one member: a non-empty string
// or a number's text.
func stringOf(v gjson.Result) string {
	switch v.Type {
	case gjson.String:
		return v.Str
	case gjson.Number:
		return v.Raw
	}
	return ""
}

// parseEvent validates one event of a payload and converts it. It never
// fails the request: a bad event comes back with a reason and is dropped.
// It reads the event object once and its properties once.
func parseEvent(r gjson.Result, p *payload, now time.Time, slab *propSlab, lim *Limits) incoming {
	if !r.IsObject() {
		return reject(ReasonBadEvent, "event must be a JSON object")
	}
	var f eventFields
	f.read(p.index, r)
	name := f.event
	if name.Type != gjson.String || name.Str == "" {
		return reject(ReasonBadEvent, "event name missing or not a string")
	}
	if len(name.Str) > maxIDLen {
		return reject(ReasonTooLong, "event name longer than 200 bytes")
	}
	props := f.properties
	if props.Exists() && props.Type != gjson.Null && !props.IsObject() {
		return reject(ReasonBadEvent, "properties must be an object")
	}

	// One pass over the properties: the members that say something about
	// the event (first occurrences, as Get would find them) and the
	// properties kept.
	var pDistinctID, pDollarDistinctID, pToken, pAPIKey, pIgnoreSentAt, pGeoDisable gjson.Result
	first0 := slab.start()
	// In a body made valid UTF-8 before it was scanned, every key and
	// string is valid too (a piece between quotes, or gjson's unescaping,
	// which writes U+FFFD for what is no character).
	utf8Body := p.index != nil && p.index.utf8
	special := func(k string, v gjson.Result) bool {
		switch k {
		case "distinct_id":
			first(&pDistinctID, v)
		case "$distinct_id":
			first(&pDollarDistinctID, v)
		case "token":
			first(&pToken, v)
		case "api_key":
			first(&pAPIKey, v)
		case "$ignore_sent_at":
			first(&pIgnoreSentAt, v)
			return false
		case "$geoip_disable":
			first(&pGeoDisable, v)
			return false
		default:
			return false
		}
		return true // not kept as a property
	}
	if utf8Body && props.Type == gjson.JSON {
		slab.buf = p.index.appendProps(slab.buf, props.Raw, special)
	} else {
		eachProp(p.index, props, func(k string, v gjson.Result) bool {
			if special(k, v) {
				return true
			}
			if utf8Body {
				slab.buf = append(slab.buf, store.Prop{Key: k, Val: jsonValueOf(v, true)})
			} else {
				slab.buf = append(slab.buf, store.Prop{Key: validUTF8(k), Val: jsonValue(v)})
			}
			return true
		})
	}
	// Until the event is accepted, the slab's new properties are not kept.
	undo := func() { slab.buf = slab.buf[:first0] }

	did := firstOf(f.distinctID, f.dollarDistinctID, pDistinctID, pDollarDistinctID)
	if did == "" {
		undo()
		return reject(ReasonBadEvent, "distinct_id missing")
	}
	if len(did) > maxIDLen {
		undo()
		return reject(ReasonTooLong, "distinct_id longer than 200 bytes")
	}

	uuid := f.uuid
	var id string
	switch uuid.Type {
	case gjson.String:
		id = uuid.Str
	case gjson.Null:
	default:
		if uuid.Exists() {
			undo()
			return reject(ReasonBadEvent, "uuid must be a string")
		}
	}
	if len(id) > maxUUIDLen {
		undo()
		return reject(ReasonBadEvent, "uuid too long")
	}

	ignoreSentAt := pIgnoreSentAt.Type == gjson.True
	ts, ok := eventTimeEnv(f.timestamp, f.sentAt, f.offset, &p.sentAt, now, ignoreSentAt)
	if !ok {
		undo()
		return reject(ReasonBadTimestamp, "timestamp unreadable, before 2000 or more than a day ahead")
	}

	in := incoming{
		ev: &store.Event{
			UUID:       validUTF8(id),
			Name:       validUTF8(name.Str),
			DistinctID: validUTF8(did),
			Time:       ts,
		},
		token:      firstOf(f.apiKey, f.token),
		geoDisable: pGeoDisable.Type == gjson.True,
	}
	if in.token == "" {
		in.token = firstOf(pToken, pAPIKey)
	}
	if in.token == "" {
		in.token = p.apiKey
	}
	ps := slab.finish(first0)
	// $set and $set_once may also sit at the top level (posthog-js, go).
	for _, kv := range [...]struct {
		k   string
		top gjson.Result
	}{{"$set", f.set}, {"$set_once", f.setOnce}, {"$unset", f.unset}} {
		k, top := kv.k, kv.top
		if !top.IsObject() && !(k == "$unset" && top.IsArray()) {
			continue
		}
		v := jsonValue(top)
		if old, ok := ps.Get(k); ok && old.Kind == store.KindJSON && top.IsObject() {
			v.S = mergeObjects(old.S, v.S)
		}
		ps.Set(k, v)
	}
	in.ev.Props, in.cut = lim.capProps(in.ev.Name, ps)
	return in
}

// firstOf is firstString over members already looked up: the first that
// holds a non-empty string or a number.
func firstOf(vs ...gjson.Result) string {
	for _, v := range vs {
		if s := stringOf(v); s != "" {
			return s
		}
	}
	return ""
}

// jsonValue converts a JSON value; strings are made valid UTF-8 and objects
// and arrays compacted.
func jsonValue(v gjson.Result) store.Value { return jsonValueOf(v, false) }

// jsonValueOf is jsonValue; with valid, v is known to be valid UTF-8.
func jsonValueOf(v gjson.Result, valid bool) store.Value {
	switch v.Type {
	case gjson.String:
		if valid {
			return store.Value{Kind: store.KindString, S: v.Str}
		}
		return store.Value{Kind: store.KindString, S: validUTF8(v.Str)}
	case gjson.Number:
		return store.Value{Kind: store.KindNumber, S: v.Raw}
	case gjson.True:
		return store.Value{Kind: store.KindTrue}
	case gjson.False:
		return store.Value{Kind: store.KindFalse}
	case gjson.JSON:
		raw := v.Raw
		if strings.ContainsAny(raw, " \t\r\n") {
			raw = string(pretty.Ugly([]byte(raw)))
		}
		if valid {
			return store.Value{Kind: store.KindJSON, S: raw}
		}
		return store.Value{Kind: store.KindJSON, S: validUTF8(raw)}
	}
	return store.Value{Kind: store.KindNull}
}

// mergeObjects returns the members of JSON objects a and b, b's winning.
func mergeObjects(a, b string) string {
	var ps store.Props
	gjson.Parse(a).ForEach(func(k, v gjson.Result) bool {
		ps.Set(k.Str, jsonValue(v))
		return true
	})
	gjson.Parse(b).ForEach(func(k, v gjson.Result) bool {
		ps.Set(k.Str, jsonValue(v))
		return true
	})
	return string(ps.AppendJSON(nil))
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// eventKind is the kind label of caddy_analytics_events_total.
func eventKind(name string) string {
	switch name {
	case "$pageview":
		return "pageview"
	case "$pageleave":
		return "pageleave"
	case "$autocapture":
		return "autocapture"
	case "$rageclick":
		return "rageclick"
	case "$identify":
		return "identify"
	case "$create_alias":
		return "alias"
	case "$set":
		return "set"
	case "$snapshot":
		return "snapshot"
	case "$$heatmap":
		return "heatmap"
	case store.ServerPageview:
		return "server_pageview"
	case store.Download:
		return "download"
	case store.FeedFetch:
		return "feed_fetch"
	}
	if strings.HasPrefix(name, "$") {
		return "other"
	}
	return "custom"
}
