package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tidwall/buntdb"
)

// Flag is a feature flag in PostHog's shape (SPEC §9). A flag is enabled
// for a distinct id when one of its condition groups matches; a
// multivariate flag then gives a variant.
type Flag struct {
	ID     int64  `json:"id"`
	Key    string `json:"key"`
	Name   string `json:"name"`
	Active bool   `json:"active"`
	// Version counts the saves of the flag, from 1 (PostHog's
	// metadata.version).
	Version int64       `json:"version"`
	Filters FlagFilters `json:"filters"`
}

// FlagFilters are the conditions, variants and payloads of a flag.
type FlagFilters struct {
	// Groups are tried in order; the first that matches decides.
	Groups       []FlagGroup   `json:"groups"`
	Multivariate *Multivariate `json:"multivariate"`
	// Payloads maps "true" (a flag without variants) or a variant key to
	// a JSON value, kept as compact JSON text.
	Payloads map[string]json.RawMessage `json:"payloads"`
}

// FlagGroup matches when all its properties match and the distinct id's
// hash falls within RolloutPercentage (nil: everyone who matches).
type FlagGroup struct {
	Properties        []FlagProperty `json:"properties"`
	RolloutPercentage *float64       `json:"rollout_percentage"`
	// Variant, when set to one of the flag's variants, is the variant of
	// everyone this group matches.
	Variant *string `json:"variant"`
}

// FlagProperty is one condition: a person property compared by Operator
// with Value, or (Type "cohort") membership of the cohort whose id is
// Value.
type FlagProperty struct {
	Key      string          `json:"key"`
	Value    json.RawMessage `json:"value"`
	Operator string          `json:"operator"`
	Type     string          `json:"type"`
}

// Multivariate lists a flag's variants; their rollout percentages sum to
// 100.
type Multivariate struct {
	Variants []FlagVariant `json:"variants"`
}

// FlagVariant is one variant of a multivariate flag.
type FlagVariant struct {
	Key               string  `json:"key"`
	Name              string  `json:"name"`
	RolloutPercentage float64 `json:"rollout_percentage"`
}

// flagOperators are the person-property operators flags accept.
var flagOperators = map[string]bool{
	"exact": true, "is_not": true, "icontains": true, "not_icontains": true,
	"regex": true, "not_regex": true, "is_set": true, "is_not_set": true,
	"gt": true, "gte": true, "lt": true, "lte": true,
}

var flagKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,200}$`)

// FlagKeyPrefix starts every site's secret flags key.
const FlagKeyPrefix = "phs_"

// validate checks f and normalises defaults (operator "exact", type
// "person", name = key). Errors wrap ErrBadQuery and name the field.
func (f *Flag) validate(cohortExists func(int64) bool) error {
	if !flagKeyRE.MatchString(f.Key) {
		return badQuery("key: %q must be 1 to 200 letters, digits, - or _", f.Key)
	}
	if strings.TrimSpace(f.Name) == "" {
		f.Name = f.Key
	}
	if len(f.Name) > 400 {
		return badQuery("name: longer than 400 bytes")
	}
	fl := &f.Filters
	if len(fl.Groups) > 100 {
		return badQuery("filters.groups: at most 100 groups")
	}
	variants := map[string]bool{}
	if mv := fl.Multivariate; mv != nil {
		if len(mv.Variants) == 0 {
			fl.Multivariate = nil
		} else {
			sum := 0.0
			for i, v := range mv.Variants {
				field := fmt.Sprintf("filters.multivariate.variants[%d]", i)
				if !flagKeyRE.MatchString(v.Key) {
					return badQuery("%s.key: %q must be 1 to 200 letters, digits, - or _", field, v.Key)
				}
				if v.Key == "true" || v.Key == "false" {
					return badQuery("%s.key: %q cannot be a variant key", field, v.Key)
				}
				if variants[v.Key] {
					return badQuery("%s.key: %q appears twice", field, v.Key)
				}
				variants[v.Key] = true
				if err := checkPercentage(field+".rollout_percentage", v.RolloutPercentage); err != nil {
					return err
				}
				sum += v.RolloutPercentage
			}
			if sum != 100 {
				return badQuery("filters.multivariate.variants: rollout percentages sum to %s, want 100", strconv.FormatFloat(sum, 'f', -1, 64))
			}
		}
	}
	for gi := range fl.Groups {
		g := &fl.Groups[gi]
		gfield := fmt.Sprintf("filters.groups[%d]", gi)
		if g.RolloutPercentage != nil {
			if err := checkPercentage(gfield+".rollout_percentage", *g.RolloutPercentage); err != nil {
				return err
			}
		}
		if g.Variant != nil && *g.Variant == "" {
			g.Variant = nil
		}
		if g.Variant != nil && !variants[*g.Variant] {
			return badQuery("%s.variant: %q is not one of the flag's variants", gfield, *g.Variant)
		}
		if g.Properties == nil {
			g.Properties = []FlagProperty{}
		}
		if len(g.Properties) > 100 {
			return badQuery("%s.properties: at most 100 conditions", gfield)
		}
		for pi := range g.Properties {
			p := &g.Properties[pi]
			pfield := fmt.Sprintf("%s.properties[%d]", gfield, pi)
			if err := p.validate(pfield, cohortExists); err != nil {
				return err
			}
		}
	}
	for k, v := range fl.Payloads {
		field := "filters.payloads." + k
		if k != "true" && !variants[k] {
			return badQuery("%s: %q is neither \"true\" nor a variant key", field, k)
		}
		raw, err := payloadJSON(v)
		if err != nil {
			return badQuery("%s: invalid JSON: %v", field, err)
		}
		if len(raw) > 64<<10 {
			return badQuery("%s: larger than 64 KiB", field)
		}
		if fl.Payloads == nil {
			fl.Payloads = map[string]json.RawMessage{}
		}
		fl.Payloads[k] = raw
	}
	return nil
}

// payloadJSON is the compact JSON of a payload. A JSON string holds the
// payload as JSON text, as PostHog's API has it, and must itself be JSON.
func payloadJSON(v json.RawMessage) (json.RawMessage, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return nil, fmt.Errorf("empty")
	}
	if v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, err
		}
		v = []byte(s)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func checkPercentage(field string, p float64) error {
	if math.IsNaN(p) || p < 0 || p > 100 || p != math.Trunc(p) {
		return badQuery("%s: %v is not a whole number from 0 to 100", field, p)
	}
	return nil
}

func (p *FlagProperty) validate(field string, cohortExists func(int64) bool) error {
	switch p.Type {
	case "", "person":
		p.Type = "person"
	case "cohort":
		id, ok := cohortID(p.Value)
		if !ok {
			return badQuery("%s.value: want a cohort id, got %s", field, string(p.Value))
		}
		switch p.Operator {
		case "", "in", "exact":
			p.Operator = "in"
		case "not_in":
		default:
			return badQuery("%s.operator: unknown operator %q for a cohort (want in or not_in)", field, p.Operator)
		}
		if cohortExists != nil && !cohortExists(id) {
			return badQuery("%s.value: cohort %d does not exist", field, id)
		}
		p.Key = "id"
		return nil
	default:
		return badQuery("%s.type: %q is not person or cohort", field, p.Type)
	}
	if p.Key == "" {
		return badQuery("%s.key: a property condition needs a property", field)
	}
	if p.Operator == "" {
		p.Operator = "exact"
	}
	if !flagOperators[p.Operator] {
		return badQuery("%s.operator: unknown operator %q", field, p.Operator)
	}
	if p.Operator == "is_set" || p.Operator == "is_not_set" {
		p.Value = json.RawMessage(`"` + p.Operator + `"`)
		return nil
	}
	v := bytes.TrimSpace(p.Value)
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return badQuery("%s.value: the %s operator needs a value", field, p.Operator)
	}
	var val any
	if err := json.Unmarshal(v, &val); err != nil {
		return badQuery("%s.value: %v", field, err)
	}
	if _, isMap := val.(map[string]any); isMap {
		return badQuery("%s.value: want a string, number, boolean or list", field)
	}
	var buf bytes.Buffer
	json.Compact(&buf, v)
	p.Value = buf.Bytes()
	if p.Operator == "regex" || p.Operator == "not_regex" {
		s, _ := val.(string)
		if _, err := regexp.Compile(s); err != nil {
			return badQuery("%s.value: invalid regular expression: %v", field, err)
		}
	}
	return nil
}

// cohortID reads a cohort condition's value: a number or a numeric string.
func cohortID(v json.RawMessage) (int64, bool) {
	s := strings.Trim(string(bytes.TrimSpace(v)), `"`)
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}

