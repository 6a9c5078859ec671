package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/buntdb"
)

var ctx = context.Background()

func openTest(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(path, Options{CompactEvery: time.Hour, OnError: func(err error) { t.Error(err) }})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func ev(site, name, did string, ms int64, props ...string) *Event {
	e := &Event{Site: site, Name: name, DistinctID: did, Time: ms}
	for i := 0; i+1 < len(props); i += 2 {
		v := StringValue(props[i+1])
		if strings.HasPrefix(props[i+1], "{") {
			v = Value{Kind: KindJSON, S: props[i+1]}
		}
		e.Props = append(e.Props, Prop{Key: props[i], Val: v})
	}
	return e
}

func mustAppend(t *testing.T, db *DB, evs ...*Event) []Outcome {
	t.Helper()
	out, err := db.Append(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const day = int64(24 * time.Hour / time.Millisecond)

func listAll(t *testing.T, db *DB, q EventQuery) []*Event {
	t.Helper()
	if q.To == 0 {
		q.To = 1 << 62
	}
	var all []*Event
	for {
		page, err := db.Events(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Results...)
		if page.Next == "" {
			return all
		}
		q.Cursor = page.Next
	}
}

func TestBlockRoundTrip(t *testing.T) {
	evs := []*Event{
		{UUID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Site: "s", Name: "$pageview", DistinctID: "d1", Time: 1700000000123,
			Props: Props{{"$pathname", StringValue("/a")}, {"n", Value{Kind: KindNumber, S: "1.50"}}, {"t", Value{Kind: KindTrue}}, {"f", Value{Kind: KindFalse}}, {"z", Value{Kind: KindNull}}, {"o", Value{Kind: KindJSON, S: `{"a":[1,2]}`}}}},
		{UUID: "not-a-uuid", Site: "s", Name: "custom", DistinctID: "d2", Time: -5, Props: nil},
		{UUID: "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5C", Site: "s", Name: "custom", DistinctID: "", Time: 0, Props: Props{{"$pathname", StringValue("/a")}}},
	}
	for _, compress := range []compression{compressFast, compressBest} {
		v := encodeBlock("s", evs, compress)
		d, err := decodeBlock(v)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.events) != len(evs) || d.site != "s" {
			t.Fatalf("got %d events site %q", len(d.events), d.site)
		}
		for i, want := range evs {
			got := d.event(i)
			gb, wb := got.AppendJSON(nil, ""), want.AppendJSON(nil, "")
			if !bytes.Equal(gb, wb) {
				t.Errorf("compress=%v event %d:\n got %s\nwant %s", compress, i, gb, wb)
			}
		}
		// Every truncation is an error, never a panic.
		for n := 0; n < len(v); n++ {
			if _, err := decodeBlock(v[:n]); err == nil {
				t.Fatalf("truncated block of %d/%d bytes decoded", n, len(v))
			}
		}
	}
}

func TestAppendDedupeAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	db := openTest(t, path)
	base := int64(1700000000000)
	out := mustAppend(t, db,
		&Event{UUID: "u1", Site: "a", Name: "$pageview", DistinctID: "x", Time: base, Props: Props{{"$pathname", StringValue("/")}}},
		&Event{UUID: "u1", Site: "a", Name: "$pageview", DistinctID: "x", Time: base + 1},
		&Event{UUID: "u1", Site: "b", Name: "$pageview", DistinctID: "x", Time: base + 2},
	)
	if out[0] != Stored || out[1] != Duplicate || out[2] != Stored {
		t.Fatalf("outcomes %v", out)
	}
	out = mustAppend(t, db, &Event{UUID: "u1", Site: "a", Name: "other", DistinctID: "y", Time: base + 3}, &Event{Site: "a", Name: "gen", DistinctID: "y", Time: base + 4})
	if out[0] != Duplicate || out[1] != Stored {
		t.Fatalf("outcomes %v", out)
	}
	if db.Count("a") != 2 || db.Count("b") != 1 {
		t.Fatalf("counts a=%d b=%d", db.Count("a"), db.Count("b"))
	}
	before := listAll(t, db, EventQuery{Site: "a"})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openTest(t, path)
	defer db.Close()
	after := listAll(t, db, EventQuery{Site: "a"})
	if len(after) != 2 || fmt.Sprint(jsonAll(before)) != fmt.Sprint(jsonAll(after)) {
		t.Fatalf("after reload:\n%s\nbefore:\n%s", jsonAll(after), jsonAll(before))
	}
	if after[0].Name != "gen" || after[1].Props.Str("$pathname") != "/" {
		t.Fatalf("unexpected events %s", jsonAll(after))
	}
	if got := db.Sites(); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("sites %v", got)
	}
	// A uuid stored before the restart is still a duplicate.
	out = mustAppend(t, db, &Event{UUID: "u1", Site: "a", Name: "again", DistinctID: "x", Time: base})
	if out[0] != Duplicate {
		t.Fatal("uuid stored before restart accepted again")
	}
}

