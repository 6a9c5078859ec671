package clickhouse

import (
	"context"
	"fmt"
)

// A resent copy of an event (same uuid, shipped again in case the first
// never reached the outbox, or sent again through another node) is the
// same row but for its time and a lower ver. events is ordered by (site,
// toDate(t), uuid), and ReplacingMergeTree (and FINAL) merges rows of one
// sort key only: a copy whose time falls on another day than the first
// copy's is a second row. Reports read each uuid once all the same:
//
//   - The query that tells whether the range has server pageviews also
//     counts, over the range widened by dupMargin on both sides, rows
//     beyond one per uuid (a few cheap columns, which the range's query
//     reads anyway).
//   - None (the common case): the reports read `events` as it is, which
//     ClickHouse reads many times faster than FINAL (FINAL merges every
//     column read, the property arrays too, in one stream). The uuids are
//     counted by their hashes: a collision only makes the next step run
//     when it was not needed.
//   - Some: they read `events FINAL` (copies of one day) without the rows
//     of a uuid that has a copy of higher ver (the first copy) within the
//     widened range: the losers, a short list found by one GROUP BY over
//     the uuids of the widened range.
//
// A copy more than dupMargin from the range's edge, whose first copy lies
// outside the range, is not seen (the range then counts the copy it holds);
// a resent copy carries the first one's time as the client computed it,
// give or take its clock's drift, so copies lie seconds apart, and a
// margin of an hour costs a query of one day 1/12 more of those columns.
const dupMargin = 3600 * 1000 // ms

// rangeFactsSQL is rangeFacts: whether the site has server pageviews in
// [from, to) (ms), and the relation of the range's events, each uuid once.
func (b *Backend) rangeFactsSQL(ctx context.Context, site string, from, to int64) (bool, SQL, error) {
	wf, wt := from-dupMargin, to+dupMargin
	rows, err := b.client().Query(ctx, Build(`SELECT countIf(name = '$server_pageview' AND ts >= ? AND ts < ?), count() - uniqExact(cityHash64(uuid))
FROM events WHERE site = ? AND ? AND ts >= ? AND ts < ? ?`, from, to, site, timeRange(wf, wt), wf, wt, perShard))
	if err != nil {
		return false, "", err
	}
	var srv, dups int64 // summed over the shards' rows (perShard)
	for _, r := range rows {
		if len(r) != 2 {
			return false, "", fmt.Errorf("clickhouse: range facts answered %v", rows)
		}
		srv, dups = srv+asInt(r[0]), dups+asInt(r[1])
	}
	if dups == 0 {
		return srv > 0, "events", nil
	}
	return srv > 0, dedupRel(site, Build("? AND ts >= ? AND ts < ?", timeRange(from, to), from, to),
		Build("? AND ts >= ? AND ts < ?", timeRange(wf, wt), wf, wt)), nil
}

// siteEventsSQL is siteEvents: the relation of all of a site's events,
// each uuid once.
func (b *Backend) siteEventsSQL(ctx context.Context, site string) (SQL, error) {
	rows, err := b.client().Query(ctx, Build("SELECT count() - uniqExact(cityHash64(uuid)) FROM events WHERE site = ? ?", site, perShard))
	if err != nil {
		return "", err
	}
	n := int64(0) // summed over the shards' rows (perShard)
	for _, r := range rows {
		if len(r) != 1 {
			return "", fmt.Errorf("clickhouse: repeats answered %v", rows)
		}
		n += asInt(r[0])
	}
	if n == 0 {
		return "events", nil
	}
	return dedupRel(site, "1", "1"), nil
}

// dedupRel is the events of site where cond holds, each uuid once: FINAL,
// and without the copies of a uuid that has one of higher ver where wide
// holds (wide holds wherever cond does).
func dedupRel(site string, cond, wide SQL) SQL {
	losers := Build(`SELECT uuid, lv FROM (
	SELECT uuid, groupArray(ver) AS vs, max(ver) AS mv FROM events WHERE site = ? AND ? GROUP BY uuid HAVING count() > 1
) ARRAY JOIN vs AS lv WHERE lv != mv`, site, wide)
	// Aliased: it is read as a table (FROM ? WHERE, ? JOIN), and current
	// ClickHouse refuses a subquery without a name in a JOIN.
	return Build("(SELECT * FROM events FINAL WHERE site = ? AND ? AND (uuid, ver) GLOBAL NOT IN (?)) AS ev_once", site, cond, losers)
}
