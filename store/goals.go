package store

import (
	"context"
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Goal is a conversion a site counts (SPEC §4): an event, an action, or a
// pageview of a path, where `*` in the path matches any characters.
type Goal struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Event  string `json:"event,omitempty"`
	Action int64  `json:"action,omitempty"`
	Path   string `json:"path,omitempty"`
}

// Validate checks that the goal names exactly one of event, action, path.
func (g Goal) Validate() error {
	if strings.TrimSpace(g.Name) == "" || len(g.Name) > 200 {
		return badQuery("name: want 1 to 200 characters")
	}
	n := 0
	for _, set := range []bool{g.Event != "", g.Action != 0, g.Path != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return badQuery("a goal names exactly one of event, action and path")
	}
	if len(g.Event) > 200 || len(g.Path) > 2000 {
		return badQuery("event or path too long")
	}
	if g.Path != "" && !strings.HasPrefix(g.Path, "/") && !strings.HasPrefix(g.Path, "*") {
		return badQuery("path: want a path like /pricing or /blog/*")
	}
	return nil
}

// GoalResult is one goal's conversions under a query (SPEC §4
// /api/goals/stats).
type GoalResult struct {
	Goal   string `json:"goal"`
	GoalID int64  `json:"goal_id"`
	// Visitors are the persons who reached the goal; Events the goal's
	// events.
	Visitors int `json:"visitors"`
	Events   int `json:"events"`
	// ConversionRate is Visitors over the visitors of the query.
	ConversionRate float64 `json:"conversion_rate"`
	// Revenue sums the goal events' `revenue` (else `$revenue`) property;
	// Currency is the most frequent `currency` (`$currency`) among them.
	Revenue  float64 `json:"revenue"`
	Currency string  `json:"currency"`
}

// globRE turns a path with `*` wildcards into an anchored expression.
func globRE(glob string) *regexp.Regexp {
	parts := strings.Split(glob, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`^` + strings.Join(parts, `.*`) + `$`)
}

// GoalStats counts each goal's visitors, events and revenue over q.
func (s *DB) GoalStats(ctx context.Context, q Query, goals []Goal) ([]GoalResult, error) {
	out := make([]GoalResult, len(goals))
	for i, g := range goals {
		out[i] = GoalResult{Goal: g.Name, GoalID: g.ID}
	}
	if len(goals) == 0 {
		return out, nil
	}
	events := make([]string, len(goals))
	paths := make([]*regexp.Regexp, len(goals))
	for i, g := range goals {
		switch {
		case g.Event != "":
			events[i] = g.Event
		case g.Action != 0:
			events[i] = actionPrefix + strconv.FormatInt(g.Action, 10)
		default:
			events[i] = "$pageview"
			paths[i] = globRE(g.Path)
		}
	}
	total := -1
	for start := 0; start < len(goals); start += maxSeriesEvents {
		end := min(start+maxSeriesEvents, len(goals))
		n, err := s.goalPass(ctx, q, events[start:end], paths[start:end], out[start:end])
		if err != nil {
			return nil, err
		}
		total = n
	}
	for i := range out {
		if total > 0 {
			out[i].ConversionRate = float64(out[i].Visitors) / float64(total)
		}
		out[i].Revenue = math.Round(out[i].Revenue*1e6) / 1e6
	}
	return out, nil
}

// goalPass counts up to maxSeriesEvents goals and returns the visitors of
// the query.
func (s *DB) goalPass(ctx context.Context, q Query, events []string, paths []*regexp.Regexp, out []GoalResult) (int, error) {
	r, specs, err := s.begin(ctx, q, events, "$pathname", "revenue", "$revenue", "currency", "$currency")
	if err != nil {
		return 0, err
	}
	defer r.end()
	es := r.compileEvents(specs)
	pathCol := r.t.lookupColumn("$pathname")
	revCols := []*column{r.t.lookupColumn("revenue"), r.t.lookupColumn("$revenue")}
	curCols := []*column{r.t.lookupColumn("currency"), r.t.lookupColumn("$currency")}
	// Per goal, whether each path code matches (computed once per code).
	pathOK := make([]map[uint32]bool, len(paths))
	for i := range paths {
		if paths[i] != nil {
			pathOK[i] = map[uint32]bool{}
		}
	}
	nPersons := r.nPersons()
	seen := make([]bool, nPersons)
	reached := make([][]bool, len(events))
	for i := range reached {
		reached[i] = make([]bool, nPersons)
	}
	currencies := make([]map[string]int, len(events))
	visitors := 0
	names := newColReader(r.t.name)
	pathR := newColReader(pathCol)
	revR := []*colReader{newColReader(revCols[0]), newColReader(revCols[1])}
	curR := []*colReader{newColReader(curCols[0]), newColReader(curCols[1])}
	r.chunks(func(ci int, rows []int32) {
		dids, nc := r.t.did.chunk(ci), names.chunk(ci)
		for _, off := range rows {
			p := r.roots[dids[off]]
			if !seen[p] {
				seen[p] = true
				visitors++
			}
			m := es.mask(ci<<chunkBits|int(off), nc[off])
			for k := 0; m != 0; k, m = k+1, m>>1 {
				if m&1 == 0 {
					continue
				}
				if paths[k] != nil {
					pc := pathR.chunk(ci)[off]
					ok, known := pathOK[k][pc]
					if !known {
						ok = pc != 0 && paths[k].MatchString(pathCol.dict.str(pc))
						pathOK[k][pc] = ok
					}
					if !ok {
						continue
					}
				}
				g := &out[k]
				g.Events++
				if !reached[k][p] {
					reached[k][p] = true
					g.Visitors++
				}
				for j, rc := range revR {
					if c := rc.chunk(ci)[off]; c != 0 {
						if v, err := strconv.ParseFloat(revCols[j].dict.str(c), 64); err == nil && !math.IsInf(v, 0) && !math.IsNaN(v) {
							g.Revenue += v
						}
						break
					}
				}
				for j, cr := range curR {
					if c := cr.chunk(ci)[off]; c != 0 {
						if currencies[k] == nil {
							currencies[k] = map[string]int{}
						}
						currencies[k][strings.ToUpper(curCols[j].dict.str(c))]++
						break
					}
				}
			}
		}
	})
	for k, cs := range currencies {
		best, bn := "", 0
		for c, n := range cs {
			if n > bn || n == bn && c < best {
				best, bn = c, n
			}
		}
		out[k].Currency = best
	}
	return visitors, nil
}

// GoalsOf decodes a site's goal documents.
func GoalsOf(docs []Doc) []Goal {
	out := make([]Goal, 0, len(docs))
	for _, d := range docs {
		var g Goal
		if json.Unmarshal(d.Body, &g) == nil {
			g.ID = d.ID
			out = append(out, g)
		}
	}
	return out
}
