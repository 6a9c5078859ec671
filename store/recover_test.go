package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// logRecord is one command of a log file as written, with the uuids of the
// events its value holds.
type logRecord struct {
	off, end int
	uuids    []string
}

// readLog parses a log file that is known to be whole.
func readLog(t testing.TB, data []byte) []logRecord {
	t.Helper()
	var out []logRecord
	for p := 0; p < len(data); {
		end, ok := parseCommand(data, p, false)
		if !ok {
			t.Fatalf("the undamaged file does not parse at %d", p)
		}
		r := logRecord{off: p, end: end}
		var parts [][]byte
		n, q, _ := respNumber(data, p, '*')
		for i := 0; i < n; i++ {
			l, q2, _ := respNumber(data, q, '$')
			parts = append(parts, data[q2:q2+l])
			q = q2 + l + 2
		}
		if string(parts[0]) == "set" && strings.HasPrefix(string(parts[1]), "e:") {
			d, err := decodeBlock(string(parts[2]))
			if err != nil {
				t.Fatal(err)
			}
			for i := range d.events {
				r.uuids = append(r.uuids, d.event(i).UUID)
			}
		}
		out = append(out, r)
		p = end
	}
	return out
}

// writeFixture stores batches × perBatch events of site "s", one log record
// per batch, and returns the file's bytes.
func writeFixture(t *testing.T, path string, batches, perBatch int) []byte {
	t.Helper()
	db := openTest(t, path)
	rng := rand.New(rand.NewSource(1))
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for b := 0; b < batches; b++ {
		var evs []*Event
		for i := 0; i < perBatch; i++ {
			at := base.Add(time.Duration(b*perBatch+i) * time.Minute)
			e := ev("s", "$pageview", fmt.Sprintf("d%d", rng.Intn(20)), at.UnixMilli(),
				"$pathname", fmt.Sprintf("/p/%d", rng.Intn(1000)), "x", fmt.Sprintf("%x", rng.Int63()))
			e.UUID = NewUUID(at)
			evs = append(evs, e)
		}
		mustAppend(t, db, evs...)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func storedSet(t *testing.T, db *DB) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, e := range listAll(t, db, EventQuery{Site: "s", Limit: 1000}) {
		out[e.UUID] = true
	}
	return out
}

// TestRecoverDamage damages a real log file in each way a disk or a crash
// can, reopens it, and checks that every event of an undamaged record is
// there, the damaged file is kept beside, and the loss is reported where it
// is.
func TestRecoverDamage(t *testing.T) {
	const batches, perBatch = 120, 5
	cases := []struct {
		name string
		// damage changes the file and returns it with the byte range
		// [from, to) of the original that no longer holds its records.
		damage func(data []byte, recs []logRecord) (out []byte, from, to int)
		// truncated: records after `to` are gone from the file itself.
		truncated bool
	}{
		{"zero run 4KiB mid-file", func(data []byte, recs []logRecord) ([]byte, int, int) {
			at := len(data)/2 + 13
			out := bytes.Clone(data)
			copy(out[at:at+4096], make([]byte, 4096))
			return out, at, at + 4096
		}, false},
		{"wrong length digit", func(data []byte, recs []logRecord) ([]byte, int, int) {
			r := recs[len(recs)/2]
			out := bytes.Clone(data)
			// the value's length line is the last "$" line before the value
			i := r.off + bytes.LastIndex(data[r.off:r.end-100], []byte("\r\n$")) + 3
			if out[i] == '9' {
				out[i] = '1'
			} else {
				out[i]++
			}
			return out, r.off, r.end
		}, false},
		{"length past the end", func(data []byte, recs []logRecord) ([]byte, int, int) {
			// buntdb takes this for a torn tail and cuts everything after
			r := recs[len(recs)/3]
			i := r.off + bytes.LastIndex(data[r.off:r.end-100], []byte("\r\n$")) + 3
			out := append(bytes.Clone(data[:i]), "9999"...)
			out = append(out, data[i:]...)
			return out, r.off, r.end
		}, false},
		{"inserted garbage", func(data []byte, recs []logRecord) ([]byte, int, int) {
			r := recs[2*len(recs)/3]
			at := (r.off + r.end) / 2
			junk := make([]byte, 300)
			rand.New(rand.NewSource(2)).Read(junk)
			copy(junk[100:], "*3\r\n$3\r\nse") // a cut header in it, too
			out := append(bytes.Clone(data[:at]), junk...)
			out = append(out, data[at:]...)
			return out, r.off, r.end
		}, false},
		{"torn tail", func(data []byte, recs []logRecord) ([]byte, int, int) {
			r := recs[len(recs)-1]
			cut := r.off + (r.end-r.off)/2
			return bytes.Clone(data[:cut]), r.off, r.end
		}, false},
		{"truncated mid-record", func(data []byte, recs []logRecord) ([]byte, int, int) {
			r := recs[len(recs)*3/5]
			cut := r.off + (r.end-r.off)/3
			return bytes.Clone(data[:cut]), r.off, r.end
		}, true},
		{"damaged value, whole framing", func(data []byte, recs []logRecord) ([]byte, int, int) {
			// buntdb loads this file; the block does not decode
			r := recs[len(recs)/4]
			out := bytes.Clone(data)
			i := r.off + bytes.LastIndex(data[r.off:r.end-100], []byte("\r\n$"))
			i += bytes.Index(data[i+3:], []byte("\r\n")) + 5 // first byte of the value
			copy(out[i:i+3], "XYZ")                          // the block's magic and version
			return out, r.off, r.end
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "a.db")
			data := writeFixture(t, path, batches, perBatch)
			recs := readLog(t, data)
			all := map[string]bool{}
			for _, r := range recs {
				for _, u := range r.uuids {
					all[u] = true
				}
			}
			if len(all) != batches*perBatch {
				t.Fatalf("fixture holds %d events, want %d", len(all), batches*perBatch)
			}
			damaged, from, to := tc.damage(data, recs)
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			// The records the damage touched are lost; every other one must
			// survive (with truncated, those after the cut are gone).
			want := map[string]bool{}
			lostRecords := 0
			for _, r := range recs {
				hit := r.end > from && r.off < to
				if hit {
					lostRecords++
				}
				if hit || (tc.truncated && r.off >= to) {
					continue
				}
				for _, u := range r.uuids {
					want[u] = true
				}
			}

			var reports []DamageReport
			db, err := Open(path, Options{CompactEvery: time.Hour, OnDamage: func(r DamageReport) { reports = append(reports, r) }})
			if err != nil {
				t.Fatalf("a damaged file must open: %v", err)
			}
			got := storedSet(t, db)
			for u := range want {
				if !got[u] {
					t.Errorf("intact event %s is missing after recovery", u)
				}
			}
			for u := range got {
				if !all[u] {
					t.Errorf("event %s was never written", u)
				}
			}
			t.Logf("%d of %d events kept, %d records touched by the damage", len(got), len(all), lostRecords)

			if len(reports) != 1 {
				t.Fatalf("want one damage report, got %d", len(reports))
			}
			rep := reports[0]
			if rep.Lost() < 1 || rep.Lost() > lostRecords || rep.EstimatedLost() < rep.Lost() {
				t.Errorf("report says nothing was lost: %+v", rep)
			}
			// Each region (offsets in the damaged copy) must lie on the damage.
			for _, d := range rep.Regions {
				if d.Offset > int64(to)+4096 || d.Offset+d.Length < int64(from) {
					t.Errorf("region at %d+%d is not where the damage is (%d-%d)", d.Offset, d.Length, from, to)
				}
			}
			if len(rep.Regions) == 0 && len(rep.Values) == 0 {
				t.Errorf("report names no region and no value: %+v", rep)
			}
			t.Logf("report: lost ≥%d (estimate %d), regions %+v, values %q, took %v", rep.Lost(), rep.EstimatedLost(), rep.Regions, rep.Values, rep.Took)
			kept, err := os.ReadFile(rep.DamagedCopy)
			if err != nil {
				t.Fatalf("the damaged copy: %v", err)
			}
			if !bytes.HasPrefix(kept, damaged[rep.CopyFrom:]) {
				t.Errorf("the damaged copy is not the damaged file from %d", rep.CopyFrom)
			}
			if tail := strings.Contains(tc.name, "tail") || tc.truncated; tail != (rep.CopyFrom > 0) {
				t.Errorf("copy from %d: only a torn tail is kept alone", rep.CopyFrom)
			}
			if filepath.Dir(rep.DamagedCopy) != dir || !strings.HasPrefix(filepath.Base(rep.DamagedCopy), "a.db.damaged-") {
				t.Errorf("damaged copy %s is not beside the database", rep.DamagedCopy)
			}

			// The store serves on: it takes new events, and the next start
			// finds a clean file holding old and new.
			extra := ev("s", "after", "d", time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC).UnixMilli())
			extra.UUID = NewUUID(time.Now())
			mustAppend(t, db, extra)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if c, err := CheckFile(path); err != nil || !c.Clean() || len(c.Damage) != 0 {
				t.Fatalf("the recovered file is not clean: %+v %v", c, err)
			}
			reports = nil
			db, err = Open(path, Options{CompactEvery: time.Hour, OnDamage: func(r DamageReport) { reports = append(reports, r) }})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			again := storedSet(t, db)
			if len(reports) != 0 {
				t.Errorf("a second open reports damage again: %+v", reports)
			}
			if len(again) != len(got)+1 || !again[extra.UUID] {
				t.Errorf("after a restart: %d events, want %d with the new one", len(again), len(got)+1)
			}
		})
	}
}

