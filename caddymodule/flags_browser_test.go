package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
