package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// The reports of SPEC §4 in SQL that runs on ClickHouse 18.16 and on
// current releases alike: no JSONExtract, CTEs, window functions, Map,
// DateTime64 or toStartOfInterval; one JOIN per SELECT.
//
// A query that needs what is not written in SQL (a time zone without an
// IANA name, imported aggregates, and what the local store refuses: an
// unknown action or cohort, a bad filter or selector) is answered by the
// local store and counted (Answered): see sqlReason. reports_more.go has
// the other reports and the cohorts.

// sqlReason returns why q cannot be answered in SQL, or "" when it can.
func (b *Backend) sqlReason(ctx context.Context, q store.Query, events []string, props ...string) string {
	if !q.From.Before(q.To) {
		return "empty range"
	}
	if q.Cohort != 0 {
		c, err := b.DB.Cohort(ctx, q.Site, q.Cohort)
		if err != nil {
			return "unknown cohort"
		}
		if r := b.cohortReason(ctx, q.Site, c); r != "" {
			return r
		}
	}
	if tzName(q) == "" {
		return "time zone"
	}
	for _, e := range events {
		if _, ok := b.eventCond(ctx, q.Site, e); !ok {
			return "event the local store refuses"
		}
	}
	return ""
}

// eventCond is the SQL condition of an event name, `action:<id>` or
// `E|<filter>`, as the local store resolves them (a filter on a session
// property reads base's session columns, which base joins for the
// properties seriesProps names); ok is false for what the local store
// reports as an error (an empty name, a filter that does not parse, an
// unknown action, a selector that does not parse) or when the site's
// element chains cannot be read.
func (b *Backend) eventCond(ctx context.Context, site, name string) (SQL, bool) {
	if base, fs, ok := strings.Cut(name, "|"); ok {
		f, err := store.ParseFilter(fs)
		if err != nil {
			return "", false
		}
		c, ok := b.eventCond(ctx, site, base)
		if !ok {
			return "", false
		}
		return Build("(? AND ?)", c, filterSQL(f)), true
	}
	idStr, isAction := strings.CutPrefix(name, "action:")
	if !isAction {
		if name == "" {
			return "", false
		}
		return stepCond(store.ActionStep{Event: name}), true
	}
	id, err := strconv.ParseInt(idStr, 10, 64)
	if err != nil {
		return "", false
	}
	a, err := b.DB.Action(ctx, site, id)
	if err != nil {
		return "", false
	}
	type chain struct {
		value string
		hash  uint64 // sipHash64, as ClickHouse computes it
	}
	var chains []chain // the site's distinct chains
	parts := []SQL{"0"}
	for _, st := range a.Steps {
		c := stepCond(st)
		if st.Selector != "" || st.Text != "" || st.Href != "" {
			// Element conditions: the store's own matcher picks the
			// site's chains that pass, and SQL keeps the events with one
			// of them (by hash, so that the query stays short).
			if chains == nil {
				rows, err := b.client().Query(ctx, Build("SELECT DISTINCT ? AS c, toString(sipHash64(c)) FROM events WHERE site = ?", prop("$elements_chain"), site))
				if err != nil {
					return "", false
				}
				chains = []chain{}
				for _, r := range rows {
					h, err := strconv.ParseUint(asStr(r[1]), 10, 64)
					if err != nil {
						return "", false
					}
					chains = append(chains, chain{asStr(r[0]), h})
				}
			}
			var elems, texts []SQL
			for _, ch := range chains {
				e, tx, err := store.MatchChain(st, ch.value)
				if err != nil {
					return "", false
				}
				if e {
					elems = append(elems, Quote(ch.hash))
				}
				if tx {
					texts = append(texts, Quote(ch.hash))
				}
			}
			hash := Build("sipHash64(?)", prop("$elements_chain"))
			if st.Selector != "" || st.Href != "" {
				c = Build("(? AND ?)", c, inHashes(hash, elems))
			}
			if st.Text != "" {
				c = Build("(? AND (? = ? OR ?))", c, prop("$el_text"), st.Text, inHashes(hash, texts))
			}
		}
		parts = append(parts, c)
	}
	return Build("(?)", Join(parts, " OR ")), true
}

// inHashes is "h IN (hashes)", or false for none.
func inHashes(h SQL, hashes []SQL) SQL {
	if len(hashes) == 0 {
		return "0"
	}
	return Build("? IN (?)", h, Join(hashes, ", "))
}

// stepCond is one action step's event and URL conditions: the event (a
// server pageview by its own name, confirmed or not; any other by the
// name reports see) and the URL containing a text (case matters).
func stepCond(st store.ActionStep) SQL {
	c := SQL("1")
	switch {
	case st.Event == store.ServerPageview:
		c = Build("name = ?", st.Event)
	case st.Event != "":
		c = Build("ename = ?", st.Event)
	}
	if st.URLContains != "" {
		c = Build("(? AND position(?, ?) > 0)", c, prop("$current_url"), st.URLContains)
	}
	return c
}

// seriesProps are the properties `E|filter` series test (base joins
// the session properties when one is among them).
func seriesProps(events ...string) []string {
	var out []string
	for _, e := range events {
		if _, fs, ok := strings.Cut(e, "|"); ok {
			if f, err := store.ParseFilter(fs); err == nil {
				out = append(out, f.Prop)
			}
		}
	}
	return out
}

// conds returns the conditions of events, all of which sqlReason has
// accepted.
func (b *Backend) conds(ctx context.Context, site string, events []string) []SQL {
	out := make([]SQL, len(events))
	for i, e := range events {
		out[i], _ = b.eventCond(ctx, site, e)
	}
	return out
}

