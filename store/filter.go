package store

import (
	"fmt"
	"slices"
	"strings"
)

// Op is a property filter operator.
type Op string

// The filter operators of `filter=<property><op><value>`.
const (
	OpEq          Op = "=="
	OpNe          Op = "!="
	OpContains    Op = "~"
	OpNotContains Op = "!~"
)

// Filter keeps the events whose property Prop compares to Value by Op. An
// event without the property has the empty value: it fails == and ~ and
// passes != and !~ (as PostHog's "is not" does).
type Filter struct {
	Prop  string
	Op    Op
	Value string
}

// ParseFilter parses `<property><op><value>`; the first operator wins, so
// values may contain operator characters.
func ParseFilter(s string) (Filter, error) {
	for i := 0; i < len(s); i++ {
		var op Op
		switch {
		case strings.HasPrefix(s[i:], "=="):
			op = OpEq
		case strings.HasPrefix(s[i:], "!="):
			op = OpNe
		case strings.HasPrefix(s[i:], "!~"):
			op = OpNotContains
		case s[i] == '~':
			op = OpContains
		default:
			continue
		}
		f := Filter{Prop: s[:i], Op: op, Value: s[i+len(op):]}
		if f.Prop == "" {
			return f, fmt.Errorf("filter %q: no property before %s", s, op)
		}
		return f, nil
	}
	return Filter{}, fmt.Errorf("filter %q: want <property><op><value> with op one of == != ~ !~", s)
}

// String formats f as ParseFilter reads it.
func (f Filter) String() string { return f.Prop + string(f.Op) + f.Value }

// matchValue reports whether a value passes f; "" is an absent value.
func (f Filter) matchValue(v string) bool {
	switch f.Op {
	case OpEq:
		return v == f.Value
	case OpNe:
		return v != f.Value
	case OpContains:
		return v != "" && containsFold(v, f.Value)
	case OpNotContains:
		return v == "" || !containsFold(v, f.Value)
	}
	return false
}

// containsFold is "contains" as PostHog's filters mean it: ignoring case.
// (strings.ToLower returns a string with no upper case as it is.)
func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// rowMatcher tests rows against filters by dictionary codes.
type rowMatcher struct {
	cols []*column
	// match[i][code] says whether code passes filter i.
	match [][]bool
}

// compileFilters prepares filters for t; the caller holds t.mu (read) and
// has built the columns with ensureColumns.
func (t *table) compileFilters(fs []Filter) (*rowMatcher, error) {
	if len(fs) == 0 {
		return nil, nil
	}
	m := &rowMatcher{}
	for _, f := range fs {
		c := t.lookupColumn(f.Prop)
		if c == nil {
			return nil, fmt.Errorf("filter %s: property not indexed", f)
		}
		ok := make([]bool, c.dict.size())
		for code, v := range c.dict.strs {
			ok[code] = f.matchValue(v) // code 0 is ""
		}
		m.cols = append(m.cols, c)
		m.match = append(m.match, ok)
	}
	return m, nil
}

// keep returns the offsets of sel (rows of chunk ci, ascending) that pass
// every filter, reusing sel's array; buf is scratch of chunkSize.
func (m *rowMatcher) keep(ci int, sel []int32, buf []uint32) []int32 {
	for i, c := range m.cols {
		ok := m.match[i]
		codes := c.codes(ci, buf)
		out := sel[:0]
		for _, off := range sel {
			if ok[codes[off]] {
				out = append(out, off)
			}
		}
		sel = out
	}
	return sel
}

// ok reports whether row passes every filter.
func (m *rowMatcher) ok(row int) bool {
	if m == nil {
		return true
	}
	for i, c := range m.cols {
		if !m.match[i][c.at(row)] {
			return false
		}
	}
	return true
}

// lookupColumn returns the column for a property name; "event" is the event
// name.
func (t *table) lookupColumn(key string) *column {
	if key == "event" {
		return t.name
	}
	if IsSessionProp(key) {
		if t.colByKey["$session_id"] == nil {
			return nil
		}
		return t.sessionColumn(key)
	}
	return t.colByKey[key]
}

// maxLazyColumns bounds the columns built on demand.
const maxLazyColumns = 32

// ensureColumns builds the columns of keys that do not exist yet, reading
// every stored block once for all of them. It must not be called with t.mu
// held.
func (s *DB) ensureColumns(t *table, keys []string) error {
	keys = sessionSources(keys)
	if err := t.rlock(); err != nil {
		return err
	}
	missing := t.missingColumns(keys)
	t.mu.RUnlock()
	if len(missing) == 0 {
		return nil
	}
	return s.buildColumns(t, missing)
}

// missingColumns returns the keys (once each) that have no column; the
// caller holds t.mu.
func (t *table) missingColumns(keys []string) []string {
	var missing []string
	for _, k := range keys {
		if t.lookupColumn(k) == nil && !slices.Contains(missing, k) {
			missing = append(missing, k)
		}
	}
	return missing
}

func (s *DB) buildColumns(t *table, keys []string) error {
	s.maint.Lock()
	defer s.maint.Unlock()
	if err := t.rlock(); err != nil {
		return err
	}
	keys = t.missingColumns(keys)
	refs := append([]blockRef(nil), t.blocks...)
	t.mu.RUnlock()
	if len(keys) == 0 {
		return nil
	}

	cols := make([]*column, len(keys))
	for i, k := range keys {
		cols[i] = newColumn(k)
	}
	free := func() {
		for _, c := range cols {
			c.free()
		}
	}
	fill := func(refs []blockRef) error {
		var kd *decodedBlock
		var colOf []int16 // by string index of the block: column + 1
		n := cols[0].len()
		return s.forEachStored(refs, func(row int, d *decodedBlock, i int) {
			for ; n < row; n++ {
				for _, c := range cols {
					c.appendCode(0)
				}
			}
			if d != kd {
				kd = d
				colOf = colOf[:0]
				for _, str := range d.strs {
					colOf = append(colOf, int16(slices.Index(keys, str)+1))
				}
			}
			for _, c := range cols {
				c.appendCode(0)
			}
			n++
			for _, p := range d.events[i].props {
				if ci := colOf[p.key]; ci > 0 {
					c := cols[ci-1]
					c.setCode(row, c.dict.code(d.value(p).String()))
				}
			}
		})
	}
	if err := fill(refs); err != nil {
		free()
		return err
	}
	if err := t.lock(); err != nil {
		free()
		return err
	}
	defer t.mu.Unlock()
	if err := fill(t.blocks[len(refs):]); err != nil {
		free()
		return err
	}
	for _, c := range cols {
		for c.len() < t.rows() {
			c.appendCode(0)
		}
	}
	for i, key := range keys {
		if t.lazy = append(t.lazy, key); len(t.lazy) > maxLazyColumns {
			t.evictColumn(t.lazy[0])
			t.lazy = t.lazy[1:]
		}
		t.cols = append(t.cols, cols[i])
		t.colByKey[key] = cols[i]
	}
	return nil
}

// evictColumn drops the column of key; the caller holds t.mu (write).
func (t *table) evictColumn(key string) {
	delete(t.colByKey, key)
	for i, oc := range t.cols {
		if oc.key == key {
			t.cols = append(t.cols[:i], t.cols[i+1:]...)
			oc.free()
			return
		}
	}
}
