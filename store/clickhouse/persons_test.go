package clickhouse

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

// twoNodes is two local logs shipping to one cluster, and the one
// embedded store that is fed every event of both, in time order.
type twoNodes struct {
	nodes [2]*Backend
	ref   *store.DB
	t0    time.Time
}

func startTwoNodes(t *testing.T, db string) *twoNodes {
	c := chtest.Start(t)
	dir := t.TempDir()
	tn := &twoNodes{t0: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}
	for i := range tn.nodes {
		tn.nodes[i] = open(t, filepath.Join(dir, fmt.Sprint("node", i, ".db")), c, db)
		t.Cleanup(func() { tn.nodes[i].Close() })
	}
	ref, err := store.Open(filepath.Join(dir, "ref.db"), store.Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ref.Close() })
	tn.ref = ref
	return tn
}

// sent is one event and the node it is sent through.
type sent struct {
	node int
	ev   *store.Event
}

// sender makes the events a test sends through its nodes, to site "s",
// at offsets from t0, numbered in the order they are made (their uuids).
type sender struct {
	t0 time.Time
	// jitter adds the number's last three digits as ms, so that events
	// made at one offset still differ in time.
	jitter bool
	evs    []sent
}

func (s *sender) ev(node int, name, did string, at time.Duration, props ...store.Prop) {
	n := len(s.evs) + 1
	ms := s.t0.Add(at).UnixMilli()
	if s.jitter {
		ms += int64(n % 1000)
	}
	s.evs = append(s.evs, sent{node, &store.Event{Site: "s", Name: name, DistinctID: did, Time: ms,
		UUID: fmt.Sprintf("00000000-0000-7000-8000-%012d", n), Props: props}})
}

