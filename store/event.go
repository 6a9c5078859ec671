// Package store keeps Firstparty's events durably and answers every query the
// dashboard asks. Events are committed to an append-only buntdb log in compact
// binary blocks; an in-memory columnar table per site, rebuilt from the log at
// start, serves the queries.
package store

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is the JSON type of a property value.
type Kind uint8

// The kinds of property values. Numbers keep their JSON literal so that
// nothing is lost to float conversion; objects and arrays keep their compact
// JSON text.
const (
	KindNull Kind = iota
	KindString
	KindNumber
	KindTrue
	KindFalse
	KindJSON
)

// Value is one property value.
type Value struct {
	Kind Kind
	// S is the string for KindString, the JSON literal for KindNumber and the
	// compact JSON text for KindJSON; empty otherwise.
	S string
}

// String returns v as text: strings as they are, everything else as JSON.
// It is the form filters and breakdowns compare.
func (v Value) String() string {
	switch v.Kind {
	case KindString, KindNumber, KindJSON:
		return v.S
	case KindTrue:
		return "true"
	case KindFalse:
		return "false"
	}
	return ""
}

// clone returns v with its own copy of the string, so that keeping it does
// not keep a whole request body or block alive.
func (v Value) clone() Value {
	v.S = strings.Clone(v.S)
	return v
}

// StringValue makes a string Value.
func StringValue(s string) Value { return Value{Kind: KindString, S: s} }

// NumberValue makes a number Value from a float.
func NumberValue(f float64) Value {
	return Value{Kind: KindNumber, S: strconv.FormatFloat(f, 'f', -1, 64)}
}

// BoolValue makes a boolean Value.
func BoolValue(b bool) Value {
	if b {
		return Value{Kind: KindTrue}
	}
	return Value{Kind: KindFalse}
}

// Prop is one event property.
type Prop struct {
	Key string
	Val Value
}

// Props is an event's properties in the order they arrived. Keys are unique.
type Props []Prop

// Get returns the value of key and whether it is present.
func (ps Props) Get(key string) (Value, bool) {
	for i := range ps {
		if ps[i].Key == key {
			return ps[i].Val, true
		}
	}
	return Value{}, false
}

// Str returns the value of key as text, "" when absent.
func (ps Props) Str(key string) string {
	v, _ := ps.Get(key)
	return v.String()
}

// Set replaces the value of key or appends it.
func (ps *Props) Set(key string, v Value) {
	for i := range *ps {
		if (*ps)[i].Key == key {
			(*ps)[i].Val = v
			return
		}
	}
	*ps = append(*ps, Prop{Key: key, Val: v})
}

// SetIfMissing appends key unless it is already present.
func (ps *Props) SetIfMissing(key string, v Value) {
	if _, ok := ps.Get(key); !ok {
		*ps = append(*ps, Prop{Key: key, Val: v})
	}
}

// Delete removes key.
func (ps *Props) Delete(key string) {
	for i := range *ps {
		if (*ps)[i].Key == key {
			*ps = append((*ps)[:i], (*ps)[i+1:]...)
			return
		}
	}
}

// Event is one analytics event as stored.
type Event struct {
	// UUID identifies the event; a repeated UUID is stored once.
	UUID string
	// Site is the site (project) the event belongs to.
	Site string
	// Name is the event name, e.g. "$pageview".
	Name string
	// DistinctID is the id the event was sent with.
	DistinctID string
	// Time is the event time in Unix milliseconds.
	Time int64
	// Props are the properties, including "$set"/"$set_once" when the event
	// carries person property updates.
	Props Props
}

// Timestamp returns the event time.
func (e *Event) Timestamp() time.Time { return time.UnixMilli(e.Time).UTC() }

// FormatTime formats Unix milliseconds the way the API shows times:
// RFC 3339 in UTC with milliseconds.
func FormatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// AppendJSON appends the event as a JSON object:
// {"uuid","event","distinct_id","timestamp","properties"} and, when personID
// is not empty, "person_id".
func (e *Event) AppendJSON(b []byte, personID string) []byte {
	b = append(b, `{"uuid":`...)
	b = AppendJSONString(b, e.UUID)
	b = append(b, `,"event":`...)
	b = AppendJSONString(b, e.Name)
	b = append(b, `,"distinct_id":`...)
	b = AppendJSONString(b, e.DistinctID)
	if personID != "" {
		b = append(b, `,"person_id":`...)
		b = AppendJSONString(b, personID)
	}
	b = append(b, `,"timestamp":"`...)
	b = append(b, FormatTime(e.Time)...)
	b = append(b, `","properties":`...)
	b = e.Props.AppendJSON(b)
	return append(b, '}')
}

// AppendJSON appends the properties as a JSON object.
func (ps Props) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	for i, p := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, p.Key)
		b = append(b, ':')
		b = p.Val.AppendJSON(b)
	}
	return append(b, '}')
}

// AppendJSON appends the value as JSON.
func (v Value) AppendJSON(b []byte) []byte {
	switch v.Kind {
	case KindString:
		return AppendJSONString(b, v.S)
	case KindNumber, KindJSON:
		if v.S == "" {
			return append(b, "null"...)
		}
		return append(b, v.S...)
	case KindTrue:
		return append(b, "true"...)
	case KindFalse:
		return append(b, "false"...)
	}
	return append(b, "null"...)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// and <, >, & are escaped so the output is safe to embed in HTML.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
