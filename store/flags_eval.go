package store

import (
	"context"
	"crypto/sha1"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"hash/maphash"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FlagHash is PostHog's bucketing hash: the first 15 hex digits of
// sha1("<key>.<distinctID><salt>") as an integer, over 0xFFFFFFFFFFFFFFF.
func FlagHash(key, distinctID, salt string) float64 {
	h := flagHashers.Get().(*flagHasher)
	v := h.hash(key, distinctID, salt)
	flagHashers.Put(h)
	return v
}

// flagHasher computes FlagHash without sha1.Sum's padding work, which is
// as costly as the hashing itself for messages this short: it pads the
// message itself (FIPS 180-4 §5.1.1), has the digest hash the padded
// blocks, and reads the result from the digest's state.
type flagHasher struct {
	d   hash.Hash
	app encoding.BinaryAppender
	buf [256]byte
	st  [128]byte
}

var flagHashers = sync.Pool{New: func() any {
	d := sha1.New()
	app, _ := d.(encoding.BinaryAppender)
	return &flagHasher{d: d, app: app}
}}

func (h *flagHasher) hash(key, distinctID, salt string) float64 {
	n := len(key) + 1 + len(distinctID) + len(salt)
	padded := (n + 1 + 8 + 63) &^ 63
	if padded > len(h.buf) || h.app == nil {
		b := make([]byte, 0, n)
		b = append(append(append(append(b, key...), '.'), distinctID...), salt...)
		sum := sha1.Sum(b)
		return flagHashValue(sum[:8])
	}
	b := h.buf[:padded]
	i := copy(b, key)
	b[i] = '.'
	i++
	i += copy(b[i:], distinctID)
	i += copy(b[i:], salt)
	b[i] = 0x80
	clear(b[i+1 : padded-8])
	binary.BigEndian.PutUint64(b[padded-8:], uint64(n)*8)
	h.d.Reset()
	h.d.Write(b)
	// The state after the last block is the hash: after a 4-byte tag, its
	// five words, big-endian.
	st, err := h.app.AppendBinary(h.st[:0])
	if err != nil || len(st) < 12 {
		sum := sha1.Sum(b[:n])
		return flagHashValue(sum[:8])
	}
	return flagHashValue(st[4:12])
}

// flagHashValue is the first 15 hex digits of a hash whose first 8 bytes
// are b (the top 60 bits), over 0xFFFFFFFFFFFFFFF.
func flagHashValue(b []byte) float64 {
	return float64(binary.BigEndian.Uint64(b)>>4) / 0xFFFFFFFFFFFFFFF
}

// flagSnapshot is what evaluation reads: immutable, swapped whole on every
// change.
type flagSnapshot struct {
	sites map[string]*siteFlags
}

type siteFlags struct {
	key    string
	active []*compiledFlag // by id
	// needsPerson says some active flag tests person properties or
	// cohorts, so evaluation looks the person up.
	needsPerson bool
	cohorts     []int64 // cohorts the active flags name
	// propKeys are the person properties the conditions name; a request
	// looks each up once (flagEval.slots).
	propKeys []string
	// needsDerived says a condition names a property derived from the
	// person's events ($initial_<name> or <name>, persons.go).
	needsDerived bool
	local        []byte // the local-evaluation answer
	hashes       hashCache
	// seen remembers a fingerprint of recent distinct ids (seenBefore).
	seen [1 << 14]atomic.Uint32
}

// hashCache keeps the bucketing hashes of recently seen distinct ids: a
// visitor asks for flags on every page load, and sha1 is most of the cost
// of an answer. It lives in the snapshot, so a change of flags starts it
// afresh; it holds at most maxCachedHashes values and is emptied when full.
type hashCache struct {
	mu sync.Mutex
	m  map[string][]float64 // by distinct id: rollout and variant hash of each active flag
}

const maxCachedHashes = 1 << 20 // 8 MiB of hashes per site

// cached returns the hashes of distinctID when they are cached: for flag
// i, [2i] with salt "" and [2i+1] with salt "variant" (NaN: not computed).
// A cached slice is never written.
func (sf *siteFlags) cached(distinctID string) []float64 {
	c := &sf.hashes
	c.mu.Lock()
	h := c.m[distinctID]
	c.mu.Unlock()
	return h
}

// seenBefore reports whether distinctID (probably) asked before, and
// notes that it asked: only the hashes of those are cached, so that a
// stream of ids never seen again does not churn the cache.
func (sf *siteFlags) seenBefore(distinctID string) bool {
	h := maphash.String(seenSeed, distinctID)
	slot := &sf.seen[h%uint64(len(sf.seen))]
	fp := uint32(h>>32) | 1
	if slot.Load() == fp {
		return true
	}
	slot.Store(fp)
	return false
}

var seenSeed = maphash.MakeSeed()

// remember caches the hashes an evaluation computed.
func (sf *siteFlags) remember(distinctID string, h []float64) {
	c := &sf.hashes
	c.mu.Lock()
	if c.m == nil || (len(c.m)+1)*len(h) > maxCachedHashes {
		c.m = make(map[string][]float64)
	}
	c.m[strings.Clone(distinctID)] = h
	c.mu.Unlock()
}

type compiledFlag struct {
	Flag
	// Renderings of the outcomes (flags_wire.go): no match, out of the
	// rollout of group i, match in group i with variant v (0: none).
	wireNoMatch *FlagWire
	wireError   *FlagWire
	nwires      int // renderings made
	wireOut     []*FlagWire
	wireMatch   [][]*FlagWire
	groups      []compiledGroup
	variants    []variantRange
	payloads    map[string][]byte // JSON string literals of the payload JSON
}

type variantRange struct {
	key      string
	min, max float64
}

type compiledGroup struct {
	conds   []compiledCond
	rollout float64 // -1: no rollout limit
	variant string
}

// Outcomes of one flag's evaluation, as flagEval.outcome gives them.
const (
	outNoMatch = iota
	outOutOfRollout
	outMatch
	outError
)

type compiledCond struct {
	key    string
	slot   int // of key in siteFlags.propKeys; -1 for a cohort
	op     string
	cohort int64
	values []string // lower-cased string forms of the value (a list for exact/is_not)
	truthy int8     // exact/is_not against true/false: 1 or 0; -1 otherwise
	num    float64
	isNum  bool
	re     *regexp.Regexp
}

// publish rebuilds the snapshot; the caller holds st.mu (or is loading).
func (st *flagState) publish(s *DB) {
	sn := &flagSnapshot{sites: map[string]*siteFlags{}}
	site := func(name string) *siteFlags {
		sf := sn.sites[name]
		if sf == nil {
			sf = &siteFlags{}
			sn.sites[name] = sf
		}
		return sf
	}
	for name, k := range st.keys {
		site(name).key = k
	}
	for name, fs := range st.flags {
		sf := site(name)
		for _, f := range fs {
			if !f.Active {
				continue
			}
			cf, err := compileFlag(f)
			if err != nil {
				s.opts.OnError(fmt.Errorf("flag %s of %s: %w", f.Key, name, err))
				cf = &compiledFlag{Flag: f, groups: nil} // a broken flag matches nothing
				cf.prerender()
			}
			sf.active = append(sf.active, cf)
			for _, g := range cf.groups {
				for ci := range g.conds {
					c := &g.conds[ci]
					sf.needsPerson = true
					if c.cohort != 0 {
						sf.cohorts = append(sf.cohorts, c.cohort)
						continue
					}
					c.slot = slices.Index(sf.propKeys, c.key)
					if c.slot < 0 {
						c.slot = len(sf.propKeys)
						sf.propKeys = append(sf.propKeys, c.key)
					}
					if isDerivedProp(c.key) {
						sf.needsDerived = true
					}
				}
			}
		}
		sort.Slice(sf.active, func(i, j int) bool { return sf.active[i].ID < sf.active[j].ID })
	}
	for name, sf := range sn.sites {
		sf.local = s.localEvaluation(name, sf)
		for _, id := range sf.cohorts {
			// A property cohort may name a derived property too.
			if c, err := s.Cohort(context.Background(), name, id); err == nil && c.Kind == CohortProperty && isDerivedProp(c.Property) {
				sf.needsDerived = true
			}
		}
	}
	st.snap.Store(sn)
	// Cohort definitions and behavioral members are computed here, on the
	// write path, so that evaluation finds them ready.
	st.coh.cur.Store(st.coh.compute(s))
}

func compileFlag(f Flag) (cf *compiledFlag, err error) {
	defer func() {
		if r := recover(); r != nil {
			cf, err = nil, fmt.Errorf("compiling: %v", r)
		}
	}()
	cf = &compiledFlag{Flag: f, payloads: map[string][]byte{}}
	if mv := f.Filters.Multivariate; mv != nil {
		lo := 0.0
		for _, v := range mv.Variants {
			hi := lo + v.RolloutPercentage/100
			cf.variants = append(cf.variants, variantRange{key: v.Key, min: lo, max: hi})
			lo = hi
		}
	}
	for k, p := range f.Filters.Payloads {
		cf.payloads[k] = AppendJSONString(nil, string(p))
	}
	for _, g := range f.Filters.Groups {
		cg := compiledGroup{rollout: -1}
		if g.RolloutPercentage != nil {
			cg.rollout = *g.RolloutPercentage
		}
		if g.Variant != nil {
			cg.variant = *g.Variant
		}
		for _, p := range g.Properties {
			c, err := compileCond(p)
			if err != nil {
				return nil, err
			}
			cg.conds = append(cg.conds, c)
		}
		cf.groups = append(cf.groups, cg)
	}
	cf.prerender()
	return cf, nil
}

func compileCond(p FlagProperty) (compiledCond, error) {
	c := compiledCond{key: p.Key, slot: -1, op: p.Operator, truthy: -1}
	if p.Type == "cohort" {
		id, ok := cohortID(p.Value)
		if !ok {
			return c, fmt.Errorf("bad cohort %s", p.Value)
		}
		c.cohort = id
		return c, nil
	}
	if !flagOperators[p.Operator] {
		return c, fmt.Errorf("unknown operator %q", p.Operator)
	}
	var v any
	if len(p.Value) > 0 {
		if err := json.Unmarshal(p.Value, &v); err != nil {
			return c, err
		}
	}
	list, isList := v.([]any)
	if !isList {
		list = []any{v}
	}
	for _, x := range list {
		c.values = append(c.values, strings.ToLower(anyString(x)))
	}
	if (c.op == "exact" || c.op == "is_not") && !isList {
		switch s := c.values[0]; {
		case v == true || s == "true":
			c.truthy = 1
		case v == false || s == "false":
			c.truthy = 0
		}
	}
	if len(c.values) > 0 {
		f, err := strconv.ParseFloat(c.values[0], 64)
		c.num, c.isNum = f, err == nil
	}
	if c.op == "regex" || c.op == "not_regex" {
		s, _ := v.(string)
		re, err := regexp.Compile(s)
		if err != nil {
			return c, err
		}
		c.re = re
	}
	return c, nil
}

// anyString is the text form of a decoded JSON value, as PostHog compares
// them: strings as they are, numbers without a trailing .0, JSON otherwise.
func anyString(x any) string {
	switch v := x.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return ""
	}
	b, _ := json.Marshal(x)
	return string(b)
}

