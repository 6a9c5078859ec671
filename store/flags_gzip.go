package store

import (
	"encoding/binary"
	"hash/crc32"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
)

// The /flags/ answer, gzip-compressed without running a compressor per
// request. An answer is the same few renderings (flags_wire.go) in a fixed
// layout, so nearly all of it repeats what came just before: each flag's
// entry is compressed once against each rendering of the previous flag
// that was seen before it (an LZ77 pass at first use, kept with the
// rendering), and the featureFlags and featureFlagPayloads sections copy
// their keys and payloads from the entries, at distances known as the
// answer is laid out. Everything goes into one deflate block with the
// fixed Huffman codes (RFC 1951), so that precompressed pieces join at any
// bit. The CRC is taken over the plain answer, which the caller has.
// Answers are compressed from the second time they come (the same outcome
// of every flag: a returning visitor asks on every page load) and kept
// compressed up to what differs between requests, so that from the third
// time only that rest is encoded; an answer seen once goes plain.

// AppendFlagsJSON appends `{"flags":{...},"featureFlags":{...},
// "featureFlagPayloads":{...}` (open: the caller closes it) for wires.
func AppendFlagsJSON(b []byte, wires []*FlagWire) []byte {
	n := 64
	for _, w := range wires {
		n += len(w.Entry) + len(w.Value) + len(w.Payload) + 3
	}
	if cap(b)-len(b) < n {
		b = append(make([]byte, 0, len(b)+n), b...)
	}
	b = append(b, gzHead...)
	for i, w := range wires {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, w.Entry...)
	}
	b = append(b, gzMid1...)
	for i, w := range wires {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, w.Value...)
	}
	b = append(b, gzMid2...)
	first := true
	for _, w := range wires {
		if w.Payload == nil {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, w.Payload...)
	}
	return append(b, '}')
}

const (
	gzHead = `{"flags":{`
	gzMid1 = `},"featureFlags":{`
	gzMid2 = `},"featureFlagPayloads":{`
)

// AppendFlagsGzip appends the gzip file of plain, which is
// AppendFlagsJSON(wires) followed by anything (the rest of the answer),
// when it pays off: when the same flags' answer came before, so that it
// will likely come again and its compressed prefix is kept (compressing
// an answer afresh costs about what writing the bytes it saves does). It
// returns dst unchanged and false otherwise, or when plain is not laid
// out so.
func AppendFlagsGzip(dst []byte, wires []*FlagWire, plain []byte) ([]byte, bool) {
	start := len(dst)
	key := uint64(len(wires))
	for _, fw := range wires {
		key = (key ^ fw.id) * 0x100000001b3
	}
	if p := gzPrefixes.get(key, wires); p != nil && p.plainLen < len(plain) {
		// The same flags' answer was compressed before: only the rest
		// (the request's id and the like) is new.
		dst = append(dst, p.out...)
		w := bitWriter{out: dst, acc: p.acc, n: p.n}
		tail := plain[p.plainLen:]
		w.literals(tail)
		w.code(256)
		w.flush()
		dst = binary.LittleEndian.AppendUint32(w.out, crc32.Update(p.crc, crc32.IEEETable, tail))
		return binary.LittleEndian.AppendUint32(dst, uint32(len(plain))), true
	}
	if !gzPrefixes.again(key) {
		return dst, false
	}
	dst = slices.Grow(dst, len(plain)/3+256)
	dst = append(dst, 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff)
	w := bitWriter{out: dst}
	w.bits(1, 1) // the last block,
	w.bits(1, 2) // with the fixed codes
	var posBuf [128]int
	entryPos := posBuf[:0]
	if len(wires) > len(posBuf) {
		entryPos = make([]int, 0, len(wires))
	}
	pos := 0
	w.seg(&gzHeadSeg)
	pos += len(gzHead)
	var prev *FlagWire
	for i, fw := range wires {
		w.seg(fw.segment(prev, i == 0))
		if i > 0 {
			pos++
		}
		entryPos = append(entryPos, pos)
		pos += len(fw.Entry)
		prev = fw
	}
	w.seg(&gzMid1Seg)
	pos += len(gzMid1)
	for i, fw := range wires {
		if pos+len(fw.Value)+1 > len(plain) {
			return dst[:start], false
		}
		if i > 0 {
			w.literal(',')
			pos++
		}
		k := fw.keyLen + 1 // `"<key>":`
		w.copy(plain, pos, k, pos-entryPos[i])
		pos += k
		w.seg(fw.valueTail())
		pos += len(fw.Value) - k
	}
	w.seg(&gzMid2Seg)
	pos += len(gzMid2)
	first := true
	for i, fw := range wires {
		if fw.Payload == nil {
			continue
		}
		if pos+len(fw.Payload)+1 > len(plain) {
			return dst[:start], false
		}
		if !first {
			w.literal(',')
			pos++
		}
		first = false
		k := fw.keyLen + 1
		w.copy(plain, pos, k, pos-entryPos[i])
		pos += k
		n := len(fw.Payload) - k
		w.copy(plain, pos, n, pos-(entryPos[i]+fw.payloadAt))
		pos += n
	}
	if pos >= len(plain) {
		return dst[:start], false
	}
	crc := crc32.ChecksumIEEE(plain[:pos])
	gzPrefixes.put(key, &gzPrefix{wires: slices.Clone(wires), out: slices.Clone(w.out[start:]),
		acc: w.acc, n: w.n, crc: crc, plainLen: pos})
	w.literals(plain[pos:]) // "}" and the rest
	w.code(256)             // end of block
	w.flush()
	dst = binary.LittleEndian.AppendUint32(w.out, crc32.Update(crc, crc32.IEEETable, plain[pos:]))
	return binary.LittleEndian.AppendUint32(dst, uint32(len(plain))), true
}

