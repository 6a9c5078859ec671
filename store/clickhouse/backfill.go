package clickhouse

// The backfill: events in the local log that never went through the
// outbox ship from the log itself.
//
// Events reach the outbox only through Backend.Append. A store that ran
// without ClickHouse before its `clickhouse` block was added, and events
// that `caddy analytics import` wrote into the log while Caddy was
// stopped, are in the log and nowhere else. So every site keeps a cursor
// in the log's meta space, "ch:bf:<site>" (a store.ShipMark: a position in
// the site's commit order that survives restarts, compaction, history
// moves and deletions): every event before it has shipped or is in the
// outbox. At start the backend takes the end of each site's commit order;
// the rows from the cursor to that end ship a window (Batch events) at a
// time, read straight from the log, in commit order, and the cursor is
// written after each window is in ClickHouse (at least once: a window cut
// short by a crash ships again, and ClickHouse keeps each uuid once).
// Events appended after the start go through the outbox; once a site has
// caught up, its cursor moves past them (advanceBackfill), taking
// b.appending so that no Append is between its commit and its outbox
// write, and so a restart ships nothing again.
//
// A backfilled row is the same row Append would write but for two fields:
//   - ver, below every ver Append gives (backfillVer): a copy that also
//     came through the outbox (an event committed just before a crash,
//     resent by its client; or shipped again because a cursor was lost)
//     is the same event, and that copy wins; of two backfilled copies (a
//     window shipped again after a crash) the first wins, with its seq.
//   - seq, the arrival sequence persons are resolved in (persons.go's
//     evKey): the site's commit order, after every arrival this node gave
//     before (the last one is kept in "ch:arrival") and before every one
//     it gives from now on, which is where those events stand in the
//     local log's commit order.
//
// Deleted events are not in the log, so they are not read; the backfill
// starts once the tombstones were read (syncDeletions deletes from the
// log the persons other nodes deleted), and a person deleted while a
// window was on its way is purged again after it. DropShipped (`keep`)
// leaves a site alone until its backfill is done. The cursors of sites
// that caught up move at most every 10 s and at Stop: after a kill -9, the
// events of those last seconds ship once more (their copies lose).

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

const (
	backfillPrefix = "ch:bf:"     // + site → store.ShipMark as JSON
	arrivalKey     = "ch:arrival" // the last arrival sequence given, decimal
)

// backfillVer is the ver of the rows backfilled now: below the ver of
// every live row (Append's count down from the top of the range, and
// reach this band only for about a minute every nine years), and lower
// for a later copy, so that the first copy of an event keeps its seq.
func backfillVer(now time.Time) uint64 { return 1<<42 - uint64(now.UnixMilli()) }

// backfillState is the backfill's progress, under b.mu.
type backfillState struct {
	next map[string]int // site → first row not shipped (this run's numbering)
	end  map[string]int // site → end of what the backfill ships
	seq  uint64         // next arrival sequence of a backfilled row
	// marked is the row each site's cursor was last written at.
	marked   map[string]int
	advanced time.Time // when advanceBackfill last ran
	saved    uint64    // the arrival sequence last written
}