// valueString is the text form of a property value, as anyString.
func valueString(v Value) string {
	if v.Kind == KindNumber {
		if f, err := strconv.ParseFloat(v.S, 64); err == nil {
			return strconv.FormatFloat(f, 'f', -1, 64)
		}
	}
	return v.String()
}

// FlagRequest asks for the flags of one distinct id.
type FlagRequest struct {
	Site       string
	DistinctID string
	// Props are the person properties the SDK sent; they win over the
	// stored ones.
	Props Props
	// Keys, when not empty, limit the answer to these flags.
	Keys []string
}

// FlagResult is one flag's value for a distinct id.
type FlagResult struct {
	Key            string
	ID, Version    int64
	Enabled        bool
	Variant        string // "" for none
	Reason         string // PostHog's reason code
	ConditionIndex int    // of the matching (or deciding) group; -1 for none
	// Payload is the payload as a JSON string literal (PostHog sends the
	// payload's JSON text), nil when there is none.
	Payload []byte
	// Wire is the result in PostHog's answer format.
	Wire *FlagWire
}

// Reason codes, PostHog's.
const (
	ReasonConditionMatch   = "condition_match"
	ReasonNoConditionMatch = "no_condition_match"
	ReasonOutOfRollout     = "out_of_rollout_bound"
	ReasonError            = "error"
)

