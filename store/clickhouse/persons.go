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

// Persons across nodes.
//
// Each node's local log makes its own persons from the events it saw, so
// two nodes that each saw half of a person's links disagree, and a merge
// one node allowed may be one the merge rule (SPEC §4) refuses once the
// other node's links are counted. ClickHouse holds every node's link
// events, so the persons are resolved there, from all of them, the way one
// embedded store fed every event would make them:
//
//   - resolve reads the site's `$identify` and `$create_alias` events (each
//     uuid once, deleted persons' left out) in time order (ties by uuid:
//     time stands in for the one store's commit order, which several
//     nodes do not share), and applies the merge rule to them event by
//     event, as store's people does: the sender is identified first, then
//     the link joins the other id's person unless that one is identified.
//   - A person's root is its id seen first (the earliest event naming it,
//     as sender or as the linked id; the sender before the other within one
//     event), and its id is store.PersonID of the root, as in the store.
//   - It ships a person_map row, on the resolved tier, for every id whose
//     person changed; every query maps ids through person_map (argMax of
//     ver), so the persons apply at once to every node's events.
//
// Every node resolves after it ships a link, and after a deletion. The
// rows' ver is taken before the links are read, so a resolution read later
// (which sees every link the earlier one saw: inserts are synchronous)
// wins over one read earlier, whichever node writes last. The cost is one
// read of the site's link events per shipped batch that holds a link.

// linkEvent is one `$identify` or `$create_alias` in ClickHouse.
type linkEvent struct {
	ts         int64
	uuid       string
	name       string
	did, other string
}

// seenKey orders ids by when the one store would have seen them first.
type seenKey struct {
	ts   int64
	uuid string
	pos  int // 0: the event's sender; 1: the id it links
}

func (a seenKey) less(b seenKey) bool {
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	if a.uuid != b.uuid {
		return a.uuid < b.uuid
	}
	return a.pos < b.pos
}

// union is the merge rule over distinct ids (store's people, by string).
type union struct {
	lead       map[string]string
	members    map[string][]string // by leader
	identified map[string]bool     // by leader
}

func newUnion() *union {
	return &union{lead: map[string]string{}, members: map[string][]string{}, identified: map[string]bool{}}
}

func (u *union) find(d string) string {
	if l, ok := u.lead[d]; ok {
		return l
	}
	u.lead[d] = d
	u.members[d] = []string{d}
	return d
}

// apply applies one link event; it reports whether the rule refused it.
func (u *union) apply(l linkEvent) bool {
	ld := u.find(l.did)
	u.identified[ld] = true
	if l.other == "" || l.other == l.did {
		return false
	}
	lo := u.find(l.other)
	switch {
	case lo == ld:
		return false
	case u.identified[lo]:
		return true
	}
	big, small := ld, lo
	if len(u.members[small]) > len(u.members[big]) {
		big, small = small, big
	}
	for _, m := range u.members[small] {
		u.lead[m] = big
	}
	u.members[big] = append(u.members[big], u.members[small]...)
	delete(u.members, small)
	u.identified[big] = u.identified[ld] || u.identified[lo]
	delete(u.identified, small)
	return false
}

// deletedIDs returns the site's distinct ids whose person was deleted.
func (b *Backend) deletedIDs(ctx context.Context, site string) (map[string]bool, error) {
	rows, err := b.client().Query(ctx, Build("SELECT distinct_id FROM person_map WHERE site = ? GROUP BY distinct_id HAVING argMax(deleted, ver) = 1", site))
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(rows))
	for _, r := range rows {
		out[asStr(r[0])] = true
	}
	return out, nil
}

// links returns the site's link events in time order, those of deleted
// persons left out and deleted ids stripped from the others (as the store
// strips them from refused links).
func (b *Backend) links(ctx context.Context, site string, deleted map[string]bool) ([]linkEvent, error) {
	rows, err := b.client().Query(ctx, Build(`SELECT ts, uuid, name, distinct_id, if(name = '$identify', ?, ?) FROM events FINAL
WHERE site = ? AND (name = '$identify' OR name = '$create_alias') ORDER BY ts, uuid`, prop("$anon_distinct_id"), prop("alias"), site))
	if err != nil {
		return nil, err
	}
	out := make([]linkEvent, 0, len(rows))
	for _, r := range rows {
		l := linkEvent{ts: asInt(r[0]), uuid: asStr(r[1]), name: asStr(r[2]), did: asStr(r[3]), other: asStr(r[4])}
		if deleted[l.did] {
			continue
		}
		if deleted[l.other] {
			l.other = ""
		}
		out = append(out, l)
	}
	return out, nil
}

