package collector

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/tidwall/gjson"
	"github.com/tidwall/pretty"
)

// The capture path reads every body once to validate it and then walks the
// objects it needs member by member. Both passes skip over strings eight
// bytes at a time: strings are most of what the SDKs send. The walk gives
// the same gjson.Result values as gjson's ForEach and Array (Type, Raw,
// Str, Num), on text validJSON accepted.

const (
	lows  = 0x0101010101010101
	highs = 0x8080808080808080
)

// specialString marks, for 8 bytes of a string (little-endian), those that
// may end it or need a closer look: '"', '\\' or a control character. The
// lowest mark is exact (a borrow may only mark bytes above a marked one),
// so its position is that of the first such byte; 0 when there is none.
func specialString(v uint64) uint64 {
	q := v ^ (lows * '"')
	b := v ^ (lows * '\\')
	return ((q-lows)&^q | (b-lows)&^b | (v-lows*0x20)&^v) & highs
}

// indexDepth is how deep validJSON records where containers end: the
// envelope, the batch, the events and their properties.
const indexDepth = 4

// jsonIndex says where the objects and arrays of a body, down to
// indexDepth, end, so that walking an event skips its properties (or a
// batch its events) without reading them again. A nil index, or text that
// is not in its body, is read byte by byte.
type jsonIndex struct {
	base  string
	start []int // offsets of opening brackets, ascending
	end   []int // the offset after the matching closing bracket
	// utf8 says base is valid UTF-8 (the capture path repairs bodies
	// before it scans them).
	utf8 bool
	// elems backs what elements returns, until release.
	elems []gjson.Result
	// With tape, ends[i] for the opening quote of each string at base[i]
	// is the offset after its closing quote, with the escaped bit when it
	// holds escapes; other entries are left from earlier bodies. The walk
	// then skips strings without reading them again.
	tape bool
	ends []uint32
}

// maxTape is the largest body whose strings the index records: ends
// takes four bytes a byte of body, and is kept in the pool (larger bodies,
// recordings mostly, are walked as before).
const maxTape = 1 << 18

const escaped = 1 << 31

// skipString is the package's skipString for a string of s (s[i] is just
// after its opening quote), from the tape when the index has one and s
// lies in its body.
func (x *jsonIndex) skipString(s string, i int) (int, bool) {
	if x != nil && x.tape && len(s) > 0 {
		off := uintptr(unsafe.Pointer(unsafe.StringData(s))) - uintptr(unsafe.Pointer(unsafe.StringData(x.base)))
		if q := off + uintptr(i) - 1; off < uintptr(len(x.base)) && q < uintptr(len(x.ends)) {
			e := x.ends[q]
			if end := int(uintptr(e&^escaped) - off); end > i && end <= len(s) {
				return end, e&escaped != 0
			}
		}
	}
	return skipString(s, i)
}

var indexPool = sync.Pool{New: func() any { return new(jsonIndex) }}

// newJSONIndex returns an empty index; release hands it back.
func newJSONIndex() *jsonIndex { return indexPool.Get().(*jsonIndex) }

func (x *jsonIndex) release() {
	if x == nil || cap(x.start) > 1<<16 || cap(x.elems) > 1<<12 {
		return
	}
	clear(x.elems) // they point into the body
	x.base, x.utf8, x.elems, x.tape = "", false, x.elems[:0], false
	x.start, x.end = x.start[:0], x.end[:0]
	indexPool.Put(x)
}

// endOf returns the index in s after the container opening at s[i], when
// the index knows it.
func (x *jsonIndex) endOf(s string, i int) (int, bool) {
	if x == nil || len(x.start) == 0 || len(s) == 0 {
		return 0, false
	}
	p, b := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(x.base)))
	if p < b || p >= b+uintptr(len(x.base)) {
		return 0, false
	}
	off := int(p - b)
	j, found := slices.BinarySearch(x.start, off+i)
	if !found || x.end[j]-off > len(s) {
		return 0, false
	}
	return x.end[j] - off, true
}

