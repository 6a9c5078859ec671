package store

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// refusalCounter counts OnMergeRefused calls by site.
type refusalCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *refusalCounter) inc(site string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[site]++
}

func (c *refusalCounter) get(site string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[site]
}

func openCounting(t *testing.T, path string, c *refusalCounter) *DB {
	t.Helper()
	db, err := Open(path, Options{CompactEvery: time.Hour, OnError: func(err error) { t.Error(err) }, OnMergeRefused: c.inc})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// personIDs returns the sorted distinct ids of the person of did.
func personIDs(t *testing.T, db *DB, did string) string {
	t.Helper()
	p, err := db.Person(ctx, "s", did)
	if err != nil {
		t.Fatalf("person of %s: %v", did, err)
	}
	ids := slices.Clone(p.DistinctIDs)
	slices.Sort(ids)
	return strings.Join(ids, " ")
}

func eventDIDs(t *testing.T, db *DB, did string) string {
	t.Helper()
	var out []string
	for _, e := range listAll(t, db, EventQuery{Site: "s", DistinctID: did}) {
		out = append(out, e.Name+":"+e.DistinctID)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// TestMergeRule checks SPEC §4's rule case by case: a link never joins two
// identified persons, the refusal is counted once, live, and a replay of
// the log gives the same persons without counting again.
func TestMergeRule(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rule.db")
	var c refusalCounter
	db := openCounting(t, path, &c)
	steps := []struct {
		ev      *Event
		refused bool
	}{
		// user-42 logs in on a device: a1 merges (a1 was anonymous).
		{ev("s", "$pageview", "a1", 1, "$pathname", "/"), false},
		{ev("s", "$identify", "user-42", 2, "$anon_distinct_id", "a1", "$set", `{"email":"v@x"}`), false},
		{ev("s", "purchase", "user-42", 3, "amount", "9"), false},
		// ... and on a second device later: a2 merges too.
		{ev("s", "$pageview", "a2", 4), false},
		{ev("s", "$identify", "user-42", 5, "$anon_distinct_id", "a2"), false},
		// A server aliases a fresh CRM id: merges.
		{ev("s", "$create_alias", "user-42", 6, "alias", "crm-42"), false},
		// The attacker aliases user-42 from a fresh id: refused (the alias
		// identifies attacker-1, user-42 was identified).
		{ev("s", "$pageview", "attacker-1", 7), false},
		{ev("s", "$create_alias", "attacker-1", 8, "alias", "user-42"), true},
		// ... or one of user-42's anonymous ids: refused, the person is.
		{ev("s", "$create_alias", "attacker-1", 9, "alias", "a1"), true},
		// $identify of an already identified id as the anonymous one.
		{ev("s", "$identify", "attacker-2", 10, "$anon_distinct_id", "user-42"), true},
		// Chains: attacker-1 was identified by its own alias, so another
		// attacker cannot pull attacker-1 (or through it user-42) in either.
		{ev("s", "$create_alias", "attacker-3", 11, "alias", "attacker-1"), true},
		// The attacker may still alias its own anonymous ids.
		{ev("s", "$pageview", "attacker-anon", 12), false},
		{ev("s", "$create_alias", "attacker-1", 13, "alias", "attacker-anon"), false},
		// Aliasing from the victim's side onto the attacker: refused too.
		{ev("s", "$create_alias", "user-42", 14, "alias", "attacker-1"), true},
		// A link within one person is no refusal.
		{ev("s", "$identify", "user-42", 15, "$anon_distinct_id", "a1"), false},
	}
	want := 0
	for i, st := range steps {
		mustAppend(t, db, st.ev)
		if st.refused {
			want++
		}
		if got := c.get("s"); got != want {
			t.Fatalf("step %d (%s %s): %d refusals counted, want %d", i, st.ev.Name, st.ev.DistinctID, got, want)
		}
	}
	check := func(db *DB) {
		t.Helper()
		for did, ids := range map[string]string{
			"user-42":    "a1 a2 crm-42 user-42",
			"attacker-1": "attacker-1 attacker-anon",
			"attacker-2": "attacker-2",
			"attacker-3": "attacker-3",
		} {
			if got := personIDs(t, db, did); got != ids {
				t.Errorf("person of %s: %q, want %q", did, got, ids)
			}
		}
		// The attacker's id lists the attacker's events only.
		if got := eventDIDs(t, db, "attacker-1"); strings.Contains(got, "user-42") || strings.Contains(got, "a1") {
			t.Errorf("attacker's events: %s", got)
		}
		if got := eventDIDs(t, db, "crm-42"); !strings.Contains(got, "purchase:user-42") || strings.Contains(got, "attacker") {
			t.Errorf("victim's events: %s", got)
		}
		p, err := db.Person(ctx, "s", "user-42")
		if err != nil || p.ID != PersonID("s", "a1") || p.Properties.Str("email") != "v@x" {
			t.Errorf("victim %+v %v", p, err)
		}
	}
	check(db)
	db.Close()
	db = openCounting(t, path, &c)
	defer db.Close()
	check(db)
	if got := c.get("s"); got != want {
		t.Errorf("replay counted refusals again: %d, want %d", got, want)
	}
}

// TestDeletePersonStripsRefusedLinksNamingIt: a refused alias naming the
// victim carries the victim's id. Deleting the victim strips that id from
// it (the event stays, as the attacker's): the id is gone from the file,
// and a replay, where the victim no longer exists and the alias would
// merge, cannot hand the victim's id to the attacker when the victim
// returns. Deleting an attacker who had taken a user's anonymous id keeps
// the user's refused login event, its properties included.
func TestDeletePersonStripsRefusedLinksNamingIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "del.db")
	var c refusalCounter
	db := openCounting(t, path, &c)
	mustAppend(t, db,
		ev("s", "$identify", "user-42", 1, "$anon_distinct_id", "a1"),
		ev("s", "$pageview", "attacker-1", 2),
	)
	mustAppend(t, db, ev("s", "$create_alias", "attacker-1", 3, "alias", "user-42"))
	mustAppend(t, db, ev("s", "$pageview", "attacker-1", 4))
	// attacker-9 takes the anonymous id a7 first; its user's login, which
	// names a7, is then refused.
	mustAppend(t, db,
		ev("s", "$pageview", "a7", 5),
		ev("s", "$create_alias", "attacker-9", 6, "alias", "a7"),
		ev("s", "$identify", "user-7", 7, "$anon_distinct_id", "a7", "$set", `{"email":"seven@x"}`),
		ev("s", "$identify", "attacker-9", 8, "$anon_distinct_id", "user-42"),
	)
	if c.get("s") != 3 {
		t.Fatalf("refusals %d", c.get("s"))
	}
	// Deleting an attacker leaves the victims whole.
	if err := db.DeletePerson(ctx, "s", "attacker-9"); err != nil {
		t.Fatal(err)
	}
	if got := personIDs(t, db, "user-42"); got != "a1 user-42" {
		t.Fatalf("victim after deleting an attacker: %q", got)
	}
	if got := eventDIDs(t, db, "user-42"); got != "$identify:user-42" {
		t.Fatalf("victim's events after deleting an attacker: %s", got)
	}
	// Deleting the victim strips its id from the refused alias.
	if err := db.DeletePerson(ctx, "s", "a1"); err != nil {
		t.Fatal(err)
	}
	check := func(db *DB) {
		t.Helper()
		if got := eventDIDs(t, db, "attacker-1"); got != "$create_alias:attacker-1 $pageview:attacker-1 $pageview:attacker-1" {
			t.Fatalf("attacker's events: %s", got)
		}
		for _, e := range listAll(t, db, EventQuery{Site: "s"}) {
			if e.Name == "$create_alias" && e.DistinctID == "attacker-1" && len(e.Props) != 0 {
				t.Fatalf("the refused alias still names someone: %s", jsonAll([]*Event{e}))
			}
		}
		if got := personIDs(t, db, "attacker-1"); got != "attacker-1" {
			t.Fatalf("attacker's person: %q", got)
		}
		p := must(db.Person(ctx, "s", "user-7"))
		if fmt.Sprint(p.DistinctIDs) != "[user-7]" || p.Properties.Str("email") != "seven@x" {
			t.Fatalf("user-7 after deleting the attacker who took a7: %+v", p)
		}
		if got := eventDIDs(t, db, "user-7"); got != "$identify:user-7" {
			t.Fatalf("user-7's events: %s", got)
		}
	}
	check(db)
	db.Close()
	if all := dumpStore(t, path); strings.Contains(all, "user-42") || strings.Contains(all, "a7") || !strings.Contains(all, "seven@x") {
		t.Fatalf("the file after the deletions:\n%s", all)
	}
	db = openCounting(t, path, &c)
	defer db.Close()
	check(db)
	// The victim comes back: a person of its own, not the attacker's.
	mustAppend(t, db, ev("s", "$pageview", "user-42", 9), ev("s", "$pageview", "a7", 10))
	if got := personIDs(t, db, "user-42"); got != "user-42" {
		t.Fatalf("returning victim's person: %q", got)
	}
	if got := personIDs(t, db, "a7"); got != "a7" {
		t.Fatalf("returning anonymous id's person: %q", got)
	}
}

// TestDeletePersonWhileCapturing parks a deletion of a 60,000-id person
// after it deleted the rows it found: captures (of others and of the
// person) complete while it is parked, i.e. it holds no lock they wait on,
// and the person's event that came in meanwhile is deleted by the next
// pass, so memory and the replayed log agree.
func TestDeletePersonWhileCapturing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chain.db")
	var c refusalCounter
	db := openCounting(t, path, &c)
	buildAliasChain(t, db, chainDepth)
	if got := len(must(db.Person(ctx, "s", "chain-user")).DistinctIDs); got != chainDepth+1 {
		t.Fatalf("chain person has %d ids", got)
	}
	parked, resume := make(chan int), make(chan struct{})
	testHookDeletePass = func(pass int) {
		parked <- pass
		<-resume
	}
	defer func() { testHookDeletePass = nil }()
	done := make(chan error, 1)
	go func() { done <- db.DeletePerson(ctx, "s", "a-0") }()
	wait := func(what string, ch <-chan error) {
		t.Helper()
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not complete", what)
		}
	}
	waitPass := func(want int) {
		t.Helper()
		select {
		case p := <-parked:
			if p != want {
				t.Fatalf("pass %d, want %d", p, want)
			}
		case err := <-done:
			t.Fatalf("deletion ended before pass %d: %v", want, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("no pass %d", want)
		}
	}
	waitPass(0)
	captured := make(chan error, 1)
	go func() {
		_, err := db.Append(ctx, []*Event{ev("s", "$pageview", "bystander", 3), ev("s", "$pageview", "a-17", 4, "$pathname", "/late")})
		captured <- err
	}()
	wait("capture during the deletion", captured)
	select {
	case err := <-done:
		t.Fatalf("deletion ended before it was resumed: %v", err)
	default:
	}
	resume <- struct{}{}
	waitPass(1) // the late event of a-17 needs a second pass
	resume <- struct{}{}
	wait("deletion", done)
	check := func(db *DB) {
		t.Helper()
		got := listAll(t, db, EventQuery{Site: "s"})
		if len(got) != 3 {
			t.Fatalf("%d events left, want the bystander's 3", len(got))
		}
		for _, e := range got {
			if e.DistinctID != "bystander" {
				t.Fatalf("left: %s", e.DistinctID)
			}
		}
		for _, id := range []string{"a-0", "a-17", "chain-user"} {
			if _, err := db.Person(ctx, "s", id); err != ErrNotFound {
				t.Fatalf("person of %s still there: %v", id, err)
			}
		}
	}
	check(db)
	db.Close()
	db = openCounting(t, path, &c)
	defer db.Close()
	check(db)
}

