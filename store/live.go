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
