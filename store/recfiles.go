package store

// Recording files. A recording's chunks arrive in the log (buntdb, which
// keeps every value in memory); once its session has been idle for
// Options.RecordingIdle, its chunks move, as they are, into an immutable
// file in the history directory, listed (rl:<id>) in the same buntdb
// transaction that deletes them from the log. Only the chunk headers stay
// in memory. Deleting recordings (retention, a person's deletion) writes
// the files that hold them again without those chunks. The file format is
// package histfile's (RecFile).

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/buntdb"

	"github.com/firstpartyhq/firstparty/store/histfile"
)

const recListKey = "rl:" // + 16 hex digits of the file id

func recFileKey(id uint64, i int) string {
	return "rf:" + strconv.FormatUint(id, 16) + ":" + strconv.Itoa(i)
}

func parseRecFileKey(k string) (id uint64, i int, ok bool) {
	rest, found := strings.CutPrefix(k, "rf:")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rest, ":")
	if !found {
		return 0, 0, false
	}
	id, err1 := strconv.ParseUint(a, 16, 64)
	i, err2 := strconv.Atoi(b)
	return id, i, err1 == nil && err2 == nil
}

// recValue returns the stored value of a recording chunk key, from the log
// or from a recording file.
func (s *DB) recValue(tx *buntdb.Tx, key string) (string, error) {
	id, i, ok := parseRecFileKey(key)
	if !ok {
		return tx.Get(key)
	}
	s.hist.mu.RLock()
	rf := s.hist.recs[id]
	s.hist.mu.RUnlock()
	if rf == nil || i >= len(rf.Header.Chunks) {
		return "", fmt.Errorf("recording chunk %s: no such file", key)
	}
	return rf.Value(i), nil
}

// loadRecFiles opens the listed recording files and adds their chunk
// headers, before the log's chunks (which are newer), in the order the
// chunks were made (their sequence). That is the files' order unless a
// file was written again (a deletion gives it a new id, higher than that
// of a later file that may hold the same session's later chunks); only
// then are the chunks sorted, through 16 bytes each.
func (s *DB) loadRecFiles(names map[uint64]string) error {
	ids := make([]uint64, 0, len(names))
	for id := range names {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	files := make([]*histfile.RecFile, len(ids))
	inOrder := true
	var last uint64
	n := 0
	for fi, id := range ids {
		rf, err := histfile.OpenRec(id, filepath.Join(s.hist.dir, names[id]))
		if err != nil {
			return err
		}
		s.hist.mu.Lock()
		s.hist.recs[id] = rf
		s.hist.mu.Unlock()
		files[fi] = rf
		for _, c := range rf.Header.Chunks {
			_, _, seq, ok := parseRecKey(c.Key)
			if !ok {
				return fmt.Errorf("%w: %s: bad chunk key %q", errBadHist, rf.Path, c.Key)
			}
			inOrder = inOrder && seq > last
			last = max(last, seq)
			n++
		}
	}
	if inOrder {
		for _, rf := range files {
			for i := range rf.Header.Chunks {
				if err := s.addRecChunk(rf, i); err != nil {
					return err
				}
			}
		}
		return nil
	}
	type ref struct {
		seq         uint64
		file, chunk uint32
	}
	refs := make([]ref, 0, n)
	for fi, rf := range files {
		for i, c := range rf.Header.Chunks {
			_, _, seq, _ := parseRecKey(c.Key)
			refs = append(refs, ref{seq, uint32(fi), uint32(i)})
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].seq < refs[j].seq })
	for _, r := range refs {
		if err := s.addRecChunk(files[r.file], int(r.chunk)); err != nil {
			return err
		}
	}
	return nil
}

// addRecChunk adds chunk i of the recording file rf to the recordings.
func (s *DB) addRecChunk(rf *histfile.RecFile, i int) error {
	c := rf.Header.Chunks[i]
	site, session, seq, _ := parseRecKey(c.Key) // checked by loadRecFiles
	h, err := decodeChunkHeader(rf.Value(i))
	if err != nil {
		return fmt.Errorf("%s: chunk %q: %w", rf.Path, c.Key, err)
	}
	if seq > s.recs.seq.Load() {
		s.recs.seq.Store(seq)
	}
	s.recs.add(site, session, recFileKey(rf.ID, i), h, int(c.Size))
	s.sites[site] = true
	return nil
}

