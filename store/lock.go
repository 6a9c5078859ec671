package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// One process owns a database file. Open takes an OS lock on a sidecar
// file, <db>.lock, and Close releases it; the kernel releases it too when
// the process dies, so a stale lock file never blocks a restart. The lock
// file holds who took it (pid, host, time), for the error a second process
// gets. The sidecar, not the database file, carries the lock because
// recovery replaces the database file by another one.

// LockedError says that another process (or another Open in this process)
// holds the database file.
type LockedError struct {
	Path   string // the database file
	Holder string // "pid 1234 on host h since 2026-11-25T21:00:00Z", as the holder wrote it
}

func (e *LockedError) Error() string {
	return e.Path + ": in use by " + e.Holder
}

// ErrLocked matches a *LockedError with errors.Is.
var ErrLocked = errors.New("database in use by another process")

func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// fileLock is a held lock; release lets go of it.
type fileLock struct {
	f *os.File
}

// lockDB takes the lock of the database file at path (already canonical).
func lockDB(path string) (*fileLock, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if !held {
		b := make([]byte, 256)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		return nil, &LockedError{Path: path, Holder: holderText(b[:n])}
	}
	host, _ := os.Hostname()
	me := fmt.Sprintf("pid %d on host %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(me), 0) // only informative: a failure here is no reason to refuse the lock
	}
	return &fileLock{f: f}, nil
}

// holderText makes what the lock file says fit for an error message.
func holderText(b []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if s == "" {
		return "another process (it has not written its name yet)"
	}
	return s
}

func (l *fileLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Closing the descriptor drops the lock. The file stays: removing it
	// would let two processes lock two different files of the same name.
	err := l.f.Close()
	l.f = nil
	return err
}

// CanonicalPath is the absolute path of a database file with symlinks
// resolved, so that two names of one file give one path. For a file that
// does not exist yet, its directory is resolved (and, when that does not
// exist either, the path is only made absolute).
func CanonicalPath(path string) (string, error) {
	if path == ":memory:" {
		return path, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if p, err := filepath.EvalSymlinks(abs); err == nil {
		return p, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	// A dangling symlink names the file it will create.
	if target, err := os.Readlink(abs); err == nil {
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(abs), target)
		}
		if target != abs {
			return CanonicalPath(target)
		}
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return abs, nil
		}
		return "", err
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}
