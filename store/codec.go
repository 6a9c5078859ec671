package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// A block is the unit the log stores: the events of one site from one group
// commit, or several such blocks merged by the compactor. Its value is
//
//	'F' version flags payload
//
// where flags bit 0 says the payload is zstd-compressed, bit 1 that it is
// S2-compressed (commit blocks written before 2026-11-26), and no bit that
// it is stored as is (commit blocks now). The payload is
//
//	uvarint nStrings, nStrings × (uvarint len, bytes)   a string table
//	uvarint site                                        string index
//	uvarint nEvents, nEvents × event
//
// and an event is
//
//	varint time (Unix ms), 16 bytes uuid key,
//	uvarint uuid string index + 1 (0: the canonical form of the key),
//	uvarint name, uvarint distinct id,
//	uvarint nProps, nProps × (uvarint key, kind byte, [uvarint value])
//
// Every string is stored once per block, so repeated keys and values cost a
// byte or two per event before compression.
const (
	blockMagic   = 'F'
	blockVersion = 1
	flagZstd     = 1
	flagS2       = 2
)

var errBadBlock = errors.New("store: corrupt block")

// maxBlockBytes bounds a block's decompressed size (zstd's decoder has the
// same bound): far above any real block, far below what would hurt.
const maxBlockBytes = 1 << 30

// Commit blocks, on the request path, are stored uncompressed: they live
// only until the compactor merges them (at most CompactAfter rows, or
// CompactEvery), into large blocks compressed with zstd in the background.
// S2 at commit cost ~4% of the capture path's CPU for blocks that are
// rewritten seconds later; the log's file is written a little more.
type compression int

const (
	compressFast compression = iota
	compressBest
)

var (
	zstdEnc *zstd.Encoder
	// zstdBlockEnc compresses event blocks. Its fastest level costs half
	// the CPU of the default one on posthog-js shaped blocks of 2,048
	// events (0.75 against 1.3 µs an event) and its output is smaller
	// there (57 against 61 bytes an event): the string table has already
	// taken out what repeats across events.
	zstdBlockEnc *zstd.Encoder
	zstdDec      *zstd.Decoder
)

func init() {
	var err error
	zstdEnc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		panic(err)
	}
	zstdBlockEnc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		panic(err)
	}
	zstdDec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxBlockBytes))
	if err != nil {
		panic(err)
	}
}

// blockEncoder builds blocks. Reuse one to keep allocations down.
type blockEncoder struct {
	strs  map[string]uint32
	table []byte
	nstr  int
	body  []byte
	out   []byte
	// scratch takes the compressed output before it is copied to its
	// exact size.
	scratch []byte

	// For event: the key and value strings of the previous event, by
	// property position, with their indexes. Events of one SDK send their
	// properties in the same order, most keys and many values alike, so a
	// comparison there spares most lookups in strs.
	posKeys, posVals []posEntry

	// For merge: a block's decompressed payload, its strings' offsets
	// there (start, end) and their indexes here plus one.
	dec        []byte
	soff, smap []uint32

	// For raw: each decoded block's string indexes as this block's (plus
	// one; 0 is not yet known), so that a string of a merged block is
	// looked up once, not once per use.
	remaps  map[*decodedBlock][]uint32
	lastD   *decodedBlock
	lastMap []uint32
}

// posEntry is a string of the block and its index.
type posEntry struct {
	s string
	i uint32
}

// maxPos bounds the property positions event remembers.
const maxPos = 512

// posStr is str(s) for s at position j of the property list; with
// noLookup, a string not at hand there (nor equal to did, whose index is
// didIdx) is added to the table again.
func (e *blockEncoder) posStr(c *[]posEntry, j int, s string, noLookup bool, did string, didIdx uint32) uint32 {
	pc := *c
	if j < len(pc) && pc[j].s == s {
		return pc[j].i
	}
	var i uint32
	switch {
	case !noLookup:
		i = e.str(s)
	case s == did: // $device_id, $user_id and the like
		i = didIdx
	default:
		i = e.add(s)
	}
	switch {
	case j < len(pc):
		pc[j] = posEntry{s, i}
	case j == len(pc) && j < maxPos:
		*c = append(pc, posEntry{s, i})
	}
	return i
}

