package clickhouse

// Recordings in ClickHouse (SPEC §7). A snapshot is committed to the local
// log together with its outbox entry, in one transaction
// (store.AppendSnapshotsMeta), under "ch:rec:<seq, 20 digits>": one JSON
// line per stored chunk. A shipper of its own ships that outbox, oldest
// first and at least once, into the recordings table, and deletes each key
// once its rows are in. The table keeps one row per (site, session, node,
// ord) — ReplacingMergeTree, and a retried batch is the same rows — and is
// sharded by session, so one session's chunks are on one shard.
//
// A row is one chunk as the local log stores it: its window, distinct id,
// first and last event time, event count, stored size (the local log's,
// so that sizes and limits agree) and the rrweb events as the snapshot
// sent them (data: base64 of their zstd compression, which keeps every
// byte whatever it is). ord orders a node's chunks as its log does (it is
// the arrival time in µs, made strictly increasing per node), and orders
// the chunks of different nodes by arrival.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/tidwall/gjson"

	"github.com/firstpartyhq/firstparty/store"
)

const (
	recOutboxPrefix = "ch:rec:"
	recNodeKey      = "ch:node"
	// recBatchBytes bounds the data of one insert.
	recBatchBytes = 16 << 20
)

var (
	recEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	recDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
)

// recRow is one recording chunk, in the outbox and in ClickHouse.
type recRow struct {
	Site       string `json:"site"`
	Session    string `json:"session"`
	Node       string `json:"node"`
	Ord        uint64 `json:"ord"`
	T          string `json:"t"` // arrival, for the partition and the day's total
	Window     string `json:"window"`
	DistinctID string `json:"distinct_id"`
	First      int64  `json:"first"`
	Last       int64  `json:"last"`
	Events     int    `json:"events"`
	Bytes      int    `json:"bytes"`
	Data       string `json:"data"`
}

// recShipper ships the recordings outbox and keeps, per site, what
// ClickHouse last said about recording sizes (RecordingUsage answers on
// the capture path and must not wait for ClickHouse).
type recShipper struct {
	b    *Backend
	node string

	appendMu sync.Mutex // chunks enter the log and get their ord in one order

	mu       sync.Mutex
	seq      uint64
	ord      uint64
	pending  map[string]map[int64]int64 // site -> arrival day -> bytes in the outbox
	rows     int                        // rows in the outbox
	deleted  map[string]uint64          // site\x00session -> first outbox seq not deleted
	usage    map[string]*recUsage       // site -> ClickHouse's sizes
	schemaOK bool
	// bf are the chunk numbers still to backfill and their ords
	// (recbackfill.go); bfSynced is set once the tombstones were read.
	bf       []recRange
	bfSynced atomic.Bool

	wake chan struct{}
	done chan struct{}
}

// recUsage is ClickHouse's answer about a site's recording sizes.
type recUsage struct {
	at       time.Time // when asked; zero while the first answer is awaited
	asking   bool
	day      int64 // UTC day of dayBytes
	dayBytes int64
	sessions map[string]int64 // sessions with chunks in the last 24 hours: all their bytes
}

