package store

import (
	"context"
	"math"
	"sort"
	"strconv"
)

// Trends math.
const (
	MathTotal  = "total"
	MathSum    = "sum"
	MathAvg    = "avg"
	MathMin    = "min"
	MathMax    = "max"
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
	// MathProperty is the numeric property sum, avg, min and max
	// aggregate; events without a number in it are left out.
	MathProperty string
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
	BreakdownValue *string   `json:"breakdown_value"`
	Data           []float64 `json:"data"`
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
	case MathSum, MathAvg, MathMin, MathMax:
		if tq.MathProperty == "" {
			return out, badQuery("math %s needs math_property", tq.Math)
		}
	default:
		return out, badQuery("math %q: want total, unique, dau, sum, avg, min or max", tq.Math)
	}
	agg := tq.Math == MathSum || tq.Math == MathAvg || tq.Math == MathMin || tq.Math == MathMax
	bk, err := makeBuckets(q.From, q.To, tq.Interval, q.tz())
	if err != nil {
		return out, err
	}
	var cols []string
	if tq.Breakdown != "" {
		cols = append(cols, tq.Breakdown)
	}
	if agg {
		cols = append(cols, tq.MathProperty)
	}
	r, specs, err := s.begin(ctx, q, tq.Events, cols...)
	if err != nil {
		return out, err
	}
	defer r.end()
	es := r.compileEvents(specs)
	nb := bk.n()
	unique := tq.Math == MathUnique || tq.Math == MathDAU
	var bc *column
	var strs []string
	if tq.Breakdown != "" {
		bc = r.t.lookupColumn(tq.Breakdown)
		strs = bc.dict.strs
	}
	var numCol *column
	if agg {
		numCol = r.t.lookupColumn(tq.MathProperty)
	}
	nPersons := r.nPersons()

	// Without breakdown or persons to count, the counts are summed
	// directly. Persons per interval are sets of bits by distinct id
	// (taken to persons at the end) when they take at most 64 MB for all
	// workers. Otherwise each matching (row,
	// event) becomes an item: its event, breakdown value, interval and
	// person (or number).
	direct := bc == nil && !unique && !agg
	sc := r.scan()
	nKeys := len(specs) * nb
	bitsets := bc == nil && unique && uint64(nKeys)*uint64(nPersons)*uint64(sc.n) <= maxSetBits
	type acc struct {
		counts                    []int
		sets                      [][]uint64 // by key, the distinct ids met
		itSpec                    []uint8
		itVal, itBucket, itPerson []uint32
		itNum                     []float64
		es                        *eventSet
		bk                        buckets
		names, vals, nums         *colReader
		numOf                     map[uint32]float64
	}
	accs := make([]acc, sc.n)
	ess := es.forWorkers(sc.n)
	for w := range accs {
		a := &accs[w]
		a.es, a.bk, a.names = ess[w], *bk, newColReader(r.t.name)
		switch {
		case direct:
			a.counts = make([]int, nKeys)
		case bitsets:
			a.sets = make([][]uint64, nKeys)
		}
		if bc != nil {
			a.vals = newColReader(bc)
		}
		if agg {
			a.nums, a.numOf = newColReader(numCol), map[uint32]float64{}
		}
	}
	sc.run(func(w, ci int, rows []int32) {
		a := &accs[w]
		es, bk := a.es, &a.bk
		ts, dids, nc := r.t.ts.chunk(ci), r.t.did.chunk(ci), a.names.chunk(ci)
		var vc, numc []uint32
		if bc != nil {
			vc = a.vals.chunk(ci)
		}
		if agg {
			numc = a.nums.chunk(ci)
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
			var x float64
			if agg {
				c := numc[off]
				n, ok := a.numOf[c]
				if !ok {
					n = parseNumber(numCol.dict.str(c))
					a.numOf[c] = n
				}
				if math.IsNaN(n) {
					continue
				}
				x = n
			}
			for k := 0; m != 0; k, m = k+1, m>>1 {
				if m&1 == 0 {
					continue
				}
				switch {
				case direct:
					a.counts[k*nb+b]++
					continue
				case bitsets:
					set := a.sets[k*nb+b]
					if set == nil {
						set = make([]uint64, (nPersons+63)/64)
						a.sets[k*nb+b] = set
					}
					setBit(set, dids[off])
					continue
				}
				a.itSpec = append(a.itSpec, uint8(k))
				a.itBucket = append(a.itBucket, uint32(b))
				if bc != nil {
					a.itVal = append(a.itVal, v)
				}
				if agg {
					a.itNum = append(a.itNum, x)
				}
				if unique {
					a.itPerson = append(a.itPerson, r.root(dids[off]))
				}
			}
		}
	})
	r.end()
	// The workers' items, in chunk order (each worker's chunks follow the
	// previous worker's).
	itSpec, itVal, itBucket, itPerson, itNum := accs[0].itSpec, accs[0].itVal, accs[0].itBucket, accs[0].itPerson, accs[0].itNum
	for _, a := range accs[1:] {
		itSpec, itVal, itBucket = append(itSpec, a.itSpec...), append(itVal, a.itVal...), append(itBucket, a.itBucket...)
		itPerson, itNum = append(itPerson, a.itPerson...), append(itNum, a.itNum...)
	}
	counts := accs[0].counts
	if counts == nil {
		counts = make([]int, nKeys)
	}
	for _, a := range accs[1:] {
		for i, n := range a.counts {
			counts[i] += n
		}
	}

	out.Labels = bk.labels
	if bc == nil {
		var data []float64
		switch {
		case agg:
			keys := make([]uint32, len(itSpec))
			for i := range keys {
				keys[i] = uint32(itSpec[i])*uint32(nb) + itBucket[i]
			}
			data = aggregate(tq.Math, keys, itNum, len(counts))
		case bitsets:
			data = make([]float64, nKeys)
			scratch := make([]uint64, (nPersons+63)/64)
			for key := range data {
				var set []uint64
				for _, a := range accs {
					switch b := a.sets[key]; {
					case b == nil:
					case set == nil:
						set = b
					default:
						orBits(set, b)
					}
				}
				data[key] = float64(r.countPersons(set, scratch))
			}
		case unique:
			keys := make([]uint32, len(itSpec))
			for i := range keys {
				keys[i] = uint32(itSpec[i])*uint32(nb) + itBucket[i]
			}
			data = floats(countDistinct(keys, itPerson, len(counts), nPersons))
		default:
			data = floats(counts)
		}
		for k, sp := range specs {
			out.Series = append(out.Series, TrendSeries{Event: sp.label, Data: data[k*nb : (k+1)*nb]})
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
	var xs []float64
	counts = make([]int, ns*nb)
	for i := range itSpec {
		sl, ok := slot[kv{itSpec[i], itVal[i]}]
		if !ok {
			continue
		}
		key := sl*uint32(nb) + itBucket[i]
		switch {
		case agg:
			keys = append(keys, key)
			xs = append(xs, itNum[i])
		case unique:
			keys = append(keys, key)
			persons = append(persons, itPerson[i])
		default:
			counts[key]++
		}
	}
	var data []float64
	switch {
	case agg:
		data = aggregate(tq.Math, keys, xs, ns*nb)
	case unique:
		data = floats(countDistinct(keys, persons, ns*nb, nPersons))
	default:
		data = floats(counts)
	}
	for i := range out.Series {
		out.Series[i].Data = data[i*nb : (i+1)*nb]
	}
	return out, nil
}

func floats(xs []int) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

// parseNumber reads a property's value as a number; NaN when it is none.
func parseNumber(s string) float64 {
	if s == "" {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) {
		return math.NaN()
	}
	return v
}

// aggregate computes sum, avg, min or max of xs by key; keys without a
// value give 0.
func aggregate(math_ string, keys []uint32, xs []float64, n int) []float64 {
	out := make([]float64, n)
	cnt := make([]int, n)
	for i, k := range keys {
		x := xs[i]
		switch {
		case cnt[k] == 0:
			out[k] = x
		case math_ == MathMin:
			out[k] = min(out[k], x)
		case math_ == MathMax:
			out[k] = max(out[k], x)
		default:
			out[k] += x
		}
		cnt[k]++
	}
	if math_ == MathAvg {
		for k := range out {
			if cnt[k] > 0 {
				out[k] /= float64(cnt[k])
			}
		}
	}
	for k := range out {
		out[k] = math.Round(out[k]*1e9) / 1e9
	}
	return out
}