var encoderPool = sync.Pool{New: func() any { return &blockEncoder{strs: make(map[string]uint32, 256)} }}

func (e *blockEncoder) reset() {
	e.forgetPos()
	clear(e.remaps)
	e.lastD, e.lastMap = nil, nil
	clear(e.strs)
	e.table = e.table[:0]
	e.body = e.body[:0]
	e.nstr = 0
}

// add appends s to the string table without looking for it there.
func (e *blockEncoder) add(s string) uint32 {
	i := uint32(e.nstr)
	e.nstr++
	e.table = binary.AppendUvarint(e.table, uint64(len(s)))
	e.table = append(e.table, s...)
	return i
}

func (e *blockEncoder) str(s string) uint32 {
	if i, ok := e.strs[s]; ok {
		return i
	}
	i := uint32(e.nstr)
	e.nstr++
	e.table = binary.AppendUvarint(e.table, uint64(len(s)))
	e.table = append(e.table, s...)
	// The key is the table's copy: s may live in a buffer its owner
	// reuses (a request's body, the payload merge decompressed). Bytes of
	// the table are not written again until reset clears the map.
	k := ""
	if len(s) > 0 {
		k = unsafe.String(&e.table[len(e.table)-len(s)], len(s))
	}
	e.strs[k] = i
	return i
}

// event adds ev. With fast (a block the compactor merges soon), values
// not found at their position in the previous event are not looked up in
// the string table but added again: most of them are new (ids, times), a
// lookup would only add them, and the merge looks every string up once
// anyway. The block decodes to the same events either way, and the merged
// block is the same.
func (e *blockEncoder) event(ev *Event, fast bool) {
	key, canonical := uuidKey(ev.UUID)
	e.body = binary.AppendVarint(e.body, ev.Time)
	e.body = append(e.body, key[:]...)
	switch {
	case canonical:
		e.body = append(e.body, 0)
	case fast:
		e.body = binary.AppendUvarint(e.body, uint64(e.add(ev.UUID))+1)
	default:
		e.body = binary.AppendUvarint(e.body, uint64(e.str(ev.UUID))+1)
	}
	e.body = binary.AppendUvarint(e.body, uint64(e.str(ev.Name)))
	did := e.str(ev.DistinctID)
	e.body = binary.AppendUvarint(e.body, uint64(did))
	e.body = binary.AppendUvarint(e.body, uint64(len(ev.Props)))
	for j, p := range ev.Props {
		e.body = binary.AppendUvarint(e.body, uint64(e.posStr(&e.posKeys, j, p.Key, false, "", 0)))
		e.body = append(e.body, byte(p.Val.Kind))
		switch p.Val.Kind {
		case KindString, KindNumber, KindJSON:
			e.body = binary.AppendUvarint(e.body, uint64(e.posStr(&e.posVals, j, p.Val.S, fast, ev.DistinctID, did)))
		}
	}
}

// rstr is str of the i-th string of d.
func (e *blockEncoder) rstr(d *decodedBlock, i uint32) uint32 {
	if d != e.lastD {
		m, ok := e.remaps[d]
		if !ok {
			if e.remaps == nil {
				e.remaps = make(map[*decodedBlock][]uint32)
			}
			m = make([]uint32, len(d.strs))
			e.remaps[d] = m
		}
		e.lastD, e.lastMap = d, m
	}
	if j := e.lastMap[i]; j != 0 {
		return j - 1
	}
	j := e.str(d.strs[i])
	e.lastMap[i] = j + 1
	return j
}

// raw adds an event of a decoded block without materialising it.
func (e *blockEncoder) raw(d *decodedBlock, ev *rawEvent) {
	e.body = binary.AppendVarint(e.body, ev.time)
	e.body = append(e.body, ev.uuid[:]...)
	if ev.uuidStr == 0 {
		e.body = append(e.body, 0)
	} else {
		e.body = binary.AppendUvarint(e.body, uint64(e.rstr(d, ev.uuidStr-1))+1)
	}
	e.body = binary.AppendUvarint(e.body, uint64(e.rstr(d, ev.name)))
	e.body = binary.AppendUvarint(e.body, uint64(e.rstr(d, ev.did)))
	e.body = binary.AppendUvarint(e.body, uint64(len(ev.props)))
	for _, p := range ev.props {
		e.body = binary.AppendUvarint(e.body, uint64(e.rstr(d, p.key)))
		e.body = append(e.body, byte(p.kind))
		switch p.kind {
		case KindString, KindNumber, KindJSON:
			e.body = binary.AppendUvarint(e.body, uint64(e.rstr(d, p.val)))
		}
	}
}

