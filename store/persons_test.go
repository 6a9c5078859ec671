package store

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPersonsPagingAndDerivedProperties: paging through /api/persons
// gives every person once, newest first, with the total; each person has
// $initial_* properties from their first event and the latest values from
// their last, their own $set winning; search matches derived values too.
func TestPersonsPagingAndDerivedProperties(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	db, err := Open(filepath.Join(t.TempDir(), "persons.db"), Options{BlockEvents: 256, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rf := newRef()
	seen := map[string]bool{}
	var evs []*Event
	countries := map[string]string{"DE": "Germany", "FR": "France", "US": "United States"}
	generate(genConfig{Seed: 21, Start: start, Days: 6, Persons: 180, Events: 4000, Tick: time.Minute}, func(e *Event) {
		if cc := e.Props.Str("$geoip_country_code"); countries[cc] != "" {
			e.Props.Set("$geoip_country_name", StringValue(countries[cc]))
		}
		evs = append(evs, e)
	})
	mustAppend(t, db, evs...)
	rf.add(seen, evs...)

	// Reference: persons with events, their first and last event by time
	// (the earliest stored first on ties, the latest stored last).
	type span struct{ first, last *Event }
	spans := map[string]*span{}
	for _, e := range rf.events {
		p := rf.person(e)
		s := spans[p]
		if s == nil {
			spans[p] = &span{e, e}
			continue
		}
		if e.Time < s.first.Time {
			s.first = e
		}
		if e.Time >= s.last.Time {
			s.last = e
		}
	}

	var all []Person
	total := -1
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := db.Persons(ctx, PersonQuery{Site: "s", Limit: 7, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if total >= 0 && page.Total != total {
			t.Fatalf("total changed between pages: %d then %d", total, page.Total)
		}
		total = page.Total
		all = append(all, page.Results...)
		if page.Next == "" {
			break
		}
		if len(page.Results) != 7 || pages > 1000 {
			t.Fatalf("page %d has %d persons and a next cursor", pages, len(page.Results))
		}
		cursor = page.Next
	}
	if total != len(spans) || len(all) != len(spans) {
		t.Fatalf("paged %d persons, total %d, want %d", len(all), total, len(spans))
	}
	ids := map[string]bool{}
	for i, p := range all {
		if ids[p.ID] {
			t.Fatalf("person %s listed twice", p.ID)
		}
		ids[p.ID] = true
		if i > 0 && p.CreatedAt > all[i-1].CreatedAt {
			t.Fatalf("not newest first at %d", i)
		}
		s := spans[rf.find(p.DistinctIDs[0])]
		if s == nil {
			t.Fatalf("person %v has no events in the reference", p.DistinctIDs)
		}
		for _, k := range []string{"$pathname", "$browser", "$geoip_country_code", "utm_source", "$referring_domain"} {
			isOwn := false
			for _, set := range []string{s.first.Props.Str("$set"), s.last.Props.Str("$set")} {
				if strings.Contains(set, `"`+k+`"`) {
					isOwn = true
				}
			}
			if isOwn {
				continue
			}
			if got, want := p.Properties.Str("$initial_"+k), s.first.Props.Str(k); got != want {
				t.Errorf("person %v $initial_%s = %q, want %q (first event %s)", p.DistinctIDs, k, got, want, s.first.Name)
			}
			if got, want := p.Properties.Str(k), s.last.Props.Str(k); got != want {
				t.Errorf("person %v %s = %q, want %q", p.DistinctIDs, k, got, want)
			}
		}
	}

	// Search by a derived value: the country's name.
	want := 0
	for _, s := range spans {
		if s.first.Props.Str("$geoip_country_name") == "Germany" || s.last.Props.Str("$geoip_country_name") == "Germany" {
			want++
		}
	}
	page, err := db.Persons(ctx, PersonQuery{Site: "s", Search: "germany", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if want == 0 || page.Total < want {
		t.Errorf("search germany: %d persons, want at least %d (and some)", page.Total, want)
	}
	for _, p := range page.Results {
		found := false
		for _, pr := range p.Properties {
			if strings.Contains(strings.ToLower(pr.Val.String()), "germany") {
				found = true
			}
		}
		if !found {
			t.Errorf("search germany found %v without it", p.DistinctIDs)
		}
	}
	if _, err := db.Persons(ctx, PersonQuery{Site: "s", Cursor: "garbage"}); err == nil {
		t.Error("a bad cursor was accepted")
	}
}
