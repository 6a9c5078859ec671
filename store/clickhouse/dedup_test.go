package clickhouse

import (
	"fmt"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// TestResentCopyOtherDay: a resent copy of an event (same uuid) whose time
// falls on the next day, sent through the other node, is a second row in
// ClickHouse; reports count the event once, on the first copy's day, as
// the embedded store keeps the first copy: over both days, over the first
// day, and over the second day alone (whose copy is not the kept one).
func TestResentCopyOtherDay(t *testing.T) {
	tn := startTwoNodes(t, "resent")
	midnight := tn.t0.Add(24 * time.Hour)
	n := 0
	ev := func(uuid int, did, path string, at time.Time) *store.Event {
		n++
		return &store.Event{Site: "s", UUID: fmt.Sprintf("00000000-0000-7000-8000-%012d", uuid), Name: "$pageview", DistinctID: did, Time: at.UnixMilli(),
			Props: store.Props{{Key: "$session_id", Val: store.StringValue("s-" + did)}, {Key: "$pathname", Val: store.StringValue(path)}}}
	}
	arrivals := []sent{
		{0, ev(1, "a", "/x", midnight.Add(-5*time.Hour))},
		{0, ev(2, "a", "/late", midnight.Add(-500*time.Millisecond))},
		{1, ev(3, "b", "/x", midnight.Add(2*time.Hour))},
		{1, ev(2, "a", "/late", midnight.Add(700*time.Millisecond))}, // the resend, on the next day
		{1, ev(4, "c", "/y", midnight.Add(3*time.Hour))},
	}
	tn.sendOneByOne(t, arrivals)
	if got := count(t, tn.nodes[0].client(), "SELECT count() FROM events FINAL WHERE uuid = '00000000-0000-7000-8000-000000000002'"); got != 2 {
		t.Fatalf("%d rows of the resent uuid in ClickHouse, want 2 (one a day)", got)
	}
	for _, q := range []store.Query{
		{Site: "s", From: tn.t0, To: tn.t0.Add(48 * time.Hour)},
		{Site: "s", From: tn.t0, To: midnight},
		{Site: "s", From: midnight, To: midnight.Add(24 * time.Hour)},
		{Site: "s", From: midnight.Add(-time.Second), To: midnight.Add(time.Second)},
	} {
		for i, nd := range tn.nodes {
			name := fmt.Sprintf("node %d %v..%v", i, q.From, q.To)
			sameJSON(t, name+" stats", must(nd.Stats(ctx, q)), must(tn.ref.Stats(ctx, q)))
			bq := store.BreakdownQuery{Property: "$pathname"}
			sameJSON(t, name+" breakdown", must(nd.Breakdown(ctx, q, bq)), must(tn.ref.Breakdown(ctx, q, bq)))
			tq := store.TrendsQuery{Events: []string{"$pageview"}, Interval: store.IntervalHour, Math: store.MathTotal}
			sameJSON(t, name+" trends", must(nd.Trends(ctx, q, tq)), must(tn.ref.Trends(ctx, q, tq)))
		}
	}
	_, local := tn.nodes[0].Answered()
	if local["stats"] != 0 || local["breakdown"] != 0 || local["trends"] != 0 {
		t.Fatalf("answered locally: %v", local)
	}
}
