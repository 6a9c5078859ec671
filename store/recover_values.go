package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/buntdb"
)

// A record can be whole in the log and still not decode: damage inside a
// value leaves the log's framing intact. Such records are found at Open
// (load reports the event blocks; badValues checks the rest), kept in the
// damaged copy of the file and removed from the log, so that the loaders see
// only what they can read and a person deletion never misses events it
// cannot see.

// badValues returns the keys of recording chunks and definitions that do
// not decode.
func (s *DB) badValues() ([]string, error) {
	var bad []string
	err := s.db.View(func(tx *buntdb.Tx) error {
		err := tx.AscendKeys("r:*", func(k, v string) bool {
			if _, _, _, ok := parseRecKey(k); !ok {
				bad = append(bad, k)
			} else if _, err := decodeChunkHeader(v); err != nil {
				bad = append(bad, k)
			}
			return true
		})
		if err != nil {
			return err
		}
		def := func(k, v string) bool {
			_, idStr, ok := strings.Cut(k[2:], "\x00")
			if _, err := strconv.ParseInt(idStr, 10, 64); !ok || err != nil {
				bad = append(bad, k)
				return true
			}
			var err error
			if k[0] == 'a' {
				err = json.Unmarshal([]byte(v), new(Action))
			} else {
				err = json.Unmarshal([]byte(v), new(Cohort))
			}
			if err != nil {
				bad = append(bad, k)
			}
			return true
		}
		if err := tx.AscendKeys("a:*", def); err != nil {
			return err
		}
		return tx.AscendKeys("c:*", def)
	})
	return bad, err
}

// dropValues removes keys from the log.
func (s *DB) dropValues(keys []string) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		for _, k := range keys {
			if _, err := tx.Delete(k); err != nil && err != buntdb.ErrNotFound {
				return err
			}
		}
		return nil
	})
}

// setAside removes the event blocks in badBlocks and the other records
// that do not decode from the log, after keeping the file as it was beside
// it (unless recovery already did), and adds them to the report.
func (s *DB) setAside(badBlocks []string, records int, report *DamageReport) error {
	bad, err := s.badValues()
	if err != nil {
		return err
	}
	bad = append(badBlocks, bad...)
	if len(bad) == 0 {
		return nil
	}
	if s.path == ":memory:" {
		return s.dropValues(bad)
	}
	if report.DamagedCopy == "" {
		// The file as found; at most load's clean-up of doubled blocks
		// has been appended.
		name := damagedName(s.path, s.opts.Now())
		if err := copyFile(s.path, name); err != nil {
			return fmt.Errorf("keeping the damaged file: %w", err)
		}
		report.Path, report.DamagedCopy, report.Kept = s.path, name, records
	}
	report.Values = bad
	report.Kept = max(0, report.Kept-len(bad))
	return s.dropValues(bad)
}