// ReasonDescription is the human text PostHog gives with a reason.
func ReasonDescription(r FlagResult) string {
	switch r.Reason {
	case ReasonConditionMatch:
		return "Matched condition set " + strconv.Itoa(r.ConditionIndex+1)
	case ReasonOutOfRollout:
		return "Out of rollout bound"
	case ReasonError:
		return "Flag could not be evaluated"
	}
	return "No matching condition set"
}

// EvaluateFlags appends to out the value of every active flag of the site
// (or of req.Keys) for req.DistinctID, by PostHog's rules. It reads an
// immutable snapshot and never waits for a writer: when the person's table
// is being written, the stored properties are left out.
func (s *DB) EvaluateFlags(req FlagRequest, out []FlagResult) []FlagResult {
	s.evaluate(&req, func(f *compiledFlag, kind, gi, vi int) {
		r := f.result(kind, gi, vi)
		r.Wire = f.wire(kind, gi, vi)
		out = append(out, r)
	})
	return out
}

// EvaluateFlagWires is EvaluateFlags giving only each flag's answer in
// PostHog's format, rendered when the flags were published: the hot path
// of /flags/, which then only concatenates.
func (s *DB) EvaluateFlagWires(req FlagRequest, out []*FlagWire) []*FlagWire {
	s.evaluate(&req, func(f *compiledFlag, kind, gi, vi int) {
		out = append(out, f.wire(kind, gi, vi))
	})
	return out
}

