package store

// Server pageviews (SPEC §8): the module stores a `$server_pageview` for
// every page it serves, and the snippet's `$pageview` of that page load
// carries the same `$pageview_ref`. Every report counts a page load once:
// a server pageview counts as a `$pageview` until a snippet pageview
// confirms it, and a confirmed one is left out of every report (it stays
// in the log, the events list and exports). The pairing is made as rows are
// added, live and at replay alike, so reports pay nothing for it but one
// bit test in chunks that hold confirmed rows.

const (
	// ServerPageview is the event the module stores for a page it served.
	ServerPageview = "$server_pageview"
	// PageviewRef pairs a server pageview with the snippet's pageview.
	PageviewRef = "$pageview_ref"

	// maxWaitingRefs bounds the unconfirmed server pageviews remembered
	// for pairing; a snippet pageview arrives within seconds, so only a
	// confirmation later than this many server pageviews is missed.
	maxWaitingRefs = 1 << 18
	// maxEarlyRefs bounds the snippet pageviews remembered whose server
	// pageview has not been seen (it is normally stored first).
	maxEarlyRefs = 1 << 14
)

// bitset is a growable set of rows.
type bitset []uint64

func (b *bitset) set(row int) {
	w := row >> 6
	for len(*b) <= w {
		*b = append(*b, 0)
	}
	(*b)[w] |= 1 << (row & 63)
}

func (b bitset) has(row int) bool {
	w := row >> 6
	return w < len(b) && b[w]&(1<<(row&63)) != 0
}

// refQueue is a map of refs with first-in-first-out eviction.
type refQueue struct {
	rows  map[string]int32
	order []string
	head  int
	max   int
}

func (q *refQueue) put(ref string, row int32) {
	if q.rows == nil {
		q.rows = make(map[string]int32)
	}
	if _, ok := q.rows[ref]; ok {
		return
	}
	if len(q.rows) >= q.max {
		// Evict the oldest still present.
		for q.head < len(q.order) {
			old := q.order[q.head]
			q.order[q.head] = ""
			q.head++
			if _, ok := q.rows[old]; ok {
				delete(q.rows, old)
				break
			}
		}
	}
	if q.head > len(q.order)/2 && q.head > 1024 {
		q.order = append(q.order[:0], q.order[q.head:]...)
		q.head = 0
	}
	q.rows[ref] = row
	q.order = append(q.order, ref)
}

func (q *refQueue) take(ref string) (int32, bool) {
	row, ok := q.rows[ref]
	if ok {
		delete(q.rows, ref)
	}
	return row, ok
}

// pageloads is the pairing state of one table.
type pageloads struct {
	server  bitset // rows that are server pageviews
	hidden  bitset // confirmed server pageviews
	nServer int
	// hiddenIn counts the hidden rows of each chunk, so chunks without any
	// are not tested row by row.
	hiddenIn []int32
	waiting  refQueue // ref → row of an unconfirmed server pageview
	early    refQueue // refs of snippet pageviews seen first
}

// add records the pairing of the row of ev and returns the name the row is
// indexed under: a server pageview is indexed as a $pageview while
// unconfirmed. confirmed is an earlier row that ev confirmed, or -1; it is
// to be indexed under its own name again.
func (p *pageloads) add(row int, ev *Event) (name string, confirmed int) {
	confirmed = -1
	name = p.pair(row, ev, &confirmed)
	return name, confirmed
}

func (p *pageloads) pair(row int, ev *Event, confirmed *int) string {
	switch ev.Name {
	case ServerPageview:
		p.server.set(row)
		p.nServer++
		ref := ev.Props.Str(PageviewRef)
		if ref != "" {
			if p.early.max == 0 {
				p.early.max, p.waiting.max = maxEarlyRefs, maxWaitingRefs
			}
			if _, ok := p.early.take(ref); ok {
				p.hide(row)
				return ev.Name
			}
			p.waiting.put(cloneRef(ref), int32(row))
		}
		return "$pageview"
	case "$pageview":
		// Server pageviews are stored in the background, so the snippet's
		// pageview may be first: its ref is remembered for a while.
		if ref := ev.Props.Str(PageviewRef); ref != "" {
			if p.early.max == 0 {
				p.early.max, p.waiting.max = maxEarlyRefs, maxWaitingRefs
			}
			if r, ok := p.waiting.take(ref); ok {
				p.hide(int(r))
				*confirmed = int(r)
			} else {
				p.early.put(cloneRef(ref), int32(row))
			}
		}
	}
	return ev.Name
}

func cloneRef(s string) string { return string([]byte(s)) }

func (p *pageloads) hide(row int) {
	if p.hidden.has(row) {
		return
	}
	p.hidden.set(row)
	ci := row >> chunkBits
	for len(p.hiddenIn) <= ci {
		p.hiddenIn = append(p.hiddenIn, 0)
	}
	p.hiddenIn[ci]++
}

// visible drops the hidden rows from sel, the offsets of chunk ci.
func (p *pageloads) visible(ci int, sel []int32) []int32 {
	if ci >= len(p.hiddenIn) || p.hiddenIn[ci] == 0 {
		return sel
	}
	base := ci << chunkBits
	out := sel[:0]
	for _, off := range sel {
		if !p.hidden.has(base + int(off)) {
			out = append(out, off)
		}
	}
	return out
}
