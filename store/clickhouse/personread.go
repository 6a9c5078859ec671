package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/tidwall/gjson"
)

// Reading persons. A person is the distinct ids person_map maps to one
// person (resolve keeps it to what every node's links make), listed in
// the order first seen, with the events of those ids: created at its
// first event; properties derived from its first and latest events
// (store.DerivedPersonProps) and its own, from `$set`, `$set_once` and
// `$unset` applied in time order, two persons' own properties joined at
// their link as the store joins them (the sender's win). Time order
// stands in for commit order, as in resolve (ties: one node's commit
// order, then the uuid).
//
// A person's reads go to events by its distinct ids (eventsWhere, no
// join): three queries for one person; a page of the list costs two more
// (the count, the page) over personsRel.

// personRef is a person as base names it (person_map's person, or the
// distinct id of an id not mapped yet), with its creation time and one of
// its ids.
type personRef struct {
	person  string
	created int64
	did     string
}

func (r personRef) id(site string) string { return personOf(site, r.did, r.person) }

// personsRel is every person of the site with events: person (base's
// name for it), c (its first event's time), did (one of its ids) and h
// (1 when hit holds for one of its events). It groups the events by
// distinct id before mapping the ids to persons, so that the join is over
// ids, not events.
func personsRel(site string, hit SQL) SQL {
	ids := Build("SELECT distinct_id, min(ts) AS dc, max(?) AS dh FROM events FINAL WHERE site = ? GROUP BY distinct_id", hit, site)
	pm := Build("SELECT distinct_id, argMax(person, ver) AS pm_person, argMax(deleted, ver) AS pm_deleted FROM person_map WHERE site = ? GROUP BY distinct_id", site)
	return Build(`SELECT person, min(dc) AS c, any(distinct_id) AS did, max(dh) AS h FROM (
	SELECT if(pm_person = '', distinct_id, pm_person) AS person, dc, distinct_id, dh FROM (?) AS ev GLOBAL ANY LEFT JOIN (?) AS pm USING distinct_id WHERE pm_deleted = 0
) GROUP BY person`, ids, pm)
}

// personRefs returns the persons of personsRel(site, hit) that pass where,
// with extra appended (ORDER BY, LIMIT).
func (b *Backend) personRefs(ctx context.Context, site string, hit, where, extra SQL) ([]personRef, error) {
	rows, err := b.client().Query(ctx, Build("SELECT person, c, did FROM (?) WHERE ? ?", personsRel(site, hit), where, extra))
	if err != nil {
		return nil, err
	}
	out := make([]personRef, len(rows))
	for i, r := range rows {
		out[i] = personRef{asStr(r[0]), asInt(r[1]), asStr(r[2])}
	}
	return out, nil
}

// members returns the distinct ids of the persons named (not deleted), by
// name; a name person_map does not hold is an id alone.
func (b *Backend) members(ctx context.Context, site string, names []string) (map[string][]string, error) {
	rows, err := b.client().Query(ctx, Build(`SELECT distinct_id, argMax(person, ver) AS p FROM person_map WHERE site = ?
GROUP BY distinct_id HAVING argMax(deleted, ver) = 0 AND ?`, site, hasStr(names, "p")))
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(names))
	for _, r := range rows {
		p := asStr(r[1])
		out[p] = append(out[p], asStr(r[0]))
	}
	for _, n := range names {
		if len(out[n]) == 0 {
			out[n] = []string{n}
		}
	}
	return out, nil
}