// evaluate calls emit with the outcome of every active flag of the site
// (or of req.Keys), in the order of their ids.
func (s *DB) evaluate(req *FlagRequest, emit func(f *compiledFlag, kind, gi, vi int)) {
	if s.flagsLoaded() != nil {
		return
	}
	sf := s.flags.snap.Load().sites[req.Site]
	if sf == nil || len(sf.active) == 0 {
		return
	}
	// What the evaluation fills in lives beside ev, not in it, so that
	// nothing of ev outlives the call and ev stays on the stack.
	var hs hasherSlot
	ev := flagEval{s: s, req: req, sf: sf, hs: &hs}
	var slotBuf [16]propSlot
	if n := len(sf.propKeys); n <= len(slotBuf) {
		ev.slots = slotBuf[:n]
	} else {
		ev.slots = make([]propSlot, n)
	}
	if sf.needsPerson {
		ev.stored, ev.root = s.flagPerson(req.Site, req.DistinctID, sf.needsDerived)
		if len(sf.cohorts) > 0 {
			ev.cohorts = s.flags.coh.get(s, req.Site)
		}
	}
	var fresh []float64
	if len(req.Keys) == 0 {
		if ev.hashes = sf.cached(req.DistinctID); ev.hashes == nil && sf.seenBefore(req.DistinctID) {
			// Computed as needed during this evaluation, then shared.
			fresh = make([]float64, 2*len(sf.active))
			for i := range fresh {
				fresh[i] = math.NaN()
			}
			ev.hashes, ev.fill = fresh, true
		}
	}
	for i, f := range sf.active {
		if len(req.Keys) > 0 && !containsString(req.Keys, f.Key) {
			continue
		}
		ev.i = i
		kind, gi, vi := ev.outcome(f)
		emit(f, kind, gi, vi)
	}
	if fresh != nil {
		sf.remember(req.DistinctID, fresh)
	}
	if hs.h != nil {
		flagHashers.Put(hs.h)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type flagEval struct {
	s       *DB
	req     *FlagRequest
	sf      *siteFlags
	stored  Props
	root    string
	cohorts *cohortSnap
	hashes  []float64 // hashes of the distinct id by flag, or nil
	fill    bool      // hashes is this evaluation's own: fill it in
	i       int       // index of the flag being evaluated
	hs      *hasherSlot
	// slots hold the properties the conditions name, looked up once.
	slots []propSlot
}

// propSlot is one person property of a request, as the conditions compare
// it.
type propSlot struct {
	state uint8 // 0: not looked up; 1: absent; 2: present
	lower bool  // low holds the lower-cased text
	val   Value
	low   string
}

// hash is FlagHash of the current flag, from the cache when there is one.
func (e *flagEval) hash(f *compiledFlag, variant bool) float64 {
	if e.hashes != nil {
		k := 2 * e.i
		if variant {
			k++
		}
		if h := e.hashes[k]; !math.IsNaN(h) {
			return h
		}
		salt := ""
		if variant {
			salt = "variant"
		}
		h := e.hasher().hash(f.Key, e.req.DistinctID, salt)
		if e.fill {
			e.hashes[k] = h
		}
		return h
	}
	if variant {
		return e.hasher().hash(f.Key, e.req.DistinctID, "variant")
	}
	return e.hasher().hash(f.Key, e.req.DistinctID, "")
}

// hasher is the evaluation's flagHasher, taken from the pool on first use.
func (e *flagEval) hasher() *flagHasher {
	if e.hs.h == nil {
		e.hs.h = flagHashers.Get().(*flagHasher)
	}
	return e.hs.h
}

type hasherSlot struct{ h *flagHasher }

// prop is the person property key: the request's, else the stored one.
func (e *flagEval) prop(key string) (Value, bool) {
	if v, ok := e.req.Props.Get(key); ok {
		return v, v.Kind != KindNull
	}
	v, ok := e.stored.Get(key)
	return v, ok && v.Kind != KindNull
}

// slot is prop of the condition's property, looked up once per request.
func (e *flagEval) slot(c *compiledCond) *propSlot {
	ps := &e.slots[c.slot]
	if ps.state == 0 {
		ps.state = 1
		if v, ok := e.prop(c.key); ok {
			ps.state, ps.val = 2, v
		}
	}
	return ps
}

// lowered is the slot's value as text, lower-cased, made once.
func (ps *propSlot) lowered() string {
	if !ps.lower {
		ps.low, ps.lower = strings.ToLower(valueString(ps.val)), true
	}
	return ps.low
}

// outcome evaluates one flag: the kind of outcome, the deciding group
// (-1: none) and the variant (1 + its index; 0: none, or the group's own
// variant). A panic makes the flag an error, never the request fail.
func (e *flagEval) outcome(f *compiledFlag) (kind, gi, vi int) {
	defer func() {
		if p := recover(); p != nil {
			kind, gi, vi = outError, -1, 0
		}
	}()
	kind, gi = outNoMatch, -1
	var hash float64
	hashed := false
	for i := range f.groups {
		g := &f.groups[i]
		matched := true
		for ci := range g.conds {
			if !e.cond(&g.conds[ci]) {
				matched = false
				break
			}
		}
		if !matched {
			continue
		}
		if g.rollout >= 0 && g.rollout < 100 { // every hash is <= 1: 100% needs none
			if !hashed {
				hash, hashed = e.hash(f, false), true
			}
			if hash > g.rollout/100 {
				if kind != outOutOfRollout {
					kind, gi = outOutOfRollout, i
				}
				continue
			}
		}
		if g.variant == "" && len(f.variants) > 0 {
			vh := e.hash(f, true)
			for k := range f.variants {
				if v := &f.variants[k]; vh >= v.min && vh < v.max {
					vi = k + 1
					break
				}
			}
		}
		return outMatch, i, vi
	}
	return kind, gi, 0
}

// result is an outcome as a FlagResult (without Wire).
func (f *compiledFlag) result(kind, gi, vi int) FlagResult {
	r := FlagResult{Key: f.Key, ID: f.ID, Version: f.Version, Reason: ReasonNoConditionMatch, ConditionIndex: gi}
	switch kind {
	case outOutOfRollout:
		r.Reason = ReasonOutOfRollout
	case outError:
		r.Reason, r.ConditionIndex = ReasonError, -1
	case outMatch:
		r.Enabled, r.Reason = true, ReasonConditionMatch
		if vi > 0 {
			r.Variant = f.variants[vi-1].key
		} else {
			r.Variant = f.groups[gi].variant
		}
		pk := r.Variant
		if pk == "" {
			pk = "true"
		}
		r.Payload = f.payloads[pk]
	}
	return r
}

func (e *flagEval) cond(c *compiledCond) bool {
	if c.cohort != 0 {
		in := e.inCohort(c.cohort)
		if c.op == "not_in" {
			return !in
		}
		return in
	}
	ps := e.slot(c)
	ok := ps.state == 2
	switch c.op {
	case "is_set":
		return ok
	case "is_not_set":
		return !ok
	}
	if !ok {
		return false
	}
	v := ps.val
	switch c.op {
	case "exact", "is_not":
		s := ps.lowered()
		eq := false
		if c.truthy >= 0 && (v.Kind == KindTrue || v.Kind == KindFalse || s == "true" || s == "false") {
			eq = (s == "true") == (c.truthy == 1)
		} else {
			for _, x := range c.values {
				if x == s {
					eq = true
					break
				}
			}
		}
		return eq == (c.op == "exact")
	case "icontains":
		return strings.Contains(ps.lowered(), c.values[0])
	case "not_icontains":
		return !strings.Contains(ps.lowered(), c.values[0])
	case "regex":
		return c.re.MatchString(valueString(v))
	case "not_regex":
		return !c.re.MatchString(valueString(v))
	case "gt", "gte", "lt", "lte":
		var cmp int
		if f, err := strconv.ParseFloat(ps.lowered(), 64); err == nil && c.isNum {
			switch {
			case f < c.num:
				cmp = -1
			case f > c.num:
				cmp = 1
			}
		} else {
			cmp = strings.Compare(valueString(v), c.values[0])
		}
		switch c.op {
		case "gt":
			return cmp > 0
		case "gte":
			return cmp >= 0
		case "lt":
			return cmp < 0
		}
		return cmp <= 0
	}
	return false
}

// inCohort tests membership of the cohort as of the cohort cache: a
// property cohort on the merged person properties, a behavioral one by the
// person's membership when the cache was last computed.
func (e *flagEval) inCohort(id int64) bool {
	if e.cohorts == nil {
		return false
	}
	ci := e.cohorts.bySite[id]
	if ci == nil {
		return false // deleted cohort: no one is in it
	}
	if ci.def.Kind == CohortProperty {
		v, _ := e.prop(ci.def.Property)
		return Filter{Prop: ci.def.Property, Op: ci.def.Op, Value: ci.def.Value}.matchValue(v.String())
	}
	return e.root != "" && ci.members[e.root]
}

// cohortCache keeps, per site, the definitions of the cohorts flags use and
// the members of behavioral ones, recomputed in the background at most
// every cohortRefresh.
type cohortCache struct {
	cur        atomic.Pointer[cohortSnapSet]
	refreshing atomic.Bool
}

const cohortRefresh = 30 * time.Second

type cohortSnapSet struct {
	at    time.Time
	sites map[string]*cohortSnap
}

type cohortSnap struct {
	bySite map[int64]*cohortInfo
}

type cohortInfo struct {
	def     Cohort
	members map[string]bool // root distinct ids of a behavioral cohort's persons
}

// get returns the site's cohorts, computing them on first use and
// refreshing stale ones in the background.
func (c *cohortCache) get(s *DB, site string) *cohortSnap {
	set := c.cur.Load()
	if set == nil {
		set = c.compute(s)
		c.cur.CompareAndSwap(nil, set)
	} else if s.opts.Now().Sub(set.at) > cohortRefresh && c.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer c.refreshing.Store(false)
			c.cur.Store(c.compute(s))
		}()
	}
	return set.sites[site]
}

