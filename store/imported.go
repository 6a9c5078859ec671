package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tidwall/buntdb"
)

// Imported aggregates: daily numbers brought from another analytics tool
// that exports aggregates, not events (Plausible CE's CSV export). They are
// kept per site, table and day under
//
//	i:<site>\x00<table>\x00<YYYY-MM-DD>
//
// as JSON, and added into the overview (Stats) and its breakdowns for the
// days they cover, as Plausible does with its own imports. Importing a day
// of a table again replaces it, so a second import of the same export
// changes nothing.

// ImportedTotals is a day's headline numbers (Plausible's imported_visitors).
type ImportedTotals struct {
	Visitors      int   `json:"visitors"`
	Pageviews     int   `json:"pageviews"`
	Visits        int   `json:"visits"`
	Bounces       int   `json:"bounces"`
	VisitDuration int64 `json:"visit_duration"` // seconds, summed over visits
}

// ImportedRow is one value of a day's breakdown table.
type ImportedRow struct {
	Value     string `json:"value"`
	Visitors  int    `json:"visitors"`
	Pageviews int    `json:"pageviews,omitempty"`
	Visits    int    `json:"visits,omitempty"`
}

// ImportedTotalsTable is the table name of the headline numbers; the other
// tables are named by the event property they break down ("$pathname",
// "$referring_domain", "utm_source", "$browser", ...).
const ImportedTotalsTable = "totals"

func importedKey(site, table, day string) string {
	return "i:" + site + "\x00" + table + "\x00" + day
}

// SetImportedDay stores (replacing) the totals of site on day (YYYY-MM-DD).
func (s *DB) SetImportedDay(site, day string, t ImportedTotals) error {
	return s.setImported(site, ImportedTotalsTable, day, t)
}

// SetImportedRows stores (replacing) a day's breakdown of site by table.
func (s *DB) SetImportedRows(site, table, day string, rows []ImportedRow) error {
	if table == ImportedTotalsTable || table == "" || strings.ContainsRune(table, 0) {
		return fmt.Errorf("imported table %q", table)
	}
	return s.setImported(site, table, day, rows)
}

func (s *DB) setImported(site, table, day string, v any) error {
	if _, err := time.Parse("2006-01-02", day); err != nil {
		return fmt.Errorf("imported day %q: %w", day, err)
	}
	if site == "" || strings.ContainsRune(site, 0) {
		return fmt.Errorf("imported site %q", site)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set(importedKey(site, table, day), string(b), nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.AddSite(site)
	return nil
}

// importedDays returns the first and last day (YYYY-MM-DD, inclusive) of q
// whose whole day lies in [From, To) in q's time zone; ok is false when
// imported aggregates cannot answer q (filters or a cohort: they hold no
// events to filter).
func importedDays(q Query) (first, last string, ok bool) {
	if len(q.Filters) > 0 || q.Cohort != 0 {
		return "", "", false
	}
	tz := q.tz()
	f := q.From.In(tz)
	d := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, tz)
	if d.Before(q.From) {
		d = d.AddDate(0, 0, 1)
	}
	t := q.To.In(tz)
	e := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, tz) // end of the last whole day
	if !d.Before(e) {
		return "", "", false
	}
	return d.Format("2006-01-02"), e.AddDate(0, 0, -1).Format("2006-01-02"), true
}

// forImported calls fn with each stored day of table for q's site in q's
// whole days.
func (s *DB) forImported(q Query, table string, fn func(day, v string)) error {
	first, last, ok := importedDays(q)
	if !ok {
		return nil
	}
	lo, hi := importedKey(q.Site, table, first), importedKey(q.Site, table, last)+"\xff"
	return s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendRange("", lo, hi, func(k, v string) bool {
			fn(k[strings.LastIndexByte(k, 0)+1:], v)
			return true
		})
	})
}

// ImportedTotalsOf sums the imported totals of q's whole days and says how
// many days had any.
func (s *DB) ImportedTotalsOf(ctx context.Context, q Query) (ImportedTotals, int, error) {
	var sum ImportedTotals
	days := 0
	var bad error
	err := s.forImported(q, ImportedTotalsTable, func(day, v string) {
		var t ImportedTotals
		if err := json.Unmarshal([]byte(v), &t); err != nil {
			bad = fmt.Errorf("imported totals of %s: %w", day, err)
			return
		}
		days++
		sum.Visitors += t.Visitors
		sum.Pageviews += t.Pageviews
		sum.Visits += t.Visits
		sum.Bounces += t.Bounces
		sum.VisitDuration += t.VisitDuration
	})
	if err == nil {
		err = bad
	}
	return sum, days, err
}