// tzName is the IANA name of q's time zone for SQL; "" for a zone without
// one (a fixed offset without a name).
func tzName(q store.Query) string {
	if q.TZ == nil {
		return "UTC"
	}
	n := q.TZ.String()
	if n == "Local" {
		return localZoneName()
	}
	return n
}

var localZone struct {
	once sync.Once
	name string
}

// localZoneName is the IANA name of the zone time.Local holds, found as Go
// finds the zone: $TZ when set (empty for UTC; a name or a path into a
// zoneinfo directory, a leading ':' dropped), else the zoneinfo file
// /etc/localtime links to, else /etc/timezone, else UTC (as Go takes a
// machine without /etc/localtime). A name is kept only when
// its zone gives Local's offsets every 6 hours from 1970 to 2050 (which
// also catches a file that is a copy, not a link, of another zone); ""
// when none does, and such queries stay with the local store.
func localZoneName() string {
	localZone.once.Do(func() {
		var cands []string
		if tz, ok := os.LookupEnv("TZ"); ok {
			tz = strings.TrimPrefix(tz, ":")
			if tz == "" {
				tz = "UTC"
			}
			cands = append(cands, tz)
		} else {
			if l, err := os.Readlink("/etc/localtime"); err == nil {
				cands = append(cands, l)
			}
			if b, err := os.ReadFile("/etc/timezone"); err == nil {
				cands = append(cands, strings.TrimSpace(string(b)))
			}
		}
		cands = append(cands, "UTC") // Go's zone without /etc/localtime
		for _, c := range cands {
			if i := strings.LastIndex(c, "zoneinfo/"); i >= 0 {
				c = c[i+len("zoneinfo/"):]
			}
			if c == "" || strings.HasPrefix(c, "/") || c == "Local" {
				continue
			}
			loc, err := time.LoadLocation(c)
			if err != nil {
				continue
			}
			same := true
			for t := time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC); same && t.Year() < 2050; t = t.Add(6 * time.Hour) {
				_, a := t.In(loc).Zone()
				_, b := t.In(time.Local).Zone()
				same = a == b
			}
			if same {
				localZone.name = c
				return
			}
		}
	})
	return localZone.name
}

// prop is the SQL of an event's property value ("" when absent); "event"
// is the event's name as reports see it.
func prop(key string) SQL {
	if key == "event" {
		return "ename"
	}
	if c, ok := hotCol(key); ok {
		return c
	}
	if c, ok := sessionCol(key); ok {
		return c
	}
	return Build("prop_vals[indexOf(prop_keys, ?)]", key)
}

// filterSQL is the SQL of one filter, as store.Filter's matchValue.
func filterSQL(f store.Filter) SQL {
	v := prop(f.Prop)
	switch f.Op {
	case store.OpEq:
		return Build("(? = ?)", v, f.Value)
	case store.OpNe:
		return Build("(? != ?)", v, f.Value)
	case store.OpContains:
		return Build("(? != '' AND positionUTF8(lowerUTF8(?), ?) > 0)", v, v, strings.ToLower(f.Value))
	case store.OpNotContains:
		return Build("(? = '' OR positionUTF8(lowerUTF8(?), ?) = 0)", v, v, strings.ToLower(f.Value))
	}
	return "0"
}

// passSQL is 1 for events that pass q's filters.
func passSQL(q store.Query) SQL {
	parts := []SQL{"1"}
	for _, f := range q.Filters {
		if eventScoped(f) {
			parts = append(parts, filterSQL(f))
		}
	}
	return Join(parts, " AND ")
}

// eventScoped reports whether a filter tests an event property (Plausible's
// scope) rather than the session (a session property or $session_id),
// which keeps or drops whole sessions.
func eventScoped(f store.Filter) bool {
	return !store.IsSessionProp(f.Prop) && f.Prop != "$session_id"
}

// sessionFilters is the SQL of q's filters on the session, which apply to
// every event as it is.
func sessionFilters(q store.Query) SQL {
	parts := []SQL{"1"}
	for _, f := range q.Filters {
		if !eventScoped(f) {
			parts = append(parts, filterSQL(f))
		}
	}
	return Join(parts, " AND ")
}

// rangeFacts reports whether the site has server pageviews in q's range,
// which a snippet pageview may confirm (and so hide), and the events
// relation to read the range from, each uuid once (dedup.go).
func (b *Backend) rangeFacts(ctx context.Context, q store.Query) (bool, SQL, error) {
	return b.rangeFactsSQL(ctx, q.Site, q.From.UnixMilli(), q.To.UnixMilli()) // dedup.go
}

// siteEvents is the events relation for all of a site's events, each
// uuid once (dedup.go).
func (b *Backend) siteEvents(ctx context.Context, site string) (SQL, error) {
	return b.siteEventsSQL(ctx, site)
}

// perShard has each shard answer its own row (the rows summed by the
// caller), not one merged row: the copies of a uuid are always on one
// shard (sharded by distinct id, which a copy keeps), so each shard
// counts its repeats alone, and the states of 500k hashes per shard need
// not travel and merge.
const perShard = SQL("SETTINGS distributed_group_by_no_merge = 1")