// validJSON is gjson.ValidBytes, and reports how deeply arrays and objects
// nest; it walks iteratively, so any depth costs no stack. With x, it
// records in x where containers down to indexDepth end.
func validJSON(data []byte, x *jsonIndex) (ok bool, depth int) {
	st := nesting{x: x}
	if x != nil {
		x.base = unsafeString(data)
		x.start, x.end = x.start[:0], x.end[:0]
		x.tape = len(data) <= maxTape
		if x.tape {
			if cap(x.ends) < len(data) {
				x.ends = make([]uint32, len(data), min(len(data)+len(data)/4, maxTape))
			}
			x.ends = x.ends[:len(data)]
			st.ends = x.ends
		}
	}
	defer func() { depth = st.depth }()
	i := skipWS(data, 0)
	if i == len(data) {
		return false, 0
	}
value:
	i = skipWS(data, i)
	if i >= len(data) {
		return false, depth
	}
	switch data[i] {
	case '{':
		st.open(i, '}')
		i = skipWS(data, i+1)
		if i >= len(data) {
			return false, depth
		}
		if data[i] == '}' {
			st.closed(i)
			i++
			goto after
		}
		if data[i] != '"' {
			return false, depth
		}
		goto key
	case '[':
		st.open(i, ']')
		i = skipWS(data, i+1)
		if i < len(data) && data[i] == ']' {
			st.closed(i)
			i++
			goto after
		}
		goto value
	case '"':
		if i, ok = st.str(data, i); !ok {
			return false, depth
		}
		goto after
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if i, ok = validNumber(data, i); !ok {
			return false, depth
		}
		goto after
	case 't':
		if !strings.HasPrefix(unsafeString(data[i:]), "true") {
			return false, depth
		}
		i += 4
		goto after
	case 'f':
		if !strings.HasPrefix(unsafeString(data[i:]), "false") {
			return false, depth
		}
		i += 5
		goto after
	case 'n':
		if !strings.HasPrefix(unsafeString(data[i:]), "null") {
			return false, depth
		}
		i += 4
		goto after
	default:
		return false, depth
	}
key: // data[i] is the opening quote of a member's key
	if i, ok = st.str(data, i); !ok {
		return false, depth
	}
	i = skipWS(data, i)
	if i >= len(data) || data[i] != ':' {
		return false, depth
	}
	i++
	goto value
after: // a value ended at i
	if st.n == 0 {
		return skipWS(data, i) == len(data), depth
	}
	i = skipWS(data, i)
	if i >= len(data) {
		return false, depth
	}
	switch c := st.top(); data[i] {
	case ',':
		i++
		if c == ']' {
			goto value
		}
		i = skipWS(data, i)
		if i >= len(data) || data[i] != '"' {
			return false, depth
		}
		goto key
	case c:
		st.closed(i)
		i++
		goto after
	}
	return false, depth
}

// nesting is validJSON's stack of open containers, one bit each (1: an
// object), so that hostile nesting costs a bit a level; and for the first
// indexDepth levels, their entries in x.
type nesting struct {
	x      *jsonIndex
	ends   []uint32 // x.ends when x keeps them
	bits   []uint64
	n      int
	depth  int
	opened [indexDepth]int
}

// str checks the string whose opening quote is at data[i], records where
// it ends when the index keeps that, and returns the index after it.
func (st *nesting) str(data []byte, i int) (int, bool) {
	end, ok, esc := validString(data, i+1)
	if ok && st.ends != nil {
		e := uint32(end)
		if esc {
			e |= escaped
		}
		st.ends[i] = e
	}
	return end, ok
}

func (st *nesting) open(i int, c byte) {
	if st.n/64 == len(st.bits) {
		st.bits = append(st.bits, 0)
	}
	if c == '}' {
		st.bits[st.n/64] |= 1 << (st.n % 64)
	} else {
		st.bits[st.n/64] &^= 1 << (st.n % 64)
	}
	if x := st.x; x != nil && st.n < indexDepth {
		st.opened[st.n] = len(x.start)
		x.start = append(x.start, i)
		x.end = append(x.end, 0)
	}
	st.n++
	st.depth = max(st.depth, st.n)
}

