package store

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// The log file is buntdb's: an append-only list of RESP commands,
//
//	*3\r\n$3\r\nset\r\n$<len>\r\n<key>\r\n$<len>\r\n<value>\r\n
//	*2\r\n$3\r\ndel\r\n$<len>\r\n<key>\r\n
//
// (also set with an expiry, *5, and *1 flushdb). buntdb refuses the whole
// file at the first command it cannot parse ("invalid database"), and when
// the file ends mid-command it truncates it there, which is right for a torn
// tail but wrong when a damaged length points past the end: everything
// after the damage is cut. It also skips NUL bytes between commands without
// counting them, so a run of zeros mid-file leaves its write position short
// of the end, over the newest records.
//
// So before buntdb sees a file, Open checks it with CheckFile. A damaged
// region is what lies between a command that does not parse and the next
// command that does (the scan resyncs at every '*' until one parses
// whole); a torn tail is a region that reaches the end. When there is any,
// recoverFile copies every intact command, in order, to a fresh file that
// replaces the database, and keeps the damaged file beside it as
// <db>.damaged-<UTC time>. A torn tail alone (what a crash mid-write
// leaves) is cut off in place instead, as buntdb would, and only the torn
// bytes are kept in the .damaged file: a server that crashes now and then
// must not fill its disk with copies of its database.

// Damage is one damaged region of a log file.
type Damage struct {
	// Offset is where the region starts: the first byte of the command
	// that does not parse. Length is its size in bytes.
	Offset, Length int64
	// Records is how many commands the region held as far as their headers
	// survive: at least 1, except for a region of NUL bytes only (nothing
	// lost; at the end of the file it is padding left by a crash, which
	// buntdb skips).
	Records int
	// Tail says the region runs to the end of the file (a torn or
	// truncated last record).
	Tail bool
}

// FileCheck is what CheckFile found.
type FileCheck struct {
	Size    int64    // bytes
	Records int      // intact commands
	Damage  []Damage // damaged regions, in file order
}

// Lost is how many records the damaged regions held, at least.
func (c *FileCheck) Lost() int {
	n := 0
	for _, d := range c.Damage {
		n += d.Records
	}
	return n
}

// EstimatedLost is how many records the damaged regions held, estimated
// from their size and the mean size of the intact records (never below
// Lost): a run of zeros leaves no header to count.
func (c *FileCheck) EstimatedLost() int {
	var damaged int64
	for _, d := range c.Damage {
		damaged += d.Length
	}
	n := 0
	for _, d := range c.Damage {
		est := d.Records
		if intact := c.Size - damaged; c.Records > 0 && intact > 0 && d.Records > 0 {
			est = max(est, int((d.Length*int64(c.Records)+intact/2)/intact))
		}
		n += est
	}
	return n
}

// Clean reports whether the file needs no recovery.
func (c *FileCheck) Clean() bool {
	for _, d := range c.Damage {
		if d.Records > 0 || !d.Tail { // NUL padding at the end is harmless
			return false
		}
	}
	return true
}

// CheckFile reads the log file at path and reports its damaged regions
// with their byte offsets. It changes nothing.
func CheckFile(path string) (*FileCheck, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	defer unmap()
	return scanLog(data, nil), nil
}

// scanLog walks the commands of data, calling intact (when not nil) with
// each intact command's bytes in order.
//
// A damaged length can frame a command wrongly and still end on "\r\n",
// swallowing the commands after it. So a command is only taken once the
// next one parses too (or the file ends there); when the next does not, and
// a whole command starts inside the one before, that one was misframed and
// the damaged region starts at it.
func scanLog(data []byte, intact func([]byte)) *FileCheck {
	c := &FileCheck{Size: int64(len(data))}
	prev, prevEnd := -1, 0 // the command waiting to be taken
	take := func() {
		if prev >= 0 {
			if intact != nil {
				intact(data[prev:prevEnd])
			}
			c.Records++
			prev = -1
		}
	}
	p := 0
	for p < len(data) {
		end, ok := parseCommand(data, p, false)
		if ok {
			take()
			prev, prevEnd = p, end
			p = end
			continue
		}
		from := p
		if prev >= 0 {
			if q := resync(data, prev+1); q < prevEnd {
				from, prev = prev, -1
			}
		}
		take()
		next := resync(data, p+1)
		c.Damage = append(c.Damage, describeRegion(data, from, next))
		p = next
	}
	take()
	return c
}

// resync finds the first offset at or after from where a whole set or del
// command parses, or len(data).
func resync(data []byte, from int) int {
	for from < len(data) {
		i := bytes.IndexByte(data[from:], '*')
		if i < 0 {
			return len(data)
		}
		q := from + i
		if _, ok := parseCommand(data, q, true); ok {
			return q
		}
		from = q + 1
	}
	return len(data)
}

var (
	setHeader = []byte("\r\n$3\r\nset\r\n")
	delHeader = []byte("\r\n$3\r\ndel\r\n")
)

