package store

import (
	"crypto/sha256"
	"slices"
	"strings"
	"sync"

	"github.com/tidwall/gjson"
)

// people is the person state of a site, derived entirely from its events:
// `$identify` and `$create_alias` link distinct ids into persons,
// `$set`/`$set_once`/`$unset` shape their properties. Nothing of it is
// stored separately, so it can never disagree with the events, and deleting
// a person's events deletes the person.
//
// Each person has a leader, one of its ids, that holds the list of its ids;
// every id points straight at its leader, so finding a person is two array
// reads and listing or forgetting one is linear in its ids. A merge moves
// the ids of the smaller person to the larger one's leader, so an id moves
// O(log n) times over a site's life, whatever order the links come in.
//
// The root of a person, which names it, is its smallest distinct-id code,
// i.e. the id seen first; codes are assigned in commit order both live and
// when the log is replayed, so roots are the same after a restart.
//
// The merge rule (SPEC §4, PostHog's): a link never joins two identified
// persons. A person is identified once one of its ids was the distinct id
// of an `$identify` or a `$create_alias`. The rule is evaluated event by
// event in commit order, the order in which rows are added both live and on
// replay, so a restart gives the same persons as live ingestion did. An
// event identifies its own sender before its link is considered, so a link
// is refused exactly when the other id's person is already identified
// (PostHog's `$identify`/`$create_alias` check on the other person): an
// attacker's `$create_alias` from a fresh id onto a known user is refused,
// while a login (`$identify` with the anonymous id of the device) or an
// alias of an anonymous id still merges. The refused event itself is kept,
// as an event of its sender.
type people struct {
	// lead[d] is the leader of d's person; d itself when d is alone.
	lead []uint32
	// root[l] and identified[l], for a leader l, are its person's root and
	// whether it is identified; meaningless for other ids.
	root       []uint32
	identified []bool
	// group lists the ids of each person of two or more, by leader.
	group map[uint32][]uint32
	props map[uint32]Props // by root

	// refused are the link events the rule refused: their row and the id
	// they named. Deleting the person of that id strips the id from them
	// (DeletePerson), since a replay without that person would accept them.
	refused []refusal
	// nRefused counts refusals since the table was made.
	nRefused int
	// gen counts the changes of existing ids' persons (links and
	// deletions), which a copy of the roots must be made again after.
	gen uint64

	// ids maps a person id (derived from any of its distinct ids) back to
	// the distinct id, built lazily for look-ups by id.
	idsMu   sync.Mutex
	ids     map[UUIDKey]uint32
	idsUpTo int
}

// refusal is a link event the merge rule refused.
type refusal struct {
	row   int
	other uint32
}

func (p *people) init() {
	p.lead = []uint32{0}
	p.root = []uint32{0}
	p.identified = []bool{false}
	p.group = make(map[uint32][]uint32)
	p.props = make(map[uint32]Props)
}

func (p *people) grow(n int) {
	for len(p.lead) < n {
		d := uint32(len(p.lead))
		p.lead = append(p.lead, d)
		p.root = append(p.root, d)
		p.identified = append(p.identified, false)
	}
}

// rootOf returns the root of d's person.
func (p *people) rootOf(d uint32) uint32 {
	if int(d) >= len(p.lead) {
		return d
	}
	return p.root[p.lead[d]]
}

// roots returns the root of every distinct-id code.
func (p *people) roots() []uint32 {
	out := make([]uint32, len(p.lead))
	for d, l := range p.lead {
		out[d] = p.root[l]
	}
	return out
}

// size returns the number of ids of the person led by l.
func (p *people) size(l uint32) int {
	if g := p.group[l]; g != nil {
		return len(g)
	}
	return 1
}

// link joins the persons of keep and other. When both have a property,
// keep's value wins (the identified person's properties are kept).
func (p *people) link(keep, other uint32) {
	lk, lo := p.lead[keep], p.lead[other]
	if lk == lo {
		return
	}
	p.gen++
	rk, ro := p.root[lk], p.root[lo]
	merged := p.props[rk]
	for _, pr := range p.props[ro] {
		merged.SetIfMissing(pr.Key, pr.Val)
	}
	big, small := lk, lo
	if p.size(small) > p.size(big) {
		big, small = small, big
	}
	moved := p.group[small]
	if moved == nil {
		moved = []uint32{small}
	}
	for _, d := range moved {
		p.lead[d] = big
	}
	g := p.group[big]
	if g == nil {
		g = []uint32{big}
	}
	p.group[big] = append(g, moved...)
	delete(p.group, small)
	p.identified[big] = p.identified[lk] || p.identified[lo]
	root := min(rk, ro)
	p.root[big] = root
	delete(p.props, rk)
	delete(p.props, ro)
	if len(merged) > 0 {
		p.props[root] = merged
	}
}

