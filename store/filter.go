package store

import (
	"fmt"
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
			switch f.Op {
			case OpEq:
				ok[code] = v == f.Value && code != 0
			case OpNe:
				ok[code] = v != f.Value || code == 0
			case OpContains:
				ok[code] = code != 0 && strings.Contains(v, f.Value)
			case OpNotContains:
				ok[code] = code == 0 || !strings.Contains(v, f.Value)
			}
		}
		if f.Value == "" && (f.Op == OpEq) {
			ok[0] = true
		}
		if f.Value == "" && f.Op == OpNe {
			ok[0] = false
		}
		m.cols = append(m.cols, c)
		m.match = append(m.match, ok)
	}
	return m, nil
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
	return t.colByKey[key]
}

// maxLazyColumns bounds the columns built on demand.
const maxLazyColumns = 32

// ensureColumns builds the columns of keys that do not exist yet, reading
// every stored block once. It must not be called with t.mu held.
func (s *DB) ensureColumns(t *table, keys []string) error {
	for _, k := range keys {
		if err := t.rlock(); err != nil {
			return err
		}
		c := t.lookupColumn(k)
		t.mu.RUnlock()
		if c != nil {
			continue
		}
		if err := s.buildColumn(t, k); err != nil {
			return err
		}
	}
	return nil
}

func (s *DB) buildColumn(t *table, key string) error {
	s.maint.Lock()
	defer s.maint.Unlock()
	if err := t.rlock(); err != nil {
		return err
	}
	if t.lookupColumn(key) != nil {
		t.mu.RUnlock()
		return nil
	}
	refs := append([]blockRef(nil), t.blocks...)
	t.mu.RUnlock()

	c := newColumn(key)
	fill := func(refs []blockRef) error {
		var kd *decodedBlock
		ki := -1
		return s.forEachStored(refs, func(row int, d *decodedBlock, i int) {
			for c.len() < row {
				c.appendCode(0)
			}
			if d != kd {
				kd, ki = d, -1
				for j, str := range d.strs {
					if str == key {
						ki = j
						break
					}
				}
			}
			code := uint32(0)
			if ki >= 0 {
				for _, p := range d.events[i].props {
					if int(p.key) == ki {
						code = c.dict.code(d.value(p).String())
						break
					}
				}
			}
			c.appendCode(code)
		})
	}
	if err := fill(refs); err != nil {
		c.free()
		return err
	}
	if err := t.lock(); err != nil {
		c.free()
		return err
	}
	defer t.mu.Unlock()
	if err := fill(t.blocks[len(refs):]); err != nil {
		c.free()
		return err
	}
	for c.len() < t.rows() {
		c.appendCode(0)
	}
	if t.lazy = append(t.lazy, key); len(t.lazy) > maxLazyColumns {
		old := t.lazy[0]
		t.lazy = t.lazy[1:]
		delete(t.colByKey, old)
		for i, oc := range t.cols {
			if oc.key == old {
				t.cols = append(t.cols[:i], t.cols[i+1:]...)
				oc.free()
				break
			}
		}
	}
	t.cols = append(t.cols, c)
	t.colByKey[key] = c
	return nil
}