// personsOf makes the persons of members (ids by person name); a person
// none of whose ids has an event is left out, as in the store.
func (b *Backend) personsOf(ctx context.Context, site string, members map[string][]string) (map[string]*store.Person, error) {
	owner := map[string]string{}
	var ids []string
	for name, ms := range members {
		for _, d := range ms {
			owner[d] = name
			ids = append(ids, d)
		}
	}
	out := map[string]*store.Person{}
	if len(ids) == 0 {
		return out, nil
	}
	// Each id's first and latest event, with the derived properties'
	// values there.
	derived := store.DerivedPersonProps()
	order := SQL("(ts, seq, uuid)")
	cols := []SQL{"distinct_id", "min(ts)", Build("argMin(seq, ?)", order), Build("argMin(uuid, ?)", order),
		"max(ts)", Build("argMax(seq, ?)", order), Build("argMax(uuid, ?)", order)}
	for _, k := range derived {
		cols = append(cols, Build("argMin(?, ?)", prop(k), order), Build("argMax(?, ?)", prop(k), order))
	}
	// And the first to arrive (evKey's order), which decides the root.
	arr := Build("(?)", arrivalOrder())
	cols = append(cols, Build("argMin(ts, ?)", arr), Build("argMin(seq, ?)", arr), Build("argMin(uuid, ?)", arr))
	rows, err := b.client().Query(ctx, Build("SELECT ? FROM (?) GROUP BY distinct_id",
		Join(cols, ", "), eventsWhere(site, hasStr(ids, "distinct_id"))))
	if err != nil {
		return nil, err
	}
	type span struct {
		first, last  evKey
		fvals, lvals []string
	}
	spans := map[string]*span{}
	seen := map[string]seenKey{}
	see := func(d string, k seenKey) {
		if old, ok := seen[d]; !ok || k.less(old) {
			seen[d] = k
		}
	}
	for _, r := range rows {
		d := asStr(r[0])
		name := owner[d]
		first := evKey{asInt(r[1]), asUint(r[2]), asStr(r[3])}
		last := evKey{asInt(r[4]), asUint(r[5]), asStr(r[6])}
		a := 7 + 2*len(derived)
		see(d, seenKey{evKey{asInt(r[a]), asUint(r[a+1]), asStr(r[a+2])}, 0})
		fv, lv := make([]string, len(derived)), make([]string, len(derived))
		for i := range derived {
			fv[i], lv[i] = asStr(r[7+2*i]), asStr(r[8+2*i])
		}
		sp := spans[name]
		if sp == nil {
			spans[name] = &span{first, last, fv, lv}
			continue
		}
		if first.timeLess(sp.first) {
			sp.first, sp.fvals = first, fv
		}
		if sp.last.timeLess(last) {
			sp.last, sp.lvals = last, lv
		}
	}
	// Links and own properties, in order.
	val := func(k string) SQL { return Build("(?, prop_kinds[indexOf(prop_keys, ?)])", prop(k), k) }
	other := Build("if(name = '$identify', ?, ?)", prop("$anon_distinct_id"), prop("alias"))
	isLink := SQL("(name = '$identify' OR name = '$create_alias')")
	mine := Build("(? AND (? OR hasAny(prop_keys, ['$set', '$set_once', '$unset'])) OR ? AND ?)", hasStr(ids, "distinct_id"), isLink, isLink, hasStr(ids, Build("?", other)))
	rows, err = b.client().Query(ctx, Build(`SELECT distinct_id, name, ? AS other, ?, ?, ?, ts, seq, uuid FROM (?)
ORDER BY ?`, other, val("$set"), val("$set_once"), val("$unset"), eventsWhere(site, mine), arrivalOrder()))
	if err != nil {
		return nil, err
	}
	lead := map[string]string{}
	props := map[string]store.Props{} // by leader
	find := func(d string) string {
		if l, ok := lead[d]; ok {
			return l
		}
		return d
	}
	jsonOf := func(raw json.RawMessage) (string, bool) {
		var t []json.RawMessage
		if json.Unmarshal(raw, &t) != nil || len(t) != 2 {
			return "", false
		}
		return asStr(t[0]), store.Kind(asInt(t[1])) == store.KindJSON
	}
	for _, r := range rows {
		d, name, oth := asStr(r[0]), asStr(r[1]), asStr(r[2])
		link := name == "$identify" || name == "$create_alias"
		if link && oth != "" && oth != d {
			if _, ok := owner[oth]; ok {
				see(oth, seenKey{evKey{asInt(r[6]), asUint(r[7]), asStr(r[8])}, 1})
			}
		}
		if _, ok := owner[d]; !ok {
			continue // a link from another person naming one of ids
		}
		see(d, seenKey{evKey{asInt(r[6]), asUint(r[7]), asStr(r[8])}, 0})
		if link && oth != "" && owner[oth] == owner[d] {
			if lk, lo := find(d), find(oth); lk != lo {
				merged := props[lk]
				for _, pr := range props[lo] {
					merged.SetIfMissing(pr.Key, pr.Val)
				}
				for m, l := range lead {
					if l == lo {
						lead[m] = lk
					}
				}
				lead[lo], lead[oth] = lk, lk
				delete(props, lo)
				props[lk] = merged
			}
		}
		l := find(d)
		ps := props[l]
		if s, ok := jsonOf(r[3]); ok {
			gjson.Parse(s).ForEach(func(k, v gjson.Result) bool { ps.Set(k.String(), store.ValueFromJSON(v)); return true })
		}
		if s, ok := jsonOf(r[4]); ok {
			gjson.Parse(s).ForEach(func(k, v gjson.Result) bool { ps.SetIfMissing(k.String(), store.ValueFromJSON(v)); return true })
		}
		if s, ok := jsonOf(r[5]); ok {
			gjson.Parse(s).ForEach(func(_, v gjson.Result) bool { ps.Delete(v.String()); return true })
		}
		props[l] = ps
	}
	// A person's ids all lead to one by now; should any not (links not
	// shipped yet), their properties join in the order found.
	own := map[string]store.Props{}
	for l, ps := range props {
		name := owner[l]
		if merged, ok := own[name]; ok {
			for _, pr := range ps {
				merged.SetIfMissing(pr.Key, pr.Val)
			}
			ps = merged
		}
		own[name] = ps
	}
	for name, sp := range spans {
		ms := append([]string(nil), members[name]...)
		sortBySeen(ms, seen)
		p := &store.Person{ID: personOf(site, ms[0], name), DistinctIDs: ms, CreatedAt: sp.first.ts}
		if len(ms) == 1 && name == ms[0] {
			p.ID = store.PersonID(site, name)
		}
		for i, k := range derived {
			if v := sp.fvals[i]; v != "" {
				p.Properties = append(p.Properties, store.Prop{Key: "$initial_" + k, Val: store.StringValue(v)})
			}
			if v := sp.lvals[i]; v != "" {
				p.Properties = append(p.Properties, store.Prop{Key: k, Val: store.StringValue(v)})
			}
		}
		for _, pr := range own[name] {
			p.Properties.Set(pr.Key, pr.Val)
		}
		out[name] = p
	}
	return out, nil
}

