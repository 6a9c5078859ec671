package dashboard

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// flagRoutes adds the feature-flag and experiment API of SPEC §9.
func (h *Handler) flagRoutes() {
	m := h.mux
	m.HandleFunc("GET /api/flags", h.apiFlags)
	m.HandleFunc("POST /api/flags", h.apiSaveFlag)
	m.HandleFunc("GET /api/flags/{id}", h.apiFlag)
	m.HandleFunc("PUT /api/flags/{id}", h.apiSaveFlag)
	m.HandleFunc("DELETE /api/flags/{id}", h.apiDeleteFlag)
	m.HandleFunc("GET /api/flags/{id}/calls", h.apiFlagCalls)
	m.HandleFunc("GET /api/flags_key", h.apiFlagsKey)
	m.HandleFunc("POST /api/flags_key/rotate", h.apiRotateFlagsKey)

	m.HandleFunc("GET /api/experiments", h.apiExperiments)
	m.HandleFunc("POST /api/experiments", h.apiSaveExperiment)
	m.HandleFunc("GET /api/experiments/{id}", h.apiExperiment)
	m.HandleFunc("PUT /api/experiments/{id}", h.apiSaveExperiment)
	m.HandleFunc("DELETE /api/experiments/{id}", h.apiDeleteExperiment)
	m.HandleFunc("GET /api/experiments/{id}/results", h.apiExperimentResults)
}

// flags returns the store's flag side, answering 501 when it has none.
func (h *Handler) flags(w http.ResponseWriter) store.FlagStore {
	fs, ok := h.store.(store.FlagStore)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this store keeps no feature flags")
		return nil
	}
	return fs
}

func (h *Handler) apiFlags(w http.ResponseWriter, r *http.Request) {
	fs := h.flags(w)
	if fs == nil {
		return
	}
	list, err := fs.Flags(r.Context(), h.site(r))
	if err != nil {
		defError(w, err)
		return
	}
	writeResult(w, struct {
		Results []store.Flag `json:"results"`
	}{nonNil(list)})
}

func (h *Handler) apiFlag(w http.ResponseWriter, r *http.Request) {
	fs := h.flags(w)
	id, ok := pathID(w, r)
	if fs == nil || !ok {
		return
	}
	f, err := fs.Flag(r.Context(), h.site(r), id)
	if err != nil {
		defError(w, err)
		return
	}
	writeResult(w, f)
}

// apiSaveFlag creates (POST) or replaces (PUT) a flag; an invalid one is
// 400 with the field named.
func (h *Handler) apiSaveFlag(w http.ResponseWriter, r *http.Request) {
	fs := h.flags(w)
	if fs == nil {
		return
	}
	var f store.Flag
	if !readDefinition(w, r, &f) {
		return
	}
	status := http.StatusCreated
	f.ID = 0
	if r.Method == http.MethodPut {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		f.ID, status = id, http.StatusOK
	}
	f, err := fs.SaveFlag(r.Context(), h.site(r), f)
	if err != nil {
		defError(w, err)
		return
	}
	b, _ := json.Marshal(f)
	writeJSON(w, status, b)
}

