package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/tidwall/buntdb"
	"github.com/tidwall/gjson"
)

// Recordings live beside the events, never in the event scan: each capture
// request of a session adds one chunk under
//
//	r:<site>\x00<session id>\x00<seq, 16 hex>
//
// whose value is 'R' version, a header (distinct id, window id, first and
// last event time, event count) and the zstd-compressed JSON array of rrweb
// events. Only the headers are kept in memory.

// Snapshot is a batch of rrweb events of one session.
type Snapshot struct {
	SessionID  string
	WindowID   string
	DistinctID string
	// Data is a JSON array of rrweb events, each with a "timestamp" (ms).
	Data []byte
}

// RecordingInfo describes a stored recording.
type RecordingInfo struct {
	SessionID  string
	DistinctID string
	Start, End int64 // Unix ms of the first and last rrweb event
	Events     int
	Bytes      int // stored size
	// Tabs is how many windows ($window_id) the session was recorded in;
	// each is replayed on its own (RecordingTab).
	Tabs int
}

type recording struct {
	info RecordingInfo
	keys []string
	// windows are the session's window ids in order of appearance; tabOf
	// gives each key's index into them.
	windows []string
	tabOf   []uint16
}

type recordings struct {
	mu    sync.RWMutex
	sites map[string]map[string]*recording
	seq   atomic.Uint64
	// today is, per site, the recording bytes stored on the current UTC
	// day, for the per-site daily limit.
	today map[string]*dayBytes
}

// dayBytes counts the bytes stored on one UTC day.
type dayBytes struct {
	day   int64 // days since 1970-01-01 UTC
	bytes int64
}

const msPerDay = 24 * 60 * 60 * 1000

// countDay adds size bytes stored on day to site's count of the current
// day; bytes of earlier days are forgotten.
func (rs *recordings) countDay(site string, day int64, size int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.today == nil {
		rs.today = make(map[string]*dayBytes)
	}
	d := rs.today[site]
	if d == nil {
		d = &dayBytes{day: day}
		rs.today[site] = d
	}
	switch {
	case day > d.day:
		*d = dayBytes{day: day, bytes: int64(size)}
	case day == d.day:
		d.bytes += int64(size)
	}
}

// RecordingUsage returns the stored bytes of a session's recording and of
// the site's recordings today (UTC), for the recording limits.
func (s *DB) RecordingUsage(site, session string) (sessionBytes, dayTotal int64) {
	today := s.opts.Now().UnixMilli() / msPerDay
	s.recs.mu.RLock()
	defer s.recs.mu.RUnlock()
	if r := s.recs.sites[site][session]; r != nil {
		sessionBytes = int64(r.info.Bytes)
	}
	if d := s.recs.today[site]; d != nil && d.day == today {
		dayTotal = d.bytes
	}
	return sessionBytes, dayTotal
}

const recVersion = 1

func recKey(site, session string, seq uint64) string {
	return "r:" + site + "\x00" + session + "\x00" + fmt.Sprintf("%016x", seq)
}

func parseRecKey(k string) (site, session string, seq uint64, ok bool) {
	rest, ok := strings.CutPrefix(k, "r:")
	if !ok {
		return
	}
	parts := strings.Split(rest, "\x00")
	if len(parts) != 3 {
		return "", "", 0, false
	}
	seq, err := strconv.ParseUint(parts[2], 16, 64)
	return parts[0], parts[1], seq, err == nil
}

