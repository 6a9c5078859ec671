package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/firstpartyhq/firstparty/store/histfile"
)

// This is a minimal, read-only reader of the buntdb log for `caddy
// analytics verify`: it walks every command of the append-only file
// (RESP arrays of bulk strings: set, del, flushdb), decodes every event
// block it sets, and reports where the file is damaged, by byte offset.
// It never writes. (The recovery code of the store parses the same format
// to salvage records; the two may share a parser.)

// VerifyDamage is one damaged place verify found in a log file.
type VerifyDamage struct {
	// Offset is the byte offset of the damaged command's first byte.
	Offset int64
	// Msg says what is wrong.
	Msg string
}

func (d VerifyDamage) String() string { return fmt.Sprintf("offset %d: %s", d.Offset, d.Msg) }

// VerifyReport is what VerifyFile found.
type VerifyReport struct {
	Size     int64 // file size in bytes
	Commands int   // log commands read
	Keys     int   // keys live at the end
	Blocks   int   // live event blocks
	Events   int   // events in the live blocks, the log's and the history files'
	// HistoryFiles are the history and recording files the log lists,
	// each read whole and checked against its checksum.
	HistoryFiles int
	HistoryBytes int64
	Damage       []VerifyDamage
}

// OK reports whether nothing is damaged.
func (r *VerifyReport) OK() bool { return len(r.Damage) == 0 }

// maxVerifyDamage bounds the damage list of a badly broken file.
const maxVerifyDamage = 100

// VerifyFile reads the log at path. An error means the file could not be
// read at all; damage is in the report. After a damaged command the reader
// looks for the next command start ("*" at a line start) and goes on, so
// that every damaged place is reported, not only the first.
func VerifyFile(path string) (*VerifyReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{Size: st.Size()}
	v := &logVerifier{r: bufio.NewReaderSize(f, 1<<20), rep: rep, blocks: map[string]int{}, keys: map[string]struct{}{}}
	v.run()
	rep.Keys = len(v.keys)
	for _, n := range v.blocks {
		rep.Blocks++
		rep.Events += n
	}
	v.verifyFiles(HistoryDir(path))
	return rep, nil
}

// verifyFiles reads every history and recording file the log lists.
func (v *logVerifier) verifyFiles(dir string) {
	keys := make([]string, 0, len(v.listed))
	for k := range v.listed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		val := v.listed[k]
		name := val
		if strings.HasPrefix(k, histListKey) {
			var l histListing
			if err := json.Unmarshal([]byte(val), &l); err != nil {
				v.damage(-1, fmt.Sprintf("history listing %s: %v", k, err))
				continue
			}
			name = l.File
		}
		path := filepath.Join(dir, name)
		v.rep.HistoryFiles++
		if strings.HasSuffix(name, histfile.RecExt) {
			rf, err := histfile.OpenRec(0, path)
			if err != nil {
				v.damage(-1, fmt.Sprintf("recording file %s: %v", name, err))
				continue
			}
			v.rep.HistoryBytes += int64(len(rf.Bytes()))
			if err := rf.Check(); err != nil {
				v.damage(-1, fmt.Sprintf("recording file %s: checksum mismatch", name))
			}
			rf.Close()
			continue
		}
		hf, err := histfile.Open(0, path)
		if err != nil {
			v.damage(-1, fmt.Sprintf("history file %s: %v", name, err))
			continue
		}
		v.rep.HistoryBytes += int64(len(hf.Bytes()))
		if err := hf.Check(); err != nil {
			v.damage(-1, fmt.Sprintf("history file %s: checksum mismatch", name))
		} else {
			for _, b := range hf.Header.Blocks {
				if b.Size > 0 {
					v.rep.Blocks++
					v.rep.Events += b.N - len(b.Skips)
				}
			}
		}
		hf.Close()
	}
}

type logVerifier struct {
	listed map[string]string // history and recording file listings
	r      *bufio.Reader
	off    int64
	rep    *VerifyReport
	keys   map[string]struct{}
	blocks map[string]int // live block key → events
}

var errTorn = errors.New("torn record: the file ends inside it")

