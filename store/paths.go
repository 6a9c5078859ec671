package store

import (
	"context"
	"slices"
	"sort"
	"strconv"
)

// PathsQuery asks which pages follow which.
type PathsQuery struct {
	// Start, when set, is the $pathname paths start at: each path begins
	// at its first occurrence, and paths without it are left out.
	Start string
	// Steps is the number of pages per path; default 5, at most 20.
	Steps int
}

// PathLink is a move from one page to the next at a given step. Nodes are
// named `<step>_<pathname>` (1_/, 2_/pricing), as in PostHog, so that the
// graph has no cycles.
type PathLink struct {
	Source string `json:"source"`
	Target string `json:"target"`
	// Value is the number of paths taking the link.
	Value int `json:"value"`
}

// Paths follows the $pageview $pathnames of each session in time order
// (events without a session: of each person), consecutive repeats
// collapsed, from the first occurrence of Start when given, for at most
// Steps pages; it counts each link between consecutive pages once per
// path. Links come most taken first, then by source and target.
func (s *DB) Paths(ctx context.Context, q Query, pq PathsQuery) ([]PathLink, error) {
	if pq.Steps <= 0 {
		pq.Steps = 5
	}
	pq.Steps = min(pq.Steps, 20)
	r, _, err := s.begin(ctx, q, nil, "$session_id", "$pathname")
	if err != nil {
		return nil, err
	}
	defer r.end()
	pathCol, sessCol := r.t.column("$pathname"), r.t.column("$session_id")
	strs := pathCol.dict.strs
	nSess := uint32(sessCol.dict.size())
	pv := r.nameCode("$pageview")
	start := uint32(0)
	if pq.Start != "" {
		c, ok := pathCol.dict.lookup(pq.Start)
		if !ok {
			return []PathLink{}, nil
		}
		start = c
	}
	// A path is a session, or (offset by nSess) a person's events without
	// a session.
	var group, page []uint32
	var times []int64
	names, paths, sids := newColReader(r.t.name), newColReader(pathCol), newColReader(sessCol)
	r.chunks(func(ci int, rows []int32) {
		ts, dids := r.t.ts.chunk(ci), r.t.did.chunk(ci)
		nc, pc, sc := names.chunk(ci), paths.chunk(ci), sids.chunk(ci)
		for _, off := range rows {
			if nc[off] != pv || pc[off] == 0 {
				continue
			}
			g := sc[off]
			if g == 0 {
				g = nSess + r.roots[dids[off]]
			}
			group = append(group, g)
			page = append(page, pc[off])
			times = append(times, ts[off])
		}
	})
	nGroups := int(nSess) + r.nPersons()
	r.end()

	type link struct {
		step uint8
		a, b uint32
	}
	links := make(map[link]int)
	first, order := groupBy(group, nGroups)
	var seq []uint32
	for g := 0; g < nGroups; g++ {
		items := order[first[g]:first[g+1]]
		if len(items) < 2 {
			continue
		}
		// Time order; rows of equal time stay in commit order.
		slices.SortStableFunc(items, func(a, b int32) int {
			switch ta, tb := times[a], times[b]; {
			case ta < tb:
				return -1
			case ta > tb:
				return 1
			}
			return 0
		})
		seq = seq[:0]
		started := start == 0
		for _, i := range items {
			p := page[i]
			if !started {
				if p != start {
					continue
				}
				started = true
			}
			if len(seq) > 0 && seq[len(seq)-1] == p {
				continue
			}
			seq = append(seq, p)
			if len(seq) == pq.Steps {
				break
			}
		}
		for k := 1; k < len(seq); k++ {
			links[link{uint8(k), seq[k-1], seq[k]}]++
		}
	}
	out := make([]PathLink, 0, len(links))
	for l, v := range links {
		out = append(out, PathLink{
			Source: strconv.Itoa(int(l.step)) + "_" + strs[l.a],
			Target: strconv.Itoa(int(l.step)+1) + "_" + strs[l.b],
			Value:  v,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.Value != b.Value {
			return a.Value > b.Value
		}
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		return a.Target < b.Target
	})
	return out, nil
}