// resolved is the site's persons of more than one id.
type resolved struct {
	person map[string]string   // distinct id -> person id
	ids    map[string][]string // person id -> its ids, in the order first seen
}

// resolvePersons computes the persons of two or more ids from ClickHouse.
func (b *Backend) resolvePersons(ctx context.Context, site string, deleted map[string]bool) (resolved, error) {
	res := resolved{person: map[string]string{}, ids: map[string][]string{}}
	ls, err := b.links(ctx, site, deleted)
	if err != nil {
		return res, err
	}
	u := newUnion()
	seen := map[string]seenKey{}
	see := func(d string, k seenKey) {
		if d == "" {
			return
		}
		if old, ok := seen[d]; !ok || k.less(old) {
			seen[d] = k
		}
	}
	for _, l := range ls {
		u.apply(l)
		see(l.did, seenKey{l.ts, l.uuid, 0})
		see(l.other, seenKey{l.ts, l.uuid, 1})
	}
	var multi []string
	for _, ms := range u.members {
		if len(ms) > 1 {
			multi = append(multi, ms...)
		}
	}
	if len(multi) == 0 {
		return res, nil
	}
	// The first event of each id as a sender of any event.
	rows, err := b.client().Query(ctx, Build(`SELECT distinct_id, ts, uuid FROM events FINAL WHERE site = ? AND has(?, distinct_id)
ORDER BY distinct_id, ts, uuid LIMIT 1 BY distinct_id`, site, multi))
	if err != nil {
		return res, err
	}
	for _, r := range rows {
		see(asStr(r[0]), seenKey{asInt(r[1]), asStr(r[2]), 0})
	}
	for _, ms := range u.members {
		if len(ms) < 2 {
			continue
		}
		ordered := append([]string(nil), ms...)
		sortBySeen(ordered, seen)
		id := store.PersonID(site, ordered[0])
		res.ids[id] = ordered
		for _, m := range ordered {
			res.person[m] = id
		}
	}
	return res, nil
}