// findPerson returns the name in ClickHouse of the person id names (a
// person id, one of its distinct ids, or an id it had before a merge,
// found through the local log, else through every link) and its ids;
// "" when ClickHouse has no such person.
func (b *Backend) findPerson(ctx context.Context, site, id string) (string, []string, error) {
	look := func(id string) (string, []string, error) {
		m := Build(`SELECT distinct_id, argMax(person, ver) AS p FROM person_map WHERE site = ?
GROUP BY distinct_id HAVING argMax(deleted, ver) = 0`, site)
		rows, err := b.client().Query(ctx, Build(`SELECT distinct_id, p FROM (?) WHERE p IN (SELECT p FROM (?) WHERE distinct_id = ? OR p = ?)
ORDER BY distinct_id`, m, m, id, id))
		if err != nil || len(rows) == 0 {
			return "", nil, err
		}
		name := asStr(rows[0][1])
		var ids []string
		for _, r := range rows {
			if asStr(r[1]) == name {
				ids = append(ids, asStr(r[0]))
			}
		}
		return name, ids, nil
	}
	name, ids, err := look(id)
	if name != "" || err != nil {
		return name, ids, err
	}
	if p, err := b.DB.Person(ctx, site, id); err == nil {
		return look(p.DistinctIDs[0])
	}
	deleted, err := b.deletedIDs(ctx, site)
	if err != nil {
		return "", nil, err
	}
	res, err := b.resolvePersons(ctx, site, deleted, nil)
	if err != nil {
		return "", nil, err
	}
	for d, p := range res.person {
		if store.PersonID(site, d) == id {
			return look(p)
		}
	}
	return "", nil, nil
}

// person returns the person id names, from ClickHouse.
func (b *Backend) person(ctx context.Context, site, id string) (*store.Person, error) {
	name, ids, err := b.findPerson(ctx, site, id)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, store.ErrNotFound
	}
	ps, err := b.personsOf(ctx, site, map[string][]string{name: ids})
	if err != nil {
		return nil, err
	}
	if p := ps[name]; p != nil {
		return p, nil
	}
	return nil, store.ErrNotFound
}

// Person returns the person named by id (a person id, an id the person
// had before a merge, or any of its distinct ids) from ClickHouse, with
// every node's events; one only this node has seen so far (not shipped
// yet) from the local log.
func (b *Backend) Person(ctx context.Context, site, id string) (*store.Person, error) {
	if err := b.ready(ctx); err != nil {
		return nil, err
	}
	p, err := b.person(ctx, site, id)
	if errors.Is(err, store.ErrNotFound) || isUnavailable(err) && ctx.Err() == nil {
		return b.DB.Person(ctx, site, id)
	}
	return p, err
}

