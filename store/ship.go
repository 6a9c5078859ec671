package store

import "time"

// IntervalLabels returns the labels Trends gives the intervals of
// [from, to) in tz (nil is UTC; hour, day, week or month), so that another backend
// answers with the same ones.
func IntervalLabels(from, to time.Time, interval string, tz *time.Location) ([]string, error) {
	if tz == nil {
		tz = time.UTC
	}
	b, err := makeBuckets(from, to, interval, tz)
	if err != nil {
		return nil, err
	}
	return b.labels, nil
}
