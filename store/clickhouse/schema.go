package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// The tables, on every server named in the configuration. With a cluster,
// events_local and person_map_local hold each shard's part and events and
// person_map are Distributed tables over them, sharded by a hash of the
// distinct id; without one, events and person_map are the tables
// themselves.
//
// events keeps one row per uuid: ReplacingMergeTree on (site, toDate(t),
// uuid) (the day in the key lets a query read only the days of its range:
// see timeRange); a retried batch is the same rows (ver is fixed when the
// event enters the outbox). A resent copy (shipped too, in case the first
// never reached the outbox) has a lower ver and is the same row but for
// its time: one on another day than the first copy is a second row (the
// old key, (site, uuid), merged them but made every report read every day
// of a site). A
// query reads a uuid once, even before the parts are merged and across
// days, with FINAL and without the lower copies, only when its range
// holds a uuid twice (dedup.go). person_map holds, for each distinct id, the
// person it belongs to (events' seq is their arrival sequence: the
// node's arrival time in µs, strictly increasing per node, which orders
// one node's events as they were appended and links by arrival: see
// persons.go's evKey); the row with the highest ver wins (argMax), so the
// latest merge seen by any node applies to every node's events.

// schema returns the statements that create the tables on one server;
// replicated makes the tables Replicated (see replicas.go).
func (b *Backend) schema(replicated bool) []SQL {
	db := Ident(b.opts.Database)
	engine := func(table Ident, ver SQL) SQL { return b.engine(replicated, table, ver) }
	ev, pm := Ident("events"), Ident("person_map")
	if b.opts.Cluster != "" {
		ev, pm = Ident("events_local"), Ident("person_map_local")
	}
	out := []SQL{
		Build("CREATE DATABASE IF NOT EXISTS ?", db),
		Build(`CREATE TABLE IF NOT EXISTS ?.? (
	site String, uuid String, name String, distinct_id String,
	ts Int64, t DateTime('UTC'), session String, seq UInt64,
	prop_keys Array(String), prop_vals Array(String), prop_kinds Array(UInt8), raw String, ver UInt64, ?
) ENGINE = ? PARTITION BY toYYYYMM(t) ORDER BY (site, toDate(t), uuid)`, db, ev, hotDefs(), engine(ev, "ver")),
		Build(`CREATE TABLE IF NOT EXISTS ?.? (
	site String, distinct_id String, person String, deleted UInt8, ver UInt64
) ENGINE = ? ORDER BY (site, distinct_id)`, db, pm, engine(pm, "ver")),
	}
	// recordings (recordings.go): one row per chunk, sharded by session.
	rec := Ident("recordings")
	if b.opts.Cluster != "" {
		rec = Ident("recordings_local")
	}
	out = append(out, Build(`CREATE TABLE IF NOT EXISTS ?.? (
	site String, session String, node String, ord UInt64, t DateTime('UTC'),
	window String, distinct_id String, first Int64, last Int64, events UInt32, bytes UInt64, data String
) ENGINE = ? PARTITION BY toYYYYMM(t) ORDER BY (site, session, node, ord)`, db, rec, engine(rec, "")))
	if b.opts.Cluster != "" {
		out = append(out, Build("CREATE TABLE IF NOT EXISTS ?.`recordings` AS ?.? ENGINE = Distributed(?, ?, ?, sipHash64(session))",
			db, db, rec, Ident(b.opts.Cluster), db, rec))
	}
	out = append(out, b.importedSchema(replicated)...) // imported aggregates (imported.go)
	if b.opts.Cluster != "" {
		cl := Ident(b.opts.Cluster)
		out = append(out,
			Build("CREATE TABLE IF NOT EXISTS ?.`events` AS ?.? ENGINE = Distributed(?, ?, ?, sipHash64(distinct_id))", db, db, ev, cl, db, ev),
			Build("CREATE TABLE IF NOT EXISTS ?.`person_map` AS ?.? ENGINE = Distributed(?, ?, ?, sipHash64(distinct_id))", db, db, pm, cl, db, pm))
	}
	return out
}

// ensureSchema creates the database and tables on every configured
// server (ON CLUSTER needs ZooKeeper, and 18.16 crashes running it while
// ZooKeeper is unreachable, so each server is asked in turn). On a
// replicated cluster a server that cannot be reached is left to a
// background retry (replicas.go) when another one has its tables.
func (b *Backend) ensureSchema(ctx context.Context) error {
	if err := b.ensureSchemaReplicas(ctx); err != nil {
		return err
	}
	b.checkEventsKey(ctx)
	b.addHotColumns(ctx)
	return nil
}

// hotProps are the properties also stored in a column of their own
// (p_<name>, which Append fills; prop reads it): most reports read one of
// them, and a query that reads a column reads all of it, so that a
// property in the arrays costs ~1 KB of reading per event.
//
// The order is row's (backend.go, hotFields). p_current_url, the first
// added after p_pathname, is in every row this release writes (ship.go
// tells older outbox rows by it); the later ones are left out of a row
// when empty (ClickHouse then stores "", as the arrays answer).
var hotProps = []struct {
	key string
	col Ident
}{
	{store.Datacenter, "p_datacenter"}, {"$pathname", "p_pathname"},
	{"$current_url", "p_current_url"},
	// session properties and the overview's breakdowns
	{"$referrer", "p_referrer"}, {"$referring_domain", "p_referring_domain"},
	{"utm_source", "p_utm_source"}, {"utm_medium", "p_utm_medium"}, {"utm_campaign", "p_utm_campaign"},
	{"utm_term", "p_utm_term"}, {"utm_content", "p_utm_content"},
	{"$browser", "p_browser"}, {"$os", "p_os"}, {"$device_type", "p_device_type"}, {"$geoip_country_code", "p_country"},
	// heatmaps
	{"$event_type", "p_event_type"}, {"$click_x", "p_click_x"}, {"$click_y", "p_click_y"}, {"$viewport_width", "p_viewport_width"},
	{"$prev_pageview_pathname", "p_prev_pathname"}, {"$prev_pageview_max_content", "p_prev_max_content"},
	// goals
	{"revenue", "p_revenue"}, {"$revenue", "p_drevenue"}, {"currency", "p_currency"}, {"$currency", "p_dcurrency"},
	// the server report
	{"$status", "p_status"}, {"$server_ms", "p_server_ms"}, {store.FeedReader, "p_feed_reader"}, {store.FeedSubscribers, "p_feed_subscribers"},
}