// flagState holds every site's flags, persisted in the log as JSON under
// f:<site>\x00<id>, with the secret flags key under fk:<site> and
// experiments under fx:<site>\x00<id>. Loaded on first use; evaluation
// reads an immutable snapshot (snap) and never takes a lock.
type flagState struct {
	once    sync.Once
	loadErr error

	mu      sync.Mutex // serialises writers
	flags   map[string]map[int64]Flag
	keys    map[string]string
	exps    map[string]map[int64]Experiment
	lastID  int64
	lastExp int64

	snap   atomic.Pointer[flagSnapshot]
	coh    cohortCache
	loaded atomic.Bool
	// spans indexes, by site, the first and latest rows of every distinct
	// id, for the derived person properties (flags_person.go).
	spans sync.Map
}

// flagCohortsChanged republishes the flags after a cohort was saved or
// deleted, so that evaluation sees the cohort as it is now.
func (s *DB) flagCohortsChanged() {
	st := &s.flags
	if !st.loaded.Load() {
		return
	}
	st.mu.Lock()
	st.publish(s)
	st.mu.Unlock()
}

func flagKey(kind, site string, id int64) string {
	return kind + ":" + site + "\x00" + strconv.FormatInt(id, 10)
}

// flagsLoaded loads the flags from the log once.
func (s *DB) flagsLoaded() error {
	st := &s.flags
	st.once.Do(func() {
		st.flags = map[string]map[int64]Flag{}
		st.keys = map[string]string{}
		st.exps = map[string]map[int64]Experiment{}
		st.loadErr = s.db.View(func(tx *buntdb.Tx) error {
			var err error
			each := func(prefix string, fn func(site string, id int64, v string) error) error {
				e := tx.AscendKeys(prefix+"*", func(k, v string) bool {
					site, idStr, ok := strings.Cut(k[len(prefix):], "\x00")
					id, perr := strconv.ParseInt(idStr, 10, 64)
					if !ok || perr != nil {
						return true // not ours (another kind with this prefix)
					}
					if err = fn(site, id, v); err != nil {
						return false
					}
					return true
				})
				return cmpErr(e, err)
			}
			if err := each("f:", func(site string, id int64, v string) error {
				var f Flag
				if err := json.Unmarshal([]byte(v), &f); err != nil {
					return fmt.Errorf("flag %s: %w", site, err)
				}
				if st.flags[site] == nil {
					st.flags[site] = map[int64]Flag{}
				}
				st.flags[site][id] = f
				st.lastID = max(st.lastID, id)
				return nil
			}); err != nil {
				return err
			}
			if err := each("fx:", func(site string, id int64, v string) error {
				var x Experiment
				if err := json.Unmarshal([]byte(v), &x); err != nil {
					return fmt.Errorf("experiment %s: %w", site, err)
				}
				if st.exps[site] == nil {
					st.exps[site] = map[int64]Experiment{}
				}
				st.exps[site][id] = x
				st.lastExp = max(st.lastExp, id)
				return nil
			}); err != nil {
				return err
			}
			return tx.AscendKeys("fk:*", func(k, v string) bool {
				st.keys[k[3:]] = v
				return true
			})
		})
		st.publish(s)
		st.loaded.Store(true)
	})
	return st.loadErr
}

