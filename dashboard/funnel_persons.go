package dashboard

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// funnelPersons is the store's answer to who is behind a funnel step
// (store.DB has it; a store without it answers 501).
type funnelPersons interface {
	FunnelPersons(ctx context.Context, q store.Query, fq store.FunnelPersonsQuery) ([]store.Person, int, error)
}

func (h *Handler) funnelPersonRoutes() {
	h.mux.HandleFunc("GET /api/funnel/persons", h.apiFunnelPersons)
}

// apiFunnelPersons answers {"results": [person], "total": N}: the persons
// a funnel (the parameters of /api/funnel) counts at step `funnel_step`
// (from 1), or with `dropped=true` those who reached it and not the next
// step; most recently created first, at most `limit` (default 100).
func (h *Handler) apiFunnelPersons(w http.ResponseWriter, r *http.Request) {
	fp, ok := h.store.(funnelPersons)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this store cannot list a funnel's persons")
		return
	}
	q, v, err := h.query(r)
	fq := store.FunnelPersonsQuery{FunnelQuery: store.FunnelQuery{Steps: v["step"]}}
	if err == nil && v.Get("window") != "" {
		var window time.Duration
		window, err = store.ParseWindow(v.Get("window"))
		fq.Window = window
	}
	if err == nil && len(fq.Steps) == 0 {
		err = errors.New("step: at least one is required")
	}
	if err == nil {
		fq.Step, err = strconv.Atoi(v.Get("funnel_step"))
		if err != nil {
			err = errors.New("funnel_step: want the step's number, from 1")
		}
	}
	if err == nil {
		switch v.Get("dropped") {
		case "", "false":
		case "true":
			fq.Dropped = true
		default:
			err = errors.New("dropped: want true or false")
		}
	}
	if err == nil {
		fq.Limit, err = intParam(v, "limit", 100, 1000)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ps, n, err := fp.FunnelPersons(r.Context(), q, fq)
	if err != nil {
		reportError(w, err)
		return
	}
	b := []byte(`{"results":[`)
	for i := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = ps[i].AppendJSON(b)
	}
	b = append(b, `],"total":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	writeJSON(w, http.StatusOK, append(b, '}'))
}
