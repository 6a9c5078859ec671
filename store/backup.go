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
// beside it, fsync, rename, fsync of the directory. It returns the size.
func (s *DB) BackupTo(dst string) (int64, error) {
	return WriteFileAtomic(dst, s.Backup)
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
	_, err = WriteFileAtomic(db, func(w io.Writer) error {
		_, err := io.Copy(w, src)
		return err
	})
	return kept, err
}
