package collector

import (
	"strings"
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

func (s *propSlab) start() int { return len(s.buf) }

func (s *propSlab) finish(start int) store.Props {
	n := len(s.buf)
	for i := 0; i < enrichRoom; i++ {
		s.buf = append(s.buf, store.Prop{})
	}
	return s.buf[start : n : n+enrichRoom]
}

// parseEvent validates one event of a payload and converts it. It never
// fails the request: a bad event comes back with a reason and is dropped.
func parseEvent(r gjson.Result, p *payload, now time.Time, slab *propSlab, lim *Limits) incoming {
	if !r.IsObject() {
		return reject(ReasonBadEvent, "event must be a JSON object")
	}
	name := r.Get("event")
	if name.Type != gjson.String || name.Str == "" {
		return reject(ReasonBadEvent, "event name missing or not a string")
	}
	if len(name.Str) > maxIDLen {
		return reject(ReasonTooLong, "event name longer than 200 bytes")
	}
	props := r.Get("properties")
	if props.Exists() && props.Type != gjson.Null && !props.IsObject() {
		return reject(ReasonBadEvent, "properties must be an object")
	}

	did := firstString(r, "distinct_id", "$distinct_id")
	if did == "" {
		did = firstString(props, "distinct_id", "$distinct_id")
	}
	if did == "" {
		return reject(ReasonBadEvent, "distinct_id missing")
	}
	if len(did) > maxIDLen {
		return reject(ReasonTooLong, "distinct_id longer than 200 bytes")
	}

	uuid := r.Get("uuid")
	var id string
	switch uuid.Type {
	case gjson.String:
		id = uuid.Str
	case gjson.Null:
	default:
		if uuid.Exists() {
			return reject(ReasonBadEvent, "uuid must be a string")
		}
	}
	if len(id) > maxUUIDLen {
		return reject(ReasonBadEvent, "uuid too long")
	}

	ignoreSentAt := props.Get("$ignore_sent_at").Type == gjson.True
	ts, ok := eventTime(r, p.sentAt, now, ignoreSentAt)
	if !ok {
		return reject(ReasonBadTimestamp, "timestamp unreadable, before 2000 or more than a day ahead")
	}

	in := incoming{
		ev: &store.Event{
			UUID:       validUTF8(id),
			Name:       validUTF8(name.Str),
			DistinctID: validUTF8(did),
			Time:       ts,
		},
		token:      firstString(r, "api_key", "token"),
		geoDisable: props.Get("$geoip_disable").Type == gjson.True,
	}
	if in.token == "" {
		in.token = firstString(props, "token", "api_key")
	}
	if in.token == "" {
		in.token = p.apiKey
	}
	first := slab.start()
	props.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "distinct_id", "token", "api_key", "$distinct_id":
			return true
		}
		slab.buf = append(slab.buf, store.Prop{Key: validUTF8(k.Str), Val: jsonValue(v)})
		return true
	})
	ps := slab.finish(first)
	// $set and $set_once may also sit at the top level (posthog-js, go).
	for _, k := range [...]string{"$set", "$set_once", "$unset"} {
		top := r.Get(gjsonKey(k))
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

// jsonValue converts a JSON value; strings are made valid UTF-8 and objects
// and arrays compacted.
func jsonValue(v gjson.Result) store.Value {
	switch v.Type {
	case gjson.String:
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