// FlushRecordings moves the chunks of every recording idle for longer than
// idle from the log into a recording file.
func (s *DB) FlushRecordings(idle time.Duration) error {
	if s.hist.dir == "" {
		return nil
	}
	s.maint.Lock()
	defer s.maint.Unlock()
	cutoff := s.opts.Now().Add(-idle).UnixMilli()
	var keys []string
	s.recs.mu.RLock()
	for _, m := range s.recs.sites {
		for _, r := range m {
			if r.info.End >= cutoff {
				continue
			}
			for _, k := range r.keys {
				if strings.HasPrefix(k, "r:") {
					keys = append(keys, k)
				}
			}
		}
	}
	s.recs.mu.RUnlock()
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	vals := make([]string, len(keys))
	if err := s.db.View(func(tx *buntdb.Tx) error {
		for i, k := range keys {
			v, err := tx.Get(k)
			if err != nil {
				return fmt.Errorf("recording chunk %q: %w", k, err)
			}
			vals[i] = v
		}
		return nil
	}); err != nil {
		return err
	}
	id, err := s.nextHistID()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.hist.dir, 0o700); err != nil {
		return err
	}
	name := histfile.RecName(id)
	path := filepath.Join(s.hist.dir, name)
	if err := histfile.WriteRec(path, keys, vals, s.hist.prefixed("recs:")); err != nil {
		return err
	}
	rf, err := histfile.OpenRec(id, path)
	if err != nil {
		os.Remove(path)
		return err
	}
	s.hist.at("recs:list")
	err = s.db.Update(func(tx *buntdb.Tx) error {
		if _, _, err := tx.Set(fmt.Sprintf("%s%016x", recListKey, id), name, nil); err != nil {
			return err
		}
		if _, _, err := tx.Set(histIDKey, strconv.FormatUint(id, 10), nil); err != nil {
			return err
		}
		for _, k := range keys {
			if _, err := tx.Delete(k); err != nil && err != buntdb.ErrNotFound {
				return err
			}
		}
		return nil
	})
	if err != nil {
		rf.Close()
		os.Remove(path)
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.hist.mu.Lock()
	s.hist.recs[id] = rf
	s.hist.mu.Unlock()
	moved := make(map[string]string, len(keys))
	for i, k := range keys {
		moved[k] = recFileKey(id, i)
	}
	s.recs.renameKeys(moved)
	return nil
}

// renameKeys replaces chunk keys (old → new) in every recording.
func (rs *recordings) renameKeys(m map[string]string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, site := range rs.sites {
		for _, r := range site {
			for i, k := range r.keys {
				if nk, ok := m[k]; ok {
					r.keys[i] = nk
				}
			}
		}
	}
}

// deleteRecChunks removes chunks from the log and from recording files (a
// file without them is written in place of each file that held some) in
// one transaction. The caller holds s.maint.
func (s *DB) deleteRecChunks(keys []string) error {
	var logKeys []string
	drop := map[uint64]map[int]bool{}
	for _, k := range keys {
		if id, i, ok := parseRecFileKey(k); ok {
			if drop[id] == nil {
				drop[id] = map[int]bool{}
			}
			drop[id][i] = true
			continue
		}
		logKeys = append(logKeys, k)
	}
	type rewrite struct {
		old, new *histfile.RecFile
		name     string
		remap    map[string]string
	}
	var rws []rewrite
	abandonAll := func() {
		for _, rw := range rws {
			if rw.new != nil {
				rw.new.Close()
				os.Remove(rw.new.Path)
			}
		}
	}
	if len(drop) > 0 {
		next, err := s.nextHistID()
		if err != nil {
			return err
		}
		for id, idx := range drop {
			s.hist.mu.RLock()
			old := s.hist.recs[id]
			s.hist.mu.RUnlock()
			if old == nil {
				continue
			}
			rw := rewrite{old: old, remap: map[string]string{}}
			var ks, vs []string
			for i, c := range old.Header.Chunks {
				if !idx[i] {
					rw.remap[recFileKey(id, i)] = recFileKey(next, len(ks))
					ks = append(ks, c.Key)
					vs = append(vs, old.Value(i))
				}
			}
			if len(ks) > 0 {
				rw.name = histfile.RecName(next)
				path := filepath.Join(s.hist.dir, rw.name)
				if err := histfile.WriteRec(path, ks, vs, s.hist.prefixed("recs-rewrite:")); err != nil {
					abandonAll()
					return err
				}
				nf, err := histfile.OpenRec(next, path)
				if err != nil {
					os.Remove(path)
					abandonAll()
					return err
				}
				rw.new = nf
				next++
			}
			rws = append(rws, rw)
		}
	}
	s.hist.at("recs-rewrite:list")
	err := s.db.Update(func(tx *buntdb.Tx) error {
		for _, k := range logKeys {
			if _, err := tx.Delete(k); err != nil && err != buntdb.ErrNotFound {
				return err
			}
		}
		var top uint64
		for _, rw := range rws {
			if _, err := tx.Delete(fmt.Sprintf("%s%016x", recListKey, rw.old.ID)); err != nil && err != buntdb.ErrNotFound {
				return err
			}
			if rw.new != nil {
				if _, _, err := tx.Set(fmt.Sprintf("%s%016x", recListKey, rw.new.ID), rw.name, nil); err != nil {
					return err
				}
				top = max(top, rw.new.ID)
			}
		}
		if top > 0 {
			if _, _, err := tx.Set(histIDKey, strconv.FormatUint(top, 10), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		abandonAll()
		return err
	}
	remap := map[string]string{}
	s.hist.mu.Lock()
	for _, rw := range rws {
		delete(s.hist.recs, rw.old.ID)
		if rw.new != nil {
			s.hist.recs[rw.new.ID] = rw.new
		}
		for k, v := range rw.remap {
			remap[k] = v
		}
	}
	s.hist.mu.Unlock()
	s.recs.renameKeys(remap)
	s.hist.recLife.Lock()
	for _, rw := range rws {
		rw.old.Close()
		os.Remove(rw.old.Path)
	}
	s.hist.recLife.Unlock()
	return nil
}
