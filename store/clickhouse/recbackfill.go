package clickhouse

// The recordings' backfill: chunks stored before the `clickhouse` block
// was added (or while it was away) never went through the recordings
// outbox, so they ship from the local log itself.
//
// The position is the chunk number (store.ShipRecSeq): one sequence per
// log, given in commit order, that a chunk keeps when its recording moves
// into a recording file, through deletions and restarts. AppendSnapshots
// writes, in the transaction of each chunk and its outbox entry, the
// number of the last chunk and the last ord given ("ch:rtop": "<seq>
// <ord>"): every chunk numbered above it went in without the outbox. At
// start the backend adds the numbers above it to the ranges still to
// backfill ("ch:rbf", JSON [[from, to, off], …]: chunks from ≤ seq < to,
// ord seq+off), then writes "ch:rtop" at the last number and the last ord
// reserved; the outbox takes every chunk after that. Since a chunk and
// its outbox entry are one transaction, no chunk ships both ways: after a
// restart, or a kill -9 at any point, the backfill ships nothing again
// but the window it was shipping, as the same rows.
//
// The shipper ships a window (Batch chunks, recBatchBytes of data) at a
// time after each outbox batch, through the same insert (so a person's
// tombstones keep their chunks out), in number order, and writes the
// ranges after each window is in. A backfilled chunk's row is the one
// AppendSnapshots would have written but for:
//   - ord: the chunk number plus the range's offset, which puts the
//     chunks after every ord this node gave before them (the last one in
//     "ch:rtop") and before every ord it gives after: the log's order,
//     also in a session that got chunks before and after a time without
//     the block; and the same when a window ships again, so ClickHouse
//     keeps it once;
//   - t, its last event's time (no later than now): the arrival is not
//     kept, and the local log counts the chunk's day by it too.
//
// Chunks stored by an older version with the block (a "ch:node" but no
// "ch:rtop") may have shipped under other ords: they are left alone. A
// run without the block that reuses numbers freed by deleting the newest
// chunks hides its chunks below "ch:rtop"; with the block the numbers
// are raised at start above every one named in meta.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

const (
	recBackfillKey = "ch:rbf"  // JSON [[from, to, off], …]: chunk numbers still to backfill
	recTopKey      = "ch:rtop" // "<seq> <ord>": the last chunk with an outbox entry, the last ord given
)

// recRange is a range of chunk numbers to backfill: from ≤ seq < to, with
// ord seq+off.
type recRange [3]uint64

// startBackfill reads the ranges left and adds the chunks stored since
// the last run with the block (fresh: this is the first); startRecordings
// calls it before any AppendSnapshots.
func (r *recShipper) startBackfill(fresh bool) error {
	db := r.b.DB
	var top, topOrd uint64
	v, err := db.GetMeta(recTopKey)
	switch {
	case err == nil:
		fmt.Sscan(v, &top, &topOrd)
	case !errors.Is(err, store.ErrNotFound):
		return err
	case !fresh: // an older version shipped with the block: left alone
		top = db.ShipRecSeq(0)
		topOrd = r.ord
	}
	var ranges []recRange
	if v, err := db.GetMeta(recBackfillKey); err == nil {
		json.Unmarshal([]byte(v), &ranges)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	floor := top
	for _, rg := range ranges {
		if rg[1] > 0 {
			floor = max(floor, rg[1]-1)
		}
	}
	last := db.ShipRecSeq(floor)
	lastOrd := topOrd
	if last > top {
		// After every ord given so far: ord(top+1) = topOrd+1.
		ranges = append(ranges, recRange{top + 1, last + 1, topOrd - top})
		lastOrd = topOrd + (last - top)
	}
	r.bf = mergeRanges(ranges)
	// Live ords come after the backfilled ones, and deletion marks
	// (r.ord + 1) above them.
	for _, rg := range r.bf {
		r.ord = max(r.ord, rg[1]-1+rg[2])
	}
	r.ord = max(r.ord, lastOrd)
	if err := r.putRanges(r.bf); err != nil {
		return err
	}
	return db.PutMeta(recTopKey, fmt.Sprint(last, " ", max(lastOrd, r.ord)))
}

// mergeRanges sorts the ranges and merges those with one offset that
// overlap or touch (a range added again after a crash).
func mergeRanges(in []recRange) []recRange {
	sort.Slice(in, func(i, j int) bool { return in[i][0] < in[j][0] })
	var out []recRange
	for _, rg := range in {
		if rg[0] >= rg[1] {
			continue
		}
		if n := len(out); n > 0 && rg[0] <= out[n-1][1] && rg[2] == out[n-1][2] {
			out[n-1][1] = max(out[n-1][1], rg[1])
			continue
		}
		out = append(out, rg)
	}
	return out
}

func (r *recShipper) putRanges(ranges []recRange) error {
	if ranges == nil {
		ranges = []recRange{}
	}
	j, _ := json.Marshal(ranges)
	return r.b.DB.PutMeta(recBackfillKey, string(j))
}

// backfilling reports whether chunks are left to backfill (the shipped
// recordings' drop waits for them).
func (r *recShipper) backfilling() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bf) > 0
}

// backfillOnce ships the next window of chunks stored without the outbox
// and returns how many it read (0: nothing left, or the tombstones were
// not read yet). The shipper's goroutine calls it.
func (r *recShipper) backfillOnce(ctx context.Context) (int, error) {
	if !r.bfSynced.Load() {
		return 0, nil
	}
	r.mu.Lock()
	if len(r.bf) == 0 {
		r.mu.Unlock()
		return 0, nil
	}
	rg := r.bf[0]
	r.mu.Unlock()
	if err := r.ensureSchema(ctx); err != nil {
		return 0, err
	}
	chunks, next, err := r.b.DB.ShipRecRead(ctx, rg[0], rg[1], r.b.opts.Batch, recBatchBytes)
	if err != nil {
		return 0, err
	}
	now := time.Now().UnixMilli()
	rows := make([]recRow, 0, len(chunks))
	lines := make([]string, 0, len(chunks))
	for _, c := range chunks {
		t := time.UnixMilli(min(max(c.Last, 0), now))
		row := newRecRow(c.Site, c.SessionID, r.node, c.Seq+rg[2], t, c.WindowID, c.DistinctID,
			store.StoredSnapshot{First: c.First, Last: c.Last, Events: c.Events, Bytes: c.Bytes}, c.Data)
		j, err := json.Marshal(row)
		if err != nil {
			continue
		}
		rows = append(rows, row)
		lines = append(lines, string(j))
	}
	if err := r.insert(ctx, rows, lines); err != nil {
		return 0, err
	}
	r.mu.Lock()
	if len(r.bf) > 0 && r.bf[0] == rg {
		if next >= rg[1] {
			r.bf = r.bf[1:]
		} else {
			r.bf[0][0] = max(next, rg[0])
		}
	}
	ranges := slices.Clone(r.bf)
	r.mu.Unlock()
	if err := r.putRanges(ranges); err != nil {
		return 0, err
	}
	return max(len(chunks), 1), nil
}