func sortBySeen(ids []string, seen map[string]seenKey) {
	// Insertion sort: persons have few ids.
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0; j-- {
			a, b := seen[ids[j]], seen[ids[j-1]]
			if !(a.less(b) || a == b && ids[j] < ids[j-1]) {
				break
			}
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
}

// resolve ships the persons of the site as resolvePersons finds them: a
// row for every id whose person in person_map differs.
func (b *Backend) resolve(ctx context.Context, site string) error {
	ver := b.nextVer(tierResolved) // before the read: see the comment at the top
	deleted, err := b.deletedIDs(ctx, site)
	if err != nil {
		return err
	}
	res, err := b.resolvePersons(ctx, site, deleted)
	if err != nil {
		return err
	}
	// The ids whose mapping is more than an id alone.
	rows, err := b.client().Query(ctx, Build(`SELECT distinct_id, argMax(person, ver) FROM person_map WHERE site = ?
GROUP BY distinct_id HAVING max(ver) >= ? AND argMax(deleted, ver) = 0`, site, tierMerged<<56))
	if err != nil {
		return err
	}
	current := make(map[string]string, len(rows))
	for _, r := range rows {
		current[asStr(r[0])] = asStr(r[1])
	}
	var out []byte
	put := func(d, person string) {
		j, _ := json.Marshal(personRow{Site: site, DistinctID: d, Person: person, Ver: ver})
		out = append(append(out, j...), '\n')
	}
	for d, p := range current {
		if want, ok := res.person[d]; ok {
			if want != p {
				put(d, want)
			}
		} else if alone := store.PersonID(site, d); p != alone {
			put(d, alone)
		}
	}
	for d, p := range res.person {
		if _, ok := current[d]; !ok && !deleted[d] {
			put(d, p)
		}
	}
	if len(out) == 0 {
		return nil
	}
	if err := b.client().InsertJSON(ctx, "person_map", out); err != nil {
		return err
	}
	b.rememberPersons(out)
	return nil
}

// rememberPersons notes the person rows shipped.
func (b *Backend) rememberPersons(rows []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, line := range strings.Split(strings.TrimSpace(string(rows)), "\n") {
		var p personRow
		if json.Unmarshal([]byte(line), &p) == nil && p.Site != "" {
			b.persons[p.Site+"\x00"+p.DistinctID] = p.Person
		}
	}
}

// personIDs returns the person id that id names in ClickHouse and its
// distinct ids (not deleted): id is a person id, a distinct id, or an id
// the person had before a merge (found through the local log).
func (b *Backend) personIDs(ctx context.Context, site, id string) (string, []string, error) {
	members := func(person string) ([]string, error) {
		rows, err := b.client().Query(ctx, Build(`SELECT distinct_id FROM person_map WHERE site = ? GROUP BY distinct_id
HAVING argMax(person, ver) = ? AND argMax(deleted, ver) = 0 ORDER BY distinct_id`, site, person))
		if err != nil {
			return nil, err
		}
		out := make([]string, len(rows))
		for i, r := range rows {
			out[i] = asStr(r[0])
		}
		return out, nil
	}
	ids, err := members(id)
	if err != nil || len(ids) > 0 {
		return id, ids, err
	}
	cands := []string{id}
	if p, err := b.DB.Person(ctx, site, id); err == nil {
		cands = append(cands, p.DistinctIDs...)
	}
	for _, d := range cands {
		rows, err := b.client().Query(ctx, Build(`SELECT argMax(person, ver), argMax(deleted, ver) FROM person_map WHERE site = ? AND distinct_id = ?`, site, d))
		if err != nil {
			return "", nil, err
		}
		if len(rows) == 1 && asStr(rows[0][0]) != "" && asInt(rows[0][1]) == 0 {
			p := asStr(rows[0][0])
			ids, err := members(p)
			return p, ids, err
		}
	}
	return "", nil, nil
}

// DeletePerson deletes the person in ClickHouse first (a tombstone for
// each of its ids, which every query honours at once, and a mutation that
// removes the rows on every shard), then in the local log; every other
// node deletes it from its own log when it sees the tombstones
// (syncDeletions). A person whose ids this node never shipped is deleted
// from the local log alone.
func (b *Backend) DeletePerson(ctx context.Context, site, id string) error {
	if !b.schemaOK {
		if err := b.ensureSchema(ctx); err != nil {
			return err
		}
	}
	person, ids, err := b.personIDs(ctx, site, id)
	if err != nil {
		return err
	}
	if p, err := b.DB.Person(ctx, site, id); err == nil {
		ids = append(ids, p.DistinctIDs...) // those not shipped yet
	}
	if len(ids) == 0 {
		return store.ErrNotFound
	}
	ids = uniq(ids)
	if person == "" {
		person = store.PersonID(site, ids[0])
	}
	var tomb []byte
	ver := b.nextVer(tierDeleted)
	for _, d := range ids {
		j, _ := json.Marshal(personRow{Site: site, DistinctID: d, Person: person, Deleted: 1, Ver: ver})
		tomb = append(append(tomb, j...), '\n')
	}
	if err := b.client().InsertJSON(ctx, "person_map", tomb); err != nil {
		return err
	}
	b.mu.Lock()
	for _, d := range ids {
		delete(b.persons, site+"\x00"+d)
		b.deleted[site+"\x00"+d] = true
	}
	b.mu.Unlock()
	b.purge(ctx, site, ids)
	if err := b.deleteLocal(ctx, site, ids); err != nil {
		return err
	}
	// The remaining links are resolved again (a link the deleted person
	// took part in may have been refused before).
	return b.resolve(ctx, site)
}

// purge removes the rows of ids from every shard (a mutation: the
// tombstones already hide them).
func (b *Backend) purge(ctx context.Context, site string, ids []string) {
	local := Ident("events")
	if b.opts.Cluster != "" {
		local = Ident("events_local")
	}
	for _, c := range b.servers {
		if err := c.Exec(ctx, Build("ALTER TABLE ? DELETE WHERE site = ? AND has(?, distinct_id)", local, site, ids)); err != nil {
			b.noteErr(err)
		}
	}
}

// deleteLocal deletes from the local log every person that holds one of
// ids.
func (b *Backend) deleteLocal(ctx context.Context, site string, ids []string) error {
	for _, d := range ids {
		err := b.DB.DeletePerson(ctx, site, d)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// syncDeletions deletes from the local log the persons another node
// deleted since the last call: their ids' tombstones newer than the last
// seen (all of them after a start; deleting again finds nothing).
func (b *Backend) syncDeletions(ctx context.Context) error {
	rows, err := b.client().Query(ctx, Build(`SELECT site, distinct_id, max(ver) FROM person_map GROUP BY site, distinct_id
HAVING argMax(deleted, ver) = 1 AND max(ver) > ?`, b.tombVer))
	if err != nil {
		return err
	}
	bySite := map[string][]string{}
	top := b.tombVer
	for _, r := range rows {
		site, d := asStr(r[0]), asStr(r[1])
		v, _ := strconv.ParseUint(asStr(r[2]), 10, 64)
		top = max(top, v)
		bySite[site] = append(bySite[site], d)
		b.mu.Lock()
		delete(b.persons, site+"\x00"+d)
		b.deleted[site+"\x00"+d] = true
		b.mu.Unlock()
	}
	for site, ids := range bySite {
		if err := b.deleteLocal(ctx, site, ids); err != nil {
			return err
		}
	}
	b.tombVer = top
	return nil
}

func uniq(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, d := range ids {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// Reading persons. A person is what resolvePersons makes of every node's
// links (its ids, in the order first seen) with the events person_map
// maps to it: created at its first event; properties derived from its
// first and latest events (store.DerivedPersonProps) and its own, from
// `$set`, `$set_once` and `$unset` applied in time order, two persons'
// own properties joined at their link as the store joins them (the
// sender's win). Time order stands in for commit order, as in resolve.

// allTime is the query of every event of a site, bots included, as the
// store's persons count them.
func allTime(site string) store.Query {
	return store.Query{Site: site, From: time.UnixMilli(-1 << 50), To: time.UnixMilli(1 << 50), IncludeBots: true}
}

// personRef is a person as base names it, with its creation time and one
// of its ids.
type personRef struct {
	person  string
	created int64
	did     string
}

func (r personRef) id(site string) string { return personOf(site, r.did, r.person) }

// personRefs returns the persons of base (all time) that pass cond (on
// the grouped rows), with extra appended to the query (ORDER BY, LIMIT).
func (b *Backend) personRefs(ctx context.Context, site string, having, extra SQL) ([]personRef, error) {
	base, err := b.base(ctx, allTime(site))
	if err != nil {
		return nil, err
	}
	rows, err := b.client().Query(ctx, Build("SELECT person, min(ts) AS c, any(distinct_id) FROM (?) GROUP BY person HAVING ? ?", base, having, extra))
	if err != nil {
		return nil, err
	}
	out := make([]personRef, len(rows))
	for i, r := range rows {
		out[i] = personRef{asStr(r[0]), asInt(r[1]), asStr(r[2])}
	}
	return out, nil
}

// people returns the persons refs name, by their base name.
func (b *Backend) people(ctx context.Context, site string, res resolved, refs []personRef) (map[string]*store.Person, error) {
	out := make(map[string]*store.Person, len(refs))
	if len(refs) == 0 {
		return out, nil
	}
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.person
	}
	derived := store.DerivedPersonProps()
	cols := []SQL{"person", "groupUniqArray(distinct_id)"}
	for _, k := range derived {
		cols = append(cols, Build("argMin(?, (ts, seq, uuid))", prop(k)), Build("argMax(?, (ts, seq, uuid))", prop(k)))
	}
	base, err := b.base(ctx, allTime(site))
	if err != nil {
		return nil, err
	}
	rows, err := b.client().Query(ctx, Build("SELECT ? FROM (?) WHERE ? GROUP BY person", Join(cols, ", "), base, hasStr(names, "person")))
	if err != nil {
		return nil, err
	}
	byName := map[string]personRef{}
	for _, r := range refs {
		byName[r.person] = r
	}
	owner := map[string]string{} // distinct id -> person name
	var all []string
	for _, r := range rows {
		ref := byName[asStr(r[0])]
		p := &store.Person{ID: ref.id(site), CreatedAt: ref.created}
		if ids, ok := res.ids[p.ID]; ok {
			p.DistinctIDs = ids
		} else {
			json.Unmarshal(r[1], &p.DistinctIDs)
			sort.Strings(p.DistinctIDs)
		}
		for i, k := range derived {
			if v := asStr(r[2+2*i]); v != "" {
				p.Properties = append(p.Properties, store.Prop{Key: "$initial_" + k, Val: store.StringValue(v)})
			}
			if v := asStr(r[3+2*i]); v != "" {
				p.Properties = append(p.Properties, store.Prop{Key: k, Val: store.StringValue(v)})
			}
		}
		out[ref.person] = p
		for _, d := range p.DistinctIDs {
			owner[d] = ref.person
			all = append(all, d)
		}
	}
	own, err := b.ownProps(ctx, site, all, owner)
	if err != nil {
		return nil, err
	}
	for name, p := range out {
		for _, pr := range own[name] {
			p.Properties.Set(pr.Key, pr.Val)
		}
	}
	return out, nil
}

// ownProps replays the `$set`, `$set_once`, `$unset` and links of the
// events of ids, in time order, into each person's own properties (by
// the person name owner gives each id).
func (b *Backend) ownProps(ctx context.Context, site string, ids []string, owner map[string]string) (map[string]store.Props, error) {
	val := func(k string) SQL { return Build("(?, prop_kinds[indexOf(prop_keys, ?)])", prop(k), k) }
	rows, err := b.client().Query(ctx, Build(`SELECT distinct_id, name, if(name = '$identify', ?, ?), ?, ?, ? FROM events FINAL
WHERE site = ? AND ? AND (name = '$identify' OR name = '$create_alias' OR hasAny(prop_keys, ['$set', '$set_once', '$unset']))
ORDER BY ts, seq, uuid`, prop("$anon_distinct_id"), prop("alias"), val("$set"), val("$set_once"), val("$unset"), site, hasStr(ids, "distinct_id")))
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
		d, name, other := asStr(r[0]), asStr(r[1]), asStr(r[2])
		if (name == "$identify" || name == "$create_alias") && other != "" && owner[other] == owner[d] {
			if lk, lo := find(d), find(other); lk != lo {
				merged := props[lk]
				for _, pr := range props[lo] {
					merged.SetIfMissing(pr.Key, pr.Val)
				}
				for m, l := range lead {
					if l == lo {
						lead[m] = lk
					}
				}
				lead[lo], lead[other] = lk, lk
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
	out := map[string]store.Props{}
	for l, ps := range props {
		name := owner[l]
		merged := out[name]
		if merged == nil {
			merged = ps
		} else {
			for _, pr := range ps {
				merged.SetIfMissing(pr.Key, pr.Val)
			}
		}
		out[name] = merged
	}
	return out, nil
}

// findPerson returns the ClickHouse name (person_map's person, or the
// distinct id of an id not mapped) of the person id names: a person id,
// one of its distinct ids, or an id it had before a merge; "" when
// ClickHouse has no such person.
func (b *Backend) findPerson(ctx context.Context, site, id string, res resolved) (string, error) {
	if _, ok := res.ids[id]; ok {
		return id, nil
	}
	if p, ok := res.person[id]; ok {
		return p, nil
	}
	for d, p := range res.person {
		if store.PersonID(site, d) == id {
			return p, nil
		}
	}
	rows, err := b.client().Query(ctx, Build(`SELECT argMax(person, ver) AS p FROM person_map WHERE site = ?
GROUP BY distinct_id HAVING argMax(deleted, ver) = 0 AND (distinct_id = ? OR p = ?) LIMIT 1`, site, id, id))
	if err != nil || len(rows) == 0 {
		return "", err
	}
	return asStr(rows[0][0]), nil
}

// person returns the person id names, from ClickHouse.
func (b *Backend) person(ctx context.Context, site, id string) (*store.Person, error) {
	deleted, err := b.deletedIDs(ctx, site)
	if err != nil {
		return nil, err
	}
	res, err := b.resolvePersons(ctx, site, deleted)
	if err != nil {
		return nil, err
	}
	name, err := b.findPerson(ctx, site, id, res)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, store.ErrNotFound
	}
	refs, err := b.personRefs(ctx, site, Build("person = ?", name), "")
	if err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return nil, store.ErrNotFound
	}
	ps, err := b.people(ctx, site, res, refs)
	if err != nil {
		return nil, err
	}
	p := ps[name]
	if p == nil {
		return nil, store.ErrNotFound
	}
	return p, nil
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
	if errors.Is(err, store.ErrNotFound) {
		return b.DB.Person(ctx, site, id)
	}
	return p, err
}

// ready creates the tables if shipping has not yet.
func (b *Backend) ready(ctx context.Context) error {
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
	deleted, err := b.deletedIDs(ctx, q.Site)
	if err != nil {
		return page, err
	}
	res, err := b.resolvePersons(ctx, q.Site, deleted)
	if err != nil {
		return page, err
	}
	after := func(r personRef) bool {
		return q.Cursor == "" || r.created < curCreated || r.created == curCreated && r.id(q.Site) < curID
	}
	var refs []personRef
	var ps map[string]*store.Person
	if q.Search == "" {
		total, err := b.personRefs(ctx, q.Site, "1", "")
		if err != nil {
			return page, err
		}
		page.Total = len(total)
		cur := SQL("1")
		if q.Cursor != "" {
			cur = Build("(c < ? OR c = ? AND person < ?)", curCreated, curCreated, curID)
		}
		if refs, err = b.personRefs(ctx, q.Site, cur, Build("ORDER BY c DESC, person DESC LIMIT ?", q.Limit+1)); err != nil {
			return page, err
		}
		if ps, err = b.people(ctx, q.Site, res, refs); err != nil {
			return page, err
		}
	} else {
		s := strings.ToLower(q.Search)
		keys := append(store.DerivedPersonProps(), "$set", "$set_once")
		hit := Build("position(lowerUTF8(distinct_id), ?) > 0 OR arrayExists((k, v) -> has(?, k) AND position(lowerUTF8(v), ?) > 0, prop_keys, prop_vals)", s, keys, s)
		named := []string{} // persons with an id that only a link names
		for d, p := range res.person {
			if strings.Contains(strings.ToLower(d), s) {
				named = append(named, p)
			}
		}
		cands, err := b.personRefs(ctx, q.Site, Build("max(?) = 1 OR ?", hit, hasStr(named, "person")), "")
		if err != nil {
			return page, err
		}
		if ps, err = b.people(ctx, q.Site, res, cands); err != nil {
			return page, err
		}
		for _, r := range cands {
			p := ps[r.person]
			if p != nil && personMatches(p, s) {
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
		kept := refs[:0]
		for _, r := range refs {
			if after(r) {
				kept = append(kept, r)
			}
		}
		refs = kept
	}
	if len(refs) > q.Limit {
		last := refs[q.Limit-1]
		page.Next = strconv.FormatInt(last.created, 10) + "." + last.id(q.Site)
		refs = refs[:q.Limit]
	}
	page.Results = make([]store.Person, 0, len(refs))
	for _, r := range refs {
		if p := ps[r.person]; p != nil {
			page.Results = append(page.Results, *p)
		}
	}
	return page, nil
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
	if errors.Is(err, store.ErrNotFound) {
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
	base, err := b.base(ctx, allTime(site))
	if err != nil {
		return err
	}
	name, err := b.findPerson(ctx, site, p.ID, resolved{})
	if err != nil {
		return err
	}
	if name == "" {
		name = p.ID
	}
	return b.eachEvent(ctx, site, Build("SELECT * FROM (?) WHERE person = ? OR person = distinct_id AND ?", base, name, hasStr(p.DistinctIDs, "distinct_id")), func(ev *store.Event, _ string) error {
		buf = append(buf[:0], `{"type":"event","event":`...)
		buf = ev.AppendJSON(buf, p.ID)
		buf = append(buf, "}\n"...)
		_, err := w.Write(buf)
		return err
	})
}

// hasStr is "col is one of vals" (false for none: has() of an empty
// array literal fails on its type).
func hasStr(vals []string, col SQL) SQL {
	if len(vals) == 0 {
		return "0"
	}
	return Build("has(?, ?)", vals, col)
}
