package store

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Backup writes a consistent snapshot of the whole log (events, persons,
// definitions, recordings, imported aggregates) to w. buntdb writes it under
// its read lock, so no commit is half in it: every event acknowledged before
// Backup began is in the snapshot, later ones are wholly in or out. Writes
// wait while the snapshot is written; reads go on.
func (s *DB) Backup(w io.Writer) error {
	return s.db.Save(w)
}

// BackupTo writes a snapshot into the file dst atomically: a temporary file
// beside it, fsync, rename, fsync of the directory. The history files the
// snapshot lists go into dst's history directory (HistoryDir(dst)): hard
// links where dst is on the same file system (the files never change), else
// copies. Moves and rewrites wait meanwhile, so the snapshot and the files
// agree. It returns the size of the snapshot and the files.
func (s *DB) BackupTo(dst string) (int64, error) {
	s.maint.Lock()
	defer s.maint.Unlock()
	s.hist.mu.RLock()
	var files []string
	for _, hf := range s.hist.files {
		files = append(files, hf.Path)
	}
	for _, rf := range s.hist.recs {
		files = append(files, rf.Path)
	}
	s.hist.mu.RUnlock()
	var total int64
	if len(files) > 0 {
		dir := HistoryDir(dst)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return 0, err
		}
		keep := make(map[string]bool, len(files))
		for _, f := range files {
			name := filepath.Base(f)
			keep[name] = true
			to := filepath.Join(dir, name)
			if st, err := os.Stat(to); err == nil {
				total += st.Size() // immutable: an earlier backup's copy is this file
				continue
			}
			n, err := linkOrCopy(f, to)
			if err != nil {
				return 0, fmt.Errorf("backing up %s: %w", f, err)
			}
			total += n
		}
		// Files of an older backup at dst that this one does not list.
		if ents, err := os.ReadDir(dir); err == nil {
			for _, e := range ents {
				if !keep[e.Name()] {
					os.Remove(filepath.Join(dir, e.Name()))
				}
			}
		}
		syncDir(dir)
	}
	n, err := WriteFileAtomic(dst, s.Backup)
	return n + total, err
}

// linkOrCopy makes to a hard link of from, or a copy (fsynced, renamed
// into place) when linking fails.
func linkOrCopy(from, to string) (int64, error) {
	st, err := os.Stat(from)
	if err != nil {
		return 0, err
	}
	if os.Link(from, to) == nil {
		return st.Size(), nil
	}
	return WriteFileAtomic(to, func(w io.Writer) error {
		f, err := os.Open(from)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
}

// Path returns the file the database was opened from.
func (s *DB) Path() string { return s.path }

// WriteFileAtomic creates dst with what write writes: into a temporary file
// in dst's directory, fsynced, then renamed over dst, and the directory
// fsynced, so that dst is either the old file or the whole new one.
func WriteFileAtomic(dst string, write func(io.Writer) error) (int64, error) {
	dir := filepath.Dir(dst)
	f, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return 0, err
	}
	cw := &countWriter{w: f}
	if err := write(cw); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return 0, err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Restore replaces the database file db with the backup from. It refuses
// when from does not verify, and when db is open in a running process
// (opening it must succeed first). The file it replaces is kept beside it as
// <db>.pre-restore-<time>.
func Restore(from, db string) (kept string, err error) {
	rep, err := VerifyFile(from)
	if err != nil {
		return "", err
	}
	if !rep.OK() {
		return "", fmt.Errorf("%s is damaged: %s", from, rep.Damage[0])
	}
	if _, err := os.Stat(db); err == nil {
		// Opening fails while another process holds the database.
		cur, err := Open(db, Options{})
		if err != nil {
			return "", fmt.Errorf("%s cannot be replaced: %w", db, err)
		}
		cur.Close()
		kept = db + ".pre-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Link(db, kept); err != nil {
			// No hard links here: copy it.
			if _, err := WriteFileAtomic(kept, func(w io.Writer) error {
				f, err := os.Open(db)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.Copy(w, f)
				return err
			}); err != nil {
				return "", fmt.Errorf("keeping the current %s: %w", db, err)
			}
		}
	}
	src, err := os.Open(from)
	if err != nil {
		return kept, err
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		return kept, err
	}
	// The history files go with their log: the current ones beside the
	// kept file, the backup's in their place.
	if _, err := os.Stat(HistoryDir(db)); err == nil {
		aside := HistoryDir(db) + ".pre-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if kept != "" {
			aside = HistoryDir(kept)
		}
		if err := os.Rename(HistoryDir(db), aside); err != nil {
			return kept, fmt.Errorf("keeping the current history files: %w", err)
		}
	}
	if ents, err := os.ReadDir(HistoryDir(from)); err == nil && len(ents) > 0 {
		if err := os.MkdirAll(HistoryDir(db), 0o700); err != nil {
			return kept, err
		}
		for _, e := range ents {
			if _, err := linkOrCopy(filepath.Join(HistoryDir(from), e.Name()), filepath.Join(HistoryDir(db), e.Name())); err != nil {
				return kept, fmt.Errorf("restoring history file %s: %w", e.Name(), err)
			}
		}
		syncDir(HistoryDir(db))
	}
	_, err = WriteFileAtomic(db, func(w io.Writer) error {
		_, err := io.Copy(w, src)
		return err
	})
	return kept, err
}
