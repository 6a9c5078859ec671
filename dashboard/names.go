package dashboard

import (
	"encoding/json"

	"github.com/firstpartyhq/firstparty/store"
)

// Names, never ids (SPEC §4): the events, recordings and live answers
// carry a `person` field, the person's email or name property, else the
// distinct id the event was sent with.

// personNames names the persons of distinct ids, when the store can.
func (h *Handler) personNames(site string, ids []string) map[string]store.PersonName {
	if n, ok := h.store.(store.PersonNamer); ok {
		return n.PersonNames(site, ids)
	}
	return nil
}

// personLabel is what to show for the person of distinct id did.
func personLabel(names map[string]store.PersonName, did string) string {
	if n := names[did].Name; n != "" {
		return n
	}
	return did
}

// withPerson adds `"person": label` (and `"person_id"` when missing and
// known) to the JSON object that ends b.
func withPerson(b []byte, label, personID string) []byte {
	if len(b) == 0 || b[len(b)-1] != '}' {
		return b
	}
	b = b[:len(b)-1]
	if personID != "" {
		b = append(b, `,"person_id":`...)
		b = store.AppendJSONString(b, personID)
	}
	b = append(b, `,"person":`...)
	b = store.AppendJSONString(b, label)
	return append(b, '}')
}

// liveEventPerson names the person of one event of the live stream (its
// JSON as the store published it, without a person id).
func (h *Handler) liveEventPerson(site string, ev []byte) []byte {
	var head struct {
		DistinctID string `json:"distinct_id"`
	}
	if json.Unmarshal(ev, &head) != nil {
		return ev
	}
	names := h.personNames(site, []string{head.DistinctID})
	// ev is shared by every subscriber: add to a copy.
	out := append(make([]byte, 0, len(ev)+128), ev...)
	return withPerson(out, personLabel(names, head.DistinctID), names[head.DistinctID].ID)
}