func (v *logVerifier) damage(off int64, msg string) {
	if len(v.rep.Damage) < maxVerifyDamage {
		v.rep.Damage = append(v.rep.Damage, VerifyDamage{off, msg})
	}
}

func (v *logVerifier) readLine() (string, error) {
	line, err := v.r.ReadString('\n')
	v.off += int64(len(line))
	if err == io.EOF {
		if line == "" {
			return "", io.EOF
		}
		return "", errTorn
	}
	if err != nil {
		return "", err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return "", errors.New("line without CRLF")
	}
	return line[:len(line)-2], nil
}

func (v *logVerifier) run() {
	for {
		c, err := v.r.ReadByte()
		if err == io.EOF {
			return
		}
		if err != nil {
			v.damage(v.off, err.Error())
			return
		}
		if c == 0 { // buntdb skips NUL bytes
			v.off++
			continue
		}
		v.r.UnreadByte()
		start := v.off
		parts, err := v.command()
		if err != nil {
			if err == io.EOF {
				err = errTorn
			}
			v.damage(start, err.Error())
			if err == errTorn || !v.resync() {
				return
			}
			continue
		}
		v.rep.Commands++
		v.apply(start, parts)
	}
}

// command reads one RESP array of bulk strings.
func (v *logVerifier) command() ([]string, error) {
	line, err := v.readLine()
	if err != nil {
		return nil, err
	}
	if len(line) < 2 || line[0] != '*' {
		return nil, fmt.Errorf("want a command (*n), found %q", clip(line))
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 1 || n > 16 {
		return nil, fmt.Errorf("bad part count %q", clip(line))
	}
	parts := make([]string, 0, n)
	for i := 0; i < n; i++ {
		line, err := v.readLine()
		if err != nil {
			return nil, err
		}
		if len(line) < 2 || line[0] != '$' {
			return nil, fmt.Errorf("want a bulk string ($len), found %q", clip(line))
		}
		l, err := strconv.ParseInt(line[1:], 10, 64)
		if err != nil || l < 0 || l > 1<<31 {
			return nil, fmt.Errorf("bad length %q", clip(line))
		}
		buf := make([]byte, l+2)
		m, err := io.ReadFull(v.r, buf)
		v.off += int64(m)
		if err != nil {
			return nil, errTorn
		}
		if buf[l] != '\r' || buf[l+1] != '\n' {
			return nil, fmt.Errorf("bulk string of %d bytes not followed by CRLF", l)
		}
		parts = append(parts, string(buf[:l]))
	}
	return parts, nil
}

// resync skips to the next line that starts a command.
func (v *logVerifier) resync() bool {
	for {
		b, err := v.r.Peek(1)
		if err != nil {
			return false
		}
		if b[0] == '*' {
			return true
		}
		line, err := v.r.ReadString('\n')
		v.off += int64(len(line))
		if err != nil {
			return false
		}
	}
}

func (v *logVerifier) apply(off int64, parts []string) {
	switch strings.ToLower(parts[0]) {
	case "set":
		if len(parts) != 3 && len(parts) != 5 {
			v.damage(off, fmt.Sprintf("set with %d parts", len(parts)))
			return
		}
		key, val := parts[1], parts[2]
		v.keys[key] = struct{}{}
		if strings.HasPrefix(key, histListKey) || strings.HasPrefix(key, recListKey) {
			if v.listed == nil {
				v.listed = map[string]string{}
			}
			v.listed[key] = val
		}
		delete(v.blocks, key)
		if _, ok := parseBlockKey(key); ok {
			d, err := decodeBlock(val)
			if err != nil {
				v.damage(off, fmt.Sprintf("event block %s: %v", key, err))
				return
			}
			v.blocks[key] = len(d.events)
		}
	case "del":
		if len(parts) != 2 {
			v.damage(off, fmt.Sprintf("del with %d parts", len(parts)))
			return
		}
		delete(v.keys, parts[1])
		delete(v.blocks, parts[1])
		delete(v.listed, parts[1])
	case "flushdb":
		clear(v.listed)
		clear(v.keys)
		clear(v.blocks)
	default:
		v.damage(off, fmt.Sprintf("unknown command %q", clip(parts[0])))
	}
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
