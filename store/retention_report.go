package store

import (
	"context"
	"math"
	"time"
)

// Retention periods.
const (
	PeriodDay  = "day"
	PeriodWeek = "week"
)

// RetentionQuery asks how many persons come back.
type RetentionQuery struct {
	// StartEvent puts a person in a cohort; default $pageview.
	StartEvent string
	// ReturnEvent counts them as back; default $pageview.
	ReturnEvent string
	// Period is day (default) or week.
	Period string
	// Periods is the number of values per cohort; default 8, at most 60.
	Periods int
}

// RetentionCohort is the persons who started in one period.
type RetentionCohort struct {
	// Date is the period's start, YYYY-MM-DD in the query's time zone.
	Date string `json:"date"`
	Size int    `json:"size"`
	// Values has Periods entries: values[0] is Size, values[k] the cohort's
	// persons who did the return event in the k-th period after theirs.
	Values []int `json:"values"`
}

// Retention computes cohorts over periods aligned to from: period c is
// [from + c·P, from + (c+1)·P) clipped to the range, P one calendar day or
// week in the query's time zone, one cohort for every period intersecting
// the range. A person belongs to the cohort of the period holding their
// first StartEvent in range; values[k] counts the cohort's persons with a
// ReturnEvent in range in period c+k (0 when that period lies beyond the
// range).
func (s *DB) Retention(ctx context.Context, q Query, rq RetentionQuery) ([]RetentionCohort, error) {
	if rq.StartEvent == "" {
		rq.StartEvent = "$pageview"
	}
	if rq.ReturnEvent == "" {
		rq.ReturnEvent = "$pageview"
	}
	step := 1
	switch rq.Period {
	case "", PeriodDay:
	case PeriodWeek:
		step = 7
	default:
		return nil, badQuery("period %q: want day or week", rq.Period)
	}
	if rq.Periods <= 0 {
		rq.Periods = 8
	}
	rq.Periods = min(rq.Periods, 60)

	periods := &buckets{}
	from := q.From.In(q.tz())
	if from.Before(q.To) {
		periods.bounds = append(periods.bounds, from.UnixMilli())
		for c := 1; ; c++ {
			if c > maxIntervals {
				return nil, badQuery("more than %d periods; choose weeks or a shorter range", maxIntervals)
			}
			b := from.AddDate(0, 0, c*step)
			periods.labels = append(periods.labels, from.AddDate(0, 0, (c-1)*step).Format(time.DateOnly))
			periods.bounds = append(periods.bounds, b.UnixMilli())
			if !b.Before(q.To) {
				break
			}
		}
	}

	r, specs, err := s.begin(ctx, q, []string{rq.StartEvent, rq.ReturnEvent})
	if err != nil {
		return nil, err
	}
	defer r.end()
	es := r.compileEvents(specs)
	nPersons := r.nPersons()
	nc := periods.n()
	// Each worker of the scan keeps, by distinct id, the first start
	// event and the periods of return events: as bits beside it when
	// there are at most 64 periods, else as (id, period) pairs.
	asBits := nc <= 64
	type acc struct {
		persons              []retPerson
		retPerson, retPeriod []uint32
		es                   *eventSet
		periods              buckets
		names                *colReader
	}
	sc := r.scan()
	accs := make([]acc, sc.n)
	ess := es.forWorkers(sc.n)
	for w := range accs {
		a := &accs[w]
		a.persons, a.es, a.periods, a.names = make([]retPerson, nPersons), ess[w], *periods, newColReader(r.t.name)
		for p := range a.persons {
			a.persons[p].first = math.MaxInt64
		}
	}
	sc.run(func(w, ci int, rows []int32) {
		a := &accs[w]
		ts, dids, nc := r.t.ts.chunk(ci), r.t.did.chunk(ci), a.names.chunk(ci)
		persons := a.persons
		for _, off := range rows {
			m := a.es.mask(ci<<chunkBits|int(off), nc[off])
			if m == 0 {
				continue
			}
			p, t := dids[off], ts[off]
			rp := &persons[p]
			if m&1 != 0 && t < rp.first {
				rp.first = t
			}
			if m&2 != 0 {
				pi := uint32(a.periods.of(t))
				if asBits {
					rp.ret |= 1 << pi
				} else if n := len(a.retPerson); n == 0 || a.retPerson[n-1] != p || a.retPeriod[n-1] != pi {
					a.retPerson = append(a.retPerson, p)
					a.retPeriod = append(a.retPeriod, pi)
				}
			}
		}
	})
	r.end()
	persons := accs[0].persons
	for _, a := range accs[1:] {
		for d := range a.persons {
			persons[d].merge(&a.persons[d])
		}
	}
	// By distinct id until now: the figures of each person's ids go to
	// its root.
	for d, p := range r.roots {
		if p != uint32(d) {
			persons[p].merge(&persons[d])
			persons[d] = retPerson{first: math.MaxInt64}
		}
	}
	if !asBits {
		for _, a := range accs {
			for i, d := range a.retPerson {
				a.retPerson[i] = r.roots[d]
			}
		}
	}

	out := make([]RetentionCohort, nc)
	for c := range out {
		out[c] = RetentionCohort{Date: periods.labels[c], Values: make([]int, rq.Periods)}
	}
	cohort := make([]int32, nPersons)
	for p := range persons {
		cohort[p] = -1
		if f := persons[p].first; f != math.MaxInt64 {
			c := periods.of(f)
			cohort[p] = int32(c)
			out[c].Size++
		}
	}
	// Which later periods each person came back in, as bits by offset k.
	back := make([]uint64, nPersons)
	if asBits {
		for p := range persons {
			if c := cohort[p]; c >= 0 {
				back[p] = persons[p].ret >> c &^ 1
			}
		}
	} else {
		for _, a := range accs {
			for i, p := range a.retPerson {
				if c := cohort[p]; c >= 0 {
					if k := int(a.retPeriod[i]) - int(c); k >= 1 && k < rq.Periods {
						back[p] |= 1 << k
					}
				}
			}
		}
	}
	for p, bits := range back {
		for k := 1; bits != 0 && k < rq.Periods; k++ {
			if bits&(1<<k) != 0 {
				out[cohort[p]].Values[k]++
			}
		}
	}
	for c := range out {
		out[c].Values[0] = out[c].Size
	}
	return out, nil
}

// retPerson is what a retention scan keeps of an id, then of a person:
// the time of their first start event (none: MaxInt64) and the periods
// they came back in, as bits (when there are at most 64), side by side
// for one memory read.
type retPerson struct {
	first int64
	ret   uint64
}

func (a *retPerson) merge(b *retPerson) {
	a.first = min(a.first, b.first)
	a.ret |= b.ret
}