// TestPersonLookupsOnDeepChain: every id of the 60,000-deep chain resolves
// to the one person, named after the id seen first, before and after a
// restart.
func TestPersonLookupsOnDeepChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chain.db")
	var c refusalCounter
	db := openCounting(t, path, &c)
	buildAliasChain(t, db, 3000)
	check := func(db *DB) {
		t.Helper()
		want := PersonID("s", "a-0")
		for _, id := range []string{"chain-user", "a-2999", "a-1500", PersonID("s", "a-77")} {
			p, err := db.Person(ctx, "s", id)
			if err != nil || p.ID != want || len(p.DistinctIDs) != 3001 || p.DistinctIDs[0] != "a-0" || p.DistinctIDs[3000] != "chain-user" {
				t.Fatalf("person of %s: %v %v", id, p, err)
			}
		}
		if got := len(listAll(t, db, EventQuery{Site: "s", DistinctID: "a-1"})); got != 6000 {
			t.Fatalf("%d events of the chain person", got)
		}
		ps := must(db.Persons(ctx, PersonQuery{Site: "s"})).Results
		if len(ps) != 2 {
			t.Fatalf("%d persons", len(ps))
		}
	}
	check(db)
	db.Close()
	db = openCounting(t, path, &c)
	defer db.Close()
	check(db)
	if c.get("s") != 0 {
		t.Fatalf("refusals %d", c.get("s"))
	}
}