func (c *cohortCache) compute(s *DB) *cohortSnapSet {
	now := s.opts.Now()
	set := &cohortSnapSet{at: now, sites: map[string]*cohortSnap{}}
	sn := s.flags.snap.Load()
	if sn == nil {
		return set
	}
	for site, sf := range sn.sites {
		cs := &cohortSnap{bySite: map[int64]*cohortInfo{}}
		set.sites[site] = cs
		for _, id := range sf.cohorts {
			if cs.bySite[id] != nil {
				continue
			}
			def, err := s.Cohort(context.Background(), site, id)
			if err != nil {
				continue
			}
			ci := &cohortInfo{def: def}
			if def.Kind == CohortBehavioral {
				ci.members = s.behavioralMembers(site, id, now)
			}
			cs.bySite[id] = ci
		}
	}
	return set
}

// behavioralMembers lists the root distinct ids of a behavioral cohort's
// persons as of now.
func (s *DB) behavioralMembers(site string, id int64, now time.Time) map[string]bool {
	out := map[string]bool{}
	r, _, err := s.begin(context.Background(), Query{Site: site, From: now, To: now, Cohort: id}, nil)
	if err != nil {
		return out
	}
	defer r.end()
	for d := 1; d < len(r.roots); d++ {
		root := r.roots[d]
		if root == uint32(d) && int(root) < len(r.member) && r.member[root] {
			out[r.t.dids.str(root)] = true
		}
	}
	return out
}

