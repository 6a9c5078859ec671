package histfile

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"unsafe"
)

const (
	// histMagic starts every history file.
	histMagic = "FPHIST01"
	// histExt is the history files' name extension.
	histExt = ".fph"
	// Rows is the number of rows a history file holds (a table's chunk).
	Rows = 1 << 16
	// Align is the alignment of every section and block in the body.
	Align = 64
	// page is the alignment of the body in the file.
	page = 4096
	// headerMax bounds the header a damaged file can make us read.
	headerMax = 64 << 20
)

// ErrDamaged is wrapped by every error about a file's contents.
var ErrDamaged = errors.New("store: damaged history file")

// Header is a history file's table of contents (JSON, at its start).
type Header struct {
	Site     string      `json:"site"`
	Chunk    int         `json:"chunk"`
	Rows     int         `json:"rows"`
	Sections []Section   `json:"sections"`
	Dicts    []DictRange `json:"dicts"`
	Blocks   []BlockMeta `json:"blocks"`
	// Journal are the rows of the journal's events, in order.
	Journal []int32 `json:"journal,omitempty"`
	// Body is the length of the body and BodyCRC its CRC-32 (IEEE).
	Body    int64  `json:"body"`
	BodyCRC uint32 `json:"body_crc"`
}

// Section is a byte range of the body; W is the width of a code column
// (0, 1, 2 or 4 bytes a row; 0 means every code is 0 and the range empty).
type Section struct {
	Name string `json:"name"`
	Off  int64  `json:"off"`
	Len  int64  `json:"len"`
	W    uint8  `json:"w,omitempty"`
}

// DictRange says that section "d:<Col>" holds the strings of codes
// [From, To) of a dictionary.
type DictRange struct {
	Col  string `json:"col"`
	From uint32 `json:"from"`
	To   uint32 `json:"to"`
}

// BlockMeta is one event block: rows [First, First+N), Skips deleted
// (offsets from First), stored at [Off, Off+Size) of the body; Size 0 when
// every event of it was deleted.
type BlockMeta struct {
	First int     `json:"first"`
	N     int     `json:"n"`
	Skips []int32 `json:"skips,omitempty"`
	Off   int64   `json:"off"`
	Size  int64   `json:"size"`
}

// Name is the file name of history file id.
func Name(id uint64) string { return fmt.Sprintf("%016x%s", id, histExt) }

// ---- writing ----

// Writer builds a history file in memory: the caller fills Header's site,
// chunk, rows, dictionaries and journal rows; Section and Block fill the
// rest.
type Writer struct {
	Header Header
	body   []byte
}

// Grow makes room for n more bytes of body, so that a body of a known
// likely size is not grown by copying.
func (w *Writer) Grow(n int) {
	if cap(w.body)-len(w.body) < n {
		nb := make([]byte, len(w.body), len(w.body)+n)
		copy(nb, w.body)
		w.body = nb
	}
}

// Section appends b as section name at the next aligned offset of the
// body; width is a code column's bytes a row (0 otherwise).
func (w *Writer) Section(name string, width uint8, b []byte) {
	for len(w.body)%Align != 0 {
		w.body = append(w.body, 0)
	}
	w.Header.Sections = append(w.Header.Sections, Section{Name: name, Off: int64(len(w.body)), Len: int64(len(b)), W: width})
	w.body = append(w.body, b...)
}

// Block appends an event block's value at the next aligned offset of the
// body and lists it under meta (whose Off and Size it sets).
func (w *Writer) Block(meta BlockMeta, val string) {
	for len(w.body)%Align != 0 {
		w.body = append(w.body, 0)
	}
	meta.Off, meta.Size = int64(len(w.body)), int64(len(val))
	w.body = append(w.body, val...)
	w.Header.Blocks = append(w.Header.Blocks, meta)
}

// Parts returns the file as its head (magic, header, padding) and its
// body, to be written one after the other: the body, megabytes, is not
// copied again.
func (w *Writer) Parts() (head, body []byte) {
	w.Header.Body = int64(len(w.body))
	w.Header.BodyCRC = crc32.ChecksumIEEE(w.body)
	hj, _ := json.Marshal(&w.Header)
	return frameHead(histMagic, hj), w.body
}

// frameHead lays out the head of a history or recording file: the magic,
// the header's length and the header, padded to the page boundary where
// the body starts.
func frameHead(magic string, header []byte) []byte {
	out := make([]byte, alignUp(16+len(header), page))
	copy(out, magic)
	binary.LittleEndian.PutUint64(out[8:], uint64(len(header)))
	copy(out[16:], header)
	return out
}

// unframe parses what frameHead laid out into hdr (JSON) and returns the
// body, which must be bodyLen(hdr) bytes.
func unframe(data []byte, magic string, hdr any, bodyLen func() int64) ([]byte, error) {
	if len(data) < 16 || string(data[:8]) != magic {
		return nil, fmt.Errorf("%w: not a %s file", ErrDamaged, magic)
	}
	hl := binary.LittleEndian.Uint64(data[8:])
	if hl > headerMax || int(hl) > len(data)-16 {
		return nil, fmt.Errorf("%w: header length", ErrDamaged)
	}
	if err := json.Unmarshal(data[16:16+hl], hdr); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	start := alignUp(16+int(hl), page)
	if start > len(data) || int64(len(data)-start) != bodyLen() {
		return nil, fmt.Errorf("%w: body is %d bytes, header says %d", ErrDamaged, len(data)-min(start, len(data)), bodyLen())
	}
	return data[start:], nil
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }

