package store

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/tidwall/buntdb"
)

// compactor merges the small blocks of group commits (compressed fast, with
// little to share) into large ones compressed harder, which is what keeps a
// million events in a few dozen bytes each.
func (s *DB) compactor() {
	defer s.done.Done()
	tick := time.NewTicker(s.opts.CompactEvery)
	defer tick.Stop()
	var lastRetention time.Time
	var lastCommits uint64
	released := true
	for {
		idleTick := false
		select {
		case <-s.stop:
			return
		case <-tick.C:
			idleTick = true
		case <-s.compactCh:
		}
		// Retention runs whenever it is (re)configured and hourly.
		if now := s.opts.Now(); s.retentionDue.Swap(false) || now.Sub(lastRetention) >= time.Hour {
			lastRetention = now
			if err := s.ApplyRetention(); err != nil {
				s.opts.OnError(err)
			}
		}
		if err := s.Compact(); err != nil {
			s.opts.OnError(fmt.Errorf("compacting: %w", err))
		}
		if err := s.MoveHistory(); err != nil {
			s.opts.OnError(err)
		}
		if err := s.FlushRecordings(s.opts.RecordingIdle); err != nil {
			s.opts.OnError(fmt.Errorf("moving recordings to files: %w", err))
		}
		// Once ingestion has been quiet for a whole period, hand the memory
		// that the last burst of requests and merges used back to the
		// system, once: the runtime would keep it for a long while.
		if idleTick {
			if c := s.nCommits.Load(); c != lastCommits {
				lastCommits, released = c, false
			} else if !released {
				debug.FreeOSMemory()
				released = true
			}
		}
	}
}

// Compact merges small blocks now. It is safe to call at any time.
func (s *DB) Compact() error {
	s.maint.Lock()
	defer s.maint.Unlock()
	s.pending.Store(0)
	s.mu.RLock()
	tables := make([]*table, 0, len(s.tables))
	for _, t := range s.tables {
		tables = append(tables, t)
	}
	s.mu.RUnlock()
	for _, t := range tables {
		if err := s.compactTable(t); err != nil {
			return err
		}
	}
	return nil
}

// compactGroups picks runs of adjacent small blocks to merge, up to
// BlockEvents events a run.
func (s *DB) compactGroups(t *table) [][]blockRef {
	t.mu.RLock()
	defer t.mu.RUnlock()
	target := s.opts.BlockEvents
	var groups [][]blockRef
	var cur []blockRef
	curEvents := 0
	flush := func() {
		if len(cur) > 1 || (len(cur) == 1 && !cur[0].compressed && cur[0].key != "") {
			groups = append(groups, cur)
		}
		cur, curEvents = nil, 0
	}
	for _, b := range t.blocks {
		stored := b.n - len(b.skips)
		small := (!b.compressed || stored < target/2) && !isHistKey(b.key)
		if !small {
			flush()
			continue
		}
		if curEvents+stored > target && len(cur) > 0 {
			flush()
		}
		cur = append(cur, b)
		curEvents += stored
	}
	flush()
	return groups
}

func (s *DB) compactTable(t *table) error {
	for _, g := range s.compactGroups(t) {
		if err := s.mergeBlocks(t, g); err != nil {
			return err
		}
		select {
		case <-s.stop:
			return nil
		default:
		}
	}
	return nil
}

// mergeBlocks rewrites a run of blocks as one. The merged block is written
// under the first key before the others are deleted, in two transactions
// (the table is pointed at the merged block between them): cut short
// between them, the log holds some events twice, which replay
// de-duplicates; it never holds them zero times.
func (s *DB) mergeBlocks(t *table, g []blockRef) error {
	// The values are read under the log's read lock and merged after it:
	// a value stays as it was read when its key is set again.
	var vals, keys []string
	err := s.db.View(func(tx *buntdb.Tx) error {
		for _, b := range g {
			if b.key == "" {
				continue
			}
			v, err := tx.Get(b.key)
			if err != nil {
				return fmt.Errorf("block %s: %w", b.key, err)
			}
			vals = append(vals, v)
			keys = append(keys, b.key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	merged := blockRef{first: g[0].first, compressed: true}
	for _, b := range g {
		for _, sk := range b.skips {
			merged.skips = append(merged.skips, int32(b.first-merged.first)+sk)
		}
		merged.n += b.n
	}
	if len(keys) > 0 {
		merged.key = keys[0]
		val, err := mergeBlockValues(t.site, keys, vals, compressBest)
		if err != nil {
			return err
		}
		merged.size = len(val)
		if err := s.db.Update(func(tx *buntdb.Tx) error {
			_, _, err := tx.Set(keys[0], val, nil)
			return err
		}); err != nil {
			return err
		}
	}
	// The table points at the merged block before the others are deleted:
	// a reader holds t.mu (read) from taking a block reference to reading
	// its key, so no reader looks for a key that is gone. (One that took
	// the first key's old reference reads the merged value, which begins
	// with the same events at the same indexes.)
	t.mu.Lock()
	i := t.blockOf(g[0].first)
	if i < 0 || t.blocks[i].first != g[0].first {
		t.mu.Unlock()
		return fmt.Errorf("compaction lost track of block at row %d", g[0].first)
	}
	t.blocks = append(t.blocks[:i+1], t.blocks[i+len(g):]...)
	t.blocks[i] = merged
	for _, k := range keys {
		s.bc.drop(k)
	}
	t.mu.Unlock()
	if len(keys) > 1 {
		return s.db.Update(func(tx *buntdb.Tx) error {
			for _, k := range keys[1:] {
				if _, err := tx.Delete(k); err != nil && err != buntdb.ErrNotFound {
					return err
				}
			}
			return nil
		})
	}
	return nil
}
