package dashboard

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestFlagsAPI(t *testing.T) {
	e := newEnv(t)
	w := e.send("POST", "/api/flags", `{"key":"beta","name":"Beta","active":true,"filters":{"groups":[{"properties":[{"key":"plan","operator":"exact","value":"pro","type":"person"}],"rollout_percentage":50}],"payloads":{"true":{"a":1}}}}`)
	var f struct {
		ID      int64
		Key     string
		Version int
		Filters struct {
			Groups   []map[string]any
			Payloads map[string]any
		}
	}
	if w.Code != 201 || json.Unmarshal(w.Body.Bytes(), &f) != nil || f.ID == 0 || f.Key != "beta" || f.Version != 1 || fmt.Sprint(f.Filters.Payloads["true"]) != "map[a:1]" {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	for body, field := range map[string]string{
		`{"key":"x","filters":{"groups":[{"properties":[{"key":"plan","operator":"like","value":"pro"}]}]}}`:                            "filters.groups[0].properties[0].operator",
		`{"key":"x","filters":{"multivariate":{"variants":[{"key":"a","rollout_percentage":60},{"key":"b","rollout_percentage":60}]}}}`: "filters.multivariate.variants",
		`{"key":"x","filters":{"payloads":{"true":"{nope"}}}`:                                                                           "filters.payloads.true",
		`{"key":"x","filters":{"groups":"all"}}`:                                                                                        "body",
	} {
		if w := e.send("POST", "/api/flags", body); w.Code != 400 || !strings.Contains(w.Body.String(), field) {
			t.Errorf("%s: %d %s, want 400 naming %s", body, w.Code, w.Body, field)
		}
	}
	w = e.send("PUT", fmt.Sprintf("/api/flags/%d", f.ID), `{"key":"beta","active":false,"filters":{}}`)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"version":2`) || !strings.Contains(w.Body.String(), `"active":false`) {
		t.Errorf("put: %d %s", w.Code, w.Body)
	}
	if w := e.do("GET", "/api/flags", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"key":"beta"`) {
		t.Errorf("list: %d %s", w.Code, w.Body)
	}
	if w := e.send("DELETE", fmt.Sprintf("/api/flags/%d", f.ID), ""); w.Code != 204 {
		t.Errorf("delete: %d", w.Code)
	}
	if w := e.do("GET", fmt.Sprintf("/api/flags/%d", f.ID), nil); w.Code != 404 {
		t.Errorf("after delete: %d", w.Code)
	}
	if w := e.send("POST", "/api/experiments", `{"name":"x","flag_key":"beta","metric":{}}`); w.Code != 400 || !strings.Contains(w.Body.String(), "metric") {
		t.Errorf("experiment without metric: %d %s", w.Code, w.Body)
	}
}

// gammaSample draws from Gamma(a, 1) (Marsaglia and Tsang), for the Monte
// Carlo reference.
func gammaSample(r *rand.Rand, a float64) float64 {
	if a < 1 {
		return gammaSample(r, a+1) * math.Pow(r.Float64(), 1/a)
	}
	d := a - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}

func betaSample(r *rand.Rand, a, b float64) float64 {
	x := gammaSample(r, a)
	return x / (x + gammaSample(r, b))
}

