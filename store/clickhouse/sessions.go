package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/firstpartyhq/firstparty/store"
)

// Session properties (SPEC §4), as the local store computes them: fixed
// per session from all of its events whatever the query's range, $entry_*
// from its first pageview (its first event when it has none), ties broken
// by the order the events were appended (seq), $exit_pathname from its
// last pageview, $session_duration in seconds, $channel_type from the
// entry by the store's own rules (store.ChannelType, run here on each
// distinct entry).

// sessionKeys are the session properties, each read into column sp<i>.
var sessionKeys = []struct {
	key, source string
	exit        bool
}{
	{"$entry_pathname", "$pathname", false},
	{"$exit_pathname", "$pathname", true},
	{"$entry_referring_domain", "$referring_domain", false},
	{"$entry_referrer", "$referrer", false},
	{"$entry_utm_source", "utm_source", false},
	{"$entry_utm_medium", "utm_medium", false},
	{"$entry_utm_campaign", "utm_campaign", false},
	{"$entry_utm_term", "utm_term", false},
	{"$entry_utm_content", "utm_content", false},
	{"$entry_current_url", "$current_url", false},
	{"$channel_type", "", false},
	{"$session_duration", "", false},
}

// sessionCol is the column of session property key in base's output.
func sessionCol(key string) (SQL, bool) {
	for i, s := range sessionKeys {
		if s.key == key {
			return Build("?", Ident(fmt.Sprint("sp", i))), true
		}
	}
	return "", false
}

// channelInputs are the entry's properties $channel_type reads.
var channelInputs = []string{"$referring_domain", "utm_source", "utm_medium", "utm_campaign", "$current_url"}

// sessionsSQL is a relation of the site's sessions with an event in q's
// range, each with the properties keys computed from all of its events
// (columns sh, cityHash64 of the session id, and sp<i> of each key: the
// others are not computed, as each reads every event of the sessions).
// Sessions are grouped by their hash: exact but for a 64-bit collision,
// and many times faster to group than the ids.
func (b *Backend) sessionsSQL(ctx context.Context, q store.Query, keys []string) (SQL, error) {
	site := q.Site
	// A pageview at the time it was stored: a server pageview counts as
	// one (the snippet's usually comes after it).
	pv := SQL("name IN ('$pageview', '$server_pageview')")
	order := SQL("(ts, seq)")
	entry := func(src string) SQL {
		return Build("if(countIf(?) > 0, argMinIf(?, ?, ?), argMin(?, ?))", pv, prop(src), order, pv, prop(src), order)
	}
	inner := []SQL{"cityHash64(session) AS sh"}
	want := func(i int) bool { return slices.Contains(keys, sessionKeys[i].key) }
	for i, s := range sessionKeys {
		if !want(i) {
			continue
		}
		var v SQL
		switch {
		case s.key == "$session_duration":
			v = "toString((max(ts) - min(ts)) / 1000)"
		case s.key == "$channel_type":
			// The entry's inputs, joined, for the classification below.
			parts := make([]SQL, len(channelInputs))
			for j, in := range channelInputs {
				parts[j] = entry(in)
			}
			v = Build("arrayStringConcat([?], '\\x00')", Join(parts, ", "))
		case s.exit:
			v = Build("if(countIf(?) > 0, argMaxIf(?, ?, ?), '')", pv, prop(s.source), order, pv)
		default:
			v = entry(s.source)
		}
		inner = append(inner, Build("? AS ?", v, Ident(fmt.Sprint("sp", i))))
	}
	// Each uuid once, at a cost only when one is there twice (dedup.go).
	evs, err := b.siteEvents(ctx, site)
	if err != nil {
		return "", err
	}
	from, to := q.From.UnixMilli(), q.To.UnixMilli()
	inRange := Build("SELECT cityHash64(session) FROM events WHERE site = ? AND ? AND ts >= ? AND ts < ? AND session != ''", site, timeRange(from, to), from, to)
	sess := Build("SELECT ? FROM ? WHERE site = ? AND session != '' AND cityHash64(session) GLOBAL IN (?) GROUP BY sh", Join(inner, ", "), evs, site, inRange)
	// $channel_type: each distinct entry classified by the store's rules.
	chIdx := len(sessionKeys) - 2
	chCol := Ident(fmt.Sprint("sp", chIdx))
	var rows [][]json.RawMessage
	if want(chIdx) {
		if rows, err = b.client().Query(ctx, Build("SELECT DISTINCT ? FROM (?)", chCol, sess)); err != nil {
			return "", err
		}
	}
	var inputs, types []string
	for _, r := range rows {
		in := asStr(r[0])
		f := splitNul(in, len(channelInputs))
		inputs = append(inputs, in)
		types = append(types, store.ChannelType(f[0], f[1], f[2], f[3], f[4]))
	}
	outer := []SQL{"sh"}
	for i := range sessionKeys {
		if !want(i) {
			continue
		}
		c := Ident(fmt.Sprint("sp", i))
		if i == chIdx {
			if len(inputs) == 0 {
				outer = append(outer, Build("'' AS ?", c))
				continue
			}
			outer = append(outer, Build("transform(?, ?, ?, '') AS ?", c, inputs, types, c))
			continue
		}
		outer = append(outer, Build("?", c))
	}
	return Build("SELECT ? FROM (?)", Join(outer, ", "), sess), nil
}

func splitNul(s string, n int) []string {
	out := make([]string, 0, n)
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	out = append(out, s[start:])
	for len(out) < n {
		out = append(out, "")
	}
	return out
}