// base is the relation every report reads: the events of q's range, each
// uuid once (dedup.go), bots left out unless asked for, each with its person
// (the latest mapping any node shipped; deleted persons' events dropped),
// its name as reports see it (ename: an unconfirmed server pageview is a
// $pageview), vis (0 for a server pageview a snippet pageview confirmed)
// and pass (1 when the event passes q's filters).
func (b *Backend) base(ctx context.Context, q store.Query, keys ...string) (SQL, error) {
	bots := SQL("1")
	if !q.IncludeBots {
		bots = Build("? != 'true'", prop(store.Datacenter))
	}
	srv, evs, err := b.rangeFacts(ctx, q)
	if err != nil {
		return "", err
	}
	inner := Build("SELECT uuid, name, distinct_id, ts, t, session, seq, prop_keys, prop_vals, prop_kinds, ver, ? FROM ? WHERE site = ? AND ? AND ts >= ? AND ts < ? AND ?",
		hotColumns(), evs, q.Site, timeRange(q.From.UnixMilli(), q.To.UnixMilli()), q.From.UnixMilli(), q.To.UnixMilli(), bots)
	persons := Build("SELECT distinct_id, argMax(person, ver) AS pm_person, argMax(deleted, ver) AS pm_deleted FROM person_map WHERE site = ? GROUP BY distinct_id", q.Site)
	ename, vis, err := b.pageviewNames(ctx, q.Site, srv)
	if err != nil {
		return "", err
	}
	members := SQL("1")
	if q.Cohort != 0 {
		c, err := b.DB.Cohort(ctx, q.Site, q.Cohort)
		if err != nil {
			return "", err
		}
		if members, err = b.cohortSQL(ctx, q, c); err != nil {
			return "", err
		}
	}
	mid := Build(`SELECT uuid, name, distinct_id, ts, t, session, seq, prop_keys, prop_vals, prop_kinds, ver, ?, if(pm_person = '', distinct_id, pm_person) AS person
FROM (?) AS ev GLOBAL ANY LEFT JOIN (?) AS pm USING distinct_id WHERE pm_deleted = 0`, hotColumns(), inner, persons)
	if q.Cohort != 0 {
		mid = Build("SELECT * FROM (?) WHERE ?", mid, members)
	}
	out := Build("SELECT uuid, name, distinct_id, ts, t, session, seq, prop_keys, prop_vals, prop_kinds, ver, ?, person, ? AS ename, ? AS vis FROM (?)", hotColumns(), ename, vis, mid)
	var need []string
	for _, f := range q.Filters {
		need = append(need, f.Prop)
	}
	if need = sessionProps(append(need, keys...)); len(need) > 0 {
		sess, err := b.sessionsSQL(ctx, q, need)
		if err != nil {
			return "", err
		}
		out = Build("SELECT * FROM (SELECT *, cityHash64(session) AS sh FROM (?)) AS ev GLOBAL ANY LEFT JOIN (?) AS ss USING sh", out, sess)
	}
	return Build("SELECT * FROM (?) WHERE ?", out, sessionFilters(q)), nil
}

// pageviewNames are the SQL of an event's name as reports see it (ename)
// and of vis, given whether the range holds server pageviews (srv).
func (b *Backend) pageviewNames(ctx context.Context, site string, srv bool) (ename, vis SQL, err error) {
	if !srv {
		return "name", "1", nil
	}
	ref := prop(store.PageviewRef)
	// Each uuid once (another copy may carry another ref): the refs of
	// the kept copies (highest ver), by a GROUP BY when the site holds a
	// uuid twice, not from the de-duplicated relation. That one is a
	// subquery in FROM, and current ClickHouse loses the name column of
	// a report that reads ename inside arrayJoin (goals, trends) when the
	// IN set of ename holds one ("Not found column name in block").
	all, err := b.siteEvents(ctx, site)
	if err != nil {
		return "", "", err
	}
	refs := Build("SELECT prop_vals[indexOf(prop_keys, ?)] AS r FROM events WHERE site = ? AND name = '$pageview' AND has(prop_keys, ?)",
		store.PageviewRef, site, store.PageviewRef)
	if all != "events" {
		// The kept copy decides, whatever the others hold: a copy that
		// is no pageview, or has no ref, gives none.
		refs = Build(`SELECT argMax(if(name = '$pageview' AND has(prop_keys, ?), prop_vals[indexOf(prop_keys, ?)], ''), ver) AS r
FROM events WHERE site = ? GROUP BY uuid HAVING r != ''`, store.PageviewRef, store.PageviewRef, site)
	}
	confirmed := Build("(name = '$server_pageview' AND ? != '' AND ? GLOBAL IN (?))", ref, ref, refs)
	return Build("if(name = '$server_pageview' AND NOT ?, '$pageview', name)", confirmed), Build("NOT ?", confirmed), nil
}

