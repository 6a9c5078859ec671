package store

import (
	"strings"
	"sync"
	"sync/atomic"
)

// Person properties for flag evaluation: the person's own ($set,
// $set_once) and, when a condition names one, those derived from their
// first and latest events ($initial_<name>, <name>), exactly as the persons
// list shows them (persons.go). Finding a person's first and latest events
// would scan every row, so each site keeps the first and latest live row of
// every distinct id (didSpans), brought up to date as rows arrive.

// isDerivedProp reports whether key is a person property derived from
// events.
func isDerivedProp(key string) bool {
	k := strings.TrimPrefix(key, "$initial_")
	for _, d := range derivedPersonProps {
		if d == k {
			return true
		}
	}
	return false
}

// didSpans keeps, by distinct-id code, the first and latest live row of the
// id's events (row+1; 0: none), for the rows before upTo of table t.
type didSpans struct {
	mu          sync.Mutex
	t           *table
	upTo        int
	deleted     int // rows deleted when upTo was reached: a change starts afresh
	first, last []uint32
	catching    atomic.Bool // a background catch-up runs
}

// inlineSpanRows is how many new rows a flag request indexes itself; a
// larger gap is indexed in the background, and until then derived
// properties are left out.
const inlineSpanRows = 4096

// spanChunk is how many rows the background catch-up indexes per read
// lock.
const spanChunk = 1 << 16

func (st *flagState) spansOf(site string) *didSpans {
	if v, ok := st.spans.Load(site); ok {
		return v.(*didSpans)
	}
	v, _ := st.spans.LoadOrStore(site, &didSpans{})
	return v.(*didSpans)
}

// catchUp indexes at most max new rows of t; the caller holds t.mu (read)
// and ds.mu. It reports whether the index covers every row.
func (ds *didSpans) catchUp(t *table, max int) bool {
	n := t.rows()
	if del := n - t.live; ds.t != t || del != ds.deleted || n < ds.upTo {
		// Another table (reloaded) or rows deleted since: start afresh.
		ds.t, ds.upTo, ds.deleted = t, 0, del
		ds.first, ds.last = ds.first[:0], ds.last[:0]
	}
	end := min(n, ds.upTo+max)
	for row := ds.upTo; row < end; row++ {
		ts := t.ts.at(row)
		if ts == deletedTime {
			continue
		}
		d := int(t.did.at(row))
		for d >= len(ds.first) {
			ds.first = append(ds.first, 0)
			ds.last = append(ds.last, 0)
		}
		if f := ds.first[d]; f == 0 || ts < t.ts.at(int(f-1)) {
			ds.first[d] = uint32(row + 1)
		}
		if l := ds.last[d]; l == 0 || ts >= t.ts.at(int(l-1)) {
			ds.last[d] = uint32(row + 1)
		}
	}
	ds.upTo = end
	return end == n
}

// background indexes the rest of the site's rows, a chunk per read lock,
// so that the store's writers wait for one chunk at most.
func (s *DB) catchUpSpans(site string, ds *didSpans) {
	if !ds.catching.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer ds.catching.Store(false)
		for {
			t := s.table(site)
			if t == nil || t.rlock() != nil {
				return
			}
			ds.mu.Lock()
			done := ds.catchUp(t, spanChunk)
			ds.mu.Unlock()
			t.mu.RUnlock()
			if done {
				return
			}
		}
	}()
}

// span is the first and latest live event of the person rooted at r, from
// the index; the caller holds t.mu (read) and ds.mu, and ds covers t.
func (ds *didSpans) span(t *table, r uint32) (personSpan, bool) {
	var sp personSpan
	found := false
	for _, d := range t.people.members(r) {
		if int(d) >= len(ds.first) || ds.first[d] == 0 {
			continue
		}
		f, l := int(ds.first[d]-1), int(ds.last[d]-1)
		ft, lt := t.ts.at(f), t.ts.at(l)
		if !found {
			sp = personSpan{first: ft, firstRow: f, last: lt, lastRow: l}
			found = true
			continue
		}
		// As a scan in row order would choose: the earliest time, the first
		// row among equals; the latest time, the last row among equals.
		if ft < sp.first || ft == sp.first && f < sp.firstRow {
			sp.first, sp.firstRow = ft, f
		}
		if lt > sp.last || lt == sp.last && l > sp.lastRow {
			sp.last, sp.lastRow = lt, l
		}
	}
	return sp, found
}

// flagPerson returns the stored properties of the person of distinctID
// (with the derived ones when derived is set) and the distinct id of its
// root, without waiting for a writer.
func (s *DB) flagPerson(site, distinctID string, derived bool) (Props, string) {
	t := s.table(site)
	if t == nil || !t.mu.TryRLock() {
		return nil, ""
	}
	defer t.mu.RUnlock()
	if t.closed {
		return nil, ""
	}
	d, ok := t.dids.lookup(distinctID)
	if !ok || d == 0 {
		return nil, ""
	}
	r := t.people.rootOf(d)
	root := t.dids.str(r)
	if derived {
		ds := s.flags.spansOf(site)
		if ds.mu.TryLock() {
			covered := ds.catchUp(t, inlineSpanRows)
			var sp personSpan
			found := false
			if covered {
				sp, found = ds.span(t, r)
			}
			ds.mu.Unlock()
			if !covered {
				s.catchUpSpans(site, ds)
			}
			if found {
				return t.personProps(r, sp), root
			}
		}
	}
	return append(Props(nil), t.people.props[r]...), root
}
