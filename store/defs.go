package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/tidwall/buntdb"
)

// Action is a named set of events, usable as `action:<id>` wherever a query
// takes an event name: an event matches the action when it matches any of
// its steps.
type Action struct {
	ID    int64        `json:"id"`
	Name  string       `json:"name"`
	Steps []ActionStep `json:"steps"`
}

// ActionStep matches an event when every condition it sets holds. Unset
// conditions are empty strings (null in JSON).
type ActionStep struct {
	// Event is the event name.
	Event string `json:"event"`
	// URLContains is a substring of the event's $current_url.
	URLContains string `json:"url_contains"`
	// Selector is a CSS-like selector (tag, .class, #id, [attr=value],
	// descendant and > combinators) that the clicked element or one of its
	// ancestors in $elements_chain must match, the parts before the last
	// matching its ancestors.
	Selector string `json:"selector"`
	// Text equals $el_text or the text of the clicked element.
	Text string `json:"text"`
	// Href equals the href of the clicked element.
	Href string `json:"href"`
}

// MarshalJSON writes unset conditions as null, as PostHog does.
func (st ActionStep) MarshalJSON() ([]byte, error) {
	b := []byte(`{"event":`)
	for i, f := range []struct{ k, v string }{
		{"event", st.Event}, {"url_contains", st.URLContains}, {"selector", st.Selector}, {"text", st.Text}, {"href", st.Href},
	} {
		if i > 0 {
			b = append(b, ',')
			b = AppendJSONString(b, f.k)
			b = append(b, ':')
		}
		if f.v == "" {
			b = append(b, "null"...)
		} else {
			b = AppendJSONString(b, f.v)
		}
	}
	return append(b, '}'), nil
}

// Cohort kinds.
const (
	// CohortBehavioral: the persons who performed Event at least once in the
	// Days days before the query's `to`, i.e. in [to − Days days, to) with
	// days counted in the query's time zone. For a date-only or default
	// `to` (the start of the next day) that is the last Days calendar days,
	// the day of `to` included. The query's filters and `from` play no part.
	CohortBehavioral = "behavioral"
	// CohortProperty: the persons whose property Property compares to Value
	// by Op, with the operators of filters (an absent property is the empty
	// value). Persons' current, merged properties count.
	CohortProperty = "property"
)

// Cohort is a named set of persons, usable as `cohort=<id>` to restrict a
// query to their events.
type Cohort struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Behavioral.
	Event string `json:"event,omitempty"`
	Days  int    `json:"days,omitempty"`
	// Property.
	Property string `json:"property,omitempty"`
	Op       Op     `json:"op,omitempty"`
	Value    string `json:"value"`
}

// MarshalJSON writes the fields of the cohort's kind.
func (c Cohort) MarshalJSON() ([]byte, error) {
	b := strconv.AppendInt([]byte(`{"id":`), c.ID, 10)
	b = append(b, `,"name":`...)
	b = AppendJSONString(b, c.Name)
	b = append(b, `,"kind":`...)
	b = AppendJSONString(b, c.Kind)
	if c.Kind == CohortBehavioral {
		b = append(b, `,"event":`...)
		b = AppendJSONString(b, c.Event)
		b = append(b, `,"days":`...)
		b = strconv.AppendInt(b, int64(c.Days), 10)
	} else {
		b = append(b, `,"property":`...)
		b = AppendJSONString(b, c.Property)
		b = append(b, `,"op":`...)
		b = AppendJSONString(b, string(c.Op))
		b = append(b, `,"value":`...)
		b = AppendJSONString(b, c.Value)
	}
	return append(b, '}'), nil
}

// definitions holds every site's actions and cohorts, persisted in the log
// as JSON under a:<site>\x00<id> and c:<site>\x00<id>, loaded at Open.
type definitions struct {
	mu      sync.Mutex
	actions map[string]map[int64]Action
	cohorts map[string]map[int64]Cohort
	lastID  int64 // ids are unique across sites and kinds
}

