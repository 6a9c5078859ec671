package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/tidwall/buntdb"
)

// The salt of the day (SPEC §8, cookieless counting): a random value made
// for each UTC day, kept in the log for that day only. When a new day's
// salt is made, every other is deleted and the log file rewritten, so a
// past day's salt is gone from the disk and a visitor's ids of two days
// cannot be linked.
type daySalt struct {
	mu   sync.Mutex
	day  int64
	salt []byte
}

const saltPrefix = "salt:"

// DaySalt returns the salt of UTC day (days since 1970-01-01), making it
// if needed. A day before the newest salt made gets an error: its salt is
// gone.
func (s *DB) DaySalt(day int64) ([]byte, error) {
	s.salt.mu.Lock()
	defer s.salt.mu.Unlock()
	if s.salt.salt != nil && s.salt.day == day {
		return s.salt.salt, nil
	}
	if s.salt.salt != nil && day < s.salt.day {
		return nil, fmt.Errorf("the salt of day %d is deleted", day)
	}
	key := saltPrefix + strconv.FormatInt(day, 10)
	var salt []byte
	removed := 0
	err := s.db.Update(func(tx *buntdb.Tx) error {
		if v, err := tx.Get(key); err == nil {
			salt, _ = hex.DecodeString(v)
		}
		if len(salt) != 32 {
			salt = make([]byte, 32)
			if _, err := rand.Read(salt); err != nil {
				return err
			}
			if _, _, err := tx.Set(key, hex.EncodeToString(salt), nil); err != nil {
				return err
			}
		}
		var old []string
		tx.AscendKeys(saltPrefix+"*", func(k, _ string) bool {
			if k != key {
				if d, err := strconv.ParseInt(strings.TrimPrefix(k, saltPrefix), 10, 64); err != nil || d < day {
					old = append(old, k)
				}
			}
			return true
		})
		for _, k := range old {
			if _, err := tx.Delete(k); err != nil {
				return err
			}
		}
		removed = len(old)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: salt of the day: %v", ErrUnavailable, err)
	}
	if removed > 0 {
		// buntdb appends: rewrite the file so the old salt's bytes go.
		if err := s.shrink(); err != nil {
			return nil, err
		}
	}
	s.salt.day, s.salt.salt = day, salt
	return salt, nil
}