func jsonAll(evs []*Event) string {
	var b []byte
	for _, e := range evs {
		b = e.AppendJSON(b, "")
		b = append(b, '\n')
	}
	return string(b)
}

func TestConcurrentAppendsGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db := openTest(t, path)
	var wg sync.WaitGroup
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := db.Append(ctx, []*Event{ev("s", "e", fmt.Sprint("p", g), int64(g*1000+i))}); err != nil {
					t.Error(err)
				}
			}
		}(g)
	}
	wg.Wait()
	countSurvivesReopen(t, db, path, 1000)
}

func TestCompactionKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	db, err := Open(path, Options{BlockEvents: 64, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < 300; i++ {
		e := ev("s", "e", fmt.Sprint("d", i%7), int64(i), "$pathname", fmt.Sprint("/p", i%5), "i", fmt.Sprint(i))
		mustAppend(t, db, e)
		want = append(want, e.UUID)
	}
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	tb := db.table("s")
	if len(tb.blocks) > 6 {
		t.Fatalf("%d blocks after compaction", len(tb.blocks))
	}
	for _, b := range tb.blocks {
		if !b.compressed {
			t.Fatalf("uncompressed block %s left", b.key)
		}
	}
	check := func(db *DB) {
		got := listAll(t, db, EventQuery{Site: "s", Limit: 37})
		if len(got) != 300 {
			t.Fatalf("%d events", len(got))
		}
		for i, e := range got { // newest first
			if e.UUID != want[299-i] || e.Props.Str("i") != fmt.Sprint(299-i) {
				t.Fatalf("event %d is %s %s", i, e.UUID, e.Props.Str("i"))
			}
		}
	}
	check(db)
	db.Close()
	db = openTest(t, path)
	defer db.Close()
	check(db)
}

// A compaction cut short after writing the merged block but before deleting
// the merged-away blocks leaves duplicates in the log; replay drops them.
func TestReplayDropsDuplicateBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	db := openTest(t, path)
	mustAppend(t, db, ev("s", "a", "x", 1))
	mustAppend(t, db, ev("s", "b", "x", 2))
	tb := db.table("s")
	k1, k2 := tb.blocks[0].key, tb.blocks[1].key
	// Write the merged block under k1 by hand, leaving k2 in place.
	evs, err := db.eventsAt(tb, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.db.Update(func(tx *bunTx) error {
		_, _, err := tx.Set(k1, encodeBlock("s", evs, compressBest), nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openTest(t, path)
	if got := listAll(t, db, EventQuery{Site: "s"}); len(got) != 2 || got[0].Name != "b" {
		t.Fatalf("after replay: %s", jsonAll(got))
	}
	var has bool
	db.db.View(func(tx *bunTx) error {
		_, err := tx.Get(k2)
		has = err == nil
		return nil
	})
	if has {
		t.Fatal("duplicate block not removed")
	}
	db.Close()
	db = openTest(t, path)
	defer db.Close()
	if got := db.Count("s"); got != 2 {
		t.Fatalf("count %d", got)
	}
}

func TestPersonsMergeAndStableIDs(t *testing.T) {
	db := openTest(t, ":memory:")
	defer db.Close()
	mustAppend(t, db,
		ev("s", "$pageview", "anon1", 10),
		ev("s", "$pageview", "user@x", 20, "$set", `{"plan":"free","name":"A"}`),
		ev("s", "$pageview", "anon2", 5),
	)
	anonID := PersonID("s", "anon1")
	p, err := db.Person(ctx, "s", anonID)
	if err != nil || p.ID != anonID {
		t.Fatalf("person %v %v", p, err)
	}
	// identify links anon1 to user@x; user@x's properties win on merge.
	mustAppend(t, db, ev("s", "$identify", "user@x", 30, "$anon_distinct_id", "anon1", "$set", `{"email":"u@x"}`, "$set_once", `{"plan":"paid","first":"yes"}`))
	// alias links anon2 in as well.
	mustAppend(t, db, ev("s", "$create_alias", "user@x", 40, "alias", "anon2"))
	for _, id := range []string{anonID, PersonID("s", "user@x"), PersonID("s", "anon2"), "anon2", "user@x"} {
		p, err := db.Person(ctx, "s", id)
		if err != nil {
			t.Fatalf("look up %s: %v", id, err)
		}
		if p.ID != anonID {
			t.Fatalf("look up %s gave person %s, want %s", id, p.ID, anonID)
		}
		if fmt.Sprint(p.DistinctIDs) != "[anon1 user@x anon2]" {
			t.Fatalf("distinct ids %v", p.DistinctIDs)
		}
		if string(p.Properties.AppendJSON(nil)) != `{"plan":"free","name":"A","email":"u@x","first":"yes"}` {
			t.Fatalf("props %s", p.Properties.AppendJSON(nil))
		}
		if p.CreatedAt != 5 {
			t.Fatalf("created %d", p.CreatedAt)
		}
	}
	// The person's events include all ids.
	if got := listAll(t, db, EventQuery{Site: "s", DistinctID: "anon2"}); len(got) != 5 {
		t.Fatalf("person events: %d", len(got))
	}
	ps, err := db.Persons(ctx, PersonQuery{Site: "s"})
	if err != nil || len(ps.Results) != 1 || ps.Total != 1 {
		t.Fatalf("persons %v %v", ps, err)
	}
	ps, _ = db.Persons(ctx, PersonQuery{Site: "s", Search: "U@X"})
	if len(ps.Results) != 1 {
		t.Fatalf("search found %d", len(ps.Results))
	}
	ps, _ = db.Persons(ctx, PersonQuery{Site: "s", Search: "nobody"})
	if len(ps.Results) != 0 || ps.Total != 0 {
		t.Fatalf("search found %d", len(ps.Results))
	}
}

func TestDeletePersonLeavesNoTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "del.db")
	db := openTest(t, path)
	secret := "secret-distinct-id-7f3a"
	mustAppend(t, db,
		ev("s", "$pageview", "keep", 1, "$pathname", "/keep"),
		ev("s", "$pageview", secret, 2, "$pathname", "/secret-path-1"),
		ev("s", "$identify", "secret-user-mail", 3, "$anon_distinct_id", secret, "$set", `{"email":"secret@mail"}`),
	)
	mustAppend(t, db, ev("s", "$pageview", "keep", 4, "$pathname", "/keep2"))
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, ev("s", "late", secret, 5, "$pathname", "/secret-path-2"), ev("s", "late", "keep", 6))
	rec := func(session, did, text string) Snapshot {
		return Snapshot{SessionID: session, WindowID: "w", DistinctID: did, Data: []byte(`[{"type":3,"timestamp":5,"data":{"text":"` + text + `"}}]`)}
	}
	if err := db.AppendSnapshots(ctx, "s", []Snapshot{rec("secret-session", secret, "secret-typed"), rec("keep-session", "keep", "kept-text")}); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	if err := db.ExportPerson(ctx, "s", secret, &buf); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(buf.String(), "\n"); lines != 4 || !strings.Contains(buf.String(), "secret@mail") {
		t.Fatalf("export:\n%s", buf.String())
	}

	if err := db.DeletePerson(ctx, "s", PersonID("s", secret)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Person(ctx, "s", secret); err != ErrNotFound {
		t.Fatalf("person still there: %v", err)
	}
	check := func(db *DB) {
		got := listAll(t, db, EventQuery{Site: "s"})
		if len(got) != 3 {
			t.Fatalf("%d events left: %s", len(got), jsonAll(got))
		}
		for _, e := range got {
			if e.DistinctID != "keep" {
				t.Fatalf("left: %s", jsonAll(got))
			}
		}
		if db.Count("s") != 3 {
			t.Fatalf("count %d", db.Count("s"))
		}
	}
	check(db)
	// New events keep working, including for the same ids.
	mustAppend(t, db, ev("s", "$pageview", "keep", 7))
	if recs := db.Recordings(ctx, "s", 0, 1<<62); len(recs) != 1 || recs[0].SessionID != "keep-session" {
		t.Fatalf("recordings %+v", recs)
	}
	db.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Every key and value of the file, decompressed and decoded.
	all := dumpStore(t, path)
	if bytes.Contains(raw, []byte("secret")) || strings.Contains(all, "secret") {
		t.Fatalf("the store still holds something of the deleted person:\n%s", all)
	}
	if !strings.Contains(all, "/keep2") || !strings.Contains(all, "kept-text") {
		t.Fatalf("the others' data went missing:\n%s", all)
	}
	db = openTest(t, path)
	defer db.Close()
	if got := len(listAll(t, db, EventQuery{Site: "s"})); got != 4 {
		t.Fatalf("after reload %d", got)
	}
}

func TestEventsFiltersAndPaging(t *testing.T) {
	db := openTest(t, ":memory:")
	defer db.Close()
	for i := 0; i < 50; i++ {
		mustAppend(t, db, ev("s", []string{"a", "b"}[i%2], "d", int64(1000+i/3), "$pathname", fmt.Sprint("/p", i%3), "plan", []string{"free", "pro", ""}[i%3]))
	}
	cases := []struct {
		q    EventQuery
		want int
	}{
		{EventQuery{Site: "s"}, 50},
		{EventQuery{Site: "s", Event: "a"}, 25},
		{EventQuery{Site: "s", Event: "nope"}, 0},
		{EventQuery{Site: "s", From: 1005, To: 1010}, 15},
		{EventQuery{Site: "s", Filters: []Filter{{"$pathname", OpEq, "/p1"}}}, 17},
		{EventQuery{Site: "s", Filters: []Filter{{"$pathname", OpNe, "/p1"}}}, 33},
		{EventQuery{Site: "s", Filters: []Filter{{"plan", OpContains, "r"}}}, 34},
		{EventQuery{Site: "s", Filters: []Filter{{"plan", OpContains, "R"}}}, 34}, // ignoring case, as PostHog
		{EventQuery{Site: "s", Filters: []Filter{{"plan", OpNotContains, "FR"}}}, 33},
		{EventQuery{Site: "s", Filters: []Filter{{"plan", OpNotContains, "fr"}}}, 33},
		{EventQuery{Site: "s", Filters: []Filter{{"plan", OpEq, ""}}}, 16},
		{EventQuery{Site: "s", Filters: []Filter{{"plan", OpNe, ""}}}, 34},
		{EventQuery{Site: "s", Filters: []Filter{{"plan", OpEq, "pro"}, {"event", OpEq, "b"}}}, 9},
	}
	for _, c := range cases {
		for _, limit := range []int{1, 7, 100} {
			q := c.q
			q.Limit = limit
			got := listAll(t, db, q)
			if len(got) != c.want {
				t.Errorf("%+v: %d events, want %d", c.q, len(got), c.want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Time > got[i-1].Time {
					t.Fatalf("not newest first")
				}
			}
		}
	}
}

func TestParseFilter(t *testing.T) {
	for in, want := range map[string]Filter{
		"$pathname==/a":    {"$pathname", OpEq, "/a"},
		"a!=b==c":          {"a", OpNe, "b==c"},
		"$current_url~x~y": {"$current_url", OpContains, "x~y"},
		"p!~":              {"p", OpNotContains, ""},
	} {
		got, err := ParseFilter(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "novalue", "==x"} {
		if _, err := ParseFilter(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

type bunTx = buntdb.Tx

// TestResentCopiesAcrossGroups sends every uuid from three goroutines at
// once, so that copies land in the same group, in consecutive groups (one
// being written while the next is prepared) and after: each uuid is stored
// once, reported Stored exactly once, and the count survives a reopen.
func TestResentCopiesAcrossGroups(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	db := openTest(t, path)
	const uuids, senders = 3000, 3
	var stored [uuids]atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < uuids; i += 10 {
				var batch []*Event
				for j := i; j < i+10; j++ {
					e := ev("s", "e", fmt.Sprint("p", j%7), int64(1000+j))
					e.UUID = fmt.Sprintf("01900000-0000-7000-8000-%012d", j)
					batch = append(batch, e)
				}
				out, err := db.Append(ctx, batch)
				if err != nil {
					t.Error(err)
					return
				}
				for k, o := range out {
					if o == Stored {
						stored[i+k].Add(1)
					}
				}
			}
		}(g)
	}
	wg.Wait()
	for i := range stored {
		if n := stored[i].Load(); n != 1 {
			t.Fatalf("uuid %d reported stored %d times", i, n)
		}
	}
	countSurvivesReopen(t, db, path, uuids)
}

// countSurvivesReopen checks that site "s" of db holds want events, closes
// db, and checks again in the file reopened.
func countSurvivesReopen(t *testing.T, db *DB, path string, want int) {
	t.Helper()
	if got := db.Count("s"); got != want {
		t.Fatalf("count %d, want %d", got, want)
	}
	db.Close()
	db = openTest(t, path)
	defer db.Close()
	if got := db.Count("s"); got != want {
		t.Fatalf("count after reopen %d, want %d", got, want)
	}
}
