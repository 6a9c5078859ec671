package store

import "testing"

// TestPersonNames: a distinct id is named by its person's email or name
// ($set on any of the person's ids, after a merge too), else not at all;
// unknown ids are left out; the person id is the one the API gives.
func TestPersonNames(t *testing.T) {
	db := openTest(t, ":memory:")
	defer db.Close()
	mustAppend(t, db,
		ev("s", "$pageview", "anon", 1000),
		ev("s", "$identify", "user", 2000, "$anon_distinct_id", "anon", "$set", `{"email":"ada@example.com","name":"Ada"}`),
		ev("s", "$pageview", "named", 3000, "$set", `{"name":"Bob"}`),
		ev("s", "$pageview", "plain", 4000),
	)
	names := db.PersonNames("s", []string{"anon", "user", "named", "plain", "nobody", "anon"})
	for id, want := range map[string]string{"anon": "ada@example.com", "user": "ada@example.com", "named": "Bob", "plain": ""} {
		got, ok := names[id]
		if !ok || got.Name != want {
			t.Errorf("%s: %+v (present %v), want name %q", id, got, ok, want)
			continue
		}
		p, err := db.Person(ctx, "s", id)
		if err != nil || got.ID != p.ID {
			t.Errorf("%s: person id %q, the API's %v %v", id, got.ID, p, err)
		}
	}
	if _, ok := names["nobody"]; ok || len(names) != 4 {
		t.Errorf("names %+v: want the four known ids only", names)
	}
	if n := db.PersonNames("other", []string{"anon"}); len(n) != 0 {
		t.Errorf("another site: %+v", n)
	}
}
