package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/firstpartyhq/firstparty/store"
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
//     uuid once, deleted persons' left out) in arrival order (evKey: each
//     node's commit order, the nodes' events by arrival time; a late event
//     with an old timestamp is placed where it came, as the one store
//     places it), and
//     applies the merge rule to them event by
//     event, as store's people does: the sender is identified first, then
//     the link joins the other id's person unless that one is identified.
//   - A person's root is its id seen first (the first event to arrive
//     naming it, as sender or as the linked id; the sender before the other
//     within one event), and its id is store.PersonID of the root, as in
//     the store.
//   - It ships a person_map row, on the resolved tier, for every id whose
//     person changed; every query maps ids through person_map (argMax of
//     ver), so the persons apply at once to every node's events.
//
// Every node resolves after it ships a link, and after a deletion. The
// rows' ver is taken before the links are read, so a resolution read later
// (which sees every link the earlier one saw: inserts are synchronous)
// wins over one read earlier, whichever node writes last. After shipping,
// only the link-graph components of the links just shipped are read and
// resolved (linkClosure; a few queries a batch that holds links); after a
// deletion, all of the site's links.

// linkEvent is one `$identify` or `$create_alias` in ClickHouse.
type linkEvent struct {
	at         evKey
	name       string
	did, other string
}

// evKey orders events by arrival, as the one store applies them in its
// commit order (SPEC §4's merge rule and a person's root depend on that
// order, not on the events' times: a late event with an old timestamp
// counts as it arrived, as the embedded store counts it). seq is the
// arrival sequence Append gives each event: its node's arrival time in µs,
// strictly increasing per node (so one node's commit order), which also
// orders the events of different nodes by when they came; ties between
// nodes go by uuid. Every node computes the same order from the same rows.
//
// Rows shipped by older releases have a seq that is their node's outbox
// position (below arrivalEpoch): they come first, by time as they were
// ordered then.
type evKey struct {
	ts   int64
	seq  uint64
	uuid string
}

// arrivalEpoch: a seq at or above it is an arrival time in µs (any time
// after 2001); below it, an older release's outbox position.
const arrivalEpoch = 1_000_000_000_000_000

func (a evKey) less(b evKey) bool {
	la, lb := a.seq < arrivalEpoch, b.seq < arrivalEpoch
	if la != lb {
		return la
	}
	if la && a.ts != b.ts {
		return a.ts < b.ts
	}
	if a.seq != b.seq {
		return a.seq < b.seq
	}
	return a.uuid < b.uuid
}

// timeLess orders by time (then seq and uuid): a person's first and
// latest events, as the store finds them (created_at, $initial_*).
func (a evKey) timeLess(b evKey) bool {
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	if a.seq != b.seq {
		return a.seq < b.seq
	}
	return a.uuid < b.uuid
}

// arrivalOrder is evKey's order in SQL.
func arrivalOrder() SQL {
	return Build("seq >= ?, if(seq >= ?, 0, ts), seq, uuid", uint64(arrivalEpoch), uint64(arrivalEpoch))
}

// seenKey orders ids by when the one store would have seen them first.
type seenKey struct {
	at  evKey
	pos int // 0: the event's sender; 1: the id it links
}

