package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Query is what every report shares: whose events, over which range, which
// of them. Each report is a pure function of a Query, its own parameters and
// the site's events.
type Query struct {
	Site string
	// From and To bound the range, [From, To).
	From, To time.Time
	// TZ is the time zone of labels and calendar periods; nil is UTC.
	TZ *time.Location
	// Filters keep the events that pass them all.
	Filters []Filter
	// Cohort keeps the events of the persons in the cohort with this id;
	// 0 keeps everyone's.
	Cohort int64
	// IncludeBots keeps the events marked `$datacenter` (traffic from
	// hosting networks), which reports leave out by default (SPEC §8).
	IncludeBots bool
}

// Datacenter marks an event from a hosting network's address.
const Datacenter = "$datacenter"

// ErrBadQuery wraps a query the store cannot answer as asked (an unknown
// action or cohort, a bad parameter): the caller should answer 400.
var ErrBadQuery = errors.New("bad query")

func badQuery(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadQuery, fmt.Sprintf(format, args...))
}

func (q *Query) tz() *time.Location {
	if q.TZ == nil {
		return time.UTC
	}
	return q.TZ
}

// noCode is a dictionary code no row has: what a name that was never seen
// compiles to.
const noCode = math.MaxUint32

// run is one report's view of a site's table, prepared under the table's
// read lock: the range, the compiled filters, the person of every distinct
// id and the cohort restriction. Reports scan it chunk by chunk, reading
// only the columns they need, as dictionary codes.
type run struct {
	s        *DB
	t        *table
	q        Query
	from, to int64
	// roots is the person (root distinct-id code) of every distinct-id code;
	// moved has the bits of the codes that are not their own root.
	roots   []uint32
	moved   []uint64
	filters *rowMatcher
	// member says, by root, whether the person is in the query's cohort;
	// nil when the query names none.
	member []bool
	locked bool

	// withHidden keeps the server pageviews a snippet pageview confirmed,
	// which every report but the server's own leaves out.
	withHidden bool

	// scoped: the query filters an event property, so session figures
	// are over whole sessions with a passing event; sessionFilters are the
	// query's filters that hold for whole sessions.
	scoped         bool
	sessionFilters *rowMatcher
}

// selectedSessions returns, by $session_id code, the sessions with an event
// that passes every filter in range, and calls fn(w, ci, rows) with the
// passing rows of each chunk, from the workers of r.scan() (fn may be nil).
func (r *run) selectedSessions(fn func(w, ci int, rows []int32)) []bool {
	sid := r.t.colByKey["$session_id"]
	n := 0
	if sid != nil {
		n = sid.dict.size()
	}
	sc := r.scan()
	sels, readers := make([][]bool, sc.n), make([]*colReader, sc.n)
	sc.run(func(w, ci int, rows []int32) {
		if sid != nil {
			if sels[w] == nil {
				sels[w], readers[w] = make([]bool, n), newColReader(sid)
			}
			sel, codes := sels[w], readers[w].chunk(ci)
			for _, off := range rows {
				sel[codes[off]] = true
			}
		}
		if fn != nil {
			fn(w, ci, rows)
		}
	})
	var sel []bool
	for _, s := range sels {
		if sel == nil {
			sel = s
			continue
		}
		for i, x := range s {
			sel[i] = sel[i] || x
		}
	}
	if sel == nil {
		sel = make([]bool, n)
	}
	if n > 0 {
		sel[0] = false // no session
	}
	return sel
}

// wholeSessions calls fn(w, ci, rows) with the rows in range of the
// selected sessions (the session filters and the cohort applied, not the
// event filters), from the workers of r.scan().
func (r *run) wholeSessions(sel []bool, fn func(w, ci int, rows []int32)) {
	sid := r.t.colByKey["$session_id"]
	all := r.filters
	r.filters = r.sessionFilters
	defer func() { r.filters = all }()
	sc := r.scan()
	keeps, readers := make([][]int32, sc.n), make([]*colReader, sc.n)
	for w := range readers {
		readers[w] = newColReader(sid)
	}
	sc.run(func(w, ci int, rows []int32) {
		codes := readers[w].chunk(ci)
		keep := keeps[w][:0]
		for _, off := range rows {
			if c := codes[off]; int(c) < len(sel) && sel[c] {
				keep = append(keep, off)
			}
		}
		keeps[w] = keep
		if len(keep) > 0 {
			fn(w, ci, keep)
		}
	})
}

