package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/tidwall/gjson"
)

// The reports beyond stats, breakdown, trends, funnel and retention:
// paths, heatmaps, goals, the server report, the live count and cohorts'
// persons, and cohorts by person properties. SQL selects and groups;
// where the local store reads a value as a number (heatmap coordinates,
// revenue, $server_ms, subscriber counts) or matches it by Go's rules, SQL
// returns each distinct value with its count and Go reads it the same way
// the local store does, so that the answers are the same to the bit.

// cohortReason returns why a cohort cannot be applied in SQL, or "".
func (b *Backend) cohortReason(ctx context.Context, site string, c store.Cohort) string {
	switch c.Kind {
	case store.CohortBehavioral:
		if _, ok := b.eventCond(ctx, site, c.Event); !ok {
			return "cohort event"
		}
		return ""
	case store.CohortProperty:
		return ""
	}
	return "cohort kind"
}

// personPropEvents is true for events that shape person properties.
const personPropEvents = SQL("(has(prop_keys, '$set') OR has(prop_keys, '$set_once') OR has(prop_keys, '$unset'))")

// personsOf is the relation (person, distinct_id, unmapped, and the
// columns cols of events, by their names) of every event of a site that is not deleted,
// each uuid once, whatever its time.
func personsOf(site string, cols, names, where SQL) SQL {
	return Build(`SELECT if(pm_person = '', distinct_id, pm_person) AS person, pm_person = '' AS unmapped, distinct_id, ? FROM (
	SELECT distinct_id, ? FROM events FINAL WHERE site = ? AND ?
) AS ev GLOBAL ANY LEFT JOIN (
	SELECT distinct_id, argMax(person, ver) AS pm_person, argMax(deleted, ver) AS pm_deleted FROM person_map WHERE site = ? GROUP BY distinct_id
) AS pm USING distinct_id WHERE pm_deleted = 0`, names, cols, site, where, site)
}

// cohortSQL is the condition on base's person column that keeps c's
// members as of q.To.
func (b *Backend) cohortSQL(ctx context.Context, q store.Query, c store.Cohort) (SQL, error) {
	if c.Kind == store.CohortProperty {
		return b.propertyCohortSQL(ctx, q.Site, c)
	}
	// A behavioural cohort: the persons with the cohort's event in the
	// Days before q.To (in q's time zone), bots included and filters
	// ignored, as the local store counts them.
	cond, _ := b.eventCond(ctx, q.Site, c.Event)
	tz := q.TZ
	if tz == nil {
		tz = time.UTC
	}
	to := q.To.In(tz)
	cq := store.Query{Site: q.Site, From: to.AddDate(0, 0, -c.Days), To: to, TZ: q.TZ, IncludeBots: true}
	cbase, err := b.base(ctx, cq, seriesProps(c.Event)...)
	if err != nil {
		return "", err
	}
	return Build("person GLOBAL IN (SELECT person FROM (?) WHERE vis AND ?)", cbase, cond), nil
}