func describeRegion(data []byte, from, to int) Damage {
	r := data[from:to]
	d := Damage{Offset: int64(from), Length: int64(to - from), Tail: to == len(data)}
	d.Records = bytes.Count(r, setHeader) + bytes.Count(r, delHeader)
	if d.Records == 0 && !allZero(r) {
		d.Records = 1
	}
	return d
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// parseCommand parses the command at data[p:] as buntdb's loader would and
// returns where it ends. strict (used when resyncing) accepts only set and
// del, the commands this store writes.
func parseCommand(data []byte, p int, strict bool) (int, bool) {
	n, p, ok := respNumber(data, p, '*')
	if !ok || n < 1 || n > 5 {
		return 0, false
	}
	var parts [5][]byte
	for i := 0; i < n; i++ {
		var l int
		l, p, ok = respNumber(data, p, '$')
		if !ok || l > len(data)-p-2 {
			return 0, false
		}
		parts[i] = data[p : p+l]
		p += l
		if data[p] != '\r' || data[p+1] != '\n' {
			return 0, false
		}
		p += 2
	}
	verb := bytes.ToLower(parts[0])
	switch {
	case bytes.Equal(verb, []byte("set")):
		if n == 3 {
			return p, len(parts[1]) > 0
		}
		if n != 5 {
			return 0, false
		}
		arg := bytes.ToLower(parts[3])
		if !bytes.Equal(arg, []byte("ex")) && !bytes.Equal(arg, []byte("ae")) {
			return 0, false
		}
		if _, _, ok := digits(parts[4]); !ok {
			return 0, false
		}
		return p, len(parts[1]) > 0
	case bytes.Equal(verb, []byte("del")):
		return p, n == 2 && len(parts[1]) > 0
	case bytes.Equal(verb, []byte("flushdb")):
		return p, n == 1 && !strict
	}
	return 0, false
}

// respNumber reads "<kind><digits>\r\n" at data[p:].
func respNumber(data []byte, p int, kind byte) (n, next int, ok bool) {
	if p >= len(data) || data[p] != kind {
		return 0, 0, false
	}
	p++
	end := bytes.IndexByte(data[p:min(len(data), p+12)], '\r')
	if end < 1 || p+end+1 >= len(data) || data[p+end+1] != '\n' {
		return 0, 0, false
	}
	n, _, ok = digits(data[p : p+end])
	return n, p + end + 2, ok
}

// digits parses a decimal of at most 10 digits.
func digits(b []byte) (int, int, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(b), true
}

// recoverFile checks the log file at path and, when it is damaged, recovers
// it (see above). It returns the check, the damaged copy's name ("" when
// nothing was done) and the offset in the damaged file the copy starts at
// (0 for a whole copy; a torn tail's offset when only the tail was kept).
func recoverFile(path string, now time.Time) (*FileCheck, string, int64, error) {
	data, unmap, err := mapFile(path)
	if os.IsNotExist(err) {
		return &FileCheck{}, "", 0, nil
	}
	if err != nil {
		return nil, "", 0, err
	}
	defer unmap()
	check := scanLog(data, nil)
	if check.Clean() {
		return check, "", 0, nil
	}
	damaged := damagedName(path, now)
	if len(check.Damage) == 1 && check.Damage[0].Tail {
		at := check.Damage[0].Offset
		if err := writeNew(damaged, func(w *errWriter) { w.Write(data[at:]) }); err != nil {
			return nil, "", 0, fmt.Errorf("recovering: keeping the torn tail: %w", err)
		}
		if err := truncateSync(path, at); err != nil {
			return nil, "", 0, fmt.Errorf("recovering: cutting the torn tail: %w", err)
		}
		syncDir(filepath.Dir(path))
		return check, damaged, at, nil
	}

	tmp := path + ".recovering"
	os.Remove(tmp)       // left by a recovery that was cut short
	defer os.Remove(tmp) // gone after the rename; left only by a failure
	if err := writeNew(tmp, func(w *errWriter) { scanLog(data, w.Write) }); err != nil {
		return nil, "", 0, fmt.Errorf("recovering: writing %s: %w", tmp, err)
	}
	// The damaged file keeps its bytes under a new name (a hard link, so no
	// copy), then the fresh file takes the database's name in one rename:
	// a crash at any point leaves the database either damaged or recovered.
	if err := os.Link(path, damaged); err != nil {
		if err := copyFile(path, damaged); err != nil {
			return nil, "", 0, fmt.Errorf("recovering: keeping the damaged file: %w", err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, "", 0, fmt.Errorf("recovering: %w", err)
	}
	syncDir(filepath.Dir(path))
	return check, damaged, 0, nil
}

// writeNew creates the file name (which must not exist), fills it and
// syncs it.
func writeNew(name string, fill func(*errWriter)) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := &errWriter{w: f}
	fill(w)
	if w.err == nil {
		w.err = f.Sync()
	}
	if err := f.Close(); w.err == nil {
		w.err = err
	}
	if w.err != nil {
		os.Remove(name)
	}
	return w.err
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// damagedName is <path>.damaged-<UTC time>, with a counter when taken.
func damagedName(path string, now time.Time) string {
	base := path + ".damaged-" + now.UTC().Format("20060102T150405Z")
	name := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(name); os.IsNotExist(err) {
			return name
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(to)
	}
	return err
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
