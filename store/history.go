package store

// The history files. The log (buntdb) holds recent events; once a table has
// a whole chunk of rows (chunkSize) and HistoryAfter more after it, the
// chunk leaves the log for one immutable file on disk that holds
// everything the table keeps of those rows: the column arrays exactly as
// they sit in memory, the dictionary strings first coded while they were
// recent, the events' compressed blocks, and the person-changing events
// (the journal) so that persons come back at start without decoding a
// single block. The file is mapped (MAP_PRIVATE): its pages are page cache,
// not process memory, and the table's chunk arrays point into it.
//
// Moving is crash-safe at every step: the file is written under a
// temporary name, fsynced and renamed; then one buntdb transaction lists it
// (key hf:<id>) and deletes the blocks it holds. At start, files the log
// does not list are removed. Rewriting (retention, person deletion) writes
// a new file with a new id the same way and lists it in place of the old
// one, which is removed after. docs/storage.md describes the format.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/tidwall/buntdb"
)

const (
	histMagic   = "FPHIST01"
	histListKey = "hf:" // + 16 hex digits of the file id
	histSeqKey  = "meta:hist-seq"
	histIDKey   = "meta:hist-id"
	histExt     = ".fph"
	histAlign   = 64
	histPage    = 4096
	// histHeaderMax bounds the header a damaged file can make us read.
	histHeaderMax = 64 << 20
)

// histHeader is a history file's table of contents (JSON, at its start).
type histHeader struct {
	Site     string          `json:"site"`
	Chunk    int             `json:"chunk"`
	Rows     int             `json:"rows"`
	Sections []histSection   `json:"sections"`
	Dicts    []histDictRange `json:"dicts"`
	Blocks   []histBlockMeta `json:"blocks"`
	// Journal are the rows of the journal's events, in order.
	Journal []int32 `json:"journal,omitempty"`
	// Body is the length of the body and BodyCRC its CRC-32 (IEEE).
	Body    int64  `json:"body"`
	BodyCRC uint32 `json:"body_crc"`
}

// histSection is a byte range of the body; W is the width of a code column
// (0, 1, 2 or 4 bytes a row; 0 means every code is 0 and the range empty).
type histSection struct {
	Name string `json:"name"`
	Off  int64  `json:"off"`
	Len  int64  `json:"len"`
	W    uint8  `json:"w,omitempty"`
}

// histDictRange says that section "d:<Col>" holds the strings of codes
// [From, To) of a dictionary.
type histDictRange struct {
	Col  string `json:"col"`
	From uint32 `json:"from"`
	To   uint32 `json:"to"`
}

// histBlockMeta is one event block: rows [First, First+N), Skips deleted
// (offsets from First), stored at [Off, Off+Size) of the body; Size 0 when
// every event of it was deleted.
type histBlockMeta struct {
	First int     `json:"first"`
	N     int     `json:"n"`
	Skips []int32 `json:"skips,omitempty"`
	Off   int64   `json:"off"`
	Size  int64   `json:"size"`
}

// histFile is an open (mapped) history file.
type histFile struct {
	id   uint64
	path string
	data []byte // the whole file
	body []byte // data after the header
	hdr  histHeader
	secs map[string]histSection
}

// histListing is the value of a hf: key.
type histListing struct {
	Site  string `json:"site"`
	Chunk int    `json:"chunk"`
	File  string `json:"file"`
	Size  int64  `json:"size"`
}

// histState is the DB's part: the open files by id.
type histState struct {
	mu    sync.RWMutex
	files map[uint64]*histFile
	dir   string // "" when history is off (":memory:" or NoHistory)
	// recs are the recording files (recfiles.go) by id, recNames their
	// names as listed at start; recLife is held (read) while a recording is
	// read from them, and (write) while one is unmapped.
	recs     map[uint64]*recFile
	recNames map[uint64]string
	// lost are the history files that could not be read at start.
	lost    []string
	recLife sync.RWMutex
	// crash, set by tests, is called at the named points of a move or a
	// rewrite.
	crash func(point string)
}

func (h *histState) prefixed(p string) func(string) {
	return func(point string) { h.at(p + point) }
}

func (h *histState) at(point string) {
	if h.crash != nil {
		h.crash(point)
	}
}

// HistoryDir is the directory of a database's history files.
func HistoryDir(dbPath string) string { return dbPath + ".history" }

func histName(id uint64) string { return fmt.Sprintf("%016x%s", id, histExt) }

func histKey(id uint64) string { return fmt.Sprintf("%s%016x", histListKey, id) }

// blockKeyIn is the key blockRefs use for block i of history file id.
func blockKeyIn(id uint64, i int) string {
	return "h:" + strconv.FormatUint(id, 16) + ":" + strconv.Itoa(i)
}

func parseHistBlockKey(k string) (id uint64, i int, ok bool) {
	rest, found := strings.CutPrefix(k, "h:")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rest, ":")
	if !found {
		return 0, 0, false
	}
	id, err1 := strconv.ParseUint(a, 16, 64)
	i, err2 := strconv.Atoi(b)
	return id, i, err1 == nil && err2 == nil
}

func isHistKey(k string) bool { return strings.HasPrefix(k, "h:") }

// ---- writing ----

// histWriter builds a file in memory.
type histWriter struct {
	hdr  histHeader
	body []byte
}

func (w *histWriter) section(name string, width uint8, b []byte) {
	for len(w.body)%histAlign != 0 {
		w.body = append(w.body, 0)
	}
	w.hdr.Sections = append(w.hdr.Sections, histSection{Name: name, Off: int64(len(w.body)), Len: int64(len(b)), W: width})
	w.body = append(w.body, b...)
}

// parts returns the file as its head (see frame) and its body, written
// one after the other: the body, megabytes, is not copied again.
func (w *histWriter) parts() (head, body []byte) {
	w.hdr.Body = int64(len(w.body))
	w.hdr.BodyCRC = crc32.ChecksumIEEE(w.body)
	hj, _ := json.Marshal(&w.hdr)
	return frameHead(histMagic, hj), w.body
}