// apply processes the person effects of the event ev, stored at row, whose
// distinct id has code d; a refused link is counted in nRefused.
func (p *people) apply(dids *dict, d uint32, ev *Event, row int) {
	p.grow(dids.size())
	if ev.Name == "$identify" || ev.Name == "$create_alias" {
		// The event identifies its sender first; see the type's comment.
		p.identified[p.lead[d]] = true
		other := ev.Props.Str("alias")
		if ev.Name == "$identify" {
			other = ev.Props.Str("$anon_distinct_id")
		}
		if other != "" && other != ev.DistinctID {
			o := dids.code(other)
			p.grow(dids.size())
			switch {
			case p.lead[o] == p.lead[d]:
			case p.identified[p.lead[o]]:
				p.refused = append(p.refused, refusal{row, o})
				p.nRefused++
			default:
				p.link(d, o)
			}
		}
	}
	set, hasSet := ev.Props.Get("$set")
	once, hasOnce := ev.Props.Get("$set_once")
	unset, hasUnset := ev.Props.Get("$unset")
	if !hasSet && !hasOnce && !hasUnset {
		return
	}
	r := p.rootOf(d)
	props := p.props[r]
	if hasSet && set.Kind == KindJSON {
		forJSONObject(set.S, func(k string, v Value) { props.Set(strings.Clone(k), v.clone()) })
	}
	if hasOnce && once.Kind == KindJSON {
		forJSONObject(once.S, func(k string, v Value) { props.SetIfMissing(strings.Clone(k), v.clone()) })
	}
	if hasUnset && unset.Kind == KindJSON {
		gjson.Parse(unset.S).ForEach(func(_, v gjson.Result) bool {
			props.Delete(v.String())
			return true
		})
	}
	if len(props) > 0 {
		p.props[r] = props
	} else {
		delete(p.props, r)
	}
}

// members returns the distinct-id codes of d's person, in no particular
// order; the slice is the person's own and must not be changed.
func (p *people) members(d uint32) []uint32 {
	if int(d) >= len(p.lead) {
		return nil
	}
	l := p.lead[d]
	if g := p.group[l]; g != nil {
		return g
	}
	return []uint32{l}
}

// dropRefusals forgets the refusals of the rows drop says, once their
// events no longer name the other id.
func (p *people) dropRefusals(drop func(row int) bool) {
	p.refused = slices.DeleteFunc(p.refused, func(rf refusal) bool { return drop(rf.row) })
}

// forget detaches every distinct id of d's person and drops its properties
// and its identification, as a replay without its events would have them,
// and drops the refusals that named it (their events no longer name it).
func (p *people) forget(d uint32) {
	p.gen++
	l := p.lead[d]
	keep := p.refused[:0]
	for _, rf := range p.refused {
		if p.lead[rf.other] != l {
			keep = append(keep, rf)
		}
	}
	p.refused = keep
	delete(p.props, p.root[l])
	for _, m := range p.members(d) {
		p.lead[m] = m
		p.root[m] = m
		p.identified[m] = false
	}
	delete(p.group, l)
}

// lookupID returns the distinct-id code whose derived person id is id.
func (p *people) lookupID(site string, dids *dict, id UUIDKey) (uint32, bool) {
	p.idsMu.Lock()
	defer p.idsMu.Unlock()
	if p.ids == nil {
		p.ids = make(map[UUIDKey]uint32)
	}
	for ; p.idsUpTo < dids.size(); p.idsUpTo++ {
		if p.idsUpTo == 0 {
			continue
		}
		p.ids[personKey(site, dids.str(uint32(p.idsUpTo)))] = uint32(p.idsUpTo)
	}
	d, ok := p.ids[id]
	return d, ok
}

// personKey derives the id of the person first seen as distinctID: a
// name-based UUID (version 5 layout over SHA-256), so the same id comes back
// after a restart and every id a person ever had keeps resolving to it.
func personKey(site, distinctID string) UUIDKey {
	h := sha256.New()
	h.Write([]byte(site))
	h.Write([]byte{0})
	h.Write([]byte(distinctID))
	var sum [32]byte
	h.Sum(sum[:0])
	var k UUIDKey
	copy(k[:], sum[:16])
	k[6] = k[6]&0x0f | 0x50
	k[8] = k[8]&0x3f | 0x80
	return k
}

// PersonID returns the person id derived from a distinct id.
func PersonID(site, distinctID string) string { return personKey(site, distinctID).String() }

// forJSONObject calls fn for each member of a JSON object.
func forJSONObject(raw string, fn func(k string, v Value)) {
	gjson.Parse(raw).ForEach(func(k, v gjson.Result) bool {
		fn(k.String(), ValueFromJSON(v))
		return true
	})
}

// ValueFromJSON converts a parsed JSON value.
func ValueFromJSON(v gjson.Result) Value {
	switch v.Type {
	case gjson.String:
		return Value{Kind: KindString, S: v.Str}
	case gjson.Number:
		return Value{Kind: KindNumber, S: v.Raw}
	case gjson.True:
		return Value{Kind: KindTrue}
	case gjson.False:
		return Value{Kind: KindFalse}
	case gjson.JSON:
		return Value{Kind: KindJSON, S: v.Raw}
	}
	return Value{Kind: KindNull}
}