// merge adds the events of the block value v as raw adds decoded events,
// without decoding the block: its payload is decompressed into a reused
// buffer, each of its strings is looked up here once, on first use, and
// its event records are copied with their string indexes translated. It
// refuses what decodeBlock refuses, and returns how many events it added.
func (e *blockEncoder) merge(v string) (int, error) {
	payload, dec, err := blockPayload(v, e.dec)
	e.dec = dec
	if err != nil {
		return 0, err
	}
	r := reader{s: payload}
	n := r.uvarint()
	if n > uint64(len(payload)) {
		return 0, errBadBlock
	}
	// soff holds each string's start and end in payload; smap its index
	// here plus one (0: not looked up yet).
	soff := e.soff[:0]
	for range n {
		l := r.uvarint()
		start := r.pos
		r.bytes(l)
		soff = append(soff, uint32(start), uint32(r.pos))
	}
	e.soff = soff
	if cap(e.smap) < int(n) {
		e.smap = make([]uint32, n)
	}
	smap := e.smap[:n]
	clear(smap)
	ns := int(n)
	str := func(i uint32) uint32 {
		if j := smap[i]; j != 0 {
			return j - 1
		}
		j := e.str(payload[soff[2*i]:soff[2*i+1]])
		smap[i] = j + 1
		return j
	}
	r.idx(ns) // the site: the merged block names its own
	ne := r.uvarint()
	if r.err || ne > uint64(len(payload)) {
		return 0, errBadBlock
	}
	body := e.body
	for range ne {
		// Time and uuid key are copied as they are.
		start := r.pos
		r.varint()
		r.bytes(16)
		body = append(body, payload[start:r.pos]...)
		u := r.uvarint()
		switch {
		case u > uint64(ns):
			r.err = true
		case u == 0:
			body = append(body, 0)
		default:
			body = binary.AppendUvarint(body, uint64(str(uint32(u-1)))+1)
		}
		name := r.idx(ns)
		did := r.idx(ns)
		np := r.uvarint()
		if r.err || np > uint64(len(payload)) {
			return 0, errBadBlock
		}
		body = binary.AppendUvarint(body, uint64(str(name)))
		body = binary.AppendUvarint(body, uint64(str(did)))
		body = binary.AppendUvarint(body, np)
		for range np {
			k := r.idx(ns)
			kind := Kind(r.byte())
			if r.err {
				return 0, errBadBlock
			}
			body = binary.AppendUvarint(body, uint64(str(k)))
			body = append(body, byte(kind))
			switch kind {
			case KindString, KindNumber, KindJSON:
				val := r.idx(ns)
				if r.err {
					return 0, errBadBlock
				}
				body = binary.AppendUvarint(body, uint64(str(val)))
			case KindNull, KindTrue, KindFalse:
			default:
				return 0, errBadBlock
			}
		}
	}
	e.body = body
	if r.err || r.pos != len(payload) {
		return 0, errBadBlock
	}
	return int(ne), nil
}

