package clickhouse

import (
	"fmt"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// TestLateLinkArrivalOrder: links are applied in the order they arrived,
// as the one embedded store applies them, not by their timestamps: a late
// `$identify` with an old timestamp, arriving through the other node after
// another login of the same device, is refused (the device is already
// another user's), and a person's root is the id that arrived first even
// when a later event of another id has an older timestamp.
func TestLateLinkArrivalOrder(t *testing.T) {
	tn := startTwoNodes(t, "arrival")
	n := 0
	ev := func(node int, name, did string, at time.Duration, props ...store.Prop) sent {
		n++
		props = append(props, store.Prop{Key: "$session_id", Val: store.StringValue("s-" + did)}, store.Prop{Key: "$pathname", Val: store.StringValue("/")})
		return sent{node, &store.Event{Site: "s", UUID: fmt.Sprintf("00000000-0000-7000-8000-%012d", n), Name: name, DistinctID: did,
			Time: tn.t0.Add(at).UnixMilli(), Props: props}}
	}
	str := func(k, v string) store.Prop { return store.Prop{Key: k, Val: store.StringValue(v)} }
	arrivals := []sent{
		ev(0, "$pageview", "anonA", 10*time.Minute),
		ev(0, "$identify", "userU", 20*time.Minute, str("$anon_distinct_id", "anonA")),
		ev(1, "$identify", "userV", 15*time.Minute, str("$anon_distinct_id", "anonA")), // late: older than U's login
		ev(1, "$pageview", "userV", 30*time.Minute),
		ev(0, "$pageview", "userU", 31*time.Minute),
		ev(1, "$pageview", "anonB", 40*time.Minute),
		ev(0, "$pageview", "anonC", 5*time.Minute), // late: older than anonB's first event
		ev(0, "$create_alias", "anonB", 45*time.Minute, str("alias", "anonC")),
	}
	tn.sendOneByOne(t, arrivals) // one by one, in this order, on each side
	if p := must(tn.ref.Person(ctx, "s", "anonA")); len(p.DistinctIDs) != 2 || p.DistinctIDs[1] != "userU" && p.DistinctIDs[0] != "userU" {
		t.Fatalf("the embedded store's person of anonA: %v", p.DistinctIDs)
	}
	q := store.Query{Site: "s", From: tn.t0, To: tn.t0.Add(24 * time.Hour)}
	for i, nd := range tn.nodes {
		for _, id := range []string{"anonA", "userU", "userV", "anonB", "anonC"} {
			sameJSON(t, fmt.Sprintf("node %d person %s", i, id), must(nd.Person(ctx, "s", id)), must(tn.ref.Person(ctx, "s", id)))
		}
		sameJSON(t, fmt.Sprintf("node %d stats", i), must(nd.Stats(ctx, q)), must(tn.ref.Stats(ctx, q)))
		eq := store.EventQuery{Site: "s", From: q.From.UnixMilli(), To: q.To.UnixMilli(), Limit: 100}
		got, want := must(nd.Events(ctx, eq)), must(tn.ref.Events(ctx, eq))
		sameJSON(t, fmt.Sprintf("node %d events", i), [2]any{got.Results, got.PersonIDs}, [2]any{want.Results, want.PersonIDs})
	}
}
