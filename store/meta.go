package store

import (
	"errors"
	"strings"

	"github.com/tidwall/buntdb"
)

// Meta is a small durable key-value space beside the events, for the
// dashboard's own records (API tokens, share links), under keys "m:<key>".
// Values are kept in the log like everything else and are in backups.

// PutMeta stores value under key.
func (s *DB) PutMeta(key, value string) error {
	err := s.db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set("m:"+key, value, nil)
		return err
	})
	if err != nil {
		return errors.Join(ErrUnavailable, err)
	}
	return nil
}

// GetMeta returns the value under key, or ErrNotFound.
func (s *DB) GetMeta(key string) (string, error) {
	var v string
	err := s.db.View(func(tx *buntdb.Tx) error {
		var err error
		v, err = tx.Get("m:" + key)
		return err
	})
	if errors.Is(err, buntdb.ErrNotFound) {
		return "", ErrNotFound
	}
	return v, err
}

// DeleteMeta removes key; a missing key is ErrNotFound.
func (s *DB) DeleteMeta(key string) error {
	err := s.db.Update(func(tx *buntdb.Tx) error {
		_, err := tx.Delete("m:" + key)
		return err
	})
	if errors.Is(err, buntdb.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// ScanMeta calls fn with every key (without "m:") starting with prefix and
// its value, in key order, until fn returns false.
func (s *DB) ScanMeta(prefix string, fn func(key, value string) bool) error {
	return s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendGreaterOrEqual("", "m:"+prefix, func(k, v string) bool {
			if !strings.HasPrefix(k, "m:"+prefix) {
				return false
			}
			return fn(k[2:], v)
		})
	})
}

// DeleteMetas removes keys in one write (one fsync); a missing key is
// skipped.
func (s *DB) DeleteMetas(keys []string) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		for _, k := range keys {
			if _, err := tx.Delete("m:" + k); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
				return err
			}
		}
		return nil
	})
}
