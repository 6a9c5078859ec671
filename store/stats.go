package store

import "context"

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

// sessionAcc accumulates one session's events.
type sessionAcc struct {
	first, last int64
	events      uint32
	pageviews   uint32
	others      uint32 // events other than $pageview and $pageleave
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

func (w *sessionWindow) at(code uint32) *sessionAcc {
	switch {
	case len(w.accs) == 0:
		w.lo = code
		w.accs = make([]sessionAcc, 1, 1024)
	case code < w.lo:
		grown := make([]sessionAcc, int(w.lo-code)+len(w.accs), (int(w.lo-code)+len(w.accs))*2)
		copy(grown[w.lo-code:], w.accs)
		w.lo, w.accs = code, grown
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
	var sessions sessionWindow
	seen := make([]bool, r.nPersons())
	names, sids := newColReader(r.t.name), newColReader(sessCol)
	// add takes rows into the figures: every row's person is a visitor,
	// rows with a session into that session, and pageviews are counted
	// when countViews.
	add := func(ci int, rows []int32, countViews bool) {
		ts, dids := r.t.ts.chunk(ci), r.t.did.chunk(ci)
		nc, sc := names.chunk(ci), sids.chunk(ci)
		for _, off := range rows {
			if p := r.roots[dids[off]]; !seen[p] {
				seen[p] = true
				st.Visitors++
			}
			n := nc[off]
			if n == pv && countViews {
				st.Pageviews++
			}
			sid := sc[off]
			if sid == 0 {
				continue
			}
			a := sessions.at(sid)
			t := ts[off]
			if a.events == 0 {
				a.first, a.last = t, t
			}
			a.events++
			a.first, a.last = min(a.first, t), max(a.last, t)
			switch n {
			case pv:
				a.pageviews++
			case pl:
			default:
				a.others++
			}
		}
	}
	if !r.scoped {
		r.chunks(func(ci int, rows []int32) { add(ci, rows, true) })
	} else {
		// An event-property filter: pageviews are the passing ones, the
		// session figures and visitors are over the whole sessions with a
		// passing event (and the persons of passing events without one).
		var one [1]int32
		sel := r.selectedSessions(func(ci int, off int32) {
			nc, sc := names.chunk(ci), sids.chunk(ci)
			if nc[off] == pv {
				st.Pageviews++
			}
			if sc[off] == 0 {
				one[0] = off
				add(ci, one[:], false)
			}
		})
		r.wholeSessions(sel, func(ci int, rows []int32) { add(ci, rows, false) })
	}
	if n, share := r.serverShare(); n > 0 {
		st.JSShare = &share
	}
	r.end()
	var bounces, durMs int64
	for i := range sessions.accs {
		a := &sessions.accs[i]
		if a.events == 0 {
			continue
		}
		st.Sessions++
		durMs += a.last - a.first
		if a.pageviews == 1 && a.others == 0 {
			bounces++
		}
	}
	if st.Sessions > 0 {
		n := float64(st.Sessions)
		st.BounceRate = float64(bounces) / n
		st.AvgSessionSeconds = float64(durMs) / 1000 / n
		st.ViewsPerSession = float64(st.Pageviews) / n
	}
	s.addImportedStats(q, &st, bounces, durMs) // imported aggregates (imported.go)
	return st, nil
}
