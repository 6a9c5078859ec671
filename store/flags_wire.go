package store

import (
	"strconv"
	"sync/atomic"
)

// FlagWire is one flag's value in PostHog's /flags/ answer, rendered once
// per possible outcome of the flag (no match, out of rollout in group i,
// match in group i with variant v) when the flags are published, so that
// an answer is only concatenation.
type FlagWire struct {
	// Entry is `"<key>":{"key","enabled","variant","reason","metadata"}`
	// for the `flags` map.
	Entry []byte
	// Value is `"<key>":true|false|"<variant>"` for `featureFlags`.
	Value []byte
	// Payload is `"<key>":"<payload JSON>"` for `featureFlagPayloads`, nil
	// without a payload.
	Payload []byte

	keyLen    int // of the key as a JSON string, which Entry, Value and Payload start with
	payloadAt int // where the payload starts in Entry
	// Entry compressed after each rendering of the previous flag seen so
	// far, and on its own (flags_gzip.go).
	segs  atomic.Pointer[[]*wireSeg]
	alone atomic.Pointer[bitSeg]
	tail  atomic.Pointer[bitSeg] // Value after the key, as literals
	ord   int                    // among the renderings of its flag
	id    uint64                 // tells answers apart (gzPrefixes)
}

var wireIDs atomic.Uint64

func renderWire(f *compiledFlag, r *FlagResult) *FlagWire {
	w := &FlagWire{id: wireIDs.Add(1) * 0x9e3779b97f4a7c15}
	f.nwires++
	w.ord = f.nwires - 1
	key := AppendJSONString(nil, r.Key)
	w.keyLen = len(key)
	b := append([]byte(nil), key...)
	b = append(b, `:{"key":`...)
	b = append(b, key...)
	b = append(b, `,"enabled":`...)
	b = strconv.AppendBool(b, r.Enabled)
	b = append(b, `,"variant":`...)
	if r.Variant != "" {
		b = AppendJSONString(b, r.Variant)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"reason":{"code":`...)
	b = AppendJSONString(b, r.Reason)
	b = append(b, `,"description":`...)
	b = AppendJSONString(b, ReasonDescription(*r))
	b = append(b, `,"condition_index":`...)
	if r.ConditionIndex >= 0 {
		b = strconv.AppendInt(b, int64(r.ConditionIndex), 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `},"metadata":{"id":`...)
	b = strconv.AppendInt(b, r.ID, 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, r.Version, 10)
	if r.Payload != nil {
		b = append(b, `,"payload":`...)
		w.payloadAt = len(b)
		b = append(b, r.Payload...)
	}
	w.Entry = append(b, "}}"...)
	v := append(append([]byte(nil), key...), ':')
	if r.Variant != "" {
		v = AppendJSONString(v, r.Variant)
	} else {
		v = strconv.AppendBool(v, r.Enabled)
	}
	w.Value = v
	if r.Enabled && r.Payload != nil {
		p := append(append([]byte(nil), key...), ':')
		w.Payload = append(p, r.Payload...)
	}
	return w
}

// wire returns the rendering of an outcome (flagEval.outcome), made at
// publish time.
func (f *compiledFlag) wire(kind, gi, vi int) *FlagWire {
	switch kind {
	case outNoMatch:
		return f.wireNoMatch
	case outOutOfRollout:
		if gi >= 0 && gi < len(f.wireOut) {
			return f.wireOut[gi]
		}
	case outMatch:
		if gi >= 0 && gi < len(f.wireMatch) && vi < len(f.wireMatch[gi]) {
			return f.wireMatch[gi][vi]
		}
	}
	return f.wireError
}

// prerender renders every outcome of f.
func (f *compiledFlag) prerender() {
	base := FlagResult{Key: f.Key, ID: f.ID, Version: f.Version, ConditionIndex: -1, Reason: ReasonNoConditionMatch}
	r := base
	f.wireNoMatch = renderWire(f, &r)
	r.Reason = ReasonError
	f.wireError = renderWire(f, &r)
	for gi, g := range f.groups {
		r = base
		r.Reason, r.ConditionIndex = ReasonOutOfRollout, gi
		f.wireOut = append(f.wireOut, renderWire(f, &r))
		var ms []*FlagWire
		for vi := 0; vi <= len(f.variants); vi++ {
			r = base
			r.Enabled, r.Reason, r.ConditionIndex = true, ReasonConditionMatch, gi
			if vi > 0 {
				r.Variant = f.variants[vi-1].key
			}
			if g.variant != "" && r.Variant == "" {
				r.Variant = g.variant
			}
			pk := r.Variant
			if pk == "" {
				pk = "true"
			}
			r.Payload = f.payloads[pk]
			ms = append(ms, renderWire(f, &r))
		}
		f.wireMatch = append(f.wireMatch, ms)
	}
}