// ready creates the tables if shipping has not yet, and waits a moment
// at most for this node's events to ship, so that a person read just
// after a capture through this node sees it (when ClickHouse is slow or
// down, the read goes on with what it holds).
func (b *Backend) ready(ctx context.Context) error {
	b.mu.Lock()
	target, pending := b.seq, b.shippedSeq < b.seq && len(b.backlog) > 0 && b.totalLocked() > 0
	b.mu.Unlock()
	if pending { // what was committed before this read, not what comes after
		deadline := time.Now().Add(min(2*b.opts.Flush+time.Second, 5*time.Second))
		for time.Now().Before(deadline) && ctx.Err() == nil {
			b.mu.Lock()
			done := b.shippedSeq >= target || b.totalLocked() == 0
			b.mu.Unlock()
			if done {
				break
			}
			b.nudge()
			time.Sleep(20 * time.Millisecond)
		}
	}
	if b.schemaOK {
		return nil
	}
	return b.ensureSchema(ctx)
}

// Persons lists every node's persons from ClickHouse, most recently
// created first (then by id, descending), a page at a time, as the store
// pages them. Search keeps persons with a distinct id or property value
// containing it, ignoring case: SQL keeps the persons with an id or an
// event value that could give such a property, and their properties,
// made here, decide.
func (b *Backend) Persons(ctx context.Context, q store.PersonQuery) (store.PersonPage, error) {
	page, err := b.listPersons(ctx, q)
	if isUnavailable(err) && ctx.Err() == nil && !errors.Is(err, store.ErrBadQuery) {
		b.count(&b.inLocal, "persons")
		return b.DB.Persons(ctx, q)
	}
	return page, err
}

func (b *Backend) listPersons(ctx context.Context, q store.PersonQuery) (store.PersonPage, error) {
	var page store.PersonPage
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
			return page, fmt.Errorf("%w: cursor %q: not one this API gave", store.ErrBadQuery, q.Cursor)
		}
		curCreated, curID = n, id
	}
	if err := b.ready(ctx); err != nil {
		return page, err
	}
	var refs []personRef
	if q.Search == "" {
		rows, err := b.client().Query(ctx, Build("SELECT count() FROM (?)", personsRel(q.Site, "0")))
		if err != nil {
			return page, err
		}
		page.Total = int(asInt(rows[0][0]))
		cur := SQL("1")
		if q.Cursor != "" {
			cur = Build("(c < ? OR c = ? AND person < ?)", curCreated, curCreated, curID)
		}
		if refs, err = b.personRefs(ctx, q.Site, "0", cur, Build("ORDER BY c DESC, person DESC LIMIT ?", q.Limit+1)); err != nil {
			return page, err
		}
	} else {
		s := strings.ToLower(q.Search)
		// Persons with an id containing s (also one no event was sent
		// with), or an event value that may become a property.
		rows, err := b.client().Query(ctx, Build(`SELECT argMax(person, ver) AS p FROM person_map WHERE site = ?
GROUP BY distinct_id HAVING argMax(deleted, ver) = 0 AND position(lowerUTF8(distinct_id), ?) > 0`, q.Site, s))
		if err != nil {
			return page, err
		}
		var named []string
		for _, r := range rows {
			named = append(named, asStr(r[0]))
		}
		keys := append(store.DerivedPersonProps(), "$set", "$set_once")
		hit := Build("position(lowerUTF8(distinct_id), ?) > 0 OR arrayExists((k, v) -> has(?, k) AND position(lowerUTF8(v), ?) > 0, prop_keys, prop_vals)", s, keys, s)
		cands, err := b.personRefs(ctx, q.Site, hit, Build("h = 1 OR ?", hasStr(named, "person")), "")
		if err != nil {
			return page, err
		}
		ps, err := b.pagePersons(ctx, q.Site, cands)
		if err != nil {
			return page, err
		}
		for _, r := range cands {
			if p := ps[r.person]; p != nil && personMatches(p, s) {
				refs = append(refs, r)
			}
		}
		page.Total = len(refs)
		sort.Slice(refs, func(i, j int) bool {
			if refs[i].created != refs[j].created {
				return refs[i].created > refs[j].created
			}
			return refs[i].id(q.Site) > refs[j].id(q.Site)
		})
		if q.Cursor != "" {
			i := sort.Search(len(refs), func(i int) bool {
				r := refs[i]
				return r.created < curCreated || r.created == curCreated && r.id(q.Site) < curID
			})
			refs = refs[i:]
		}
	}
	if len(refs) > q.Limit {
		last := refs[q.Limit-1]
		page.Next = strconv.FormatInt(last.created, 10) + "." + last.id(q.Site)
		refs = refs[:q.Limit]
	}
	ps, err := b.pagePersons(ctx, q.Site, refs)
	if err != nil {
		return page, err
	}
	page.Results = make([]store.Person, 0, len(refs))
	for _, r := range refs {
		if p := ps[r.person]; p != nil {
			page.Results = append(page.Results, *p)
		}
	}
	return page, nil
}