// addImportedStats adds the imported totals of q's days to st, whose own
// sessions had the given bounces and summed duration (ms).
func (s *DB) addImportedStats(q Query, st *Stats, bounces, durMs int64) {
	imp, days, err := s.ImportedTotalsOf(context.Background(), q)
	if err != nil || days == 0 {
		return
	}
	st.ImportedDays = days
	st.Visitors += imp.Visitors
	st.Pageviews += imp.Pageviews
	st.Sessions += imp.Visits
	bounces += int64(imp.Bounces)
	durMs += imp.VisitDuration * 1000
	if st.Sessions > 0 {
		n := float64(st.Sessions)
		st.BounceRate = float64(bounces) / n
		st.AvgSessionSeconds = float64(durMs) / 1000 / n
		st.ViewsPerSession = float64(st.Pageviews) / n
	}
}

// addImportedBreakdown merges the imported rows of property into out
// (events' rows), for breakdowns of all events or of pageviews.
func (s *DB) addImportedBreakdown(q Query, bq BreakdownQuery, out []BreakdownRow) []BreakdownRow {
	if bq.Event != "" && bq.Event != "$pageview" {
		return out
	}
	add := map[string]*BreakdownRow{}
	found := false
	s.forImported(q, bq.Property, func(day, v string) {
		var rows []ImportedRow
		if json.Unmarshal([]byte(v), &rows) != nil {
			return
		}
		for _, r := range rows {
			if r.Value == "" {
				continue
			}
			found = true
			a := add[r.Value]
			if a == nil {
				a = &BreakdownRow{Value: r.Value}
				add[r.Value] = a
			}
			n := r.Pageviews
			if n == 0 {
				n = r.Visits
			}
			a.Count += n
			a.Visitors += r.Visitors
		}
	})
	if !found {
		return out
	}
	for i := range out {
		if a := add[out[i].Value]; a != nil {
			out[i].Count += a.Count
			out[i].Visitors += a.Visitors
			delete(add, out[i].Value)
		}
	}
	for _, a := range add {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Value < out[j].Value
	})
	return out
}

// addImportedTrends adds imported pageviews (math total) or visitors
// (unique, dau) to the $pageview series of a trends query without
// breakdown, by day, week or month, as Plausible draws its imports.
func (s *DB) addImportedTrends(q Query, tq TrendsQuery, bk *buckets, out *Trends) {
	addImportedTrendsIn(q, tq, bk, out, func(fn func(day string, t ImportedTotals)) {
		s.forImported(q, ImportedTotalsTable, func(day, v string) {
			var t ImportedTotals
			if json.Unmarshal([]byte(v), &t) == nil {
				fn(day, t)
			}
		})
	})
}

// AddImportedTrends adds the imported totals that days yields (a day as
// "2006-01-02" and its totals, within q's whole days) into out, q and tq's
// trends, as the local store adds its own. Another backend calls it with
// the days it holds.
func AddImportedTrends(q Query, tq TrendsQuery, out *Trends, days func(fn func(day string, t ImportedTotals))) {
	bk, err := makeBuckets(q.From, q.To, tq.Interval, q.tz())
	if err != nil {
		return
	}
	addImportedTrendsIn(q, tq, bk, out, days)
}

func addImportedTrendsIn(q Query, tq TrendsQuery, bk *buckets, out *Trends, days func(fn func(day string, t ImportedTotals))) {
	if tq.Interval == IntervalHour || tq.Breakdown != "" || len(bk.labels) == 0 {
		return
	}
	for i := range out.Series {
		sr := &out.Series[i]
		if sr.Event != "$pageview" || sr.BreakdownValue != nil {
			continue
		}
		days(func(day string, t ImportedTotals) {
			d, err := time.ParseInLocation("2006-01-02", day, q.tz())
			if err != nil {
				return
			}
			b := bk.of(d.Add(12 * time.Hour).UnixMilli())
			if b < 0 || b >= len(sr.Data) {
				return
			}
			switch tq.Math {
			case MathTotal:
				sr.Data[b] += float64(t.Pageviews)
			case MathUnique, MathDAU:
				sr.Data[b] += float64(t.Visitors)
			}
		})
	}
}

// ImportedDays returns the first and last whole day (YYYY-MM-DD) of q that
// imported aggregates answer for, as Stats and Breakdown add them; ok is
// false when they add none (filters, a cohort, no whole day). Another
// backend uses it to add its copy of the aggregates the same way.
func ImportedDays(q Query) (first, last string, ok bool) { return importedDays(q) }

// ScanImported calls fn with every stored day of every imported table
// (site, table, day YYYY-MM-DD, and its JSON: ImportedTotals for
// ImportedTotalsTable, else []ImportedRow), in key order, until fn returns
// false. Another backend ships them with it.
func (s *DB) ScanImported(fn func(site, table, day, v string) bool) error {
	return s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendGreaterOrEqual("", "i:", func(k, v string) bool {
			if !strings.HasPrefix(k, "i:") {
				return false
			}
			parts := strings.Split(k[2:], "\x00")
			if len(parts) != 3 {
				return true
			}
			return fn(parts[0], parts[1], parts[2], v)
		})
	})
}
