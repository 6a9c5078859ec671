package dashboard

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// recordingRoutes adds the session recordings API, the replay page and the
// heatmap page.
//
//	GET /api/recordings               {"results": [{"session_id", "distinct_id", "start", "duration_s"}]}
//	GET /api/recordings/{session_id}  the session's rrweb events, a JSON array
//	                                  (the id escaped; or ?session=<id>)
func (h *Handler) recordingRoutes() {
	m := h.mux
	m.HandleFunc("GET /api/recordings", h.apiRecordings)
	m.HandleFunc("GET /api/recordings/{session}", h.apiRecording)
	m.HandleFunc("GET /recordings", h.serveIndex)
	m.HandleFunc("GET /recordings/{$}", h.serveIndex)
	m.HandleFunc("GET /recordings/{session}", h.serveReplay)
	m.HandleFunc("GET /heatmap", h.serveIndex)
	m.HandleFunc("GET /heatmap/", h.serveIndex)
}

// recordingRow is one entry of the recordings list.
type recordingRow struct {
	SessionID  string  `json:"session_id"`
	DistinctID string  `json:"distinct_id"`
	Start      string  `json:"start"`
	DurationS  float64 `json:"duration_s"`
	// Tabs is how many windows the session was recorded in, when more than
	// one; GET /api/recordings/{id}?tab=n replays the n-th.
	Tabs int `json:"tabs,omitempty"`
	// Person is the person's email or name, else the distinct id.
	Person string `json:"person"`
	// PersonID is the person's id, when known.
	PersonID string `json:"person_id,omitempty"`
}

// apiRecordings lists the recordings of the site that overlap [from, to),
// newest first; distinct_id= keeps those of one person (any of its ids).
func (h *Handler) apiRecordings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, err := h.parseParams(q, h.site(r))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, err := intParam(q, "limit", 1000, 10000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var ids map[string]bool
	if did := q.Get("distinct_id"); did != "" {
		ids = map[string]bool{did: true}
		if person, err := h.store.Person(r.Context(), p.site, did); err == nil {
			for _, id := range person.DistinctIDs {
				ids[id] = true
			}
		}
	}
	rows := []recordingRow{}
	for _, rec := range h.store.Recordings(r.Context(), p.site, p.from.UnixMilli(), p.to.UnixMilli()) {
		if ids != nil && !ids[rec.DistinctID] {
			continue
		}
		if len(rows) == limit {
			break
		}
		rows = append(rows, recordingRow{
			SessionID:  rec.SessionID,
			DistinctID: rec.DistinctID,
			Start:      time.UnixMilli(rec.Start).UTC().Format(time.RFC3339Nano),
			DurationS:  float64(rec.End-rec.Start) / 1000,
			Tabs:       tabsIfMany(rec.Tabs),
		})
	}
	dids := make([]string, len(rows))
	for i := range rows {
		dids[i] = rows[i].DistinctID
	}
	names := h.personNames(p.site, dids)
	for i := range rows {
		rows[i].Person = personLabel(names, rows[i].DistinctID)
		rows[i].PersonID = names[rows[i].DistinctID].ID
	}
	writeResult(w, struct {
		Results []recordingRow `json:"results"`
	}{rows})
}

// apiRecording answers a session's rrweb events as they were stored.
func (h *Handler) apiRecording(w http.ResponseWriter, r *http.Request) {
	tab := 1
	if v := r.URL.Query().Get("tab"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "tab: want a number from 1")
			return
		}
		tab = n
	}
	session := r.PathValue("session")
	if v := r.URL.Query().Get("session"); v != "" {
		// "." and ".." cannot be path segments: the UI sends them here.
		session = v
	}
	data, err := h.store.RecordingTab(r.Context(), h.site(r), session, tab)
	if err != nil {
		storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, data)
}

// replayCSP is the dashboard's CSP for the replay page. rrweb rebuilds the
// recorded page in a sandboxed iframe (no scripts) that inherits the
// page's policy; the recorded page's <style> elements and style attributes
// need 'unsafe-inline' styles there. Scripts stay 'self' only.
var replayCSP = func() string {
	hd := http.Header{}
	securityHeaders(hd)
	return strings.Replace(hd.Get("Content-Security-Policy"), "style-src 'self'", "style-src 'self' 'unsafe-inline'", 1)
}()

// serveReplay serves the app's page for a replay with replayCSP. The app
// loads this URL as a whole document (not by client-side routing), so the
// policy is this one.
func (h *Handler) serveReplay(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", replayCSP)
	h.serveIndex(w, r)
}

func tabsIfMany(n int) int {
	if n > 1 {
		return n
	}
	return 0
}
