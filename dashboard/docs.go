package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/firstpartyhq/firstparty/store"
)

// Goals, annotations, saved insights and dashboards (SPEC §4): small
// documents the store keeps whole; here each kind's shape is checked.

// docKinds maps the API's collection names to the store's kinds and their
// checks. A check returns the document as stored (without its id) or a
// message naming the field at fault.
var docKinds = map[string]struct {
	kind  string
	check func(h *Handler, ctx context.Context, site string, body []byte) (any, string)
}{
	"goals":       {store.DocGoal, checkGoal},
	"annotations": {store.DocAnnotation, checkAnnotation},
	"insights":    {store.DocInsight, checkInsight},
	"dashboards":  {store.DocDashboard, checkDashboardDoc},
}

func (h *Handler) docRoutes() {
	m := h.mux
	m.HandleFunc("GET /api/goals/stats", h.apiGoalStats)
	for name := range docKinds {
		m.HandleFunc("GET /api/"+name, h.apiDocs(name))
		m.HandleFunc("POST /api/"+name, h.apiSaveDoc(name))
		m.HandleFunc("GET /api/"+name+"/{id}", h.apiDoc(name))
		m.HandleFunc("PUT /api/"+name+"/{id}", h.apiSaveDoc(name))
		m.HandleFunc("DELETE /api/"+name+"/{id}", h.apiDeleteDoc(name))
	}
}

func (h *Handler) apiDocs(name string) http.HandlerFunc {
	kind := docKinds[name].kind
	return func(w http.ResponseWriter, r *http.Request) {
		docs, err := h.store.Docs(r.Context(), h.site(r), kind)
		if err != nil {
			defError(w, err)
			return
		}
		b := []byte(`{"results":[`)
		for i, d := range docs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, d.Body...)
		}
		writeJSON(w, http.StatusOK, append(b, "]}"...))
	}
}

func (h *Handler) apiDoc(name string) http.HandlerFunc {
	kind := docKinds[name].kind
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		d, err := h.store.Doc(r.Context(), h.site(r), kind, id)
		if err != nil {
			defError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, d.Body)
	}
}

func (h *Handler) apiSaveDoc(name string) http.HandlerFunc {
	k := docKinds[name]
	return func(w http.ResponseWriter, r *http.Request) {
		var raw json.RawMessage
		if !readDefinition(w, r, &raw) {
			return
		}
		site := h.site(r)
		v, msg := k.check(h, r.Context(), site, raw)
		if msg != "" {
			writeError(w, http.StatusBadRequest, msg)
			return
		}
		body, _ := json.Marshal(v)
		d := store.Doc{Body: body}
		status := http.StatusCreated
		if r.Method == http.MethodPut {
			id, ok := pathID(w, r)
			if !ok {
				return
			}
			d.ID, status = id, http.StatusOK
		}
		d, err := h.store.SaveDoc(r.Context(), site, k.kind, d)
		if err != nil {
			defError(w, err)
			return
		}
		writeJSON(w, status, d.Body)
	}
}

func (h *Handler) apiDeleteDoc(name string) http.HandlerFunc {
	kind := docKinds[name].kind
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		if err := h.store.DeleteDoc(r.Context(), h.site(r), kind, id); err != nil {
			defError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// strictDecode reads body into v, refusing unknown fields.
func strictDecode(body []byte, v any) string {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return "body: " + err.Error()
	}
	return ""
}

func checkText(field, s string, max int) string {
	if strings.TrimSpace(s) == "" || utf8.RuneCountInString(s) > max || !utf8.ValidString(s) {
		return fmt.Sprintf("%s: want 1 to %d characters", field, max)
	}
	return ""
}

func checkGoal(h *Handler, ctx context.Context, site string, body []byte) (any, string) {
	var g store.Goal
	if msg := strictDecode(body, &g); msg != "" {
		return nil, msg
	}
	g.ID = 0
	if err := g.Validate(); err != nil {
		return nil, strings.TrimPrefix(err.Error(), store.ErrBadQuery.Error()+": ")
	}
	if g.Action != 0 {
		if _, err := h.store.Action(ctx, site, g.Action); err != nil {
			return nil, fmt.Sprintf("action: no action %d", g.Action)
		}
	}
	return g, ""
}

// Annotation is a note on a date, drawn on every time chart of the site.
type Annotation struct {
	Date string `json:"date"`
	Text string `json:"text"`
}

func checkAnnotation(_ *Handler, _ context.Context, _ string, body []byte) (any, string) {
	var a Annotation
	if msg := strictDecode(body, &a); msg != "" {
		return nil, msg
	}
	if _, err := time.Parse("2006-01-02", a.Date); err != nil {
		if _, err := time.Parse(time.RFC3339, a.Date); err != nil {
			return nil, "date: want YYYY-MM-DD or RFC 3339"
		}
	}
	if msg := checkText("text", a.Text, 500); msg != "" {
		return nil, msg
	}
	return a, ""
}

// Insight is a saved report: its kind and its URL parameters.
type Insight struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Query string `json:"query"`
}

func checkInsight(_ *Handler, _ context.Context, _ string, body []byte) (any, string) {
	var in Insight
	if msg := strictDecode(body, &in); msg != "" {
		return nil, msg
	}
	if msg := checkText("name", in.Name, 200); msg != "" {
		return nil, msg
	}
	switch in.Kind {
	case "trends", "funnel", "retention", "paths", "stats", "breakdown", "goals":
	default:
		return nil, "kind: want trends, funnel, retention, paths, stats, breakdown or goals"
	}
	if len(in.Query) > 4096 {
		return nil, "query: at most 4096 characters"
	}
	if _, err := url.ParseQuery(strings.TrimPrefix(in.Query, "?")); err != nil {
		return nil, "query: not URL parameters"
	}
	return in, ""
}

// DashboardDoc groups saved insights.
type DashboardDoc struct {
	Name     string  `json:"name"`
	Insights []int64 `json:"insights"`
}

func checkDashboardDoc(h *Handler, ctx context.Context, site string, body []byte) (any, string) {
	var d DashboardDoc
	if msg := strictDecode(body, &d); msg != "" {
		return nil, msg
	}
	if msg := checkText("name", d.Name, 200); msg != "" {
		return nil, msg
	}
	if len(d.Insights) > 100 {
		return nil, "insights: at most 100"
	}
	if d.Insights == nil {
		d.Insights = []int64{}
	}
	for _, id := range d.Insights {
		if _, err := h.store.Doc(ctx, site, store.DocInsight, id); err != nil {
			return nil, fmt.Sprintf("insights: no insight %d", id)
		}
	}
	return d, ""
}

// apiGoalStats answers each goal's visitors, events, conversion rate and
// revenue under the query's range and filters.
func (h *Handler) apiGoalStats(w http.ResponseWriter, r *http.Request) {
	q, _, err := h.query(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	docs, err := h.store.Docs(r.Context(), q.Site, store.DocGoal)
	if err != nil {
		defError(w, err)
		return
	}
	res, err := h.store.GoalStats(r.Context(), q, store.GoalsOf(docs))
	if err != nil {
		reportError(w, err)
		return
	}
	writeResult(w, struct {
		Results []store.GoalResult `json:"results"`
	}{nonNil(res)})
}