// startBackfill reads the cursors and takes the end of every site's
// commit order; New calls it before any Append.
func (b *Backend) startBackfill() error {
	bf := &b.bf
	bf.next, bf.end, bf.marked = map[string]int{}, map[string]int{}, map[string]int{}
	marks := map[string]store.ShipMark{}
	err := b.DB.ScanMeta(backfillPrefix, func(k, v string) bool {
		var m store.ShipMark
		if json.Unmarshal([]byte(v), &m) == nil {
			marks[k[len(backfillPrefix):]] = m
		}
		return true
	})
	if err != nil {
		return err
	}
	base := uint64(arrivalEpoch)
	if v, err := b.DB.GetMeta(arrivalKey); err == nil {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			base = max(base, n)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	bf.seq = base + 1
	total := 0
	for _, site := range b.DB.Sites() {
		end := b.DB.ShipRows(site)
		from := 0
		if m, ok := marks[site]; ok {
			from = b.DB.ShipResume(site, m)
			bf.marked[site] = from
		}
		bf.next[site], bf.end[site] = from, end
		total += max(end-from, 0)
	}
	// Live arrivals come after every backfilled one. The reservation is
	// written at once: a backfill cut short by a crash goes on after it,
	// in commit order.
	b.arrival = max(b.arrival, bf.seq+uint64(total))
	bf.saved = b.arrival
	return b.DB.PutMeta(arrivalKey, strconv.FormatUint(b.arrival, 10))
}

// backfillLeft returns the rows the backfill still has to read for site
// (deleted ones included); b.mu is held.
func (b *Backend) backfillLeft(site string) int {
	return max(b.bf.end[site]-b.bf.next[site], 0)
}

// backfilling reports whether site has rows left to backfill (DropShipped
// leaves such a site alone).
func (b *Backend) backfilling(site string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.backfillLeft(site) > 0
}

// runBackfill ships windows until every site has caught up, ctx ends or
// shipping stops, letting the outbox go first whenever it holds events;
// then it moves caught-up cursors past what came through the outbox (at
// most every 10 s). The shipping loop calls it.
func (b *Backend) runBackfill(ctx context.Context) error {
	if !b.rec.bfSynced.Swap(true) { // the recordings' backfill may start (recbackfill.go)
		select {
		case b.rec.wake <- struct{}{}:
		default:
		}
	}
	for {
		select {
		case <-b.stop:
			return nil
		default:
		}
		n, err := b.backfillOnce(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if b.total() > 0 {
			if _, err := b.shipOnce(ctx); err != nil {
				return err
			}
		}
	}
	b.mu.Lock()
	due := time.Since(b.bf.advanced) >= 10*time.Second
	b.mu.Unlock()
	if due {
		return b.advanceBackfill()
	}
	return nil
}

// backfillOnce ships the next window of the first site with rows left
// and returns how many rows it read (0: every site has caught up).
func (b *Backend) backfillOnce(ctx context.Context) (int, error) {
	b.mu.Lock()
	var site string
	var sites []string
	for s := range b.bf.end {
		if b.backfillLeft(s) > 0 {
			sites = append(sites, s)
		}
	}
	sort.Strings(sites)
	if len(sites) == 0 {
		b.mu.Unlock()
		return 0, nil
	}
	site = sites[0]
	from, end := b.bf.next[site], b.bf.end[site]
	b.mu.Unlock()

	evs, next, err := b.DB.ShipRead(ctx, site, from, end, b.opts.Batch)
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	seq := b.bf.seq // taken once the window is in: a retry ships the same rows
	b.mu.Unlock()
	lines := make([]string, 0, len(evs))
	ids := map[string]bool{}
	ver := backfillVer(time.Now())
	for i, ev := range evs {
		j, err := json.Marshal(newRow(ev, seq+uint64(i), ver))
		if err != nil {
			continue
		}
		lines = append(lines, string(j))
		ids[ev.DistinctID] = true
	}
	if len(lines) > 0 {
		if _, err := b.shipLines(ctx, lines); err != nil {
			return 0, err
		}
		// A person deleted while the window was on its way: its rows
		// went in after the deletion's purge (its tombstones hide them).
		var gone []string
		for id := range ids {
			if b.wasDeleted(site, id) {
				gone = append(gone, id)
			}
		}
		if len(gone) > 0 {
			b.purge(ctx, site, gone)
		}
	}
	if err := b.putMark(site, next); err != nil {
		return 0, err
	}
	b.mu.Lock()
	b.bf.seq = max(b.bf.seq, seq+uint64(len(evs)))
	b.bf.next[site] = max(b.bf.next[site], next)
	b.shipped[site] += int64(len(lines))
	b.mu.Unlock()
	if b.opts.OnShipped != nil && len(lines) > 0 {
		b.opts.OnShipped(site, len(lines))
	}
	return max(next-from, 1), nil
}

// putMark writes site's cursor at row.
func (b *Backend) putMark(site string, row int) error {
	m := b.DB.ShipMarkAt(site, row)
	if m.Row != row {
		return nil // the store is closed
	}
	j, _ := json.Marshal(m)
	if err := b.DB.PutMeta(backfillPrefix+site, string(j)); err != nil {
		return err
	}
	b.mu.Lock()
	b.bf.marked[site] = row
	b.mu.Unlock()
	return nil
}

// advanceBackfill moves the cursor of every site that has caught up past
// the events appended since: with b.appending held, no Append is between
// its commit and its outbox write, so every row there is in the outbox
// or shipped. It keeps the last arrival sequence too.
func (b *Backend) advanceBackfill() error {
	b.appending.Lock()
	sites := b.DB.Sites()
	rows := make(map[string]int, len(sites))
	for _, s := range sites {
		rows[s] = b.DB.ShipRows(s)
	}
	b.appending.Unlock()
	b.mu.Lock()
	b.bf.advanced = time.Now()
	arrival, saved := b.arrival, b.bf.saved
	var move []string
	for _, s := range sites {
		if b.backfillLeft(s) == 0 && rows[s] > b.bf.end[s] {
			b.bf.next[s], b.bf.end[s] = rows[s], rows[s]
		}
		if b.backfillLeft(s) == 0 && b.bf.marked[s] < b.bf.next[s] {
			move = append(move, s)
		}
	}
	b.mu.Unlock()
	for _, s := range move {
		if err := b.putMark(s, rows[s]); err != nil {
			return err
		}
	}
	if arrival == saved {
		return nil
	}
	if err := b.DB.PutMeta(arrivalKey, strconv.FormatUint(arrival, 10)); err != nil {
		return err
	}
	b.mu.Lock()
	b.bf.saved = max(b.bf.saved, arrival)
	b.mu.Unlock()
	return nil
}
