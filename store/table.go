package store

import (
	"math"
	"sort"
	"sync"
)

// deletedTime marks a row whose event was deleted: it lies before every
// range a query can ask for, so scans skip it without a separate check.
const deletedTime = math.MinInt64

// indexedProps are the properties every site keeps as columns from the
// start; others become columns the first time a query needs them.
var indexedProps = []string{
	"$session_id", "$pathname", "$host", "$referring_domain",
	"$geoip_country_code", "$browser", "$os", "$device_type",
	"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
	"$geoip_country_name",
	Datacenter,
}

// blockRef locates the stored events of a run of rows.
type blockRef struct {
	key   string
	first int // first row
	n     int // rows covered, deleted ones included
	// skips are the offsets (from first, ascending) of rows whose events were
	// deleted from the block; the block stores the other n-len(skips) events
	// in row order.
	skips []int32
	// compressed says the block is in its final, zstd-compressed form;
	// commit blocks (stored as is) are not and the compactor rewrites them.
	compressed bool
	size       int // bytes of the stored value
}

// eventIndex returns the index in the block of the event of row, or -1 if it
// was deleted.
func (b *blockRef) eventIndex(row int) int {
	off := int32(row - b.first)
	i := sort.Search(len(b.skips), func(i int) bool { return b.skips[i] >= off })
	if i < len(b.skips) && b.skips[i] == off {
		return -1
	}
	return int(off) - i
}

// table is the in-memory columnar form of one site's events. Rows are in
// commit order; row numbers are stable while the process runs.
type table struct {
	mu   sync.RWMutex
	site string

	ts   vec[int64]
	keys vec[UUIDKey]
	idx  uuidIndex
	name *column
	did  vec[uint32]

	// dids are the site's distinct ids; the persons they form are below.
	dids   *dict
	people people

	// loads pairs server pageviews with the snippet's (pageloads.go).
	loads pageloads
	// sess keeps where each session starts and ends (sessions.go).
	sess sessions

	cols     []*column
	colByKey map[string]*column
	lazy     []string // columns built on demand, oldest first

	blocks []blockRef
	// bounds are each chunk's earliest and latest event time, so that a
	// query over a day skips the chunks of other days.
	bounds []tsBounds
	// rootsMu guards roots and moved, the person of every distinct id as
	// of people.gen rootsGen, shared by the queries (see runRoots).
	rootsMu  sync.Mutex
	roots    []uint32
	moved    []uint64
	rootsGen uint64
	// hist is what of the table is in history files (history.go).
	hist   tableHist
	live   int  // rows not deleted
	closed bool // set when the DB closed and the columns were freed
}

