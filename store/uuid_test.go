package store

import (
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// refUUIDKey is uuidKey as first written: parse, then compare with the
// formatted form.
func refUUIDKey(s string) (k UUIDKey, canonical bool) {
	if len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' {
		var u UUIDKey
		ok := true
		for i, j := 0, 0; i < 36 && ok; {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				i++
				continue
			}
			hi, ok1 := refHex(s[i])
			lo, ok2 := refHex(s[i+1])
			if !ok1 || !ok2 {
				ok = false
				break
			}
			u[j] = hi<<4 | lo
			j++
			i += 2
		}
		if ok {
			return u, u.String() == s
		}
	}
	h := fnv.New128a()
	h.Write([]byte(s))
	h.Sum(k[:0])
	return k, false
}

func refHex(c byte) (byte, bool) {
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

func TestUUIDKeyCanonical(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := "0123456789abcdefABCDEFgG-x :\xff"
	base := NewUUID(time.Now())
	cases := []string{base, strings.ToUpper(base), "", "x", base[:35], base + "0", "{" + base[1:], strings.Replace(base, "-", "_", 1)}
	for range 20000 {
		b := []byte(base)
		for range 1 + rng.IntN(3) {
			b[rng.IntN(len(b))] = alphabet[rng.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		k, c := uuidKey(s)
		rk, rc := refUUIDKey(s)
		if k != rk || c != rc {
			t.Fatalf("uuidKey(%q) = %x %v, want %x %v", s, k, c, rk, rc)
		}
	}
}
