package dashboard

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestFunnelPersonsAPI: /api/funnel/persons names the persons behind a
// funnel step, and those who dropped off after it, and refuses what it
// cannot answer.
func TestFunnelPersonsAPI(t *testing.T) {
	e := reportsEnv(t)
	// a and b (identified as c) viewed a page; only b/c bought, 30 minutes
	// after.
	funnel := "/api/funnel/persons?" + day + "&step=$pageview&step=purchase&window=1h"
	ids := func(path string) ([]string, int) {
		t.Helper()
		w := e.do("GET", path, nil)
		if w.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		var res struct {
			Results []struct {
				DistinctIDs []string `json:"distinct_ids"`
			}
			Total int
		}
		if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range res.Results {
			out = append(out, slices.Sorted(slices.Values(p.DistinctIDs))...)
		}
		slices.Sort(out)
		return out, res.Total
	}
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"&funnel_step=1", []string{"a", "b", "c"}},
		{"&funnel_step=2", []string{"b", "c"}},
		{"&funnel_step=1&dropped=true", []string{"a"}},
		{"&funnel_step=1&limit=1", nil},
	} {
		got, total := ids(funnel + c.query)
		if c.want == nil {
			if len(got) > 2 || total != 2 {
				t.Errorf("%s: %v of %d", c.query, got, total)
			}
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: persons %v, want %v", c.query, got, c.want)
		}
	}
	// 29 minutes: nobody converts; both dropped off.
	if got, total := ids("/api/funnel/persons?" + day + "&step=$pageview&step=purchase&window=29m&funnel_step=1&dropped=true"); total != 2 || len(got) != 3 {
		t.Errorf("window 29m, dropped: %v of %d", got, total)
	}
	for _, bad := range []string{
		"&funnel_step=0", "&funnel_step=3", "&funnel_step=x", "&funnel_step=2&dropped=true", "&funnel_step=1&dropped=maybe", "&funnel_step=1&limit=0",
	} {
		if w := e.do("GET", funnel+bad, nil); w.Code != 400 {
			t.Errorf("%s: %d %s, want 400", bad, w.Code, w.Body)
		}
	}
	if w := e.do("GET", "/api/funnel/persons?"+day+"&funnel_step=1", nil); w.Code != 400 {
		t.Errorf("no steps: %d, want 400", w.Code)
	}
}