// mergeBlockValues encodes the events of the block values vals (stored
// under keys), in order, as one block of site, as encodeRaw would encode
// their decoded events.
func mergeBlockValues(site string, keys, vals []string, level compression) (string, error) {
	e := encoderPool.Get().(*blockEncoder)
	defer encoderPool.Put(e)
	e.reset()
	siteIdx := e.str(site)
	n := 0
	for i, v := range vals {
		k, err := e.merge(v)
		if err != nil {
			return "", fmt.Errorf("block %s: %w", keys[i], err)
		}
		n += k
	}
	b := e.finish(siteIdx, n, level)
	if cap(e.dec) > 4<<20 {
		e.dec = nil // a large block's buffer is not kept in the pool
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}

// rawRef is one event of a decoded block.
type rawRef struct {
	d *decodedBlock
	i int
}

// encodeRaw encodes events of decoded blocks as one block; compaction and
// deletion rewrite blocks this way, without materialising events.
func encodeRaw(site string, evs []rawRef, level compression) string {
	e := encoderPool.Get().(*blockEncoder)
	e.reset()
	siteIdx := e.str(site)
	for _, r := range evs {
		e.raw(r.d, &r.d.events[r.i])
	}
	b := e.finish(siteIdx, len(evs), level)
	// The pooled encoder must not keep the decoded blocks alive.
	clear(e.remaps)
	e.lastD, e.lastMap = nil, nil
	encoderPool.Put(e)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// encode returns the block value for site and events.
func (e *blockEncoder) encode(site string, evs []*Event, level compression) []byte {
	e.reset()
	siteIdx := e.str(site)
	for _, ev := range evs {
		e.event(ev, level == compressFast)
	}
	return e.finish(siteIdx, len(evs), level)
}

// finish assembles the block value from the string table and the events.
func (e *blockEncoder) finish(siteIdx uint32, n int, level compression) []byte {
	payload := e.out[:0]
	payload = binary.AppendUvarint(payload, uint64(e.nstr))
	payload = append(payload, e.table...)
	payload = binary.AppendUvarint(payload, uint64(siteIdx))
	payload = binary.AppendUvarint(payload, uint64(n))
	payload = append(payload, e.body...)
	e.out = payload
	if level == compressFast {
		out := make([]byte, 3, 3+len(payload))
		out[0], out[1], out[2] = blockMagic, blockVersion, 0
		return append(out, payload...)
	}
	out := append(e.scratch[:0], blockMagic, blockVersion, flagZstd)
	out = zstdBlockEnc.EncodeAll(payload, out)
	e.scratch = out
	return append([]byte(nil), out...)
}

// forgetPos empties the position caches, which hold strings of the
// events (of request buffers) and indexes of one block.
func (e *blockEncoder) forgetPos() {
	clear(e.posKeys)
	clear(e.posVals)
	e.posKeys, e.posVals = e.posKeys[:0], e.posVals[:0]
}

// encodeBlock encodes events of one site as a block value.
func encodeBlock(site string, evs []*Event, level compression) string {
	e := encoderPool.Get().(*blockEncoder)
	b := e.encode(site, evs, level)
	e.forgetPos()
	encoderPool.Put(e)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// rawProp is a property of a decoded block event, as string-table indexes.
type rawProp struct {
	key  uint32
	kind Kind
	val  uint32
}

// rawEvent is one event of a decoded block, as string-table indexes.
type rawEvent struct {
	time    int64
	uuid    UUIDKey
	uuidStr uint32 // string index + 1; 0 when the canonical form of uuid
	name    uint32
	did     uint32
	props   []rawProp
}

// decodedBlock is a block's string table and events.
type decodedBlock struct {
	site   string
	strs   []string
	events []rawEvent
	props  []rawProp // backing store of every event's props
}

// blockPayload returns the uncompressed payload of the block value v,
// decompressed into buf when it is compressed (buf grows as needed and is
// returned for reuse; the payload shares its memory).
func blockPayload(v string, buf []byte) (string, []byte, error) {
	if len(v) < 3 || v[0] != blockMagic {
		return "", buf, errBadBlock
	}
	if v[1] != blockVersion {
		return "", buf, fmt.Errorf("store: block version %d not supported", v[1])
	}
	payload := v[3:]
	if v[2]&flagS2 != 0 {
		// A damaged length must not make us allocate gigabytes.
		if n, err := s2.DecodedLen(unsafe.Slice(unsafe.StringData(payload), len(payload))); err != nil || n > maxBlockBytes {
			return "", buf, errBadBlock
		}
		b, err := s2.Decode(buf[:cap(buf)], unsafe.Slice(unsafe.StringData(payload), len(payload)))
		if err != nil {
			return "", buf, fmt.Errorf("store: decompressing block: %w", err)
		}
		return unsafe.String(unsafe.SliceData(b), len(b)), b, nil
	} else if v[2]&flagZstd != 0 {
		b, err := zstdDec.DecodeAll(unsafe.Slice(unsafe.StringData(payload), len(payload)), buf[:0])
		if err != nil {
			return "", buf, fmt.Errorf("store: decompressing block: %w", err)
		}
		return unsafe.String(unsafe.SliceData(b), len(b)), b, nil
	}
	return payload, buf, nil
}

// decodeBlock parses a block value. The strings it returns share memory with
// v (or with the decompressed payload) and must not be modified.
func decodeBlock(v string) (*decodedBlock, error) {
	payload, _, err := blockPayload(v, nil)
	if err != nil {
		return nil, err
	}
	d := &decodedBlock{}
	r := reader{s: payload}
	n := r.uvarint()
	if n > uint64(len(payload)) {
		return nil, errBadBlock
	}
	d.strs = make([]string, n)
	for i := range d.strs {
		l := r.uvarint()
		d.strs[i] = r.bytes(l)
	}
	d.site = r.str(d.strs)
	ne := r.uvarint()
	if ne > uint64(len(payload)) {
		return nil, errBadBlock
	}
	d.events = make([]rawEvent, ne)
	d.props = make([]rawProp, 0, ne*8)
	for i := range d.events {
		ev := &d.events[i]
		ev.time = r.varint()
		copy(ev.uuid[:], r.bytes(16))
		ev.uuidStr = uint32(r.uvarint())
		if ev.uuidStr > uint32(len(d.strs)) {
			r.err = true
		}
		ev.name = r.idx(len(d.strs))
		ev.did = r.idx(len(d.strs))
		np := r.uvarint()
		if np > uint64(len(payload)) {
			return nil, errBadBlock
		}
		start := len(d.props)
		for j := uint64(0); j < np; j++ {
			p := rawProp{key: r.idx(len(d.strs)), kind: Kind(r.byte())}
			switch p.kind {
			case KindString, KindNumber, KindJSON:
				p.val = r.idx(len(d.strs))
			case KindNull, KindTrue, KindFalse:
			default:
				r.err = true
			}
			d.props = append(d.props, p)
		}
		if r.err {
			return nil, errBadBlock
		}
		ev.props = d.props[start:len(d.props):len(d.props)]
	}
	if r.err || r.pos != len(payload) {
		return nil, errBadBlock
	}
	return d, nil
}

// uuidString returns the uuid of ev as it was sent.
func (d *decodedBlock) uuidString(ev *rawEvent) string {
	if ev.uuidStr > 0 {
		return d.strs[ev.uuidStr-1]
	}
	return ev.uuid.String()
}

// event materialises the i-th event.
func (d *decodedBlock) event(i int) *Event {
	ev := &d.events[i]
	out := &Event{
		UUID:       d.uuidString(ev),
		Site:       d.site,
		Name:       d.strs[ev.name],
		DistinctID: d.strs[ev.did],
		Time:       ev.time,
		Props:      make(Props, len(ev.props)),
	}
	for j, p := range ev.props {
		out.Props[j] = Prop{Key: d.strs[p.key], Val: d.value(p)}
	}
	return out
}

func (d *decodedBlock) value(p rawProp) Value {
	switch p.kind {
	case KindString, KindNumber, KindJSON:
		return Value{Kind: p.kind, S: d.strs[p.val]}
	}
	return Value{Kind: p.kind}
}

// reader reads the varint encoding; errors are sticky.
type reader struct {
	s   string
	pos int
	err bool
}

func (r *reader) uvarint() uint64 {
	var x uint64
	var s uint
	for i := 0; i < 10; i++ {
		if r.pos >= len(r.s) {
			r.err = true
			return 0
		}
		c := r.s[r.pos]
		r.pos++
		if c < 0x80 {
			return x | uint64(c)<<s
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	r.err = true
	return 0
}

func (r *reader) varint() int64 {
	u := r.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (r *reader) byte() byte {
	if r.pos >= len(r.s) {
		r.err = true
		return 0
	}
	c := r.s[r.pos]
	r.pos++
	return c
}

func (r *reader) bytes(n uint64) string {
	if n > uint64(len(r.s)-r.pos) {
		r.err = true
		r.pos = len(r.s)
		return ""
	}
	s := r.s[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return s
}

func (r *reader) idx(n int) uint32 {
	i := r.uvarint()
	if i >= uint64(n) {
		r.err = true
		return 0
	}
	return uint32(i)
}

func (r *reader) str(strs []string) string {
	i := r.idx(len(strs))
	if r.err {
		return ""
	}
	return strs[i]
}