// WriteFileAtomic writes head and body to path through a temporary file,
// fsynced and renamed, and syncs the directory. crash, which tests set to
// kill the process, is called at "write" (half the body written) and at
// "rename".
func WriteFileAtomic(path string, head, body []byte, crash func(string)) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	half := len(body) / 2
	if _, err = f.Write(head); err == nil {
		_, err = f.Write(body[:half])
	}
	if err == nil {
		crash("write")
		_, err = f.Write(body[half:])
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	crash("rename")
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// ---- reading ----

// File is an open (mapped) history file. A File with only ID, Path and
// Header set stands for a file that could not be read; its sections are
// empty.
type File struct {
	ID     uint64
	Path   string
	Header Header
	data   []byte // the whole file
	body   []byte // data after the header
	secs   map[string]Section
}

// Open maps the file at path and checks its header (not the body's
// checksum: see Check).
func Open(id uint64, path string) (*File, error) {
	data, err := mapPrivate(path)
	if err != nil {
		return nil, err
	}
	hf := &File{ID: id, Path: path, data: data}
	if err := hf.parse(); err != nil {
		unmapFile(data)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return hf, nil
}

// Close unmaps the file; nothing read from it may be used after.
func (hf *File) Close() { unmapFile(hf.data) }

// Bytes is the whole file as mapped.
func (hf *File) Bytes() []byte { return hf.data }

func (hf *File) parse() error {
	body, err := unframe(hf.data, histMagic, &hf.Header, func() int64 { return hf.Header.Body })
	if err != nil {
		return err
	}
	hf.body = body
	hf.secs = make(map[string]Section, len(hf.Header.Sections))
	for _, s := range hf.Header.Sections {
		if s.Off < 0 || s.Len < 0 || s.Off+s.Len > int64(len(hf.body)) || s.Off%Align != 0 {
			return fmt.Errorf("%w: section %s out of range", ErrDamaged, s.Name)
		}
		hf.secs[s.Name] = s
	}
	for _, b := range hf.Header.Blocks {
		if b.Off < 0 || b.Size < 0 || b.Off+b.Size > int64(len(hf.body)) {
			return fmt.Errorf("%w: block at row %d out of range", ErrDamaged, b.First)
		}
	}
	if hf.Header.Rows != Rows {
		return fmt.Errorf("%w: %d rows", ErrDamaged, hf.Header.Rows)
	}
	need := map[string]int64{"ts": 8 * Rows, "uuid": 16 * Rows, "did": 4 * Rows, "server": Rows / 8, "hidden": Rows / 8}
	for name, n := range need {
		if hf.secs[name].Len != n {
			return fmt.Errorf("%w: section %s is %d bytes", ErrDamaged, name, hf.secs[name].Len)
		}
	}
	return nil
}

// Check verifies the body's checksum (verify; not at every start).
func (hf *File) Check() error {
	if crc32.ChecksumIEEE(hf.body) != hf.Header.BodyCRC {
		return fmt.Errorf("%w: %s: checksum mismatch", ErrDamaged, hf.Path)
	}
	return nil
}

// Section returns section name (a view into the mapping), nil when the
// file has none.
func (hf *File) Section(name string) []byte {
	s, ok := hf.secs[name]
	if !ok {
		return nil
	}
	return hf.body[s.Off : s.Off+s.Len]
}

// Column returns code column name: its width (0, 1, 2 or 4 bytes a row)
// and its Rows codes (a view into the mapping; nil at width 0). ok is
// false when the file has no such section (a column it predates: all
// zero). A section of the wrong length or width is an error, returned
// with the width.
func (hf *File) Column(name string) (w uint8, b []byte, ok bool, err error) {
	s, ok := hf.secs[name]
	if !ok {
		return 0, nil, false, nil
	}
	b = hf.body[s.Off : s.Off+s.Len]
	if int64(s.W)*Rows != s.Len {
		return s.W, nil, true, fmt.Errorf("%w: column %s is %d bytes at width %d", ErrDamaged, name, s.Len, s.W)
	}
	switch s.W {
	case 0:
		return 0, nil, true, nil
	case 1, 2, 4:
		return s.W, b, true, nil
	}
	return s.W, nil, true, fmt.Errorf("%w: width %d", ErrDamaged, s.W)
}

// DictStrings returns the strings of dictionary col's section, in code
// order (see Header.Dicts for their codes).
func (hf *File) DictStrings(col string) ([]string, error) {
	// One copy of the section, which the strings share: one allocation
	// instead of one a string (millions of session ids at start).
	all := string(hf.Section("d:" + col))
	var out []string
	for i := 0; i < len(all); {
		l, n := binary.Uvarint([]byte(all[i:min(i+binary.MaxVarintLen64, len(all))]))
		if n <= 0 || l > uint64(len(all)-i-n) {
			return nil, fmt.Errorf("%w: dictionary %s", ErrDamaged, col)
		}
		out = append(out, all[i+n:i+n+int(l)])
		i += n + int(l)
	}
	return out, nil
}

// DictBytes encodes strs as a dictionary section, with the strings for
// which blank (if set) is true stored empty.
func DictBytes(strs []string, blank func(i int) bool) []byte {
	var b []byte
	for i, s := range strs {
		if blank != nil && blank(i) {
			s = ""
		}
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// BlockValue returns block i's stored value (a view into the mapping), ""
// when every event of it was deleted.
func (hf *File) BlockValue(i int) string {
	b := hf.Header.Blocks[i]
	if b.Size == 0 {
		return ""
	}
	return unsafe.String(&hf.body[b.Off], int(b.Size))
}

// ---- memory views ----

// AsBytes is s's memory as bytes (no copy).
func AsBytes[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*sizeOf[T]())
}

// AsSlice is b's memory as a slice of T (no copy); b must be aligned for T,
// as every section is.
func AsSlice[T any](b []byte) []T {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/sizeOf[T]())
}

func sizeOf[T any]() int {
	var z T
	return int(unsafe.Sizeof(z))
}
