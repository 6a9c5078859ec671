package store

import (
	"crypto/sha256"
	"strings"
	"sync"

	"github.com/tidwall/gjson"
)

// people is the person state of a site, derived entirely from its events:
// `$identify` and `$create_alias` link distinct ids into persons (a union-find
// over distinct-id codes), `$set`/`$set_once`/`$unset` shape their
// properties. Nothing of it is stored separately, so it can never disagree
// with the events, and deleting a person's events deletes the person.
//
// The root of a person is its smallest distinct-id code, i.e. the id seen
// first; codes are assigned in commit order both live and when the log is
// replayed, so roots are the same after a restart.
type people struct {
	parent []uint32
	props  map[uint32]Props // by root

	// ids maps a person id (derived from any of its distinct ids) back to
	// the distinct id, built lazily for look-ups by id.
	idsMu   sync.Mutex
	ids     map[UUIDKey]uint32
	idsUpTo int
}

func (p *people) init() {
	p.parent = []uint32{0}
	p.props = make(map[uint32]Props)
}

func (p *people) grow(n int) {
	for len(p.parent) < n {
		p.parent = append(p.parent, uint32(len(p.parent)))
	}
}

// rootOf returns the root of d without changing anything; readers use it
// under the table's read lock.
func (p *people) rootOf(d uint32) uint32 {
	if int(d) >= len(p.parent) {
		return d
	}
	for p.parent[d] != d {
		d = p.parent[d]
	}
	return d
}

// roots returns the root of every distinct-id code.
func (p *people) roots() []uint32 {
	out := make([]uint32, len(p.parent))
	for d := range out {
		r := p.parent[d]
		if r < uint32(d) {
			r = out[r] // parents always have smaller codes, so out[r] is done
		}
		out[d] = r
	}
	return out
}

// find returns the root of d, compressing the path; writers only.
func (p *people) find(d uint32) uint32 {
	if int(d) >= len(p.parent) {
		return d
	}
	r := d
	for p.parent[r] != r {
		r = p.parent[r]
	}
	for p.parent[d] != r { // path compression
		next := p.parent[d]
		p.parent[d] = r
		d = next
	}
	return r
}

// link joins the persons of keep and other. When both have a property,
// keep's value wins (the identified person's properties are kept).
func (p *people) link(keep, other uint32) {
	rk, ro := p.find(keep), p.find(other)
	if rk == ro {
		return
	}
	merged := p.props[rk]
	for _, pr := range p.props[ro] {
		merged.SetIfMissing(pr.Key, pr.Val)
	}
	root, child := rk, ro
	if child < root {
		root, child = child, root
	}
	p.parent[child] = root
	delete(p.props, child)
	if len(merged) > 0 {
		p.props[root] = merged
	} else {
		delete(p.props, root)
	}
}

// apply processes the person effects of an event whose distinct id has
// code d.
func (p *people) apply(dids *dict, d uint32, ev *Event) {
	p.grow(dids.size())
	var other string
	switch ev.Name {
	case "$identify":
		other = ev.Props.Str("$anon_distinct_id")
	case "$create_alias":
		other = ev.Props.Str("alias")
	}
	if other != "" && other != ev.DistinctID {
		o := dids.code(other)
		p.grow(dids.size())
		p.link(d, o)
	}
	set, hasSet := ev.Props.Get("$set")
	once, hasOnce := ev.Props.Get("$set_once")
	unset, hasUnset := ev.Props.Get("$unset")
	if !hasSet && !hasOnce && !hasUnset {
		return
	}
	r := p.find(d)
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

// members returns the distinct-id codes of the person rooted at r.
func (p *people) members(r uint32) []uint32 {
	var out []uint32
	for d := range p.parent {
		if d != 0 && p.rootOf(uint32(d)) == r {
			out = append(out, uint32(d))
		}
	}
	return out
}

// forget detaches every distinct id of the person rooted at r and drops its
// properties, as after its events were deleted.
func (p *people) forget(r uint32) {
	for _, d := range p.members(r) {
		p.parent[d] = d
		delete(p.props, d)
	}
	p.idsMu.Lock()
	p.ids = nil
	p.idsUpTo = 0
	p.idsMu.Unlock()
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
