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

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// parseUUID parses the 36-character hyphenated form (any case).
func parseUUID(s string) (u UUIDKey, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := hexVal(s[i])
		lo, ok2 := hexVal(s[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	return u, true
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
	if u, ok := parseUUID(s); ok {
		return u, u.String() == s
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