// begin prepares a run of q: it resolves the event specs (names or
// actions), builds the columns the report needs (cols, the filters', the
// actions'), read-locks the table and compiles the filters and the cohort.
// The caller must call end. A site without events gives a run over an empty
// table.
func (s *DB) begin(ctx context.Context, q Query, events []string, cols ...string) (*run, []*eventSpec, error) {
	if q.To.Before(q.From) {
		return nil, nil, badQuery("to is before from")
	}
	specs := make([]*eventSpec, len(events))
	for i, e := range events {
		sp, err := s.resolveEvent(q.Site, e)
		if err != nil {
			return nil, nil, err
		}
		specs[i] = sp
	}
	var cohort *Cohort
	var cohortSpec *eventSpec
	if q.Cohort != 0 {
		c, err := s.Cohort(ctx, q.Site, q.Cohort)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil, nil, badQuery("cohort %d does not exist", q.Cohort)
			}
			return nil, nil, err
		}
		cohort = &c
		if c.Kind == CohortBehavioral {
			if cohortSpec, err = s.resolveEvent(q.Site, c.Event); err != nil {
				return nil, nil, fmt.Errorf("cohort %d: %w", c.ID, err)
			}
		}
	}
	keys := append(filterProps(q.Filters), cols...)
	for _, sp := range append(specs, cohortSpec) {
		if sp != nil {
			keys = append(keys, sp.columns()...)
		}
	}
	t := s.table(q.Site)
	if t == nil {
		t = newTable(q.Site) // no events: every report runs over nothing
	}
	r := &run{s: s, t: t, q: q, from: q.From.UnixMilli(), to: q.To.UnixMilli()}
	// A column built on demand may be evicted by another query between
	// building and locking (only when more than maxLazyColumns are in use):
	// build again.
	for attempt := 0; ; attempt++ {
		if err := s.ensureColumns(t, keys); err != nil {
			return nil, nil, err
		}
		if err := t.rlock(); err != nil {
			return nil, nil, err
		}
		missing := ""
		for _, k := range keys {
			if t.lookupColumn(k) == nil {
				missing = k
			}
		}
		if missing == "" {
			break
		}
		t.mu.RUnlock()
		if attempt == 3 {
			return nil, nil, fmt.Errorf("column %s evicted while querying; too many properties in use", missing)
		}
	}
	r.locked = true
	var err error
	filters := q.Filters
	var always []Filter // filters on every event whatever the scope
	if c := t.colByKey[Datacenter]; !q.IncludeBots && c != nil {
		if _, ok := c.dict.lookup("true"); ok {
			always = append(always, Filter{Prop: Datacenter, Op: OpNe, Value: "true"})
			filters = append(slices.Clip(filters), always...)
		}
	}
	if r.filters, err = t.compileFilters(filters); err != nil {
		r.end()
		return nil, nil, err
	}
	// Filter scope (SPEC §4): with a filter on an event property, the
	// overview's session figures are over the whole sessions that have a
	// passing event; sessionFilters are the filters those keep.
	sessionFilters := always
	for _, f := range q.Filters {
		if IsSessionProp(f.Prop) || f.Prop == "$session_id" {
			sessionFilters = append(slices.Clip(sessionFilters), f)
		} else {
			r.scoped = true
		}
	}
	if r.scoped {
		if r.sessionFilters, err = t.compileFilters(sessionFilters); err != nil {
			r.end()
			return nil, nil, err
		}
	}
	r.roots, r.moved = t.runRoots()
	if cohort != nil {
		r.member = r.cohortMembers(cohort, cohortSpec)
	}
	if ctxDone(ctx) {
		r.end()
		return nil, nil, ctx.Err()
	}
	return r, specs, nil
}

// end releases the table; reports call it as soon as they have read what
// they need, so that ingestion waits only for the scan.
func (r *run) end() {
	if r.locked {
		r.locked = false
		r.t.mu.RUnlock()
	}
}

// chunks calls fn for every chunk with the offsets (ascending) of its rows
// in [from, to) that pass the filters and whose person is in the cohort,
// chunk after chunk on the caller's goroutine. rows is only valid during
// the call.
func (r *run) chunks(fn func(ci int, rows []int32)) {
	r.chunksIn(r.from, r.to, true, fn)
}

// chunksIn is chunks over [from, to), with or without the filters and the
// cohort.
func (r *run) chunksIn(from, to int64, restrict bool, fn func(ci int, rows []int32)) {
	sc := r.scanIn(from, to, restrict)
	sc.n = 1
	sc.run(func(_, ci int, rows []int32) { fn(ci, rows) })
}

