package caddymodule_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestGoalsInBrowser: a goal made on the goals page shows on the overview
// with the conversion rate and revenue the API gives.
func TestGoalsInBrowser(t *testing.T) {
	startCaddy(t, config(filepath.Join(t.TempDir(), "gb.db"), ""))
	var batch []string
	for i := 0; i < 8; i++ {
		batch = append(batch, fmt.Sprintf(`{"event":"$pageview","distinct_id":"v%d","properties":{"$current_url":"https://test.example/","$session_id":"s%d"}}`, i, i))
	}
	for i := 0; i < 3; i++ {
		batch = append(batch, fmt.Sprintf(`{"event":"signed_up","distinct_id":"v%d","properties":{"$session_id":"s%d","revenue":12.5,"currency":"EUR"}}`, i, i))
	}
	if code, resp := post(t, "/batch/", []byte(`{"batch":[`+strings.Join(batch, ",")+`]}`), nil); code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	tab := StartBrowser(t).NewTab()
	tab.Navigate(base + "/analytics/goals")
	tab.WaitPage(`document.getElementById('new-goal')`, 15*time.Second)
	tab.Do(chromedp.Click(chromedp.CSS("#new-goal")))
	tab.WaitPage(`document.getElementById('goal-form')`, 5*time.Second)
	tab.Do(
		chromedp.SendKeys(`#goal-form input[name=name]`, "Signed up"),
		chromedp.SetValue(`#goal-form select[name=kind]`, "event"),
		chromedp.SendKeys(`#goal-form input[name=value]`, "signed_up"),
		chromedp.Click(`#goal-form button[type=submit]`),
	)
	tab.WaitPage(`document.querySelectorAll('#goals-table tbody tr').length === 1`, 15*time.Second)

	var stats struct {
		Results []struct {
			ConversionRate float64 `json:"conversion_rate"`
			Revenue        float64
		}
	}
	getJSON(t, api+"/goals/stats", &stats)
	if len(stats.Results) != 1 || stats.Results[0].ConversionRate != 3.0/8 || stats.Results[0].Revenue != 37.5 {
		t.Fatalf("API goal stats %+v, want rate 0.375 and revenue 37.5", stats.Results)
	}
	tab.Navigate(base + "/analytics/")
	tab.WaitPage(`document.querySelector('#panel-goals:not([hidden]) .goal-rate')`, 15*time.Second)
	if got := Eval[string](tab, `document.querySelector('#panel-goals .goal-rate').textContent`); got != "37.5%" {
		t.Errorf("overview goal conversion %q, want 37.5%%", got)
	}
	if got := Eval[string](tab, `document.querySelector('#panel-goals .goal-revenue').textContent`); !strings.Contains(got, "37.5") && !strings.Contains(got, "37,5") {
		t.Errorf("overview goal revenue %q, want 37.50 in euros", got)
	}
	if got := Eval[string](tab, `document.querySelector('#panel-goals td strong').textContent`); got != "Signed up" {
		t.Errorf("goal shown as %q, want its name", got)
	}
}
