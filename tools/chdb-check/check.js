// Replays a capture of the ClickHouse backend's statements (JSON lines
// {"db", "sql", "data"}) in order through chdb (current ClickHouse, in
// process) and reports every distinct statement it refuses.
//
// The capture comes from a two-shard cluster; chdb is one process without
// remote_servers, so a Distributed table is made a Merge table over its
// local table (the same columns, read with FINAL alike), and a
// Replicated engine its unreplicated form. Everything else runs as sent.
'use strict';
const fs = require('fs');
const { Session } = require('chdb');

const [logPath, sessPath] = process.argv.slice(2);
const lines = fs.readFileSync(logPath, 'utf8').split('\n').filter(Boolean);
const s = new Session(sessPath);

const merged = new Map(); // db.table made a Merge table -> its local table

function rewrite(sql, db) {
  // CREATE TABLE IF NOT EXISTS `db`.`events` AS `db`.`events_local` ENGINE = Distributed(`fp`, `db`, `events_local`, key)
  const m = sql.match(/^CREATE TABLE IF NOT EXISTS `([^`]*)`\.`([^`]*)` AS .* ENGINE = Distributed\(/);
  sql = sql.replace(/ENGINE = Distributed\(`[^`]*`, (`[^`]*`), `([^`]*)`, [^)]*\)\)?/,
    (_, d, local) => { merged.set(m[1] + '.' + m[2], local); return `ENGINE = Merge(${d.replace(/`/g, "'")}, '^${local}$')`; });
  // A Merge table takes no inserts: they go to its local table.
  sql = sql.replace(/^INSERT INTO `([^`]*)`/, (all, t) => merged.has(db + '.' + t) ? 'INSERT INTO `' + merged.get(db + '.' + t) + '`' : all);
  sql = sql.replace(/ReplicatedReplacingMergeTree\('[^']*', '[^']*'(, )?/, 'ReplacingMergeTree(');
  return sql;
}

let curDB = '';
const seen = new Map(); // statement shape -> {count, error}
let ran = 0, failed = 0;
for (const line of lines) {
  const q = JSON.parse(line);
  const db = q.db || 'default';
  let sql = rewrite(q.sql.trim(), db);
  if (db !== curDB) {
    try { s.query('CREATE DATABASE IF NOT EXISTS `' + db + '`'); s.query('USE `' + db + '`'); curDB = db; }
    catch (e) { console.log('USE ' + db + ': ' + e.message); }
  }
  if (/^KILL QUERY/i.test(sql)) continue; // no other queries run here
  // Statements differ only in their literals: keep one error per shape.
  const shape = sql.replace(/'(?:[^'\\]|\\.)*'/g, "''").replace(/\b\d+(\.\d+)?\b/g, '0');
  let text = sql;
  if (q.data) text = sql + '\n' + q.data;
  ran++;
  let err = null;
  try {
    s.query(text, /^\s*SELECT/i.test(sql) && !/FORMAT\s+\w+\s*$/i.test(sql) ? 'JSONCompact' : 'CSV');
  } catch (e) {
    err = e.message.split('\n')[0];
  }
  const r = seen.get(shape) || { count: 0, errors: 0, error: null, sql };
  r.count++;
  if (err) { r.errors++; failed++; if (!r.error) { r.error = err; r.sql = sql; } }
  seen.set(shape, r);
}
const version = s.query('SELECT version()', 'TSV').trim();
const bad = [...seen.values()].filter(r => r.errors > 0);
console.log(`chdb ${version}: ${ran} statements (${seen.size} distinct shapes), ${failed} refused (${bad.length} shapes)`);
for (const r of bad) {
  console.log('\n--- refused ' + r.errors + '/' + r.count + ': ' + r.error);
  console.log(r.sql.length > 1500 ? r.sql.slice(0, 1500) + ' …' : r.sql);
}
s.cleanup && s.cleanup();
process.exit(bad.length ? 1 : 0);
