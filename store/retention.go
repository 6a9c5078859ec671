package store

import (
	"fmt"
	"time"
)

// SetRetention makes events (and recordings) of site older than d be
// deleted; 0 keeps them forever.
func (s *DB) SetRetention(site string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retention == nil {
		s.retention = make(map[string]time.Duration)
	}
	if d <= 0 {
		delete(s.retention, site)
		return
	}
	s.retention[site] = d
	// Apply it now, not at the next hourly run: a retention added by a
	// reload takes effect at once.
	s.retentionDue.Store(true)
	select {
	case s.compactCh <- struct{}{}:
	default:
	}
}

// ApplyRetention deletes what is older than each site's retention and, if
// anything went, rewrites the log file. It runs hourly by itself.
func (s *DB) ApplyRetention() error {
	s.mu.RLock()
	policy := make(map[string]time.Duration, len(s.retention))
	for k, v := range s.retention {
		policy[k] = v
	}
	s.mu.RUnlock()
	if len(policy) == 0 {
		return nil
	}
	s.maint.Lock()
	defer s.maint.Unlock()
	now := s.opts.Now()
	deleted := false
	for site, d := range policy {
		cutoff := now.Add(-d).UnixMilli()
		if t := s.table(site); t != nil {
			t.mu.RLock()
			var rows []int
			n := t.rows()
			for row := 0; row < n; row++ {
				if ts := t.ts.at(row); ts != deletedTime && ts < cutoff {
					rows = append(rows, row)
				}
			}
			t.mu.RUnlock()
			if len(rows) > 0 {
				if err := s.deleteRows(t, rows); err != nil {
					return fmt.Errorf("retention of %s: %w", site, err)
				}
				deleted = true
			}
		}
		var recs bool
		err := s.deleteRecordingsOf(site, func(ri *RecordingInfo) bool {
			old := ri.End < cutoff
			recs = recs || old
			return old
		})
		if err != nil {
			return fmt.Errorf("retention of %s recordings: %w", site, err)
		}
		deleted = deleted || recs
	}
	if deleted {
		return s.shrink()
	}
	return nil
}

// DropBefore deletes the site's events older than cutoff (Unix ms), except
// those whose uuid is in keep, and rewrites the log file if any went; it
// returns how many went. A backend that holds the events elsewhere (the
// ClickHouse backend's `keep`) drops what it has shipped with it; the
// persons of the log then know only the events left.
func (s *DB) DropBefore(site string, cutoff int64, keep []string) (int, error) {
	t := s.table(site)
	if t == nil {
		return 0, nil
	}
	kept := make(map[UUIDKey]bool, len(keep))
	for _, u := range keep {
		k, _ := uuidKey(u)
		kept[k] = true
	}
	s.maint.Lock()
	defer s.maint.Unlock()
	if err := t.rlock(); err != nil {
		return 0, err
	}
	var rows []int
	n := t.rows()
	for row := 0; row < n; row++ {
		if ts := t.ts.at(row); ts != deletedTime && ts < cutoff && !kept[t.keys.at(row)] {
			rows = append(rows, row)
		}
	}
	t.mu.RUnlock()
	if len(rows) == 0 {
		return 0, nil
	}
	if err := s.deleteRows(t, rows); err != nil {
		return 0, fmt.Errorf("dropping shipped events of %s: %w", site, err)
	}
	return len(rows), s.shrink()
}
