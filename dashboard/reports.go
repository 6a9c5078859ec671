package dashboard

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// reportRoutes adds the analytics API of SPEC §4: the reports, export,
// live view, heatmaps, actions and cohorts.
func (h *Handler) reportRoutes() {
	m := h.mux
	m.HandleFunc("GET /api/stats", h.apiStats)
	m.HandleFunc("GET /api/server", h.apiServer)
	m.HandleFunc("GET /api/breakdown", h.apiBreakdown)
	m.HandleFunc("GET /api/trends", h.apiTrends)
	m.HandleFunc("GET /api/funnel", h.apiFunnel)
	m.HandleFunc("GET /api/retention", h.apiRetention)
	m.HandleFunc("GET /api/paths", h.apiPaths)
	m.HandleFunc("GET /api/heatmap", h.apiHeatmap)
	m.HandleFunc("GET /api/heatmap/viewports", h.apiHeatmapViewports)
	m.HandleFunc("GET /api/export", h.apiExport)
	m.HandleFunc("GET /api/live", h.apiLive)
	m.HandleFunc("GET /api/live/count", h.apiLiveCount)

	m.HandleFunc("GET /api/actions", h.apiActions)
	m.HandleFunc("POST /api/actions", h.apiSaveAction)
	m.HandleFunc("GET /api/actions/{id}", h.apiAction)
	m.HandleFunc("PUT /api/actions/{id}", h.apiSaveAction)
	m.HandleFunc("DELETE /api/actions/{id}", h.apiDeleteAction)

	m.HandleFunc("GET /api/cohorts", h.apiCohorts)
	m.HandleFunc("POST /api/cohorts", h.apiSaveCohort)
	m.HandleFunc("GET /api/cohorts/{id}", h.apiCohort)
	m.HandleFunc("PUT /api/cohorts/{id}", h.apiSaveCohort)
	m.HandleFunc("DELETE /api/cohorts/{id}", h.apiDeleteCohort)
	m.HandleFunc("GET /api/cohorts/{id}/persons", h.apiCohortPersons)
}

// query reads the parameters every report shares.
func (h *Handler) query(r *http.Request) (store.Query, url.Values, error) {
	v := r.URL.Query()
	p, err := h.parseParams(v, h.site(r))
	if err != nil {
		return store.Query{}, v, err
	}
	q := store.Query{Site: p.site, From: p.from, To: p.to, TZ: p.tz, Filters: p.filters}
	switch b := v.Get("bots"); b {
	case "", "exclude":
	case "include":
		q.IncludeBots = true
	default:
		return q, v, fmt.Errorf("bots: want include or exclude, got %q", b)
	}
	if p.cohort != "" {
		id, err := strconv.ParseInt(p.cohort, 10, 64)
		if err != nil || id <= 0 {
			return q, v, fmt.Errorf("cohort: want a cohort id, got %q", p.cohort)
		}
		q.Cohort = id
	}
	return q, v, nil
}

// reportError answers a failed report: a bad query is the client's fault.
func reportError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrBadQuery):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, context.Canceled):
		// The client has gone; nobody reads the answer.
	default:
		storeError(w, err)
	}
}

