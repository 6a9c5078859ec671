package store

import (
	"context"
	"sort"
)

// BreakdownQuery asks for the values of an event property.
type BreakdownQuery struct {
	// Property is the event property ("event" is the event name).
	Property string
	// Event keeps the events of this name or action; "" keeps all.
	Event string
	// Limit is the number of rows; default 100, at most 1000.
	Limit int
}

// BreakdownRow is one value of a breakdown.
type BreakdownRow struct {
	Value string `json:"value"`
	// Count is the number of events with the value.
	Count int `json:"count"`
	// Visitors is the number of distinct persons among them.
	Visitors int `json:"visitors"`
}

// Breakdown counts the events in range by the value of a property, most
// frequent first (ties by value); events without the property are left out.
// With a filter on an event property, a session property's breakdown counts
// the events of the whole sessions that have a passing event; an event
// property's, the passing events.
func (s *DB) Breakdown(ctx context.Context, q Query, bq BreakdownQuery) ([]BreakdownRow, error) {
	if bq.Property == "" {
		return nil, badQuery("breakdown needs a property")
	}
	if bq.Limit <= 0 {
		bq.Limit = 100
	}
	bq.Limit = min(bq.Limit, 1000)
	var events []string
	if bq.Event != "" {
		events = []string{bq.Event}
	}
	r, specs, err := s.begin(ctx, q, events, bq.Property)
	if err != nil {
		return nil, err
	}
	defer r.end()
	col := r.t.lookupColumn(bq.Property)
	strs := col.dict.strs // elements below its length never change
	var es *eventSet
	if len(specs) > 0 {
		es = r.compileEvents(specs)
	}
	// Visitors by value: with few values (pages, browsers, countries), a
	// set of distinct ids per value met, as bits (at most 64 MB for all
	// workers), taken to persons at the end; with many, the (value, person) pairs, counted after. The
	// pairs of 30 days of a busy site are hundreds of MB that the bits
	// never allocate. Each worker of the scan keeps its own, merged after.
	nP := r.nPersons()
	nw := r.scan().n
	bitsets := uint64(len(strs))*uint64(nP)*uint64(nw) <= maxSetBits
	type acc struct {
		counts        []int
		met           [][]uint64
		keys, persons []uint32
		vals, names   *colReader
		es            *eventSet
	}
	accs := make([]acc, nw)
	var ess []*eventSet
	if es != nil {
		ess = es.forWorkers(nw)
	}
	for w := range accs {
		accs[w] = acc{counts: make([]int, len(strs)), vals: newColReader(col), names: newColReader(r.t.name)}
		if es != nil {
			accs[w].es = ess[w]
		}
		if bitsets {
			accs[w].met = make([][]uint64, len(strs))
		}
	}
	add := func(w, ci int, rows []int32) {
		a := &accs[w]
		vc, dids := a.vals.chunk(ci), r.t.did.chunk(ci)
		var nc []uint32
		es := a.es
		if es != nil {
			nc = a.names.chunk(ci)
		}
		for _, off := range rows {
			v := vc[off]
			if v == 0 || es != nil && es.mask(ci<<chunkBits|int(off), nc[off]) == 0 {
				continue
			}
			a.counts[v]++
			if !bitsets {
				a.keys = append(a.keys, v)
				a.persons = append(a.persons, r.root(dids[off]))
				continue
			}
			b := a.met[v]
			if b == nil {
				b = make([]uint64, (nP+63)/64)
				a.met[v] = b
			}
			setBit(b, dids[off])
		}
	}
	if r.scoped && IsSessionProp(bq.Property) {
		// An event-property filter and a session property: the whole
		// sessions with a passing event count (SPEC §4 filter scope).
		r.wholeSessions(r.selectedSessions(nil), add)
	} else {
		r.scan().run(add)
	}
	r.end()
	counts := accs[0].counts
	visitors := make([]int, len(strs))
	if bitsets {
		met := accs[0].met
		for _, a := range accs[1:] {
			for v, b := range a.met {
				switch {
				case b == nil:
				case met[v] == nil:
					met[v] = b
				default:
					orBits(met[v], b)
				}
			}
		}
		scratch := make([]uint64, (nP+63)/64)
		for v, b := range met {
			visitors[v] = r.countPersons(b, scratch)
		}
	} else {
		keys, persons := accs[0].keys, accs[0].persons
		for _, a := range accs[1:] {
			keys, persons = append(keys, a.keys...), append(persons, a.persons...)
		}
		visitors = countDistinct(keys, persons, len(strs), nP)
	}
	for _, a := range accs[1:] {
		for v, n := range a.counts {
			counts[v] += n
		}
	}
	var out []BreakdownRow
	for v, n := range counts {
		if n > 0 {
			out = append(out, BreakdownRow{Value: strs[v], Count: n, Visitors: visitors[v]})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Value < out[j].Value
	})
	out = s.addImportedBreakdown(q, bq, out) // imported aggregates (imported.go)
	if len(out) > bq.Limit {
		out = out[:bq.Limit]
	}
	return out, nil
}
