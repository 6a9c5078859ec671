package collector

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// scanSeeds are valid and invalid JSON texts with the edges the scanner
// must treat as gjson does: escapes at 8-byte boundaries, control
// characters, numbers, literals, nesting, whitespace, duplicate keys.
var scanSeeds = []string{
	`{}`, `[]`, ` { } `, `[ ]`, `{"a":1}`, `{"a":"b","a":"c"}`, `[1,2,3]`, `"x"`, `1`, `-0.5e+10`, `true`, `false`, `null`,
	`{"abcdefg\"":"01234567\\","k":"\u00e9\ud83d\ude00","e":"a\/b\b\f\n\r\t"}`,
	`{"0123456":"0123456\"7","x":["\\\\\\\"", "\\"]}`,
	"{\"a\":\"ab\tc\"}", "{\"a\":\"abcdefgh\x01ijk\"}", "\"abcdefghijklmno\x1f\"",
	`{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":.5}`, `{"a":+1}`, `{"a":1.5E-3}`, `[-0,0e0,10,1E9]`,
	`{"a":tru}`, `{"a":nul}`, `{"a":falsey}`, `[truex]`, `{"a" 1}`, `{"a":1,}`, `[1,]`, `{,}`, `[,1]`, `{"a":1}}`, `[[]`, `{"a":[}]}`,
	`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, `{"a":"unterminated`, `{"a":"abc\`, `"`, ``, ` `, `{`, `[`,
	"{\n\t\"a\" :\r\n [ 1 , { \"b\" : null } ] \n}\n", `{"event":"$pageview","properties":{"distinct_id":"d","n":[1,{"x":"}"}],"s":"]"}}`,
	`{"a":{"b":{"c":{"d":[[[[{"e":"f"}]]]]}}}}`, `[{"event":"x"}, {"event":"y"} ,{"event":"z"}]`,
}

func TestValidJSONMatchesGjson(t *testing.T) {
	for _, s := range append(scanSeeds, string(mustBatch1K())) {
		checkValid(t, []byte(s))
		// Every prefix and single-byte corruption of the short ones too.
		if len(s) < 200 {
			for i := range len(s) {
				checkValid(t, []byte(s[:i]))
				for _, c := range []byte{'"', '\\', '}', ']', ',', 0x01, ' '} {
					b := []byte(s)
					b[i] = c
					checkValid(t, b)
				}
			}
		}
	}
	// Nesting: depth as the old count of brackets outside strings gives it.
	for _, d := range []int{1, 63, 64, 65, 1000} {
		s := strings.Repeat("[", d) + strings.Repeat("]", d)
		if ok, depth := validJSON([]byte(s), nil); !ok || depth != d {
			t.Fatalf("depth %d: got %v %d", d, ok, depth)
		}
	}
}

func checkValid(t *testing.T, b []byte) {
	t.Helper()
	want := gjson.ValidBytes(b)
	// A pooled index: its tape holds entries of earlier documents.
	x := newJSONIndex()
	defer x.release()
	got, _ := validJSON(b, x)
	if got != want {
		t.Fatalf("validJSON(%q) = %v, gjson says %v", b, got, want)
	}
	if !want {
		return
	}
	// No copy: the walk must find its values in the index of b.
	compareWalk(t, x, gjson.Parse(unsafeString(b)))
}

// compareWalk compares the scanner's walk of r with gjson's, and so on down
// every object and array the walk returns.
func compareWalk(t *testing.T, x *jsonIndex, r gjson.Result) {
	t.Helper()
	var want, got []string
	var inner []gjson.Result
	switch {
	case r.IsObject():
		r.ForEach(func(k, v gjson.Result) bool {
			want = append(want, show(k.Str, v))
			return true
		})
		x.eachMember(r.Raw, func(k string, v gjson.Result) bool {
			got = append(got, show(k, v))
			inner = append(inner, v)
			return true
		})
	case r.IsArray():
		for _, v := range r.Array() {
			want = append(want, show("", v))
		}
		for _, v := range x.elements(r.Raw) {
			got = append(got, show("", v))
			inner = append(inner, v)
		}
	default:
		return
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("walk of %q:\n got %v\nwant %v", r.Raw, got, want)
	}
	for _, v := range inner {
		compareWalk(t, x, v)
	}
}

func show(k string, v gjson.Result) string {
	return fmt.Sprintf("%q=%d|%q|%q|%v", k, v.Type, v.Raw, v.Str, v.Num)
}

func mustBatch1K() []byte { b, _ := batch1KBody(50); return b }

// TestScanRandomJSON compares the scanner with gjson on random documents
// (encoding/json output, re-spaced), members of every object included.
func TestScanRandomJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b, _ := json.Marshal(randomJSON(rng, 0))
		if rng.IntN(2) == 0 {
			b = []byte(strings.NewReplacer(",", " ,\n", ":", " : ", "{", "{ ").Replace(string(b)))
		}
		checkValid(t, b)
		gjson.ParseBytes(b).ForEach(func(_, v gjson.Result) bool {
			checkValid(t, []byte(v.Raw))
			return true
		})
	}
}

