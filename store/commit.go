package store

import (
	"context"
	"fmt"

	"github.com/tidwall/buntdb"
)

// commitReq is one Append waiting for the group commit.
type commitReq struct {
	events   []*Event
	outcomes []Outcome
	err      error
	done     chan struct{}
}

// maxGroup bounds how many events one group commit takes.
const maxGroup = 20000

// Append commits events. Concurrent calls share one buntdb transaction (a
// group commit); each returns once that transaction is written.
func (s *DB) Append(ctx context.Context, events []*Event) ([]Outcome, error) {
	if len(events) == 0 {
		return nil, nil
	}
	for _, ev := range events {
		if ev.Site == "" {
			return nil, fmt.Errorf("store: event without site")
		}
		if ev.UUID == "" {
			ev.UUID = NewUUID(s.opts.Now())
		}
	}
	req := &commitReq{events: events, outcomes: make([]Outcome, len(events)), done: make(chan struct{})}
	select {
	case s.commits <- req:
	case <-s.stop:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once queued, the request is committed or failed; wait for it even if
	// ctx ends, so that the caller never reports a stored event as lost.
	select {
	case <-req.done:
		return req.outcomes, req.err
	case <-s.closed:
		return nil, ErrClosed
	}
}

// committer takes queued requests, as many as are waiting, and commits them
// together: it drops repeated uuids, encodes the group's blocks, writes
// them to the log in one transaction and adds them to the tables. (Two
// stages on two goroutines, one preparing a group while the other wrote
// the one before, were measured slower under batch load: groups got
// smaller and the cores were no busier.)
func (s *DB) committer() {
	defer s.done.Done()
	var group []*commitReq
	// seen is reused from group to group (at most maxGroup and one
	// request's entries).
	seen := make(map[siteUUID]struct{})
	commit := func(group []*commitReq) {
		s.writeGroup(s.prepareGroup(group, seen))
		clear(seen)
	}
	for {
		group = group[:0]
		select {
		case req := <-s.commits:
			group = append(group, req)
		case <-s.stop:
			// Whatever was queued before Close is committed.
			for {
				select {
				case req := <-s.commits:
					commit([]*commitReq{req})
				default:
					return
				}
			}
		}
		n := len(group[0].events)
	more:
		for n < maxGroup {
			select {
			case req := <-s.commits:
				group = append(group, req)
				n += len(req.events)
			default:
				break more
			}
		}
		commit(group)
	}
}

// siteBatch is the part of a group commit that belongs to one site.
type siteBatch struct {
	t      *table
	key    string
	events []*Event
	keys   []UUIDKey
	// compressed: the block is written as the compactor would write it.
	compressed bool
}

// preparedGroup is a group de-duplicated and encoded, for the writer.
type preparedGroup struct {
	group  []*commitReq
	writes []*siteBatch
	vals   []string
}

// prepareGroup de-duplicates group against the uuid index and itself (seen
// is an empty map it may fill), and encodes a block for each site's new
// events.
func (s *DB) prepareGroup(group []*commitReq, seen map[siteUUID]struct{}) *preparedGroup {
	s.nCommits.Add(1)
	batches := make(map[string]*siteBatch)
	var order []*siteBatch
	for _, req := range group {
		for i, ev := range req.events {
			sb := batches[ev.Site]
			if sb == nil {
				sb = &siteBatch{t: s.tableFor(ev.Site)}
				batches[ev.Site] = sb
				order = append(order, sb)
			}
			k, _ := uuidKey(ev.UUID)
			// This group's uuids so far, then the index.
			sk := siteUUID{ev.Site, k}
			_, dup := seen[sk]
			if !dup {
				sb.t.mu.RLock()
				dup = sb.t.has(&k)
				sb.t.mu.RUnlock()
			}
			if !dup {
				seen[sk] = struct{}{}
			}
			if dup {
				req.outcomes[i] = Duplicate
				continue
			}
			req.outcomes[i] = Stored
			sb.events = append(sb.events, ev)
			sb.keys = append(sb.keys, k)
		}
	}
	var writes []*siteBatch
	for _, sb := range order {
		if len(sb.events) > 0 {
			sb.key = blockKey(s.seq)
			s.seq++
			s.seqSeen.Store(s.seq)
			writes = append(writes, sb)
		}
	}
	vals := make([]string, len(writes))
	for i, sb := range writes {
		// A group as large as a compacted block is compressed hard
		// now: the compactor would only decode and encode it again.
		// (Smaller groups compressed here and left as they are, from
		// 256 events, were measured slower under batch load: the
		// compression lengthened the one committer's turn.)
		level := compressFast
		if len(sb.events) >= s.opts.BlockEvents/2 {
			level, sb.compressed = compressBest, true
		}
		vals[i] = encodeBlock(sb.t.site, sb.events, level)
	}
	return &preparedGroup{group: group, writes: writes, vals: vals}
}

// writeGroup writes a prepared group to the log in one transaction, adds
// it to the tables and answers its requests.
func (s *DB) writeGroup(p *preparedGroup) {
	writes, vals := p.writes, p.vals
	var err error
	if len(writes) > 0 {
		err = s.db.Update(func(tx *buntdb.Tx) error {
			for i, sb := range writes {
				if _, _, err := tx.Set(sb.key, vals[i], nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			for i, sb := range writes {
				s.applyBatch(sb, len(vals[i]))
			}
		} else {
			err = fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	for _, req := range p.group {
		req.err = err
		close(req.done)
	}
}

// siteUUID tells apart equal uuids of different sites within one commit.
type siteUUID struct {
	site string
	key  UUIDKey
}

// applyBatch adds committed events to the in-memory table.
func (s *DB) applyBatch(sb *siteBatch, size int) {
	t := sb.t
	t.mu.Lock()
	first := t.rows()
	refused := t.people.nRefused
	for i, ev := range sb.events {
		t.add(ev, sb.keys[i])
	}
	refused = t.people.nRefused - refused
	t.addBlockRef(blockRef{key: sb.key, first: first, n: len(sb.events), size: size, compressed: sb.compressed})
	t.mu.Unlock()
	for ; refused > 0 && s.opts.OnMergeRefused != nil; refused-- {
		s.opts.OnMergeRefused(t.site)
	}
	if s.pending.Add(int64(len(sb.events))) >= int64(s.opts.CompactAfter) {
		select {
		case s.compactCh <- struct{}{}:
		default:
		}
	}
	s.live.publish(t.site, sb.events)
}