func (a seenKey) less(b seenKey) bool {
	if a.at != b.at {
		return a.at.less(b.at)
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
	// A tombstone is on the highest tier: once written it wins.
	rows, err := b.client().Query(ctx, Build("SELECT DISTINCT distinct_id FROM person_map WHERE site = ? AND deleted = 1", site))
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
func (b *Backend) links(ctx context.Context, site string, deleted map[string]bool, scope []string) ([]linkEvent, error) {
	in := SQL("1")
	if scope != nil {
		in = Build("(? OR ?)", hasStr(scope, "distinct_id"), hasStr(scope, "other"))
	}
	rows, err := b.client().Query(ctx, Build(`SELECT ts, seq, uuid, name, distinct_id, if(name = '$identify', ?, ?) AS other FROM events FINAL
WHERE site = ? AND (name = '$identify' OR name = '$create_alias') AND ? ORDER BY ?`, prop("$anon_distinct_id"), prop("alias"), site, in, arrivalOrder()))
	if err != nil {
		return nil, err
	}
	out := make([]linkEvent, 0, len(rows))
	seen := map[string]bool{}
	for _, r := range rows {
		l := linkEvent{at: evKey{asInt(r[0]), asUint(r[1]), asStr(r[2])}, name: asStr(r[3]), did: asStr(r[4]), other: asStr(r[5])}
		if seen[l.at.uuid] {
			continue // a resent copy on another day (a second row): the first counts
		}
		seen[l.at.uuid] = true
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

// resolvePersons computes the persons of two or more ids from ClickHouse:
// every person, or (scope not nil) those of the link graph's components
// that hold the ids of scope, which linkClosure returned.
func (b *Backend) resolvePersons(ctx context.Context, site string, deleted map[string]bool, scope []string) (resolved, error) {
	res := resolved{person: map[string]string{}, ids: map[string][]string{}}
	ls, err := b.links(ctx, site, deleted, scope)
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
		see(l.did, seenKey{l.at, 0})
		see(l.other, seenKey{l.at, 1})
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
	// The first event of each id as a sender of any event (a few
	// thousand ids a query, which stays well under max_query_size).
	for start := 0; start < len(multi); start += idsPerQuery {
		part := multi[start:min(start+idsPerQuery, len(multi))]
		rows, err := b.client().Query(ctx, Build(`SELECT distinct_id, ts, seq, uuid FROM events FINAL WHERE site = ? AND ?
ORDER BY distinct_id, ? LIMIT 1 BY distinct_id`, site, hasStr(part, "distinct_id"), arrivalOrder()))
		if err != nil {
			return res, err
		}
		for _, r := range rows {
			see(asStr(r[0]), seenKey{evKey{asInt(r[1]), asUint(r[2]), asStr(r[3])}, 0})
		}
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

// idsPerQuery is how many distinct ids one query lists.
const idsPerQuery = 2000

// linkClosure returns ids with every id the link events join them to,
// directly or not (refused links included: they make their sender
// identified, which decides later links). The merge rule's outcome for a
// link depends only on the links of its component, so resolving these
// components alone gives what resolving all would. ok is false when the
// components are too large to list in a query (then resolve all).
func (b *Backend) linkClosure(ctx context.Context, site string, ids []string) (closure []string, ok bool, err error) {
	in := map[string]bool{}
	var frontier []string
	for _, d := range ids {
		if d != "" && !in[d] {
			in[d] = true
			frontier = append(frontier, d)
		}
	}
	for len(frontier) > 0 {
		if len(in) > idsPerQuery {
			return nil, false, nil
		}
		rows, err := b.client().Query(ctx, Build(`SELECT DISTINCT distinct_id, if(name = '$identify', ?, ?) AS other FROM events FINAL
WHERE site = ? AND (name = '$identify' OR name = '$create_alias') AND (? OR ?)`,
			prop("$anon_distinct_id"), prop("alias"), site, hasStr(frontier, "distinct_id"), hasStr(frontier, "other")))
		if err != nil {
			return nil, false, err
		}
		frontier = nil
		for _, r := range rows {
			for _, d := range []string{asStr(r[0]), asStr(r[1])} {
				if d != "" && !in[d] {
					in[d] = true
					frontier = append(frontier, d)
				}
			}
		}
	}
	closure = make([]string, 0, len(in))
	for d := range in {
		closure = append(closure, d)
	}
	sort.Strings(closure)
	return closure, true, nil
}

// resolve ships the persons of the site as resolvePersons finds them: a
// row for every id whose person in person_map differs. With ids (those of
// the links just shipped), only the components that hold them are read
// and resolved; without, all.
func (b *Backend) resolve(ctx context.Context, site string, ids ...string) error {
	ver := b.nextVer(tierResolved) // before the read: see the comment at the top
	deleted, err := b.deletedIDs(ctx, site)
	if err != nil {
		return err
	}
	var scope []string
	if len(ids) > 0 {
		closure, ok, err := b.linkClosure(ctx, site, ids)
		if err != nil {
			return err
		}
		if ok {
			scope = closure
		}
	}
	res, err := b.resolvePersons(ctx, site, deleted, scope)
	if err != nil {
		return err
	}
	// The ids whose mapping is more than an id alone.
	in := SQL("1")
	if scope != nil {
		in = hasStr(scope, "distinct_id")
	}
	rows, err := b.client().Query(ctx, Build(`SELECT distinct_id, argMax(person, ver) FROM person_map WHERE site = ? AND ?
GROUP BY distinct_id HAVING max(ver) >= ? AND argMax(deleted, ver) = 0`, site, in, tierMerged<<56))
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
	if err := b.deleteRecordings(ctx, site, ids); err != nil {
		return err
	}
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
// seen (all of them after a start; deleting again finds nothing), and
// their recordings, which no longer ship from here
// (recordingsDeletedElsewhere).
func (b *Backend) syncDeletions(ctx context.Context) error {
	rows, err := b.client().Query(ctx, Build(`SELECT site, distinct_id, max(ver) FROM person_map WHERE deleted = 1 AND ver > ?
GROUP BY site, distinct_id`, b.tombVer))
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
		// Recordings first: they are found by the persons' ids in the log.
		if err := b.recordingsDeletedElsewhere(ctx, site, ids); err != nil {
			return err
		}
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

// hasStr is "col is one of vals" (false for none).
func hasStr(vals []string, col SQL) SQL {
	if len(vals) == 0 {
		return "0"
	}
	// IN over a tuple is a set look-up; has() of an array literal scans
	// the array for every row.
	qs := make([]SQL, len(vals))
	for i, v := range vals {
		qs[i] = Quote(v)
	}
	return Build("? IN (?)", col, Join(qs, ", "))
}
