package store

import "strings"

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
}

func (v *vec[T]) append(x T) {
	c := v.n >> chunkBits
	if c == len(v.chunks) {
		v.chunks = append(v.chunks, make([]T, 0, 64))
	}
	v.chunks[c] = appendChunk(v.chunks[c], x)
	v.n++
}

// appendChunk grows a chunk by doubling up to chunkSize, never beyond.
func appendChunk[T any](ch []T, x T) []T {
	if len(ch) == cap(ch) {
		nc := cap(ch) * 2
		if nc > chunkSize {
			nc = chunkSize
		}
		grown := make([]T, len(ch), nc)
		copy(grown, ch)
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
type dict struct {
	codes map[string]uint32
	strs  []string
}

func newDict() *dict {
	return &dict{codes: make(map[string]uint32), strs: []string{""}}
}

// code returns the code of s, adding it if new. s is copied when added, so
// it may point into a request body or a block.
func (d *dict) code(s string) uint32 {
	if s == "" {
		return 0
	}
	if c, ok := d.codes[s]; ok {
		return c
	}
	s = strings.Clone(s)
	c := uint32(len(d.strs))
	d.strs = append(d.strs, s)
	d.codes[s] = c
	return c
}

// lookup returns the code of s and whether it is known.
func (d *dict) lookup(s string) (uint32, bool) {
	if s == "" {
		return 0, true
	}
	c, ok := d.codes[s]
	return c, ok
}

func (d *dict) str(c uint32) string { return d.strs[c] }
func (d *dict) size() int           { return len(d.strs) }

// column holds one property of every row as dictionary codes, 16 bits wide
// while the dictionary is small and 32 bits once it outgrows that.
type column struct {
	key  string
	dict *dict
	w16  vec[uint16]
	w32  vec[uint32]
	wide bool
}

func newColumn(key string) *column {
	return &column{key: key, dict: newDict()}
}

func (c *column) len() int {
	if c.wide {
		return c.w32.len()
	}
	return c.w16.len()
}

// appendCode adds a row.
func (c *column) appendCode(code uint32) {
	if !c.wide && code > 0xffff {
		c.widen()
	}
	if c.wide {
		c.w32.append(code)
	} else {
		c.w16.append(uint16(code))
	}
}

// appendValue adds a row holding s ("" for none).
func (c *column) appendValue(s string) { c.appendCode(c.dict.code(s)) }

// setCode replaces the code of an existing row.
func (c *column) setCode(row int, code uint32) {
	if !c.wide && code > 0xffff {
		c.widen()
	}
	if c.wide {
		c.w32.set(row, code)
	} else {
		c.w16.set(row, uint16(code))
	}
}

func (c *column) widen() {
	var w vec[uint32]
	for ci := 0; ci < c.w16.numChunks(); ci++ {
		ch := c.w16.chunk(ci)
		wc := make([]uint32, len(ch), cap(ch))
		for i, x := range ch {
			wc[i] = uint32(x)
		}
		w.chunks = append(w.chunks, wc)
	}
	w.n = c.w16.n
	c.w32 = w
	c.w16 = vec[uint16]{}
	c.wide = true
}

// at returns the code of row.
func (c *column) at(row int) uint32 {
	if c.wide {
		return c.w32.at(row)
	}
	return uint32(c.w16.at(row))
}

// value returns the string of row ("" for none).
func (c *column) value(row int) string { return c.dict.str(c.at(row)) }

// forChunks calls fn for every chunk of codes with the row number of its first
// element; exactly one of c16/c32 is non-nil.
func (c *column) forChunks(fn func(base int, c16 []uint16, c32 []uint32)) {
	if c.wide {
		for i, ch := range c.w32.chunks {
			fn(i<<chunkBits, nil, ch)
		}
		return
	}
	for i, ch := range c.w16.chunks {
		fn(i<<chunkBits, ch, nil)
	}
}

func (c *column) memBytes() int {
	n := c.w16.memBytes(2) + c.w32.memBytes(4)
	for _, s := range c.dict.strs {
		n += len(s) + 16 + 24 // string, slice entry, map entry (approximate)
	}
	return n
}

// uuidIndex finds rows by uuid key: open addressing over row numbers, the
// keys themselves live in the table's uuid column.
type uuidIndex struct {
	slots []uint32 // row + 1; 0 is empty
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

// find returns the row holding key, or -1.
func (x *uuidIndex) find(key *UUIDKey, keys *vec[UUIDKey]) int {
	if len(x.slots) == 0 {
		return -1
	}
	mask := uint64(len(x.slots) - 1)
	for i := uuidHash(key) & mask; ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == 0 {
			return -1
		}
		if *keys.ptr(int(s - 1)) == *key {
			return int(s - 1)
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
	mask := uint64(len(x.slots) - 1)
	for i := uuidHash(keys.ptr(row)) & mask; ; i = (i + 1) & mask {
		if x.slots[i] == 0 {
			x.slots[i] = uint32(row + 1)
			return
		}
	}
}

func (x *uuidIndex) grow(keys *vec[UUIDKey]) {
	n := len(x.slots) * 2
	if n == 0 {
		n = 1024
	}
	old := x.slots
	x.slots = make([]uint32, n)
	for _, s := range old {
		if s != 0 {
			x.put(int(s-1), keys)
		}
	}
}