// scanWorkers, when above 0, is the number of workers of every parallel
// scan, however few its chunks (tests force several, or one).
var scanWorkers atomic.Int32

// maxSetBits bounds the bits of the person sets a report keeps, for all
// its workers (64 MB); beyond, it collects (key, person) pairs instead.
var maxSetBits uint64 = 1 << 29

// minChunksPerWorker is the chunks a scan needs for each worker it uses:
// a range of a few chunks (a day of a small site) is scanned on the
// caller's goroutine, where starting workers and merging their figures
// would cost more than they save.
const minChunksPerWorker = 4

// scan is one pass over the chunks of a range, split over workers: each
// worker takes a contiguous run of the chunks (in order), so figures kept
// by code (sessions are coded in order of appearance) stay in a band per
// worker. Reports size their per-worker accumulators by n before run.
type scan struct {
	r        *run
	from, to int64
	restrict bool
	plan     []int // the chunks that may hold rows of the range, ascending
	n        int   // workers
}

// scan returns the scan of the run's range, filters and cohort applied.
func (r *run) scan() *scan { return r.scanIn(r.from, r.to, true) }

// scanIn returns a scan over [from, to), with or without the filters and
// the cohort.
func (r *run) scanIn(from, to int64, restrict bool) *scan {
	sc := &scan{r: r, from: from, to: to, restrict: restrict}
	for ci := 0; ci < r.t.ts.numChunks(); ci++ {
		if r.t.mayHold(ci, from, to) {
			sc.plan = append(sc.plan, ci)
		}
	}
	sc.n = workersFor(len(sc.plan))
	return sc
}

// workersFor returns the workers a scan of chunks chunks uses.
func workersFor(chunks int) int {
	n := int(scanWorkers.Load())
	if n <= 0 {
		n = min(runtime.GOMAXPROCS(0), chunks/minChunksPerWorker)
	}
	return max(1, min(n, chunks))
}

// part returns the chunks of plan worker w scans.
func (sc *scan) part(w int) []int {
	return sc.plan[len(sc.plan)*w/sc.n : len(sc.plan)*(w+1)/sc.n]
}

// run calls fn(w, ci, rows) for every chunk ci of the range with rows in
// it, rows as chunks gives them; worker w's calls are on one goroutine and
// in chunk order. With one worker, on the caller's. A panic in a worker
// is raised again on the caller's goroutine once all have stopped.
func (sc *scan) run(fn func(w, ci int, rows []int32)) {
	parallel(sc.n, func(w int) { sc.work(w, scratchPool.Get().(*scratch), fn) })
}

// parallel runs fn(w) for every w below n, each on its own goroutine (the
// caller's when n is 1), and returns when all have returned. A panic in
// one is raised again on the caller's goroutine.
func parallel(n int, fn func(w int)) {
	if n == 1 {
		fn(0)
		return
	}
	var wg sync.WaitGroup
	panics := make([]any, n)
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { panics[w] = recover() }()
			fn(w)
		}()
	}
	wg.Wait()
	for _, p := range panics {
		if p != nil {
			panic(p)
		}
	}
}

// scratch is a worker's selection and filter buffers, kept across queries.
type scratch struct {
	sel []int32
	buf []uint32
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{sel: make([]int32, 0, chunkSize), buf: make([]uint32, chunkSize)}
}}

func (sc *scan) work(w int, s *scratch, fn func(w, ci int, rows []int32)) {
	defer scratchPool.Put(s)
	r, t, from, to := sc.r, sc.r.t, sc.from, sc.to
	for _, ci := range sc.part(w) {
		ts := t.ts.chunk(ci)
		sel := s.sel[:0]
		for i, x := range ts {
			if x >= from && x < to {
				sel = append(sel, int32(i))
			}
		}
		if !r.withHidden {
			sel = t.loads.visible(ci, sel)
		}
		if sc.restrict {
			sel = r.restrict(ci, sel, s.buf)
		}
		if len(sel) > 0 {
			fn(w, ci, sel)
		}
	}
}

// restrict keeps the rows of sel that pass the filters and the cohort;
// buf is scratch of chunkSize.
func (r *run) restrict(ci int, sel []int32, buf []uint32) []int32 {
	if r.filters != nil && len(sel) > 0 {
		sel = r.filters.keep(ci, sel, buf)
	}
	if r.member != nil && len(sel) > 0 {
		dids := r.t.did.chunk(ci)
		out := sel[:0]
		for _, off := range sel {
			if r.member[r.root(dids[off])] {
				out = append(out, off)
			}
		}
		sel = out
	}
	return sel
}

