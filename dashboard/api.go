package dashboard

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/firstpartyhq/firstparty/store"
)

func (h *Handler) routes() {
	h.reportRoutes()
	h.recordingRoutes()
	h.docRoutes()
	h.funnelPersonRoutes()   // funnel_persons.go
	h.dashboardsPageRoutes() // dashboards.go
	h.flagRoutes()           // flags.go
	h.liveRoutes()           // live.go
	h.onboardingRoutes()     // onboarding.go
	m := h.mux
	m.HandleFunc("GET /api/sites", h.apiSites)
	m.HandleFunc("GET /api/events", h.apiEvents)
	m.HandleFunc("GET /api/persons", h.apiPersons)
	m.HandleFunc("GET /api/persons/{id}", h.apiPerson)
	m.HandleFunc("DELETE /api/persons/{id}", h.apiDeletePerson)
	m.HandleFunc("GET /api/persons/{id}/export", h.apiExportPerson)
	m.HandleFunc("GET /api/snippet", h.apiSnippet)
	m.HandleFunc("GET /api/settings", h.apiSettings)
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint")
	})
	h.uiRoutes(m)
}

// apiSites lists the sites this dashboard shows: its own block's, whatever
// else shares the store.
func (h *Handler) apiSites(w http.ResponseWriter, r *http.Request) {
	b := store.AppendJSONString([]byte(`{"sites":[`), h.cfg.Site)
	writeJSON(w, http.StatusOK, append(b, "]}"...))
}

func (h *Handler) apiEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, err := h.parseParams(q, h.site(r))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, err := intParam(q, "limit", 100, 1000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page, err := h.store.Events(r.Context(), store.EventQuery{
		Site:       p.site,
		From:       p.from.UnixMilli(),
		To:         p.to.UnixMilli(),
		Event:      q.Get("event"),
		DistinctID: q.Get("distinct_id"),
		Filters:    p.filters,
		Limit:      limit,
		Cursor:     q.Get("cursor"),
	})
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ids := make([]string, len(page.Results))
	for i, ev := range page.Results {
		ids[i] = ev.DistinctID
	}
	names := h.personNames(p.site, ids)
	b := []byte(`{"results":[`)
	for i, ev := range page.Results {
		if i > 0 {
			b = append(b, ',')
		}
		b = withPerson(ev.AppendJSON(b, page.PersonIDs[i]), personLabel(names, ev.DistinctID), "")
	}
	b = append(b, `],"next":`...)
	if page.Next == "" {
		b = append(b, "null"...)
	} else {
		b = store.AppendJSONString(b, page.Next)
	}
	writeJSON(w, http.StatusOK, append(b, '}'))
}

func (h *Handler) apiPersons(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := intParam(q, "limit", 100, 1000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page, err := h.store.Persons(r.Context(), store.PersonQuery{Site: h.site(r), Search: q.Get("search"), Limit: limit, Cursor: q.Get("cursor")})
	if err != nil {
		reportError(w, err)
		return
	}
	b := []byte(`{"results":[`)
	for i := range page.Results {
		if i > 0 {
			b = append(b, ',')
		}
		b = page.Results[i].AppendJSON(b)
	}
	b = append(b, `],"next":`...)
	if page.Next == "" {
		b = append(b, "null"...)
	} else {
		b = store.AppendJSONString(b, page.Next)
	}
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, int64(page.Total), 10)
	writeJSON(w, http.StatusOK, append(b, '}'))
}

func (h *Handler) apiPerson(w http.ResponseWriter, r *http.Request) {
	p, err := h.store.Person(r.Context(), h.site(r), r.PathValue("id"))
	if err != nil {
		storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p.AppendJSON(nil))
}

func (h *Handler) apiDeletePerson(w http.ResponseWriter, r *http.Request) {
	if err := h.store.DeletePerson(r.Context(), h.site(r), r.PathValue("id")); err != nil {
		storeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) apiExportPerson(w http.ResponseWriter, r *http.Request) {
	site, id := h.site(r), r.PathValue("id")
	if _, err := h.store.Person(r.Context(), site, id); err != nil {
		storeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="person.ndjson"`)
	if err := h.store.ExportPerson(r.Context(), site, id, w); err != nil {
		h.opts.Logger.Warn("exporting person", zapErr(err))
	}
}

func (h *Handler) apiSnippet(w http.ResponseWriter, r *http.Request) {
	b := []byte(`{"html":`)
	b = store.AppendJSONString(b, h.cfg.Snippet(h.site(r)))
	writeJSON(w, http.StatusOK, append(b, '}'))
}

func storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not found")
	case errors.Is(err, store.ErrUnavailable):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
