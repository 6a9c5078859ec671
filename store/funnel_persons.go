package store

import (
	"context"
	"slices"
)

// FunnelPersonsQuery asks who is behind one step of a funnel.
type FunnelPersonsQuery struct {
	FunnelQuery
	// Step is the step, from 1.
	Step int
	// Dropped asks for the persons who reached Step but not the next one;
	// otherwise those who reached Step (the step's count).
	Dropped bool
	// Limit is the page size; default 100, at most 1000.
	Limit int
}

// FunnelPersons lists the persons a funnel step counts (or who dropped
// off after it), under the same definition as Funnel, most recently
// created first, at most Limit, and how many there are in all.
func (s *DB) FunnelPersons(ctx context.Context, q Query, fq FunnelPersonsQuery) ([]Person, int, error) {
	n := len(fq.Steps)
	if n == 0 || n > maxSeriesEvents {
		return nil, 0, badQuery("a funnel needs 1 to %d steps", maxSeriesEvents)
	}
	if fq.Step < 1 || fq.Step > n {
		return nil, 0, badQuery("funnel_step: want 1 to %d", n)
	}
	if fq.Dropped && fq.Step == n {
		return nil, 0, badQuery("funnel_step: nobody drops off after the last step")
	}
	if fq.Window == 0 {
		fq.Window = DefaultFunnelWindow
	}
	if fq.Window < 0 || fq.Window > maxWindow {
		return nil, 0, badQuery("window out of range")
	}
	if fq.Limit <= 0 {
		fq.Limit = 100
	}
	fq.Limit = min(fq.Limit, 1000)
	r, specs, err := s.begin(ctx, q, fq.Steps)
	if err != nil {
		return nil, 0, err
	}
	defer r.end()
	depth := r.funnelDepths(specs, fq.Window.Milliseconds())
	keep := func(d int) bool {
		if fq.Dropped {
			return d == fq.Step
		}
		return d >= fq.Step
	}
	chosen := make([]bool, len(r.roots))
	count := 0
	for root, d := range depth {
		if keep(d) {
			chosen[root] = true
			count++
		}
	}
	if ctxDone(ctx) {
		return nil, 0, ctx.Err()
	}
	cands := make([]personCand, 0, count)
	if count > 0 {
		for root, sp := range r.spansOf(chosen) {
			cands = append(cands, personCand{root, sp, PersonID(r.t.site, r.t.dids.str(root))})
		}
	}
	sortPersons(cands)
	total := len(cands)
	out := make([]Person, 0, min(fq.Limit, total))
	for _, c := range cands[:min(fq.Limit, total)] {
		out = append(out, r.t.person(r.roots, c.root, c.span))
	}
	return out, total, nil
}

// funnelDepths returns, by person (root), how many steps of the funnel
// the person's best chain reaches, for the persons who did step 1 in
// range: the scan of Funnel, kept per person.
func (r *run) funnelDepths(specs []*eventSpec, window int64) map[uint32]int {
	es := r.compileEvents(specs)
	var persons []uint32
	var times []int64
	var masks []uint32
	names := newColReader(r.t.name)
	r.chunks(func(ci int, rows []int32) {
		ts, dids, nc := r.t.ts.chunk(ci), r.t.did.chunk(ci), names.chunk(ci)
		for _, off := range rows {
			if m := es.mask(ci<<chunkBits|int(off), nc[off]); m != 0 {
				persons = append(persons, r.roots[dids[off]])
				times = append(times, ts[off])
				masks = append(masks, m)
			}
		}
	})
	nPersons := r.nPersons()
	out := make(map[uint32]int)
	start, order := groupBy(persons, nPersons)
	lists := make([][]int64, len(specs))
	for p := 0; p < nPersons; p++ {
		items := order[start[p]:start[p+1]]
		if len(items) == 0 {
			continue
		}
		for k := range lists {
			lists[k] = lists[k][:0]
		}
		for _, i := range items {
			for k, m := 0, masks[i]; m != 0; k, m = k+1, m>>1 {
				if m&1 != 0 {
					lists[k] = append(lists[k], times[i])
				}
			}
		}
		if len(lists[0]) == 0 {
			continue
		}
		for k := range lists {
			if !slices.IsSorted(lists[k]) {
				slices.Sort(lists[k])
			}
		}
		out[uint32(p)] = funnelDepth(lists, window)
	}
	return out
}

// spansOf is the table's personSpans for the chosen persons (by root)
// only: a scan of the whole table, chunk by chunk, with no map work for
// the others.
func (r *run) spansOf(chosen []bool) map[uint32]personSpan {
	spans := make(map[uint32]personSpan)
	row := 0
	for ci := 0; ci < r.t.ts.numChunks(); ci++ {
		ts, dids := r.t.ts.chunk(ci), r.t.did.chunk(ci)
		n := min(len(ts), len(dids), r.t.rows()-row)
		for off := 0; off < n; off++ {
			root := r.roots[dids[off]]
			if !chosen[root] || ts[off] == deletedTime {
				continue
			}
			sp, ok := spans[root]
			sp.see(ts[off], row+off, !ok)
			spans[root] = sp
		}
		row += n
	}
	return spans
}
