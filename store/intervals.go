package store

import (
	"sort"
	"time"
)

// Intervals of trends.
const (
	IntervalHour  = "hour"
	IntervalDay   = "day"
	IntervalWeek  = "week"
	IntervalMonth = "month"
)

// maxIntervals bounds the buckets of one answer.
const maxIntervals = 20000

// floorInterval returns the start, in t's location, of the interval holding
// t: the hour, the day, the ISO week (Monday) or the month.
func floorInterval(t time.Time, interval string) time.Time {
	y, m, d := t.Date()
	loc := t.Location()
	switch interval {
	case IntervalHour:
		// Subtracting the minutes keeps the instant's own offset, so the
		// repeated hour when DST ends is two hours.
		return t.Add(-time.Duration(t.Minute())*time.Minute - time.Duration(t.Second())*time.Second - time.Duration(t.Nanosecond()))
	case IntervalWeek:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, m, d-back, 0, 0, 0, 0, loc)
	case IntervalMonth:
		return time.Date(y, m, 1, 0, 0, 0, 0, loc)
	}
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// nextInterval returns the start of the interval after the one starting at
// t. Days, weeks and months are calendar ones, so they follow DST.
func nextInterval(t time.Time, interval string) time.Time {
	y, m, d := t.Date()
	loc := t.Location()
	switch interval {
	case IntervalHour:
		return floorInterval(t.Add(time.Hour), IntervalHour)
	case IntervalWeek:
		return time.Date(y, m, d+7, 0, 0, 0, 0, loc)
	case IntervalMonth:
		return time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	}
	return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
}

func intervalLabel(t time.Time, interval string) string {
	switch interval {
	case IntervalHour:
		return t.Format("2006-01-02T15:00")
	case IntervalMonth:
		return t.Format("2006-01")
	}
	return t.Format("2006-01-02")
}

// buckets are the intervals intersecting [from, to): bucket i covers
// [bounds[i], bounds[i+1]) (the first may start before from, the last end
// after to; only events in range are counted).
type buckets struct {
	bounds []int64
	labels []string
	last   int
}

func makeBuckets(from, to time.Time, interval string, tz *time.Location) (*buckets, error) {
	b := &buckets{labels: []string{}}
	if !from.Before(to) {
		return b, nil
	}
	cur := floorInterval(from.In(tz), interval)
	b.bounds = append(b.bounds, cur.UnixMilli())
	for cur.Before(to) {
		if len(b.labels) == maxIntervals {
			return nil, badQuery("more than %d intervals; choose a longer interval or a shorter range", maxIntervals)
		}
		b.labels = append(b.labels, intervalLabel(cur, interval))
		next := nextInterval(cur, interval)
		if !next.After(cur) { // cannot happen with real zones; never loop
			next = cur.Add(time.Hour)
		}
		cur = next
		b.bounds = append(b.bounds, cur.UnixMilli())
	}
	return b, nil
}

func (b *buckets) n() int { return len(b.labels) }

// of returns the bucket of ts, which is in range. Rows come roughly in time
// order, so the last answer is tried first.
func (b *buckets) of(ts int64) int {
	if i := b.last; ts >= b.bounds[i] && ts < b.bounds[i+1] {
		return i
	}
	i := sort.Search(len(b.labels), func(i int) bool { return b.bounds[i+1] > ts })
	b.last = i
	return i
}