// propertyCohortSQL: a person's properties are those their events' $set,
// $set_once and $unset give them (every node's, as shipped), applied in
// time order (ties: one node's commit order, then the uuid), which stands
// in for the local store's commit order as in the persons read from
// ClickHouse (personread.go), so that a cohort's members have the
// properties their persons show; the cohort compares one of them.
// Persons without the property compare the empty value, so the condition
// lists (by hash) only the persons that have it: those who pass, or those
// who fail when the empty value passes. The list is one array literal, however many persons
// it holds: ClickHouse parses it as one value (not an expression per
// member, which max_ast_elements bounds) and builds the set once; a query
// longer than the server's default max_query_size raises it for itself
// (Client.Query).
func (b *Backend) propertyCohortSQL(ctx context.Context, site string, c store.Cohort) (SQL, error) {
	cols := SQL(`ts, seq, uuid, prop_vals[indexOf(prop_keys, '$set')] AS pset, prop_kinds[indexOf(prop_keys, '$set')] AS psetk,
	prop_vals[indexOf(prop_keys, '$set_once')] AS ponce, prop_kinds[indexOf(prop_keys, '$set_once')] AS poncek,
	prop_vals[indexOf(prop_keys, '$unset')] AS punset, prop_kinds[indexOf(prop_keys, '$unset')] AS punsetk,
	multiIf(name = '$identify', prop_vals[indexOf(prop_keys, '$anon_distinct_id')], name = '$create_alias', prop_vals[indexOf(prop_keys, 'alias')], '') AS other`)
	names := SQL("ts, seq, uuid, pset, psetk, ponce, poncek, punset, punsetk, other")
	// Each row with, for a link, whether its two ids are one person now
	// (the merge applies; a refused link leaves them apart).
	rel := Build(`SELECT person, distinct_id, ?, other != '' AND other != distinct_id AND od = 0 AND person = if(op = '', other, op) AS merged FROM (?) AS ev
GLOBAL ANY LEFT JOIN (SELECT distinct_id AS other, argMax(person, ver) AS op, argMax(deleted, ver) AS od FROM person_map WHERE site = ? GROUP BY distinct_id) AS om USING other`,
		names, personsOf(site, cols, names, Build("(? OR name IN ('$identify', '$create_alias'))", personPropEvents)), site)
	rows, err := b.client().Query(ctx, Build("SELECT person, distinct_id, pset, psetk, ponce, poncek, punset, punsetk, other, merged, toString(sipHash64(person)) FROM (?) ORDER BY ts, seq, uuid", rel))
	if err != nil {
		return "", err
	}
	// The local store's rule, replayed in time order: a merge keeps the
	// sender's value of the property, else the other id's; $set, then
	// $set_once, then $unset apply to the merged person.
	type state struct {
		has bool
		v   string
	}
	lead := map[string]string{} // distinct id -> the id that leads its merged ids
	find := func(d string) string {
		for {
			l, ok := lead[d]
			if !ok || l == d {
				return d
			}
			if ll, ok := lead[l]; ok && ll != l {
				lead[d] = ll
			}
			d = l
		}
	}
	props := map[string]*state{} // by leader
	personOf := map[string]string{}
	hashOf := map[string]uint64{} // person -> sipHash64, as ClickHouse computes it
	kj := uint64(store.KindJSON)
	for _, r := range rows {
		d := asStr(r[1])
		personOf[d] = asStr(r[0])
		if _, ok := hashOf[personOf[d]]; !ok {
			h, err := strconv.ParseUint(asStr(r[10]), 10, 64)
			if err != nil {
				return "", fmt.Errorf("clickhouse: person hash %s: %w", r[10], err)
			}
			hashOf[personOf[d]] = h
		}
		if asInt(r[9]) != 0 {
			o := asStr(r[8])
			if ld, lo := find(d), find(o); ld != lo {
				keep, other := props[ld], props[lo]
				if (keep == nil || !keep.has) && other != nil && other.has {
					props[ld] = other
				}
				delete(props, lo)
				lead[lo] = ld
			}
		}
		l := find(d)
		st := props[l]
		if st == nil {
			st = &state{}
			props[l] = st
		}
		if uint64(asInt(r[3])) == kj {
			gjson.Parse(asStr(r[2])).ForEach(func(k, v gjson.Result) bool {
				if k.String() == c.Property {
					st.has, st.v = true, store.ValueFromJSON(v).String()
				}
				return true
			})
		}
		if uint64(asInt(r[5])) == kj {
			gjson.Parse(asStr(r[4])).ForEach(func(k, v gjson.Result) bool {
				if k.String() == c.Property && !st.has {
					st.has, st.v = true, store.ValueFromJSON(v).String()
				}
				return true
			})
		}
		if uint64(asInt(r[7])) == kj {
			gjson.Parse(asStr(r[6])).ForEach(func(_, v gjson.Result) bool {
				if v.String() == c.Property {
					st.has, st.v = false, ""
				}
				return true
			})
		}
	}
	// A person's value: its leaders' (one, unless its ids were merged by
	// links not seen here), the first that has the property.
	value := map[string]string{}
	has := map[string]bool{}
	for d, p := range personOf {
		if st := props[find(d)]; st != nil && st.has && !has[p] {
			value[p], has[p] = st.v, true
		}
	}
	f := store.Filter{Prop: c.Property, Op: c.Op, Value: c.Value}
	empty := matchValue(f, "")
	var list []SQL
	for p, v := range value {
		if v != "" && matchValue(f, v) != empty {
			list = append(list, Quote(hashOf[p]))
		}
	}
	in := SQL("0")
	if len(list) > 0 {
		in = Build("sipHash64(person) IN (SELECT arrayJoin(CAST([?] AS Array(UInt64))))", Join(list, ","))
	}
	if empty {
		return Build("NOT ?", in), nil
	}
	return in, nil
}

