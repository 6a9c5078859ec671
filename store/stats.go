package store

import (
	"context"
	"math"
)

// Stats is the overview of a range (SPEC §4 Definitions).
type Stats struct {
	// Visitors is the number of distinct persons with an event.
	Visitors int `json:"visitors"`
	// Pageviews is the number of $pageview events.
	Pageviews int `json:"pageviews"`
	// Sessions is the number of distinct non-empty $session_id values.
	Sessions int `json:"sessions"`
	// BounceRate is the fraction of sessions whose events are exactly one
	// $pageview and any number of $pageleave; 0 without sessions.
	BounceRate float64 `json:"bounce_rate"`
	// AvgSessionSeconds is the mean over sessions of their last minus their
	// first event time.
	AvgSessionSeconds float64 `json:"avg_session_seconds"`
	// ViewsPerSession is Pageviews / Sessions; 0 without sessions.
	ViewsPerSession float64 `json:"views_per_session"`
	// JSShare is the share of server pageviews that a snippet pageview
	// confirmed: the visits where the snippet ran (SPEC §8); absent
	// without server pageviews in range.
	JSShare *float64 `json:"js_share,omitempty"`
	// ImportedDays is how many days of imported aggregates (another
	// tool's export) are added in; the UI says "includes imported data".
	ImportedDays int `json:"imported_days,omitempty"`
}

// sessionAcc accumulates one session's events: what the figures need of
// them, in 24 bytes (a 30-day query of a busy site meets millions).
type sessionAcc struct {
	first, last int64
	met         bool  // the session has an event
	pageviews   uint8 // $pageview events, counted up to 2: a bounce has one
	others      bool  // an event other than $pageview and $pageleave
}

// add takes the event at t, of name code n, into the session.
func (a *sessionAcc) add(t int64, n, pv, pl uint32) {
	if !a.met {
		a.first, a.last, a.met = t, t, true
	}
	a.first, a.last = min(a.first, t), max(a.last, t)
	switch n {
	case pv:
		a.pageviews = min(a.pageviews+1, 2)
	case pl:
	default:
		a.others = true
	}
}

// merge takes b's events into a.
func (a *sessionAcc) merge(b *sessionAcc) {
	switch {
	case !b.met:
	case !a.met:
		*a = *b
	default:
		a.first, a.last = min(a.first, b.first), max(a.last, b.last)
		a.pageviews = min(a.pageviews+b.pageviews, 2)
		a.others = a.others || b.others
	}
}

// sessionWindow holds the accumulators of the sessions a query meets, by
// code, for the codes between the lowest and the highest met: codes are
// given in order of first appearance, so a day's sessions take a narrow
// band of them, and a query over one day of years of history neither
// allocates nor walks an entry for every session ever seen.
type sessionWindow struct {
	lo   uint32
	accs []sessionAcc
}

// reserve makes the window hold codes lo to hi at once.
func (w *sessionWindow) reserve(lo, hi uint32) {
	if len(w.accs) == 0 && lo <= hi {
		w.lo, w.accs = lo, make([]sessionAcc, hi-lo+1)
	}
}

// codeRange returns the lowest and highest code other than 0 in the given
// chunks of c (lo > hi when there is none).
func (c *column) codeRange(chunks []int) (lo, hi uint32) {
	lo = math.MaxUint32
	for _, ci := range chunks {
		if ci >= len(c.chunks) {
			continue
		}
		ch := &c.chunks[ci]
		switch ch.w {
		case 1:
			lo, hi = codeRange(ch.b8, lo, hi)
		case 2:
			lo, hi = codeRange(ch.b16, lo, hi)
		case 4:
			lo, hi = codeRange(ch.b32, lo, hi)
		}
	}
	return lo, hi
}

func codeRange[T uint8 | uint16 | uint32](codes []T, lo, hi uint32) (uint32, uint32) {
	for _, x := range codes {
		if x != 0 {
			lo, hi = min(lo, uint32(x)), max(hi, uint32(x))
		}
	}
	return lo, hi
}

func (w *sessionWindow) at(code uint32) *sessionAcc {
	switch {
	case len(w.accs) == 0:
		w.lo = code
		w.accs = make([]sessionAcc, 1, 1024)
	case code < w.lo:
		// Room below too, as much again: a worker that starts mid-range
		// meets the codes of sessions begun before its chunks, downwards.
		n := int(w.lo-code) + len(w.accs)
		lo := uint32(max(0, int(code)-n))
		grown := make([]sessionAcc, int(w.lo-lo)+len(w.accs), int(w.lo-lo)+cap(w.accs))
		copy(grown[w.lo-lo:], w.accs)
		w.lo, w.accs = lo, grown
	case int(code-w.lo) >= len(w.accs):
		n := int(code-w.lo) + 1
		if n > cap(w.accs) {
			grown := make([]sessionAcc, n, n*2)
			copy(grown, w.accs)
			w.accs = grown
		}
		w.accs = w.accs[:n]
	}
	return &w.accs[code-w.lo]
}