// gzPrefix is a compressed answer up to what differs between requests:
// the gzip header and the codes of AppendFlagsJSON(wires), whole bytes in
// out and the bits after them in acc.
type gzPrefix struct {
	wires    []*FlagWire
	out      []byte
	acc      uint64
	n        uint
	crc      uint32 // of the plainLen bytes
	plainLen int
}

// gzPrefixes keeps the compressed answers that came twice (a returning
// visitor asks on every page load), up to maxGzPrefixBytes, emptied when
// full.
var gzPrefixes gzCache

const maxGzPrefixBytes = 16 << 20

type gzCache struct {
	mu    sync.Mutex
	m     map[uint64]*gzPrefix
	bytes int
	seen  [4096]atomic.Uint64 // keys seen once, by key mod 4096
}

func (c *gzCache) get(key uint64, wires []*FlagWire) *gzPrefix {
	c.mu.Lock()
	p := c.m[key]
	c.mu.Unlock()
	if p == nil || len(p.wires) != len(wires) {
		return nil
	}
	for i, w := range p.wires {
		if wires[i] != w {
			return nil
		}
	}
	return p
}

// again reports whether key came before, and notes that it came.
func (c *gzCache) again(key uint64) bool {
	s := &c.seen[key%uint64(len(c.seen))]
	if s.Load() == key {
		return true
	}
	s.Store(key)
	return false
}

func (c *gzCache) put(key uint64, p *gzPrefix) {
	size := len(p.out) + 8*len(p.wires) + 64
	c.mu.Lock()
	if c.m == nil || c.bytes+size > maxGzPrefixBytes {
		c.m, c.bytes = map[uint64]*gzPrefix{}, 0
	}
	if c.m[key] == nil {
		c.m[key] = p
		c.bytes += size
	}
	c.mu.Unlock()
}

// bitSeg is a run of deflate codes, whole 32-bit words then nbits%32 bits.
type bitSeg struct {
	words []uint32
	nbits int
}

// The constant runs of an answer, made by init once the codes are.
var gzHeadSeg, gzMid1Seg, gzMid2Seg bitSeg

func literalSeg(s string) bitSeg {
	w := bitWriter{toWords: true}
	w.literals([]byte(s))
	return w.segment()
}

// wireSeg is a rendering's entry compressed after the rendering prev.
type wireSeg struct {
	prev *FlagWire
	seg  bitSeg
}

// maxWireSegs bounds the renderings of the previous flag an entry keeps a
// compression after; past it, an entry goes compressed on its own, which
// fits after anything.
const maxWireSegs = 256

