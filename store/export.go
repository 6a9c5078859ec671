package store

import (
	"context"
	"slices"
	"time"
)

// exportWindow is how many events Export materialises at a time.
const exportWindow = 8192

// Export calls fn with every event of q (in range, passing the filters and
// the cohort) in time order, ties in commit order, with its person id. It
// holds the ids of the matching rows, never all the events: they are read
// from the log a window at a time, and fn runs without any lock held, so a
// slow reader does not hold up ingestion. An event deleted meanwhile is
// skipped.
func (s *DB) Export(ctx context.Context, q Query, fn func(ev *Event, personID string) error) error {
	r, _, err := s.begin(ctx, q, nil)
	if err != nil {
		return err
	}
	defer r.end()
	t := r.t
	var rows []int32
	var times []int64
	r.chunks(func(ci int, sel []int32) {
		ts := t.ts.chunk(ci)
		for _, off := range sel {
			rows = append(rows, int32(ci<<chunkBits)|off)
			times = append(times, ts[off])
		}
	})
	roots, didStrs := r.roots, t.dids.strs
	r.end()
	order := make([]int32, len(rows))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		switch ta, tb := times[a], times[b]; {
		case ta < tb:
			return -1
		case ta > tb:
			return 1
		}
		return 0
	})
	times = nil
	for i, o := range order {
		order[i] = rows[o]
	}
	rows = order

	personIDs := make(map[uint32]string)
	var prev, cur map[string]*decodedBlock // blocks of the last window and this one
	evs := make([]*Event, 0, exportWindow)
	dids := make([]uint32, 0, exportWindow)
	for startAt := 0; startAt < len(rows); startAt += exportWindow {
		window := rows[startAt:min(startAt+exportWindow, len(rows))]
		evs, dids = evs[:0], dids[:0]
		prev, cur = cur, make(map[string]*decodedBlock)
		// maint keeps blocks from being merged or rewritten while read.
		s.maint.Lock()
		if err := t.rlock(); err != nil {
			s.maint.Unlock()
			return err
		}
		for _, row := range window {
			bi := t.blockOf(int(row))
			if bi < 0 || t.ts.at(int(row)) == deletedTime {
				continue
			}
			b := &t.blocks[bi]
			ei := b.eventIndex(int(row))
			if ei < 0 || b.key == "" {
				continue
			}
			d := cur[b.key]
			if d == nil {
				if d = prev[b.key]; d == nil {
					if d, err = s.readBlockUncached(b.key); err != nil {
						t.mu.RUnlock()
						s.maint.Unlock()
						return err
					}
				}
				cur[b.key] = d
			}
			evs = append(evs, d.event(ei))
			dids = append(dids, t.did.at(int(row)))
		}
		t.mu.RUnlock()
		s.maint.Unlock()
		for i, ev := range evs {
			root := roots[dids[i]]
			pid, ok := personIDs[root]
			if !ok {
				pid = PersonID(t.site, didStrs[root])
				personIDs[root] = pid
			}
			if err := fn(ev, pid); err != nil {
				return err
			}
		}
		if ctxDone(ctx) {
			return ctx.Err()
		}
	}
	return nil
}

// LiveWindow is how far back LiveCount looks.
const LiveWindow = 5 * time.Minute

// LiveCount returns the number of distinct persons with an event in the
// last five minutes by the store's clock, now included.
func (s *DB) LiveCount(ctx context.Context, site string) (int, error) {
	now := s.opts.Now()
	r, _, err := s.begin(ctx, Query{Site: site, From: now.Add(-LiveWindow), To: now.Add(time.Millisecond)}, nil)
	if err != nil {
		return 0, err
	}
	defer r.end()
	seen := make([]bool, r.nPersons())
	n := 0
	r.chunks(func(ci int, rows []int32) {
		dids := r.t.did.chunk(ci)
		for _, off := range rows {
			if p := r.roots[dids[off]]; !seen[p] {
				seen[p] = true
				n++
			}
		}
	})
	return n, nil
}

// CohortPersons lists the persons of a cohort (as of q.To for a
// behavioral one) that have events, most recently created first, at most
// limit (default 100, at most 1000), and how many there are in all.
func (s *DB) CohortPersons(ctx context.Context, q Query, id int64, limit int) ([]Person, int, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	if _, err := s.Cohort(ctx, q.Site, id); err != nil {
		return nil, 0, err
	}
	q.Cohort, q.Filters = id, nil
	r, _, err := s.begin(ctx, q, nil)
	if err != nil {
		return nil, 0, err
	}
	defer r.end()
	spans := r.t.personSpans(r.roots)
	var cands []personCand
	for root, sp := range spans {
		if r.member[root] {
			cands = append(cands, personCand{root, sp, PersonID(r.t.site, r.t.dids.str(root))})
		}
	}
	sortPersons(cands)
	total := len(cands)
	out := make([]Person, 0, min(limit, total))
	for _, c := range cands[:min(limit, total)] {
		out = append(out, r.t.person(r.roots, c.root, c.span))
	}
	return out, total, nil
}