// sessionTotals returns the number of sessions of the windows taken
// together, of bounces among them and the sum of their durations: a
// session met by several workers counts once, its figures combined.
func sessionTotals(ws []*sessionWindow) (sessions int, bounces, durMs int64) {
	lo, hi := uint32(math.MaxUint32), uint32(0)
	for _, w := range ws {
		if len(w.accs) > 0 {
			lo, hi = min(lo, w.lo), max(hi, w.lo+uint32(len(w.accs)))
		}
	}
	for code := lo; code < hi; code++ {
		var a sessionAcc
		for _, w := range ws {
			if code >= w.lo && code-w.lo < uint32(len(w.accs)) {
				a.merge(&w.accs[code-w.lo])
			}
		}
		if !a.met {
			continue
		}
		sessions++
		durMs += a.last - a.first
		if a.pageviews == 1 && !a.others {
			bounces++
		}
	}
	return sessions, bounces, durMs
}

// Stats computes the overview of q's events in range (SPEC §4). Filters on
// session properties keep whole sessions. With a filter on an event
// property, pageviews are the passing pageviews, while visitors, sessions,
// bounce rate and duration are over the whole sessions that have a passing
// event (Plausible's filter scope), plus the persons of passing events
// without a session.
func (s *DB) Stats(ctx context.Context, q Query) (Stats, error) {
	var st Stats
	r, _, err := s.begin(ctx, q, nil, "$session_id")
	if err != nil {
		return st, err
	}
	defer r.end()
	pv, pl := r.nameCode("$pageview"), r.nameCode("$pageleave")
	sessCol := r.t.column("$session_id")
	// Each worker of the scan keeps its own figures; they are merged after.
	type acc struct {
		seen      []uint64 // distinct ids met, as bits
		sessions  sessionWindow
		pageviews int
		one       [1]int32
		names     *colReader
		sids      *colReader
	}
	sc := r.scan()
	accs := make([]acc, sc.n)
	for w := range accs {
		accs[w] = acc{seen: make([]uint64, (r.nPersons()+63)/64), names: newColReader(r.t.name), sids: newColReader(sessCol)}
		// The sessions of the worker's chunks, allocated once.
		if sessCol != nil {
			accs[w].sessions.reserve(sessCol.codeRange(sc.part(w)))
		}
	}
	// add takes rows into worker w's figures: every row's person is a
	// visitor, rows with a session into that session, and pageviews are
	// counted when countViews.
	add := func(w, ci int, rows []int32, countViews bool) {
		a := &accs[w]
		ts, dids := r.t.ts.chunk(ci), r.t.did.chunk(ci)
		nc, sc := a.names.chunk(ci), a.sids.chunk(ci)
		seen := a.seen
		for _, off := range rows {
			setBit(seen, dids[off])
			n := nc[off]
			if n == pv && countViews {
				a.pageviews++
			}
			sid := sc[off]
			if sid == 0 {
				continue
			}
			a.sessions.at(sid).add(ts[off], n, pv, pl)
		}
	}
	if !r.scoped {
		sc.run(func(w, ci int, rows []int32) { add(w, ci, rows, true) })
	} else {
		// An event-property filter: pageviews are the passing ones, the
		// session figures and visitors are over the whole sessions with a
		// passing event (and the persons of passing events without one).
		sel := r.selectedSessions(func(w, ci int, rows []int32) {
			a := &accs[w]
			nc, sc := a.names.chunk(ci), a.sids.chunk(ci)
			for _, off := range rows {
				if nc[off] == pv {
					a.pageviews++
				}
				if sc[off] == 0 {
					a.one[0] = off
					add(w, ci, a.one[:], false)
				}
			}
		})
		r.wholeSessions(sel, func(w, ci int, rows []int32) { add(w, ci, rows, false) })
	}
	windows := make([]*sessionWindow, len(accs))
	for w := range accs {
		a := &accs[w]
		if w > 0 {
			orBits(accs[0].seen, a.seen)
		}
		st.Pageviews += a.pageviews
		windows[w] = &a.sessions
	}
	st.Visitors = r.countPersons(accs[0].seen, make([]uint64, len(accs[0].seen)))
	if n, share := r.serverShare(); n > 0 {
		st.JSShare = &share
	}
	r.end()
	var bounces, durMs int64
	st.Sessions, bounces, durMs = sessionTotals(windows)
	if st.Sessions > 0 {
		n := float64(st.Sessions)
		st.BounceRate = float64(bounces) / n
		st.AvgSessionSeconds = float64(durMs) / 1000 / n
		st.ViewsPerSession = float64(st.Pageviews) / n
	}
	s.addImportedStats(q, &st, bounces, durMs) // imported aggregates (imported.go)
	return st, nil
}