// startRecordings reads the outbox left by the last run and starts the
// shipper (called by New).
func (b *Backend) startRecordings() (*recShipper, error) {
	r := &recShipper{b: b, pending: map[string]map[int64]int64{}, deleted: map[string]uint64{},
		usage: map[string]*recUsage{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	node, err := b.DB.GetMeta(recNodeKey)
	fresh := errors.Is(err, store.ErrNotFound)
	if fresh {
		var id [8]byte
		rand.Read(id[:])
		node = hex.EncodeToString(id[:])
		err = b.DB.PutMeta(recNodeKey, node)
	}
	if err != nil {
		return nil, err
	}
	r.node = node
	err = b.DB.ScanMeta(recOutboxPrefix, func(k, v string) bool {
		n, _ := strconv.ParseUint(k[len(recOutboxPrefix):], 10, 64)
		r.seq = max(r.seq, n+1)
		for _, line := range strings.Split(strings.TrimSpace(v), "\n") {
			var row recRow
			if json.Unmarshal([]byte(line), &row) == nil {
				r.ord = max(r.ord, row.Ord)
				r.addPending(row, 1)
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if err := r.startBackfill(fresh); err != nil {
		return nil, err
	}
	go r.run()
	return r, nil
}

func (r *recShipper) addPending(row recRow, sign int64) {
	t, _ := time.Parse(time.DateTime, row.T)
	day := t.Unix() / 86400
	m := r.pending[row.Site]
	if m == nil {
		m = map[int64]int64{}
		r.pending[row.Site] = m
	}
	m[day] += sign * int64(row.Bytes)
	if m[day] <= 0 {
		delete(m, day)
	}
	r.rows += int(sign)
}

// AppendSnapshots commits the chunks and their outbox entry to the local
// log in one transaction, then wakes the shipper.
func (b *Backend) AppendSnapshots(ctx context.Context, site string, snaps []store.Snapshot) error {
	r := b.rec
	r.appendMu.Lock()
	defer r.appendMu.Unlock()
	var key string
	var rows []recRow
	err := b.DB.AppendSnapshotsMeta(ctx, site, snaps, func(st []store.StoredSnapshot) map[string]string {
		now := time.Now()
		r.mu.Lock()
		seq := r.seq
		r.seq++
		var buf []byte
		for i, s := range st {
			if s.Bytes == 0 {
				continue
			}
			r.ord = max(r.ord+1, uint64(now.UnixMicro()))
			sn := &snaps[i]
			row := newRecRow(site, sn.SessionID, r.node, r.ord, now, sn.WindowID, sn.DistinctID, s, sn.Data)
			j, err := json.Marshal(row)
			if err != nil {
				continue
			}
			buf = append(append(buf, j...), '\n')
			rows = append(rows, row)
		}
		ord := r.ord
		r.mu.Unlock()
		if len(buf) == 0 {
			return nil
		}
		key = recOutboxPrefix + pad20(seq)
		// These chunks are the last numbered, with the last ord: the
		// backfill leaves them to the outbox (recbackfill.go).
		return map[string]string{key: string(buf), recTopKey: fmt.Sprint(b.DB.ShipRecSeq(0), " ", ord)}
	})
	if err != nil || key == "" {
		return err
	}
	r.mu.Lock()
	for _, row := range rows {
		r.addPending(row, 1)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

// run ships until the backend stops: at most Flush after a chunk arrives,
// retrying a failed batch with the same rows after a growing pause.
func (r *recShipper) run() {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.b.stop:
			cancel()
		case <-r.done:
		}
	}()
	pause := 100 * time.Millisecond
	tick := time.NewTicker(r.b.opts.Flush)
	defer tick.Stop()
	for {
		select {
		case <-r.b.stop:
			return
		case <-r.wake:
			select {
			case <-r.b.stop:
				return
			case <-time.After(r.b.opts.Flush):
			}
		case <-tick.C:
		}
		for {
			n, err := r.shipOnce(ctx)
			if err == nil { // then a window of the chunks stored before (recbackfill.go)
				var m int
				m, err = r.backfillOnce(ctx)
				n += m
			}
			if err != nil {
				r.b.noteErr(err)
				select {
				case <-r.b.stop:
					return
				case <-time.After(pause):
				}
				pause = min(2*pause, 5*time.Second)
				continue
			}
			pause = 100 * time.Millisecond
			if n == 0 {
				break
			}
		}
	}
}

func (r *recShipper) ensureSchema(ctx context.Context) error {
	r.mu.Lock()
	ok := r.schemaOK
	r.mu.Unlock()
	if ok {
		return nil
	}
	if err := r.b.ensureSchema(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	r.schemaOK = true
	r.mu.Unlock()
	return nil
}

// shipOnce ships the oldest outbox entries, up to recBatchBytes of data,
// and returns how many chunks it shipped.
func (r *recShipper) shipOnce(ctx context.Context) (int, error) {
	if err := r.ensureSchema(ctx); err != nil {
		return 0, err
	}
	var keys []string
	var lines []string
	size := 0
	err := r.b.DB.ScanMeta(recOutboxPrefix, func(k, v string) bool {
		keys = append(keys, k)
		lines = append(lines, strings.Split(strings.TrimSpace(v), "\n")...)
		size += len(v)
		return size < recBatchBytes && len(lines) < r.b.opts.Batch
	})
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	var rows []recRow
	kept := make([]string, 0, len(lines))
	for _, line := range lines {
		var row recRow
		if json.Unmarshal([]byte(line), &row) != nil {
			continue
		}
		rows = append(rows, row)
		kept = append(kept, line)
	}
	if err := r.insert(ctx, rows, kept); err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := r.b.DB.DeleteMeta(k); err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, err // shipped again later: the same rows, kept once
		}
	}
	r.mu.Lock()
	for _, row := range rows {
		r.addPending(row, -1)
	}
	r.mu.Unlock()
	return len(rows), nil
}

// insert puts rows (lines: their JSON) into ClickHouse, but for the
// chunks of deleted persons' sessions; the outbox and the backfill ship
// through it.
func (r *recShipper) insert(ctx context.Context, rows []recRow, lines []string) error {
	var out []byte
	// Held until the rows are in: a person deleted meanwhile either sees
	// them in ClickHouse (and deletes them there) or has them dropped here.
	r.mu.Lock()
	defer r.mu.Unlock()
	// Chunks of persons deleted on any node (their tombstones in
	// person_map) never ship: their sessions are blocked here, and the
	// local copies go when syncDeletions sees the tombstones.
	if err := r.blockDeleted(ctx, rows); err != nil {
		return err
	}
	for i, row := range rows {
		if d, ok := r.deleted[row.Site+"\x00"+row.Session]; ok && row.Ord < d {
			continue
		}
		out = append(append(out, lines[i]...), '\n')
	}
	if len(out) > 0 {
		if err := r.b.client().InsertJSON(ctx, "recordings", out); err != nil {
			return err
		}
	}
	for _, row := range rows {
		if u := r.usage[row.Site]; u != nil {
			u.at = time.Time{} // stale: ask again
		}
	}
	return nil
}

// newRecRow is a stored chunk as ClickHouse keeps it.
func newRecRow(site, session, node string, ord uint64, t time.Time, window, did string, st store.StoredSnapshot, data []byte) recRow {
	return recRow{Site: site, Session: session, Node: node, Ord: ord, T: t.UTC().Format(time.DateTime),
		Window: window, DistinctID: did, First: st.First, Last: st.Last, Events: st.Events, Bytes: st.Bytes,
		Data: base64.StdEncoding.EncodeToString(recEnc.EncodeAll(data, nil))}
}

// flushRecordings waits until the recordings outbox is empty and the
// backfill done (recbackfill.go), or ctx ends.
func (b *Backend) flushRecordings(ctx context.Context) error {
	for {
		b.rec.mu.Lock()
		n := b.rec.rows + len(b.rec.bf)
		b.rec.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case b.rec.wake <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			if st := b.Status(""); st.LastError != "" {
				return fmt.Errorf("%w (last shipping error: %s)", ctx.Err(), st.LastError)
			}
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Recordings lists, from ClickHouse, the recordings of every node that
// overlap [from, to), newest first, as the local store lists its own
// (without an answer from ClickHouse, the local store's).
func (b *Backend) Recordings(ctx context.Context, site string, from, to int64) []store.RecordingInfo {
	out, err := b.recordingsSQL(ctx, site, from, to)
	if err != nil {
		b.noteErr(err)
		b.count(&b.inLocal, "recordings")
		return b.DB.Recordings(ctx, site, from, to)
	}
	b.count(&b.inSQL, "recordings")
	return out
}

func (b *Backend) recordingsSQL(ctx context.Context, site string, from, to int64) ([]store.RecordingInfo, error) {
	if err := b.rec.ensureSchema(ctx); err != nil {
		return nil, err
	}
	// DistinctID: the first chunk's, or the first one given; Tabs: the
	// windows seen, an empty window id being the first tab's.
	rows, err := b.client().Query(ctx, Build(`SELECT session, argMinIf(distinct_id, ord, distinct_id != ''), min(first), max(last),
	sum(events), sum(bytes), greatest(1, least(uniqExactIf(window, window != ''), 65535))
FROM recordings FINAL WHERE site = ? GROUP BY session HAVING max(last) >= ? AND min(first) < ?`, site, from, to))
	if err != nil {
		return nil, err
	}
	out := make([]store.RecordingInfo, 0, len(rows))
	for _, r := range rows {
		out = append(out, store.RecordingInfo{SessionID: asStr(r[0]), DistinctID: asStr(r[1]), Start: asInt(r[2]), End: asInt(r[3]),
			Events: int(asInt(r[4])), Bytes: int(asInt(r[5])), Tabs: int(asInt(r[6]))})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Start != out[j].Start {
			return out[i].Start > out[j].Start
		}
		return out[i].SessionID < out[j].SessionID
	})
	return out, nil
}

// Recording returns a session's first tab, from ClickHouse.
func (b *Backend) Recording(ctx context.Context, site, session string) ([]byte, error) {
	return b.RecordingTab(ctx, site, session, 1)
}

// RecordingTab returns the rrweb events a session recorded in its tab-th
// window, from every node's chunks in ClickHouse, byte for byte as the
// local store answers its own (without an answer from ClickHouse, the
// local store's).
func (b *Backend) RecordingTab(ctx context.Context, site, session string, tab int) ([]byte, error) {
	out, err := b.recordingTabSQL(ctx, site, session, tab)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		b.noteErr(err)
		b.count(&b.inLocal, "recording")
		return b.DB.RecordingTab(ctx, site, session, tab)
	}
	b.count(&b.inSQL, "recording")
	return out, err
}

func (b *Backend) recordingTabSQL(ctx context.Context, site, session string, tab int) ([]byte, error) {
	if err := b.rec.ensureSchema(ctx); err != nil {
		return nil, err
	}
	rows, err := b.client().Query(ctx, Build(`SELECT window, data FROM recordings FINAL WHERE site = ? AND session = ? ORDER BY ord, node`, site, session))
	if err != nil {
		return nil, err
	}
	// The tabs as the local store numbers them: windows in order of
	// appearance; a chunk without a window id is the first tab's, and the
	// first real id names a first tab that had none.
	var windows []string
	out := []byte{'['}
	for _, r := range rows {
		w := asStr(r[0])
		t := slices.Index(windows, w)
		switch {
		case t >= 0:
		case w == "" && len(windows) > 0:
			t = 0
		case len(windows) == 1 && windows[0] == "":
			t, windows[0] = 0, w
		}
		if t < 0 {
			t = len(windows)
			if t == math.MaxUint16 {
				t--
			} else {
				windows = append(windows, w)
			}
		}
		if t != tab-1 {
			continue
		}
		z, err := base64.StdEncoding.DecodeString(asStr(r[1]))
		if err != nil {
			return nil, fmt.Errorf("clickhouse: recording chunk of %q: %w", session, err)
		}
		data, err := recDec.DecodeAll(z, nil)
		if err != nil {
			return nil, fmt.Errorf("clickhouse: recording chunk of %q: %w", session, err)
		}
		gjson.ParseBytes(data).ForEach(func(_, ev gjson.Result) bool {
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, ev.Raw...)
			return true
		})
	}
	if len(out) == 1 {
		return nil, store.ErrNotFound
	}
	return append(out, ']'), nil
}

// RecordingUsage answers without waiting for ClickHouse (it is on the
// capture path): the larger of the local log's figures and ClickHouse's
// last answer (every node's shipped chunks) plus this node's chunks still
// in the outbox. A stale answer is asked again in the background.
func (b *Backend) RecordingUsage(site, session string) (sessionBytes, dayTotal int64) {
	sessionBytes, dayTotal = b.DB.RecordingUsage(site, session)
	r := b.rec
	today := time.Now().Unix() / 86400
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.usage[site]
	if u == nil {
		u = &recUsage{}
		r.usage[site] = u
	}
	if !u.asking && time.Since(u.at) > b.opts.Flush {
		u.asking = true
		go r.askUsage(site)
	}
	if u.sessions != nil {
		sessionBytes = max(sessionBytes, u.sessions[session])
	}
	if u.day == today {
		dayTotal = max(dayTotal, u.dayBytes+r.pending[site][today])
	}
	return sessionBytes, dayTotal
}

// askUsage asks ClickHouse for a site's recording sizes: today's total by
// arrival (UTC) and, for each session with chunks in the last 24 hours,
// the size of all of its chunks (not only those of the last 24 hours).
func (r *recShipper) askUsage(site string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now()
	day := now.Unix() / 86400
	var sessions map[string]int64
	var total int64
	err := r.ensureSchema(ctx)
	if err == nil {
		var rows [][]json.RawMessage
		// Every chunk of each session with a chunk in the last 24 hours
		// (a session that gets chunks now is one of them once its first
		// new chunk shipped; until then the local log's figure and the
		// outbox stand). The sessions are read from the local table: the
		// table is sharded by session, so each shard's sessions are its
		// own.
		local := Ident("recordings")
		if r.b.opts.Cluster != "" {
			local = Ident("recordings_local")
		}
		rows, err = r.b.client().Query(ctx, Build(`SELECT session, sum(bytes), sumIf(bytes, toDate(t) = toDate(?)) FROM recordings FINAL WHERE site = ?
 AND session IN (SELECT session FROM ?.? WHERE site = ? AND t >= toDateTime(?)) GROUP BY session`,
			now.Unix(), site, Ident(r.b.opts.Database), local, site, now.Add(-24*time.Hour).Unix()))
		if err == nil {
			sessions = make(map[string]int64, len(rows))
			for _, row := range rows {
				sessions[asStr(row[0])] = asInt(row[1])
				total += asInt(row[2])
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.usage[site]
	u.asking = false
	if err != nil {
		u.at = now // ask again after Flush; the local figures stand meanwhile
		return
	}
	u.at, u.day, u.dayBytes, u.sessions = now, day, total, sessions
}

// deleteRecordings deletes, in ClickHouse and in the local log, the
// recordings of the person with these distinct ids (those whose first
// distinct id is one of them, as the local store does), and keeps their
// chunks still in the outbox from shipping. It waits until the rows are
// gone.
func (b *Backend) deleteRecordings(ctx context.Context, site string, ids []string) error {
	r := b.rec
	if err := r.ensureSchema(ctx); err != nil {
		return err
	}
	sessions := map[string]bool{}
	for _, ri := range b.DB.Recordings(ctx, site, math.MinInt64, math.MaxInt64) {
		if slices.Contains(ids, ri.DistinctID) {
			sessions[ri.SessionID] = true
		}
	}
	rows, err := b.client().Query(ctx, Build(`SELECT session FROM recordings FINAL WHERE site = ? GROUP BY session HAVING has(?, argMinIf(distinct_id, ord, distinct_id != ''))`, site, ids))
	if err != nil {
		return err
	}
	for _, row := range rows {
		sessions[asStr(row[0])] = true
	}
	if len(sessions) == 0 {
		_, err := b.DB.DeleteRecordingsOf(site, ids)
		return err
	}
	list := make([]string, 0, len(sessions))
	r.mu.Lock() // waits for a batch being shipped
	for s := range sessions {
		list = append(list, s)
		r.deleted[site+"\x00"+s] = r.ord + 1
	}
	r.mu.Unlock()
	sort.Strings(list)
	if err := b.purgeRecordings(ctx, site, list); err != nil {
		return err
	}
	// The local copies, also of a person the log holds no event of (its
	// DeletePerson would not find them).
	_, err = b.DB.DeleteRecordingsOf(site, ids)
	return err
}

// purgeRecordings deletes the sessions' chunks in ClickHouse and waits
// until they are gone.
func (b *Backend) purgeRecordings(ctx context.Context, site string, list []string) error {
	local := Ident("recordings")
	if b.opts.Cluster != "" {
		local = Ident("recordings_local")
	}
	// On each server (each shard's part; on replicas, a mutation also
	// reaches the replicas that are down once they are back).
	var reached []*Client
	var lastErr error
	for _, c := range b.servers {
		if err := c.Exec(ctx, Build("ALTER TABLE ? DELETE WHERE site = ? AND has(?, session)", local, site, list)); err != nil {
			if !isUnavailable(err) || !b.isReplicated() {
				return err
			}
			lastErr = err
			continue
		}
		reached = append(reached, c)
	}
	if len(reached) == 0 {
		return lastErr
	}
	// Mutations run in the background; the recordings are gone when the
	// person's deletion answers. Waited for by their rows, not by
	// system.mutations: a replicated table's mutation shows there only
	// once the replica has taken it from ZooKeeper, so "none pending" could
	// be read before it started.
	for _, c := range reached {
		for {
			rows, err := c.Query(ctx, Build("SELECT count() FROM ? WHERE site = ? AND has(?, session)", local, site, list))
			if err != nil {
				return err
			}
			if len(rows) == 1 && asInt(rows[0][0]) == 0 {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// blockDeleted blocks (r.deleted) the sessions of rows whose distinct id
// has a tombstone in person_map: the person was deleted, on this node or
// another, and no chunk of theirs ships afterwards. Called with r.mu held
// (the check and the insert are one step for recordingsDeletedElsewhere).
func (r *recShipper) blockDeleted(ctx context.Context, rows []recRow) error {
	ids := map[string][]string{}
	seen := map[string]bool{}
	for _, row := range rows {
		k := row.Site + "\x00" + row.DistinctID
		if row.DistinctID == "" || seen[k] {
			continue
		}
		if d, ok := r.deleted[row.Site+"\x00"+row.Session]; ok && row.Ord < d {
			continue
		}
		seen[k] = true
		ids[row.Site] = append(ids[row.Site], row.DistinctID)
	}
	gone := map[string]bool{}
	for site, list := range ids {
		sort.Strings(list)
		for start := 0; start < len(list); start += idsPerQuery {
			part := list[start:min(start+idsPerQuery, len(list))]
			res, err := r.b.client().Query(ctx, Build("SELECT DISTINCT distinct_id FROM person_map WHERE site = ? AND ? AND deleted = 1",
				site, hasStr(part, "distinct_id")))
			if err != nil {
				return err
			}
			for _, x := range res {
				gone[site+"\x00"+asStr(x[0])] = true
			}
		}
	}
	if len(gone) == 0 {
		return nil
	}
	for _, row := range rows {
		if gone[row.Site+"\x00"+row.DistinctID] {
			r.deleted[row.Site+"\x00"+row.Session] = r.ord + 1
		}
	}
	return nil
}

// recordingsDeletedElsewhere applies, to this node's recordings, the
// deletion of a person another node deleted (syncDeletions saw its
// tombstones): the chunks still in the outbox never ship, the local copies
// go, and the chunks this node shipped after the deletion had run
// (between the other node's purge and the tombstones being seen here) are
// deleted in ClickHouse too.
func (b *Backend) recordingsDeletedElsewhere(ctx context.Context, site string, ids []string) error {
	r := b.rec
	if err := r.ensureSchema(ctx); err != nil {
		return err
	}
	set := make(map[string]bool, len(ids))
	for _, d := range ids {
		set[d] = true
	}
	var localSessions []string
	for _, ri := range b.DB.Recordings(ctx, site, math.MinInt64, math.MaxInt64) {
		if set[ri.DistinctID] {
			localSessions = append(localSessions, ri.SessionID)
		}
	}
	// Under r.mu, so that no batch is between its tombstone check and its
	// insert: every chunk shipped before is seen by the query, every batch
	// after sees the tombstones.
	r.mu.Lock()
	for _, s := range localSessions {
		r.deleted[site+"\x00"+s] = r.ord + 1
	}
	var rows [][]json.RawMessage
	var err error
	for start := 0; start < len(ids) && err == nil; start += idsPerQuery {
		var part [][]json.RawMessage
		part, err = b.client().Query(ctx, Build(`SELECT session FROM recordings FINAL WHERE site = ? GROUP BY session HAVING has(?, argMinIf(distinct_id, ord, distinct_id != ''))`,
			site, ids[start:min(start+idsPerQuery, len(ids))]))
		rows = append(rows, part...)
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if len(rows) > 0 {
		list := make([]string, len(rows))
		for i, row := range rows {
			list[i] = asStr(row[0])
		}
		sort.Strings(list)
		if err := b.purgeRecordings(ctx, site, list); err != nil {
			return err
		}
	}
	_, err = b.DB.DeleteRecordingsOf(site, ids)
	return err
}

// dropShippedRecordings is DropShipped for recordings: the local log's
// recordings whose last event is older than cutoff leave it, except the
// sessions with chunks still in the outbox. A chunk appended meanwhile is
// in the outbox already (its row holds its data), so it still ships.
func (b *Backend) dropShippedRecordings(ctx context.Context, cutoff int64) (int, error) {
	if b.rec.backfilling() {
		return 0, nil // not all shipped yet
	}
	sessions, err := b.outboxed(ctx, recOutboxPrefix, func(r outboxKeys) string { return r.Session })
	if err != nil {
		return 0, err
	}
	return b.eachSite(func(site string) (int, error) {
		waiting := map[string]bool{}
		for _, s := range sessions[site] {
			waiting[s] = true
		}
		return b.DB.DropRecordingsBefore(site, cutoff, waiting)
	})
}
