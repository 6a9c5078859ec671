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

// TestUUIDIndexAgainstMap checks the index against a Go map through growth,
// a reserve and lookups of absent keys, including keys whose tag and home
// slot equal a present key's.
func TestUUIDIndexAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var keys vec[UUIDKey]
	var x uuidIndex
	defer x.free()
	want := map[UUIDKey]int{}
	randKey := func() UUIDKey {
		var k UUIDKey
		for i := range k {
			k[i] = byte(rng.UintN(256))
		}
		return k
	}
	for row := 0; row < 200_000; row++ {
		k := randKey()
		if row%3 == 0 && keys.len() > 0 { // every third key a near twin of an earlier one
			k = *keys.ptr(rng.IntN(keys.len()))
			k[15] ^= 1
		}
		if _, dup := want[k]; dup {
			continue
		}
		if got := x.find(&k, &keys); got != -1 {
			t.Fatalf("absent key found at row %d", got)
		}
		r := keys.len()
		keys.append(k)
		x.insert(r, &keys)
		want[k] = r
		if row == 50_000 {
			x.reserve(300_000, &keys)
		}
	}
	for k, r := range want {
		if got := x.find(&k, &keys); got != r {
			t.Fatalf("key of row %d found at %d", r, got)
		}
	}
	misses := 0
	for i := 0; i < 100_000; i++ {
		k := randKey()
		if _, ok := want[k]; !ok && x.find(&k, &keys) != -1 {
			misses++
		}
	}
	if misses != 0 {
		t.Fatalf("%d absent keys found", misses)
	}
}

// BenchmarkUUIDIndexNewKeys is ingestion's use of the index: every event's
// uuid looked up (absent) and inserted, into an index of 4M rows.
func BenchmarkUUIDIndexNewKeys(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	var keys vec[UUIDKey]
	var x uuidIndex
	defer x.free()
	const n = 4 << 20
	for i := 0; i < n; i++ {
		var k UUIDKey
		for j := range k {
			k[j] = byte(rng.UintN(256))
		}
		keys.append(k)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		row := i % n
		if row == 0 {
			x.free()
			x.reserve(n, &keys)
		}
		if x.find(keys.ptr(row), &keys) >= 0 {
			b.Fatal("found a new key")
		}
		x.insert(row, &keys)
	}
}
