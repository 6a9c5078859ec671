package store

import (
	"crypto/rand"
	"encoding/binary"
	"hash/fnv"
	"sync"
	"time"
)

// UUIDKey is the 16-byte form of an event uuid used for de-duplication.
type UUIDKey [16]byte

// hexTable maps a byte to its hex value, or 0xff for a byte that is no hex
// digit.
var hexTable = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
		t[c-'a'+'A'] = c - 'a' + 10
	}
	return t
}()

func hexVal(c byte) (byte, bool) {
	v := hexTable[c]
	return v, v != 0xff
}

// parseUUID parses the 36-character hyphenated form (any case).
func parseUUID(s string) (u UUIDKey, ok bool) {
	u, ok, _ = parseUUIDCase(s)
	return u, ok
}

// parseUUIDCase is parseUUID that also reports whether s has an upper-case
// digit.
func parseUUIDCase(s string) (u UUIDKey, ok, upper bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false, false
	}
	var bad, up byte
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		c1, c2 := s[i], s[i+1]
		hi, lo := hexTable[c1], hexTable[c2]
		bad |= hi | lo
		// 'A'-'F' are below 'a': a digit at most 'F' that is no '0'-'9'.
		if c1 >= 'A' && c1 <= 'F' || c2 >= 'A' && c2 <= 'F' {
			up = 1
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	if bad&0xf0 != 0 { // 0xff marks a byte that is no hex digit
		return UUIDKey{}, false, false
	}
	return u, true, up != 0
}

// String formats u in the canonical lower-case hyphenated form.
func (u UUIDKey) String() string {
	var b [36]byte
	j := 0
	for i := 0; i < 16; i++ {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j] = hexDigits[u[i]>>4]
		b[j+1] = hexDigits[u[i]&0xf]
		j += 2
	}
	return string(b[:])
}

// uuidKey maps any uuid string to its 16-byte key. Canonical UUIDs map to
// their bytes and canonical reports whether s is exactly the lower-case
// hyphenated form (then the string need not be stored). Other strings map to a
// 128-bit FNV hash.
func uuidKey(s string) (k UUIDKey, canonical bool) {
	if u, ok, upper := parseUUIDCase(s); ok {
		// Hyphens in place and lower-case digits: the canonical form.
		return u, !upper
	}
	h := fnv.New128a()
	h.Write([]byte(s))
	h.Sum(k[:0])
	return k, false
}

var (
	uuidMu   sync.Mutex
	uuidLast int64
	uuidSeq  uint16
)

// NewUUID returns a UUIDv7 (time-ordered) for time t.
func NewUUID(t time.Time) string {
	var u UUIDKey
	ms := t.UnixMilli()
	uuidMu.Lock()
	if ms <= uuidLast {
		ms = uuidLast
		uuidSeq++
	} else {
		uuidLast = ms
		uuidSeq = 0
	}
	seq := uuidSeq
	uuidMu.Unlock()
	var tb [8]byte
	binary.BigEndian.PutUint64(tb[:], uint64(ms))
	copy(u[0:6], tb[2:8])
	_, _ = rand.Read(u[6:])
	// 12 bits of sequence keep ids from one millisecond ordered.
	u[6] = 0x70 | byte(seq>>8)&0x0f
	u[7] = byte(seq)
	u[8] = u[8]&0x3f | 0x80
	return u.String()
}
