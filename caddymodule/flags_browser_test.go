package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// flagsPage loads the real posthog-js and starts one named instance per
// distinct id (bootstrapped, memory persistence, no autocapture), recording
// what isFeatureEnabled, getFeatureFlag and getFeatureFlagPayload say once
// onFeatureFlags fires.
const flagsPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Flags</title>
<script src="/vendor/array.js"></script>
<script>
window.__flags = {};
window.__start = function (ids) {
  ids.forEach(function (id, i) {
    var ph = posthog.init('phc_flags', {
      api_host: location.origin + '/_f', persistence: 'memory', autocapture: false,
      capture_pageview: false, capture_pageleave: false, disable_session_recording: true,
      disable_surveys: true, bootstrap: {distinctID: id}
    }, 'i' + i);
    ph.onFeatureFlags(function () {
      if (window.__flags[id]) return;
      // A load that failed (a timeout on a busy machine) fires this too,
      // with no flags: ask again, as an application would.
      if (ph.getFeatureFlag('three') === undefined) { setTimeout(function () { ph.reloadFeatureFlags() }, 200); return; }
      window.__flags[id] = {
        half: ph.isFeatureEnabled('half'), three: ph.getFeatureFlag('three'),
        halfPayload: ph.getFeatureFlagPayload('half'), threePayload: ph.getFeatureFlagPayload('three')
      };
    });
  });
};
</script>
</head><body><p>flags</p></body></html>
`

// TestFlagsPosthogJS: posthog-js 1.449.2 in Chromium gets every flag value
// and payload the reference gives for 400 distinct ids, and person
// properties set with setPersonPropertiesForFlags switch a property flag on.
func TestFlagsPosthogJS(t *testing.T) {
	bundle := posthogJS(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "vendor"), 0o755)
	os.WriteFile(filepath.Join(dir, "vendor", "array.js"), bundle, 0o644)
	os.WriteFile(filepath.Join(dir, "flags.html"), []byte(flagsPage), 0o644)
	startCaddy(t, fmt.Sprintf(testGlobal+`http://127.0.0.1:9080 {
	bind 127.0.0.1
	analytics {
		db %s
		site test.example
		rate_limit off
	}
	root * %s
	file_server
}
`, filepath.Join(t.TempDir(), "jsflags.db"), dir))
	createFlag(t, flagHalf)
	createFlag(t, flagThree)
	createFlag(t, flagPro)

	tab := StartBrowser(t).NewTab()
	tab.Navigate(base + "/flags.html")
	tab.WaitPage(`window.posthog && window.__start`, 15*time.Second)
	ids := distinctIDs("browser", 400)
	idsJS, _ := json.Marshal(ids)
	Eval[chromedp.Void](tab, `__start(`+string(idsJS)+`)`)
	tab.WaitPage(fmt.Sprintf(`Object.keys(window.__flags).length >= %d`, len(ids)), 60*time.Second)

	var got map[string]struct {
		Half         any
		Three        any
		HalfPayload  any
		ThreePayload any
	}
	if err := json.Unmarshal([]byte(Eval[string](tab, `JSON.stringify(window.__flags)`)), &got); err != nil {
		t.Fatal(err)
	}
	half, three := map[string]bool{}, map[string]string{}
	for _, id := range ids {
		g := got[id]
		if g.Half != refHalf(id) || g.Three != refThree(id) {
			t.Fatalf("%s: posthog-js says half %v three %v; reference %v %s", id, g.Half, g.Three, refHalf(id), refThree(id))
		}
		if fmt.Sprint(g.HalfPayload) != fmt.Sprint(refPayload("half", g.Half)) || fmt.Sprint(g.ThreePayload) != fmt.Sprint(refPayload("three", g.Three)) {
			t.Fatalf("%s: payloads %v / %v", id, g.HalfPayload, g.ThreePayload)
		}
		half[id], three[id] = g.Half.(bool), g.Three.(string)
	}
	checkShares(t, "posthog-js", half, three)

	// Person-property overrides: pro-only is off until the page says the
	// person is on the pro plan.
	Eval[chromedp.Void](tab, `window.__main = posthog.init('phc_flags', {api_host: location.origin + '/_f', persistence: 'memory', autocapture: false, capture_pageview: false, bootstrap: {distinctID: 'js-main'}}, 'main');
		window.__mainLoaded = false; __main.onFeatureFlags(function () { window.__mainLoaded = true })`)
	tab.WaitPage(`window.__mainLoaded`, 15*time.Second)
	if Eval[bool](tab, `__main.isFeatureEnabled('pro-only') === true`) {
		t.Fatal("pro-only on before any person property")
	}
	Eval[chromedp.Void](tab, `__main.setPersonPropertiesForFlags({plan: 'pro'})`)
	tab.WaitPage(`__main.isFeatureEnabled('pro-only') === true`, 15*time.Second)
	if ex := tab.Exceptions(); len(ex) > 0 {
		t.Errorf("page exceptions: %v", ex)
	}
	// The $feature_flag_called events posthog-js sends are stored.
	waitEvents(t, "posthog-js's $feature_flag_called", has("$feature_flag_called", 1))
}

// TestFlagsEditorInBrowser creates a flag through the dashboard's editor
// (a person condition, the rollout slider, variants that must add up to
// 100, a payload that must be JSON), sees /flags/ evaluate it, its calls
// per variant charted, an experiment's results, and the secret key shown
// and rotated in settings.
func TestFlagsEditorInBrowser(t *testing.T) {
	startCaddy(t, dashConfig(filepath.Join(t.TempDir(), "uiflags.db")))
	d := openDash(t, StartBrowser(t))
	d.Navigate(base + "/analytics/flags")
	d.until("the flags page", `document.querySelector('#new-flag')`)
	d.click("#new-flag")
	d.until("the editor", `document.querySelector('#flag-form')`)
	set := func(sel, v string) {
		d.js(fmt.Sprintf(`(function(){var e=document.querySelector(%q); e.value=%q; e.dispatchEvent(new Event('input',{bubbles:true})); e.dispatchEvent(new Event('change',{bubbles:true}))})()`, sel, v))
	}
	clickText := func(text string) {
		d.js(fmt.Sprintf(`[...document.querySelectorAll('#flag-form button')].find(b => b.textContent === %q).click()`, text))
	}
	set(`#flag-form input[name=key]`, "ui-flag")
	set(`#flag-form input[name=name]`, "Flag <b>made</b> in the UI")
	clickText("+ Condition")
	set(`#flag-groups .condition input[name=key]`, "plan")
	set(`#flag-groups .condition input[name=value]`, "pro")
	set(`#flag-groups input[name=rollout]`, "100")
	d.until("the slider's value shown", `document.querySelector('#flag-groups output').textContent === '100%'`)
	d.click("#add-variant")
	d.click("#add-variant")
	set(`#flag-variants .variant:nth-child(1) input[name=vkey]`, "x")
	set(`#flag-variants .variant:nth-child(1) input[name=vpct]`, "50")
	set(`#flag-variants .variant:nth-child(2) input[name=vkey]`, "y")
	set(`#flag-variants .variant:nth-child(2) input[name=vpct]`, "40")
	d.until("the sum flagged", `document.querySelector('#variant-sum').className === 'error' && document.querySelector('#variant-sum').textContent.includes('90%')`)
	d.click(`#flag-form button[type=submit]`)
	d.until("the refusal of 90%", `document.querySelector('#flag-error').textContent.includes('100%')`)
	set(`#flag-variants .variant:nth-child(2) input[name=vpct]`, "50")
	set(`#flag-payloads textarea[data-key=x]`, `{"a": 1`)
	d.click(`#flag-form button[type=submit]`)
	d.until("the refusal of bad JSON", `document.querySelector('#flag-error').textContent.includes('not valid JSON')`)
	set(`#flag-payloads textarea[data-key=x]`, `{"a": 1}`)
	d.click(`#flag-form button[type=submit]`)
	d.until("the new flag listed", `document.querySelector('#flags-table tr[data-key="ui-flag"]')`)
	if name := Eval[string](d.Tab, `document.querySelector('#flags-table tr[data-key="ui-flag"] strong').textContent`); name != "Flag <b>made</b> in the UI" {
		t.Errorf("name shown as %q", name)
	}

	// /flags/ answers it: on for the pro plan only, variant as the
	// reference says, x with its payload.
	for _, id := range distinctIDs("ui", 50) {
		a := askFlags(t, fmt.Sprintf(`{"distinct_id":%q,"person_properties":{"plan":"pro"}}`, id))
		f := a.Flags["ui-flag"]
		want := "x"
		if refBucket("ui-flag", id, "variant") >= 0.5 {
			want = "y"
		}
		if !f.Enabled || f.Variant == nil || *f.Variant != want || (want == "x") != (a.FeatureFlagPayloads["ui-flag"] == `{"a":1}`) {
			t.Fatalf("%s: %+v %v, want variant %s", id, f, a.FeatureFlagPayloads, want)
		}
		if a := askFlags(t, fmt.Sprintf(`{"distinct_id":%q,"person_properties":{"plan":"free"}}`, id)); a.Flags["ui-flag"].Enabled {
			t.Fatalf("%s: on for the free plan", id)
		}
	}

	// Calls per variant on the flag's page, and an experiment on it.
	now := time.Now().UTC()
	batch := fmt.Sprintf(`{"api_key":"phc_x","batch":[
		{"event":"$feature_flag_called","distinct_id":"ui-buyer","timestamp":%q,"properties":{"$feature_flag":"ui-flag","$feature_flag_response":"x"}},
		{"event":"purchase","distinct_id":"ui-buyer","timestamp":%q},
		{"event":"$feature_flag_called","distinct_id":"ui-looker","timestamp":%q,"properties":{"$feature_flag":"ui-flag","$feature_flag_response":"y"}}]}`,
		now.Add(-3*time.Minute).Format(time.RFC3339), now.Add(-2*time.Minute).Format(time.RFC3339), now.Add(-3*time.Minute).Format(time.RFC3339))
	if code, body := post(t, "/batch/", []byte(batch), nil); code != 200 {
		t.Fatalf("batch: %d %s", code, body)
	}
	d.click(`#flags-table tr[data-key="ui-flag"] a`)
	d.until("the calls chart", `document.querySelector('#flag-calls .chart-legend') && document.querySelector('#flag-calls-chart canvas')`)
	if legend := Eval[string](d.Tab, `document.querySelector('#flag-calls .chart-legend').textContent`); !strings.Contains(legend, "x") || !strings.Contains(legend, "y") {
		t.Errorf("legend %q", legend)
	}
	d.Navigate(base + "/analytics/experiments")
	d.until("the experiment form", `document.querySelector('#experiment-form select[name=flag] option[value="ui-flag"]')`)
	set(`#experiment-form input[name=name]`, "UI experiment")
	set(`#experiment-form select[name=flag]`, "ui-flag")
	set(`#experiment-form input[name=metric]`, "purchase")
	set(`#experiment-form input[name=start]`, now.Add(-24*time.Hour).Format("2006-01-02"))
	d.click(`#experiment-form button[type=submit]`)
	d.until("the results", `document.querySelector('#experiment-table tr[data-key="x"]') && document.querySelector('#experiment-chart circle')`)
	row := Eval[string](d.Tab, `[...document.querySelectorAll('#experiment-table tr[data-key="x"] td')].map(td => td.textContent).join('|')`)
	if !strings.HasPrefix(row, "x|1|1|100") {
		t.Errorf("results row %q", row)
	}

	// The secret key in settings, rotated.
	d.Navigate(base + "/analytics/settings")
	d.until("the flags key", `(document.querySelector('#flags-key')?.textContent || '').startsWith('phs_')`)
	old := Eval[string](d.Tab, `document.querySelector('#flags-key').textContent`)
	d.click("#rotate-flags-key")
	d.until("a new key", fmt.Sprintf(`(document.querySelector('#flags-key')?.textContent || '%s') !== %q`, old, old))
	if code, _ := send(t, "GET", endpoint+"/flags/definitions", nil, map[string]string{"Authorization": "Bearer " + old}); code != 401 {
		t.Errorf("the rotated-out key still works: %d", code)
	}
	d.noErrors("flags pages")
}