// LocalEvaluation returns the answer of the local-evaluation endpoints:
// {"flags", "group_type_mapping", "cohorts"} in PostHog's shape, payloads
// as JSON-encoded strings.
func (s *DB) LocalEvaluation(site string) []byte {
	if s.flagsLoaded() != nil {
		return []byte(`{"flags":[],"group_type_mapping":{},"cohorts":{}}`)
	}
	if sf := s.flags.snap.Load().sites[site]; sf != nil {
		return sf.local
	}
	return []byte(`{"flags":[],"group_type_mapping":{},"cohorts":{}}`)
}

type localFlag struct {
	ID                         int64       `json:"id"`
	TeamID                     int         `json:"team_id"`
	Name                       string      `json:"name"`
	Key                        string      `json:"key"`
	Active                     bool        `json:"active"`
	Deleted                    bool        `json:"deleted"`
	Version                    int64       `json:"version"`
	EnsureExperienceContinuity bool        `json:"ensure_experience_continuity"`
	Filters                    localFilter `json:"filters"`
}

type localFilter struct {
	Groups       []FlagGroup       `json:"groups"`
	Multivariate *Multivariate     `json:"multivariate"`
	Payloads     map[string]string `json:"payloads"`
}

type localGroup struct {
	Type   string `json:"type"`
	Values []any  `json:"values"`
}