// sessionProps are the session properties among keys, each once.
func sessionProps(keys []string) []string {
	var out []string
	for _, k := range keys {
		if store.IsSessionProp(k) && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// rel is the events a report reads, as base gives them, in the shape
// that lets a cluster's shards aggregate their own events: the report's
// first aggregation reads FROM From WHERE Where (and its own conditions)
// directly, so that ClickHouse sends it to the shards and merges their
// states, where over base's subqueries every event of the range travelled
// to the server asked and was aggregated there alone. Its names: the
// columns of events, ename, vis and pass as in base and withPass, and
// pkey, a person's key (cityHash64 of the person id: distinct persons are
// counted exactly but for a 64-bit collision; the person ids themselves
// are not needed by any report's answer).
//
// Anon and AnonWhere are the same events without the person join (no
// pkey; deleted persons' events left out by a set of their ids' hashes),
// for the queries that count no persons.
type rel struct{ From, Where, Anon, AnonWhere SQL }

// rel builds q's rel. The session properties among keys (not filters:
// those are tested by session) need the sessions joined, which, as does a
// cohort, takes base's subqueries; the events are joined to the person
// map by a hash of the distinct id, carrying only the person's hash.
func (b *Backend) rel(ctx context.Context, q store.Query, keys ...string) (rel, error) {
	if q.Cohort != 0 || len(sessionProps(keys)) > 0 {
		base, err := b.base(ctx, q, keys...)
		if err != nil {
			return rel{}, err
		}
		from := Build("(SELECT *, ? AS pass, cityHash64(person) AS pkey FROM (?))", passSQL(q), base)
		return rel{from, "1", from, "1"}, nil
	}
	srv, evs, err := b.rangeFacts(ctx, q)
	if err != nil {
		return rel{}, err
	}
	ename, vis, err := b.pageviewNames(ctx, q.Site, srv)
	if err != nil {
		return rel{}, err
	}
	conds := []SQL{Build("site = ? AND ? AND ts >= ? AND ts < ?", q.Site, timeRange(q.From.UnixMilli(), q.To.UnixMilli()), q.From.UnixMilli(), q.To.UnixMilli())}
	if !q.IncludeBots {
		conds = append(conds, Build("? != 'true'", prop(store.Datacenter)))
	}
	// The names, each defined where it is first read (ClickHouse's
	// aliases hold in the whole query).
	conds = append(conds, Build("(? AS ename) = ename", ename), Build("(toUInt8(?) AS vis) = vis", vis))
	var sess SQL
	for _, f := range q.Filters {
		switch {
		case eventScoped(f):
		case !store.IsSessionProp(f.Prop):
			conds = append(conds, filterSQL(f))
		default:
			// The sessions whose property passes; events without a
			// session have every session property empty.
			if sess == "" {
				if sess, err = b.sessionsSQL(ctx, q, sessionProps(filterProps(q))); err != nil {
					return rel{}, err
				}
			}
			in := Build("cityHash64(session) GLOBAL IN (SELECT sh FROM (?) WHERE ?)", sess, filterSQL(f))
			if matchValue(f, "") {
				conds = append(conds, Build("(session = '' OR ?)", in))
			} else {
				conds = append(conds, Build("(session != '' AND ?)", in))
			}
		}
	}
	// (toUInt8: 18.16 crashes on an alias of an AND chain that a WHERE's
	// AND chain then reads, flattening the two.)
	conds = append(conds, Build("(toUInt8(?) AS pass) = pass", passSQL(q)))
	persons := Build(`SELECT cityHash64(distinct_id) AS pm_dh, cityHash64(if(argMax(person, ver) = '', distinct_id, argMax(person, ver))) AS pm_ph,
	argMax(deleted, ver) AS pm_deleted FROM person_map WHERE site = ? GROUP BY distinct_id`, q.Site)
	where := Join(append(conds, "pm_deleted = 0", "(if(pm_ph = 0, cityHash64(distinct_id), pm_ph) AS pkey) = pkey"), " AND ")
	anonWhere := Join(append(conds, Build("cityHash64(distinct_id) GLOBAL NOT IN (SELECT pm_dh FROM (?) WHERE pm_deleted = 1)", persons)), " AND ")
	return rel{Build("? GLOBAL ANY LEFT JOIN (?) AS pm ON cityHash64(distinct_id) = pm_dh", evs, persons), where, evs, anonWhere}, nil
}

func filterProps(q store.Query) []string {
	out := make([]string, len(q.Filters))
	for i, f := range q.Filters {
		out[i] = f.Prop
	}
	return out
}

// withPass wraps base with the pass column (filters may read ename).
func withPass(base SQL, q store.Query) SQL {
	return Build("SELECT *, ? AS pass FROM (?)", passSQL(q), base)
}

func scoped(q store.Query) bool {
	for _, f := range q.Filters {
		if eventScoped(f) {
			return true
		}
	}
	return false
}

// one runs a query answering one integer.
func (b *Backend) one(ctx context.Context, q SQL) (int64, error) {
	rows, err := b.client().Query(ctx, q)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 || len(rows[0]) < 1 {
		return 0, fmt.Errorf("clickhouse: %d rows, want 1", len(rows))
	}
	return asInt(rows[0][0]), nil
}

// asInt reads a JSONCompact integer (64-bit ones come quoted).
func asInt(raw json.RawMessage) int64 {
	s := strings.Trim(string(raw), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, _ := strconv.ParseFloat(s, 64)
		return int64(f)
	}
	return n
}

func asStr(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return strings.Trim(string(raw), `"`)
	}
	return s
}

// Stats is SPEC §4's overview in SQL, with Plausible's filter scope: with
// an event-property filter, pageviews are the passing ones, while
// visitors, sessions, bounce rate and duration are over the whole
// sessions with a passing event (and the persons of passing events
// without a session).
func (b *Backend) Stats(ctx context.Context, q store.Query) (store.Stats, error) {
	if b.sqlReason(ctx, q, nil) != "" {
		b.count(&b.inLocal, "stats")
		return b.DB.Stats(ctx, q)
	}
	var st store.Stats
	b.count(&b.inSQL, "stats")
	r0, err := b.rel(ctx, q)
	if err != nil {
		return st, err
	}
	var rows [][]json.RawMessage
	if scoped(q) {
		rows, err = b.scopedStats(ctx, r0)
	} else {
		rows, err = b.plainStats(ctx, r0)
	}
	if err != nil {
		return st, err
	}
	if len(rows) != 1 || len(rows[0]) != 7 {
		return st, fmt.Errorf("clickhouse: stats answered %v", rows)
	}
	r := rows[0]
	st.Visitors, st.Pageviews, st.Sessions = int(asInt(r[0])), int(asInt(r[1])), int(asInt(r[2]))
	bounces, durMs := asInt(r[3]), asInt(r[4])
	if n := asInt(r[5]); n > 0 {
		share := float64(asInt(r[6])) / float64(n)
		st.JSShare = &share
	}
	if st.Sessions > 0 {
		n := float64(st.Sessions)
		st.BounceRate = float64(bounces) / n
		st.AvgSessionSeconds = float64(durMs) / 1000 / n
		st.ViewsPerSession = float64(st.Pageviews) / n
	}
	return st, b.addImportedStats(ctx, q, &st, bounces, durMs) // imported aggregates (imported.go)
}

// scopedStats is Stats' row under an event-property filter: a session
// counts when one of its events passes, and then all of its persons.
// One row per session and person first (most sessions have one person,
// so the arrays of persons below are short and distinct), then one per
// session. Sessions are grouped by a hash of their id (sh; nos marks the
// events without one): exact but for a 64-bit collision, and many times
// faster to group than the strings.
func (b *Backend) scopedStats(ctx context.Context, r rel) ([][]json.RawMessage, error) {
	pairs := Build(`SELECT cityHash64(session) AS sh, session = '' AS nos, pkey,
	max(pass AND vis) AS pp, max(vis) AS pvis,
	countIf(pass AND vis AND ename = '$pageview') AS ppv,
	countIf(vis AND ename = '$pageview') AS pv,
	countIf(vis AND ename NOT IN ('$pageview', '$pageleave')) AS other,
	minIf(ts, vis) AS tmin, maxIf(ts, vis) AS tmax,
	countIf(pass AND name = '$server_pageview') AS srv,
	countIf(pass AND NOT vis) AS srvhid
FROM ? WHERE ? GROUP BY sh, nos, pkey`, r.From, r.Where)
	sessions := Build(`SELECT sh, nos,
	max(pp) AS anypass,
	if(nos, 1, anypass) AS incl,
	if(nos, groupArrayIf(pkey, pp), groupArrayIf(pkey, pvis)) AS ps,
	sum(ppv) AS sppv, sum(pv) AS spv, sum(other) AS sother,
	minIf(tmin, pvis) AS smin, maxIf(tmax, pvis) AS smax,
	sum(srv) AS ssrv, sum(srvhid) AS ssrvhid
FROM (?) GROUP BY sh, nos`, pairs)
	return b.client().Query(ctx, Build(`SELECT uniqExactArrayIf(ps, incl), sum(sppv),
	countIf(NOT nos AND incl), countIf(NOT nos AND incl AND spv = 1 AND sother = 0),
	sumIf(smax - smin, NOT nos AND incl), sum(ssrv), sum(ssrvhid) FROM (?)`, sessions))
}

// plainStats is Stats' row without an event-property filter, where every
// event passes: the visitors are the persons with a visible event (one
// query), the rest is per session (another, run beside it, without the
// person join; sessions by hash as in scopedStats).
func (b *Backend) plainStats(ctx context.Context, r rel) ([][]json.RawMessage, error) {
	var visitors [][]json.RawMessage
	var verr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		visitors, verr = b.client().Query(ctx, Build("SELECT uniqExactIf(pkey, vis) FROM ? WHERE ?", r.From, r.Where))
	}()
	rows, err := b.client().Query(ctx, Build(`SELECT sum(pv), countIf(NOT nos AND anyv), countIf(NOT nos AND anyv AND pv = 1 AND other = 0),
	sumIf(tmax - tmin, NOT nos AND anyv), sum(srv), sum(srvhid) FROM (
	SELECT cityHash64(session) AS sh, session = '' AS nos, max(vis) AS anyv,
		countIf(vis AND ename = '$pageview') AS pv,
		countIf(vis AND ename NOT IN ('$pageview', '$pageleave')) AS other,
		minIf(ts, vis) AS tmin, maxIf(ts, vis) AS tmax,
		countIf(name = '$server_pageview') AS srv,
		countIf(NOT vis) AS srvhid
	FROM ? WHERE ? GROUP BY sh, nos)`, r.Anon, r.AnonWhere))
	<-done
	if err == nil {
		err = verr
	}
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 || len(visitors) != 1 || len(visitors[0]) != 1 {
		return nil, fmt.Errorf("clickhouse: stats answered %v and %v", visitors, rows)
	}
	return [][]json.RawMessage{append(visitors[0], rows[0]...)}, nil
}

