package store

import (
	"context"
	"sort"
	"strconv"
	"strings"
)

// PersonQuery selects persons for listing.
type PersonQuery struct {
	Site string
	// Search keeps persons with a distinct id or property value (their own
	// or those derived from their events) containing it, ignoring case.
	Search string
	// Limit is the page size; default 100, at most 1000.
	Limit int
	// Cursor continues a listing where a page's Next left it.
	Cursor string
}

// PersonPage is a page of persons, most recently created first.
type PersonPage struct {
	Results []Person
	// Next continues the listing; "" after the last page.
	Next string
	// Total is the number of persons the query selects.
	Total int
}

// personSpan is a person's first and last live events.
type personSpan struct {
	first, last       int64
	firstRow, lastRow int
}

func (sp *personSpan) see(ts int64, row int, initial bool) {
	if initial || ts < sp.first {
		sp.first, sp.firstRow = ts, row
	}
	if initial || ts >= sp.last {
		sp.last, sp.lastRow = ts, row
	}
}

// personSpans returns, by root, the first and last live events of every
// person that has one; the caller holds t.mu (read).
func (t *table) personSpans(roots []uint32) map[uint32]personSpan {
	spans := make(map[uint32]personSpan)
	n := t.rows()
	for row := 0; row < n; row++ {
		ts := t.ts.at(row)
		if ts == deletedTime {
			continue
		}
		r := roots[t.did.at(row)]
		sp, ok := spans[r]
		sp.see(ts, row, !ok)
		spans[r] = sp
	}
	return spans
}

// derivedPersonProps are the properties a person gets from their first
// event (as $initial_<name>) and their latest (as <name>), as posthog-js's
// $set_once and $set would give them (SPEC §4).
var derivedPersonProps = []string{
	"$referring_domain", "$pathname",
	"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
	"$geoip_country_code", "$geoip_country_name", "$browser", "$os", "$device_type",
}

// DerivedPersonProps returns the event properties a person gets from their
// first event (as $initial_<name>) and their latest (as <name>), in the
// order Person lists them, for another backend to derive the same.
func DerivedPersonProps() []string { return append([]string(nil), derivedPersonProps...) }

// personProps are the person's properties: those derived from their first
// and latest events, then their own ($set, $set_once), which win.
func (t *table) personProps(r uint32, sp personSpan) Props {
	own := t.people.props[r]
	out := make(Props, 0, len(own)+2*len(derivedPersonProps))
	for _, k := range derivedPersonProps {
		c := t.colByKey[k]
		if c == nil {
			continue
		}
		if v := c.value(sp.firstRow); v != "" {
			out = append(out, Prop{Key: "$initial_" + k, Val: StringValue(v)})
		}
		if v := c.value(sp.lastRow); v != "" {
			out = append(out, Prop{Key: k, Val: StringValue(v)})
		}
	}
	for _, p := range own {
		out.Set(p.Key, p.Val)
	}
	return out
}

type personCand struct {
	root uint32
	span personSpan
	id   string
}

// sortPersons orders most recently created first, then by id.
func sortPersons(cs []personCand) {
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].span.first != cs[j].span.first {
			return cs[i].span.first > cs[j].span.first
		}
		return cs[i].id > cs[j].id
	})
}

func personCursor(c personCand) string {
	return strconv.FormatInt(c.span.first, 10) + "." + c.id
}

// after reports whether c comes after the cursor's person in the order.
func afterCursor(c personCand, created int64, id string) bool {
	return c.span.first < created || c.span.first == created && c.id < id
}

// Persons lists persons with at least one stored event, most recently
// created first, a page at a time.
func (s *DB) Persons(ctx context.Context, q PersonQuery) (PersonPage, error) {
	var page PersonPage
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 1000)
	var curCreated int64
	var curID string
	if q.Cursor != "" {
		c, id, ok := strings.Cut(q.Cursor, ".")
		n, err := strconv.ParseInt(c, 10, 64)
		if !ok || err != nil || id == "" {
			return page, badQuery("cursor %q: not one this API gave", q.Cursor)
		}
		curCreated, curID = n, id
	}
	t := s.table(q.Site)
	if t == nil {
		return page, nil
	}
	if err := t.rlock(); err != nil {
		return page, err
	}
	defer t.mu.RUnlock()
	roots := t.people.roots()
	spans := t.personSpans(roots)
	search := strings.ToLower(q.Search)
	var match map[uint32]bool
	if search != "" {
		match = make(map[uint32]bool)
		for d := 1; d < len(roots); d++ {
			if strings.Contains(strings.ToLower(t.dids.str(uint32(d))), search) {
				match[roots[d]] = true
			}
		}
		for r, sp := range spans {
			if match[r] {
				continue
			}
			for _, p := range t.personProps(r, sp) {
				if strings.Contains(strings.ToLower(p.Val.String()), search) {
					match[r] = true
					break
				}
			}
		}
	}
	cands := make([]personCand, 0, len(spans))
	for r, sp := range spans {
		if match != nil && !match[r] {
			continue
		}
		cands = append(cands, personCand{r, sp, PersonID(t.site, t.dids.str(r))})
	}
	page.Total = len(cands)
	sortPersons(cands)
	if q.Cursor != "" {
		i := sort.Search(len(cands), func(i int) bool { return afterCursor(cands[i], curCreated, curID) })
		cands = cands[i:]
	}
	if len(cands) > q.Limit {
		page.Next = personCursor(cands[q.Limit-1])
		cands = cands[:q.Limit]
	}
	page.Results = make([]Person, len(cands))
	for i, c := range cands {
		page.Results[i] = t.person(roots, c.root, c.span)
	}
	if ctxDone(ctx) {
		return PersonPage{}, ctx.Err()
	}
	return page, nil
}