// localEvaluation renders the site's local-evaluation answer; cohorts
// that can be evaluated from properties are included, behavioral ones are
// left out (the SDKs then ask /flags/).
func (s *DB) localEvaluation(site string, sf *siteFlags) []byte {
	ans := struct {
		Flags            []localFlag           `json:"flags"`
		GroupTypeMapping map[string]string     `json:"group_type_mapping"`
		Cohorts          map[string]localGroup `json:"cohorts"`
	}{Flags: []localFlag{}, GroupTypeMapping: map[string]string{}, Cohorts: map[string]localGroup{}}
	for _, f := range sf.active {
		if f.groups == nil && len(f.Filters.Groups) > 0 {
			continue // broken: the SDKs ask the server, which says false
		}
		lf := localFlag{ID: f.ID, Name: f.Name, Key: f.Key, Active: true, Version: f.Version,
			Filters: localFilter{Groups: f.Filters.Groups, Multivariate: f.Filters.Multivariate, Payloads: map[string]string{}}}
		if lf.Filters.Groups == nil {
			lf.Filters.Groups = []FlagGroup{}
		}
		for k, p := range f.Filters.Payloads {
			lf.Filters.Payloads[k] = string(p)
		}
		ans.Flags = append(ans.Flags, lf)
	}
	ops := map[Op]string{OpEq: "exact", OpNe: "is_not", OpContains: "icontains", OpNotContains: "not_icontains"}
	for _, id := range sf.cohorts {
		c, err := s.Cohort(context.Background(), site, id)
		if err != nil || c.Kind != CohortProperty {
			continue
		}
		ans.Cohorts[strconv.FormatInt(id, 10)] = localGroup{Type: "OR", Values: []any{
			localGroup{Type: "AND", Values: []any{map[string]any{"key": c.Property, "operator": ops[c.Op], "value": c.Value, "type": "person"}}},
		}}
	}
	b, _ := json.Marshal(ans)
	return b
}