// TestRetentionKeepsRefusalsRefused: the event that identified user-42 ages
// out while the attacker's refused alias does not. The alias loses the id
// it named, so that a replay, where nothing identifies user-42 any more,
// does not hand user-42 to the attacker.
func TestRetentionKeepsRefusalsRefused(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "ret.db")
	var c refusalCounter
	db, err := Open(path, Options{Now: func() time.Time { return now }, CompactEvery: time.Hour, OnMergeRefused: c.inc})
	if err != nil {
		t.Fatal(err)
	}
	old, recent := now.Add(-40*24*time.Hour).UnixMilli(), now.Add(-time.Hour).UnixMilli()
	mustAppend(t, db, ev("s", "$identify", "user-42", old, "$anon_distinct_id", "a1"))
	mustAppend(t, db,
		ev("s", "$pageview", "user-42", recent, "$pathname", "/account"),
		ev("s", "$create_alias", "attacker-1", recent+1, "alias", "user-42"),
		ev("s", "$pageview", "attacker-1", recent+2),
	)
	if c.get("s") != 1 {
		t.Fatalf("refusals %d", c.get("s"))
	}
	db.SetRetention("s", 30*24*time.Hour)
	if err := db.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	check := func(db *DB) {
		t.Helper()
		if got := personIDs(t, db, "attacker-1"); got != "attacker-1" {
			t.Fatalf("attacker's person: %q", got)
		}
		if got := eventDIDs(t, db, "attacker-1"); got != "$create_alias:attacker-1 $pageview:attacker-1" {
			t.Fatalf("attacker's events: %s", got)
		}
		if got := eventDIDs(t, db, "user-42"); got != "$pageview:user-42" {
			t.Fatalf("user-42's events: %s", got)
		}
	}
	check(db)
	db.Close()
	db, err = Open(path, Options{Now: func() time.Time { return now }, CompactEvery: time.Hour, OnMergeRefused: c.inc})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check(db)
}
