package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// DefaultFunnelWindow is the conversion window when a query names none.
const DefaultFunnelWindow = 14 * 24 * time.Hour

// maxWindow bounds a funnel window (and keeps t0 + window from overflowing).
const maxWindow = 100 * 365 * 24 * time.Hour

// ParseWindow reads a funnel window: a positive number and a unit, s, m, h,
// d or w, e.g. 14d, 3h, 90m.
func ParseWindow(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("window %q: want a number and a unit (s, m, h, d, w), e.g. 14d", s)
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
	if err != nil || n <= 0 || unit == 0 {
		return 0, fmt.Errorf("window %q: want a number and a unit (s, m, h, d, w), e.g. 14d", s)
	}
	if n > int64(maxWindow/unit) {
		return 0, fmt.Errorf("window %q: too long", s)
	}
	return time.Duration(n) * unit, nil
}

// FunnelQuery asks how many persons went through steps in order.
type FunnelQuery struct {
	// Steps are event names or actions, at least one.
	Steps []string
	// Window is how long after step 1 the last step may come (inclusive);
	// default 14 days.
	Window time.Duration
}

// FunnelStep is how many persons reached a step.
type FunnelStep struct {
	Event string `json:"event"`
	Count int    `json:"count"`
}

// Funnel counts, for each step k, the persons with a chain of events in
// range: an event of step 1 at t0, then an event of each following step
// strictly later than the one before, the last at most t0 + Window. A
// person counts at step k if any of their step-1 events starts a chain
// that reaches k; each person counts once per step.
func (s *DB) Funnel(ctx context.Context, q Query, fq FunnelQuery) ([]FunnelStep, error) {
	n := len(fq.Steps)
	if n == 0 || n > maxSeriesEvents {
		return nil, badQuery("a funnel needs 1 to %d steps", maxSeriesEvents)
	}
	if fq.Window == 0 {
		fq.Window = DefaultFunnelWindow
	}
	if fq.Window < 0 || fq.Window > maxWindow {
		return nil, badQuery("window out of range")
	}
	r, specs, err := s.begin(ctx, q, fq.Steps)
	if err != nil {
		return nil, err
	}
	defer r.end()
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
	r.end()

	out := make([]FunnelStep, n)
	for k, sp := range specs {
		out[k].Event = sp.label
	}
	start, order := groupBy(persons, nPersons)
	window := fq.Window.Milliseconds()
	lists := make([][]int64, n) // per step, the person's event times
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
		reached := funnelDepth(lists, window)
		for k := 0; k < reached; k++ {
			out[k].Count++
		}
	}
	if ctxDone(ctx) {
		return nil, ctx.Err()
	}
	return out, nil
}

// funnelDepth returns how many steps the best chain reaches, given each
// step's sorted event times. From a start, taking the earliest qualifying
// event of each next step is never worse than a later one, so one greedy
// walk per start suffices.
func funnelDepth(lists [][]int64, window int64) int {
	best := 0
	prev := int64(0)
	for i, t0 := range lists[0] {
		if i > 0 && t0 == prev {
			continue // the same start again
		}
		prev = t0
		cur, depth, limit := t0, 1, t0+window
		for k := 1; k < len(lists); k++ {
			l := lists[k]
			j, _ := slices.BinarySearch(l, cur+1) // the first event after cur
			if j == len(l) || l[j] > limit {
				break
			}
			cur = l[j]
			depth++
		}
		if depth > best {
			best = depth
			if best == len(lists) {
				break
			}
		}
	}
	return best
}