// writeResult answers 200 with v as JSON.
func writeResult(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// nonNil makes a nil slice an empty one, so that JSON shows [] and not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (h *Handler) apiStats(w http.ResponseWriter, r *http.Request) {
	q, _, err := h.query(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	st, err := h.store.Stats(r.Context(), q)
	if err != nil {
		reportError(w, err)
		return
	}
	writeResult(w, st)
}

// apiServer answers what only the server sees (SPEC §8): server
// pageviews and the share the snippet confirmed, 404 pages with their
// referrers, the slowest pages, feed subscribers.
func (h *Handler) apiServer(w http.ResponseWriter, r *http.Request) {
	q, v, err := h.query(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, err := intParam(v, "limit", 10, 100)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rep, err := h.store.Server(r.Context(), q, limit)
	if err != nil {
		reportError(w, err)
		return
	}
	writeResult(w, rep)
}

// apiHeatmapViewports answers a page's clicks by viewport width class.
func (h *Handler) apiHeatmapViewports(w http.ResponseWriter, r *http.Request) {
	q, v, err := h.query(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := h.store.HeatmapViewports(r.Context(), q, v.Get("url"))
	if err != nil {
		reportError(w, err)
		return
	}
	writeResult(w, struct {
		Viewports []store.ViewportCount `json:"viewports"`
	}{res})
}

func (h *Handler) apiBreakdown(w http.ResponseWriter, r *http.Request) {
	q, v, err := h.query(r)
	if err == nil && v.Get("property") == "" {
		err = errors.New("property: required")
	}
	limit := 0
	if err == nil {
		limit, err = intParam(v, "limit", 100, 1000)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rows, err := h.store.Breakdown(r.Context(), q, store.BreakdownQuery{Property: v.Get("property"), Event: v.Get("event"), Limit: limit})
	if err != nil {
		reportError(w, err)
		return
	}
	writeResult(w, struct {
		Results []store.BreakdownRow `json:"results"`
	}{nonNil(rows)})
}

func (h *Handler) apiTrends(w http.ResponseWriter, r *http.Request) {
	q, v, err := h.query(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	tr, err := h.store.Trends(r.Context(), q, store.TrendsQuery{
		Events:       v["event"],
		Interval:     v.Get("interval"),
		Math:         v.Get("math"),
		MathProperty: v.Get("math_property"),
		Breakdown:    v.Get("breakdown"),
	})
	if err != nil {
		reportError(w, err)
		return
	}
	tr.Series = nonNil(tr.Series)
	writeResult(w, tr)
}

func (h *Handler) apiFunnel(w http.ResponseWriter, r *http.Request) {
	q, v, err := h.query(r)
	var window time.Duration
	if err == nil && v.Get("window") != "" {
		window, err = store.ParseWindow(v.Get("window"))
	}
	if err == nil && len(v["step"]) == 0 {
		err = errors.New("step: at least one is required")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	steps, err := h.store.Funnel(r.Context(), q, store.FunnelQuery{Steps: v["step"], Window: window})
	if err != nil {
		reportError(w, err)
		return
	}
	writeResult(w, struct {
		Steps []store.FunnelStep `json:"steps"`
	}{steps})
}

func (h *Handler) apiRetention(w http.ResponseWriter, r *http.Request) {
	q, v, err := h.query(r)
	periods := 0
	if err == nil {
		periods, err = intParam(v, "periods", 8, 60)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	cohorts, err := h.store.Retention(r.Context(), q, store.RetentionQuery{
		StartEvent:  v.Get("start_event"),
		ReturnEvent: v.Get("return_event"),
		Period:      v.Get("period"),
		Periods:     periods,
	})
	if err != nil {
		reportError(w, err)
		return
	}
	writeResult(w, struct {
		Cohorts []store.RetentionCohort `json:"cohorts"`
	}{nonNil(cohorts)})
}

func (h *Handler) apiPaths(w http.ResponseWriter, r *http.Request) {
	q, v, err := h.query(r)
	steps := 0
	if err == nil {
		steps, err = intParam(v, "steps", 5, 20)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	links, err := h.store.Paths(r.Context(), q, store.PathsQuery{Start: v.Get("start"), Steps: steps})
	if err != nil {
		reportError(w, err)
		return
	}
	writeResult(w, struct {
		Links []store.PathLink `json:"links"`
	}{nonNil(links)})
}

// apiHeatmap answers {"points": [{"x", "y", "count"}]} for the page `url`
// ($pathname): type=click (default) gives clicks per cell, x the fraction
// of the viewport width rounded to 0.01 and y document pixels rounded to
// 10; type=scroll gives, per 100 px band from the top, the page views that
// reached at least its top (x 0). viewport=mobile|tablet|desktop keeps one
// class of $viewport_width (< 768, < 1024, the rest). See
// store.HeatmapPoint.
func (h *Handler) apiHeatmap(w http.ResponseWriter, r *http.Request) {
	q, v, err := h.query(r)
	if err == nil && v.Get("url") == "" {
		err = errors.New("url: required (the page's path)")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	points, err := h.store.Heatmap(r.Context(), q, store.HeatmapQuery{URL: v.Get("url"), Type: v.Get("type"), Viewport: v.Get("viewport")})
	if err != nil {
		reportError(w, err)
		return
	}
	writeResult(w, struct {
		Points []store.HeatmapPoint `json:"points"`
	}{nonNil(points)})
}

// csvHeader is the first line of a CSV export.
var csvHeader = []string{"uuid", "event", "distinct_id", "person_id", "timestamp", "properties"}

// csvCell makes a value safe to open in a spreadsheet: a cell starting
// with =, +, -, @, tab or CR would be read as a formula, so it gets a
// leading ' (OWASP's advice on CSV injection).
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// apiExport streams every event in range (after filters and cohort) in time
// order: format=ndjson (default), one event object a line, or format=csv
// with the columns of csvHeader, properties as a JSON object.
func (h *Handler) apiExport(w http.ResponseWriter, r *http.Request) {
	q, v, err := h.query(r)
	format := v.Get("format")
	if format == "" {
		format = "ndjson"
	}
	if err == nil && format != "ndjson" && format != "csv" {
		err = fmt.Errorf("format %q: want ndjson or csv", format)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	started := false
	start := func() {
		started = true
		hd := w.Header()
		if format == "csv" {
			hd.Set("Content-Type", "text/csv; charset=utf-8")
			hd.Set("Content-Disposition", `attachment; filename="events.csv"`)
			cw.Write(csvHeader)
		} else {
			hd.Set("Content-Type", "application/x-ndjson")
			hd.Set("Content-Disposition", `attachment; filename="events.ndjson"`)
		}
		hd.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	}
	var line []byte
	err = h.store.Export(r.Context(), q, func(ev *store.Event, personID string) error {
		if !started {
			start()
		}
		if format == "csv" {
			line = ev.Props.AppendJSON(line[:0])
			return cw.Write([]string{csvCell(ev.UUID), csvCell(ev.Name), csvCell(ev.DistinctID), csvCell(personID), store.FormatTime(ev.Time), csvCell(string(line))})
		}
		line = append(ev.AppendJSON(line[:0], personID), '\n')
		_, err := bw.Write(line)
		return err
	})
	if err != nil && !started {
		reportError(w, err)
		return
	}
	if !started {
		start()
	}
	cw.Flush()
	if err == nil {
		err = cw.Error()
	}
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		h.opts.Logger.Warn("exporting events", zapErr(err))
	}
}

// liveKeepAlive is how often the live stream sends a comment when no
// event comes, so that proxies keep the connection open.
var liveKeepAlive = 15 * time.Second

// liveCount counts the live streams open on one database, over every
// dashboard that shares it.
type liveCount struct{ n atomic.Int64 }

// liveCounts holds a liveCount per database.
var liveCounts sync.Map // store.Store → *liveCount

func liveCounter(st store.Store) *liveCount {
	c, _ := liveCounts.LoadOrStore(st, new(liveCount))
	return c.(*liveCount)
}

// acquire takes a place for one more stream, if fewer than max are open.
func (c *liveCount) acquire(max int) bool {
	if c.n.Add(1) > int64(max) {
		c.n.Add(-1)
		return false
	}
	return true
}

func (c *liveCount) release() { c.n.Add(-1) }

// apiLive streams the site's events as Server-Sent Events as they are
// stored: one `data: <event JSON>` message each, a comment line as a
// keep-alive, until the client goes or the store closes.
func (h *Handler) apiLive(w http.ResponseWriter, r *http.Request) {
	if !h.live.acquire(h.cfg.LiveMax) {
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, "too many live views open; try again later")
		return
	}
	defer h.live.release()
	sub := h.store.Subscribe(h.site(r))
	defer sub.Close()
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // the stream outlives any write timeout
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, ": connected\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(liveKeepAlive)
	defer tick.Stop()
	buf := make([]byte, 0, 1024)
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case b, ok := <-sub.C:
			if !ok {
				return
			}
			b = h.liveEventPerson(h.site(r), b)
			buf = append(append(append(buf[:0], "data: "...), b...), "\n\n"...)
			_, err = w.Write(buf)
		case <-tick.C:
			_, err = io.WriteString(w, ": keep-alive\n\n")
		}
		if err != nil || rc.Flush() != nil {
			return
		}
	}
}

func (h *Handler) apiLiveCount(w http.ResponseWriter, r *http.Request) {
	n, err := h.store.LiveCount(r.Context(), h.site(r))
	if err != nil {
		reportError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, append(strconv.AppendInt([]byte(`{"online":`), int64(n), 10), '}'))
}

// pathID reads the {id} of a definition's path; false answers 404.
func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusNotFound, "not found")
		return 0, false
	}
	return id, true
}

// readDefinition decodes a POST or PUT body into v.
func readDefinition(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return false
	}
	return true
}

// defError answers a failed definition request.
func defError(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrBadQuery) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	storeError(w, err)
}

func (h *Handler) apiActions(w http.ResponseWriter, r *http.Request) {
	as, err := h.store.Actions(r.Context(), h.site(r))
	if err != nil {
		defError(w, err)
		return
	}
	writeResult(w, struct {
		Results []store.Action `json:"results"`
	}{nonNil(as)})
}

func (h *Handler) apiAction(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	a, err := h.store.Action(r.Context(), h.site(r), id)
	if err != nil {
		defError(w, err)
		return
	}
	writeResult(w, a)
}

// apiSaveAction creates (POST) or replaces (PUT) an action.
func (h *Handler) apiSaveAction(w http.ResponseWriter, r *http.Request) {
	var a store.Action
	if !readDefinition(w, r, &a) {
		return
	}
	status := http.StatusCreated
	a.ID = 0
	if r.Method == http.MethodPut {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		a.ID, status = id, http.StatusOK
	}
	a, err := h.store.SaveAction(r.Context(), h.site(r), a)
	if err != nil {
		defError(w, err)
		return
	}
	b, _ := json.Marshal(a)
	writeJSON(w, status, b)
}

func (h *Handler) apiDeleteAction(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if err := h.store.DeleteAction(r.Context(), h.site(r), id); err != nil {
		defError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) apiCohorts(w http.ResponseWriter, r *http.Request) {
	cs, err := h.store.Cohorts(r.Context(), h.site(r))
	if err != nil {
		defError(w, err)
		return
	}
	writeResult(w, struct {
		Results []store.Cohort `json:"results"`
	}{nonNil(cs)})
}

func (h *Handler) apiCohort(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	c, err := h.store.Cohort(r.Context(), h.site(r), id)
	if err != nil {
		defError(w, err)
		return
	}
	writeResult(w, c)
}

// apiSaveCohort creates (POST) or replaces (PUT) a cohort.
func (h *Handler) apiSaveCohort(w http.ResponseWriter, r *http.Request) {
	var c store.Cohort
	if !readDefinition(w, r, &c) {
		return
	}
	status := http.StatusCreated
	c.ID = 0
	if r.Method == http.MethodPut {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		c.ID, status = id, http.StatusOK
	}
	c, err := h.store.SaveCohort(r.Context(), h.site(r), c)
	if err != nil {
		defError(w, err)
		return
	}
	b, _ := json.Marshal(c)
	writeJSON(w, status, b)
}

func (h *Handler) apiDeleteCohort(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if err := h.store.DeleteCohort(r.Context(), h.site(r), id); err != nil {
		defError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// apiCohortPersons answers {"results": [person], "count": N}: the cohort's
// persons, newest first, at most `limit` (default 100, at most 1000), and
// how many there are. A behavioral cohort is evaluated as of `to`.
func (h *Handler) apiCohortPersons(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	q, v, err := h.query(r)
	limit := 0
	if err == nil {
		limit, err = intParam(v, "limit", 100, 1000)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ps, n, err := h.store.CohortPersons(r.Context(), q, id, limit)
	if err != nil {
		defError(w, err)
		return
	}
	b := []byte(`{"results":[`)
	for i := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = ps[i].AppendJSON(b)
	}
	b = append(b, `],"count":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	writeJSON(w, http.StatusOK, append(b, '}'))
}