// matchValue is store.Filter's test of a value (PostHog's operators,
// "contains" ignoring case).
func matchValue(f store.Filter, v string) bool {
	switch f.Op {
	case store.OpEq:
		return v == f.Value
	case store.OpNe:
		return v != f.Value
	case store.OpContains:
		return v != "" && strings.Contains(strings.ToLower(v), strings.ToLower(f.Value))
	case store.OpNotContains:
		return v == "" || !strings.Contains(strings.ToLower(v), strings.ToLower(f.Value))
	}
	return false
}

// Paths follows each session's pageviews (a person's, for events without
// a session) in time order, equal times in the order they were appended.
func (b *Backend) Paths(ctx context.Context, q store.Query, pq store.PathsQuery) ([]store.PathLink, error) {
	if b.sqlReason(ctx, q, nil) != "" {
		b.count(&b.inLocal, "paths")
		return b.DB.Paths(ctx, q, pq)
	}
	if pq.Steps <= 0 {
		pq.Steps = 5
	}
	pq.Steps = min(pq.Steps, 20)
	b.count(&b.inSQL, "paths")
	r0, err := b.rel(ctx, q)
	if err != nil {
		return nil, err
	}
	// p: the group's pages in order; from the first Start when given;
	// c: consecutive repeats collapsed, the first Steps kept.
	start := SQL("p")
	if pq.Start != "" {
		start = Build("arraySlice(p, indexOf(p, ?))", pq.Start)
	}
	rows, err := b.client().Query(ctx, Build(`SELECT tupleElement(l, 1), tupleElement(l, 2), tupleElement(l, 3), count() FROM (
	SELECT arrayJoin(arrayMap((x, y, k) -> (k, x, y), arrayPopBack(c), arrayPopFront(c), arrayEnumerate(arrayPopBack(c)))) AS l FROM (
		SELECT arraySlice(arrayFilter((x, y) -> x != y, s, arrayPushFront(arrayPopBack(s), '')), 1, ?) AS c FROM (
			SELECT ? AS s FROM (
				SELECT arraySort((x, k) -> k, groupArray(pg), groupArray((ts, bitNot(ver)))) AS p FROM ?
				WHERE ? AND pass AND vis AND ename = '$pageview' AND (? AS pg) != ''
				GROUP BY session = '' AS nos, if(nos, pkey, cityHash64(session)) AS g
			) WHERE ? = 0 OR has(p, ?)
		)
	)
) GROUP BY l`, pq.Steps, start, r0.From, r0.Where, prop("$pathname"), pq.Start != "", pq.Start))
	if err != nil {
		return nil, err
	}
	out := make([]store.PathLink, 0, len(rows))
	for _, r := range rows {
		k := strconv.FormatInt(asInt(r[0]), 10)
		k1 := strconv.FormatInt(asInt(r[0])+1, 10)
		out = append(out, store.PathLink{Source: k + "_" + asStr(r[1]), Target: k1 + "_" + asStr(r[2]), Value: int(asInt(r[3]))})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.Value != b.Value {
			return a.Value > b.Value
		}
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		return a.Target < b.Target
	})
	return out, nil
}