// TestRecoverZeroRunBetweenRecords: buntdb skips NUL bytes between commands
// but does not count them, so its next write would land over the newest
// records. Open rewrites such a file; nothing is lost and later writes
// survive a restart.
func TestRecoverZeroRunBetweenRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	data := writeFixture(t, path, 40, 5)
	recs := readLog(t, data)
	at := recs[20].off
	damaged := append(bytes.Clone(data[:at]), make([]byte, 4096)...)
	damaged = append(damaged, data[at:]...)
	os.WriteFile(path, damaged, 0o600)

	var rep []DamageReport
	db, err := Open(path, Options{OnDamage: func(r DamageReport) { rep = append(rep, r) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep) != 1 || len(rep[0].Regions) != 1 || rep[0].Regions[0].Offset != int64(at) || rep[0].Lost() != 0 {
		t.Fatalf("report: %+v", rep)
	}
	extra := ev("s", "after", "d", 1)
	extra.UUID = NewUUID(time.Now())
	mustAppend(t, db, extra)
	db.Close()
	db = openTest(t, path)
	defer db.Close()
	if n := len(storedSet(t, db)); n != 40*5+1 {
		t.Fatalf("%d events after a restart, want %d", n, 40*5+1)
	}
}

// TestCheckFileChangesNothing: the check behind a future `verify` reports
// damage with offsets and leaves the file alone.
func TestCheckFileChangesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.db")
	data := writeFixture(t, path, 30, 3)
	c, err := CheckFile(path)
	if err != nil || len(c.Damage) != 0 || c.Records != 30 || c.Size != int64(len(data)) {
		t.Fatalf("clean file: %+v %v", c, err)
	}
	r := readLog(t, data)[10]
	damaged := bytes.Clone(data)
	copy(damaged[r.off+5:r.off+15], "garbage!!!") // over the record's header
	os.WriteFile(path, damaged, 0o600)
	c, err = CheckFile(path)
	if err != nil || len(c.Damage) != 1 || c.Damage[0].Offset != int64(r.off) || c.Damage[0].Length != int64(r.end-r.off) || c.Records != 29 {
		t.Fatalf("damaged file: %+v %v", c, err)
	}
	after, _ := os.ReadFile(path)
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	if !bytes.Equal(after, damaged) || len(names) != 2 { // a.db and its lock file
		t.Fatalf("CheckFile changed something: %q", names)
	}
}

