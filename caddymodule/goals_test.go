package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestGoalsAndDocsAPI: goals, annotations, saved insights and dashboards
// are created, listed, replaced and deleted through a real Caddy; bad
// documents are refused with a 400 naming the field; /api/goals/stats gives
// each goal's visitors, events, conversion rate and revenue.
func TestGoalsAndDocsAPI(t *testing.T) {
	startCaddy(t, config(filepath.Join(t.TempDir(), "goals.db"), ""))
	var batch []string
	for i := 0; i < 4; i++ {
		batch = append(batch, fmt.Sprintf(`{"event":"$pageview","distinct_id":"v%d","properties":{"$current_url":"https://test.example/blog/post-%d"}}`, i, i))
	}
	batch = append(batch,
		`{"event":"purchase","distinct_id":"v1","properties":{"revenue":19.5,"currency":"eur"}}`,
		`{"event":"purchase","distinct_id":"v1","properties":{"revenue":"10","currency":"EUR"}}`,
		`{"event":"purchase","distinct_id":"v2","properties":{"$revenue":5}}`)
	if code, resp := post(t, "/batch/", []byte(`{"batch":[`+strings.Join(batch, ",")+`]}`), nil); code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	write := func(method, path, body string, want int) map[string]any {
		t.Helper()
		code, resp := send(t, method, api+path, []byte(body), map[string]string{"Content-Type": "application/json"})
		if code != want {
			t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, code, resp, want)
		}
		var m map[string]any
		json.Unmarshal([]byte(resp), &m)
		return m
	}
	g1 := write("POST", "/goals", `{"name":"Purchase","event":"purchase"}`, 201)
	write("POST", "/goals", `{"name":"Blog","path":"/blog/*"}`, 201)
	for body, field := range map[string]string{
		`{"name":"x"}`:                            "exactly one",
		`{"name":"x","event":"a","path":"/b"}`:    "exactly one",
		`{"name":"","event":"a"}`:                 "name",
		`{"name":"x","action":999}`:               "action",
		`{"name":"x","event":"a","colour":"red"}`: "colour",
		`{"name":"x","path":"no-slash"}`:          "path",
	} {
		code, resp := send(t, "POST", api+"/goals", []byte(body), map[string]string{"Content-Type": "application/json"})
		if code != 400 || !strings.Contains(resp, field) {
			t.Errorf("POST %s: %d %s, want 400 naming %s", body, code, resp, field)
		}
	}
	var stats struct {
		Results []struct {
			Goal           string
			Visitors       int
			Events         int
			ConversionRate float64 `json:"conversion_rate"`
			Revenue        float64
			Currency       string
		}
	}
	getJSON(t, api+"/goals/stats", &stats)
	if len(stats.Results) != 2 {
		t.Fatalf("goal stats %+v", stats)
	}
	p, b := stats.Results[0], stats.Results[1]
	if p.Goal != "Purchase" || p.Visitors != 2 || p.Events != 3 || p.ConversionRate != 0.5 || p.Revenue != 34.5 || p.Currency != "EUR" {
		t.Errorf("purchase goal %+v, want 2 visitors, 3 events, rate 0.5, revenue 34.5 EUR", p)
	}
	if b.Goal != "Blog" || b.Visitors != 4 || b.ConversionRate != 1 {
		t.Errorf("blog goal %+v, want 4 visitors, rate 1", b)
	}
	// With a filter: only v1's and v2's purchases pass; visitors are those
	// with a passing event.
	getJSON(t, api+"/goals/stats?filter=event==purchase", &stats)
	if stats.Results[0].ConversionRate != 1 || stats.Results[1].Visitors != 0 {
		t.Errorf("filtered goal stats %+v", stats.Results)
	}
	id := int(g1["id"].(float64))
	write("PUT", fmt.Sprintf("/goals/%d", id), `{"name":"Bought","event":"purchase"}`, 200)
	write("DELETE", fmt.Sprintf("/goals/%d", id), ``, 204)
	write("DELETE", fmt.Sprintf("/goals/%d", id), ``, 404)

	write("POST", "/annotations", `{"date":"2026-11-20","text":"Launched on HN"}`, 201)
	write("POST", "/annotations", `{"date":"yesterday","text":"x"}`, 400)
	in := write("POST", "/insights", `{"name":"Signups","kind":"trends","query":"event=signup&interval=week"}`, 201)
	write("POST", "/insights", `{"name":"x","kind":"pie","query":""}`, 400)
	write("POST", "/dashboards", fmt.Sprintf(`{"name":"Growth","insights":[%v]}`, in["id"]), 201)
	write("POST", "/dashboards", `{"name":"Broken","insights":[123456]}`, 400)
	var list struct{ Results []map[string]any }
	for path, n := range map[string]int{"/goals": 1, "/annotations": 1, "/insights": 1, "/dashboards": 1} {
		getJSON(t, api+path, &list)
		if len(list.Results) != n {
			t.Errorf("GET %s: %d results, want %d", path, len(list.Results), n)
		}
	}
}
