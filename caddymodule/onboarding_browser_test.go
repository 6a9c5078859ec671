package caddymodule_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// onboardingConfig: the test site with a page carrying the snippet's tag
// and one without; a second site (localhost) with `inject` whose pages get
// the tag from Caddy.
func onboardingConfig(db string) string {
	return fmt.Sprintf(testGlobal+`http://127.0.0.1:9080 {
	bind 127.0.0.1
	analytics {
		db %[1]s
		site test.example
		rate_limit off
	}
	header Content-Type "text/html; charset=utf-8"
	handle /with {
		respond `+"`"+`<!doctype html><html><head><title>with</title><script defer src="/_f/app.js?v=1" data-api="/_f"></script></head><body>with</body></html>`+"`"+` 200
	}
	handle /without {
		respond "<!doctype html><html><head><title>without</title></head><body>without</body></html>" 200
	}
	respond "page" 200
}
http://localhost:9080 {
	bind 127.0.0.1
	analytics {
		db %[1]s
		site localhost
		rate_limit off
		inject
	}
	header Content-Type "text/html; charset=utf-8"
	respond "<!doctype html><html><head><title>plain</title></head><body>plain</body></html>" 200
}
`, db)
}

// installCheck13 runs the install check through the page and returns its
// verdict's text and whether it says found.
func installCheck13(t *testing.T, d *dashTab, target string) (string, string) {
	t.Helper()
	d.js(`document.getElementById('install-result').replaceChildren(); document.getElementById('install-url').value = ` + jsString(target))
	d.click("#install-check")
	d.until("the install check of "+target, `document.querySelector('#install-result .install-verdict')`)
	text := Eval[string](d.Tab, `document.getElementById('install-result').innerText`)
	found := Eval[string](d.Tab, `document.querySelector('#install-result .install-verdict').dataset.found || 'refused'`)
	return text, found
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// TestOnboardingInBrowser: a site without events shows install steps (the
// site's exact tag, `inject`, each PostHog SDK with this server as host)
// and "waiting for your first event" instead of zeros; the install check
// finds the tag on a page that has it, not on one without, finds what
// `inject` adds, and refuses another host or port; one capture turns the
// wait green and the dashboard opens.
func TestOnboardingInBrowser(t *testing.T) {
	findChromium(t)
	startCaddy(t, onboardingConfig(filepath.Join(t.TempDir(), "onboard.db")))
	var snip struct{ HTML string }
	getJSON(t, api+"/snippet", &snip)
	if !strings.Contains(snip.HTML, `src="/_f/app.js?`) {
		t.Fatalf("the snippet tag %q is not the one the test pages carry", snip.HTML)
	}

	b := StartBrowser(t)
	d := openDash(t, b)
	d.Navigate(dashURL("/", nil))
	d.until("the onboarding", `document.getElementById('first-event')?.classList.contains('waiting') && document.getElementById('onboard-snippet')`)
	if got := Eval[string](d.Tab, `document.getElementById('onboard-snippet').textContent`); got != snip.HTML {
		t.Errorf("onboarding shows the tag %q, want the site's %q", got, snip.HTML)
	}
	if Eval[bool](d.Tab, `!!document.getElementById('stat-visitors')`) {
		t.Error("a site without events shows the zeros of the overview")
	}
	if got := Eval[string](d.Tab, `document.getElementById('onboard-caddyfile')?.textContent || ''`); !strings.Contains(got, "inject") {
		t.Errorf("no `inject` step: %q", got)
	}
	host := base + "/_f"
	for _, sdk := range []struct{ tab, want string }{
		{"js", "api_host: '" + host + "'"},
		{"node", "host: '" + host + "'"},
		{"go", `Endpoint: "` + host + `"`},
		{"python", "host='" + host + "'"},
	} {
		d.click(`#onboard-sdk-card .tab[data-tab="` + sdk.tab + `"]`)
		d.until("the "+sdk.tab+" SDK's steps", `document.getElementById('onboard-sdk-`+sdk.tab+`')`)
		if got := Eval[string](d.Tab, `document.getElementById('onboard-sdk-`+sdk.tab+`').textContent`); !strings.Contains(got, sdk.want) {
			t.Errorf("%s SDK step %q lacks %q", sdk.tab, got, sdk.want)
		}
	}
	d.click(`#onboard-sdk-card .tab[data-tab="js"]`)
	shot13(t, d, "empty")

	// The install check, from the server, on the site's own pages only.
	if text, found := installCheck13(t, d, "/with"); found != "true" || !strings.Contains(text, "Firstparty snippet") || !strings.Contains(text, "HTTP 200") {
		t.Errorf("check of /with (has the tag): %s %q", found, text)
	}
	if text, found := installCheck13(t, d, "http://127.0.0.1:9080/without"); found != "false" || !strings.Contains(text, "Not found") {
		t.Errorf("check of /without (no tag): %s %q", found, text)
	}
	for _, foreign := range []string{"http://localhost:9080/with", "http://127.0.0.1:2999/config/", "http://169.254.169.254/latest/meta-data/", "https://example.org/", "file:///etc/passwd", "http://user@127.0.0.1:9080/with"} {
		if text, found := installCheck13(t, d, foreign); found != "refused" || !strings.Contains(text, "only pages of this site") {
			t.Errorf("check of foreign %s: %s %q, want refused", foreign, found, text)
		}
	}
	// The refusals are 400 answers the browser logs; nothing else may be.
	d.mu.Lock()
	var other []string
	for _, e := range d.errs {
		if !strings.Contains(e, "status of 400") || !strings.Contains(e, "/api/install_check") {
			other = append(other, e)
		}
	}
	d.errs = other
	d.mu.Unlock()
	// The API refuses the same, whoever calls it.
	req, _ := http.NewRequest("POST", api+"/install_check", strings.NewReader(`{"url":"http://127.0.0.1:2999/config/"}`))
	req.Header.Set("Content-Type", "application/json")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 400 {
		t.Errorf("API check of the admin port: %v %v, want 400", res.StatusCode, err)
	} else {
		res.Body.Close()
	}

	// The inject site: Caddy adds the tag, the check sees it, and the
	// check's own request is no pageview.
	d2 := openDash(t, b)
	d2.Navigate("http://localhost:9080/analytics/")
	d2.until("the inject site's onboarding", `document.getElementById('onboard-inject')?.classList.contains('on') && document.getElementById('install-url')`)
	if text, found := installCheck13(t, d2, "/plain"); found != "true" || !strings.Contains(text, "Firstparty snippet") {
		t.Errorf("check of an injected page: %s %q", found, text)
	}
	var ob struct{ Events int }
	getJSON(t, "http://localhost:9080/analytics/api/onboarding", &ob)
	if ob.Events != 0 {
		t.Errorf("the install check was stored as %d events", ob.Events)
	}

	// One capture: the wait turns green and names the event.
	capture13(t, pv13("first-visitor", "/hello", time.Now().UTC()))
	d.until("the first event received", `document.getElementById('first-event').classList.contains('received') && document.getElementById('first-event').innerText.includes('Received your first event') && document.getElementById('first-event').innerText.includes('/hello')`)
	if c := Eval[string](d.Tab, `getComputedStyle(document.querySelector('#first-event strong')).color`); c != "rgb(5, 150, 105)" && c != "rgb(52, 211, 153)" {
		t.Errorf("the received message is %s, not green", c)
	}
	d.click("#open-dashboard")
	d.until("the overview after the first event", overviewReady+` && document.querySelector('#stat-visitors .stat-value').textContent === '1'`)
	d.noErrors("onboarding")
	d2.noErrors("onboarding with inject")
}