func randomJSON(rng *rand.Rand, depth int) any {
	switch n := rng.IntN(8); {
	case n == 0 && depth < 4:
		m := map[string]any{}
		for range rng.IntN(6) {
			m[randomString(rng)] = randomJSON(rng, depth+1)
		}
		return m
	case n == 1 && depth < 4:
		a := make([]any, rng.IntN(5))
		for i := range a {
			a[i] = randomJSON(rng, depth+1)
		}
		return a
	case n == 2:
		return rng.NormFloat64() * 1e6
	case n == 3:
		return rng.IntN(3) == 0
	case n == 4:
		return nil
	}
	return randomString(rng)
}

func randomString(rng *rand.Rand) string {
	const alphabet = "abcdefgh\"\\/\n\t\x01é😀<>&"
	r := []rune(alphabet)
	b := make([]rune, rng.IntN(20))
	for i := range b {
		b[i] = r[rng.IntN(len(r))]
	}
	return string(b)
}

// FuzzScan holds the scanner to gjson on arbitrary bytes.
func FuzzScan(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkValid(t, b) })
}

// TestAppendPropsMatchesGjson holds the properties fast path (a body known
// to be valid UTF-8) to the gjson walk it replaces: the same event, read
// with and without the scan index, gives the same properties, identity and
// token.
func TestAppendPropsMatchesGjson(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var objs []string
	for range 1000 {
		m := map[string]any{}
		for range rng.IntN(12) {
			m[randomString(rng)] = randomJSON(rng, 1)
		}
		// The members the fast path hands to parseEvent, some of them twice.
		for _, k := range []string{"distinct_id", "$distinct_id", "token", "api_key", "$ignore_sent_at", "$geoip_disable"} {
			if rng.IntN(3) == 0 {
				m[k] = randomJSON(rng, 3)
			}
		}
		b, _ := json.Marshal(m)
		s := string(b)
		if rng.IntN(2) == 0 {
			s = strings.NewReplacer(",", " ,\n", ":", " : ").Replace(s)
		}
		if rng.IntN(4) == 0 && len(s) > 2 {
			s = `{"token":"t1","distinct_id":"x",` + s[1:len(s)-1] + `,"token":"t2"}`
		}
		objs = append(objs, s)
	}
	b1k, _ := batch1KBody(4)
	for _, ev := range gjson.ParseBytes(b1k).Get("batch").Array() {
		objs = append(objs, ev.Get("properties").Raw)
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	lim := Limits{}.withDefaults()
	for _, obj := range objs {
		body := []byte(`{"batch":[{"event":"e","distinct_id":"d0","timestamp":"2026-11-24T11:00:00Z","properties":` + obj + `}]}`)
		p, err := parsePayload(body)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		fast := parseEvent(p.events[0], &p, now, newPropSlab(64), &lim)
		slow := p
		slow.index = nil
		ref := parseEvent(gjson.Parse(p.events[0].Raw), &slow, now, newPropSlab(64), &lim)
		if fmt.Sprint(fast.ev, fast.token, fast.geoDisable, fast.reason) != fmt.Sprint(ref.ev, ref.token, ref.geoDisable, ref.reason) {
			t.Fatalf("%s:\n fast %v %q %v %q\n gjson %v %q %v %q", obj, fast.ev, fast.token, fast.geoDisable, fast.reason, ref.ev, ref.token, ref.geoDisable, ref.reason)
		}
	}
}

// TestScanTapeBounds: a body over maxTape is walked without the tape, one
// under it with; both as gjson walks them.
func TestScanTapeBounds(t *testing.T) {
	for _, n := range []int{20, 250} {
		b, _ := batch1KBody(n)
		x := newJSONIndex()
		if ok, _ := validJSON(b, x); !ok {
			t.Fatal("batch body not valid")
		}
		if want := len(b) <= maxTape; x.tape != want {
			t.Fatalf("%d bytes: tape %v, want %v", len(b), x.tape, want)
		}
		x.release()
		checkValid(t, b)
	}
}