// Breakdown counts events and persons by a property's value, count
// descending, then value.
func (b *Backend) Breakdown(ctx context.Context, q store.Query, bq store.BreakdownQuery) ([]store.BreakdownRow, error) {
	var events []string
	if bq.Event != "" {
		events = []string{bq.Event}
	}
	if bq.Property == "" || b.sqlReason(ctx, q, events, bq.Property) != "" {
		b.count(&b.inLocal, "breakdown")
		return b.DB.Breakdown(ctx, q, bq)
	}
	if bq.Limit <= 0 {
		bq.Limit = 100
	}
	bq.Limit = min(bq.Limit, 1000)
	b.count(&b.inSQL, "breakdown")
	r0, err := b.rel(ctx, q, append(seriesProps(events...), bq.Property)...)
	if err != nil {
		return nil, err
	}
	cond := SQL("1")
	if bq.Event != "" {
		cond = b.conds(ctx, q.Site, events)[0]
	}
	keep := SQL("pass")
	if scoped(q) && store.IsSessionProp(bq.Property) {
		// A session property under an event filter: the events of the
		// whole sessions that have a passing event.
		keep = Build("session != '' AND cityHash64(session) GLOBAL IN (SELECT cityHash64(session) FROM ? WHERE ? AND pass AND vis AND session != '')", r0.From, r0.Where)
	}
	imp, err := b.importedBreakdown(ctx, q, bq) // imported aggregates (imported.go)
	if err != nil {
		return nil, err
	}
	impFirst, limit := imp.first("v", bq.Limit)
	rows, err := b.client().Query(ctx, Build(`SELECT ? AS v, count() AS c, uniqExact(pkey) FROM ?
WHERE ? AND ? AND vis AND v != '' AND ? GROUP BY v ORDER BY ? DESC, c DESC, v ASC LIMIT ?`, prop(bq.Property), r0.From, r0.Where, keep, cond, impFirst, limit))
	if err != nil {
		return nil, err
	}
	var out []store.BreakdownRow // nil when empty, as the local store answers
	for _, r := range rows {
		out = append(out, store.BreakdownRow{Value: asStr(r[0]), Count: int(asInt(r[1])), Visitors: int(asInt(r[2]))})
	}
	// ClickHouse compares strings as bytes, as Go does; sort again so
	// that the order never depends on it.
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Value < out[j].Value
	})
	return imp.merge(out, bq.Limit), nil
}