// nameCode returns the code of an event name, noCode when never seen.
func (r *run) nameCode(name string) uint32 {
	if c, ok := r.t.name.dict.lookup(name); ok && name != "" {
		return c
	}
	return noCode
}

// colReader reads one column chunk by chunk, keeping the current chunk's
// codes.
type colReader struct {
	c     *column
	ci    int
	codes []uint32
	buf   []uint32
}

func newColReader(c *column) *colReader { return &colReader{c: c, ci: -1} }

// chunk returns the codes of chunk ci; valid until the next call.
func (cr *colReader) chunk(ci int) []uint32 {
	if cr.ci != ci {
		if cr.buf == nil {
			cr.buf = make([]uint32, chunkSize)
		}
		if ci < len(cr.c.chunks) {
			cr.codes = cr.c.codes(ci, cr.buf)
		} else {
			cr.codes = cr.buf[:0]
		}
		cr.ci = ci
	}
	return cr.codes
}

// root returns the person of distinct id d: a look-up in a small set of
// bits, rarely one in the array of every id.
func (r *run) root(d uint32) uint32 {
	if r.moved[d>>6]&(1<<(d&63)) != 0 {
		return r.roots[d]
	}
	return d
}

// nPersons is the size of arrays indexed by root.
func (r *run) nPersons() int { return len(r.roots) }

// groupBy orders items by group with a stable counting sort: the items of
// group g are order[start[g]:start[g+1]], in their original order.
func groupBy(keys []uint32, nGroups int) (start, order []int32) {
	start = make([]int32, nGroups+1)
	for _, k := range keys {
		start[k+1]++
	}
	for g := 0; g < nGroups; g++ {
		start[g+1] += start[g]
	}
	next := make([]int32, nGroups)
	copy(next, start[:nGroups])
	order = make([]int32, len(keys))
	for i, k := range keys {
		order[next[k]] = int32(i)
		next[k]++
	}
	return start, order
}

// countDistinct returns, for each key below nKeys, the number of distinct
// persons among the pairs (keys[i], persons[i]).
func countDistinct(keys, persons []uint32, nKeys, nPersons int) []int {
	out := make([]int, nKeys)
	start, order := groupBy(persons, nPersons)
	stamp := make([]int32, nKeys) // person + 1 that last counted the key
	for p := 0; p < nPersons; p++ {
		for _, i := range order[start[p]:start[p+1]] {
			k := keys[i]
			if stamp[k] != int32(p)+1 {
				stamp[k] = int32(p) + 1
				out[k]++
			}
		}
	}
	return out
}

// forWorkers returns the set for each of n workers: the first is es, the
// others share its tables but have their own memos of the conditions
// (filled as codes are met, so not to be shared between goroutines).
func (es *eventSet) forWorkers(n int) []*eventSet {
	out := []*eventSet{es}
	for len(out) < n {
		c := &eventSet{byName: es.byName, terms: slices.Clone(es.terms)}
		for i := range c.terms {
			tm := &c.terms[i]
			conds := make([]*codeCond, len(tm.conds))
			for j, cd := range tm.conds {
				conds[j] = &codeCond{col: cd.col, test: cd.test, memo: make([]uint8, len(cd.memo))}
			}
			tm.conds = conds
		}
		out = append(out, c)
	}
	return out
}

// The reports that count persons mark distinct ids while they scan, and
// take them to persons once at the end: a root looked up for each row
// would be a random read of an array of every id for each row, the scan's
// largest cost.

// setBit sets bit i of set.
func setBit(set []uint64, i uint32) { set[i>>6] |= 1 << (i & 63) }

// orBits sets in dst the bits set in src (of the same length).
func orBits(dst, src []uint64) {
	for i, x := range src {
		dst[i] |= x
	}
}

// countPersons returns the number of persons among the distinct ids set
// in dids; scratch is a zeroed set of len(r.roots) bits, left zeroed.
func (r *run) countPersons(dids, scratch []uint64) int {
	n := 0
	for pass := 0; pass < 2; pass++ {
		for i, x := range dids {
			for ; x != 0; x &= x - 1 {
				p := r.roots[i<<6|bits.TrailingZeros64(x)]
				if pass == 1 {
					scratch[p>>6] = 0
				} else if scratch[p>>6]&(1<<(p&63)) == 0 {
					scratch[p>>6] |= 1 << (p & 63)
					n++
				}
			}
		}
	}
	return n
}