// segment returns fw's entry, preceded by a comma unless first, compressed
// to follow prev's entry (or the answer's head when first). The
// compressions are kept by prev's ordinal among its flag's renderings.
func (fw *FlagWire) segment(prev *FlagWire, first bool) *bitSeg {
	idx := 0
	if !first {
		if prev == nil {
			return fw.aloneSeg()
		}
		idx = prev.ord + 1
	}
	if segs := fw.segs.Load(); segs != nil && idx < len(*segs) {
		if s := (*segs)[idx]; s != nil {
			if s.prev == prev {
				return &s.seg
			}
			// A rendering of another flag came before (an answer for some
			// of the flags only).
			return fw.aloneSeg()
		}
	}
	if idx > maxWireSegs {
		return fw.aloneSeg()
	}
	s := &wireSeg{prev: prev}
	if first {
		s.seg = compressAfter([]byte(gzHead), fw.Entry)
	} else {
		s.seg = compressAfter(prev.Entry, append([]byte{','}, fw.Entry...))
	}
	for {
		old := fw.segs.Load()
		var next []*wireSeg
		if old != nil {
			next = append(next, *old...)
		}
		for len(next) <= idx {
			next = append(next, nil)
		}
		if next[idx] != nil {
			break
		}
		next[idx] = s
		if fw.segs.CompareAndSwap(old, &next) {
			break
		}
	}
	return &s.seg
}

// valueTail is what follows the key in fw.Value, as literals.
func (fw *FlagWire) valueTail() *bitSeg {
	if s := fw.tail.Load(); s != nil {
		return s
	}
	s := literalSeg(string(fw.Value[fw.keyLen+1:]))
	fw.tail.Store(&s)
	return &s
}

// aloneSeg is fw's entry after a comma, compressed on its own.
func (fw *FlagWire) aloneSeg() *bitSeg {
	if s := fw.alone.Load(); s != nil {
		return s
	}
	s := compressAfter(nil, append([]byte{','}, fw.Entry...))
	fw.alone.Store(&s)
	return &s
}

// compressAfter is data compressed by greedy LZ77 with dict just before
// it in the stream.
func compressAfter(dict, data []byte) bitSeg {
	const (
		window   = 32768
		maxChain = 48
		hashBits = 12
	)
	buf := append(append(make([]byte, 0, len(dict)+len(data)), dict...), data...)
	head := make([]int32, 1<<hashBits)
	for i := range head {
		head[i] = -1
	}
	chain := make([]int32, len(buf))
	hash := func(p int) uint32 {
		return (uint32(buf[p]) | uint32(buf[p+1])<<8 | uint32(buf[p+2])<<16) * 2654435761 >> (32 - hashBits)
	}
	insert := func(p int) {
		if p+3 <= len(buf) {
			h := hash(p)
			chain[p] = head[h]
			head[h] = int32(p)
		}
	}
	for p := 0; p < len(dict); p++ {
		insert(p)
	}
	w := bitWriter{toWords: true}
	for p := len(dict); p < len(buf); {
		best, bestAt := 0, 0
		if p+3 <= len(buf) {
			limit := min(258, len(buf)-p)
			for q, n := int(head[hash(p)]), 0; q >= 0 && p-q <= window && n < maxChain; q, n = int(chain[q]), n+1 {
				l := 0
				for l < limit && buf[q+l] == buf[p+l] {
					l++
				}
				if l > best {
					best, bestAt = l, q
					if l == limit {
						break
					}
				}
			}
		}
		if best >= 3 {
			w.match(best, p-bestAt)
			for end := p + best; p < end; p++ {
				insert(p)
			}
			continue
		}
		w.literal(buf[p])
		insert(p)
		p++
	}
	return w.segment()
}

// The fixed Huffman codes of RFC 1951 §3.2.6, bit-reversed for writing
// least significant bit first.
var (
	fixedLit    [288]uint16
	fixedLitLen [288]uint8
	fixedDist   [30]uint16
	lengthCode  [259]uint8 // length → code - 257
	// lengthBits is a length's code and extra bits, as written.
	lengthBits [259]struct {
		v uint32
		n uint8
	}
)

