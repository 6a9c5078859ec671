package store

import (
	"sync"
)

// liveHub fans stored events out to live subscribers (the dashboard's SSE
// stream). A subscriber that cannot keep up misses events rather than
// slowing the commit down.
type liveHub struct {
	mu   sync.Mutex
	subs map[string]map[*Subscription]struct{}
	// n is the number of subscribers; publish checks it without the lock's
	// cost when nobody listens.
	n int
}

// Subscription receives the JSON of each event stored for a site.
type Subscription struct {
	C    chan []byte
	hub  *liveHub
	site string
	once sync.Once
}

// Subscribe starts receiving the events stored for site from now on.
func (s *DB) Subscribe(site string) *Subscription {
	return s.live.subscribe(site)
}

func (h *liveHub) subscribe(site string) *Subscription {
	sub := &Subscription{C: make(chan []byte, 256), hub: h, site: site}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = make(map[string]map[*Subscription]struct{})
	}
	if h.subs[site] == nil {
		h.subs[site] = make(map[*Subscription]struct{})
	}
	h.subs[site][sub] = struct{}{}
	h.n++
	h.mu.Unlock()
	return sub
}

// Close stops the subscription and closes C.
func (sub *Subscription) Close() {
	sub.once.Do(func() {
		h := sub.hub
		h.mu.Lock()
		if _, ok := h.subs[sub.site][sub]; ok {
			delete(h.subs[sub.site], sub)
			h.n--
			close(sub.C)
		}
		h.mu.Unlock()
	})
}

func (h *liveHub) publish(site string, events []*Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 || len(h.subs[site]) == 0 {
		return
	}
	for _, ev := range events {
		b := ev.AppendJSON(nil, "")
		for sub := range h.subs[site] {
			select {
			case sub.C <- b:
			default:
			}
		}
	}
}

func (h *liveHub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.subs {
		for sub := range m {
			close(sub.C)
			delete(m, sub)
			h.n--
		}
	}
}

// PersonName is how the dashboard names the person a distinct id belongs
// to: their email or name property when they have one (SPEC §4: names,
// never ids).
type PersonName struct {
	// ID is the person's id.
	ID string
	// Name is the person's email or name property; "" when they have
	// neither.
	Name string
}

// PersonNamer names persons by their distinct ids without scanning
// events; the embedded store implements it.
type PersonNamer interface {
	PersonNames(site string, distinctIDs []string) map[string]PersonName
}

var _ PersonNamer = (*DB)(nil)

// nameProps are the person properties that name someone, in order of
// preference.
var nameProps = []string{"email", "$email", "name", "$name", "username"}

// DisplayName is the first non-empty of a person's naming properties.
func DisplayName(props Props) string {
	for _, k := range nameProps {
		if v, ok := props.Get(k); ok && v.Kind == KindString && v.S != "" {
			return v.S
		}
	}
	return ""
}

// PersonNames returns, for each known distinct id, its person's id and
// name. It reads only the person index (links and $set properties), so
// it costs a map look-up per id, whatever the number of events.
func (s *DB) PersonNames(site string, distinctIDs []string) map[string]PersonName {
	out := make(map[string]PersonName, len(distinctIDs))
	t := s.table(site)
	if t == nil || len(distinctIDs) == 0 {
		return out
	}
	if err := t.rlock(); err != nil {
		return out
	}
	defer t.mu.RUnlock()
	for _, id := range distinctIDs {
		if _, done := out[id]; done {
			continue
		}
		d, ok := t.dids.lookup(id)
		if !ok || d == 0 {
			continue
		}
		r := t.people.rootOf(d)
		out[id] = PersonName{ID: PersonID(t.site, t.dids.str(r)), Name: DisplayName(t.people.props[r])}
	}
	return out
}