// number reads a value as the local store's heatmaps do.
func number(s string) (float64, bool) {
	if s == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// nearestWidth is the width class of a viewport width (store.ViewportWidths).
func nearestWidth(w float64) int {
	best := store.ViewportWidths[0]
	for _, c := range store.ViewportWidths[1:] {
		if math.Abs(w-float64(c)) < math.Abs(w-float64(best)) {
			best = c
		}
	}
	return best
}

func viewportClass(w float64) string {
	switch {
	case w < 768:
		return "mobile"
	case w < 1024:
		return "tablet"
	}
	return "desktop"
}

// Heatmap aggregates a page's clicks or scroll depth.
func (b *Backend) Heatmap(ctx context.Context, q store.Query, hq store.HeatmapQuery) ([]store.HeatmapPoint, error) {
	width := 0
	valid := hq.URL != ""
	switch hq.Viewport {
	case "", "mobile", "tablet", "desktop":
	default:
		w, err := strconv.Atoi(hq.Viewport)
		valid = valid && err == nil && w > 0 && w <= 100000
		width = nearestWidth(float64(w))
	}
	switch hq.Type {
	case "":
		hq.Type = store.HeatmapClick
	case store.HeatmapClick, store.HeatmapScroll:
	default:
		valid = false
	}
	if !valid {
		return b.DB.Heatmap(ctx, q, hq) // the local store's error
	}
	if b.sqlReason(ctx, q, nil) != "" {
		b.count(&b.inLocal, "heatmap")
		return b.DB.Heatmap(ctx, q, hq)
	}
	b.count(&b.inSQL, "heatmap")
	r0, err := b.rel(ctx, q)
	if err != nil {
		return nil, err
	}
	viewportOK := func(w string) bool {
		if hq.Viewport == "" {
			return true
		}
		x, ok := number(w)
		if width != 0 {
			return ok && nearestWidth(x) == width
		}
		return ok && viewportClass(x) == hq.Viewport
	}
	vw := SQL("''")
	if hq.Viewport != "" {
		vw = prop("$viewport_width")
	}
	if hq.Type == store.HeatmapScroll {
		rows, err := b.client().Query(ctx, Build(`SELECT ? AS d, ? AS w, count() FROM ?
WHERE ? AND pass AND vis AND name = '$pageleave' AND ? = ? GROUP BY d, w`, prop("$prev_pageview_max_content"), vw, r0.From, r0.Where, prop("$prev_pageview_pathname"), hq.URL))
		if err != nil {
			return nil, err
		}
		var reached []int
		for _, r := range rows {
			d, ok := number(asStr(r[0]))
			if !ok || d < 0 || !viewportOK(asStr(r[1])) {
				continue
			}
			band := min(int(d/100), 9999)
			if band < 0 {
				continue
			}
			for len(reached) <= band {
				reached = append(reached, 0)
			}
			reached[band] += int(asInt(r[2]))
		}
		out := make([]store.HeatmapPoint, len(reached))
		n := 0
		for i := len(reached) - 1; i >= 0; i-- {
			n += reached[i]
			out[i] = store.HeatmapPoint{Y: float64(i * 100), Count: n}
		}
		return out, nil
	}
	rows, err := b.client().Query(ctx, Build(`SELECT ? AS x, ? AS y, ? AS w, count() FROM ?
WHERE ? AND pass AND vis AND name = '$autocapture' AND ? = ? AND ? = 'click' GROUP BY x, y, w`,
		prop("$click_x"), prop("$click_y"), vw, r0.From, r0.Where, prop("$pathname"), hq.URL, prop("$event_type")))
	if err != nil {
		return nil, err
	}
	type cell struct{ x, y int64 }
	cells := map[cell]int{}
	for _, r := range rows {
		x, okx := number(asStr(r[0]))
		y, oky := number(asStr(r[1]))
		if !okx || !oky || x < 0 || x > 1 || y < 0 || !viewportOK(asStr(r[2])) {
			continue
		}
		cells[cell{int64(math.Round(x * 100)), int64(math.Round(y / 10))}] += int(asInt(r[3]))
	}
	out := make([]store.HeatmapPoint, 0, len(cells))
	for c, n := range cells {
		out = append(out, store.HeatmapPoint{X: float64(c.x) / 100, Y: float64(c.y * 10), Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Y != b.Y {
			return a.Y < b.Y
		}
		return a.X < b.X
	})
	return out, nil
}

// HeatmapViewports counts a page's clicks by viewport width class.
func (b *Backend) HeatmapViewports(ctx context.Context, q store.Query, url string) ([]store.ViewportCount, error) {
	if url == "" {
		return b.DB.HeatmapViewports(ctx, q, url) // the local store's error
	}
	if b.sqlReason(ctx, q, nil) != "" {
		b.count(&b.inLocal, "heatmap")
		return b.DB.HeatmapViewports(ctx, q, url)
	}
	b.count(&b.inSQL, "heatmap")
	r0, err := b.rel(ctx, q)
	if err != nil {
		return nil, err
	}
	rows, err := b.client().Query(ctx, Build(`SELECT ? AS w, count() FROM ?
WHERE ? AND pass AND vis AND name = '$autocapture' AND ? = ? AND ? = 'click' GROUP BY w`,
		prop("$viewport_width"), r0.From, r0.Where, prop("$pathname"), url, prop("$event_type")))
	if err != nil {
		return nil, err
	}
	counts := map[int]int{}
	for _, r := range rows {
		if w, ok := number(asStr(r[0])); ok {
			counts[nearestWidth(w)] += int(asInt(r[1]))
		}
	}
	out := []store.ViewportCount{}
	for w, n := range counts {
		out = append(out, store.ViewportCount{Width: w, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Count > out[j].Count || out[i].Count == out[j].Count && out[i].Width < out[j].Width
	})
	return out, nil
}

// globSQL is the SQL of "v matches glob" as the local store's globRE
// matches it: `*` any run of characters but a newline, the rest literal.
// A newline of v can then only be one of the glob's own, so v matches
// when it has as many lines as the glob and each line matches the glob's
// line (lineGlobSQL).
func globSQL(v SQL, glob string) SQL {
	if !strings.Contains(glob, "*") {
		return Build("(? = ?)", v, glob)
	}
	globLines := strings.Split(glob, "\n")
	if len(globLines) == 1 {
		return Build("(position(?, '\\n') = 0 AND ?)", v, lineGlobSQL(v, glob))
	}
	lines := Build("splitByChar('\\n', ?)", v)
	conds := []SQL{Build("length(?) = ?", lines, len(globLines))}
	for i, g := range globLines {
		conds = append(conds, lineGlobSQL(Build("?[?]", lines, i+1), g))
	}
	return Build("(?)", Join(conds, " AND "))
}

// lineGlobSQL is "v matches glob" for a glob and a value without a
// newline: the first and last parts at both ends, the middle parts in
// order in between, each at its first place after the one before (the
// leftmost match is always the best for a glob). What is left of v after
// each part is a lambda's argument, so that the expression grows with the
// parts, not twice per part; a part not found leaves "\n", which no part
// is found in.
func lineGlobSQL(v SQL, glob string) SQL {
	parts := strings.Split(glob, "*")
	if len(parts) == 1 {
		return Build("(? = ?)", v, glob)
	}
	first, last := parts[0], parts[len(parts)-1]
	conds := []SQL{
		Build("length(?) >= ?", v, len(first)+len(last)),
		Build("substring(?, 1, ?) = ?", v, len(first), first),
	}
	if len(last) > 0 {
		conds = append(conds, Build("substring(?, length(?) - ? + 1) = ?", v, v, len(last), last))
	}
	rest := Build("substring(?, ? + 1, length(?) - ?)", v, len(first), v, len(first)+len(last))
	found := false
	for _, m := range parts[1 : len(parts)-1] {
		if m == "" {
			continue
		}
		rest = Build("arrayMap(gr -> if(position(gr, ?) = 0, '\\n', substring(gr, position(gr, ?) + ?)), [?])[1]", m, m, len(m), rest)
		found = true
	}
	if found {
		conds = append(conds, Build("? != '\\n'", rest))
	}
	return Build("(?)", Join(conds, " AND "))
}

// GoalStats counts each goal's visitors, events and revenue.
func (b *Backend) GoalStats(ctx context.Context, q store.Query, goals []store.Goal) ([]store.GoalResult, error) {
	out := make([]store.GoalResult, len(goals))
	for i, g := range goals {
		out[i] = store.GoalResult{Goal: g.Name, GoalID: g.ID}
	}
	if len(goals) == 0 {
		return out, nil
	}
	events := make([]string, len(goals))
	for i, g := range goals {
		switch {
		case g.Event != "":
			events[i] = g.Event
		case g.Action != 0:
			events[i] = "action:" + strconv.FormatInt(g.Action, 10)
		default:
			events[i] = "$pageview"
		}
	}
	if b.sqlReason(ctx, q, events) != "" {
		b.count(&b.inLocal, "goals")
		return b.DB.GoalStats(ctx, q, goals)
	}
	b.count(&b.inSQL, "goals")
	r0, err := b.rel(ctx, q, seriesProps(events...)...)
	if err != nil {
		return nil, err
	}
	conds := b.conds(ctx, q.Site, events)
	for i, c := range conds {
		if goals[i].Event == "" && goals[i].Action == 0 {
			conds[i] = Build("(? AND ? != '' AND ?)", c, prop("$pathname"), globSQL(prop("$pathname"), goals[i].Path))
		}
	}
	total := int64(0)
	currencies := make([]map[string]int, len(out))
	// At most goalsPerQuery goals in one query, so that a query's size
	// stays within ClickHouse's limits however many goals a site has;
	// every query counts the query's visitors too (k 0).
	for lo := 0; lo < len(goals); lo += goalsPerQuery {
		hi := min(lo+goalsPerQuery, len(goals))
		t, err := b.goalChunk(ctx, r0, conds[lo:hi], out[lo:hi], currencies[lo:hi])
		if err != nil {
			return nil, err
		}
		total = t
	}
	for k := range out {
		best, bn := "", 0
		for c, n := range currencies[k] {
			if n > bn || n == bn && c < best {
				best, bn = c, n
			}
		}
		out[k].Currency = best
		if total > 0 {
			out[k].ConversionRate = float64(out[k].Visitors) / float64(total)
		}
		out[k].Revenue = math.Round(out[k].Revenue*1e6) / 1e6
	}
	return out, nil
}

// goalsPerQuery bounds the goals GoalStats counts in one query.
const goalsPerQuery = 100

// goalChunk counts the goals of conds (one query) into out and
// currencies, and returns the query's visitors.
func (b *Backend) goalChunk(ctx context.Context, r0 rel, conds []SQL, out []store.GoalResult, currencies []map[string]int) (int64, error) {
	ks := make([]SQL, len(conds))
	for i, c := range conds {
		ks[i] = Build("if(?, ?, 0)", c, i+1)
	}
	// k 0: every passing event (the query's visitors). Revenue:
	// `revenue`, else `$revenue`; currency: `currency`, else `$currency`;
	// each goal's distinct values, read here as the local store reads them.
	pick := func(a, b string) SQL { return Build("if(? != '', ?, ?)", prop(a), prop(a), prop(b)) }
	rows, err := b.client().Query(ctx, Build(`SELECT k, sum(n), uniqExactMerge(u), groupArrayIf((rv, cu, n), rv != '' OR cu != '') FROM (
	SELECT arrayJoin(arrayConcat([0], arrayFilter(x -> x > 0, [?]))) AS k, if(k = 0, '', ?) AS rv, if(k = 0, '', ?) AS cu, count() AS n, uniqExactState(pkey) AS u
	FROM ? WHERE ? AND pass AND vis
	GROUP BY k, rv, cu
) GROUP BY k`, Join(ks, ", "), pick("revenue", "$revenue"), pick("currency", "$currency"), r0.From, r0.Where))
	if err != nil {
		return 0, err
	}
	total := int64(0)
	for _, r := range rows {
		k := int(asInt(r[0]))
		switch {
		case k == 0:
			total = asInt(r[2])
			continue
		case k > len(out):
			continue
		}
		g := &out[k-1]
		g.Events, g.Visitors = int(asInt(r[1])), int(asInt(r[2]))
		var vals [][]json.RawMessage
		if err := json.Unmarshal(r[3], &vals); err != nil {
			return 0, fmt.Errorf("clickhouse: goal values: %w", err)
		}
		for _, v := range vals {
			if len(v) != 3 {
				continue
			}
			n := int(asInt(v[2]))
			if x, err := strconv.ParseFloat(asStr(v[0]), 64); err == nil && !math.IsInf(x, 0) && !math.IsNaN(x) {
				for j := 0; j < n; j++ {
					g.Revenue += x
				}
			}
			if c := asStr(v[1]); c != "" {
				if currencies[k-1] == nil {
					currencies[k-1] = map[string]int{}
				}
				currencies[k-1][strings.ToUpper(c)] += n
			}
		}
	}
	return total, nil
}

// Server is the report of what only the server sees (SPEC §8): every
// server pageview counts, confirmed or not.
func (b *Backend) Server(ctx context.Context, q store.Query, limit int) (store.ServerReport, error) {
	out := store.ServerReport{NotFound: []store.NotFoundRow{}, Slow: []store.SlowRow{}, Feeds: []store.FeedRow{}}
	if limit <= 0 {
		limit = 10
	}
	if b.sqlReason(ctx, q, nil) != "" {
		b.count(&b.inLocal, "server")
		return b.DB.Server(ctx, q, limit)
	}
	b.count(&b.inSQL, "server")
	r0, err := b.rel(ctx, q)
	if err != nil {
		return out, err
	}
	pg, st, ms, rf, rd, sb := prop("$pathname"), prop("$status"), prop("$server_ms"), prop("$referrer"), prop(store.FeedReader), prop(store.FeedSubscribers)
	// Server pageviews: kind 1 answered 404/410 (by path and referrer),
	// kind 2 the others with a time (by path and time).
	rows, err := b.client().Query(ctx, Build(`SELECT if(? IN ('404', '410'), 1, 2) AS kind, ? AS pg, if(kind = 1, ?, ?) AS x, count(), countIf(NOT vis)
FROM ? WHERE ? AND pass AND name = '$server_pageview' GROUP BY kind, pg, x`, st, pg, rf, ms, r0.From, r0.Where))
	if err != nil {
		return out, err
	}
	type nf struct {
		count int
		refs  map[string]int
	}
	notFound := map[string]*nf{}
	times := map[string][]float64{}
	confirmed := 0
	for _, r := range rows {
		pg, x, n := asStr(r[1]), asStr(r[2]), int(asInt(r[3]))
		out.ServerPageviews += n
		confirmed += int(asInt(r[4]))
		if asInt(r[0]) == 1 {
			e := notFound[pg]
			if e == nil {
				e = &nf{refs: map[string]int{}}
				notFound[pg] = e
			}
			e.count += n
			if x != "" {
				e.refs[x] += n
			}
			continue
		}
		if x != "" {
			v := store.ServerMs(x)
			for j := 0; j < n; j++ {
				times[pg] = append(times[pg], v)
			}
		}
	}
	if out.ServerPageviews > 0 {
		out.JSShare = float64(confirmed) / float64(out.ServerPageviews)
	}
	for p, e := range notFound {
		row := store.NotFoundRow{Path: p, Count: e.count}
		for v, n := range e.refs {
			row.Referrers = append(row.Referrers, store.BreakdownRow{Value: v, Count: n})
		}
		out.NotFound = append(out.NotFound, row)
	}
	for p, ts := range times {
		out.Slow = append(out.Slow, store.SlowPage(p, ts))
	}

	// Feeds: a fetch with a reader and a count (as strconv.Atoi reads it)
	// counts that reader's largest; any other counts its person on its
	// (UTC) day. A count as strconv.Atoi reads one: a sign, digits, and a value that
	// fits in 64 bits (the significant digits compared as text).
	digits := Build("replaceRegexpOne(?, ?, '')", sb, "^[+-]?0*")
	isReader := Build(`(? != '' AND match(?, ?) AND (length(?) < 19 OR length(?) = 19 AND ? <= if(substring(?, 1, 1) = '-', '9223372036854775808', '9223372036854775807')))`,
		rd, sb, "^[+-]?[0-9]+$", digits, digits, digits, sb)
	rows, err = b.client().Query(ctx, Build(`SELECT ? AS pg, ? AS r, if(r, ?, '') AS rdr, if(r, ?, '') AS sbs, if(r, 0, intDiv(ts, 86400000)) AS dy, count(), uniqExact(pkey)
FROM ? WHERE ? AND pass AND name = ? GROUP BY pg, r, rdr, sbs, dy`, pg, isReader, rd, sb, r0.From, r0.Where, store.FeedFetch))
	if err != nil {
		return out, err
	}
	type feed struct {
		fetches int
		readers map[string]int
		most    int
	}
	feeds := map[string]*feed{}
	for _, r := range rows {
		pg := asStr(r[0])
		f := feeds[pg]
		if f == nil {
			f = &feed{readers: map[string]int{}}
			feeds[pg] = f
		}
		f.fetches += int(asInt(r[5]))
		if asInt(r[1]) != 0 {
			n, _ := strconv.Atoi(asStr(r[3]))
			rd := asStr(r[2])
			f.readers[rd] = max(f.readers[rd], n)
			continue
		}
		f.most = max(f.most, int(asInt(r[6])))
	}
	for p, f := range feeds {
		row := store.FeedRow{Path: p, Fetches: f.fetches, Subscribers: f.most}
		for _, n := range f.readers {
			row.Subscribers += n
		}
		out.Feeds = append(out.Feeds, row)
	}
	out.Rank(limit)
	return out, nil
}

// LiveCount counts the persons with an event in the last five minutes by
// the store's clock, on every node.
func (b *Backend) LiveCount(ctx context.Context, site string) (int, error) {
	now := b.DB.Now()
	q := store.Query{Site: site, From: now.Add(-store.LiveWindow), To: now.Add(time.Millisecond)}
	if b.sqlReason(ctx, q, nil) != "" {
		b.count(&b.inLocal, "live")
		return b.DB.LiveCount(ctx, site)
	}
	b.count(&b.inSQL, "live")
	base, err := b.base(ctx, q)
	if err != nil {
		return 0, err
	}
	n, err := b.one(ctx, Build("SELECT uniqExact(person) FROM (?) WHERE vis", base))
	return int(n), err
}

// CohortPersons lists a cohort's persons that have events (as of q.To for
// a behavioural one), most recently created first, and their number.
func (b *Backend) CohortPersons(ctx context.Context, q store.Query, id int64, limit int) ([]store.Person, int, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	c, err := b.DB.Cohort(ctx, q.Site, id)
	if err != nil {
		return nil, 0, err
	}
	q.Cohort, q.Filters = id, nil
	if q.To.Before(q.From) || tzName(q) == "" || b.cohortReason(ctx, q.Site, c) != "" {
		b.count(&b.inLocal, "cohort")
		return b.DB.CohortPersons(ctx, q, id, limit)
	}
	b.count(&b.inSQL, "cohort")
	members, err := b.cohortSQL(ctx, q, c)
	if err != nil {
		return nil, 0, err
	}
	rel := Build("SELECT person, any(unmapped) AS um, min(ts) AS created FROM (?) WHERE ? GROUP BY person",
		personsOf(q.Site, "ts", "ts", "1"), members)
	total, err := b.one(ctx, Build("SELECT count() FROM (?)", rel))
	if err != nil || total == 0 {
		return []store.Person{}, 0, err
	}
	// The persons created at or after the limit-th most recent creation
	// (ties at the edge are ordered by id here).
	rows, err := b.client().Query(ctx, Build("SELECT person, um, created FROM (?) WHERE created >= (SELECT min(created) FROM (SELECT created FROM (?) ORDER BY created DESC LIMIT ?))",
		rel, rel, limit))
	if err != nil {
		return nil, 0, err
	}
	type cand struct {
		id    string
		first int64
	}
	cands := make([]cand, 0, len(rows))
	for _, r := range rows {
		p := asStr(r[0])
		if asInt(r[1]) != 0 {
			p = store.PersonID(q.Site, p)
		}
		cands = append(cands, cand{p, asInt(r[2])})
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].first != cands[j].first {
			return cands[i].first > cands[j].first
		}
		return cands[i].id > cands[j].id
	})
	cands = cands[:min(limit, len(cands))]
	out := make([]store.Person, 0, len(cands))
	for _, c := range cands {
		p, err := b.Person(ctx, q.Site, c.id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// A person only another node has seen.
			out = append(out, store.Person{ID: c.id, CreatedAt: c.first})
		case err != nil:
			return nil, 0, err
		default:
			p.CreatedAt = c.first // the first event any node shipped
			out = append(out, *p)
		}
	}
	return out, int(total), nil
}