// labelSQL is the SQL of an event's interval label in tz, as
// store.IntervalLabels writes them.
func labelSQL(interval, tz string) SQL {
	switch interval {
	case store.IntervalHour:
		return Build("formatDateTime(t, '%Y-%m-%dT%H:00', ?)", tz)
	case store.IntervalWeek:
		return Build("toString(toMonday(toDate(t, ?)))", tz)
	case store.IntervalMonth:
		return Build("formatDateTime(t, '%Y-%m', ?)", tz)
	}
	return Build("toString(toDate(t, ?))", tz)
}

// Trends counts events (or distinct persons) per interval for each series,
// optionally broken down by a property (the 25 values with most events).
func (b *Backend) Trends(ctx context.Context, q store.Query, tq store.TrendsQuery) (store.Trends, error) {
	if len(tq.Events) == 0 {
		tq.Events = []string{"$pageview"}
	}
	if tq.Interval == "" {
		tq.Interval = store.IntervalDay
	}
	if tq.Math == "" {
		tq.Math = store.MathTotal
	}
	var props []string
	if tq.Breakdown != "" {
		props = append(props, tq.Breakdown)
	}
	agg := tq.Math == store.MathSum || tq.Math == store.MathAvg || tq.Math == store.MathMin || tq.Math == store.MathMax
	switch {
	case len(tq.Events) > 20,
		tq.Interval != store.IntervalHour && tq.Interval != store.IntervalDay && tq.Interval != store.IntervalWeek && tq.Interval != store.IntervalMonth,
		tq.Math != store.MathTotal && tq.Math != store.MathUnique && tq.Math != store.MathDAU && !agg,
		agg && tq.MathProperty == "",
		b.sqlReason(ctx, q, tq.Events, props...) != "":
		b.count(&b.inLocal, "trends")
		return b.DB.Trends(ctx, q, tq)
	}
	labels, err := store.IntervalLabels(q.From, q.To, tq.Interval, q.TZ)
	if err != nil {
		return store.Trends{}, err
	}
	// An hour's label is there twice when DST ends (the repeated hour is
	// two buckets, as the local store counts them): the events of the
	// later one are told apart by the number of repeats begun by then (dd).
	type slot struct {
		label string
		dd    int64
	}
	index := make(map[slot]int, len(labels))
	dd := SQL("0")
	if tq.Interval == store.IntervalHour {
		tz := q.TZ
		if tz == nil {
			tz = time.UTC
		}
		var repeats []SQL
		seen := map[string]bool{}
		n := int64(0)
		for i, start := 0, floorHour(q.From.In(tz)); i < len(labels); i, start = i+1, floorHour(start.Add(time.Hour)) {
			if seen[labels[i]] {
				repeats = append(repeats, Build("(ts >= ?)", start.UnixMilli()))
				n++
			}
			seen[labels[i]] = true
			index[slot{labels[i], n}] = i
		}
		if len(repeats) > 0 {
			dd = Build("(?)", Join(repeats, " + "))
		}
	} else {
		for i, l := range labels {
			if _, ok := index[slot{l, 0}]; !ok {
				index[slot{l, 0}] = i
			}
		}
	}
	b.count(&b.inSQL, "trends")
	r0, err := b.rel(ctx, q, append(seriesProps(tq.Events...), tq.Breakdown, tq.MathProperty)...)
	if err != nil {
		return store.Trends{}, err
	}
	bv := SQL("''")
	if tq.Breakdown != "" {
		bv = prop(tq.Breakdown)
	}
	// Each event counts in every series it matches: k is the series.
	ks := make([]SQL, len(tq.Events))
	for i, c := range b.conds(ctx, q.Site, tq.Events) {
		ks[i] = Build("if(?, ?, 0)", c, i+1)
	}
	// With math over a property, each distinct value's events are
	// counted, and the values read as numbers here as the local store
	// reads them.
	num, numCond := SQL("''"), SQL("1")
	if agg {
		num, numCond = prop(tq.MathProperty), Build("? != ''", prop(tq.MathProperty))
	}
	rows, err := b.client().Query(ctx, Build(`SELECT arrayJoin(arrayFilter(x -> x > 0, [?])) AS k, ? AS v, ? AS l, count(), uniqExact(pkey), ? AS n, ? AS dd FROM ?
	WHERE ? AND pass AND vis AND (? = 0 OR v != '') AND ?
GROUP BY k, v, l, n, dd`,
		Join(ks, ", "), bv, labelSQL(tq.Interval, tzName(q)), num, dd, r0.From, r0.Where, tq.Breakdown != "", numCond))
	if err != nil {
		return store.Trends{}, err
	}
	type key struct {
		series int64
		value  string
	}
	data := map[key][]float64{}
	seen := map[key][]int64{} // events aggregated per interval (math over a property)
	totals := map[key]int64{}
	for _, r := range rows {
		k := key{asInt(r[0]) - 1, asStr(r[1])}
		i, ok := index[slot{asStr(r[2]), asInt(r[6])}]
		if !ok {
			continue
		}
		n := asInt(r[3])
		var x float64
		if agg {
			v, err := strconv.ParseFloat(asStr(r[5]), 64)
			if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
				continue // not a number: left out, as the local store does
			}
			x = v
		}
		if data[k] == nil {
			data[k] = make([]float64, len(labels))
			seen[k] = make([]int64, len(labels))
		}
		totals[k] += n
		switch {
		case agg:
			d := &data[k][i]
			for j := int64(0); j < n; j++ {
				switch {
				case seen[k][i] == 0:
					*d = x
				case tq.Math == store.MathMin:
					*d = min(*d, x)
				case tq.Math == store.MathMax:
					*d = max(*d, x)
				default:
					*d += x
				}
				seen[k][i]++
			}
		case tq.Math == store.MathTotal:
			data[k][i] += float64(n)
		default:
			data[k][i] += float64(asInt(r[4]))
		}
	}
	if agg {
		for k, d := range data {
			for i := range d {
				if tq.Math == store.MathAvg && seen[k][i] > 0 {
					d[i] /= float64(seen[k][i])
				}
				d[i] = math.Round(d[i]*1e9) / 1e9
			}
		}
	}
	out := store.Trends{Labels: labels}
	for si, ev := range tq.Events {
		si := int64(si)
		values := []string{""}
		if tq.Breakdown != "" {
			values = values[:0]
			for k := range totals {
				if k.series == si {
					values = append(values, k.value)
				}
			}
			sort.Slice(values, func(i, j int) bool {
				ti, tj := totals[key{si, values[i]}], totals[key{si, values[j]}]
				if ti != tj {
					return ti > tj
				}
				return values[i] < values[j]
			})
			if len(values) > 25 {
				values = values[:25]
			}
		}
		for _, v := range values {
			s := store.TrendSeries{Event: ev, Data: data[key{si, v}]}
			if s.Data == nil {
				s.Data = make([]float64, len(labels))
			}
			if tq.Breakdown != "" {
				v := v
				s.BreakdownValue = &v
			}
			out.Series = append(out.Series, s)
		}
	}
	if err := b.addImportedTrends(ctx, q, tq, &out); err != nil { // imported aggregates (imported.go)
		return store.Trends{}, err
	}
	return out, nil
}