func defKey(kind byte, site string, id int64) string {
	return string(kind) + ":" + site + "\x00" + strconv.FormatInt(id, 10)
}

func (s *DB) loadDefinitions() error {
	d := &s.defs
	d.actions = make(map[string]map[int64]Action)
	d.cohorts = make(map[string]map[int64]Cohort)
	return s.db.View(func(tx *buntdb.Tx) error {
		var err error
		load := func(k, v string) bool {
			site, idStr, ok := strings.Cut(k[2:], "\x00")
			id, perr := strconv.ParseInt(idStr, 10, 64)
			if !ok || perr != nil {
				err = fmt.Errorf("bad definition key %q", k)
				return false
			}
			d.lastID = max(d.lastID, id)
			if k[0] == 'a' {
				var a Action
				if err = json.Unmarshal([]byte(v), &a); err != nil {
					return false
				}
				if d.actions[site] == nil {
					d.actions[site] = make(map[int64]Action)
				}
				d.actions[site][id] = a
			} else {
				var c Cohort
				if err = json.Unmarshal([]byte(v), &c); err != nil {
					return false
				}
				if d.cohorts[site] == nil {
					d.cohorts[site] = make(map[int64]Cohort)
				}
				d.cohorts[site][id] = c
			}
			return true
		}
		if e := tx.AscendKeys("a:*", load); e != nil || err != nil {
			return cmpErr(e, err)
		}
		if e := tx.AscendKeys("c:*", load); e != nil || err != nil {
			return cmpErr(e, err)
		}
		return nil
	})
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Actions lists the actions of site by id.
func (s *DB) Actions(ctx context.Context, site string) ([]Action, error) {
	s.defs.mu.Lock()
	defer s.defs.mu.Unlock()
	out := make([]Action, 0, len(s.defs.actions[site]))
	for _, a := range s.defs.actions[site] {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Action returns one action.
func (s *DB) Action(ctx context.Context, site string, id int64) (Action, error) {
	s.defs.mu.Lock()
	defer s.defs.mu.Unlock()
	a, ok := s.defs.actions[site][id]
	if !ok {
		return Action{}, ErrNotFound
	}
	return a, nil
}

// validate checks a and normalises nothing but whitespace-free fields.
func (a *Action) validate() error {
	if strings.TrimSpace(a.Name) == "" {
		return badQuery("an action needs a name")
	}
	if len(a.Steps) == 0 {
		return badQuery("an action needs at least one step")
	}
	for i, st := range a.Steps {
		if st == (ActionStep{}) {
			return badQuery("step %d sets no condition", i+1)
		}
		if strings.HasPrefix(st.Event, actionPrefix) {
			return badQuery("step %d: an action step matches an event name, not another action", i+1)
		}
		if st.Selector != "" {
			if _, err := parseSelector(st.Selector); err != nil {
				return badQuery("step %d: %v", i+1, err)
			}
		}
	}
	return nil
}

// SaveAction creates a (ID 0) or replaces the action with its ID.
func (s *DB) SaveAction(ctx context.Context, site string, a Action) (Action, error) {
	if err := a.validate(); err != nil {
		return a, err
	}
	d := &s.defs
	d.mu.Lock()
	defer d.mu.Unlock()
	if a.ID == 0 {
		a.ID = d.lastID + 1
	} else if _, ok := d.actions[site][a.ID]; !ok {
		return a, ErrNotFound
	}
	v, _ := json.Marshal(a)
	if err := s.setDef(defKey('a', site, a.ID), string(v)); err != nil {
		return a, err
	}
	d.lastID = max(d.lastID, a.ID)
	if d.actions[site] == nil {
		d.actions[site] = make(map[int64]Action)
	}
	d.actions[site][a.ID] = a
	return a, nil
}

// DeleteAction removes an action.
func (s *DB) DeleteAction(ctx context.Context, site string, id int64) error {
	d := &s.defs
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.actions[site][id]; !ok {
		return ErrNotFound
	}
	if err := s.setDef(defKey('a', site, id), ""); err != nil {
		return err
	}
	delete(d.actions[site], id)
	return nil
}

// Cohorts lists the cohorts of site by id.
func (s *DB) Cohorts(ctx context.Context, site string) ([]Cohort, error) {
	s.defs.mu.Lock()
	defer s.defs.mu.Unlock()
	out := make([]Cohort, 0, len(s.defs.cohorts[site]))
	for _, c := range s.defs.cohorts[site] {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Cohort returns one cohort.
func (s *DB) Cohort(ctx context.Context, site string, id int64) (Cohort, error) {
	s.defs.mu.Lock()
	defer s.defs.mu.Unlock()
	c, ok := s.defs.cohorts[site][id]
	if !ok {
		return Cohort{}, ErrNotFound
	}
	return c, nil
}

// validate checks c, accepting "behavioural" and "performed" (for event)
// as PostHog users write them.
func (c *Cohort) validate() error {
	if strings.TrimSpace(c.Name) == "" {
		return badQuery("a cohort needs a name")
	}
	switch c.Kind {
	case CohortBehavioral, "behavioural":
		c.Kind = CohortBehavioral
		if c.Event == "" {
			return badQuery("a behavioral cohort needs an event")
		}
		if c.Days <= 0 || c.Days > 100000 {
			return badQuery("a behavioral cohort needs days between 1 and 100000")
		}
		c.Property, c.Op, c.Value = "", "", ""
	case CohortProperty:
		if c.Property == "" {
			return badQuery("a property cohort needs a property")
		}
		if c.Op == "" {
			c.Op = OpEq
		}
		switch c.Op {
		case OpEq, OpNe, OpContains, OpNotContains:
		default:
			return badQuery("op %q: want one of == != ~ !~", c.Op)
		}
		c.Event, c.Days = "", 0
	default:
		return badQuery("kind %q: want behavioral or property", c.Kind)
	}
	return nil
}

// UnmarshalJSON accepts "performed" for "event".
func (c *Cohort) UnmarshalJSON(b []byte) error {
	type plain Cohort
	var v struct {
		plain
		Performed string `json:"performed"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = Cohort(v.plain)
	if c.Event == "" {
		c.Event = v.Performed
	}
	return nil
}

// SaveCohort creates c (ID 0) or replaces the cohort with its ID.
func (s *DB) SaveCohort(ctx context.Context, site string, c Cohort) (Cohort, error) {
	if err := c.validate(); err != nil {
		return c, err
	}
	if c.Kind == CohortBehavioral {
		if _, err := s.resolveEvent(site, c.Event); err != nil {
			return c, err
		}
	}
	d := &s.defs
	defer s.flagCohortsChanged() // after the unlock: flags read cohorts (flags.go)
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.ID == 0 {
		c.ID = d.lastID + 1
	} else if _, ok := d.cohorts[site][c.ID]; !ok {
		return c, ErrNotFound
	}
	v, _ := json.Marshal(c)
	if err := s.setDef(defKey('c', site, c.ID), string(v)); err != nil {
		return c, err
	}
	d.lastID = max(d.lastID, c.ID)
	if d.cohorts[site] == nil {
		d.cohorts[site] = make(map[int64]Cohort)
	}
	d.cohorts[site][c.ID] = c
	return c, nil
}

// DeleteCohort removes a cohort.
func (s *DB) DeleteCohort(ctx context.Context, site string, id int64) error {
	d := &s.defs
	defer s.flagCohortsChanged() // after the unlock: flags read cohorts (flags.go)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.cohorts[site][id]; !ok {
		return ErrNotFound
	}
	if err := s.setDef(defKey('c', site, id), ""); err != nil {
		return err
	}
	delete(d.cohorts[site], id)
	return nil
}

// setDef writes (or, with v empty, deletes) a definition in the log.
func (s *DB) setDef(key, v string) error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	err := s.db.Update(func(tx *buntdb.Tx) error {
		if v == "" {
			_, err := tx.Delete(key)
			return err
		}
		_, _, err := tx.Set(key, v, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

const actionPrefix = "action:"

// eventSpec is what an event name in a query stands for: a plain name, or
// an action's steps.
type eventSpec struct {
	label string
	steps []specStep
	// filter narrows the spec: `E|<filter>` (SPEC §4) is E's events where
	// the filter passes.
	filter *Filter
}

type specStep struct {
	ActionStep
	sel *selector
}

// resolveEvent turns an event name or `action:<id>`, optionally followed
// by `|<filter>`, into an eventSpec.
func (s *DB) resolveEvent(site, name string) (*eventSpec, error) {
	if base, fs, ok := strings.Cut(name, "|"); ok {
		f, err := ParseFilter(fs)
		if err != nil {
			return nil, badQuery("%q: %v", name, err)
		}
		sp, err := s.resolveEvent(site, base)
		if err != nil {
			return nil, err
		}
		sp.label, sp.filter = name, &f
		return sp, nil
	}
	sp := &eventSpec{label: name}
	idStr, isAction := strings.CutPrefix(name, actionPrefix)
	if !isAction {
		if name == "" {
			return nil, badQuery("empty event name")
		}
		sp.steps = []specStep{{ActionStep: ActionStep{Event: name}}}
		return sp, nil
	}
	id, err := strconv.ParseInt(idStr, 10, 64)
	if err != nil {
		return nil, badQuery("%q: want action:<id>", name)
	}
	a, err := s.Action(context.Background(), site, id)
	if err != nil {
		return nil, badQuery("action %d does not exist", id)
	}
	for _, st := range a.Steps {
		ss := specStep{ActionStep: st}
		if st.Selector != "" {
			if ss.sel, err = parseSelector(st.Selector); err != nil {
				return nil, badQuery("action %d: %v", id, err)
			}
		}
		sp.steps = append(sp.steps, ss)
	}
	return sp, nil
}

// Columns of properties that action steps test.
const (
	colURL    = "$current_url"
	colChain  = "$elements_chain"
	colElText = "$el_text"
)

// columns lists the property columns the spec needs besides the name.
func (sp *eventSpec) columns() []string {
	var out []string
	if sp.filter != nil && sp.filter.Prop != "event" {
		out = append(out, sp.filter.Prop)
	}
	for _, st := range sp.steps {
		if st.URLContains != "" {
			out = append(out, colURL)
		}
		if st.Selector != "" || st.Href != "" || st.Text != "" {
			out = append(out, colChain)
		}
		if st.Text != "" {
			out = append(out, colElText)
		}
	}
	return out
}

// eventSet matches rows against up to 32 specs at once: bit k of a row's
// mask says whether it matches spec k. Conditions on the name alone are a
// table by name code; others are tested per row, by dictionary code, each
// code's answer computed once.
type eventSet struct {
	byName []uint32
	terms  []eventTerm
}

// anyName is the name of a term that matches any event name.
const anyName = noCode - 1

type eventTerm struct {
	bit   uint32
	name  uint32 // a name code, anyName or noCode
	conds []*codeCond
	// rows, when set, keeps only these rows: server pageviews are indexed
	// under $pageview until confirmed (pageloads.go), so the name alone
	// does not find them.
	rows *bitset
}

type codeCond struct {
	col  *column
	test func(string) bool
	memo []uint8 // by code: 0 not known yet, 1 passes, 2 fails
}

func (c *codeCond) ok(row int) bool {
	code := c.col.at(row)
	m := c.memo[code]
	if m == 0 {
		m = 2
		if c.test(c.col.dict.str(code)) {
			m = 1
		}
		c.memo[code] = m
	}
	return m == 1
}

// compileEvents builds the eventSet of specs; the run holds the lock.
func (r *run) compileEvents(specs []*eventSpec) *eventSet { return r.t.compileEvents(specs) }

// compileEvents builds the eventSet of specs; the caller holds t.mu (read)
// and has built the specs' columns.
func (t *table) compileEvents(specs []*eventSpec) *eventSet {
	es := &eventSet{byName: make([]uint32, t.name.dict.size())}
	cond := func(key string, test func(string) bool) *codeCond {
		c := t.lookupColumn(key)
		return &codeCond{col: c, test: test, memo: make([]uint8, c.dict.size())}
	}
	for k, sp := range specs {
		bit := uint32(1) << k
		for _, st := range sp.steps {
			name := uint32(anyName)
			var rows *bitset
			switch {
			case st.Event == ServerPageview:
				rows = &t.loads.server
			case st.Event != "":
				c, ok := t.name.dict.lookup(st.Event)
				if !ok {
					continue
				}
				name = c
			}
			var conds []*codeCond
			if f := sp.filter; f != nil {
				conds = append(conds, cond(f.Prop, f.matchValue))
			}
			if u := st.URLContains; u != "" {
				conds = append(conds, cond(colURL, func(v string) bool { return strings.Contains(v, u) }))
			}
			if sel := st.sel; sel != nil {
				conds = append(conds, cond(colChain, func(v string) bool { return sel.matches(parseElements(v)) }))
			}
			if h := st.Href; h != "" {
				conds = append(conds, cond(colChain, func(v string) bool {
					els := parseElements(v)
					return len(els) > 0 && els[0].href() == h
				}))
			}
			if st.Text == "" {
				if len(conds) == 0 && name != anyName && rows == nil {
					es.byName[name] |= bit
				} else {
					es.terms = append(es.terms, eventTerm{bit: bit, name: name, conds: conds, rows: rows})
				}
				continue
			}
			txt := st.Text
			byElText := cond(colElText, func(v string) bool { return v == txt })
			byChain := cond(colChain, func(v string) bool {
				els := parseElements(v)
				return len(els) > 0 && els[0].text() == txt
			})
			es.terms = append(es.terms,
				eventTerm{bit: bit, name: name, conds: append(conds[:len(conds):len(conds)], byElText), rows: rows},
				eventTerm{bit: bit, name: name, conds: append(conds[:len(conds):len(conds)], byChain), rows: rows})
		}
	}
	return es
}

// mask returns the specs that the row (with name code name) matches.
func (es *eventSet) mask(row int, name uint32) uint32 {
	var m uint32
	if int(name) < len(es.byName) {
		m = es.byName[name]
	}
	for i := range es.terms {
		tm := &es.terms[i]
		if m&tm.bit != 0 || tm.name != anyName && tm.name != name || tm.rows != nil && !tm.rows.has(row) {
			continue
		}
		ok := true
		for _, c := range tm.conds {
			if !c.ok(row) {
				ok = false
				break
			}
		}
		if ok {
			m |= tm.bit
		}
	}
	return m
}

// simple reports whether the set tests names only.
func (es *eventSet) simple() bool { return len(es.terms) == 0 }

// cohortMembers returns, by root, whether the person is in c.
func (r *run) cohortMembers(c *Cohort, sp *eventSpec) []bool {
	member := make([]bool, len(r.roots))
	switch c.Kind {
	case CohortBehavioral:
		to := r.q.To.In(r.q.tz())
		from := to.AddDate(0, 0, -c.Days)
		es := r.compileEvents([]*eventSpec{sp})
		names := newColReader(r.t.name)
		r.chunksIn(from.UnixMilli(), to.UnixMilli(), false, func(ci int, rows []int32) {
			codes := names.chunk(ci)
			dids := r.t.did.chunk(ci)
			for _, off := range rows {
				if es.mask(ci<<chunkBits|int(off), codes[off]) != 0 {
					member[r.roots[dids[off]]] = true
				}
			}
		})
	case CohortProperty:
		f := Filter{Prop: c.Property, Op: c.Op, Value: c.Value}
		for d := 1; d < len(r.roots); d++ {
			if r.roots[d] == uint32(d) {
				member[d] = f.matchValue(r.t.people.props[uint32(d)].Str(c.Property))
			}
		}
	}
	return member
}