// TestLockOneOpener: a second Open of the same file, directly or through a
// symlink, fails naming the file and the holder; after Close it succeeds.
func TestLockOneOpener(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.db")
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	db := openTest(t, path)
	for _, p := range []string{path, link} {
		_, err := Open(p, Options{})
		var le *LockedError
		if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
			t.Fatalf("second open of %s: %v", p, err)
		}
		if le.Path != path || !strings.Contains(err.Error(), fmt.Sprintf("pid %d on host", os.Getpid())) {
			t.Fatalf("error does not name the file and holder: %v", err)
		}
		t.Log(err)
	}
	db.Close()
	db = openTest(t, link)
	db.Close()
}

// TestCanonicalPath: every name of a file, existing or not yet, gives one
// path: through a symlinked directory, a file symlink, a dangling symlink.
func TestCanonicalPath(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(dir, "data", "a.db")
	os.MkdirAll(filepath.Dir(real), 0o700)
	os.Symlink(filepath.Join(dir, "data"), filepath.Join(dir, "via"))
	os.Symlink(real, filepath.Join(dir, "file-link.db"))
	os.Symlink("data/a.db", filepath.Join(dir, "relative-link.db"))
	names := []string{real, filepath.Join(dir, "via", "a.db"), filepath.Join(dir, "file-link.db"), filepath.Join(dir, "relative-link.db"), filepath.Join(dir, "via", "..", "data", "a.db")}
	check := func(when string) {
		for _, n := range names {
			if got, err := CanonicalPath(n); err != nil || got != real {
				t.Errorf("%s: %s gives %q %v, want %s", when, n, got, err, real)
			}
		}
	}
	check("before the file exists")
	os.WriteFile(real, nil, 0o600)
	check("after")
}