// sendOneByOne appends the events one at a time, in this order, to their
// nodes and to the reference, then waits until the nodes have shipped.
func (tn *twoNodes) sendOneByOne(t *testing.T, evs []sent) {
	t.Helper()
	for _, s := range evs {
		if _, err := tn.nodes[s.node].Append(ctx, []*store.Event{clone(s.ev)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tn.ref.Append(ctx, []*store.Event{clone(s.ev)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range tn.nodes {
		flush(t, nd)
	}
}

// saveEverywhere saves a definition (a cohort, an action) on both nodes
// and the reference, which must give it the same id, and returns it.
func (tn *twoNodes) saveEverywhere(t *testing.T, save func(store.Store) int64) int64 {
	t.Helper()
	var id int64
	for _, s := range []store.Store{tn.nodes[0], tn.nodes[1], tn.ref} {
		got := save(s)
		if id != 0 && got != id {
			t.Fatalf("definition ids differ: %d, %d", id, got)
		}
		id = got
	}
	return id
}

func strProp(k, v string) store.Prop { return store.Prop{Key: k, Val: store.StringValue(v)} }

func jsonProp(k, v string) store.Prop {
	return store.Prop{Key: k, Val: store.Value{Kind: store.KindJSON, S: v}}
}

// feed appends the events, in time order, each to its node (in batches,
// as captures come) and all of them to the reference in the order the
// nodes got them, then waits until both nodes shipped.
func (tn *twoNodes) feed(t *testing.T, evs []sent) {
	t.Helper()
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].ev.Time < evs[j].ev.Time })
	for start := 0; start < len(evs); start += 37 {
		part := evs[start:min(start+37, len(evs))]
		var per [2][]*store.Event
		for _, s := range part {
			per[s.node] = append(per[s.node], clone(s.ev))
		}
		// The reference gets them in the order they arrive at the nodes
		// (node 0's part of the batch, then node 1's): links apply in
		// arrival order (SPEC §4's rule; see persons.go's evKey).
		for i, n := range tn.nodes {
			if len(per[i]) > 0 {
				if _, err := n.Append(ctx, per[i]); err != nil {
					t.Fatal(err)
				}
				if _, err := tn.ref.Append(ctx, cloneAll(per[i])); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, n := range tn.nodes {
		if err := n.Flush(fctx); err != nil {
			t.Fatal(err)
		}
	}
}

// crossNodeEvents makes users whose anonymous ids live on both nodes and
// identify through either, events before and after, links the merge rule
// refuses (an alias onto another identified user; a second login with a
// device another user already logged in from), and anonymous visitors.
func crossNodeEvents(t0 time.Time, seed int64) []sent {
	r := rand.New(rand.NewSource(seed))
	snd := &sender{t0: t0, jitter: true}
	ev, str := snd.ev, strProp
	page := func(node int, did string, at time.Duration, sess string) {
		p := []string{"/", "/pricing", "/docs", "/signup"}[r.Intn(4)]
		ev(node, "$pageview", did, at, str("$session_id", sess), str("$pathname", p), str("$browser", []string{"Chrome", "Firefox"}[r.Intn(2)]))
	}
	minute := func(m int) time.Duration { return time.Duration(m) * time.Minute }
	for u := 0; u < 30; u++ {
		user := fmt.Sprint("user", u)
		base := r.Intn(3 * 24 * 60)
		for node := 0; node < 2; node++ {
			anon := fmt.Sprintf("anon%d-%d", u, node)
			at := base + node*r.Intn(600)
			sess := fmt.Sprintf("s%d-%d", u, node)
			for k := 0; k < 1+r.Intn(3); k++ {
				page(node, anon, minute(at+k), sess)
			}
			// Own properties before the login, which the merge joins
			// (the identified side's win).
			js := func(v string) store.Value { return store.Value{Kind: store.KindJSON, S: v} }
			ev(node, "$set", anon, minute(at+3), store.Prop{Key: "$set_once", Val: js(fmt.Sprintf(`{"first_node":%d,"plan":"anon"}`, node))},
				store.Prop{Key: "$set", Val: js(fmt.Sprintf(`{"color":"c%d","tmp":1}`, r.Intn(3)))})
			if r.Intn(2) == 0 {
				ev(node, "$set", anon, minute(at+4), store.Prop{Key: "$unset", Val: js(`["tmp"]`)})
			}
			idNode := node
			if r.Intn(3) == 0 {
				idNode = 1 - node // the login reaches the other node
			}
			ev(idNode, "$identify", user, minute(at+5), str("$anon_distinct_id", anon), str("$session_id", sess),
				store.Prop{Key: "$set", Val: store.Value{Kind: store.KindJSON, S: fmt.Sprintf(`{"email":"%s@x.test","plan":"p%d"}`, user, node)}})
			ev(idNode, "signup", user, minute(at+6), str("$session_id", sess))
			for k := 0; k < r.Intn(3); k++ {
				page(r.Intn(2), user, minute(at+60*24*(1+k)), fmt.Sprintf("s%d-%d-%d", u, node, k))
			}
		}
		if u%7 == 3 { // refused: an alias onto another identified user, from the other node
			ev(r.Intn(2), "$create_alias", user, minute(base+5000), str("alias", fmt.Sprint("user", u-1)))
		}
		if u%5 == 2 { // refused: a second user logs in from this user's first device
			ev(1, "$identify", "other"+user, minute(base+4000), str("$anon_distinct_id", fmt.Sprintf("anon%d-0", u)))
			page(1, "other"+user, minute(base+4001), "so"+user)
		}
	}
	for v := 0; v < 40; v++ { // anonymous visitors
		node := r.Intn(2)
		at := r.Intn(4 * 24 * 60)
		for k := 0; k < 1+r.Intn(3); k++ {
			page(node, fmt.Sprint("visitor", v), minute(at+k), fmt.Sprint("sv", v))
		}
	}
	return snd.evs
}

// sameAnswers checks that every node's reports equal the reference's.
func (tn *twoNodes) sameAnswers(t *testing.T, round string) {
	t.Helper()
	t0 := tn.t0
	for i, n := range tn.nodes {
		if n == nil {
			continue // a test of one node
		}
		for _, q := range []store.Query{
			{Site: "s", From: t0, To: t0.AddDate(0, 0, 8)},
			{Site: "s", From: t0.Add(24 * time.Hour), To: t0.AddDate(0, 0, 3), Filters: []store.Filter{{Prop: "$browser", Op: store.OpEq, Value: "Chrome"}}},
		} {
			name := fmt.Sprintf("%s node %d %v..%v %v", round, i, q.From, q.To, q.Filters)
			sameJSON(t, name+" stats", must(n.Stats(ctx, q)), must(tn.ref.Stats(ctx, q)))
			bq := store.BreakdownQuery{Property: "$pathname"}
			sameJSON(t, name+" breakdown", must(n.Breakdown(ctx, q, bq)), must(tn.ref.Breakdown(ctx, q, bq)))
			tq := store.TrendsQuery{Events: []string{"$pageview", "signup"}, Interval: store.IntervalDay, Math: store.MathUnique}
			sameJSON(t, name+" trends", must(n.Trends(ctx, q, tq)), must(tn.ref.Trends(ctx, q, tq)))
			fq := store.FunnelQuery{Steps: []string{"$pageview", "signup", "$pageview"}, Window: 14 * 24 * time.Hour}
			sameJSON(t, name+" funnel", must(n.Funnel(ctx, q, fq)), must(tn.ref.Funnel(ctx, q, fq)))
			rq := store.RetentionQuery{StartEvent: "signup", ReturnEvent: "$pageview", Period: store.PeriodDay, Periods: 4}
			sameJSON(t, name+" retention", must(n.Retention(ctx, q, rq)), must(tn.ref.Retention(ctx, q, rq)))
		}
		// Persons, page by page, with and without a search.
		for _, pq := range []store.PersonQuery{{Site: "s", Limit: 40}, {Site: "s", Search: "X.TEST", Limit: 12}, {Site: "s", Search: "anon1", Limit: 3}, {Site: "s", Search: "/PRICING", Limit: 25}} {
			var got, want []any
			for _, list := range []struct {
				out *[]any
				fn  func(store.PersonQuery) (store.PersonPage, error)
			}{{&got, func(q store.PersonQuery) (store.PersonPage, error) { return n.Persons(ctx, q) }}, {&want, func(q store.PersonQuery) (store.PersonPage, error) { return tn.ref.Persons(ctx, q) }}} {
				q := pq
				for {
					p := must(list.fn(q))
					*list.out = append(*list.out, p.Results, p.Total)
					if p.Next == "" {
						break
					}
					q.Cursor = p.Next
				}
			}
			if len(want) < 4 {
				t.Fatalf("%+v: only %d pages", pq, len(want)/2)
			}
			sameJSON(t, fmt.Sprintf("%s node %d persons %+v", round, i, pq), got, want)
		}
		for _, id := range []string{"user3", "anon7-1", store.PersonID("s", "anon9-0"), store.PersonID("s", "user9"), "visitor5"} {
			want, err := tn.ref.Person(ctx, "s", id)
			if err != nil {
				continue // deleted
			}
			sameJSON(t, fmt.Sprintf("%s node %d person %s", round, i, id), must(n.Person(ctx, "s", id)), want)
			var gw, ww strings.Builder
			if err := n.ExportPerson(ctx, "s", id, &gw); err != nil {
				t.Fatal(err)
			}
			if err := tn.ref.ExportPerson(ctx, "s", id, &ww); err != nil {
				t.Fatal(err)
			}
			if gw.String() != ww.String() {
				t.Errorf("%s node %d export of %s:\n got %s\nwant %s", round, i, id, gw.String(), ww.String())
			}
		}
		exp := func(export func(context.Context, store.Query, func(*store.Event, string) error) error, q store.Query) (out []string) {
			if err := export(ctx, q, func(ev *store.Event, pid string) error {
				out = append(out, string(ev.AppendJSON(nil, pid)))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return out
		}
		for _, q := range []store.Query{{Site: "s", From: t0, To: t0.AddDate(0, 0, 8)}, {Site: "s", From: t0, To: t0.AddDate(0, 0, 2), Filters: []store.Filter{{Prop: "$pathname", Op: store.OpEq, Value: "/docs"}}}} {
			sameJSON(t, fmt.Sprintf("%s node %d export %v", round, i, q.Filters), exp(n.Export, q), exp(tn.ref.Export, q))
		}
		// Every event with its person, and one person's events by an id.
		for _, eq := range []store.EventQuery{
			{Site: "s", From: t0.UnixMilli(), To: t0.AddDate(0, 0, 8).UnixMilli(), Limit: 1000},
			{Site: "s", From: t0.UnixMilli(), To: t0.AddDate(0, 0, 8).UnixMilli(), DistinctID: "anon4-1", Limit: 1000},
		} {
			got, want := must(n.Events(ctx, eq)), must(tn.ref.Events(ctx, eq))
			sameJSON(t, fmt.Sprintf("%s node %d events %q", round, i, eq.DistinctID), [2]any{got.Results, got.PersonIDs}, [2]any{want.Results, want.PersonIDs})
		}
	}
}

// TestCrossNodeMerges: anonymous ids on two nodes identify as the same
// users, through either node, with events on both nodes before and after;
// some links are ones the merge rule refuses only when both nodes' events
// are counted. Every node's answers equal one embedded store fed every
// event; then a person whose events came through both nodes is deleted
// through one, and is gone from ClickHouse and from both local logs.
func TestCrossNodeMerges(t *testing.T) {
	tn := startTwoNodes(t, "cross")
	evs := crossNodeEvents(tn.t0, 1)
	tn.feed(t, evs)
	if p := must(tn.ref.Person(ctx, "s", "anon4-1")); len(p.DistinctIDs) < 3 {
		t.Fatalf("the reference merged %v: the data must merge across nodes", p.DistinctIDs)
	}
	tn.sameAnswers(t, "after shipping")

	// Delete through node 0 a person with events on both nodes.
	// Delete through node 0 a person with events on both nodes, and one
	// whose events all came through node 1.
	only1 := ""
	for _, s := range evs {
		if strings.HasPrefix(s.ev.DistinctID, "visitor") && s.node == 1 {
			only1 = s.ev.DistinctID
		}
	}
	for _, id := range []string{"user4", only1} {
		victim := must(tn.ref.Person(ctx, "s", id))
		if err := tn.nodes[0].DeletePerson(ctx, "s", victim.ID); err != nil {
			t.Fatalf("deleting %s through node 0: %v", id, err)
		}
		if err := tn.ref.DeletePerson(ctx, "s", victim.ID); err != nil {
			t.Fatal(err)
		}
		// Node 1 deletes it from its own log once it sees the tombstones,
		// and the mutation removes its rows from ClickHouse.
		deadline := time.Now().Add(20 * time.Second)
		for {
			left := 0
			for _, d := range victim.DistinctIDs {
				for _, n := range tn.nodes {
					if _, err := n.DB.Person(ctx, "s", d); err == nil {
						left++
					}
				}
			}
			rows := count(t, tn.nodes[0].client(), Build("SELECT count() FROM events WHERE site = 's' AND has(?, distinct_id)", victim.DistinctIDs))
			if left == 0 && rows == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of the deleted person's ids still in the local logs, %d rows in ClickHouse", id, left, rows)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := tn.nodes[0].Person(ctx, "s", id); err != store.ErrNotFound {
			t.Fatalf("person of %s after deletion: %v", id, err)
		}
	}
	tn.sameAnswers(t, "after the deletions")
}

func cloneAll(evs []*store.Event) []*store.Event {
	out := make([]*store.Event, len(evs))
	for i, ev := range evs {
		out[i] = clone(ev)
	}
	return out
}

func clone(ev *store.Event) *store.Event {
	c := *ev
	c.Props = append(store.Props(nil), ev.Props...)
	return &c
}

// TestKeepDropsShipped: with keep, shipped events older than keep leave
// the local log, events still waiting to ship stay whatever their age,
// and recent ones stay; the log reopened holds exactly those, while
// ClickHouse holds every event.
func TestKeepDropsShipped(t *testing.T) {
	c := chtest.Start(t)
	path := filepath.Join(t.TempDir(), "k.db")
	openWith := func(urls []string) *Backend {
		local, err := store.Open(path, store.Options{CompactEvery: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(local, Options{URLs: urls, Database: "keep", Cluster: chtest.ClusterName, Flush: 20 * time.Millisecond, Batch: 500, Keep: 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// ClickHouse unreachable: nothing ships, so nothing may go.
	b := openWith([]string{"http://127.0.0.1:1"})
	old := mkEvents(100, 0, func(i int) string { return fmt.Sprint("u", i%7) })
	recent := mkEvents(20, 100, func(i int) string { return fmt.Sprint("u", i%7) })
	now := time.Now().Add(-time.Hour).UnixMilli()
	for i, ev := range recent {
		ev.Time = now + int64(i)
	}
	if _, err := b.Append(ctx, append(old, recent...)); err != nil {
		t.Fatal(err)
	}
	if n, err := b.DropShipped(ctx); err != nil || n != 0 {
		t.Fatalf("dropped %d (%v) with nothing shipped", n, err)
	}
	b.Close()

	b = openWith([]string{c.Shards[0].URL(), c.Shards[1].URL()})
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := b.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DropShipped(ctx); err != nil {
		t.Fatal(err)
	}
	if n := b.DB.Count("s"); n != 20 {
		t.Fatalf("%d events left in the local log, want the 20 recent ones", n)
	}
	if n := count(t, b.client(), "SELECT count() FROM events FINAL"); n != 120 {
		t.Fatalf("ClickHouse holds %d events, want 120", n)
	}
	q := store.Query{Site: "s", From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Now().Add(time.Hour)}
	if st := must(b.Stats(ctx, q)); st.Pageviews != 120 {
		t.Fatalf("stats from ClickHouse count %d pageviews, want 120", st.Pageviews)
	}
	b.Close()

	local, err := store.Open(path, store.Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if n := local.Count("s"); n != 20 {
		t.Fatalf("reopened log holds %d events, want 20", n)
	}
	page := must(local.Events(ctx, store.EventQuery{Site: "s", From: 0, To: time.Now().Add(time.Hour).UnixMilli(), Limit: 1000}))
	for _, ev := range page.Results {
		if ev.Time < now {
			t.Fatalf("old event %s stayed", ev.UUID)
		}
	}
}