// Flags lists the flags of site by id.
func (s *DB) Flags(ctx context.Context, site string) ([]Flag, error) {
	if err := s.flagsLoaded(); err != nil {
		return nil, err
	}
	st := &s.flags
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]Flag, 0, len(st.flags[site]))
	for _, f := range st.flags[site] {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Flag returns one flag.
func (s *DB) Flag(ctx context.Context, site string, id int64) (Flag, error) {
	if err := s.flagsLoaded(); err != nil {
		return Flag{}, err
	}
	st := &s.flags
	st.mu.Lock()
	defer st.mu.Unlock()
	f, ok := st.flags[site][id]
	if !ok {
		return Flag{}, ErrNotFound
	}
	return f, nil
}

// SaveFlag creates f (ID 0) or replaces the flag with its ID. An invalid
// flag or a key another flag of the site has wraps ErrBadQuery.
func (s *DB) SaveFlag(ctx context.Context, site string, f Flag) (Flag, error) {
	if err := s.flagsLoaded(); err != nil {
		return f, err
	}
	if err := f.validate(func(id int64) bool { _, err := s.Cohort(ctx, site, id); return err == nil }); err != nil {
		return f, err
	}
	st := &s.flags
	st.mu.Lock()
	defer st.mu.Unlock()
	old, exists := st.flags[site][f.ID]
	if f.ID == 0 {
		f.ID = st.lastID + 1
		f.Version = 1
	} else if !exists {
		return f, ErrNotFound
	} else {
		f.Version = old.Version + 1
	}
	for _, o := range st.flags[site] {
		if o.Key == f.Key && o.ID != f.ID {
			return f, badQuery("key: flag %q already exists", f.Key)
		}
	}
	v, _ := json.Marshal(f)
	if err := s.setDef(flagKey("f", site, f.ID), string(v)); err != nil {
		return f, err
	}
	st.lastID = max(st.lastID, f.ID)
	if st.flags[site] == nil {
		st.flags[site] = map[int64]Flag{}
	}
	st.flags[site][f.ID] = f
	st.publish(s)
	return f, nil
}

// DeleteFlag removes a flag.
func (s *DB) DeleteFlag(ctx context.Context, site string, id int64) error {
	if err := s.flagsLoaded(); err != nil {
		return err
	}
	st := &s.flags
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.flags[site][id]; !ok {
		return ErrNotFound
	}
	if err := s.setDef(flagKey("f", site, id), ""); err != nil {
		return err
	}
	delete(st.flags[site], id)
	st.publish(s)
	return nil
}

// FlagsKey returns the site's secret flags key (phs_…), making one on
// first use.
func (s *DB) FlagsKey(ctx context.Context, site string) (string, error) {
	if err := s.flagsLoaded(); err != nil {
		return "", err
	}
	st := &s.flags
	st.mu.Lock()
	k := st.keys[site]
	st.mu.Unlock()
	if k != "" {
		return k, nil
	}
	return s.rotateFlagsKey(site, false)
}

// RotateFlagsKey replaces the site's secret flags key with a new random
// one; the old key stops working at once.
func (s *DB) RotateFlagsKey(ctx context.Context, site string) (string, error) {
	if err := s.flagsLoaded(); err != nil {
		return "", err
	}
	return s.rotateFlagsKey(site, true)
}

func (s *DB) rotateFlagsKey(site string, force bool) (string, error) {
	st := &s.flags
	st.mu.Lock()
	defer st.mu.Unlock()
	if k := st.keys[site]; k != "" && !force {
		return k, nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	k := FlagKeyPrefix + hex.EncodeToString(b[:])
	if err := s.setDef("fk:"+site, k); err != nil {
		return "", err
	}
	st.keys[site] = k
	st.publish(s)
	return k, nil
}

// CheckFlagsKey reports whether key is the site's secret flags key, in
// constant time and without touching the log.
func (s *DB) CheckFlagsKey(site, key string) bool {
	if s.flagsLoaded() != nil {
		return false
	}
	sf := s.flags.snap.Load().sites[site]
	if sf == nil {
		return false
	}
	want := sf.key
	return want != "" && len(key) == len(want) && constantTimeEq(key, want)
}

func constantTimeEq(a, b string) bool {
	var v byte
	for i := 0; i < len(a); i++ {
		v |= a[i] ^ b[i]
	}
	return v == 0
}

// HasActiveFlags reports whether site has an active flag.
func (s *DB) HasActiveFlags(site string) bool {
	if s.flagsLoaded() != nil {
		return false
	}
	sf := s.flags.snap.Load().sites[site]
	return sf != nil && len(sf.active) > 0
}

// FlagStore is what feature flags need from storage; DB implements it.
// The collector and the dashboard find it by a type assertion on their
// Store, so another Store without flags simply answers none.
type FlagStore interface {
	EvaluateFlags(req FlagRequest, out []FlagResult) []FlagResult
	EvaluateFlagWires(req FlagRequest, out []*FlagWire) []*FlagWire
	HasActiveFlags(site string) bool
	CheckFlagsKey(site, key string) bool
	LocalEvaluation(site string) []byte
	FlagsKey(ctx context.Context, site string) (string, error)
	RotateFlagsKey(ctx context.Context, site string) (string, error)

	Flags(ctx context.Context, site string) ([]Flag, error)
	Flag(ctx context.Context, site string, id int64) (Flag, error)
	SaveFlag(ctx context.Context, site string, f Flag) (Flag, error)
	DeleteFlag(ctx context.Context, site string, id int64) error

	Experiments(ctx context.Context, site string) ([]Experiment, error)
	Experiment(ctx context.Context, site string, id int64) (Experiment, error)
	SaveExperiment(ctx context.Context, site string, x Experiment) (Experiment, error)
	DeleteExperiment(ctx context.Context, site string, id int64) error
}

var _ FlagStore = (*DB)(nil)
