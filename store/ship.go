package store

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/tidwall/buntdb"

	"github.com/firstpartyhq/firstparty/store/histfile"
)

// IntervalLabels returns the labels Trends gives the intervals of
// [from, to) in tz (nil is UTC; hour, day, week or month), so that another backend
// answers with the same ones.
func IntervalLabels(from, to time.Time, interval string, tz *time.Location) ([]string, error) {
	if tz == nil {
		tz = time.UTC
	}
	b, err := makeBuckets(from, to, interval, tz)
	if err != nil {
		return nil, err
	}
	return b.labels, nil
}

// MatchChain tests an `$elements_chain` value against an action step's
// element conditions as the store's own queries do: elements is whether
// the chain passes the step's selector and href (true when it has
// neither); text is whether the chain's first element has the step's
// text. Another backend uses it to find the chains an action matches.
func MatchChain(st ActionStep, chain string) (elements, text bool, err error) {
	els := parseElements(chain)
	elements = true
	if st.Selector != "" {
		sel, err := parseSelector(st.Selector)
		if err != nil {
			return false, false, err
		}
		elements = sel.matches(els)
	}
	if st.Href != "" {
		elements = elements && len(els) > 0 && els[0].href() == st.Href
	}
	text = st.Text != "" && len(els) > 0 && els[0].text() == st.Text
	return elements, text, nil
}

// ChannelType is the channel of a session's entry (PostHog's web
// analytics channel types), as the store computes `$channel_type`.
func ChannelType(referringDomain, source, medium, campaign, currentURL string) string {
	return channelType(referringDomain, source, medium, campaign, currentURL)
}

// DropRecordingsBefore deletes the site's recordings whose last event is
// older than cutoff (Unix ms), except the sessions in keep, as retention
// does; it returns how many went. A backend that holds the recordings
// elsewhere (the ClickHouse backend's `keep`) drops what it has shipped
// with it.
func (s *DB) DropRecordingsBefore(site string, cutoff int64, keep map[string]bool) (int, error) {
	return s.dropRecordings(site, func(ri *RecordingInfo) bool { return ri.End < cutoff && !keep[ri.SessionID] })
}

// DeleteRecordingsOf deletes the site's recordings whose distinct id (their
// first chunk's, as DeletePerson matches them) is one of ids, even when the
// log holds no event of theirs; it returns how many went.
func (s *DB) DeleteRecordingsOf(site string, ids []string) (int, error) {
	set := make(map[string]bool, len(ids))
	for _, d := range ids {
		set[d] = true
	}
	return s.dropRecordings(site, func(ri *RecordingInfo) bool { return set[ri.DistinctID] })
}

func (s *DB) dropRecordings(site string, match func(*RecordingInfo) bool) (int, error) {
	s.maint.Lock()
	defer s.maint.Unlock()
	n := 0
	err := s.deleteRecordingsOf(site, func(ri *RecordingInfo) bool {
		m := match(ri)
		if m {
			n++
		}
		return m
	})
	if err != nil || n == 0 {
		return n, err
	}
	return n, s.shrink()
}

// ShipMark is a position in a site's commit order that stays valid across
// restarts, for a backend that ships the stored events elsewhere (the
// ClickHouse backend's backfill). Row numbers are stable while the process
// runs, and forever for the rows in history files (a history file holds
// one whole chunk; deleted rows stay in it as deleted); the log's rows are
// numbered again at start without the events deleted since, so they can
// only move down. A mark past the history files therefore also names the
// last event before it that was not deleted, found again by its uuid.
type ShipMark struct {
	Row  int    `json:"row"`            // first row after the mark, in the numbering of the run that took it
	Hist int    `json:"hist"`           // rows in history files when it was taken
	UUID string `json:"uuid,omitempty"` // the last event before Row not deleted, when Row > Hist
}

// ShipRows returns how many rows site's table has (deleted ones included):
// the end of its commit order now.
func (s *DB) ShipRows(site string) int {
	t := s.table(site)
	if t == nil || t.rlock() != nil {
		return 0
	}
	defer t.mu.RUnlock()
	return t.rows()
}

// ShipMarkAt returns the mark before row of site's table.
func (s *DB) ShipMarkAt(site string, row int) ShipMark {
	t := s.table(site)
	if t == nil || t.rlock() != nil {
		return ShipMark{}
	}
	defer t.mu.RUnlock()
	row = min(max(row, 0), t.rows())
	m := ShipMark{Row: row, Hist: min(len(t.hist.files)<<chunkBits, t.rows())}
	for r := row - 1; r >= m.Hist; r-- {
		if t.ts.at(r) != deletedTime {
			m.UUID = t.keys.at(r).String()
			break
		}
	}
	return m
}

// ShipResume returns the first row of site's table after m (taken in this
// run or an earlier one). It is exact unless the event m names was
// deleted since a restart: then it is the first row after the history
// files of the time, which is at or before the mark (at least once).
func (s *DB) ShipResume(site string, m ShipMark) int {
	t := s.table(site)
	if t == nil || t.rlock() != nil {
		return 0
	}
	defer t.mu.RUnlock()
	n := t.rows()
	if m.Row <= m.Hist {
		return min(max(m.Row, 0), n)
	}
	if m.UUID != "" {
		k, _ := uuidKey(m.UUID)
		if r := t.idx.find(&k, &t.keys); r >= m.Hist && r < m.Row && t.ts.at(r) != deletedTime {
			return r + 1
		}
	}
	return min(max(m.Hist, 0), n)
}