func (st *nesting) closed(i int) {
	st.n--
	if st.x != nil && st.n < indexDepth {
		st.x.end[st.opened[st.n]] = i + 1
	}
}

func (st *nesting) top() byte {
	if st.bits[(st.n-1)/64]&(1<<((st.n-1)%64)) != 0 {
		return '}'
	}
	return ']'
}

func skipWS(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
			continue
		}
		break
	}
	return i
}

// validString checks the string whose text starts at i (after the opening
// quote) and returns the index after its closing quote, and whether the
// string holds escapes.
func validString(data []byte, i int) (end int, ok, esc bool) {
	for {
		for i+8 <= len(data) {
			if m := specialString(binary.LittleEndian.Uint64(data[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(data) {
			return i, false, esc
		}
		switch c := data[i]; {
		case c == '"':
			return i + 1, true, esc
		case c < ' ':
			return i, false, esc
		case c == '\\':
			esc = true
			i++
			if i >= len(data) {
				return i, false, esc
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				for range 4 {
					i++
					if i >= len(data) || !ishex(data[i]) {
						return i, false, esc
					}
				}
			default:
				return i, false, esc
			}
		}
		i++
	}
}

func ishex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// validNumber checks the number starting at i as gjson does and returns
// the index after it.
func validNumber(data []byte, i int) (int, bool) {
	if data[i] == '-' {
		i++
		if i == len(data) || data[i] < '0' || data[i] > '9' {
			return i, false
		}
	}
	if data[i] == '0' {
		i++
	} else {
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i == len(data) || data[i] < '0' || data[i] > '9' {
			return i, false
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i == len(data) || data[i] < '0' || data[i] > '9' {
			return i, false
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	return i, true
}

// skipString returns the index after the closing quote of the valid string
// whose text starts at i, and whether it holds escapes.
func skipString(s string, i int) (int, bool) {
	esc := false
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	// Most strings are short: look at the first bytes one by one.
	for n := min(i+16, len(s)); i < n; i++ {
		switch s[i] {
		case '"':
			return i + 1, esc
		case '\\':
			esc = true
			i++
		}
	}
	for {
		for i+8 <= len(b) {
			v := binary.LittleEndian.Uint64(b[i:])
			q := v ^ (lows * '"')
			e := v ^ (lows * '\\')
			if m := ((q-lows)&^q | (e-lows)&^e) & highs; m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(s) {
			return i, esc
		}
		switch s[i] {
		case '"':
			return i + 1, esc
		case '\\':
			esc = true
			i++
		}
		i++
	}
}

// skipValue returns the index after the valid value starting at i (no
// leading space).
func (x *jsonIndex) skipValue(s string, i int) int {
	switch s[i] {
	case '"':
		i, _ = x.skipString(s, i+1)
		return i
	case '{', '[':
		if end, ok := x.endOf(s, i); ok {
			return end
		}
		depth := 0
		for i < len(s) {
			switch s[i] {
			case '"':
				i, _ = x.skipString(s, i+1)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	// A number or a literal ends at a delimiter.
	for i < len(s) {
		switch s[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// valueAt returns the valid value starting at i as gjson gives it, and the
// index after it. Without num, a number's Num is left 0 (its Raw is all
// the properties need).
func (x *jsonIndex) valueAt(s string, i int, num bool) (gjson.Result, int) {
	if s[i] == '"' {
		end, esc := x.skipString(s, i+1)
		raw := s[i:end]
		if esc { // rare: gjson unescapes
			return gjson.Parse(raw), end
		}
		return gjson.Result{Type: gjson.String, Raw: raw, Str: raw[1 : len(raw)-1]}, end
	}
	end := x.skipValue(s, i)
	raw := s[i:end]
	switch s[i] {
	case '{', '[':
		return gjson.Result{Type: gjson.JSON, Raw: raw}, end
	case 't':
		return gjson.Result{Type: gjson.True, Raw: raw}, end
	case 'f':
		return gjson.Result{Type: gjson.False, Raw: raw}, end
	case 'n':
		return gjson.Result{Type: gjson.Null, Raw: raw}, end
	}
	r := gjson.Result{Type: gjson.Number, Raw: raw}
	if num {
		r.Num, _ = strconv.ParseFloat(raw, 64)
	}
	return r, end
}

// eachMember calls fn with the key and value of every member of the valid
// JSON object obj, in order, until fn returns false; like gjson's ForEach,
// it calls nothing for other values.
func (x *jsonIndex) eachMember(obj string, fn func(key string, v gjson.Result) bool) {
	x.walkMembers(obj, true, fn)
}

// walkMembers is eachMember; without num, numbers come without Num.
func (x *jsonIndex) walkMembers(obj string, num bool, fn func(key string, v gjson.Result) bool) {
	if len(obj) == 0 || obj[0] != '{' {
		return
	}
	i := 1
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return // '}'
		}
		end, esc := x.skipString(obj, i+1)
		key := obj[i+1 : end-1]
		if esc {
			key = gjson.Parse(obj[i:end]).Str
		}
		i = skipSpace(obj, end)
		i = skipSpace(obj, i+1) // ':'
		var v gjson.Result
		v, i = x.valueAt(obj, i, num)
		if !fn(key, v) {
			return
		}
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != ',' {
			return
		}
		i++
	}
}

// elements returns the elements of the valid JSON array arr, as gjson's
// Array does; with x, in memory x keeps until release (call it once).
func (x *jsonIndex) elements(arr string) []gjson.Result {
	var out []gjson.Result
	if x != nil {
		out = x.elems[:0]
		defer func() { x.elems = out }()
	}
	i := skipSpace(arr, 1)
	for i < len(arr) && arr[i] != ']' {
		var v gjson.Result
		v, i = x.valueAt(arr, i, true)
		out = append(out, v)
		i = skipSpace(arr, i)
		if i < len(arr) && arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
	}
	return out
}

// appendProps appends to ps the members of the valid JSON object obj, in a
// body known to be valid UTF-8, as jsonValue would make them, without a
// gjson.Result for each. Members isEventKey names go to special first
// (with the Result gjson would give), which says whether they are left out.
func (x *jsonIndex) appendProps(ps store.Props, obj string, special func(string, gjson.Result) bool) store.Props {
	if len(obj) == 0 || obj[0] != '{' {
		return ps
	}
	i := 1
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return ps // '}'
		}
		end, esc := x.skipString(obj, i+1)
		key := obj[i+1 : end-1]
		if esc {
			key = gjson.Parse(obj[i:end]).Str
		}
		i = skipSpace(obj, end)
		i = skipSpace(obj, i+1) // ':'
		vs := i
		var val store.Value
		switch obj[i] {
		case '"':
			end, esc := x.skipString(obj, i+1)
			if esc {
				val = store.Value{Kind: store.KindString, S: gjson.Parse(obj[i:end]).Str}
			} else {
				val = store.Value{Kind: store.KindString, S: obj[i+1 : end-1]}
			}
			i = end
		case '{', '[':
			end := x.skipValue(obj, i)
			raw := obj[i:end]
			if strings.ContainsAny(raw, " \t\r\n") {
				raw = string(pretty.Ugly([]byte(raw)))
			}
			val = store.Value{Kind: store.KindJSON, S: raw}
			i = end
		case 't':
			val = store.Value{Kind: store.KindTrue}
			i += 4
		case 'f':
			val = store.Value{Kind: store.KindFalse}
			i += 5
		case 'n':
			val = store.Value{Kind: store.KindNull}
			i += 4
		default:
			end := x.skipValue(obj, i)
			val = store.Value{Kind: store.KindNumber, S: obj[i:end]}
			i = end
		}
		keep := true
		if isEventKey(key) {
			v, _ := x.valueAt(obj, vs, true)
			keep = !special(key, v)
		}
		if keep {
			ps = append(ps, store.Prop{Key: key, Val: val})
		}
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != ',' {
			return ps
		}
		i++
	}
}

// isEventKey reports the properties that say something about the event
// itself.
func isEventKey(k string) bool {
	switch k {
	case "distinct_id", "$distinct_id", "token", "api_key", "$ignore_sent_at", "$geoip_disable":
		return true
	}
	return false
}
