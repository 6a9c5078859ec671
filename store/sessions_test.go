package store

import (
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"
)

// The reference's session properties and filter scope, from SPEC §4's
// text: "Session properties (PostHog's names), fixed per session:
// $entry_pathname, $exit_pathname (of its last pageview), $entry_*, ...
// $session_duration"; "a filter on a session property keeps whole
// sessions ... a filter on an event property keeps the sessions that have
// at least one passing event: visitors, sessions, bounce_rate,
// avg_session_seconds and session-property breakdowns are computed over
// those whole sessions, while pageviews and event-property breakdowns
// count only the passing events."

// sessionValue computes a session property of e's session from all the
// session's stored events.
func (r *ref) sessionValue(e *Event, key string) string {
	id := e.Props.Str("$session_id")
	if id == "" {
		return ""
	}
	var first, last, entry, exit *Event
	for _, x := range r.events {
		if x.Props.Str("$session_id") != id {
			continue
		}
		if first == nil || x.Time < first.Time {
			first = x
		}
		if last == nil || x.Time >= last.Time {
			last = x
		}
		if x.Name == "$pageview" {
			if entry == nil || x.Time < entry.Time {
				entry = x
			}
			if exit == nil || x.Time >= exit.Time {
				exit = x
			}
		}
	}
	if entry == nil {
		entry = first
	}
	switch key {
	case "$session_duration":
		return strconv.FormatFloat(math.Round(float64(last.Time-first.Time))/1000, 'f', -1, 64)
	case "$exit_pathname":
		if exit == nil {
			return ""
		}
		return exit.Props.Str("$pathname")
	case "$channel_type":
		return channelType(entry.Props.Str("$referring_domain"), entry.Props.Str("utm_source"), entry.Props.Str("utm_medium"), entry.Props.Str("utm_campaign"), entry.Props.Str("$current_url"))
	}
	return entry.Props.Str(sessionProps[key].source)
}

// scoped reports whether q filters an event property.
func (r *ref) scoped(q Query) bool {
	for _, f := range q.Filters {
		if !IsSessionProp(f.Prop) && f.Prop != "$session_id" {
			return true
		}
	}
	return false
}

// wholeSessions returns the events in q's range (session filters and
// cohort applied) of the sessions that have an event in passing.
func (r *ref) wholeSessions(q Query, passing []*Event) []*Event {
	sel := map[string]bool{}
	for _, e := range passing {
		if id := e.Props.Str("$session_id"); id != "" {
			sel[id] = true
		}
	}
	sq := q
	sq.Filters = nil
	for _, f := range q.Filters {
		if IsSessionProp(f.Prop) || f.Prop == "$session_id" {
			sq.Filters = append(sq.Filters, f)
		}
	}
	var out []*Event
	for _, e := range r.selected(sq) {
		if sel[e.Props.Str("$session_id")] {
			out = append(out, e)
		}
	}
	return out
}

// TestSessionScopeMatchesReference: stats and breakdowns with session
// property filters and breakdowns, and with event-property filters under
// Plausible's scope, over random sessions, as the reference computes them.
func TestSessionScopeMatchesReference(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	db, rf := refDB(t, genConfig{Seed: 13, Start: start, Days: 8, Persons: 160, Events: 5000, Tick: time.Minute}, 53, nil)
	filters := []string{"$pathname==/pricing", "$pathname~docs", "event==purchase", "$browser==Chrome",
		"$entry_pathname==/", "$exit_pathname!=/pricing", "$channel_type==Direct", "$channel_type!=Organic Search",
		"$entry_referring_domain~google", "$entry_utm_source!=", "$session_duration!=0"}
	props := []string{"$pathname", "$browser", "$entry_pathname", "$exit_pathname", "$channel_type", "$entry_referring_domain", "$entry_utm_source", "$session_duration"}
	checked := 0
	for i := 0; i < 80; i++ {
		from := start.Add(time.Duration(i%9) * 24 * time.Hour)
		q := Query{Site: "s", From: from, To: from.Add(time.Duration(1+i%5) * 24 * time.Hour)}
		for n := i % 3; n > 0; n-- {
			f, _ := ParseFilter(filters[(i*7+n*3)%len(filters)])
			q.Filters = append(q.Filters, f)
		}
		got, err := db.Stats(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want := rf.stats(q)
		got.JSShare = nil
		if math.Abs(got.AvgSessionSeconds-want.AvgSessionSeconds) > 1e-6 || math.Abs(got.BounceRate-want.BounceRate) > 1e-9 {
			t.Fatalf("query %d %v: stats\n got %+v\nwant %+v", i, q.Filters, got, want)
		}
		got.AvgSessionSeconds, want.AvgSessionSeconds, got.BounceRate, want.BounceRate = 0, 0, 0, 0
		got.ViewsPerSession, want.ViewsPerSession = 0, 0
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("query %d %v: stats\n got %+v\nwant %+v", i, q.Filters, got, want)
		}
		if want.Sessions > 0 {
			checked++
		}
		bq := BreakdownQuery{Property: props[i%len(props)], Limit: 50}
		if i%2 == 0 {
			bq.Event = "$pageview"
		}
		rows, err := db.Breakdown(ctx, q, bq)
		if err != nil {
			t.Fatal(err)
		}
		if wantRows := rf.breakdown(q, bq); fmt.Sprint(rows) != fmt.Sprint(wantRows) {
			t.Fatalf("query %d %v: breakdown by %s\n got %v\nwant %v", i, q.Filters, bq.Property, rows, wantRows)
		}
	}
	if checked < 40 {
		t.Fatalf("only %d queries had sessions", checked)
	}
}

// TestChannelTypes: the channel of a session's entry, PostHog's names.
func TestChannelTypes(t *testing.T) {
	for _, c := range []struct{ ref, source, medium, campaign, url, want string }{
		{"$direct", "", "", "", "https://x.example/", ChannelDirect},
		{"www.google.com", "", "", "", "", ChannelOrganicSearch},
		{"www.google.com", "", "", "", "https://x.example/?gclid=abc", ChannelPaidSearch},
		{"", "google", "cpc", "", "", ChannelPaidSearch},
		{"news.ycombinator.com", "", "", "", "", ChannelOrganicSocial},
		{"t.co", "", "", "", "", ChannelOrganicSocial},
		{"l.facebook.com", "facebook", "paid_social", "", "", ChannelPaidSocial},
		{"www.youtube.com", "", "", "", "", ChannelOrganicVideo},
		{"", "newsletter", "email", "nov", "", ChannelEmail},
		{"mail.google.com", "", "", "", "", ChannelEmail},
		{"", "partner", "affiliate", "", "", ChannelAffiliate},
		{"blog.example.org", "", "", "", "", ChannelReferral},
		{"", "x", "display", "cross-network-1", "", ChannelCrossNetwork},
		{"", "someone", "", "", "", ChannelUnknown},
	} {
		if got := channelType(c.ref, c.source, c.medium, c.campaign, c.url); got != c.want {
			t.Errorf("channelType(%q, %q, %q, %q, %q) = %q, want %q", c.ref, c.source, c.medium, c.campaign, c.url, got, c.want)
		}
	}
}
