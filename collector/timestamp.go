package collector

import (
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// earliest is the oldest event time accepted; older times are taken for
// mistakes (seconds sent as milliseconds, zero values) and the event is
// dropped rather than filed under 1970.
var earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// maxFuture is how far ahead of the server's clock an event may be, after
// clock-skew correction.
const maxFuture = 24 * time.Hour

// parseTime reads a timestamp as PostHog clients send it: RFC 3339 (with any
// fraction, with or without a zone: none means UTC; a space instead of
// the T), a date alone, or Unix milliseconds as a number or a numeric string.
func parseTime(v gjson.Result) (int64, bool) {
	switch v.Type {
	case gjson.Number:
		f := v.Num
		if f != f || f > 1e15 || f < -1e15 {
			return 0, false
		}
		return int64(f), true
	case gjson.String:
		return parseTimeString(v.Str)
	}
	return 0, false
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999 -0700 MST",
	"2006-01-02",
}

func parseTimeString(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	if c := s[0]; c >= '0' && c <= '9' && !strings.ContainsAny(s, "-:T ") {
		if n, err := strconv.ParseFloat(s, 64); err == nil && n < 1e15 {
			return int64(n), true
		}
		return 0, false
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UnixMilli(), true
		}
	}
	return 0, false
}

// eventTime decides when an event happened, as PostHog does: the client's
// timestamp shifted by the client's clock error, which is the difference
// between the server's now and the client's sent_at; without a timestamp,
// now minus the event's offset (ms); without either, now. It reports false
// for a timestamp that cannot be read or that lands before 2000 or more than
// a day ahead.
func eventTime(ev gjson.Result, envSentAt gjson.Result, now time.Time, ignoreSentAt bool) (int64, bool) {
	return eventTimeOf(ev.Get("timestamp"), ev.Get("sent_at"), ev.Get("offset"), envSentAt, now, ignoreSentAt)
}

// eventTimeOf is eventTime given the event's timestamp, sent_at and offset
// members (each absent when the event has none).
func eventTimeOf(ts, sent, off gjson.Result, envSentAt gjson.Result, now time.Time, ignoreSentAt bool) (int64, bool) {
	return eventTimeEnv(ts, sent, off, &sentAtMemo{r: envSentAt}, now, ignoreSentAt)
}

// sentAtMemo is an envelope's sent_at, read once for all its events.
type sentAtMemo struct {
	r    gjson.Result
	done bool
	ms   int64
	ok   bool
}

func (m *sentAtMemo) time() (int64, bool) {
	if !m.done {
		m.ms, m.ok = parseTime(m.r)
		m.done = true
	}
	return m.ms, m.ok
}

// eventTimeEnv is eventTimeOf with the envelope's sent_at in env.
func eventTimeEnv(ts, sent, off gjson.Result, env *sentAtMemo, now time.Time, ignoreSentAt bool) (int64, bool) {
	nowMS := now.UnixMilli()
	var t int64
	switch {
	case ts.Exists() && ts.Type != gjson.Null:
		var ok bool
		if t, ok = parseTime(ts); !ok {
			return 0, false
		}
		if ignoreSentAt {
			break
		}
		var s int64
		switch {
		case sent.Exists() && sent.Type != gjson.Null:
			s, ok = parseTime(sent)
		case env.r.Exists() && env.r.Type != gjson.Null:
			s, ok = env.time()
		default:
			ok = false
		}
		if ok && s >= earliest {
			t = nowMS + (t - s)
		}
	default:
		t = nowMS
		if off.Type == gjson.Number {
			t = nowMS - int64(off.Num)
		}
	}
	if t < earliest || t > nowMS+maxFuture.Milliseconds() {
		return 0, false
	}
	return t, true
}