// ShipRead returns the stored events of site's rows [from, to), at most
// limit of them, in commit order, and the row after the last one read
// (deleted rows are skipped). Blocks are read under the same locks as
// Export's windows; nothing is held once it returns.
func (s *DB) ShipRead(ctx context.Context, site string, from, to, limit int) ([]*Event, int, error) {
	t := s.table(site)
	if t == nil {
		return nil, from, nil
	}
	s.maint.Lock()
	defer s.maint.Unlock()
	if err := t.rlock(); err != nil {
		return nil, from, err
	}
	defer t.mu.RUnlock()
	var out []*Event
	blocks := map[string]*decodedBlock{}
	row, n := from, min(to, t.rows())
	for ; row < n && len(out) < limit; row++ {
		if t.ts.at(row) == deletedTime {
			continue
		}
		bi := t.blockOf(row)
		if bi < 0 {
			continue
		}
		b := &t.blocks[bi]
		ei := b.eventIndex(row)
		if ei < 0 || b.key == "" {
			continue
		}
		d := blocks[b.key]
		if d == nil {
			if ctxDone(ctx) {
				return nil, from, ctx.Err()
			}
			var err error
			if d, err = s.readBlockUncached(b.key); err != nil {
				return nil, from, err
			}
			blocks[b.key] = d
		}
		out = append(out, d.event(ei))
	}
	return out, row, nil
}

// ShipChunk is a stored recording chunk as ShipRecRead reads it.
type ShipChunk struct {
	Seq                                   uint64 // the chunk's sequence number in this log
	Site, SessionID, WindowID, DistinctID string
	First, Last                           int64 // first and last event time (Unix ms)
	Events, Bytes                         int   // event count, stored size
	Data                                  []byte
}

// ShipRecSeq raises the sequence number of recording chunks to at least
// floor and returns it (the number of the last chunk stored or given).
// Chunk numbers are stable: a chunk keeps its own when its recording
// moves into a recording file, through restarts and deletions; only the
// numbers above the last chunk left are given again after a restart.
func (s *DB) ShipRecSeq(floor uint64) uint64 {
	for {
		cur := s.recs.seq.Load()
		if cur >= floor {
			return cur
		}
		if s.recs.seq.CompareAndSwap(cur, floor) {
			return floor
		}
	}
}

// ShipRecRead returns the stored recording chunks numbered in [from, to),
// in number order, at most limit of them and about maxBytes of stored
// size (at least one), and the number after the last one read (to when
// none is left), for a backend that ships them elsewhere. Data is the
// snapshot's rrweb events as it was sent. Nothing is held once it
// returns.
func (s *DB) ShipRecRead(ctx context.Context, from, to uint64, limit, maxBytes int) ([]ShipChunk, uint64, error) {
	s.maint.Lock() // no flush into recording files, no deletion meanwhile
	defer s.maint.Unlock()
	s.hist.mu.RLock()
	files := make(map[uint64]*histfile.RecFile, len(s.hist.recs))
	for id, rf := range s.hist.recs {
		files[id] = rf
	}
	s.hist.mu.RUnlock()
	type ref struct {
		seq                uint64
		site, session, key string
	}
	var refs []ref
	s.recs.mu.RLock()
	for site, m := range s.recs.sites {
		for session, r := range m {
			for _, k := range r.keys {
				orig := k
				if id, i, ok := parseRecFileKey(k); ok {
					rf := files[id]
					if rf == nil || i >= len(rf.Header.Chunks) {
						continue
					}
					orig = rf.Header.Chunks[i].Key
				}
				if _, _, seq, ok := parseRecKey(orig); ok && seq >= from && seq < to {
					refs = append(refs, ref{seq, site, session, k})
				}
			}
		}
	}
	s.recs.mu.RUnlock()
	sort.Slice(refs, func(i, j int) bool { return refs[i].seq < refs[j].seq })
	var out []ShipChunk
	next, size := to, 0
	s.hist.recLife.RLock()
	defer s.hist.recLife.RUnlock()
	err := s.db.View(func(tx *buntdb.Tx) error {
		for _, r := range refs {
			if len(out) >= max(limit, 1) || (len(out) > 0 && size >= maxBytes) {
				next = r.seq
				return nil
			}
			if ctxDone(ctx) {
				return ctx.Err()
			}
			v, h, data, err := s.readChunk(tx, r.key)
			if err != nil {
				return err
			}
			out = append(out, ShipChunk{Seq: r.seq, Site: r.site, SessionID: r.session, WindowID: strings.Clone(h.windowID),
				DistinctID: strings.Clone(h.distinctID), First: h.first, Last: h.last, Events: h.events, Bytes: len(v), Data: data})
			size += len(v)
		}
		return nil
	})
	if err != nil {
		return nil, from, err
	}
	return out, next, nil
}
