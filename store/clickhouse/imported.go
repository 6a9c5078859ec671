package clickhouse

// Imported aggregates (store/imported.go: Plausible CE's daily numbers,
// which `caddy analytics import --format plausible` writes into the local
// log) in ClickHouse, so that every node adds them into its overview, not
// only the node that imported them.
//
// The table imported holds one row per (site, day, kind): kind is the
// imported table ("totals", or the property a breakdown table is of), and
// the row holds the whole day of that table (the values and their numbers
// in arrays, as the local log keeps a day of a table in one record).
// ReplacingMergeTree(ver) on that key: importing a day again replaces it
// whole (values gone from the new import are gone), and a day shipped
// twice is one row. With a cluster it is sharded by site.
//
// The shipping loop (and Flush) ships the local log's imported days that
// ClickHouse does not have as they are now: what was shipped is
// remembered per site under "ch:imp:<site>" (day and table -> a hash of
// the value shipped), so that a day imported again ships again.

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

const impShippedPrefix = "ch:imp:"

// impRow is one day of one imported table, as ClickHouse stores it.
type impRow struct {
	Site          string   `json:"site"`
	Day           string   `json:"day"`
	Kind          string   `json:"kind"`
	Vals          []string `json:"vals"`
	Visitors      []int64  `json:"visitors"`
	Pageviews     []int64  `json:"pageviews"`
	Visits        []int64  `json:"visits"`
	Bounces       int64    `json:"bounces"`
	VisitDuration int64    `json:"visit_duration"`
	Ver           uint64   `json:"ver"`
}

// importedSchema creates the imported table (and its Distributed table
// with a cluster); schema calls it.
func (b *Backend) importedSchema(replicated bool) []SQL {
	db := Ident(b.opts.Database)
	t := Ident("imported")
	if b.opts.Cluster != "" {
		t = Ident("imported_local")
	}
	out := []SQL{Build(`CREATE TABLE IF NOT EXISTS ?.? (
	site String, day Date, kind String, vals Array(String), visitors Array(Int64), pageviews Array(Int64), visits Array(Int64),
	bounces Int64, visit_duration Int64, ver UInt64
) ENGINE = ? ORDER BY (site, day, kind)`, db, t, b.engine(replicated, t, "ver"))}
	if b.opts.Cluster != "" {
		out = append(out, Build("CREATE TABLE IF NOT EXISTS ?.`imported` AS ?.? ENGINE = Distributed(?, ?, ?, sipHash64(site))",
			db, db, t, Ident(b.opts.Cluster), db, t))
	}
	return out
}

// impMu serialises shipImported (the shipping loop and Flush).
var impMu sync.Mutex

