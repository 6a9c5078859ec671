package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// Events lists the events of every node from ClickHouse, newest first
// (equal times by uuid, descending); the cursor is "<ts>_<uuid>". Like
// the local store it keeps bots and leaves out server pageviews the
// snippet confirmed. Filters and events go into SQL as the reports'
// do; what sqlReason or eventCond cannot express (a time zone without an
// IANA name, a filter that does not parse) goes to the local store.
func (b *Backend) Events(ctx context.Context, q store.EventQuery) (store.EventPage, error) {
	var page store.EventPage
	sq := store.Query{Site: q.Site, Filters: q.Filters, IncludeBots: true}
	sq.From, sq.To = timeMs(q.From), timeMs(q.To)
	reason := b.sqlReason(ctx, sq, nil)
	cond := SQL("1")
	if q.Event != "" {
		c, ok := b.eventCond(ctx, q.Site, q.Event)
		if !ok {
			reason = "event"
		}
		cond = c
	}
	if reason != "" {
		b.count(&b.inLocal, "events")
		return b.DB.Events(ctx, q)
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 1000)
	after := SQL("1")
	if q.Cursor != "" {
		ts, uuid, ok := strings.Cut(q.Cursor, "_")
		n, err := strconv.ParseInt(ts, 10, 64)
		if !ok || err != nil {
			return page, fmt.Errorf("%w: bad cursor %q", store.ErrBadQuery, q.Cursor)
		}
		after = Build("(ts < ? OR ts = ? AND uuid < ?)", n, n, uuid)
	}
	who := SQL("1")
	if q.DistinctID != "" {
		rows, err := b.client().Query(ctx, Build("SELECT argMax(person, ver), argMax(deleted, ver) FROM person_map WHERE site = ? AND distinct_id = ?", q.Site, q.DistinctID))
		if err != nil {
			return page, err
		}
		p := q.DistinctID
		if len(rows) == 1 && asStr(rows[0][0]) != "" {
			if asInt(rows[0][1]) != 0 {
				return page, nil
			}
			p = asStr(rows[0][0])
		}
		who = Build("person = ?", p)
	}
	b.count(&b.inSQL, "events")
	base, err := b.base(ctx, sq, seriesProps(q.Event)...)
	if err != nil {
		return page, err
	}
	rows, err := b.client().Query(ctx, Build(`SELECT ? FROM (?)
WHERE vis AND pass AND ? AND ? AND ? ORDER BY ts DESC, uuid DESC LIMIT ?`, eventCols, withPass(base, sq), cond, who, after, q.Limit+1))
	if err != nil {
		return page, err
	}
	for i, r := range rows {
		if i == q.Limit {
			last := page.Results[q.Limit-1]
			page.Next = strconv.FormatInt(last.Time, 10) + "_" + last.UUID
			break
		}
		ev := decodeEvent(q.Site, r)
		page.Results = append(page.Results, ev)
		page.PersonIDs = append(page.PersonIDs, personOf(q.Site, ev.DistinctID, asStr(r[7])))
	}
	return page, nil
}

// timeMs is Unix milliseconds as a time.
func timeMs(ms int64) time.Time { return time.UnixMilli(ms) }

// eventCols are the columns decodeEvent reads, person last.
const eventCols SQL = "ts, uuid, name, distinct_id, prop_keys, prop_vals, prop_kinds, person"

// decodeEvent is the event of a row of eventCols.
func decodeEvent(site string, r []json.RawMessage) *store.Event {
	var keys, vals []string
	var kinds []int
	json.Unmarshal(r[4], &keys)
	json.Unmarshal(r[5], &vals)
	json.Unmarshal(r[6], &kinds)
	ev := &store.Event{Site: site, Time: asInt(r[0]), UUID: asStr(r[1]), Name: asStr(r[2]), DistinctID: asStr(r[3])}
	for j := range keys {
		if j >= len(vals) || j >= len(kinds) {
			break
		}
		v := store.Value{Kind: store.Kind(kinds[j])}
		switch v.Kind {
		case store.KindString, store.KindNumber, store.KindJSON:
			v.S = vals[j]
		}
		ev.Props = append(ev.Props, store.Prop{Key: keys[j], Val: v})
	}
	return ev
}

// personOf is an event's person id: base's person column, or, for an id
// not mapped yet (base gives the distinct id), the store's id of a person
// of that one id.
func personOf(site, did, person string) string {
	if person == did {
		return store.PersonID(site, did)
	}
	return person
}