var (
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

func init() {
	for c := 0; c < 288; c++ {
		var code, n int
		switch {
		case c < 144:
			code, n = 0x30+c, 8
		case c < 256:
			code, n = 0x190+c-144, 9
		case c < 280:
			code, n = c-256, 7
		default:
			code, n = 0xc0+c-280, 8
		}
		fixedLit[c] = uint16(bits.Reverse16(uint16(code)) >> (16 - n))
		fixedLitLen[c] = uint8(n)
	}
	for d := 0; d < 30; d++ {
		fixedDist[d] = uint16(bits.Reverse16(uint16(d)) >> 11)
	}
	for i := 0; i < 29; i++ {
		hi := 259
		if i < 28 {
			hi = int(lengthBase[i+1])
		}
		for l := int(lengthBase[i]); l < hi && l <= 258; l++ {
			lengthCode[l] = uint8(i)
		}
	}
	for l := 3; l <= 258; l++ {
		lc := int(lengthCode[l])
		c := 257 + lc
		lengthBits[l].v = uint32(fixedLit[c]) | uint32(l-int(lengthBase[lc]))<<fixedLitLen[c]
		lengthBits[l].n = fixedLitLen[c] + lengthExtra[lc]
	}
	gzHeadSeg, gzMid1Seg, gzMid2Seg = literalSeg(gzHead), literalSeg(gzMid1), literalSeg(gzMid2)
}

// bitWriter writes deflate codes least significant bit first.
type bitWriter struct {
	acc     uint64
	n       uint
	out     []byte
	words   []uint32 // whole words, when toWords (a run for segment)
	toWords bool
}

func (w *bitWriter) bits(v uint64, n uint) {
	w.acc |= v << w.n
	w.n += n
	if w.n >= 32 {
		if w.toWords {
			w.words = append(w.words, uint32(w.acc))
		} else {
			w.out = binary.LittleEndian.AppendUint32(w.out, uint32(w.acc))
		}
		w.acc >>= 32
		w.n -= 32
	}
}

func (w *bitWriter) code(c int) { w.bits(uint64(fixedLit[c]), uint(fixedLitLen[c])) }

func (w *bitWriter) literal(b byte) { w.code(int(b)) }

func (w *bitWriter) literals(p []byte) {
	for _, b := range p {
		w.code(int(b))
	}
}

// match writes a copy of length 3..258 from dist 1..32768 back, in one
// go: the length's code and extra bits (lengthBits), then the distance's.
func (w *bitWriter) match(length, dist int) {
	lb := lengthBits[length]
	var dc int
	if x := dist - 1; x < 4 {
		dc = x
	} else {
		l := bits.Len(uint(x))
		dc = 2*(l-1) + int(x>>(l-2)&1)
	}
	v := uint64(lb.v) | (uint64(fixedDist[dc])|uint64(dist-int(distBase[dc]))<<5)<<lb.n
	w.bits(v, uint(lb.n)+5+uint(distExtra[dc]))
}

// copy writes plain[pos:pos+n], which repeats what lies dist bytes back:
// as copies when the window reaches, else as literals.
func (w *bitWriter) copy(plain []byte, pos, n, dist int) {
	if dist < 1 || dist > 32768 || n < 3 {
		w.literals(plain[pos : pos+n])
		return
	}
	for n >= 3 {
		l := n
		if l > 258 {
			l = 258
			if n-l < 3 {
				l = n - 3
			}
		}
		w.match(l, dist)
		n -= l
		pos += l
	}
	w.literals(plain[pos : pos+n])
}

// seg writes a precompressed run.
func (w *bitWriter) seg(s *bitSeg) {
	full := s.nbits / 32
	// Fewer than 32 bits wait in acc between calls, so each word fills
	// one more.
	acc, n, out := w.acc, w.n, w.out
	for _, x := range s.words[:full] {
		acc |= uint64(x) << n
		out = binary.LittleEndian.AppendUint32(out, uint32(acc))
		acc >>= 32
	}
	w.acc, w.out = acc, out
	if r := uint(s.nbits % 32); r > 0 {
		// The last word holds the remaining bits in its low bits.
		w.bits(uint64(s.words[full])&(1<<r-1), r)
	}
}

// segment ends a bitWriter made for a run (its out unused): the whole
// words, then the remaining bits as one more word.
func (w *bitWriter) segment() bitSeg {
	s := bitSeg{words: w.words, nbits: 32*len(w.words) + int(w.n)}
	if w.n > 0 {
		s.words = append(s.words, uint32(w.acc))
	}
	return s
}

func (w *bitWriter) flush() {
	for w.n > 0 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		if w.n < 8 {
			w.n = 0
		} else {
			w.n -= 8
		}
	}
}
