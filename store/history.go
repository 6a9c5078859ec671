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
// one, which is removed after.
//
// The file's format (writing, mapping, checking) is package histfile;
// this file is the table's and the log's side of it: what goes into a
// file, its listing in the log, and the table's columns mapped onto it.
// docs/storage.md describes the format.

import (
	"encoding/json"
	"fmt"
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

	"github.com/tidwall/buntdb"

	"github.com/firstpartyhq/firstparty/store/histfile"
)

const (
	histListKey = "hf:" // + 16 hex digits of the file id
	histSeqKey  = "meta:hist-seq"
	histIDKey   = "meta:hist-id"
)

// A history file holds one chunk of a table: the two sizes are one.
var (
	_ [chunkSize - histfile.Rows]struct{}
	_ [histfile.Rows - chunkSize]struct{}
)

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
	files map[uint64]*histfile.File
	dir   string // "" when history is off (":memory:" or NoHistory)
	// recs are the recording files (recfiles.go) by id, recNames their
	// names as listed at start; recLife is held (read) while a recording is
	// read from them, and (write) while one is unmapped.
	recs     map[uint64]*histfile.RecFile
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

// HistoryHealth is what /analytics/health shows of the history files.
type HistoryHealth struct {
	Dir            string   `json:"dir"`
	Files          int      `json:"files"`
	Bytes          int64    `json:"bytes"`
	Rows           int      `json:"rows"` // rows the files hold (each a chunk), deleted ones included
	RecordingFiles int      `json:"recording_files"`
	Lost           []string `json:"lost,omitempty"` // files that could not be read at start
}

// HistoryHealth returns the state of the history files; nil when history
// is off (a database in memory, or NoHistory).
func (s *DB) HistoryHealth() *HistoryHealth {
	h := &s.hist
	if h.dir == "" {
		return nil
	}
	h.mu.RLock()
	out := &HistoryHealth{Dir: h.dir, Files: len(h.files), RecordingFiles: len(h.recs), Lost: append([]string(nil), h.lost...)}
	paths := make([]string, 0, len(h.files)+len(h.recs))
	for _, f := range h.files {
		out.Rows += f.Header.Rows
		paths = append(paths, f.Path)
	}
	for _, r := range h.recs {
		paths = append(paths, r.Path)
	}
	h.mu.RUnlock()
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			out.Bytes += fi.Size()
		}
	}
	return out
}

// HistoryDir is the directory of a database's history files.
func HistoryDir(dbPath string) string { return dbPath + ".history" }

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
		b = slices.Clone(histfile.AsBytes(ch.b16[:n]))
	case 4:
		b = slices.Clone(histfile.AsBytes(ch.b32[:n]))
	}
	for _, off := range zero {
		for i := 0; i < int(w); i++ {
			b[off*int(w)+i] = 0
		}
	}
	return w, b
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
func (t *table) image(w *histfile.Writer, ci int, drop []int, strip map[int]string, ranges []histfile.DictRange, blank func(col string, code uint32) bool) {
	base := ci << chunkBits
	w.Header.Site, w.Header.Chunk, w.Header.Rows = t.site, ci, chunkSize
	ts := slices.Clone(t.ts.chunk(ci)[:chunkSize])
	for _, row := range drop {
		ts[row-base] = deletedTime
	}
	w.Section("ts", 8, histfile.AsBytes(ts))
	w.Section("uuid", 16, slices.Clone(histfile.AsBytes(t.keys.chunk(ci)[:chunkSize])))
	w.Section("did", 4, slices.Clone(histfile.AsBytes(t.did.chunk(ci)[:chunkSize])))
	wd, b := codeBytes(&t.name.chunks[ci], chunkSize, nil)
	w.Section("name", wd, b)
	for _, k := range indexedProps {
		c := t.colByKey[k]
		var zero []int
		for row, key := range strip {
			if key == k {
				zero = append(zero, row-base)
			}
		}
		wd, b := codeBytes(&c.chunks[ci], chunkSize, zero)
		w.Section("c:"+k, wd, b)
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
	w.Section("server", 0, histfile.AsBytes(server))
	w.Section("hidden", 0, histfile.AsBytes(hidden))
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
			w.Section("d:"+r.Col, 0, histfile.DictBytes(d.d.strs[r.From:r.To], bl))
		}
	}
	w.Header.Dicts = ranges
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