// block appends an event block's value at the next aligned offset of the
// body and lists it under meta.
func (w *histWriter) block(meta histBlockMeta, val string) {
	for len(w.body)%histAlign != 0 {
		w.body = append(w.body, 0)
	}
	meta.Off, meta.Size = int64(len(w.body)), int64(len(val))
	w.body = append(w.body, val...)
	w.hdr.Blocks = append(w.hdr.Blocks, meta)
}

// frameHead lays out the head of a history or recording file: the magic,
// the header's length and the header, padded to the page boundary where
// the body starts.
func frameHead(magic string, header []byte) []byte {
	out := make([]byte, alignUp(16+len(header), histPage))
	copy(out, magic)
	binary.LittleEndian.PutUint64(out[8:], uint64(len(header)))
	copy(out[16:], header)
	return out
}

// unframe parses what frame laid out into hdr (JSON) and returns the body,
// which must be bodyLen(hdr) bytes.
func unframe(data []byte, magic string, hdr any, bodyLen func() int64) ([]byte, error) {
	if len(data) < 16 || string(data[:8]) != magic {
		return nil, fmt.Errorf("%w: not a %s file", errBadHist, magic)
	}
	hl := binary.LittleEndian.Uint64(data[8:])
	if hl > histHeaderMax || int(hl) > len(data)-16 {
		return nil, fmt.Errorf("%w: header length", errBadHist)
	}
	if err := json.Unmarshal(data[16:16+hl], hdr); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadHist, err)
	}
	start := alignUp(16+int(hl), histPage)
	if start > len(data) || int64(len(data)-start) != bodyLen() {
		return nil, fmt.Errorf("%w: body is %d bytes, header says %d", errBadHist, len(data)-min(start, len(data)), bodyLen())
	}
	return data[start:], nil
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }

func asBytes[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*elemSize[T]())
}

func asSlice[T any](b []byte) []T {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/elemSize[T]())
}

// codeBytes returns chunk ch's codes as stored (width ch.w), with the rows
// in zero set to 0, as a fresh array.
func codeBytes(ch *codeChunk, n int, zero []int) (uint8, []byte) {
	w := ch.w
	if w == 0 {
		return 0, nil
	}
	var b []byte
	switch w {
	case 1:
		b = slices.Clone(ch.b8[:n])
	case 2:
		b = slices.Clone(asBytes(ch.b16[:n]))
	case 4:
		b = slices.Clone(asBytes(ch.b32[:n]))
	}
	for _, off := range zero {
		for i := 0; i < int(w); i++ {
			b[off*int(w)+i] = 0
		}
	}
	return w, b
}

