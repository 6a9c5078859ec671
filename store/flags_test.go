package store

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// refHash is PostHog's hash written the way its docs state it: hex digest,
// first 15 characters, parsed as an integer.
func refHash(key, id, salt string) float64 {
	sum := sha1.Sum([]byte(key + "." + id + salt))
	n, _ := strconv.ParseUint(hex.EncodeToString(sum[:])[:15], 16, 64)
	return float64(n) / float64(0xFFFFFFFFFFFFFFF)
}

func TestFlagHash(t *testing.T) {
	// Every message length around the padding boundaries, up to past the
	// hasher's buffer.
	for n := 0; n < 300; n++ {
		id := strings.Repeat("x", n)
		for _, salt := range []string{"", "variant"} {
			if got, want := FlagHash("k", id, salt), refHash("k", id, salt); got != want {
				t.Fatalf("id of %d bytes %q: %v, want %v", n, salt, got, want)
			}
		}
	}
	for i := 0; i < 2000; i++ {
		key, id := fmt.Sprintf("flag-%d", i%7), fmt.Sprintf("user-%d", i)
		for _, salt := range []string{"", "variant"} {
			if got, want := FlagHash(key, id, salt), refHash(key, id, salt); got != want {
				t.Fatalf("%s %s %q: %v, want %v", key, id, salt, got, want)
			}
		}
	}
}