// rlock read-locks t, failing once the DB is closed.
func (t *table) rlock() error {
	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// lock write-locks t, failing once the DB is closed.
func (t *table) lock() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// release frees the columns (off-heap memory); the caller holds t.mu and
// marks t closed.
func (t *table) release() {
	t.ts.free()
	t.keys.free()
	t.idx.free()
	t.name.free()
	t.did.free()
	t.sess.spans.free()
	for _, c := range t.cols {
		c.free()
	}
	t.cols = nil
	t.colByKey = map[string]*column{}
}

func newTable(site string) *table {
	t := &table{
		site:     site,
		name:     newColumn("event"),
		dids:     newDict(),
		colByKey: make(map[string]*column),
	}
	t.people.init()
	t.hist.upTo = make(map[string]uint32)
	for _, k := range indexedProps {
		c := newColumn(k)
		t.cols = append(t.cols, c)
		t.colByKey[k] = c
	}
	return t
}

// tsBounds are the earliest and latest time of a chunk's rows (deleted rows
// may lie inside: the bounds hold a superset).
type tsBounds struct{ min, max int64 }

// noteTime widens the bounds of row's chunk to ts.
func (t *table) noteTime(row int, ts int64) {
	ci := row >> chunkBits
	for len(t.bounds) <= ci {
		t.bounds = append(t.bounds, tsBounds{math.MaxInt64, math.MinInt64})
	}
	b := &t.bounds[ci]
	b.min, b.max = min(b.min, ts), max(b.max, ts)
}

// mayHold reports whether chunk ci can have a row in [from, to).
func (t *table) mayHold(ci int, from, to int64) bool {
	if ci >= len(t.bounds) {
		return false
	}
	b := t.bounds[ci]
	return b.max >= from && b.min < to
}

// rows returns the number of rows, deleted ones included.
func (t *table) rows() int { return t.ts.len() }

// has reports whether an event with key is stored.
func (t *table) has(key *UUIDKey) bool { return t.idx.find(key, &t.keys) >= 0 }

// add appends ev as a new row and applies its person updates. The caller
// has checked that its uuid is new. Strings are copied where kept.
func (t *table) add(ev *Event, key UUIDKey) int {
	row := t.ts.len()
	t.ts.append(ev.Time)
	t.noteTime(row, ev.Time)
	t.keys.append(key)
	t.idx.insert(row, &t.keys)
	name, confirmed := t.loads.add(row, ev)
	t.name.appendValue(name)
	if confirmed >= 0 {
		t.name.setCode(confirmed, t.name.dict.code(ServerPageview))
	}
	d := t.dids.code(ev.DistinctID)
	t.did.append(d)
	for _, c := range t.cols {
		c.appendCode(0)
	}
	for i := range ev.Props {
		p := &ev.Props[i]
		if c := t.colByKey[p.Key]; c != nil {
			c.setCode(row, c.dict.code(p.Val.String()))
		}
	}
	if sc := t.colByKey["$session_id"]; sc != nil {
		t.sess.add(sc.at(row), row, ev.Time, name == "$pageview")
	}
	t.people.apply(t.dids, d, ev, row)
	if t.hist.on {
		if pe := personPart(ev); pe != nil {
			t.hist.journal = append(t.hist.journal, journalEntry{int32(row), pe})
		}
	}
	t.live++
	return row
}

// addBlockRef records that rows [first, first+n) are stored under key.
func (t *table) addBlockRef(ref blockRef) { t.blocks = append(t.blocks, ref) }

// blockOf returns the index in t.blocks of the block holding row.
func (t *table) blockOf(row int) int {
	i := sort.Search(len(t.blocks), func(i int) bool { return t.blocks[i].first+t.blocks[i].n > row })
	if i == len(t.blocks) || t.blocks[i].first > row {
		return -1
	}
	return i
}

// column returns the column of property key, or nil when it is not built.
func (t *table) column(key string) *column { return t.colByKey[key] }

// memBytes estimates the heap the table holds.
func (t *table) memBytes() int {
	n := t.ts.memBytes(8) + t.keys.memBytes(16) + len(t.idx.slots)*4 + len(t.idx.tags) + t.did.memBytes(4) + t.name.memBytes()
	for _, s := range t.dids.strs {
		n += len(s) + 40
	}
	n += len(t.people.lead)*9 + len(t.people.refused)*16
	for _, g := range t.people.group {
		n += cap(g) * 4
	}
	for _, c := range t.cols {
		n += c.memBytes()
	}
	return n
}

// runRoots returns the root of every distinct-id code, for a query, and
// the ids that are not their own root as bits (a few in a site: most
// persons have one id, or are named by it); the caller holds t.mu (read).
// The slices are shared by every query until ids are linked or deleted,
// and must not be changed: a query of a large site would otherwise copy
// megabytes of them first. New ids are appended in the spare capacity of
// the roots, beyond what earlier queries can see.
func (t *table) runRoots() (roots []uint32, moved []uint64) {
	t.rootsMu.Lock()
	defer t.rootsMu.Unlock()
	p := &t.people
	n := len(p.lead)
	if t.rootsGen != p.gen || len(t.roots) > n {
		t.roots, t.moved, t.rootsGen = nil, nil, p.gen
	}
	if len(t.roots) < n {
		if cap(t.roots) < n {
			grown := make([]uint32, len(t.roots), n+n/4)
			copy(grown, t.roots)
			t.roots = grown
		}
		moved := make([]uint64, (n+63)/64)
		copy(moved, t.moved)
		for d := len(t.roots); d < n; d++ {
			root := p.root[p.lead[d]]
			t.roots = append(t.roots, root)
			if root != uint32(d) {
				setBit(moved, uint32(d))
			}
		}
		t.moved = moved
	}
	return t.roots[:n:n], t.moved
}
