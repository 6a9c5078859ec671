package store

import (
	"context"
	"sort"
)

// Trends math.
const (
	MathTotal  = "total"
	MathUnique = "unique"
	MathDAU    = "dau"
)

// maxSeriesEvents bounds the events of one trends or funnel query (a
// row's matches are a 32-bit mask).
const maxSeriesEvents = 20

// maxBreakdownValues is the number of values a trends breakdown shows per
// event.
const maxBreakdownValues = 25

// TrendsQuery asks for event counts over time.
type TrendsQuery struct {
	// Events are event names or actions; default $pageview.
	Events []string
	// Interval is hour, day (default), week (ISO, Monday) or month, in the
	// query's time zone.
	Interval string
	// Math is total (events, default), unique or dau (distinct persons per
	// interval; the two are the same).
	Math string
	// Breakdown, when set, splits each event's series by this property's
	// value: the 25 values with the most events of that event in range,
	// most first, ties by value; events without the property are left out.
	Breakdown string
}

// Trends is one series per event (and breakdown value), one number per
// interval.
type Trends struct {
	Labels []string      `json:"labels"`
	Series []TrendSeries `json:"series"`
}

// TrendSeries is one line of a trends chart.
type TrendSeries struct {
	Event string `json:"event"`
	// BreakdownValue is nil without a breakdown.
	BreakdownValue *string `json:"breakdown_value"`
	Data           []int   `json:"data"`
}

// Trends counts events per interval, zero-filled: one label per interval
// that intersects the range, labelled in the query's time zone
// (YYYY-MM-DDTHH:00, YYYY-MM-DD, the Monday's YYYY-MM-DD, YYYY-MM).
func (s *DB) Trends(ctx context.Context, q Query, tq TrendsQuery) (Trends, error) {
	var out Trends
	if len(tq.Events) == 0 {
		tq.Events = []string{"$pageview"}
	}
	if len(tq.Events) > maxSeriesEvents {
		return out, badQuery("at most %d events", maxSeriesEvents)
	}
	switch tq.Interval {
	case "":
		tq.Interval = IntervalDay
	case IntervalHour, IntervalDay, IntervalWeek, IntervalMonth:
	default:
		return out, badQuery("interval %q: want hour, day, week or month", tq.Interval)
	}
	switch tq.Math {
	case "":
		tq.Math = MathTotal
	case MathTotal, MathUnique, MathDAU:
	default:
		return out, badQuery("math %q: want total, unique or dau", tq.Math)
	}
	bk, err := makeBuckets(q.From, q.To, tq.Interval, q.tz())
	if err != nil {
		return out, err
	}
	var cols []string
	if tq.Breakdown != "" {
		cols = append(cols, tq.Breakdown)
	}
	r, specs, err := s.begin(ctx, q, tq.Events, cols...)
	if err != nil {
		return out, err
	}
	defer r.end()
	es := r.compileEvents(specs)
	nb := bk.n()
	unique := tq.Math != MathTotal
	var bcol *colReader
	var strs []string
	if tq.Breakdown != "" {
		c := r.t.lookupColumn(tq.Breakdown)
		bcol, strs = newColReader(c), c.dict.strs
	}

	// Each matching (row, event) becomes an item: its event, breakdown
	// value, interval and person. Without breakdown or persons to count,
	// the counts are summed directly.
	direct := bcol == nil && !unique
	counts := make([]int, len(specs)*nb)
	var itSpec []uint8
	var itVal, itBucket, itPerson []uint32
	names := newColReader(r.t.name)
	r.chunks(func(ci int, rows []int32) {
		ts, dids, nc := r.t.ts.chunk(ci), r.t.did.chunk(ci), names.chunk(ci)
		var vc []uint32
		if bcol != nil {
			vc = bcol.chunk(ci)
		}
		for _, off := range rows {
			m := es.mask(ci<<chunkBits|int(off), nc[off])
			if m == 0 {
				continue
			}
			b := bk.of(ts[off])
			var v uint32
			if vc != nil {
				if v = vc[off]; v == 0 {
					continue
				}
			}
			for k := 0; m != 0; k, m = k+1, m>>1 {
				if m&1 == 0 {
					continue
				}
				if direct {
					counts[k*nb+b]++
					continue
				}
				itSpec = append(itSpec, uint8(k))
				itVal = append(itVal, v)
				itBucket = append(itBucket, uint32(b))
				itPerson = append(itPerson, r.roots[dids[off]])
			}
		}
	})
	nPersons := r.nPersons()
	r.end()

	out.Labels = bk.labels
	if bcol == nil {
		if unique {
			keys := make([]uint32, len(itSpec))
			for i := range keys {
				keys[i] = uint32(itSpec[i])*uint32(nb) + itBucket[i]
			}
			counts = countDistinct(keys, itPerson, len(counts), nPersons)
		}
		for k, sp := range specs {
			out.Series = append(out.Series, TrendSeries{Event: sp.label, Data: counts[k*nb : (k+1)*nb]})
		}
		s.addImportedTrends(q, tq, bk, &out) // imported aggregates (imported.go)
		return out, nil
	}

	// Breakdown: the top values of each event by events in range, then one
	// series per (event, value).
	type kv struct {
		k uint8
		v uint32
	}
	totals := make(map[kv]int)
	for i := range itSpec {
		totals[kv{itSpec[i], itVal[i]}]++
	}
	perSpec := make([][]kv, len(specs))
	for x := range totals {
		perSpec[x.k] = append(perSpec[x.k], x)
	}
	slot := make(map[kv]uint32)
	for k, vs := range perSpec {
		sort.Slice(vs, func(i, j int) bool {
			a, b := totals[vs[i]], totals[vs[j]]
			if a != b {
				return a > b
			}
			return strs[vs[i].v] < strs[vs[j].v]
		})
		if len(vs) > maxBreakdownValues {
			vs = vs[:maxBreakdownValues]
		}
		for _, x := range vs {
			slot[x] = uint32(len(out.Series))
			val := strs[x.v]
			out.Series = append(out.Series, TrendSeries{Event: specs[k].label, BreakdownValue: &val})
		}
	}
	ns := len(out.Series)
	var keys, persons []uint32
	counts = make([]int, ns*nb)
	for i := range itSpec {
		sl, ok := slot[kv{itSpec[i], itVal[i]}]
		if !ok {
			continue
		}
		key := sl*uint32(nb) + itBucket[i]
		if unique {
			keys = append(keys, key)
			persons = append(persons, itPerson[i])
		} else {
			counts[key]++
		}
	}
	if unique {
		counts = countDistinct(keys, persons, ns*nb, nPersons)
	}
	for i := range out.Series {
		out.Series[i].Data = counts[i*nb : (i+1)*nb]
	}
	return out, nil
}