// shipImported ships the imported days that changed since they last
// shipped (all of them the first time); it returns how many rows went.
func (b *Backend) shipImported(ctx context.Context) (int, error) {
	impMu.Lock()
	defer impMu.Unlock()
	if !b.schemaOK {
		if err := b.ensureSchema(ctx); err != nil {
			return 0, err
		}
	}
	shipped := map[string]map[string]string{} // site -> table\x00day -> hash
	err := b.DB.ScanMeta(impShippedPrefix, func(k, v string) bool {
		m := map[string]string{}
		if json.Unmarshal([]byte(v), &m) == nil {
			shipped[k[len(impShippedPrefix):]] = m
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	ver := uint64(time.Now().UnixNano())
	var out []byte
	changed := map[string]map[string]string{}
	err = b.DB.ScanImported(func(site, table, day, v string) bool {
		h := fnv.New64a()
		h.Write([]byte(v))
		sum := strconv.FormatUint(h.Sum64(), 16)
		k := table + "\x00" + day
		if shipped[site][k] == sum {
			return true
		}
		r := impRow{Site: site, Day: day, Kind: table, Ver: ver}
		if table == store.ImportedTotalsTable {
			var t store.ImportedTotals
			if json.Unmarshal([]byte(v), &t) != nil {
				return true // the local store skips it too
			}
			r.Vals = []string{""}
			r.Visitors, r.Pageviews, r.Visits = []int64{int64(t.Visitors)}, []int64{int64(t.Pageviews)}, []int64{int64(t.Visits)}
			r.Bounces, r.VisitDuration = int64(t.Bounces), t.VisitDuration
		} else {
			var rows []store.ImportedRow
			if json.Unmarshal([]byte(v), &rows) != nil {
				return true
			}
			r.Vals, r.Visitors, r.Pageviews, r.Visits = []string{}, []int64{}, []int64{}, []int64{}
			for _, x := range rows {
				r.Vals = append(r.Vals, x.Value)
				r.Visitors = append(r.Visitors, int64(x.Visitors))
				r.Pageviews = append(r.Pageviews, int64(x.Pageviews))
				r.Visits = append(r.Visits, int64(x.Visits))
			}
		}
		j, err := json.Marshal(r)
		if err != nil {
			return true
		}
		out = append(append(out, j...), '\n')
		if changed[site] == nil {
			changed[site] = map[string]string{}
		}
		changed[site][k] = sum
		return true
	})
	if err != nil || len(out) == 0 {
		return 0, err
	}
	if err := b.client().InsertJSON(ctx, "imported", out); err != nil {
		return 0, err
	}
	n := 0
	for site, m := range changed {
		all := shipped[site]
		if all == nil {
			all = map[string]string{}
		}
		for k, v := range m {
			all[k] = v
			n++
		}
		j, _ := json.Marshal(all)
		if err := b.DB.PutMeta(impShippedPrefix+site, string(j)); err != nil {
			return n, err // shipped again next time: the same rows, replaced
		}
	}
	return n, nil
}

// importedRange is the condition on imported's rows of q's whole days
// (store.ImportedDays); ok is false when q adds no imported aggregates.
func importedRange(q store.Query, kind string) (SQL, bool) {
	first, last, ok := store.ImportedDays(q)
	if !ok {
		return "", false
	}
	return Build("site = ? AND kind = ? AND day >= toDate(?) AND day <= toDate(?)", q.Site, kind, first, last), true
}

// addImportedStats adds the imported totals of q's days that ClickHouse
// holds to st, as the local store adds its own (store's addImportedStats):
// bounces and durMs (ms) are the events' sessions'.
func (b *Backend) addImportedStats(ctx context.Context, q store.Query, st *store.Stats, bounces, durMs int64) error {
	cond, ok := importedRange(q, store.ImportedTotalsTable)
	if !ok {
		return nil
	}
	rows, err := b.client().Query(ctx, Build(`SELECT count(), sum(visitors[1]), sum(pageviews[1]), sum(visits[1]), sum(bounces), sum(visit_duration)
FROM imported FINAL WHERE ?`, cond))
	if err != nil {
		return err
	}
	if len(rows) != 1 || len(rows[0]) != 6 {
		return fmt.Errorf("clickhouse: imported totals answered %v", rows)
	}
	r := rows[0]
	days := int(asInt(r[0]))
	if days == 0 {
		return nil
	}
	st.ImportedDays = days
	st.Visitors += int(asInt(r[1]))
	st.Pageviews += int(asInt(r[2]))
	st.Sessions += int(asInt(r[3]))
	bounces += asInt(r[4])
	durMs += asInt(r[5]) * 1000
	if st.Sessions > 0 {
		n := float64(st.Sessions)
		st.BounceRate = float64(bounces) / n
		st.AvgSessionSeconds = float64(durMs) / 1000 / n
		st.ViewsPerSession = float64(st.Pageviews) / n
	}
	return nil
}

// importedBreakdown is what the imported days of q add to a breakdown:
// per value, its count (pageviews, else visits) and visitors.
type importedBreakdown map[string]store.BreakdownRow

// importedBreakdown reads the imported rows of bq's property in q's days
// (for a breakdown of all events or of pageviews, as the local store adds
// them; nil otherwise).
func (b *Backend) importedBreakdown(ctx context.Context, q store.Query, bq store.BreakdownQuery) (importedBreakdown, error) {
	if bq.Event != "" && bq.Event != "$pageview" || bq.Property == store.ImportedTotalsTable {
		return nil, nil
	}
	cond, ok := importedRange(q, bq.Property)
	if !ok {
		return nil, nil
	}
	rows, err := b.client().Query(ctx, Build(`SELECT v, sum(if(p != 0, p, n)), sum(u) FROM imported FINAL
ARRAY JOIN vals AS v, pageviews AS p, visits AS n, visitors AS u WHERE ? AND v != '' GROUP BY v`, cond))
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	out := make(importedBreakdown, len(rows))
	for _, r := range rows {
		v := asStr(r[0])
		out[v] = store.BreakdownRow{Value: v, Count: int(asInt(r[1])), Visitors: int(asInt(r[2]))}
	}
	return out, nil
}

// first is the ORDER BY term and the LIMIT of the events' breakdown query
// that make its rows enough to merge the imported ones into exactly: the
// imported values first, then the limit's top values of the rest (a
// value not imported that is not among them cannot pass one that is).
// Too many imported values to list: every value (no limit). Without
// imported values the term is c, the count (not a constant: current
// ClickHouse reads ORDER BY 0 as a column position).
func (imp importedBreakdown) first(v SQL, limit int) (SQL, int) {
	if len(imp) == 0 {
		return "c", limit
	}
	if len(imp) > idsPerQuery {
		return "c", 1 << 30
	}
	vals := make([]string, 0, len(imp))
	for k := range imp {
		vals = append(vals, k)
	}
	sort.Strings(vals)
	return hasStr(vals, v), limit + len(vals)
}

// merge adds the imported rows into the events' rows (sorted), sorts
// again and cuts to limit, as the local store's addImportedBreakdown.
func (imp importedBreakdown) merge(out []store.BreakdownRow, limit int) []store.BreakdownRow {
	if len(imp) == 0 {
		if len(out) > limit {
			out = out[:limit]
		}
		return out
	}
	seen := map[string]bool{}
	for i := range out {
		if a, ok := imp[out[i].Value]; ok {
			out[i].Count += a.Count
			out[i].Visitors += a.Visitors
			seen[out[i].Value] = true
		}
	}
	for v, a := range imp {
		if !seen[v] {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Value < out[j].Value
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// addImportedTrends adds the imported totals of q's days that ClickHouse
// holds into out's $pageview series, as the local store adds its own
// (store.AddImportedTrends: by day, week or month, without breakdown).
func (b *Backend) addImportedTrends(ctx context.Context, q store.Query, tq store.TrendsQuery, out *store.Trends) error {
	if tq.Interval == store.IntervalHour || tq.Breakdown != "" || !slices.Contains(tq.Events, "$pageview") {
		return nil
	}
	cond, ok := importedRange(q, store.ImportedTotalsTable)
	if !ok {
		return nil
	}
	rows, err := b.client().Query(ctx, Build(`SELECT toString(day), visitors[1], pageviews[1] FROM imported FINAL WHERE ? ORDER BY day`, cond))
	if err != nil {
		return err
	}
	store.AddImportedTrends(q, tq, out, func(fn func(day string, t store.ImportedTotals)) {
		for _, r := range rows {
			if len(r) == 3 {
				fn(asStr(r[0]), store.ImportedTotals{Visitors: int(asInt(r[1])), Pageviews: int(asInt(r[2]))})
			}
		}
	})
	return nil
}
