package clickhouse

import "context"

// The tables, on every server named in the configuration. With a cluster,
// events_local and person_map_local hold each shard's part and events and
// person_map are Distributed tables over them, sharded by a hash of the
// distinct id; without one, events and person_map are the tables
// themselves.
//
// events keeps one row per uuid: ReplacingMergeTree on (site, uuid), a
// retried batch is the same rows (ver is fixed when the event enters the
// outbox), and queries read it with FINAL so that a uuid counts once even
// before the parts are merged. person_map holds, for each distinct id, the
// person it belongs to (seq orders one node's events as they were
// appended, for session properties); the row with the highest ver wins (argMax), so the
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
	prop_keys Array(String), prop_vals Array(String), prop_kinds Array(UInt8), raw String, ver UInt64
) ENGINE = ? PARTITION BY toYYYYMM(t) ORDER BY (site, uuid)`, db, ev, engine(ev, "ver")),
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
	return b.ensureSchemaReplicas(ctx)
}