func encodeChunk(s *Snapshot, first, last int64, n int) string {
	b := []byte{'R', recVersion}
	b = binary.AppendUvarint(b, uint64(len(s.DistinctID)))
	b = append(b, s.DistinctID...)
	b = binary.AppendUvarint(b, uint64(len(s.WindowID)))
	b = append(b, s.WindowID...)
	b = binary.AppendVarint(b, first)
	b = binary.AppendVarint(b, last)
	b = binary.AppendUvarint(b, uint64(n))
	b = zstdEnc.EncodeAll(s.Data, b)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

type chunkHeader struct {
	distinctID, windowID string
	first, last          int64
	events               int
	dataAt               int
}

func decodeChunkHeader(v string) (chunkHeader, error) {
	var h chunkHeader
	if len(v) < 2 || v[0] != 'R' || v[1] != recVersion {
		return h, fmt.Errorf("store: corrupt recording chunk")
	}
	r := reader{s: v, pos: 2}
	h.distinctID = r.bytes(r.uvarint())
	h.windowID = r.bytes(r.uvarint())
	h.first = r.varint()
	h.last = r.varint()
	h.events = int(r.uvarint())
	if r.err {
		return h, fmt.Errorf("store: corrupt recording chunk")
	}
	h.dataAt = r.pos
	return h, nil
}

// AppendSnapshots stores recording data of a site. It returns after the
// chunks are in the log.
func (s *DB) AppendSnapshots(ctx context.Context, site string, snaps []Snapshot) error {
	return s.AppendSnapshotsMeta(ctx, site, snaps, nil)
}

// StoredSnapshot is what AppendSnapshotsMeta stored of one snapshot: its
// first and last event time, its event count and its stored size (0 when
// nothing of it was stored).
type StoredSnapshot struct {
	First, Last   int64
	Events, Bytes int
}

// AppendSnapshotsMeta is AppendSnapshots that also stores, in the same
// transaction, the meta keys meta makes from what is stored of each
// snapshot (the ClickHouse backend's outbox). meta may be nil.
func (s *DB) AppendSnapshotsMeta(ctx context.Context, site string, snaps []Snapshot, meta func([]StoredSnapshot) map[string]string) error {
	type chunk struct {
		key, val      string
		session, did  string
		window        string
		first, last   int64
		events, bytes int
	}
	var chunks []chunk
	stored := make([]StoredSnapshot, len(snaps))
	for i := range snaps {
		sn := &snaps[i]
		if sn.SessionID == "" || len(sn.Data) == 0 {
			continue
		}
		first, last, n := int64(0), int64(0), 0
		gjson.ParseBytes(sn.Data).ForEach(func(_, ev gjson.Result) bool {
			ts := ev.Get("timestamp").Int()
			if ts > 0 {
				if n == 0 || ts < first {
					first = ts
				}
				if ts > last {
					last = ts
				}
			}
			n++
			return true
		})
		if n == 0 {
			continue
		}
		key := recKey(site, sn.SessionID, s.recs.seq.Add(1))
		val := encodeChunk(sn, first, last, n)
		chunks = append(chunks, chunk{key, val, sn.SessionID, sn.DistinctID, sn.WindowID, first, last, n, len(val)})
		stored[i] = StoredSnapshot{First: first, Last: last, Events: n, Bytes: len(val)}
	}
	if len(chunks) == 0 {
		return nil
	}
	var extra map[string]string
	if meta != nil {
		extra = meta(stored)
	}
	err := s.db.Update(func(tx *buntdb.Tx) error {
		for _, c := range chunks {
			if _, _, err := tx.Set(c.key, c.val, nil); err != nil {
				return err
			}
		}
		// The highest chunk number given, so that one is never given
		// twice, not even after the newest chunks were deleted.
		_, _, last, _ := parseRecKey(chunks[len(chunks)-1].key)
		if _, _, err := tx.Set(recSeqKey, strconv.FormatUint(last, 10), nil); err != nil {
			return err
		}
		for k, v := range extra {
			if _, _, err := tx.Set("m:"+k, v, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.AddSite(site)
	today := s.opts.Now().UnixMilli() / msPerDay
	for _, c := range chunks {
		s.recs.add(site, c.session, c.key, chunkHeader{distinctID: c.did, windowID: c.window, first: c.first, last: c.last, events: c.events}, c.bytes)
		s.recs.countDay(site, today, c.bytes)
	}
	return nil
}

func (rs *recordings) add(site, session, key string, h chunkHeader, size int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.sites == nil {
		rs.sites = make(map[string]map[string]*recording)
	}
	m := rs.sites[site]
	if m == nil {
		m = make(map[string]*recording)
		rs.sites[site] = m
	}
	r := m[session]
	if r == nil {
		r = &recording{info: RecordingInfo{SessionID: strings.Clone(session), DistinctID: strings.Clone(h.distinctID), Start: h.first, End: h.last}}
		m[r.info.SessionID] = r // the cloned id: session may point into a request buffer
	}
	if h.first < r.info.Start {
		r.info.Start = h.first
	}
	if h.last > r.info.End {
		r.info.End = h.last
	}
	if r.info.DistinctID == "" {
		r.info.DistinctID = strings.Clone(h.distinctID)
	}
	r.info.Events += h.events
	r.info.Bytes += size
	r.keys = append(r.keys, strings.Clone(key))
	tab := slices.Index(r.windows, h.windowID)
	switch {
	case tab >= 0:
	case h.windowID == "" && len(r.windows) > 0:
		tab = 0 // no window id: taken to be the first tab's
	case len(r.windows) == 1 && r.windows[0] == "":
		tab, r.windows[0] = 0, strings.Clone(h.windowID) // the first tab's id, late
	}
	if tab < 0 {
		tab = len(r.windows)
		if tab == math.MaxUint16 {
			tab-- // absurdly many windows: the last ones replay together
		} else {
			r.windows = append(r.windows, strings.Clone(h.windowID))
		}
	}
	r.tabOf = append(r.tabOf, uint16(tab))
	r.info.Tabs = len(r.windows)
}

// readChunk reads the chunk under key (in the log or a recording file):
// its value, its header and its events, decompressed.
func (s *DB) readChunk(tx *buntdb.Tx, key string) (string, chunkHeader, []byte, error) {
	v, err := s.recValue(tx, key)
	if err != nil {
		return "", chunkHeader{}, nil, err
	}
	h, err := decodeChunkHeader(v)
	if err != nil {
		return "", chunkHeader{}, nil, err
	}
	data, err := zstdDec.DecodeAll([]byte(v[h.dataAt:]), nil)
	return v, h, data, err
}

// recSeqKey holds the highest recording chunk number given.
const recSeqKey = "meta:rec-seq"

// loadRecordings reads the chunk headers: the recording files' first, then
// the log's.
func (s *DB) loadRecordings() error {
	if err := s.loadRecFiles(s.hist.recNames); err != nil {
		return err
	}
	today := s.opts.Now().UnixMilli() / msPerDay
	return s.db.View(func(tx *buntdb.Tx) error {
		if v, err := tx.Get(recSeqKey); err == nil {
			if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > s.recs.seq.Load() {
				s.recs.seq.Store(n)
			}
		}
		var err error
		tx.AscendKeys("r:*", func(k, v string) bool {
			site, session, seq, ok := parseRecKey(k)
			if !ok {
				err = fmt.Errorf("bad recording key %q", k)
				return false
			}
			h, herr := decodeChunkHeader(v)
			if herr != nil {
				err = fmt.Errorf("recording chunk %q: %w", k, herr)
				return false
			}
			if seq > s.recs.seq.Load() {
				s.recs.seq.Store(seq)
			}
			s.recs.add(site, session, k, h, len(v))
			// A chunk's arrival day is not kept; its last event's day
			// stands for it.
			s.recs.countDay(site, min(h.last/msPerDay, today), len(v))
			s.sites[site] = true
			return true
		})
		return err
	})
}

// Recordings lists the recordings of a site that overlap [from, to), newest
// first.
func (s *DB) Recordings(ctx context.Context, site string, from, to int64) []RecordingInfo {
	s.recs.mu.RLock()
	defer s.recs.mu.RUnlock()
	var out []RecordingInfo
	for _, r := range s.recs.sites[site] {
		if r.info.End >= from && r.info.Start < to {
			out = append(out, r.info)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Start != out[j].Start {
			return out[i].Start > out[j].Start
		}
		return out[i].SessionID < out[j].SessionID
	})
	return out
}

// Recording returns the rrweb events of a session's first tab as one JSON
// array, in the order they were stored.
func (s *DB) Recording(ctx context.Context, site, session string) ([]byte, error) {
	return s.RecordingTab(ctx, site, session, 1)
}

// RecordingTab returns the rrweb events a session recorded in its tab-th
// window (1 is the first seen). Two tabs of one session are two separate
// pages, so their events are never mixed into one replay.
func (s *DB) RecordingTab(ctx context.Context, site, session string, tab int) ([]byte, error) {
	s.recs.mu.RLock()
	r := s.recs.sites[site][session]
	var keys []string
	if r != nil {
		for i, k := range r.keys {
			if int(r.tabOf[i]) == tab-1 {
				keys = append(keys, k)
			}
		}
	}
	s.recs.mu.RUnlock()
	if r == nil || len(keys) == 0 {
		return nil, ErrNotFound
	}
	out := []byte{'['}
	s.hist.recLife.RLock()
	defer s.hist.recLife.RUnlock()
	err := s.db.View(func(tx *buntdb.Tx) error {
		for _, k := range keys {
			_, _, data, err := s.readChunk(tx, k)
			if err != nil {
				return err
			}
			gjson.ParseBytes(data).ForEach(func(_, ev gjson.Result) bool {
				if len(out) > 1 {
					out = append(out, ',')
				}
				out = append(out, ev.Raw...)
				return true
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return append(out, ']'), nil
}

// deleteRecordingsOf removes the recordings of site that match.
func (s *DB) deleteRecordingsOf(site string, match func(*RecordingInfo) bool) error {
	s.recs.mu.Lock()
	var keys []string
	for session, r := range s.recs.sites[site] {
		if match(&r.info) {
			keys = append(keys, r.keys...)
			delete(s.recs.sites[site], session)
		}
	}
	s.recs.mu.Unlock()
	if len(keys) == 0 {
		return nil
	}
	return s.deleteRecChunks(keys)
}