func mustFlag(t *testing.T, js string) Flag {
	t.Helper()
	var f Flag
	if err := json.Unmarshal([]byte(js), &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFlagValidation(t *testing.T) {
	db := openTest(t, ":memory:")
	defer db.Close()
	c, err := db.SaveCohort(ctx, "s", Cohort{Name: "pro", Kind: CohortProperty, Property: "plan", Op: OpEq, Value: "pro"})
	if err != nil {
		t.Fatal(err)
	}
	for js, field := range map[string]string{
		`{"key":"a b","active":true}`: "key:",
		`{"key":"a","filters":{"groups":[{"properties":[{"key":"x","operator":"sounds_like","value":"y"}]}]}}`:                          "filters.groups[0].properties[0].operator",
		`{"key":"a","filters":{"groups":[{"properties":[{"key":"x","operator":"regex","value":"("}]}]}}`:                                "filters.groups[0].properties[0].value",
		`{"key":"a","filters":{"groups":[{"rollout_percentage":101}]}}`:                                                                 "filters.groups[0].rollout_percentage",
		`{"key":"a","filters":{"multivariate":{"variants":[{"key":"x","rollout_percentage":50},{"key":"y","rollout_percentage":40}]}}}`: "filters.multivariate.variants: rollout percentages sum to 90",
		`{"key":"a","filters":{"payloads":{"true":"{not json"}}}`:                                                                       "filters.payloads.true",
		`{"key":"a","filters":{"payloads":{"nope":"1"}}}`:                                                                               "filters.payloads.nope",
		`{"key":"a","filters":{"groups":[{"variant":"z"}]}}`:                                                                            "filters.groups[0].variant",
		`{"key":"a","filters":{"groups":[{"properties":[{"type":"cohort","value":999}]}]}}`:                                             "filters.groups[0].properties[0].value",
		`{"key":"a","filters":{"groups":[{"properties":[{"type":"group","key":"x","value":1}]}]}}`:                                      "filters.groups[0].properties[0].type",
	} {
		_, err := db.SaveFlag(ctx, "s", mustFlag(t, js))
		if !errors.Is(err, ErrBadQuery) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want a bad query naming %s", js, err, field)
		}
	}
	ok := fmt.Sprintf(`{"key":"ok","active":true,"filters":{"groups":[{"properties":[{"type":"cohort","value":%d}],"rollout_percentage":100}],"payloads":{"true":{"a":1}}}}`, c.ID)
	f, err := db.SaveFlag(ctx, "s", mustFlag(t, ok))
	if err != nil || f.ID == 0 || f.Version != 1 || string(f.Filters.Payloads["true"]) != `{"a":1}` {
		t.Fatalf("%+v %v", f, err)
	}
	if _, err := db.SaveFlag(ctx, "s", mustFlag(t, `{"key":"ok"}`)); !errors.Is(err, ErrBadQuery) {
		t.Errorf("a second flag with the same key: %v", err)
	}
}

func TestFlagsPersistAndEvaluate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	db := openTest(t, path)
	now := time.Now().UnixMilli()
	mustAppend(t, db,
		ev("s", "$identify", "alice", now, "$set", `{"email":"alice@corp.example","age":41}`),
		ev("s", "$pageview", "bob", now, "$set", `{"email":"bob@home.example"}`))
	f, err := db.SaveFlag(ctx, "s", mustFlag(t, `{"key":"beta","active":true,"filters":{
		"groups":[{"properties":[{"key":"email","operator":"icontains","value":"@CORP."}]},
		          {"properties":[{"key":"age","operator":"gt","value":40}],"rollout_percentage":0}],
		"payloads":{"true":"{\"color\":\"blue\"}"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	mv, err := db.SaveFlag(ctx, "s", mustFlag(t, `{"key":"split","active":true,"filters":{
		"groups":[{"rollout_percentage":100}],
		"multivariate":{"variants":[{"key":"a","rollout_percentage":34},{"key":"b","rollout_percentage":33},{"key":"c","rollout_percentage":33}]},
		"payloads":{"b":"[1,2]"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	db.SaveFlag(ctx, "s", mustFlag(t, `{"key":"off","active":false,"filters":{"groups":[{}]}}`))
	key, _ := db.FlagsKey(ctx, "s")
	if !strings.HasPrefix(key, "phs_") || !db.CheckFlagsKey("s", key) || db.CheckFlagsKey("s", key+"x") || db.CheckFlagsKey("other", key) {
		t.Errorf("key %q", key)
	}
	db.Close()

	db = openTest(t, path)
	defer db.Close()
	if !db.CheckFlagsKey("s", key) || !db.HasActiveFlags("s") || db.HasActiveFlags("t") {
		t.Fatal("key or flags lost on reopen")
	}
	got := func(did string, props Props) map[string]FlagResult {
		m := map[string]FlagResult{}
		for _, r := range db.EvaluateFlags(FlagRequest{Site: "s", DistinctID: did, Props: props}, nil) {
			m[r.Key] = r
		}
		return m
	}
	a := got("alice", nil)
	if r := a["beta"]; !r.Enabled || r.ConditionIndex != 0 || string(r.Payload) != `"{\"color\":\"blue\"}"` {
		t.Errorf("alice beta %+v", r)
	}
	if _, ok := a["off"]; ok {
		t.Error("an inactive flag was evaluated")
	}
	if r := got("bob", nil)["beta"]; r.Enabled || r.Reason != ReasonNoConditionMatch {
		t.Errorf("bob beta %+v", r)
	}
	// SDK properties win over stored ones; the second group is out of its 0% rollout.
	if r := got("bob", Props{{Key: "age", Val: NumberValue(50)}})["beta"]; r.Enabled || r.Reason != ReasonOutOfRollout || r.ConditionIndex != 1 {
		t.Errorf("bob with age %+v", r)
	}
	if r := got("alice", Props{{Key: "email", Val: StringValue("x@y")}})["beta"]; r.Enabled {
		t.Errorf("override of email ignored: %+v", r)
	}
	counts := map[string]int{}
	for i := 0; i < 3000; i++ {
		id := fmt.Sprintf("u%d", i)
		r := got(id, nil)["split"]
		h := refHash("split", id, "variant")
		want := "a"
		if h >= 0.34 && h < 0.67 {
			want = "b"
		} else if h >= 0.67 {
			want = "c"
		}
		if !r.Enabled || r.Variant != want || r.ID != mv.ID {
			t.Fatalf("%s: %+v, want %s", id, r, want)
		}
		if (want == "b") != (r.Payload != nil) {
			t.Fatalf("payload of %s: %s", want, r.Payload)
		}
		counts[r.Variant]++
	}
	t.Logf("split %v", counts)

	// The local-evaluation answer carries payloads as JSON strings.
	var le struct {
		Flags []struct {
			Key     string
			Filters struct{ Payloads map[string]string }
		}
	}
	if err := json.Unmarshal(db.LocalEvaluation("s"), &le); err != nil || len(le.Flags) != 2 || le.Flags[0].Filters.Payloads["true"] != `{"color":"blue"}` {
		t.Errorf("local evaluation %s %v", db.LocalEvaluation("s"), err)
	}
	old := key
	key, _ = db.RotateFlagsKey(ctx, "s")
	if key == old || db.CheckFlagsKey("s", old) || !db.CheckFlagsKey("s", key) {
		t.Error("rotation")
	}
	f.Active = false
	if _, err := db.SaveFlag(ctx, "s", f); err != nil {
		t.Fatal(err)
	}
	if _, ok := got("alice", nil)["beta"]; ok {
		t.Error("deactivated flag still evaluated")
	}
}

func TestFlagCohorts(t *testing.T) {
	db := openTest(t, ":memory:")
	defer db.Close()
	now := time.Now()
	db.opts.Now = func() time.Time { return now }
	mustAppend(t, db,
		ev("s", "purchase", "buyer", now.Add(-time.Hour).UnixMilli()),
		ev("s", "$pageview", "looker", now.Add(-time.Hour).UnixMilli(), "$set", `{"plan":"pro"}`))
	buyers, _ := db.SaveCohort(ctx, "s", Cohort{Name: "buyers", Kind: CohortBehavioral, Event: "purchase", Days: 7})
	pros, _ := db.SaveCohort(ctx, "s", Cohort{Name: "pros", Kind: CohortProperty, Property: "plan", Op: OpEq, Value: "pro"})
	db.SaveFlag(ctx, "s", mustFlag(t, fmt.Sprintf(`{"key":"for-buyers","active":true,"filters":{"groups":[{"properties":[{"type":"cohort","value":%d}]}]}}`, buyers.ID)))
	db.SaveFlag(ctx, "s", mustFlag(t, fmt.Sprintf(`{"key":"not-pro","active":true,"filters":{"groups":[{"properties":[{"type":"cohort","value":"%d","operator":"not_in"}]}]}}`, pros.ID)))
	for did, want := range map[string]string{"buyer": "for-buyers:true not-pro:true", "looker": "for-buyers:false not-pro:false", "nobody": "for-buyers:false not-pro:true"} {
		var parts []string
		for _, r := range db.EvaluateFlags(FlagRequest{Site: "s", DistinctID: did}, nil) {
			parts = append(parts, fmt.Sprintf("%s:%v", r.Key, r.Enabled))
		}
		if got := strings.Join(parts, " "); got != want {
			t.Errorf("%s: %s, want %s", did, got, want)
		}
	}
}

// TestBrokenFlagEvaluatesFalse: a definition that slipped past validation
// (written to the log by an older version, say) makes its own flag false
// and leaves the others alone.
func TestBrokenFlagEvaluatesFalse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.db")
	db := openTest(t, path)
	if _, err := db.SaveFlag(ctx, "s", mustFlag(t, `{"key":"good","active":true,"filters":{"groups":[{}]}}`)); err != nil {
		t.Fatal(err)
	}
	for i, raw := range []string{
		`{"id":90,"key":"bad-regex","active":true,"filters":{"groups":[{"properties":[{"key":"a","operator":"regex","value":"(","type":"person"}]}]}}`,
		`{"id":91,"key":"bad-op","active":true,"filters":{"groups":[{"properties":[{"key":"a","operator":"sounds_like","value":"x","type":"person"}]}]}}`,
		`{"id":92,"key":"bad-cohort","active":true,"filters":{"groups":[{"properties":[{"key":"id","value":"x","type":"cohort"}]}]}}`,
	} {
		if err := db.setDef(flagKey("f", "s", int64(90+i)), raw); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	var problems []string
	db, err := Open(path, Options{CompactEvery: time.Hour, OnError: func(err error) { problems = append(problems, err.Error()) }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res := db.EvaluateFlags(FlagRequest{Site: "s", DistinctID: "u", Props: Props{{Key: "a", Val: StringValue("(")}}}, nil)
	got := map[string]bool{}
	for _, r := range res {
		got[r.Key] = r.Enabled
		if r.Wire == nil || !json.Valid(append(append([]byte("{"), r.Wire.Entry...), '}')) {
			t.Errorf("%s: wire %v", r.Key, r.Wire)
		}
	}
	if fmt.Sprint(got) != "map[bad-cohort:false bad-op:false bad-regex:false good:true]" || len(problems) != 3 {
		t.Errorf("%v; reported %v", got, problems)
	}
}

// TestFlagsSeeDerivedPersonProperties: flag conditions see the properties
// a person derives from their events ($initial_<name> from the first,
// <name> from the latest), as the persons list gives them, their own $set
// winning, also after more events arrive and after a person is deleted.
func TestFlagsSeeDerivedPersonProperties(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	db, err := Open(filepath.Join(t.TempDir(), "derived.db"), Options{BlockEvents: 512, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rf := newRef()
	var evs []*Event
	// More rows than a request indexes itself: the first requests find the
	// index being built in the background.
	generate(genConfig{Seed: 5, Start: start, Days: 4, Persons: 150, Events: 3 * inlineSpanRows, Tick: time.Minute}, func(e *Event) {
		evs = append(evs, e)
	})
	mustAppend(t, db, evs...)
	rf.add(map[string]bool{}, evs...)
	type span struct{ first, last *Event }
	spans := map[string]*span{}
	for _, e := range rf.events {
		p := rf.person(e)
		if s := spans[p]; s == nil {
			spans[p] = &span{e, e}
		} else {
			if e.Time < s.first.Time {
				s.first = e
			}
			if e.Time >= s.last.Time {
				s.last = e
			}
		}
	}
	// One flag per value: init-<i> for $initial_$pathname, last-<i> for
	// $browser (the latest), so that exactly the flags of a person's values
	// are on.
	values := map[string]map[string]string{"$initial_$pathname": {}, "$browser": {}}
	for _, s := range spans {
		if v := s.first.Props.Str("$pathname"); v != "" {
			values["$initial_$pathname"][v] = ""
		}
		if v := s.last.Props.Str("$browser"); v != "" {
			values["$browser"][v] = ""
		}
	}
	values["$browser"]["Lynx"] = ""
	for prop, vals := range values {
		i := 0
		for v := range vals {
			prefix := "init"
			if prop == "$browser" {
				prefix = "last"
			}
			key := fmt.Sprintf("%s-%d", prefix, i)
			vals[v] = key
			i++
			js := fmt.Sprintf(`{"key":%q,"active":true,"filters":{"groups":[{"properties":[{"key":%q,"operator":"exact","value":%q}]}]}}`, key, prop, v)
			if _, err := db.SaveFlag(ctx, "s", mustFlag(t, js)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(values["$initial_$pathname"]) < 2 || len(values["$browser"]) < 3 {
		t.Fatalf("too few values to tell persons apart: %v", values)
	}
	// want lists the flags on for the person of did, from the reference.
	want := func(did string, lastBrowser string) string {
		s := spans[rf.find(did)]
		var on []string
		own := s.first.Props.Str("$set") + s.last.Props.Str("$set")
		if v := s.first.Props.Str("$pathname"); v != "" && !strings.Contains(own, `"$pathname"`) {
			on = append(on, values["$initial_$pathname"][v])
		}
		if lastBrowser == "" {
			lastBrowser = s.last.Props.Str("$browser")
		}
		if lastBrowser != "" && !strings.Contains(own, `"$browser"`) {
			on = append(on, values["$browser"][lastBrowser])
		}
		sort.Strings(on)
		return strings.Join(on, " ")
	}
	got := func(did string) string {
		var on []string
		for _, r := range db.EvaluateFlags(FlagRequest{Site: "s", DistinctID: did}, nil) {
			if r.Enabled {
				on = append(on, r.Key)
			}
		}
		sort.Strings(on)
		return strings.Join(on, " ")
	}
	var dids []string
	for _, e := range evs {
		dids = append(dids, e.DistinctID)
	}
	sort.Strings(dids)
	dids = slices.Compact(dids)
	// The index is built in the background: wait for it on one id, then
	// every id must agree with the reference.
	deadline := time.Now().Add(10 * time.Second)
	for got(dids[0]) != want(dids[0], "") {
		if time.Now().After(deadline) {
			t.Fatalf("%s: flags %q, want %q", dids[0], got(dids[0]), want(dids[0], ""))
		}
		time.Sleep(5 * time.Millisecond)
	}
	checked := 0
	for _, did := range dids {
		if g, w := got(did), want(did, ""); g != w {
			t.Errorf("%s: flags %q, want %q", did, g, w)
		}
		if want(did, "") != "" {
			checked++
		}
	}
	if checked < len(spans)/2 {
		t.Fatalf("only %d of %d distinct ids had a derived property on", checked, len(dids))
	}

	// A later event changes the latest browser at once, not the initial
	// source.
	did := dids[len(dids)/2]
	mustAppend(t, db, ev("s", "$pageview", did, start.Add(30*24*time.Hour).UnixMilli(), "$browser", "Lynx", "$pathname", "/late"))
	if g, w := got(did), want(did, "Lynx"); g != w || !strings.Contains(g, values["$browser"]["Lynx"]) {
		t.Errorf("after a later event %s: flags %q, want %q", did, g, w)
	}

	// Deleting another person starts the index afresh; the others keep
	// their properties.
	victim := dids[0]
	if rf.find(victim) == rf.find(did) {
		victim = dids[len(dids)-1]
	}
	if err := db.DeletePerson(ctx, "s", victim); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for got(did) != want(did, "Lynx") {
		if time.Now().After(deadline) {
			t.Fatalf("after a deletion %s: flags %q, want %q", did, got(did), want(did, "Lynx"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if g := got(victim); g != "" {
		t.Errorf("deleted person %s still has flags %q", victim, g)
	}
}