func dictBytes(strs []string, blank func(i int) bool) []byte {
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

// histImage is what a history file of a chunk holds, gathered under the
// table's read lock.
type histImage struct {
	w      histWriter
	blocks [][]byte // values, by block
}

// dictsOf lists the table's persisted dictionaries by name.
func (t *table) dictsOf() []struct {
	name string
	d    *dict
} {
	out := []struct {
		name string
		d    *dict
	}{{"did", t.dids}, {"name", t.name.dict}}
	for _, k := range indexedProps {
		if c := t.colByKey[k]; c != nil {
			out = append(out, struct {
				name string
				d    *dict
			}{"c:" + k, c.dict})
		}
	}
	return out
}

// image writes chunk ci's columns into w, with the rows of drop marked
// deleted and the properties of strip cleared; dict ranges are from..to
// per dictionary. The caller holds t.mu (read).
func (t *table) image(w *histWriter, ci int, drop []int, strip map[int]string, ranges []histDictRange, blank func(col string, code uint32) bool) {
	base := ci << chunkBits
	w.hdr.Site, w.hdr.Chunk, w.hdr.Rows = t.site, ci, chunkSize
	ts := slices.Clone(t.ts.chunk(ci)[:chunkSize])
	for _, row := range drop {
		ts[row-base] = deletedTime
	}
	w.section("ts", 8, asBytes(ts))
	w.section("uuid", 16, slices.Clone(asBytes(t.keys.chunk(ci)[:chunkSize])))
	w.section("did", 4, slices.Clone(asBytes(t.did.chunk(ci)[:chunkSize])))
	wd, b := codeBytes(&t.name.chunks[ci], chunkSize, nil)
	w.section("name", wd, b)
	for _, k := range indexedProps {
		c := t.colByKey[k]
		var zero []int
		for row, key := range strip {
			if key == k {
				zero = append(zero, row-base)
			}
		}
		wd, b := codeBytes(&c.chunks[ci], chunkSize, zero)
		w.section("c:"+k, wd, b)
	}
	words := chunkSize / 64
	lo := ci * words
	server := make([]uint64, words)
	hidden := make([]uint64, words)
	if lo < len(t.loads.server) {
		copy(server, t.loads.server[lo:])
	}
	if lo < len(t.loads.hidden) {
		copy(hidden, t.loads.hidden[lo:])
	}
	w.section("server", 0, asBytes(server))
	w.section("hidden", 0, asBytes(hidden))
	dicts := t.dictsOf()
	for _, r := range ranges {
		for _, d := range dicts {
			if d.name != r.Col {
				continue
			}
			var bl func(i int) bool
			if blank != nil {
				col := r.Col
				bl = func(i int) bool { return blank(col, r.From+uint32(i)) }
			}
			w.section("d:"+r.Col, 0, dictBytes(d.d.strs[r.From:r.To], bl))
		}
	}
	w.hdr.Dicts = ranges
}

// writeFileAtomic writes b to path through a temporary file, fsynced and
// renamed, and syncs the directory.
func writeFileAtomic(path string, head, body []byte, crash func(string)) error {
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

// nextHistID returns a new file id (persisted in the same transaction
// that lists the file).
func (s *DB) nextHistID() (uint64, error) {
	var id uint64
	err := s.db.View(func(tx *buntdb.Tx) error {
		v, err := tx.Get(histIDKey)
		if err == buntdb.ErrNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		id, err = strconv.ParseUint(v, 10, 64)
		return err
	})
	return id + 1, err
}

// ---- reading ----

var errBadHist = errors.New("store: damaged history file")

// openHist maps the file at path and checks its header.
func openHist(id uint64, path string) (*histFile, error) {
	data, err := mapPrivate(path)
	if err != nil {
		return nil, err
	}
	hf := &histFile{id: id, path: path, data: data}
	if err := hf.parse(); err != nil {
		unmapFile(data)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return hf, nil
}

func (hf *histFile) parse() error {
	body, err := unframe(hf.data, histMagic, &hf.hdr, func() int64 { return hf.hdr.Body })
	if err != nil {
		return err
	}
	hf.body = body
	hf.secs = make(map[string]histSection, len(hf.hdr.Sections))
	for _, s := range hf.hdr.Sections {
		if s.Off < 0 || s.Len < 0 || s.Off+s.Len > int64(len(hf.body)) || s.Off%histAlign != 0 {
			return fmt.Errorf("%w: section %s out of range", errBadHist, s.Name)
		}
		hf.secs[s.Name] = s
	}
	for _, b := range hf.hdr.Blocks {
		if b.Off < 0 || b.Size < 0 || b.Off+b.Size > int64(len(hf.body)) {
			return fmt.Errorf("%w: block at row %d out of range", errBadHist, b.First)
		}
	}
	if hf.hdr.Rows != chunkSize {
		return fmt.Errorf("%w: %d rows", errBadHist, hf.hdr.Rows)
	}
	need := map[string]int64{"ts": 8 * chunkSize, "uuid": 16 * chunkSize, "did": 4 * chunkSize, "server": chunkSize / 8, "hidden": chunkSize / 8}
	for name, n := range need {
		if hf.secs[name].Len != n {
			return fmt.Errorf("%w: section %s is %d bytes", errBadHist, name, hf.secs[name].Len)
		}
	}
	return nil
}

// check verifies the body's checksum (verify; not at every start).
func (hf *histFile) check() error {
	if crc32.ChecksumIEEE(hf.body) != hf.hdr.BodyCRC {
		return fmt.Errorf("%w: %s: checksum mismatch", errBadHist, hf.path)
	}
	return nil
}

func (hf *histFile) sec(name string) []byte {
	s, ok := hf.secs[name]
	if !ok {
		return nil
	}
	return hf.body[s.Off : s.Off+s.Len]
}

// codeChunkOf returns the mapped code chunk of section name.
func (hf *histFile) codeChunkOf(name string) (codeChunk, error) {
	s, ok := hf.secs[name]
	if !ok {
		return codeChunk{n: chunkSize}, nil // a column the file predates: all zero
	}
	b := hf.body[s.Off : s.Off+s.Len]
	ch := codeChunk{w: s.W, n: chunkSize, mapped: true}
	if int64(s.W)*chunkSize != s.Len {
		return ch, fmt.Errorf("%w: column %s is %d bytes at width %d", errBadHist, name, s.Len, s.W)
	}
	switch s.W {
	case 0:
	case 1:
		ch.b8 = b
	case 2:
		ch.b16 = asSlice[uint16](b)
	case 4:
		ch.b32 = asSlice[uint32](b)
	default:
		return ch, fmt.Errorf("%w: width %d", errBadHist, s.W)
	}
	return ch, nil
}

func (hf *histFile) dictStrings(col string) ([]string, error) {
	// One copy of the section, which the strings share: one allocation
	// instead of one a string (millions of session ids at start).
	all := string(hf.sec("d:" + col))
	var out []string
	for i := 0; i < len(all); {
		l, n := binary.Uvarint([]byte(all[i:min(i+binary.MaxVarintLen64, len(all))]))
		if n <= 0 || l > uint64(len(all)-i-n) {
			return nil, fmt.Errorf("%w: dictionary %s", errBadHist, col)
		}
		out = append(out, all[i+n:i+n+int(l)])
		i += n + int(l)
	}
	return out, nil
}

// blockValue returns block i's stored value (a view into the mapping).
func (hf *histFile) blockValue(i int) string {
	b := hf.hdr.Blocks[i]
	if b.Size == 0 {
		return ""
	}
	return unsafe.String(&hf.body[b.Off], int(b.Size))
}

// journal decodes the file's person-changing events.
func (hf *histFile) journal() (*decodedBlock, error) {
	b := hf.sec("journal")
	if len(b) == 0 {
		return nil, nil
	}
	d, err := decodeBlock(string(b))
	if err != nil {
		return nil, err
	}
	if len(d.events) != len(hf.hdr.Journal) {
		return nil, fmt.Errorf("%w: journal holds %d events for %d rows", errBadHist, len(d.events), len(hf.hdr.Journal))
	}
	return d, nil
}

func (h *histState) file(id uint64) *histFile {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.files[id]
}

// readHistBlock decodes block key of a history file.
func (s *DB) readHistBlock(key string) (*decodedBlock, error) {
	id, i, ok := parseHistBlockKey(key)
	if !ok {
		return nil, fmt.Errorf("bad block key %q", key)
	}
	hf := s.hist.file(id)
	if hf == nil || i >= len(hf.hdr.Blocks) {
		return nil, fmt.Errorf("history block %s: no such file or block", key)
	}
	v := hf.blockValue(i)
	if v == "" || v[2]&flagZstd == 0 {
		return nil, fmt.Errorf("history block %s: not a compressed block", key)
	}
	return decodeBlock(v)
}

// ---- the table's side ----

// journalEntry is a person-changing event of a row still in the log.
type journalEntry struct {
	row int32
	ev  *Event
}

// personKeys are the properties that change persons.
var personKeys = []string{"alias", "$anon_distinct_id", "$set", "$set_once", "$unset"}

// personPart returns what of ev changes persons, copied, or nil.
func personPart(ev *Event) *Event {
	link := ev.Name == "$identify" || ev.Name == "$create_alias"
	var props Props
	for i := range ev.Props {
		p := &ev.Props[i]
		switch p.Key {
		case "$set", "$set_once", "$unset":
			props = append(props, Prop{Key: p.Key, Val: p.Val.clone()})
		case "alias", "$anon_distinct_id":
			if link {
				props = append(props, Prop{Key: p.Key, Val: p.Val.clone()})
			}
		}
	}
	if !link && props == nil {
		return nil
	}
	return &Event{UUID: ev.UUID, Site: ev.Site, Name: strings.Clone(ev.Name), DistinctID: strings.Clone(ev.DistinctID), Time: ev.Time, Props: props}
}

// tableHist is a table's history state.
type tableHist struct {
	on    bool
	files []*histFile // by chunk
	// upTo is, per dictionary, how many of its codes the files hold.
	upTo    map[string]uint32
	journal []journalEntry // of rows in the log
}

// mapChunk makes chunk ci of every persisted column a view of hf (appending
// it when ci is the next chunk). The caller holds t.mu (write).
func (t *table) mapChunk(ci int, hf *histFile) error {
	appendNew := ci == t.ts.numChunks()
	if !appendNew && ci >= t.ts.numChunks() {
		return fmt.Errorf("history file %s is for chunk %d; the table has %d", hf.path, ci, t.ts.numChunks())
	}
	ts := asSlice[int64](hf.sec("ts"))
	keys := asSlice[UUIDKey](hf.sec("uuid"))
	did := asSlice[uint32](hf.sec("did"))
	name, err := hf.codeChunkOf("name")
	if err != nil {
		return err
	}
	cols := make([]codeChunk, len(indexedProps))
	for i, k := range indexedProps {
		if cols[i], err = hf.codeChunkOf("c:" + k); err != nil {
			return err
		}
	}
	mapVec(&t.ts, ci, ts)
	mapVec(&t.keys, ci, keys)
	mapVec(&t.did, ci, did)
	mapColumn(t.name, ci, name)
	for i, k := range indexedProps {
		mapColumn(t.colByKey[k], ci, cols[i])
	}
	return nil
}

func mapVec[T any](v *vec[T], ci int, s []T) {
	if ci == len(v.chunks) {
		v.chunks = append(v.chunks, s)
		v.n += len(s)
	} else {
		if ci >= v.nMapped {
			freeSlice(v.chunks[ci])
		}
		v.chunks[ci] = s
	}
	v.nMapped = max(v.nMapped, ci+1)
}

func mapColumn(c *column, ci int, ch codeChunk) {
	if ci == len(c.chunks) {
		c.chunks = append(c.chunks, ch)
		c.n += ch.n
		return
	}
	c.chunks[ci].free()
	c.chunks[ci] = ch
}

// histHandles returns the blockRefs of hf's blocks.
func (hf *histFile) blockRefs() []blockRef {
	out := make([]blockRef, len(hf.hdr.Blocks))
	for i, b := range hf.hdr.Blocks {
		out[i] = blockRef{first: b.First, n: b.N, skips: b.Skips, compressed: true, size: int(b.Size)}
		if b.Size > 0 {
			out[i].key = blockKeyIn(hf.id, i)
		}
	}
	return out
}

// attach adds the rows of hf (the table's next chunk) at start: the
// dictionaries, the mapped columns, sessions, server pageviews, persons
// (from the journal) and the blocks. The uuid index is built beside it
// (indexHistory).
func (t *table) attach(hf *histFile) error {
	ci := hf.hdr.Chunk
	if t.rows() != ci<<chunkBits || len(t.hist.files) != ci {
		return fmt.Errorf("history file %s is for chunk %d; the table is at row %d", hf.path, ci, t.rows())
	}
	for _, r := range hf.hdr.Dicts {
		var d *dict
		for _, x := range t.dictsOf() {
			if x.name == r.Col {
				d = x.d
			}
		}
		if d == nil {
			return fmt.Errorf("%w: unknown dictionary %s", errBadHist, r.Col)
		}
		strs, err := hf.dictStrings(r.Col)
		if err != nil {
			return err
		}
		for uint32(d.size()) < r.From {
			d.restore("") // the strings of a lost file before this one
		}
		if uint32(d.size()) != r.From || int(r.To-r.From) != len(strs) {
			return fmt.Errorf("%w: dictionary %s holds codes [%d,%d), the table is at %d", errBadHist, r.Col, r.From, r.To, d.size())
		}
		d.strs = slices.Grow(d.strs, len(strs))
		for _, s := range strs {
			d.restore(s)
		}
		t.hist.upTo[r.Col] = r.To
	}
	if err := t.mapChunk(ci, hf); err != nil {
		return err
	}
	base := ci << chunkBits
	server := asSlice[uint64](hf.sec("server"))
	hidden := asSlice[uint64](hf.sec("hidden"))
	pv, _ := t.name.dict.lookup("$pageview")
	sc := t.colByKey["$session_id"]
	for i, w := range server {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			w &= w - 1
			t.loads.server.set(base + i*64 + b)
			t.loads.nServer++
		}
	}
	for i, w := range hidden {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			w &= w - 1
			t.loads.hide(base + i*64 + b)
		}
	}
	for row := base; row < base+chunkSize; row++ {
		ts := t.ts.at(row)
		if ts == deletedTime {
			continue
		}
		t.noteTime(row, ts)
		t.live++
		isPV := pv != 0 && t.name.at(row) == pv || t.loads.server.has(row)
		t.sess.add(sc.at(row), row, ts, isPV)
	}
	jd, err := hf.journal()
	if err != nil {
		return err
	}
	var ev Event
	t.people.grow(t.dids.size())
	for i, row := range hf.hdr.Journal {
		jd.fill(i, &ev)
		t.people.apply(t.dids, t.dids.code(ev.DistinctID), &ev, int(row))
	}
	t.people.grow(t.dids.size())
	for _, b := range hf.blockRefs() {
		t.addBlockRef(b)
	}
	t.hist.files = append(t.hist.files, hf)
	return nil
}

// attachLost adds chunk ci as rows whose file was lost: deleted rows with
// no values and no events.
func (t *table) attachLost(ci int) error {
	if t.rows() != ci<<chunkBits || len(t.hist.files) != ci {
		return fmt.Errorf("lost history chunk %d; the table is at row %d", ci, t.rows())
	}
	ts := makeSlice[int64](chunkSize, chunkSize)
	for i := range ts {
		ts[i] = deletedTime
	}
	t.ts.chunks, t.ts.n = append(t.ts.chunks, ts), t.ts.n+chunkSize
	t.keys.chunks, t.keys.n = append(t.keys.chunks, makeSlice[UUIDKey](chunkSize, chunkSize)), t.keys.n+chunkSize
	t.did.chunks, t.did.n = append(t.did.chunks, makeSlice[uint32](chunkSize, chunkSize)), t.did.n+chunkSize
	mapColumn(t.name, ci, codeChunk{n: chunkSize})
	for _, k := range indexedProps {
		mapColumn(t.colByKey[k], ci, codeChunk{n: chunkSize})
	}
	for len(t.bounds) <= ci {
		t.bounds = append(t.bounds, tsBounds{math.MaxInt64, math.MinInt64})
	}
	t.hist.files = append(t.hist.files, nil)
	return nil
}

// restore appends s under the next code (at start, from a history file);
// a blanked string ("") keeps its code but cannot be found.
func (d *dict) restore(s string) {
	c := uint32(len(d.strs))
	d.strs = append(d.strs, s)
	if _, dup := d.lookup(s); s != "" && !dup {
		d.index(s, c)
	}
}

// ---- the DB's side ----

// loadHistory opens the listed history files and attaches them, in chunk
// order, before the log is replayed; it removes files the log does not
// list (left by a move or rewrite cut short).
func (s *DB) loadHistory() (err error) {
	if s.hist.dir == "" {
		return nil
	}
	var ls []struct {
		id uint64
		l  histListing
	}
	var seq uint64
	err = s.db.View(func(tx *buntdb.Tx) error {
		if v, err := tx.Get(histSeqKey); err == nil {
			seq, _ = strconv.ParseUint(v, 10, 64)
		}
		tx.AscendKeys(recListKey+"*", func(k, v string) bool {
			if id, err := strconv.ParseUint(k[len(recListKey):], 16, 64); err == nil {
				s.hist.recNames[id] = v
			}
			return true
		})
		return tx.AscendKeys(histListKey+"*", func(k, v string) bool {
			id, err := strconv.ParseUint(k[len(histListKey):], 16, 64)
			var l histListing
			if err == nil && json.Unmarshal([]byte(v), &l) == nil {
				ls = append(ls, struct {
					id uint64
					l  histListing
				}{id, l})
			}
			return true
		})
	})
	if err != nil {
		return err
	}
	s.seq = max(s.seq, seq)
	listed := make(map[string]bool, len(ls))
	for _, x := range ls {
		listed[x.l.File] = true
	}
	for _, name := range s.hist.recNames {
		listed[name] = true
	}
	if ents, err := os.ReadDir(s.hist.dir); err == nil {
		for _, e := range ents {
			if !listed[e.Name()] {
				os.Remove(filepath.Join(s.hist.dir, e.Name()))
			}
		}
	} else if !os.IsNotExist(err) {
		return err
	}
	if len(ls) == 0 {
		return nil
	}
	// Runs last, once the files are attached, the uuid index is built
	// and the collector's pace is back.
	defer func() {
		if err == nil {
			runtime.GC() // the live heap now, not at the last collection
			limitHeap()
		}
	}()
	if err := os.MkdirAll(s.hist.dir, 0o700); err != nil {
		return err
	}
	sort.Slice(ls, func(i, j int) bool {
		if ls[i].l.Site != ls[j].l.Site {
			return ls[i].l.Site < ls[j].l.Site
		}
		return ls[i].l.Chunk < ls[j].l.Chunk
	})
	perSite := map[string]int{}
	for _, x := range ls {
		perSite[x.l.Site]++
	}
	for site, n := range perSite {
		t := s.tableFor(site)
		t.idx.reserve((n+3)<<chunkBits, &t.keys) // and room for the log's rows
	}
	// The uuid index is built on another core while the rest is attached.
	toIndex := make(chan *histFile, 64)
	indexed := make(chan struct{})
	go func() {
		defer close(indexed)
		var t *table
		var kv vec[UUIDKey] // the files' keys, apart from the table's vec
		for hf := range toIndex {
			if t == nil || t.site != hf.hdr.Site {
				t, kv = s.table(hf.hdr.Site), vec[UUIDKey]{}
			}
			keys := asSlice[UUIDKey](hf.sec("uuid"))
			kv.chunks = append(kv.chunks, keys)
			kv.n += chunkSize
			if keys == nil {
				continue // a lost file: its rows are not there
			}
			for row := kv.n - chunkSize; row < kv.n; row++ {
				t.idx.insert(row, &kv)
			}
		}
	}()
	defer func() {
		close(toIndex)
		<-indexed
	}()
	// The files are mapped first, so that every dictionary can be sized
	// once for all of them; and the collector runs less often meanwhile
	// (millions of strings are added at once), then as it was.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	opened := make([]*histFile, len(ls))
	errs := make([]error, len(ls))
	upTo := map[string]map[string]uint32{} // site → dictionary → codes
	for i, x := range ls {
		hf, err := openHist(x.id, filepath.Join(s.hist.dir, x.l.File))
		if err == nil && (hf.hdr.Site != x.l.Site || hf.hdr.Chunk != x.l.Chunk) {
			unmapFile(hf.data)
			err = fmt.Errorf("%w: %s is for %s/%d, listed as %s/%d", errBadHist, hf.path, hf.hdr.Site, hf.hdr.Chunk, x.l.Site, x.l.Chunk)
		}
		opened[i], errs[i] = hf, err
		if err != nil {
			continue
		}
		if upTo[x.l.Site] == nil {
			upTo[x.l.Site] = map[string]uint32{}
		}
		for _, r := range hf.hdr.Dicts {
			upTo[x.l.Site][r.Col] = max(upTo[x.l.Site][r.Col], r.To)
		}
	}
	for site, m := range upTo {
		for _, d := range s.tableFor(site).dictsOf() {
			d.d.reserve(int(m[d.name]))
		}
	}
	next := 0 // files from here on are not attached (unmapped if Open fails)
	defer func() {
		for _, hf := range opened[next:] {
			if hf != nil {
				unmapFile(hf.data)
			}
		}
	}()
	for i, x := range ls {
		next = i + 1
		path := filepath.Join(s.hist.dir, x.l.File)
		hf, err := opened[i], errs[i]
		if err != nil {
			// A file that is missing or cannot be read costs its own rows,
			// not the store: the chunk is taken as deleted, the file is
			// kept aside, and Open reports it (OnDamage).
			if _, serr := os.Stat(path); serr == nil {
				os.Rename(path, path+".damaged-"+s.opts.Now().UTC().Format("20060102T150405Z"))
			}
			s.hist.lost = append(s.hist.lost, fmt.Sprintf("%s (rows %d-%d of %s): %v", x.l.File, x.l.Chunk<<chunkBits, (x.l.Chunk+1)<<chunkBits-1, x.l.Site, err))
			t := s.tableFor(x.l.Site)
			if err := t.attachLost(x.l.Chunk); err != nil {
				return err
			}
			toIndex <- &histFile{hdr: histHeader{Site: x.l.Site, Chunk: x.l.Chunk}}
			continue
		}
		t := s.tableFor(x.l.Site)
		if err := t.attach(hf); err != nil {
			unmapFile(hf.data)
			return err
		}
		toIndex <- hf
		s.hist.mu.Lock()
		s.hist.files[hf.id] = hf
		s.hist.mu.Unlock()
	}
	return nil
}

// moveHistory moves every chunk that is due into history files. The
// caller holds s.maint.
func (s *DB) moveHistory() error {
	if s.hist.dir == "" {
		return nil
	}
	s.mu.RLock()
	tables := make([]*table, 0, len(s.tables))
	for _, t := range s.tables {
		tables = append(tables, t)
	}
	s.mu.RUnlock()
	for _, t := range tables {
		for {
			t.mu.RLock()
			ci := len(t.hist.files)
			due := t.rows() >= (ci+1)<<chunkBits+s.opts.HistoryAfter
			t.mu.RUnlock()
			if !due {
				break
			}
			if err := s.moveChunk(t, ci); err != nil {
				return fmt.Errorf("moving %s rows %d-%d to history: %w", t.site, ci<<chunkBits, (ci+1)<<chunkBits-1, err)
			}
			select {
			case <-s.stop:
				return nil
			default:
			}
		}
	}
	return nil
}

// moveChunk writes chunk ci of t to a history file and removes its blocks
// from the log. The caller holds s.maint.
func (s *DB) moveChunk(t *table, ci int) error {
	base, end := ci<<chunkBits, (ci+1)<<chunkBits
	id, err := s.nextHistID()
	if err != nil {
		return err
	}
	var w histWriter
	var moved []string // log keys the file takes
	tailKey, tailVal := "", ""
	var tailRef blockRef
	var nMovedBlocks int

	t.mu.RLock()
	var ranges []histDictRange
	for _, d := range t.dictsOf() {
		from := max(t.hist.upTo[d.name], 1) // code 0 is "no value" in every dictionary
		ranges = append(ranges, histDictRange{Col: d.name, From: from, To: uint32(d.d.size())})
	}
	// The body at its likely size at once (the columns, ~100 bytes a row,
	// then the blocks as stored), not grown by copying.
	est := 100 << chunkBits
	for _, b := range t.blocks {
		if b.first >= base && b.first < end {
			est += b.size + histAlign
		}
	}
	w.body = make([]byte, 0, est)
	t.image(&w, ci, nil, nil, ranges, nil)
	var jrows []int32
	var jevs []*Event
	for _, j := range t.hist.journal {
		if int(j.row) < end {
			jrows = append(jrows, j.row)
			jevs = append(jevs, j.ev)
		}
	}
	var refs []blockRef
	for _, b := range t.blocks {
		if b.first >= base && b.first < end {
			refs = append(refs, b)
		}
	}
	t.mu.RUnlock()
	if len(refs) == 0 || refs[0].first != base {
		return fmt.Errorf("no block starts the chunk")
	}
	if len(jevs) > 0 {
		w.section("journal", 0, []byte(encodeBlock(t.site, jevs, compressBest)))
		w.hdr.Journal = jrows
	}
	// The blocks: compressed ones as they are; others, and the head of
	// one that runs past the chunk, encoded again.
	for _, b := range refs {
		meta := histBlockMeta{First: b.first, N: b.n, Skips: b.skips}
		straddles := b.first+b.n > end
		if straddles {
			meta.N, meta.Skips = end-b.first, nil
			tailRef = blockRef{first: end, n: b.first + b.n - end, compressed: true}
			for _, sk := range b.skips {
				if int(sk) < meta.N {
					meta.Skips = append(meta.Skips, sk)
				} else {
					tailRef.skips = append(tailRef.skips, sk-int32(meta.N))
				}
			}
		}
		var val string
		switch {
		case b.key == "":
		case straddles || !b.compressed:
			var head, tail []rawRef
			err := s.forEachStored([]blockRef{b}, func(row int, d *decodedBlock, i int) {
				if row < end {
					head = append(head, rawRef{d, i})
				} else {
					tail = append(tail, rawRef{d, i})
				}
			})
			if err != nil {
				return err
			}
			if len(head) > 0 {
				val = encodeRaw(t.site, head, compressBest)
			}
			if !straddles {
				moved = append(moved, b.key)
				break
			}
			tailKey = b.key
			if len(tail) > 0 {
				tailVal = encodeRaw(t.site, tail, compressBest)
				tailRef.key, tailRef.size = b.key, len(tailVal)
			}
		default:
			moved = append(moved, b.key)
			if err := s.db.View(func(tx *buntdb.Tx) error {
				var err error
				val, err = tx.Get(b.key)
				return err
			}); err != nil {
				return fmt.Errorf("block %s: %w", b.key, err)
			}
		}
		w.block(meta, val)
		nMovedBlocks++
	}

	if err := os.MkdirAll(s.hist.dir, 0o700); err != nil {
		return err
	}
	name := histName(id)
	path := filepath.Join(s.hist.dir, name)
	head, body := w.parts()
	if err := writeFileAtomic(path, head, body, s.hist.prefixed("move:")); err != nil {
		return err
	}
	s.hist.at("move:list")
	hf, err := openHist(id, path)
	if err != nil {
		os.Remove(path)
		return err
	}
	listing, _ := json.Marshal(histListing{Site: t.site, Chunk: ci, File: name, Size: int64(len(head) + len(body))})
	err = s.db.Update(func(tx *buntdb.Tx) error {
		if _, _, err := tx.Set(histKey(id), string(listing), nil); err != nil {
			return err
		}
		if _, _, err := tx.Set(histIDKey, strconv.FormatUint(id, 10), nil); err != nil {
			return err
		}
		if _, _, err := tx.Set(histSeqKey, strconv.FormatUint(s.seqFloor(), 10), nil); err != nil {
			return err
		}
		for _, k := range moved {
			if _, err := tx.Delete(k); err != nil && err != buntdb.ErrNotFound {
				return err
			}
		}
		if tailKey != "" {
			if tailVal == "" {
				if _, err := tx.Delete(tailKey); err != nil && err != buntdb.ErrNotFound {
					return err
				}
			} else if _, _, err := tx.Set(tailKey, tailVal, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		unmapFile(hf.data)
		os.Remove(path)
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.hist.at("move:listed")
	s.hist.mu.Lock()
	s.hist.files[id] = hf
	s.hist.mu.Unlock()

	t.mu.Lock()
	// A server pageview of the chunk confirmed while the file was written
	// is set again on the mapping (a private copy of that page).
	oldName := t.name.chunks[ci]
	newName, _ := hf.codeChunkOf("name")
	var fix []int
	for i := 0; i < chunkSize; i++ {
		if oldName.get(i) != newName.get(i) {
			fix = append(fix, i)
		}
	}
	fixCodes := make([]uint32, len(fix))
	for k, i := range fix {
		fixCodes[k] = oldName.get(i)
	}
	if err := t.mapChunk(ci, hf); err != nil {
		t.mu.Unlock()
		return err
	}
	for k, i := range fix {
		t.name.setCode(base+i, fixCodes[k])
	}
	first := t.blockOf(base)
	refsNew := hf.blockRefs()
	if tailRef.n > 0 {
		refsNew = append(refsNew, tailRef)
	}
	t.blocks = slices.Replace(t.blocks, first, first+nMovedBlocks, refsNew...)
	t.hist.files = append(t.hist.files, hf)
	for _, r := range ranges {
		t.hist.upTo[r.Col] = r.To
	}
	t.hist.journal = slices.DeleteFunc(t.hist.journal, func(j journalEntry) bool { return int(j.row) < end })
	t.mu.Unlock()
	for _, k := range moved {
		s.bc.drop(k)
	}
	if tailKey != "" {
		s.bc.drop(tailKey)
	}
	return nil
}

// seqFloor is the block sequence new blocks must stay above even once the
// log holds none (the tail of a split block keeps its key).
func (s *DB) seqFloor() uint64 { return s.seqSeen.Load() }

// closeHistory unmaps every file; the tables are released already.
func (s *DB) closeHistory() {
	s.hist.mu.Lock()
	defer s.hist.mu.Unlock()
	for id, hf := range s.hist.files {
		unmapFile(hf.data)
		delete(s.hist.files, id)
	}
	for id, rf := range s.hist.recs {
		unmapFile(rf.data)
		delete(s.hist.recs, id)
	}
}

// MoveHistory moves the chunks that are due into history files now (the
// compactor does it after every compaction).
func (s *DB) MoveHistory() error {
	s.maint.Lock()
	defer s.maint.Unlock()
	defer limitHeap() // the compactor calls this regularly
	return s.moveHistory()
}

// ---- memory ----

// The collector lets the heap grow to twice what was live at its last
// collection before the next one, so a query's transient arrays on top of
// a large live heap (a store of history files keeps its dictionaries and
// persons there) once doubled the resident size: 0.9 GB settled, 2–3 GB
// right after a 30-day funnel at 45M events. A soft memory limit of the
// live heap plus as much again, at least heapHeadroom more, caps that
// peak, and is moved as the live heap changes: after history files are
// loaded (from a collection forced then) and whenever the compactor moves
// history (from the last collection). A limit set by the operator
// (GOMEMLIMIT) or the program embedding the store is left alone. The
// columns off the heap (offheap.go) are outside the runtime's count, so
// outside the limit too.
const heapHeadroom = 512 << 20

var (
	heapLimitMu sync.Mutex
	heapLimit   int64 // the limit limitHeap set last; 0 when none
)

// limitHeap sets the runtime's soft memory limit from the live heap.
func limitHeap() {
	heapLimitMu.Lock()
	defer heapLimitMu.Unlock()
	if cur := debug.SetMemoryLimit(-1); cur != math.MaxInt64 && cur != heapLimit {
		return // someone else's
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	live := int64(sample[0].Value.Uint64())
	heapLimit = live + max(live, heapHeadroom)
	debug.SetMemoryLimit(heapLimit)
}

// ---- rewriting ----

// histRewrite is a history file written again (retention, person
// deletion), not yet listed in place of the old one.
type histRewrite struct {
	old, new *histFile
	listing  string
}

// histEdit is what a rewrite changes in a file: rows to drop, properties
// to strip, blocks with new values (by block index; "" when emptied) and
// dictionary codes to blank.
type histEdit struct {
	drop   map[int]bool
	strip  map[int]string
	blocks map[int]string
	blank  func(col string, code uint32) bool
}

// prepareRewrite writes hf again with e applied, under a new id, and maps
// the new file; nothing is listed yet. The caller holds s.maint.
func (s *DB) prepareRewrite(t *table, hf *histFile, id uint64, e histEdit) (*histRewrite, error) {
	ci := hf.hdr.Chunk
	base, end := ci<<chunkBits, (ci+1)<<chunkBits
	var drops []int
	for row := range e.drop {
		if row >= base && row < end {
			drops = append(drops, row)
		}
	}
	slices.Sort(drops)
	strip := make(map[int]string)
	for row, k := range e.strip {
		if row >= base && row < end {
			strip[row] = k
		}
	}
	var w histWriter
	t.mu.RLock()
	t.image(&w, ci, drops, strip, hf.hdr.Dicts, e.blank)
	t.mu.RUnlock()

	jd, err := hf.journal()
	if err != nil {
		return nil, err
	}
	var jevs []*Event
	var jrows []int32
	for i, row := range hf.hdr.Journal {
		if e.drop[int(row)] {
			continue
		}
		var ev Event
		jd.fill(i, &ev)
		cp := ev
		cp.Props = nil
		for _, p := range ev.Props {
			if k, ok := strip[int(row)]; ok && p.Key == k {
				continue
			}
			cp.Props = append(cp.Props, p)
		}
		jevs = append(jevs, &cp)
		jrows = append(jrows, row)
	}
	if len(jevs) > 0 {
		w.section("journal", 0, []byte(encodeBlock(t.site, jevs, compressBest)))
		w.hdr.Journal = jrows
	}
	for i, b := range hf.hdr.Blocks {
		meta := b
		val := hf.blockValue(i)
		if nv, ok := e.blocks[i]; ok {
			val = nv
			meta.Skips = slices.Clone(b.Skips)
			for off := 0; off < b.N; off++ {
				if e.drop[b.First+off] {
					meta.Skips = append(meta.Skips, int32(off))
				}
			}
			slices.Sort(meta.Skips)
			meta.Skips = slices.Compact(meta.Skips)
		}
		w.block(meta, val)
	}
	name := histName(id)
	path := filepath.Join(s.hist.dir, name)
	head, body := w.parts()
	if err := writeFileAtomic(path, head, body, s.hist.prefixed("rewrite:")); err != nil {
		return nil, err
	}
	nf, err := openHist(id, path)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	l, _ := json.Marshal(histListing{Site: t.site, Chunk: ci, File: name, Size: int64(len(head) + len(body))})
	return &histRewrite{old: hf, new: nf, listing: string(l)}, nil
}

// listRewrites puts the rewritten files in place of the old ones in tx.
func listRewrites(tx *buntdb.Tx, rws []*histRewrite) error {
	var top uint64
	for _, rw := range rws {
		if _, err := tx.Delete(histKey(rw.old.id)); err != nil && err != buntdb.ErrNotFound {
			return err
		}
		if _, _, err := tx.Set(histKey(rw.new.id), rw.listing, nil); err != nil {
			return err
		}
		top = max(top, rw.new.id)
	}
	if top > 0 {
		if _, _, err := tx.Set(histIDKey, strconv.FormatUint(top, 10), nil); err != nil {
			return err
		}
	}
	return nil
}

// abandon removes rewritten files that were never listed.
func abandon(rws []*histRewrite) {
	for _, rw := range rws {
		unmapFile(rw.new.data)
		os.Remove(rw.new.path)
	}
}

// swapRewrites makes the table read the rewritten files; the caller holds
// t.mu (write). The old files are returned, to be closed once the lock is
// released.
func (s *DB) swapRewrites(t *table, rws []*histRewrite) ([]*histFile, error) {
	var old []*histFile
	for _, rw := range rws {
		ci := rw.new.hdr.Chunk
		if err := t.mapChunk(ci, rw.new); err != nil {
			return old, err
		}
		for i, b := range rw.new.hdr.Blocks {
			bi := t.blockOf(b.First)
			if bi < 0 || t.blocks[bi].first != b.First {
				return old, fmt.Errorf("history rewrite lost track of block at row %d", b.First)
			}
			ref := &t.blocks[bi]
			s.bc.drop(ref.key)
			ref.key, ref.skips, ref.size = "", b.Skips, int(b.Size)
			if b.Size > 0 {
				ref.key = blockKeyIn(rw.new.id, i)
			}
		}
		t.hist.files[ci] = rw.new
		s.hist.mu.Lock()
		delete(s.hist.files, rw.old.id)
		s.hist.files[rw.new.id] = rw.new
		s.hist.mu.Unlock()
		old = append(old, rw.old)
	}
	return old, nil
}

// closeOld unmaps and removes replaced files.
func closeOld(files []*histFile) {
	for _, hf := range files {
		unmapFile(hf.data)
		os.Remove(hf.path)
	}
}

// rewriteAll rewrites every file that e touches (the files of the rows it
// drops or strips, the blocks it changes, or every file when it blanks
// dictionary codes in fileBlanks' ranges), lists them in one transaction
// with logOps, and swaps them in. The caller holds s.maint.
func (s *DB) rewriteAll(t *table, e histEdit, blockVals map[string]string, touch func(hf *histFile) bool, logOps func(tx *buntdb.Tx) error, inMemory func()) error {
	t.mu.RLock()
	files := slices.Clone(t.hist.files)
	t.mu.RUnlock()
	var todo []*histFile
	for _, hf := range files {
		if hf != nil && touch(hf) {
			todo = append(todo, hf)
		}
	}
	var rws []*histRewrite
	if len(todo) > 0 {
		id, err := s.nextHistID()
		if err != nil {
			return err
		}
		for k, hf := range todo {
			fe := e
			fe.blocks = make(map[int]string)
			for i := range hf.hdr.Blocks {
				if v, ok := blockVals[blockKeyIn(hf.id, i)]; ok {
					fe.blocks[i] = v
				}
			}
			rw, err := s.prepareRewrite(t, hf, id+uint64(k), fe)
			if err != nil {
				abandon(rws)
				return err
			}
			rws = append(rws, rw)
		}
	}
	s.hist.at("rewrite:list")
	err := s.db.Update(func(tx *buntdb.Tx) error {
		if logOps != nil {
			if err := logOps(tx); err != nil {
				return err
			}
		}
		return listRewrites(tx, rws)
	})
	if err != nil {
		abandon(rws)
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.hist.at("rewrite:listed")
	t.mu.Lock()
	if inMemory != nil {
		inMemory()
	}
	old, err := s.swapRewrites(t, rws)
	t.mu.Unlock()
	closeOld(old)
	return err
}

// scrubDistinctIDs blanks the strings of deleted distinct ids in memory and
// in the history files that hold them, so that no file on disk names a
// deleted person. The caller holds s.maint.
func (s *DB) scrubDistinctIDs(t *table, codes []uint32) error {
	if len(codes) == 0 {
		return nil
	}
	set := make(map[uint32]bool, len(codes))
	for _, c := range codes {
		set[c] = true
	}
	touch := func(hf *histFile) bool {
		for _, r := range hf.hdr.Dicts {
			if r.Col != "did" {
				continue
			}
			for c := range set {
				if c >= r.From && c < r.To {
					return true
				}
			}
		}
		return false
	}
	blank := func(col string, code uint32) bool { return col == "did" && set[code] }
	return s.rewriteAll(t, histEdit{blank: blank}, nil, touch, nil, func() {
		for c := range set {
			if int(c) < len(t.dids.strs) {
				t.dids.blank(c)
			}
		}
	})
}