// errBadHist is wrapped by every error about a damaged history or
// recording file.
var errBadHist = histfile.ErrDamaged

// histJournal decodes the person-changing events of hf.
func histJournal(hf *histfile.File) (*decodedBlock, error) {
	b := hf.Section("journal")
	if len(b) == 0 {
		return nil, nil
	}
	d, err := decodeBlock(string(b))
	if err != nil {
		return nil, err
	}
	if len(d.events) != len(hf.Header.Journal) {
		return nil, fmt.Errorf("%w: journal holds %d events for %d rows", errBadHist, len(d.events), len(hf.Header.Journal))
	}
	return d, nil
}

// mappedCodes returns code column name of hf as a chunk that points into
// the mapping.
func mappedCodes(hf *histfile.File, name string) (codeChunk, error) {
	w, b, ok, err := hf.Column(name)
	if !ok {
		return codeChunk{n: chunkSize}, nil // a column the file predates: all zero
	}
	ch := codeChunk{w: w, n: chunkSize, mapped: true}
	if err != nil {
		return ch, err
	}
	switch w {
	case 1:
		ch.b8 = b
	case 2:
		ch.b16 = histfile.AsSlice[uint16](b)
	case 4:
		ch.b32 = histfile.AsSlice[uint32](b)
	}
	return ch, nil
}

func (h *histState) file(id uint64) *histfile.File {
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
	if hf == nil || i >= len(hf.Header.Blocks) {
		return nil, fmt.Errorf("history block %s: no such file or block", key)
	}
	v := hf.BlockValue(i)
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
	files []*histfile.File // by chunk
	// upTo is, per dictionary, how many of its codes the files hold.
	upTo    map[string]uint32
	journal []journalEntry // of rows in the log
}