func (h *Handler) apiDeleteFlag(w http.ResponseWriter, r *http.Request) {
	fs := h.flags(w)
	id, ok := pathID(w, r)
	if fs == nil || !ok {
		return
	}
	if err := fs.DeleteFlag(r.Context(), h.site(r), id); err != nil {
		defError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// apiFlagCalls answers the flag's `$feature_flag_called` events per
// variant over time: the trends shape, one series per response value.
func (h *Handler) apiFlagCalls(w http.ResponseWriter, r *http.Request) {
	fs := h.flags(w)
	id, ok := pathID(w, r)
	if fs == nil || !ok {
		return
	}
	f, err := fs.Flag(r.Context(), h.site(r), id)
	if err != nil {
		defError(w, err)
		return
	}
	q, v, err := h.query(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q.Filters = append(q.Filters, store.Filter{Prop: "$feature_flag", Op: store.OpEq, Value: f.Key})
	interval := v.Get("interval")
	if interval == "" {
		interval = "day"
	}
	tr, err := h.store.Trends(r.Context(), q, store.TrendsQuery{Events: []string{"$feature_flag_called"}, Interval: interval, Math: "total", Breakdown: "$feature_flag_response"})
	if err != nil {
		reportError(w, err)
		return
	}
	writeResult(w, tr)
}

func (h *Handler) apiFlagsKey(w http.ResponseWriter, r *http.Request) {
	fs := h.flags(w)
	if fs == nil {
		return
	}
	k, err := fs.FlagsKey(r.Context(), h.site(r))
	if err != nil {
		defError(w, err)
		return
	}
	writeResult(w, map[string]string{"key": k})
}

func (h *Handler) apiRotateFlagsKey(w http.ResponseWriter, r *http.Request) {
	fs := h.flags(w)
	if fs == nil {
		return
	}
	k, err := fs.RotateFlagsKey(r.Context(), h.site(r))
	if err != nil {
		defError(w, err)
		return
	}
	writeResult(w, map[string]string{"key": k})
}

func (h *Handler) apiExperiments(w http.ResponseWriter, r *http.Request) {
	fs := h.flags(w)
	if fs == nil {
		return
	}
	list, err := fs.Experiments(r.Context(), h.site(r))
	if err != nil {
		defError(w, err)
		return
	}
	writeResult(w, struct {
		Results []store.Experiment `json:"results"`
	}{nonNil(list)})
}

func (h *Handler) apiExperiment(w http.ResponseWriter, r *http.Request) {
	fs := h.flags(w)
	id, ok := pathID(w, r)
	if fs == nil || !ok {
		return
	}
	x, err := fs.Experiment(r.Context(), h.site(r), id)
	if err != nil {
		defError(w, err)
		return
	}
	writeResult(w, x)
}

// experimentBody is an experiment as posted: start and end as RFC 3339 or
// dates, start defaulting to now.
type experimentBody struct {
	Name    string                 `json:"name"`
	FlagKey string                 `json:"flag_key"`
	Metric  store.ExperimentMetric `json:"metric"`
	Start   string                 `json:"start"`
	End     string                 `json:"end"`
}

func (h *Handler) apiSaveExperiment(w http.ResponseWriter, r *http.Request) {
	fs := h.flags(w)
	if fs == nil {
		return
	}
	var in experimentBody
	if !readDefinition(w, r, &in) {
		return
	}
	x := store.Experiment{Name: in.Name, FlagKey: in.FlagKey, Metric: in.Metric, Start: h.opts.Now().UTC().Truncate(time.Second)}
	if in.Start != "" {
		t, _, err := parseTimeParam(in.Start, time.UTC)
		if err != nil {
			writeError(w, http.StatusBadRequest, "start: "+err.Error())
			return
		}
		x.Start = t
	}
	if in.End != "" {
		t, _, err := parseTimeParam(in.End, time.UTC)
		if err != nil {
			writeError(w, http.StatusBadRequest, "end: "+err.Error())
			return
		}
		x.End = &t
	}
	status := http.StatusCreated
	if r.Method == http.MethodPut {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		x.ID, status = id, http.StatusOK
	}
	x, err := fs.SaveExperiment(r.Context(), h.site(r), x)
	if err != nil {
		defError(w, err)
		return
	}
	b, _ := json.Marshal(x)
	writeJSON(w, status, b)
}

func (h *Handler) apiDeleteExperiment(w http.ResponseWriter, r *http.Request) {
	fs := h.flags(w)
	id, ok := pathID(w, r)
	if fs == nil || !ok {
		return
	}
	if err := fs.DeleteExperiment(r.Context(), h.site(r), id); err != nil {
		defError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// VariantResult is one variant's line of an experiment's results.
type VariantResult struct {
	Key              string     `json:"key"`
	Exposures        int        `json:"exposures"`
	Conversions      int        `json:"conversions"`
	ConversionRate   float64    `json:"conversion_rate"`
	CredibleInterval [2]float64 `json:"credible_interval"`
	ProbabilityBest  float64    `json:"probability_best"`
}

func (h *Handler) apiExperimentResults(w http.ResponseWriter, r *http.Request) {
	fs := h.flags(w)
	id, ok := pathID(w, r)
	if fs == nil || !ok {
		return
	}
	site := h.site(r)
	x, err := fs.Experiment(r.Context(), site, id)
	if err != nil {
		defError(w, err)
		return
	}
	end := h.opts.Now()
	if x.End != nil {
		end = *x.End
	}
	var variants []string
	if f := flagByKey(r, fs, site, x.FlagKey); f != nil && f.Filters.Multivariate != nil {
		for _, v := range f.Filters.Multivariate.Variants {
			variants = append(variants, v.Key)
		}
	}
	counts, err := experimentCounts(r, h.store, store.Query{Site: site, From: x.Start, To: end}, x.FlagKey, x.Metric.Steps())
	if err != nil {
		reportError(w, err)
		return
	}
	writeResult(w, struct {
		Variants []VariantResult `json:"variants"`
	}{experimentResults(variants, counts)})
}

func flagByKey(r *http.Request, fs store.FlagStore, site, key string) *store.Flag {
	list, _ := fs.Flags(r.Context(), site)
	for i := range list {
		if list[i].Key == key {
			return &list[i]
		}
	}
	return nil
}

// variantCount is the exposures and conversions of one variant.
type variantCount struct{ exposures, conversions int }

// experimentCounts reads the range once, in time order: a person is exposed
// to the variant of their first `$feature_flag_called` for the flag (a
// response of false is no exposure), and converts when they then do the
// metric's steps in order.
func experimentCounts(r *http.Request, st store.Store, q store.Query, flagKey string, steps []string) (map[string]*variantCount, error) {
	type person struct {
		variant string
		step    int
	}
	persons := map[string]*person{}
	err := st.Export(r.Context(), q, func(ev *store.Event, pid string) error {
		p := persons[pid]
		if p == nil {
			if ev.Name != "$feature_flag_called" || ev.Props.Str("$feature_flag") != flagKey {
				return nil
			}
			v := ev.Props.Str("$feature_flag_response")
			if v == "" || v == "false" {
				return nil
			}
			persons[pid] = &person{variant: v}
			return nil
		}
		if p.step < len(steps) && ev.Name == steps[p.step] {
			p.step++
		}
		return nil
	})
	counts := map[string]*variantCount{}
	for _, p := range persons {
		c := counts[p.variant]
		if c == nil {
			c = &variantCount{}
			counts[p.variant] = c
		}
		c.exposures++
		if p.step == len(steps) {
			c.conversions++
		}
	}
	return counts, err
}

// experimentResults turns counts into the answer: the flag's variants in
// order (then any other response seen), each with its Beta posterior.
func experimentResults(variants []string, counts map[string]*variantCount) []VariantResult {
	seen := map[string]bool{}
	keys := append([]string(nil), variants...)
	for _, k := range keys {
		seen[k] = true
	}
	var extra []string
	for k := range counts {
		if !seen[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	keys = append(keys, extra...)
	out := make([]VariantResult, len(keys))
	post := make([]betaDist, len(keys))
	for i, k := range keys {
		c := counts[k]
		if c == nil {
			c = &variantCount{}
		}
		out[i] = VariantResult{Key: k, Exposures: c.exposures, Conversions: c.conversions}
		if c.exposures > 0 {
			out[i].ConversionRate = float64(c.conversions) / float64(c.exposures)
		}
		post[i] = betaDist{a: 1 + float64(c.conversions), b: 1 + float64(c.exposures-c.conversions)}
		out[i].CredibleInterval = [2]float64{round6(post[i].quantile(0.025)), round6(post[i].quantile(0.975))}
	}
	for i, p := range probabilityBest(post) {
		out[i].ProbabilityBest = round6(p)
	}
	return out
}

func round6(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 6, 64), 64)
	return v
}