// pagePersons makes the persons refs name, by name.
func (b *Backend) pagePersons(ctx context.Context, site string, refs []personRef) (map[string]*store.Person, error) {
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.person
	}
	ms, err := b.members(ctx, site, names)
	if err != nil {
		return nil, err
	}
	return b.personsOf(ctx, site, ms)
}

// personMatches reports whether a distinct id or property value of p
// contains s (lower case).
func personMatches(p *store.Person, s string) bool {
	for _, d := range p.DistinctIDs {
		if strings.Contains(strings.ToLower(d), s) {
			return true
		}
	}
	for _, pr := range p.Properties {
		if strings.Contains(strings.ToLower(pr.Val.String()), s) {
			return true
		}
	}
	return false
}

// exportPage is how many events one export query reads.
const exportPage = 10000

// eachEvent calls fn with the events of rel (eventCols and seq) in time
// order (ties in one node's commit order, then by uuid), exportPage at a
// time.
func (b *Backend) eachEvent(ctx context.Context, site string, rel SQL, fn func(ev *store.Event, person string) error) error {
	after := SQL("1")
	for {
		rows, err := b.client().Query(ctx, Build("SELECT ?, seq FROM (?) WHERE ? ORDER BY ts, seq, uuid LIMIT ?", eventCols, rel, after, exportPage))
		if err != nil {
			return err
		}
		for _, r := range rows {
			ev := decodeEvent(site, r)
			if err := fn(ev, personOf(site, ev.DistinctID, asStr(r[7]))); err != nil {
				return err
			}
		}
		if len(rows) < exportPage {
			return nil
		}
		last := rows[len(rows)-1]
		ts, seq, uuid := asInt(last[0]), asUint(last[8]), asStr(last[1])
		after = Build("(ts > ? OR ts = ? AND (seq > ? OR seq = ? AND uuid > ?))", ts, ts, seq, seq, uuid)
	}
}

func asUint(raw json.RawMessage) uint64 {
	n, _ := strconv.ParseUint(asStr(raw), 10, 64)
	return n
}

// Export calls fn with every event of q from ClickHouse (every node's),
// in time order, with its person; what SQL cannot answer yet the local
// log answers.
func (b *Backend) Export(ctx context.Context, q store.Query, fn func(ev *store.Event, personID string) error) error {
	if b.sqlReason(ctx, q, nil) != "" {
		b.count(&b.inLocal, "export")
		return b.DB.Export(ctx, q, fn)
	}
	b.count(&b.inSQL, "export")
	base, err := b.base(ctx, q)
	if err != nil {
		return err
	}
	return b.eachEvent(ctx, q.Site, Build("SELECT * FROM (?) WHERE vis AND pass", withPass(base, q)), fn)
}

// ExportPerson writes the person as one NDJSON line
// {"type":"person",...} followed by each of their events
// {"type":"event",...}, oldest first, from ClickHouse (the local log for
// a person not shipped yet).
func (b *Backend) ExportPerson(ctx context.Context, site, id string, w io.Writer) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	p, err := b.person(ctx, site, id)
	if errors.Is(err, store.ErrNotFound) || isUnavailable(err) && ctx.Err() == nil {
		return b.DB.ExportPerson(ctx, site, id, w)
	}
	if err != nil {
		return err
	}
	buf := append([]byte(`{"type":"person","person":`), p.AppendJSON(nil)...)
	buf = append(buf, "}\n"...)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	rel := Build("SELECT *, ? AS person FROM (?)", p.ID, eventsWhere(site, hasStr(p.DistinctIDs, "distinct_id")))
	return b.eachEvent(ctx, site, rel, func(ev *store.Event, _ string) error {
		buf = append(buf[:0], `{"type":"event","event":`...)
		buf = ev.AppendJSON(buf, p.ID)
		buf = append(buf, "}\n"...)
		_, err := w.Write(buf)
		return err
	})
}

// eventsWhere is the site's events where cond holds, each uuid once (the
// copy FINAL would keep: the highest ver), with the columns person reads
// use (the hot columns too: prop reads them). It stands for events FINAL,
// which on 18.16 reads every row of the table: the uuids cond picks (a
// scan of the few columns cond reads) bound the read of the rest.
func eventsWhere(site string, cond SQL) SQL {
	return Build(`SELECT * FROM (
	SELECT ts, seq, uuid, name, distinct_id, prop_keys, prop_vals, prop_kinds, ? FROM events
	WHERE site = ? AND uuid GLOBAL IN (SELECT uuid FROM events WHERE site = ? AND ?)
	ORDER BY uuid, ver DESC LIMIT 1 BY uuid
) WHERE ?`, hotColumns(), site, site, cond, cond)
}