// floorHour is the start of t's hour as the local store floors it (the
// instant's own offset kept, so that the hour repeated when DST ends is
// two hours).
func floorHour(t time.Time) time.Time {
	return t.Add(-time.Duration(t.Minute())*time.Minute - time.Duration(t.Second())*time.Second - time.Duration(t.Nanosecond()))
}

// bigTS is later than every event: a chain that cannot go on (an Int64,
// as ts is; the bare literal would read as UInt64).
const bigTS = SQL("toInt64(9223372036854775807)")

// Funnel counts, per step, the persons with a chain from a step-1 event:
// each next step strictly later than the one before, all within the window
// of the first. For one start the earliest possible next event is always
// the best choice, so the chain is a fold of arrayFirst over each step's
// sorted times; a person's depth is the longest over their starts.
func (b *Backend) Funnel(ctx context.Context, q store.Query, fq store.FunnelQuery) ([]store.FunnelStep, error) {
	if fq.Window == 0 {
		fq.Window = store.DefaultFunnelWindow
	}
	n := len(fq.Steps)
	if n == 0 || n > 20 || fq.Window < 0 || fq.Window > 100*365*24*time.Hour || b.sqlReason(ctx, q, fq.Steps) != "" {
		b.count(&b.inLocal, "funnel")
		return b.DB.Funnel(ctx, q, fq)
	}
	b.count(&b.inSQL, "funnel")
	r0, err := b.rel(ctx, q, seriesProps(fq.Steps...)...)
	if err != nil {
		return nil, err
	}
	arrays, names := make([]SQL, n), make([]SQL, n)
	stepConds := b.conds(ctx, q.Site, fq.Steps)
	for k := range fq.Steps {
		// Every array is selected beside the lambdas that read it: 18.16
		// otherwise drops a column only a lambda reads from the subquery.
		names[k] = Build("?", Ident(fmt.Sprint("a", k)))
		arrays[k] = Build("arraySort(groupArrayIf(ts, ?)) AS ?", stepConds[k], Ident(fmt.Sprint("a", k)))
	}
	w := fq.Window.Milliseconds()
	// One row per start (ARRAY JOIN), so that each lambda reads only
	// columns: 18.16 cannot capture a column in a nested lambda.
	depth := SQL("1")
	prev := SQL("s")
	for k := 1; k < n; k++ {
		tk := Build("arrayFirst(x -> x > ? OR x = ?, arrayPushBack(arrayFilter(x -> x <= s + ?, ?), ?))", prev, bigTS, w, Ident(fmt.Sprint("a", k)), bigTS)
		depth = Build("? + (? != ?)", depth, tk, bigTS)
		prev = tk
	}
	counts := make([]SQL, n)
	for k := range counts {
		counts[k] = Build("countIf(depth >= ?)", k+1)
	}
	// The starts worth trying. A start followed by a later one with no
	// second-step event in between (at equal times the second step's
	// events count as before the start) reaches no further than that later
	// one: the same first second-step event, an earlier deadline. So only
	// the last start before each second-step event, and the last start,
	// are tried; trying every start made a person's rows grow with the
	// square of their events (ARRAY JOIN repeats the arrays per start).
	// m merges both as 2·time (second step) and 2·time+1 (start).
	starts := SQL("a0")
	if n > 1 {
		m := SQL("arraySort(arrayConcat(arrayMap(x -> x * 2, a1), arrayMap(x -> x * 2 + 1, a0)))")
		starts = Build("arrayMap(v -> intDiv(v - 1, 2), arrayFilter((v, nv) -> bitAnd(v, 1) = 1 AND bitAnd(nv, 1) = 0, ?, arrayPopFront(arrayPushBack(?, toInt64(0)))))", m, m)
	}
	rows, err := b.client().Query(ctx, Build(`SELECT ? FROM (
	SELECT pkey, max(d) AS depth FROM (
		SELECT pkey, s, ? AS d, ? FROM (
			SELECT pkey, ? FROM ? WHERE ? AND pass AND vis GROUP BY pkey
		) ARRAY JOIN ? AS s
	) GROUP BY pkey)`, Join(counts, ", "), depth, Join(names, ", "), Join(arrays, ", "), r0.From, r0.Where, starts))
	if err != nil {
		return nil, err
	}
	out := make([]store.FunnelStep, n)
	for k, s := range fq.Steps {
		out[k].Event = s
		if len(rows) == 1 && k < len(rows[0]) {
			out[k].Count = int(asInt(rows[0][k]))
		}
	}
	return out, nil
}

