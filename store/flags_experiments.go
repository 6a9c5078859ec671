package store

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"
)

// Experiment is a flag and a metric: what share of the persons exposed to
// each variant went on to do the metric (SPEC §9).
type Experiment struct {
	ID      int64            `json:"id"`
	Name    string           `json:"name"`
	FlagKey string           `json:"flag_key"`
	Metric  ExperimentMetric `json:"metric"`
	Start   time.Time        `json:"start"`
	End     *time.Time       `json:"end"`
}

// ExperimentMetric is one event, or a funnel whose last step converts.
type ExperimentMetric struct {
	Event  string   `json:"event,omitempty"`
	Funnel []string `json:"funnel,omitempty"`
}

// Steps are the events a person must do, in order, after exposure.
func (m ExperimentMetric) Steps() []string {
	if m.Event != "" {
		return []string{m.Event}
	}
	return m.Funnel
}

func (x *Experiment) validate() error {
	if strings.TrimSpace(x.Name) == "" {
		return badQuery("name: an experiment needs a name")
	}
	if !flagKeyRE.MatchString(x.FlagKey) {
		return badQuery("flag_key: %q is not a flag key", x.FlagKey)
	}
	if x.Metric.Event != "" && len(x.Metric.Funnel) > 0 {
		return badQuery("metric: give event or funnel, not both")
	}
	steps := x.Metric.Steps()
	if len(steps) == 0 {
		return badQuery("metric: needs an event or a funnel of steps")
	}
	if len(steps) > 20 {
		return badQuery("metric.funnel: at most 20 steps")
	}
	for i, s := range steps {
		if s == "" {
			return badQuery("metric.funnel[%d]: empty event name", i)
		}
	}
	if x.Start.IsZero() {
		return badQuery("start: required")
	}
	if x.End != nil && !x.End.After(x.Start) {
		return badQuery("end: must be after start")
	}
	return nil
}

// Experiments lists the experiments of site by id.
func (s *DB) Experiments(ctx context.Context, site string) ([]Experiment, error) {
	if err := s.flagsLoaded(); err != nil {
		return nil, err
	}
	st := &s.flags
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]Experiment, 0, len(st.exps[site]))
	for _, x := range st.exps[site] {
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Experiment returns one experiment.
func (s *DB) Experiment(ctx context.Context, site string, id int64) (Experiment, error) {
	if err := s.flagsLoaded(); err != nil {
		return Experiment{}, err
	}
	st := &s.flags
	st.mu.Lock()
	defer st.mu.Unlock()
	x, ok := st.exps[site][id]
	if !ok {
		return Experiment{}, ErrNotFound
	}
	return x, nil
}

// SaveExperiment creates x (ID 0) or replaces the experiment with its ID.
func (s *DB) SaveExperiment(ctx context.Context, site string, x Experiment) (Experiment, error) {
	if err := s.flagsLoaded(); err != nil {
		return x, err
	}
	if err := x.validate(); err != nil {
		return x, err
	}
	st := &s.flags
	st.mu.Lock()
	defer st.mu.Unlock()
	if x.ID == 0 {
		x.ID = st.lastExp + 1
	} else if _, ok := st.exps[site][x.ID]; !ok {
		return x, ErrNotFound
	}
	v, _ := json.Marshal(x)
	if err := s.setDef(flagKey("fx", site, x.ID), string(v)); err != nil {
		return x, err
	}
	st.lastExp = max(st.lastExp, x.ID)
	if st.exps[site] == nil {
		st.exps[site] = map[int64]Experiment{}
	}
	st.exps[site][x.ID] = x
	return x, nil
}

// DeleteExperiment removes an experiment.
func (s *DB) DeleteExperiment(ctx context.Context, site string, id int64) error {
	if err := s.flagsLoaded(); err != nil {
		return err
	}
	st := &s.flags
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.exps[site][id]; !ok {
		return ErrNotFound
	}
	if err := s.setDef(flagKey("fx", site, id), ""); err != nil {
		return err
	}
	delete(st.exps[site], id)
	return nil
}