// hotIndex is each hot property's place in hotProps.
var hotIndex = func() map[string]int {
	m := make(map[string]int, len(hotProps))
	for i, h := range hotProps {
		m[h.key] = i
	}
	return m
}()

// hotCol is the column of a hot property.
func hotCol(key string) (SQL, bool) {
	if i, ok := hotIndex[key]; ok {
		return Build("?", hotProps[i].col), true
	}
	return "", false
}

// hotDefs declares the hot columns; their default (what parts written
// before the column existed answer) is the value in the arrays.
func hotDefs() SQL {
	defs := make([]SQL, len(hotProps))
	for i, h := range hotProps {
		defs[i] = Build("? String DEFAULT prop_vals[indexOf(prop_keys, ?)]", h.col, h.key)
	}
	return Join(defs, ", ")
}

// hotColumns is the hot columns, to select.
func hotColumns() SQL {
	cols := make([]SQL, len(hotProps))
	for i, h := range hotProps {
		cols[i] = Build("?", h.col)
	}
	return Join(cols, ", ")
}

// addHotColumns adds the hot columns to an events table created before
// them, on every server that answers (ALTER on a replicated table reaches
// its other replicas; "already exists" is then fine).
func (b *Backend) addHotColumns(ctx context.Context) {
	tables := []string{"events"}
	if b.opts.Cluster != "" {
		tables = []string{"events_local", "events"}
	}
	for _, c := range b.servers {
		for _, table := range tables {
			rows, err := c.Query(ctx, Build("SELECT name FROM system.columns WHERE database = ? AND table = ?", b.opts.Database, table))
			if err != nil || len(rows) == 0 {
				continue // unreachable, or its tables not made yet
			}
			have := map[string]bool{}
			for _, r := range rows {
				have[asStr(r[0])] = true
			}
			// One ALTER for all the missing columns (each ALTER waits for
			// the table's lock; until the last one the new columns are
			// unknown to reports).
			var add []SQL
			for _, h := range hotProps {
				if !have[string(h.col)] {
					add = append(add, Build("ADD COLUMN ? String DEFAULT prop_vals[indexOf(prop_keys, ?)]", h.col, h.key))
				}
			}
			if len(add) == 0 {
				continue
			}
			err = c.Exec(ctx, Build("ALTER TABLE ?.? ?", Ident(b.opts.Database), Ident(table), Join(add, ", ")))
			if err != nil && strings.Contains(err.Error(), "already exists") {
				// Another node added some meanwhile (or a replica got
				// them): add the rest one by one.
				for _, a := range add {
					err = c.Exec(ctx, Build("ALTER TABLE ?.? ?", Ident(b.opts.Database), Ident(table), a))
					if err != nil && !strings.Contains(err.Error(), "already exists") {
						b.noteErr(err)
					}
				}
				continue
			}
			if err != nil {
				b.noteErr(err)
			}
		}
	}
}

// checkEventsKey tells (in the shipping status and OnError) when the
// events table was created by an older release, ordered by (site, uuid):
// the answers are the same, but every report reads all of a site's days.
// It is not migrated here (copying a large table is the operator's call):
// rename it away, restart, and INSERT INTO events SELECT * FROM the old one.
func (b *Backend) checkEventsKey(ctx context.Context) {
	table := "events"
	if b.opts.Cluster != "" {
		table = "events_local"
	}
	rows, err := b.client().Query(ctx, Build("SELECT sorting_key FROM system.tables WHERE database = ? AND name = ?", b.opts.Database, table))
	if err != nil || len(rows) != 1 || len(rows[0]) != 1 {
		return
	}
	if k := asStr(rows[0][0]); !strings.Contains(k, "toDate(t)") {
		b.noteErr(fmt.Errorf("clickhouse: table %s.%s is ordered by (%s), from an older release: reports read every day of a site; recreate it ordered by (site, toDate(t), uuid) to read only the days asked for", b.opts.Database, table, k))
	}
}

// timeRange is the condition on events' t (and its day, the second
// column of the order) that holds for every event with from <= ts < to
// (Unix ms), so that ClickHouse reads only the parts and days of the
// range; the exact condition on ts still applies.
func timeRange(from, to int64) SQL {
	const maxT = 4102444799 // 2099-12-31 23:59:59, well within DateTime and Date
	lo := min(max(0, floorDiv(from, 1000)), maxT)
	hi := max(0, floorDiv(to-1, 1000))
	day := func(s int64) string { return time.Unix(s, 0).UTC().Format(time.DateOnly) }
	if hi > maxT {
		return Build("(t >= toDateTime(?) AND toDate(t) >= toDate(?))", lo, day(lo))
	}
	return Build("(t >= toDateTime(?) AND t <= toDateTime(?) AND toDate(t) >= toDate(?) AND toDate(t) <= toDate(?))", lo, hi, day(lo), day(hi))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