// maxPeriods is the local store's bound on a retention's periods (its
// maxIntervals): beyond it, its error.
const maxPeriods = 20000

// Retention: a person's cohort is the period of their first start event in
// range; values[k] counts the cohort's persons with a return event in
// period c+k. Periods are days or weeks aligned to from in tz, computed
// here as bounds and found in SQL by an event's distance from from and a
// few bounds around it.
func (b *Backend) Retention(ctx context.Context, q store.Query, rq store.RetentionQuery) ([]store.RetentionCohort, error) {
	if rq.StartEvent == "" {
		rq.StartEvent = "$pageview"
	}
	if rq.ReturnEvent == "" {
		rq.ReturnEvent = "$pageview"
	}
	step := 1
	switch rq.Period {
	case "", store.PeriodDay:
	case store.PeriodWeek:
		step = 7
	default:
		b.count(&b.inLocal, "retention")
		return b.DB.Retention(ctx, q, rq)
	}
	if rq.Periods <= 0 {
		rq.Periods = 8
	}
	rq.Periods = min(rq.Periods, 60)
	if b.sqlReason(ctx, q, []string{rq.StartEvent, rq.ReturnEvent}) != "" {
		b.count(&b.inLocal, "retention")
		return b.DB.Retention(ctx, q, rq)
	}
	tz := q.TZ
	if tz == nil {
		tz = time.UTC
	}
	from := q.From.In(tz)
	var bounds []int64
	var labels []string
	bounds = append(bounds, from.UnixMilli())
	for c := 1; ; c++ {
		if c > maxPeriods {
			b.count(&b.inLocal, "retention")
			return b.DB.Retention(ctx, q, rq) // the local store's error
		}
		bd := from.AddDate(0, 0, c*step)
		labels = append(labels, from.AddDate(0, 0, (c-1)*step).Format(time.DateOnly))
		bounds = append(bounds, bd.UnixMilli())
		if !bd.Before(q.To) {
			break
		}
	}
	b.count(&b.inSQL, "retention")
	r0, err := b.rel(ctx, q, seriesProps(rq.StartEvent, rq.ReturnEvent)...)
	if err != nil {
		return nil, err
	}
	rc := b.conds(ctx, q.Site, []string{rq.StartEvent, rq.ReturnEvent})
	// An event's period: c0, its distance from from in whole periods of
	// fixed length, is off by at most a day's worth of offset changes
	// (DST, a zone that moved), so the period is c0 - 3 plus the number of
	// bounds B[c0-2..c0+2] at or before the event: a few lookups, however
	// many periods. bs is B with two copies of B[0] before (every event is
	// at or after it) and four of the largest time after: B[k] is
	// bs[k + 3]. (Counting every bound before the event cost as many
	// comparisons as periods, per event.)
	bs := []SQL{Quote(bounds[0]), Quote(bounds[0])}
	for _, x := range bounds {
		bs = append(bs, Quote(x))
	}
	for range 4 {
		bs = append(bs, Quote(int64(math.MaxInt64)))
	}
	periodMs := int64(step) * 24 * 3600 * 1000
	period := func(e SQL) SQL {
		c0 := Build("intDiv(? - ?, ?)", e, bounds[0], periodMs)
		terms := make([]SQL, 5)
		for j := range terms {
			terms[j] = Build("(? >= bs[? + ?])", e, c0, j+1)
		}
		return Build("(? - 3 + ?)", c0, Join(terms, " + "))
	}
	vals := make([]SQL, rq.Periods)
	vals[0] = "count()"
	for k := 1; k < rq.Periods; k++ {
		vals[k] = Build("countIf(has(rp, c + ?))", k)
	}
	rows, err := b.client().Query(ctx, Build(`SELECT c, ? FROM (
	SELECT pkey, CAST([?] AS Array(Int64)) AS bs, ? AS c, arrayMap(r -> ?, rts) AS rp FROM (
		SELECT pkey, minIf(ts, ?) AS fst, countIf(?) AS starts, groupArrayIf(ts, ?) AS rts
		FROM ? WHERE ? AND pass AND vis GROUP BY pkey
	) WHERE starts > 0
) GROUP BY c`, Join(vals, ", "), Join(bs, ","), period("fst"), period("r"), rc[0], rc[0], rc[1], r0.From, r0.Where))
	if err != nil {
		return nil, err
	}
	out := make([]store.RetentionCohort, len(labels))
	for c := range out {
		out[c] = store.RetentionCohort{Date: labels[c], Values: make([]int, rq.Periods)}
	}
	for _, r := range rows {
		c := int(asInt(r[0]))
		if c < 0 || c >= len(out) {
			continue
		}
		out[c].Size = int(asInt(r[1]))
		for k := 0; k < rq.Periods; k++ {
			out[c].Values[k] = int(asInt(r[1+k]))
		}
	}
	return out, nil
}
