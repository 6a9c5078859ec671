package store

import (
	"hash/maphash"
	"math/bits"
	"slices"
	"strings"
)

// Columns are kept in chunks so that growing them never copies (or frees)
// more than one chunk: a plain slice doubling to a million rows would leave
// its old arrays for the collector and double the resident size for a while.
const (
	chunkBits = 16
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

// vec is an append-only chunked vector.
type vec[T any] struct {
	chunks [][]T
	n      int
	// nMapped leading chunks are views of history files, not ours to free.
	nMapped int
}

func (v *vec[T]) append(x T) {
	c := v.n >> chunkBits
	if c == len(v.chunks) {
		v.chunks = append(v.chunks, makeSlice[T](0, 64))
	}
	v.chunks[c] = appendChunk(v.chunks[c], x)
	v.n++
}

// free releases the chunks; v is empty afterwards.
func (v *vec[T]) free() {
	for i, c := range v.chunks {
		if i >= v.nMapped {
			freeSlice(c)
		}
	}
	*v = vec[T]{}
}

// appendChunk grows a chunk by doubling up to chunkSize, never beyond.
func appendChunk[T any](ch []T, x T) []T {
	if len(ch) == cap(ch) {
		nc := cap(ch) * 2
		if nc > chunkSize {
			nc = chunkSize
		}
		if nc < 64 {
			nc = 64
		}
		grown := makeSlice[T](len(ch), nc)
		copy(grown, ch)
		freeSlice(ch)
		ch = grown
	}
	return append(ch, x)
}

func (v *vec[T]) at(i int) T      { return v.chunks[i>>chunkBits][i&chunkMask] }
func (v *vec[T]) ptr(i int) *T    { return &v.chunks[i>>chunkBits][i&chunkMask] }
func (v *vec[T]) set(i int, x T)  { v.chunks[i>>chunkBits][i&chunkMask] = x }
func (v *vec[T]) len() int        { return v.n }
func (v *vec[T]) chunk(c int) []T { return v.chunks[c] }
func (v *vec[T]) numChunks() int  { return len(v.chunks) }
func (v *vec[T]) memBytes(sz int) int {
	total := 0
	for _, c := range v.chunks {
		total += cap(c) * sz
	}
	return total
}

// dict maps the strings of one column to dense codes. Code 0 is "no value".
// The index is an open-addressing table of codes (about 5 bytes a string,
// where a Go map takes 40 or more): a dictionary of millions of session
// ids is mostly its strings.
type dict struct {
	strs  []string
	slots []uint32 // codes by hash; 0 is empty
	n     int      // codes in slots
}

var dictSeed = maphash.MakeSeed()

func newDict() *dict {
	return &dict{strs: []string{""}}
}

// slot returns where s is in the index, or the empty slot where it would
// go, and its code (0 when absent).
func (d *dict) slot(s string) (uint64, uint32) {
	n := uint64(len(d.slots))
	hi, _ := bits.Mul64(maphash.String(dictSeed, s), n)
	for i := hi; ; i = next(i, n) {
		c := d.slots[i]
		if c == 0 || d.strs[c] == s {
			return i, c
		}
	}
}

// index adds code c (of string s, not in the index) to the index.
func (d *dict) index(s string, c uint32) {
	if (d.n+1)*4 > len(d.slots)*3 {
		d.rehash(max(64, len(d.slots)*2))
	}
	i, _ := d.slot(s)
	d.slots[i] = c
	d.n++
}

// reserve makes room for n codes: the string list and the index grow once.
func (d *dict) reserve(n int) {
	if n <= len(d.strs) {
		return
	}
	d.strs = slices.Grow(d.strs, n-len(d.strs))
	if size := n*4/3 + 1; size > len(d.slots) {
		d.rehash(size)
	}
}

// rehash moves the index into a table of size slots; blanked strings are
// left out.
func (d *dict) rehash(size int) {
	old := d.slots
	d.slots, d.n = make([]uint32, size), 0
	for _, oc := range old {
		if oc != 0 && d.strs[oc] != "" {
			i, _ := d.slot(d.strs[oc])
			d.slots[i] = oc
			d.n++
		}
	}
}

// code returns the code of s, adding it if new. s is copied when added, so
// it may point into a request body or a block.
func (d *dict) code(s string) uint32 {
	if s == "" {
		return 0
	}
	if len(d.slots) > 0 {
		if _, c := d.slot(s); c != 0 {
			return c
		}
	}
	s = strings.Clone(s)
	c := uint32(len(d.strs))
	d.strs = append(d.strs, s)
	d.index(s, c)
	return c
}

// lookup returns the code of s and whether it is known.
func (d *dict) lookup(s string) (uint32, bool) {
	if s == "" {
		return 0, true
	}
	if len(d.slots) == 0 {
		return 0, false
	}
	_, c := d.slot(s)
	return c, c != 0
}

// blank forgets the string of code c (a deleted person's distinct id): it
// keeps its code, and cannot be found any more.
func (d *dict) blank(c uint32) {
	if int(c) < len(d.strs) {
		d.strs[c] = "" // its slot stays, matching nothing
	}
}

func (d *dict) str(c uint32) string { return d.strs[c] }
func (d *dict) size() int           { return len(d.strs) }

// column holds one property of every row as dictionary codes. Each chunk of
// rows is stored as narrow as its codes allow: not at all while every code is
// 0 (a property server events never carry costs nothing), then 8, 16 or 32
// bits a row.
type column struct {
	key    string
	dict   *dict
	chunks []codeChunk
	n      int
}

// codeChunk is up to chunkSize codes of width w bytes (0: all zero).
type codeChunk struct {
	w uint8
	// mapped: the arrays are a view of a history file, not ours to free.
	mapped bool
	n      int
	b8     []uint8
	b16    []uint16
	b32    []uint32
}

func newColumn(key string) *column {
	return &column{key: key, dict: newDict()}
}

func (c *column) len() int { return c.n }

func widthFor(code uint32) uint8 {
	switch {
	case code == 0:
		return 0
	case code <= 0xff:
		return 1
	case code <= 0xffff:
		return 2
	}
	return 4
}

// widen re-stores the chunk at width w (larger than its own).
func (ch *codeChunk) widen(w uint8) {
	capacity := 64
	for capacity < ch.n+1 {
		capacity *= 2
	}
	if capacity > chunkSize {
		capacity = chunkSize
	}
	var b8 []uint8
	var b16 []uint16
	var b32 []uint32
	switch w {
	case 1:
		b8 = makeSlice[uint8](ch.n, capacity)
	case 2:
		b16 = makeSlice[uint16](ch.n, capacity)
	case 4:
		b32 = makeSlice[uint32](ch.n, capacity)
	}
	for i := 0; i < ch.n; i++ {
		v := ch.get(i)
		switch w {
		case 1:
			b8[i] = uint8(v)
		case 2:
			b16[i] = uint16(v)
		case 4:
			b32[i] = v
		}
	}
	ch.free()
	ch.w, ch.b8, ch.b16, ch.b32 = w, b8, b16, b32
}

func (ch *codeChunk) free() {
	if ch.mapped {
		ch.b8, ch.b16, ch.b32, ch.mapped = nil, nil, nil, false
		return
	}
	freeSlice(ch.b8)
	freeSlice(ch.b16)
	freeSlice(ch.b32)
	ch.b8, ch.b16, ch.b32 = nil, nil, nil
}

// free releases the column's chunks.
func (c *column) free() {
	for i := range c.chunks {
		c.chunks[i].free()
	}
	c.chunks, c.n = nil, 0
}

func (ch *codeChunk) get(i int) uint32 {
	switch ch.w {
	case 1:
		return uint32(ch.b8[i])
	case 2:
		return uint32(ch.b16[i])
	case 4:
		return ch.b32[i]
	}
	return 0
}

func (ch *codeChunk) set(i int, code uint32) {
	if w := widthFor(code); w > ch.w {
		ch.widen(w)
	}
	switch ch.w {
	case 1:
		ch.b8[i] = uint8(code)
	case 2:
		ch.b16[i] = uint16(code)
	case 4:
		ch.b32[i] = code
	}
}

func (ch *codeChunk) append(code uint32) {
	if w := widthFor(code); w > ch.w {
		ch.widen(w)
	}
	switch ch.w {
	case 1:
		ch.b8 = appendChunk(ch.b8, uint8(code))
	case 2:
		ch.b16 = appendChunk(ch.b16, uint16(code))
	case 4:
		ch.b32 = appendChunk(ch.b32, code)
	}
	ch.n++
}

// appendCode adds a row.
func (c *column) appendCode(code uint32) {
	ci := c.n >> chunkBits
	if ci == len(c.chunks) {
		c.chunks = append(c.chunks, codeChunk{})
	}
	c.chunks[ci].append(code)
	c.n++
}

// appendValue adds a row holding s ("" for none).
func (c *column) appendValue(s string) { c.appendCode(c.dict.code(s)) }

// setCode replaces the code of an existing row.
func (c *column) setCode(row int, code uint32) {
	c.chunks[row>>chunkBits].set(row&chunkMask, code)
}

// at returns the code of row.
func (c *column) at(row int) uint32 {
	return c.chunks[row>>chunkBits].get(row & chunkMask)
}

// value returns the string of row ("" for none).
func (c *column) value(row int) string { return c.dict.str(c.at(row)) }

// codes returns the codes of chunk ci, using buf (of chunkSize) when the
// chunk is not stored 32 bits wide. Scans read columns a chunk at a time
// through it, whatever the width.
func (c *column) codes(ci int, buf []uint32) []uint32 {
	ch := &c.chunks[ci]
	switch ch.w {
	case 4:
		return ch.b32
	case 2:
		buf = buf[:ch.n]
		for i, v := range ch.b16 {
			buf[i] = uint32(v)
		}
		return buf
	case 1:
		buf = buf[:ch.n]
		for i, v := range ch.b8 {
			buf[i] = uint32(v)
		}
		return buf
	}
	buf = buf[:ch.n]
	clear(buf)
	return buf
}

func (c *column) memBytes() int {
	n := 0
	for _, ch := range c.chunks {
		n += cap(ch.b8) + 2*cap(ch.b16) + 4*cap(ch.b32)
	}
	for _, s := range c.dict.strs {
		n += len(s) + 16 + 24 // string, slice entry, map entry (approximate)
	}
	return n
}

// uuidIndex finds rows by uuid key: open addressing over row numbers, the
// keys themselves live in the table's uuid column. Beside each slot, four
// bits of its key's hash (1-15; 0 is empty) let a lookup pass the slots of
// other keys without reading their keys: at the load linear probing runs
// at, an absent uuid (every new event) met several occupied slots, each a
// cache miss into the uuid column. Half a byte a slot.
type uuidIndex struct {
	slots []uint32 // row + 1; 0 is empty
	tags  []uint8  // two slots' tags a byte, the even slot's in the low bits
	count int
}

func uuidHash(k *UUIDKey) uint64 {
	// The keys are random or hashed already; mixing two words is enough.
	a := uint64(k[0]) | uint64(k[1])<<8 | uint64(k[2])<<16 | uint64(k[3])<<24 | uint64(k[4])<<32 | uint64(k[5])<<40 | uint64(k[6])<<48 | uint64(k[7])<<56
	b := uint64(k[8]) | uint64(k[9])<<8 | uint64(k[10])<<16 | uint64(k[11])<<24 | uint64(k[12])<<32 | uint64(k[13])<<40 | uint64(k[14])<<48 | uint64(k[15])<<56
	h := a*0x9E3779B97F4A7C15 ^ b
	h ^= h >> 29
	h *= 0xBF58476D1CE4E5B9
	h ^= h >> 32
	return h
}

// uuidTag is a hash's tag: its low bits (home uses the high ones), 1-15.
func uuidTag(h uint64) uint8 { return uint8(h%15) + 1 }

func (x *uuidIndex) tag(i uint64) uint8 { return x.tags[i>>1] >> ((i & 1) << 2) & 15 }

func (x *uuidIndex) setTag(i uint64, t uint8) { x.tags[i>>1] |= t << ((i & 1) << 2) }

// find returns the row holding key, or -1.
func (x *uuidIndex) find(key *UUIDKey, keys *vec[UUIDKey]) int {
	if len(x.slots) == 0 {
		return -1
	}
	n := uint64(len(x.slots))
	h := uuidHash(key)
	want := uuidTag(h)
	for i := x.home(h); ; i = next(i, n) {
		switch x.tag(i) {
		case 0:
			return -1
		case want:
			if s := x.slots[i]; *keys.ptr(int(s - 1)) == *key {
				return int(s - 1)
			}
		}
	}
}

// insert adds row, whose key is keys[row]; the key must not be present.
func (x *uuidIndex) insert(row int, keys *vec[UUIDKey]) {
	if (x.count+1)*4 > len(x.slots)*3 {
		x.grow(keys)
	}
	x.put(row, keys)
	x.count++
}

func (x *uuidIndex) put(row int, keys *vec[UUIDKey]) {
	n := uint64(len(x.slots))
	h := uuidHash(keys.ptr(row))
	for i := x.home(h); ; i = next(i, n) {
		if x.tag(i) == 0 {
			x.slots[i] = uint32(row + 1)
			x.setTag(i, uuidTag(h))
			return
		}
	}
}

func (x *uuidIndex) grow(keys *vec[UUIDKey]) {
	x.rehash(max(1024, len(x.slots)*3/2), keys)
}

// home maps a hash onto the slots (any number of them: a table sized to
// its keys, not to the next power of two, which at 50M rows would waste up
// to half of 500 MB).
func (x *uuidIndex) home(h uint64) uint64 {
	hi, _ := bits.Mul64(h, uint64(len(x.slots)))
	return hi
}

func next(i, n uint64) uint64 {
	if i++; i == n {
		return 0
	}
	return i
}

// reserve sizes the index for n keys at once (at start, when the number
// of rows in history files is known), sparing the rehash of every doubling.
func (x *uuidIndex) reserve(n int, keys *vec[UUIDKey]) {
	if size := max(1024, n*4/3+1); size > len(x.slots) {
		x.rehash(size, keys)
	}
}

// rehash moves the index into a table of size slots.
func (x *uuidIndex) rehash(size int, keys *vec[UUIDKey]) {
	old, oldTags := x.slots, x.tags
	x.slots = makeSlice[uint32](size, size) // zeroed, as make and mmap both give
	x.tags = makeSlice[uint8]((size+1)/2, (size+1)/2)
	for _, s := range old {
		if s != 0 {
			x.put(int(s-1), keys)
		}
	}
	freeSlice(old)
	freeSlice(oldTags)
}

func (x *uuidIndex) free() {
	freeSlice(x.slots)
	freeSlice(x.tags)
	*x = uuidIndex{}
}