// mapChunk makes chunk ci of every persisted column a view of hf (appending
// it when ci is the next chunk). The caller holds t.mu (write).
func (t *table) mapChunk(ci int, hf *histfile.File) error {
	appendNew := ci == t.ts.numChunks()
	if !appendNew && ci >= t.ts.numChunks() {
		return fmt.Errorf("history file %s is for chunk %d; the table has %d", hf.Path, ci, t.ts.numChunks())
	}
	ts := histfile.AsSlice[int64](hf.Section("ts"))
	keys := histfile.AsSlice[UUIDKey](hf.Section("uuid"))
	did := histfile.AsSlice[uint32](hf.Section("did"))
	name, err := mappedCodes(hf, "name")
	if err != nil {
		return err
	}
	cols := make([]codeChunk, len(indexedProps))
	for i, k := range indexedProps {
		if cols[i], err = mappedCodes(hf, "c:"+k); err != nil {
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

// histBlockRefs returns the blockRefs of hf's blocks.
func histBlockRefs(hf *histfile.File) []blockRef {
	out := make([]blockRef, len(hf.Header.Blocks))
	for i, b := range hf.Header.Blocks {
		out[i] = blockRef{first: b.First, n: b.N, skips: b.Skips, compressed: true, size: int(b.Size)}
		if b.Size > 0 {
			out[i].key = blockKeyIn(hf.ID, i)
		}
	}
	return out
}

// attach adds the rows of hf (the table's next chunk) at start: the
// dictionaries, the mapped columns, sessions, server pageviews, persons
// (from the journal) and the blocks. The uuid index is built beside it
// (indexHistory).
func (t *table) attach(hf *histfile.File) error {
	ci := hf.Header.Chunk
	if t.rows() != ci<<chunkBits || len(t.hist.files) != ci {
		return fmt.Errorf("history file %s is for chunk %d; the table is at row %d", hf.Path, ci, t.rows())
	}
	for _, r := range hf.Header.Dicts {
		var d *dict
		for _, x := range t.dictsOf() {
			if x.name == r.Col {
				d = x.d
			}
		}
		if d == nil {
			return fmt.Errorf("%w: unknown dictionary %s", errBadHist, r.Col)
		}
		strs, err := hf.DictStrings(r.Col)
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
	server := histfile.AsSlice[uint64](hf.Section("server"))
	hidden := histfile.AsSlice[uint64](hf.Section("hidden"))
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
	jd, err := histJournal(hf)
	if err != nil {
		return err
	}
	var ev Event
	t.people.grow(t.dids.size())
	for i, row := range hf.Header.Journal {
		jd.fill(i, &ev)
		t.people.apply(t.dids, t.dids.code(ev.DistinctID), &ev, int(row))
	}
	t.people.grow(t.dids.size())
	for _, b := range histBlockRefs(hf) {
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
	toIndex := make(chan *histfile.File, 64)
	indexed := make(chan struct{})
	go func() {
		defer close(indexed)
		var t *table
		var kv vec[UUIDKey] // the files' keys, apart from the table's vec
		for hf := range toIndex {
			if t == nil || t.site != hf.Header.Site {
				t, kv = s.table(hf.Header.Site), vec[UUIDKey]{}
			}
			keys := histfile.AsSlice[UUIDKey](hf.Section("uuid"))
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
	opened := make([]*histfile.File, len(ls))
	errs := make([]error, len(ls))
	upTo := map[string]map[string]uint32{} // site → dictionary → codes
	for i, x := range ls {
		hf, err := histfile.Open(x.id, filepath.Join(s.hist.dir, x.l.File))
		if err == nil && (hf.Header.Site != x.l.Site || hf.Header.Chunk != x.l.Chunk) {
			hf.Close()
			err = fmt.Errorf("%w: %s is for %s/%d, listed as %s/%d", errBadHist, hf.Path, hf.Header.Site, hf.Header.Chunk, x.l.Site, x.l.Chunk)
		}
		opened[i], errs[i] = hf, err
		if err != nil {
			continue
		}
		if upTo[x.l.Site] == nil {
			upTo[x.l.Site] = map[string]uint32{}
		}
		for _, r := range hf.Header.Dicts {
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
				hf.Close()
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
			toIndex <- &histfile.File{Header: histfile.Header{Site: x.l.Site, Chunk: x.l.Chunk}}
			continue
		}
		t := s.tableFor(x.l.Site)
		if err := t.attach(hf); err != nil {
			hf.Close()
			return err
		}
		toIndex <- hf
		s.hist.mu.Lock()
		s.hist.files[hf.ID] = hf
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
	var w histfile.Writer
	var moved []string // log keys the file takes
	tailKey, tailVal := "", ""
	var tailRef blockRef
	var nMovedBlocks int

	t.mu.RLock()
	var ranges []histfile.DictRange
	for _, d := range t.dictsOf() {
		from := max(t.hist.upTo[d.name], 1) // code 0 is "no value" in every dictionary
		ranges = append(ranges, histfile.DictRange{Col: d.name, From: from, To: uint32(d.d.size())})
	}
	// The body at its likely size at once (the columns, ~100 bytes a row,
	// then the blocks as stored), not grown by copying.
	est := 100 << chunkBits
	for _, b := range t.blocks {
		if b.first >= base && b.first < end {
			est += b.size + histfile.Align
		}
	}
	w.Grow(est)
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
		w.Section("journal", 0, []byte(encodeBlock(t.site, jevs, compressBest)))
		w.Header.Journal = jrows
	}
	// The blocks: compressed ones as they are; others, and the head of
	// one that runs past the chunk, encoded again.
	for _, b := range refs {
		meta := histfile.BlockMeta{First: b.first, N: b.n, Skips: b.skips}
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
		w.Block(meta, val)
		nMovedBlocks++
	}

	if err := os.MkdirAll(s.hist.dir, 0o700); err != nil {
		return err
	}
	name := histfile.Name(id)
	path := filepath.Join(s.hist.dir, name)
	head, body := w.Parts()
	if err := histfile.WriteFileAtomic(path, head, body, s.hist.prefixed("move:")); err != nil {
		return err
	}
	s.hist.at("move:list")
	hf, err := histfile.Open(id, path)
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
		hf.Close()
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
	newName, _ := mappedCodes(hf, "name")
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
	refsNew := histBlockRefs(hf)
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
		hf.Close()
		delete(s.hist.files, id)
	}
	for id, rf := range s.hist.recs {
		rf.Close()
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
	old, new *histfile.File
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
func (s *DB) prepareRewrite(t *table, hf *histfile.File, id uint64, e histEdit) (*histRewrite, error) {
	ci := hf.Header.Chunk
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
	var w histfile.Writer
	t.mu.RLock()
	t.image(&w, ci, drops, strip, hf.Header.Dicts, e.blank)
	t.mu.RUnlock()

	jd, err := histJournal(hf)
	if err != nil {
		return nil, err
	}
	var jevs []*Event
	var jrows []int32
	for i, row := range hf.Header.Journal {
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
		w.Section("journal", 0, []byte(encodeBlock(t.site, jevs, compressBest)))
		w.Header.Journal = jrows
	}
	for i, b := range hf.Header.Blocks {
		meta := b
		val := hf.BlockValue(i)
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
		w.Block(meta, val)
	}
	name := histfile.Name(id)
	path := filepath.Join(s.hist.dir, name)
	head, body := w.Parts()
	if err := histfile.WriteFileAtomic(path, head, body, s.hist.prefixed("rewrite:")); err != nil {
		return nil, err
	}
	nf, err := histfile.Open(id, path)
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
		if _, err := tx.Delete(histKey(rw.old.ID)); err != nil && err != buntdb.ErrNotFound {
			return err
		}
		if _, _, err := tx.Set(histKey(rw.new.ID), rw.listing, nil); err != nil {
			return err
		}
		top = max(top, rw.new.ID)
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
		rw.new.Close()
		os.Remove(rw.new.Path)
	}
}

// swapRewrites makes the table read the rewritten files; the caller holds
// t.mu (write). The old files are returned, to be closed once the lock is
// released.
func (s *DB) swapRewrites(t *table, rws []*histRewrite) ([]*histfile.File, error) {
	var old []*histfile.File
	for _, rw := range rws {
		ci := rw.new.Header.Chunk
		if err := t.mapChunk(ci, rw.new); err != nil {
			return old, err
		}
		for i, b := range rw.new.Header.Blocks {
			bi := t.blockOf(b.First)
			if bi < 0 || t.blocks[bi].first != b.First {
				return old, fmt.Errorf("history rewrite lost track of block at row %d", b.First)
			}
			ref := &t.blocks[bi]
			s.bc.drop(ref.key)
			ref.key, ref.skips, ref.size = "", b.Skips, int(b.Size)
			if b.Size > 0 {
				ref.key = blockKeyIn(rw.new.ID, i)
			}
		}
		t.hist.files[ci] = rw.new
		s.hist.mu.Lock()
		delete(s.hist.files, rw.old.ID)
		s.hist.files[rw.new.ID] = rw.new
		s.hist.mu.Unlock()
		old = append(old, rw.old)
	}
	return old, nil
}

// closeOld unmaps and removes replaced files.
func closeOld(files []*histfile.File) {
	for _, hf := range files {
		hf.Close()
		os.Remove(hf.Path)
	}
}

// rewriteAll rewrites every file that e touches (the files of the rows it
// drops or strips, the blocks it changes, or every file when it blanks
// dictionary codes in fileBlanks' ranges), lists them in one transaction
// with logOps, and swaps them in. The caller holds s.maint.
func (s *DB) rewriteAll(t *table, e histEdit, blockVals map[string]string, touch func(hf *histfile.File) bool, logOps func(tx *buntdb.Tx) error, inMemory func()) error {
	t.mu.RLock()
	files := slices.Clone(t.hist.files)
	t.mu.RUnlock()
	var todo []*histfile.File
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
			for i := range hf.Header.Blocks {
				if v, ok := blockVals[blockKeyIn(hf.ID, i)]; ok {
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
	touch := func(hf *histfile.File) bool {
		for _, r := range hf.Header.Dicts {
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
