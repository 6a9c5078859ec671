package store

import (
	"context"
	"fmt"
	"math"
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

// maxPartBits sizes the parts of persons a funnel orders its rows in:
// 16,384 persons (tests make them small).
var maxPartBits = 14

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
	nPersons := r.nPersons()
	// The matching rows are laid out by part of persons (partPersons
	// consecutive roots), so that each part's rows can then be ordered by
	// person where they fit a cache. A first pass counts the rows of each
	// part, a second writes each row's time, and its person in the part
	// and steps as one tag, where they go; each pass writes one stream per
	// part, not one place per person all over memory. Each worker of the
	// scan counts its own chunks, and its rows of a part follow the
	// previous worker's.
	// A row's person in its part and its steps (n bits) make one 32-bit
	// tag; a part is at most 16,384 persons, whose counters fit a core's
	// cache.
	partBits := min(maxPartBits, 32-n)
	nParts := nPersons>>partBits + 1
	sc := r.scan()
	ess := es.forWorkers(sc.n)
	names := make([]*colReader, sc.n)
	at := make([][]uint32, sc.n) // by worker and part: rows, then where the next goes
	for w := range names {
		names[w], at[w] = newColReader(r.t.name), make([]uint32, nParts)
	}
	sc.run(func(w, ci int, rows []int32) {
		dids, nc, es, c := r.t.did.chunk(ci), names[w].chunk(ci), ess[w], at[w]
		for _, off := range rows {
			if es.mask(ci<<chunkBits|int(off), nc[off]) != 0 {
				c[r.root(dids[off])>>partBits]++
			}
		}
	})
	start := make([]uint32, nParts+1) // part i's rows are [start[i], start[i+1])
	next := uint32(0)
	for i := range nParts {
		start[i] = next
		for _, c := range at {
			n := c[i]
			c[i] = next
			next += n
		}
	}
	start[nParts] = next
	// Times are kept as offsets from the start of the range in 32 bits
	// when the range allows (under 49 days), else whole: they are most of
	// the memory a funnel takes.
	fl := &funnelLayout{r: r, sc: sc, ess: ess, names: names, at: at, start: start, n: n,
		partBits: partBits, window: fq.Window.Milliseconds()}
	var reached [][]int
	if span := r.to - r.from; span >= 0 && span <= math.MaxUint32 {
		reached = funnelPlace[uint32](fl, r.from)
	} else {
		reached = funnelPlace[int64](fl, 0)
	}
	out := make([]FunnelStep, n)
	for k, sp := range specs {
		out[k].Event = sp.label
		for _, counts := range reached {
			for d := k + 1; d <= n; d++ {
				out[k].Count += counts[d]
			}
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

// funnelLayout is what a funnel's first pass leaves for the rest.
type funnelLayout struct {
	r        *run
	sc       *scan
	ess      []*eventSet
	names    []*colReader
	at       [][]uint32 // by worker and part, where its next row goes
	start    []uint32   // part i's rows are [start[i], start[i+1])
	n        int        // steps
	partBits int
	window   int64
}

// funnelPlace writes each matching row where the first pass counted it,
// its time as T after base, then returns, by worker, the persons by steps
// reached.
func funnelPlace[T uint32 | int64](fl *funnelLayout, base int64) [][]int {
	r, sc, ess, names, at, start, n, partBits, window := fl.r, fl.sc, fl.ess, fl.names, fl.at, fl.start, fl.n, fl.partBits, fl.window
	nParts := len(start) - 1
	next := start[nParts]
	partPersons, partMask := 1<<partBits, uint32(1)<<partBits-1
	times, tags := make([]T, next), make([]uint32, next)
	sc.run(func(w, ci int, rows []int32) {
		ts, dids, nc, es, at := r.t.ts.chunk(ci), r.t.did.chunk(ci), names[w].chunk(ci), ess[w], at[w]
		for _, off := range rows {
			if m := es.mask(ci<<chunkBits|int(off), nc[off]); m != 0 {
				p := r.root(dids[off])
				i := at[p>>partBits]
				times[i], tags[i] = T(ts[off]-base), (p&partMask)<<n|m
				at[p>>partBits] = i + 1
			}
		}
	})
	r.end()
	fl.at = nil

	// Then each person's depth, the parts split between workers by their
	// rows.
	reached := make([][]int, sc.n) // by worker, persons by steps reached
	parallel(sc.n, func(w int) {
		counts := make([]int, n+1)
		lists := make([][]int64, n) // per step, the person's event times
		byPerson := make([]uint32, partPersons+1)
		var ptimes []int64
		var pmasks []uint32
		first, _ := slices.BinarySearch(start, uint32(uint64(next)*uint64(w)/uint64(sc.n)))
		last, _ := slices.BinarySearch(start, uint32(uint64(next)*uint64(w+1)/uint64(sc.n)))
		if w == sc.n-1 {
			last = nParts
		}
		for part := first; part < last; part++ {
			lo, hi := start[part], start[part+1]
			if lo == hi {
				continue
			}
			// The part's rows by person, in their order.
			clear(byPerson)
			for _, tag := range tags[lo:hi] {
				byPerson[tag>>n+1]++
			}
			for p := 1; p <= partPersons; p++ {
				byPerson[p] += byPerson[p-1]
			}
			ptimes, pmasks = slices.Grow(ptimes[:0], int(hi-lo))[:hi-lo], slices.Grow(pmasks[:0], int(hi-lo))[:hi-lo]
			for i := lo; i < hi; i++ {
				p := tags[i] >> n
				j := byPerson[p]
				ptimes[j], pmasks[j] = int64(times[i])+base, tags[i]&(1<<n-1)
				byPerson[p] = j + 1
			}
			// byPerson[p] is now where person p+1's rows start.
			from := uint32(0)
			for p := 0; p < partPersons; p++ {
				to := byPerson[p]
				if from == to {
					continue
				}
				for k := range lists {
					lists[k] = lists[k][:0]
				}
				for i := from; i < to; i++ {
					for k, m := 0, pmasks[i]; m != 0; k, m = k+1, m>>1 {
						if m&1 != 0 {
							lists[k] = append(lists[k], ptimes[i])
						}
					}
				}
				from = to
				if len(lists[0]) == 0 {
					continue
				}
				for k := range lists {
					if !slices.IsSorted(lists[k]) {
						slices.Sort(lists[k])
					}
				}
				counts[funnelDepth(lists, window)]++
			}
		}
		reached[w] = counts
	})
	return reached
}