// TestExperimentResults: a randomized experiment with three variants and a
// two-step funnel; exposures and conversions must equal what the
// generator knows, probabilities be within 0.01 of a 100,000-sample Monte
// Carlo and the 95% intervals within 0.005 of its quantiles.
func TestExperimentResults(t *testing.T) {
	e := newEnv(t)
	rng := rand.New(rand.NewPCG(16, 9))
	start := now.Add(-72 * time.Hour)
	rates := map[string]float64{"control": 0.20, "fast": 0.23, "slow": 0.21}
	variants := []string{"control", "fast", "slow"}
	type want struct{ exposures, conversions int }
	ref := map[string]*want{}
	for _, v := range variants {
		ref[v] = &want{}
	}
	var evs []*ref_event
	for i := 0; i < 1500; i++ {
		id := fmt.Sprintf("p%d", i)
		v := variants[rng.IntN(3)]
		at := start.Add(time.Duration(rng.IntN(48*3600)) * time.Second)
		// Some persons converted before they were exposed: not counted.
		if rng.Float64() < 0.1 {
			evs = append(evs, &ref_event{"signup", id, at.Add(-time.Hour), ""}, &ref_event{"purchase", id, at.Add(-30 * time.Minute), ""})
		}
		evs = append(evs, &ref_event{"$feature_flag_called", id, at, v})
		if rng.Float64() < 0.3 { // a second exposure, to the first variant: one person
			evs = append(evs, &ref_event{"$feature_flag_called", id, at.Add(time.Minute), v})
		}
		ref[v].exposures++
		if rng.Float64() < rates[v] {
			evs = append(evs, &ref_event{"signup", id, at.Add(10 * time.Minute), ""}, &ref_event{"purchase", id, at.Add(20 * time.Minute), ""})
			ref[v].conversions++
		} else if rng.Float64() < 0.5 { // only half the funnel, or in the wrong order
			evs = append(evs, &ref_event{"purchase", id, at.Add(5 * time.Minute), ""}, &ref_event{"signup", id, at.Add(6 * time.Minute), ""})
		}
		if rng.Float64() < 0.05 { // exposed to another flag: nothing
			evs = append(evs, &ref_event{"$feature_flag_called", "other-" + id, at, "control"})
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	for _, x := range evs {
		props := []string{}
		if x.variant != "" {
			flag := "checkout"
			if strings.HasPrefix(x.id, "other-") {
				flag = "other"
			}
			props = []string{"$feature_flag", flag, "$feature_flag_response", x.variant}
		}
		e.add(ev(x.name, x.id, x.at, props...))
	}
	if w := e.send("POST", "/api/flags", `{"key":"checkout","active":true,"filters":{"groups":[{}],"multivariate":{"variants":[{"key":"control","rollout_percentage":34},{"key":"fast","rollout_percentage":33},{"key":"slow","rollout_percentage":33}]}}}`); w.Code != 201 {
		t.Fatalf("flag: %d %s", w.Code, w.Body)
	}
	w := e.send("POST", "/api/experiments", `{"name":"Checkout speed","flag_key":"checkout","metric":{"funnel":["signup","purchase"]},"start":"`+start.Add(-time.Hour).Format(time.RFC3339)+`"}`)
	var x struct{ ID int64 }
	if w.Code != 201 || json.Unmarshal(w.Body.Bytes(), &x) != nil {
		t.Fatalf("experiment: %d %s", w.Code, w.Body)
	}
	w = e.do("GET", fmt.Sprintf("/api/experiments/%d/results", x.ID), nil)
	var res struct {
		Variants []struct {
			Key              string
			Exposures        int
			Conversions      int
			ConversionRate   float64    `json:"conversion_rate"`
			CredibleInterval [2]float64 `json:"credible_interval"`
			ProbabilityBest  float64    `json:"probability_best"`
		}
	}
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &res) != nil || len(res.Variants) != 3 {
		t.Fatalf("results: %d %s", w.Code, w.Body)
	}
	// The Monte Carlo reference.
	const samples = 100000
	mc := rand.New(rand.NewPCG(1, 2))
	best := make([]int, 3)
	draws := make([][]float64, 3)
	for s := 0; s < samples; s++ {
		top, topV := 0, -1.0
		for i, v := range variants {
			d := betaSample(mc, 1+float64(ref[v].conversions), 1+float64(ref[v].exposures-ref[v].conversions))
			draws[i] = append(draws[i], d)
			if d > topV {
				top, topV = i, d
			}
		}
		best[top]++
	}
	for i, v := range variants {
		got := res.Variants[i]
		if got.Key != v || got.Exposures != ref[v].exposures || got.Conversions != ref[v].conversions {
			t.Errorf("%s: %+v, want exposures %d conversions %d", v, got, ref[v].exposures, ref[v].conversions)
		}
		if r := float64(ref[v].conversions) / float64(ref[v].exposures); math.Abs(got.ConversionRate-r) > 1e-9 {
			t.Errorf("%s: rate %v, want %v", v, got.ConversionRate, r)
		}
		p := float64(best[i]) / samples
		if math.Abs(got.ProbabilityBest-p) > 0.01 {
			t.Errorf("%s: probability best %v, Monte Carlo %v", v, got.ProbabilityBest, p)
		}
		sort.Float64s(draws[i])
		lo, hi := draws[i][samples*25/1000], draws[i][samples*975/1000]
		if math.Abs(got.CredibleInterval[0]-lo) > 0.005 || math.Abs(got.CredibleInterval[1]-hi) > 0.005 {
			t.Errorf("%s: interval %v, Monte Carlo [%v %v]", v, got.CredibleInterval, lo, hi)
		}
		t.Logf("%s: %d/%d, interval %v, best %.4f (MC %.4f)", v, got.Conversions, got.Exposures, got.CredibleInterval, got.ProbabilityBest, p)
	}
}

type ref_event struct {
	name, id string
	at       time.Time
	variant  string
}
