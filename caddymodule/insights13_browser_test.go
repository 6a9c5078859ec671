package caddymodule_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// insights13World is the traffic of TestInsightsUIInBrowser: a funnel of
// pageview → signup (an action) → purchase, customers on twelve plans, a
// few events earlier today.
type insights13World struct {
	actionID   int64
	actionName string
	hostileID  int64
	visitors   int
	signups    int
	buyers     int
}

func loadInsights13(t *testing.T) insights13World {
	t.Helper()
	now := time.Now().UTC()
	w := insights13World{actionName: "Signed up", visitors: 30}
	var evs []map[string]any
	ev := func(name, did string, at time.Time, props map[string]any) {
		if props["$current_url"] == nil {
			props["$current_url"] = "https://test.example/"
		}
		props["$session_id"] = "s-" + did
		evs = append(evs, map[string]any{"event": name, "distinct_id": did, "timestamp": at, "properties": props})
	}
	for i := 0; i < w.visitors; i++ {
		did := fmt.Sprintf("visitor-%02d", i)
		at := now.Add(-time.Duration(30+i*90) * time.Minute) // within the last two days
		props := map[string]any{"plan": fmt.Sprintf("plan-%02d", i%12)}
		if i%3 == 0 {
			props["$set"] = map[string]any{"email": fmt.Sprintf("v%02d@example.com", i)}
		}
		ev("$pageview", did, at, props)
		if i%2 == 0 {
			ev("$pageview", did, at.Add(30*time.Second), map[string]any{"$current_url": "https://test.example/pricing"})
		}
		if i%5 != 0 {
			w.signups++
			ev("signed_up", did, at.Add(time.Minute), map[string]any{})
			if i%3 == 1 {
				w.buyers++
				ev("purchase", did, at.Add(2*time.Minute), map[string]any{"revenue": 10 + i})
			}
		}
	}
	dashLoad(t, evs)
	w.actionID = createAction(t, w.actionName, "signed_up")
	w.hostileID = createAction(t, hostileAction, "purchase")
	return w
}

// hostileAction is an action name that would be markup if parsed as HTML.
const hostileAction = `<b>Bought</b> <img src=x onerror="window.__xss=1">`

func createAction(t *testing.T, name, event string) int64 {
	t.Helper()
	var a struct{ ID int64 }
	body := fmt.Sprintf(`{"name":%q,"steps":[{"event":%q}]}`, name, event)
	if code, res := send(t, "POST", api+"/actions", []byte(body), map[string]string{"Content-Type": "application/json"}); code != 201 && code != 200 {
		t.Fatalf("creating the action: %d %s", code, res)
	} else if err := json.Unmarshal([]byte(res), &a); err != nil || a.ID == 0 {
		t.Fatalf("action answer %s: %v", res, err)
	}
	return a.ID
}

// TestInsightsUIInBrowser checks issue 13's insight pieces as a person sees
// them: annotations on time charts, saved insights and dashboards, action
// names, the funnel drill-down, chart fixes and CSV links.
func TestInsightsUIInBrowser(t *testing.T) {
	startCaddy(t, dashConfig(filepath.Join(t.TempDir(), "ins13.db")))
	w := loadInsights13(t)
	b := StartBrowser(t)
	action := "action:" + strconv.FormatInt(w.actionID, 10)
	write := map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}

	t.Run("annotations", func(t *testing.T) {
		// Two days ago, as a date, in the tab's zone (UTC).
		day := time.Now().UTC().AddDate(0, 0, -2).Format("2006-01-02")
		hostile := `<img src=x onerror="window.__xss=1">launch`
		body := fmt.Sprintf(`{"date":%q,"text":%q}`, day, hostile)
		if code, res := send(t, "POST", api+"/annotations", []byte(body), write); code != 201 {
			t.Fatalf("annotation: %d %s", code, res)
		}
		d := openDash(t, b)
		d.Navigate(dashURL("/insights/trends", url.Values{"interval": {"day"}}))
		d.until("the annotation marker", loaded+` && document.querySelector('#trends-chart .annotation')`)
		// Daily labels of the last 7 days: the marker sits on the point of
		// its day, the 5th of 7.
		got := Eval[[]float64](d.Tab, `(() => {
			const over = document.querySelector('#trends-chart .u-over').getBoundingClientRect();
			const m = document.querySelector('#trends-chart .annotation').getBoundingClientRect();
			return [m.left - over.left, over.width];
		})()`)
		if want := got[1] * 4 / 6; got[0] < want-1.5 || got[0] > want+1.5 {
			t.Errorf("marker at x=%.1f of %.1f, want %.1f (the day's point)", got[0], got[1], want)
		}
		d.js(`document.querySelector('#trends-chart .annotation-mark').focus()`)
		d.until("the annotation text on focus", `getComputedStyle(document.querySelector('#trends-chart .annotation-pop')).display !== 'none'`)
		if txt := Eval[string](d.Tab, `document.querySelector('#trends-chart .annotation-text').textContent`); txt != hostile {
			t.Errorf("annotation text %q, want %q as text", txt, hostile)
		}
		if Eval[bool](d.Tab, `window.__xss === 1 || !!document.querySelector('#main img[src="x"]')`) {
			t.Error("the annotation's text ran as HTML")
		}
		d.js(`window.scrollTo(0, 0)`)
		screenshot13(t, d, "annotation")
		// The overview's chart has it too.
		d.Navigate(dashURL("/", nil))
		d.until("the overview chart's marker", `document.querySelector('#main-chart .annotation[data-date="`+day+`"]')`)

		// Add one from the chart, then delete it.
		d.Navigate(dashURL("/insights/trends", nil))
		d.until("the chart", loaded+` && document.querySelector('#trends-chart .annotation-add')`)
		today := time.Now().UTC().Format("2006-01-02")
		d.js(`(() => { const a = document.querySelector('#trends-chart .annotation-add'); a.open = true;
			a.querySelector('input[name=date]').value = '` + today + `'; })()`)
		d.Do(chromedp.SendKeys(`#trends-chart .annotation-add input[name=text]`, "Price change"),
			chromedp.Click(`#trends-chart .annotation-add button[type=submit]`))
		d.until("the new marker", `document.querySelector('#trends-chart .annotation[data-date="`+today+`"]')`)
		var list struct {
			Results []struct {
				ID         int64
				Date, Text string
			}
		}
		getJSON(t, api+"/annotations", &list)
		if len(list.Results) != 2 || list.Results[1].Text != "Price change" || list.Results[1].Date != today {
			t.Fatalf("annotations after adding %+v", list.Results)
		}
		d.js(`document.querySelector('#trends-chart .annotation[data-date="` + today + `"] .annotation-delete').click()`)
		d.until("the marker gone", `!document.querySelector('#trends-chart .annotation[data-date="`+today+`"]') && document.querySelector('#trends-chart .annotation')`)
		getJSON(t, api+"/annotations", &list)
		if len(list.Results) != 1 || list.Results[0].Text != hostile {
			t.Errorf("annotations after deleting %+v", list.Results)
		}
		d.noErrors("annotations")
	})

	t.Run("action names", func(t *testing.T) {
		d := openDash(t, b)
		hostile := "action:" + strconv.FormatInt(w.hostileID, 10)
		d.Navigate(dashURL("/insights/trends", url.Values{"event": {"$pageview", action, hostile}}))
		d.until("the trends table", loaded+` && document.querySelectorAll('#trends-table tbody tr').length === 3`)
		if got := Eval[[]string](d.Tab, `[...document.querySelectorAll('#trends-form input[name=event]')].map((i) => i.value)`); !slices.Equal(got, []string{"$pageview", w.actionName, hostileAction}) {
			t.Errorf("editor shows %q, want the actions' names", got)
		}
		got := Eval[[]string](d.Tab, `[...document.querySelectorAll('#trends-table tbody tr td:first-child')].map((td) => td.textContent)`)
		if !slices.Contains(got, w.actionName) || !slices.Contains(got, hostileAction) {
			t.Errorf("legend rows %q, want the actions' names", got)
		}
		if Eval[bool](d.Tab, `window.__xss === 1 || !!document.querySelector('#main b, #main img')`) {
			t.Error("an action's name was parsed as HTML")
		}
		if txt := Eval[string](d.Tab, `document.getElementById('main').innerText`); strings.Contains(txt, "action:") {
			t.Errorf("the page shows an action id: %q", txt)
		}
		// Editing keeps the action: the URL still says action:<id>.
		d.js(`document.querySelector('#trends-form select[name=interval]').value = 'hour'; document.getElementById('trends-form').dispatchEvent(new Event('change'))`)
		d.until("the edited URL", `new URLSearchParams(location.search).getAll('event').join(',') === '$pageview,`+action+`,`+hostile+`' && new URLSearchParams(location.search).get('interval') === 'hour'`)

		// A step narrowed by a property, made in the editor: "pageview where
		// page is /pricing" (half the visitors went there).
		d.Navigate(dashURL("/insights/funnel", url.Values{"step": {"$pageview", action}}))
		d.until("the funnel", loaded+` && document.querySelectorAll('#funnel-bars .funnel-step').length === 2`)
		d.js(`(() => { const li = document.querySelector('#funnel-form .steps-list li'); li.querySelector('.step-where').open = true;
			li.querySelector('.where-prop').value = '$pathname'; li.querySelector('.where-prop').dispatchEvent(new Event('change', { bubbles: true })); })()`)
		if got := Eval[string](d.Tab, `new URLSearchParams(location.search).getAll('step').join(',')`); got != "$pageview,"+action {
			t.Errorf("the filter changed the funnel before it had a value: %q", got)
		}
		d.Do(chromedp.SendKeys(`#funnel-form .steps-list li .where-value`, "/pricing\n"))
		d.until("the filtered step", `new URLSearchParams(location.search).getAll('step').join(',') === '$pageview|$pathname==/pricing,`+action+`' && document.querySelector('#funnel-bars .funnel-step[data-step="1"][data-count="15"]')`)
		if got := Eval[string](d.Tab, `document.querySelector('#funnel-bars .funnel-step[data-step="1"] .funnel-name').textContent`); got != "1Pageview · Page is /pricing" {
			t.Errorf("filtered step named %q", got)
		}
		if got := Eval[[]string](d.Tab, `[...document.querySelectorAll('#funnel-form .steps-list li')].map((li) => li.querySelector('input[name=step]').value + '|' + li.querySelector('.where-prop').value + '|' + li.querySelector('.where-value').value)`); !slices.Equal(got, []string{"$pageview|$pathname|/pricing", w.actionName + "||"}) {
			t.Errorf("the editor shows %q", got)
		}

		d.Navigate(dashURL("/insights/funnel", url.Values{"step": {"$pageview", action, "purchase"}}))
		d.until("the funnel", loaded+` && document.querySelectorAll('#funnel-bars .funnel-step').length === 3`)
		if got := Eval[string](d.Tab, `document.querySelector('#funnel-bars .funnel-step[data-step="2"] .funnel-name').textContent`); got != "2"+w.actionName {
			t.Errorf("funnel step 2 named %q, want %q", got, w.actionName)
		}
		if got := Eval[string](d.Tab, `document.querySelectorAll('#funnel-form input[name=step]')[1].value`); got != w.actionName {
			t.Errorf("funnel editor shows %q", got)
		}
		d.Navigate(dashURL("/insights/retention", url.Values{"start_event": {action}}))
		d.until("retention", loaded+` && document.querySelector('#retention-form')`)
		if got := Eval[string](d.Tab, `document.querySelector('#retention-form input[name=start_event]').value`); got != w.actionName {
			t.Errorf("retention editor shows %q", got)
		}
		d.noErrors("action names")
	})

	t.Run("funnel drill-down", func(t *testing.T) {
		d := openDash(t, b)
		steps := url.Values{"step": {"$pageview", action, "purchase"}}
		d.Navigate(dashURL("/insights/funnel", steps))
		d.until("the funnel", loaded+` && document.querySelectorAll('#funnel-bars .funnel-step').length === 3`)
		for _, c := range []struct {
			step    int
			dropped bool
			button  string
			want    int
		}{
			{2, false, ".drill-reached", w.signups},
			{2, true, ".drill-dropped", w.signups - w.buyers},
			{1, true, ".drill-dropped", w.visitors - w.signups},
		} {
			d.click(fmt.Sprintf(`#funnel-bars .funnel-step[data-step="%d"] %s`, c.step, c.button))
			d.until("the drill-down", fmt.Sprintf(`document.querySelector('#funnel-drill[data-step="%d"][data-dropped="%v"] .person-row, #funnel-drill[data-step="%d"][data-dropped="%v"] .empty')`, c.step, c.dropped, c.step, c.dropped))
			q := url.Values{"step": steps["step"], "funnel_step": {strconv.Itoa(c.step)}, "dropped": {strconv.FormatBool(c.dropped)},
				"from": {time.Now().UTC().AddDate(0, 0, -6).Format("2006-01-02")}, "to": {time.Now().UTC().Format("2006-01-02")}, "tz": {"UTC"}}
			var res struct {
				Results []struct {
					ID          string
					DistinctIDs []string `json:"distinct_ids"`
					Properties  map[string]any
				}
				Total int
			}
			getJSON(t, api+"/funnel/persons?"+q.Encode(), &res)
			if res.Total != c.want || len(res.Results) != c.want {
				t.Errorf("step %d dropped %v: API %d persons (total %d), want %d", c.step, c.dropped, len(res.Results), res.Total, c.want)
			}
			var want []string
			for _, p := range res.Results {
				name := p.DistinctIDs[len(p.DistinctIDs)-1]
				if e, ok := p.Properties["email"].(string); ok {
					name = e
				}
				want = append(want, p.ID+"="+name+"="+p.DistinctIDs[0])
			}
			got := Eval[[]string](d.Tab, `[...document.querySelectorAll('#funnel-drill .person-row')].map((r) =>
				r.dataset.person + '=' + r.querySelector('.person-link').textContent + '=' + new URL(r.querySelector('.recordings-link').href).searchParams.get('distinct_id'))`)
			if !slices.Equal(got, want) {
				t.Errorf("step %d dropped %v: page lists %q, API %q", c.step, c.dropped, got, want)
			}
		}
		// Names are shown when persons have one.
		if n := Eval[int](d.Tab, `[...document.querySelectorAll('#funnel-drill .person-link')].filter((a) => a.textContent.endsWith('@example.com')).length`); n == 0 {
			t.Error("no person shown by email")
		}
		// The screenshot: step 2's persons.
		d.click(`#funnel-bars .funnel-step[data-step="2"] .drill-reached`)
		d.until("step 2's persons", `document.querySelectorAll('#funnel-drill[data-step="2"][data-dropped="false"] .person-row').length === `+strconv.Itoa(w.signups))
		screenshot13(t, d, "funnel")
		d.noErrors("funnel drill-down")
	})

	t.Run("saved insights and dashboards", func(t *testing.T) {
		d := openDash(t, b)
		d.Navigate(dashURL("/insights/trends", url.Values{"event": {"$pageview", action}, "interval": {"day"}}))
		d.until("trends", loaded+` && document.querySelector('#trends-chart canvas') && document.querySelector('#save-insight')`)
		d.Do(chromedp.SendKeys(`#save-insight input[name=name]`, "Views & signups"), chromedp.Click(`#save-insight button[type=submit]`))
		d.until("the saved insight's name", `document.getElementById('insight-name')?.textContent === 'Views & signups' && new URLSearchParams(location.search).get('insight')`)
		// A funnel saved too, through the API.
		fq := url.Values{"step": {"$pageview", action, "purchase"}}.Encode()
		for _, in := range [][3]string{{"Signup funnel", "funnel", fq}, {"Coming back", "retention", "retention_period=day"}, {"From the home page", "paths", "start=%2F"}} {
			if code, res := send(t, "POST", api+"/insights", []byte(fmt.Sprintf(`{"name":%q,"kind":%q,"query":%q}`, in[0], in[1], in[2])), write); code != 201 {
				t.Fatalf("saving %s: %d %s", in[0], code, res)
			}
		}
		// Reopened from the list, it has the same series.
		d.Navigate(dashURL("/dashboards", nil))
		d.until("the saved insights", loaded+` && document.querySelectorAll('#saved-insights li').length === 4`)
		d.DoAndWaitLoad(chromedp.Navigate(Eval[string](d.Tab, `document.querySelector('#saved-insights li .insight-link').href`)))
		d.until("the reopened insight", loaded+` && document.querySelectorAll('#trends-table tbody tr').length === 2 && document.getElementById('insight-name')?.textContent === 'Views & signups'`)
		if got := Eval[[]string](d.Tab, `[...document.querySelectorAll('#trends-form input[name=event]')].map((i) => i.value)`); !slices.Equal(got, []string{"$pageview", w.actionName}) {
			t.Errorf("reopened series %q", got)
		}
		if got := Eval[string](d.Tab, `document.querySelector('#trends-form select[name=interval]').value`); got != "day" {
			t.Errorf("reopened interval %q", got)
		}
		// Rename in the list.
		d.Navigate(dashURL("/dashboards", nil))
		d.until("the list", loaded+` && document.querySelector('#saved-insights li')`)
		d.js(`(() => { const f = document.querySelector('#saved-insights li .rename-form'); f.closest('details').open = true; f.querySelector('input').value = 'Views and signups'; f.requestSubmit(); })()`)
		d.until("the new name", `document.querySelector('#saved-insights li .insight-link').textContent === 'Views and signups'`)

		// A dashboard with both insights as tiles.
		d.Do(chromedp.SendKeys(`#new-dashboard input[name=name]`, "Growth"), chromedp.Click(`#new-dashboard button[type=submit]`))
		d.until("the new dashboard", loaded+` && document.getElementById('dashboard-name')?.textContent === 'Growth' && document.getElementById('add-tile')`)
		for i := 0; i < 4; i++ {
			d.js(`(() => { const s = document.getElementById('add-tile'); s.value = s.options[1].value; s.dispatchEvent(new Event('change')); })()`)
			d.until("a tile more", fmt.Sprintf(`document.querySelectorAll('#tiles .tile').length === %d && !document.querySelector('#tiles .spinner')`, i+1))
		}
		d.until("every tile drawn", `document.querySelector('#tiles .tile[data-kind="trends"] canvas') && document.querySelectorAll('#tiles .tile[data-kind="funnel"] .funnel-step').length === 3 &&
			document.querySelector('#tiles .tile[data-kind="retention"] table.retention tbody tr') && document.querySelector('#tiles .tile[data-kind="paths"] svg .node')`)
		if got := Eval[[]string](d.Tab, `[...document.querySelectorAll('#tiles .tile .tile-title')].map((a) => a.textContent)`); !slices.Equal(got, []string{"Views and signups", "Signup funnel", "Coming back", "From the home page"}) {
			t.Errorf("tiles %q", got)
		}
		if got := Eval[string](d.Tab, `document.querySelector('#tiles .tile[data-kind="funnel"] .funnel-step[data-step="3"]').dataset.count`); got != strconv.Itoa(w.buyers) {
			t.Errorf("funnel tile's last step %s, want %d", got, w.buyers)
		}
		var dashes struct {
			Results []struct {
				Name     string
				Insights []int64
			}
		}
		getJSON(t, api+"/dashboards", &dashes)
		if len(dashes.Results) != 1 || len(dashes.Results[0].Insights) != 4 {
			t.Errorf("dashboards %+v", dashes.Results)
		}
		screenshot13(t, d, "dashboard")
		// Remove a tile; delete the insight.
		d.js(`document.querySelector('#tiles .tile[data-kind="funnel"] .remove-tile').click()`)
		d.until("three tiles", `document.querySelectorAll('#tiles .tile').length === 3 && !document.querySelector('#tiles .tile[data-kind="funnel"]') && !document.querySelector('#tiles .spinner')`)
		// Rename the dashboard.
		d.js(`(() => { const f = document.querySelector('.page-head .rename-form'); f.closest('details').open = true; f.querySelector('input').value = 'Growth 2027'; f.requestSubmit(); })()`)
		d.until("the dashboard's new name", `document.getElementById('dashboard-name').textContent === 'Growth 2027'`)
		getJSON(t, api+"/dashboards", &dashes)
		if len(dashes.Results) != 1 || dashes.Results[0].Name != "Growth 2027" || len(dashes.Results[0].Insights) != 3 {
			t.Errorf("dashboards after renaming %+v", dashes.Results)
		}
		d.Navigate(dashURL("/dashboards", nil))
		d.until("the list", loaded+` && document.querySelectorAll('#saved-insights li').length === 4 && document.querySelector('#dashboards .dashboard-link')?.textContent === 'Growth 2027'`)
		d.js(`window.confirm = () => true; document.querySelector('#saved-insights li[data-id] .delete-insight').click()`)
		d.until("three insights left", `document.querySelectorAll('#saved-insights li').length === 3`)
		var ins struct{ Results []any }
		getJSON(t, api+"/insights", &ins)
		if len(ins.Results) != 3 {
			t.Errorf("%d insights after deleting one", len(ins.Results))
		}
		// Delete the dashboard: its insights stay.
		d.DoAndWaitLoad(chromedp.Navigate(Eval[string](d.Tab, `document.querySelector('#dashboards .dashboard-link').href`)))
		d.until("the dashboard", loaded+` && document.getElementById('delete-dashboard')`)
		d.js(`window.confirm = () => true; document.getElementById('delete-dashboard').click()`)
		d.until("the list without it", loaded+` && location.pathname.endsWith('/dashboards') && document.querySelector('#dashboards .empty')`)
		getJSON(t, api+"/dashboards", &dashes)
		getJSON(t, api+"/insights", &ins)
		if len(dashes.Results) != 0 || len(ins.Results) != 3 {
			t.Errorf("after deleting the dashboard: %d dashboards, %d insights", len(dashes.Results), len(ins.Results))
		}
		d.noErrors("dashboards")
	})

	t.Run("chart fixes", func(t *testing.T) {
		d := openDash(t, b)
		// A zone where it is now between 02:00 and 21:59, so that "Today"
		// has hours both before and after now.
		zone := ""
		for _, z := range []string{"UTC", "America/New_York", "Asia/Tokyo", "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Honolulu"} {
			loc, err := time.LoadLocation(z)
			if err != nil {
				continue
			}
			if hr := time.Now().In(loc).Hour(); hr >= 2 && hr <= 21 {
				zone = z
				break
			}
		}
		if _, err := chromedp.Call(d.Ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: zone}); err != nil {
			t.Fatal(err)
		}
		loc, _ := time.LoadLocation(zone)
		d.Navigate(dashURL("/insights/trends", url.Values{"period": {"today"}}))
		d.until("today's chart", loaded+` && document.querySelector('#trends-chart[data-points] canvas')`)
		hour := time.Now().In(loc).Hour()
		if got := Eval[string](d.Tab, `document.getElementById('trends-chart').dataset.points`); got != strconv.Itoa(hour+1) {
			t.Errorf("in %s at %02d h, today's chart draws %s points, want %d (none after the current hour)", zone, hour, got, hour+1)
		}
		// What a person sees when pointing at 23:00: no value.
		tip := Eval[string](d.Tab, `(() => {
			const over = document.querySelector('#trends-chart .u-over'), r = over.getBoundingClientRect();
			over.dispatchEvent(new MouseEvent('mousemove', { clientX: r.right - 1, clientY: r.top + r.height / 2, bubbles: true }));
			return document.querySelector('#trends-chart .chart-tip').textContent;
		})()`)
		if !strings.HasSuffix(tip, "–") {
			t.Errorf("the tooltip at 23:00 reads %q, want no value", tip)
		}

		// Monthly labels read as months.
		d.Navigate(dashURL("/insights/trends", url.Values{"period": {"12mo"}, "interval": {"month"}}))
		d.until("the monthly chart", loaded+` && document.querySelector('#trends-chart[data-ticks] canvas')`)
		ticks := strings.Split(Eval[string](d.Tab, `document.getElementById('trends-chart').dataset.ticks`), "|")
		month := regexp.MustCompile(`^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) 20\d\d$`)
		for _, tk := range ticks {
			if !month.MatchString(tk) {
				t.Errorf("monthly tick %q, want a month and year like %q", tk, time.Now().Format("Jan 2006"))
			}
		}
		if len(ticks) < 3 {
			t.Errorf("monthly ticks %q", ticks)
		}

		// Twelve breakdown series, twelve colours.
		d.Navigate(dashURL("/insights/trends", url.Values{"breakdown": {"plan"}}))
		d.until("12 series", loaded+` && document.querySelectorAll('#trends-table tbody tr').length === 12`)
		colors := Eval[[]string](d.Tab, `[...document.querySelectorAll('#trends-table tbody .series-dot')].map((s) => getComputedStyle(s).backgroundColor)`)
		seen := map[string]bool{}
		for _, c := range colors {
			if c == "rgba(0, 0, 0, 0)" || c == "transparent" {
				t.Errorf("a series without colour: %q", colors)
			}
			seen[c] = true
		}
		if len(seen) != 12 {
			t.Errorf("%d distinct colours for 12 series: %q", len(seen), colors)
		}
		d.noErrors("chart fixes")
	})

	t.Run("math of a property", func(t *testing.T) {
		d := openDash(t, b)
		d.Navigate(dashURL("/insights/trends", url.Values{"event": {"purchase"}}))
		d.until("trends", loaded+` && document.querySelector('#trends-table tbody tr')`)
		d.js(`(() => { const f = document.getElementById('trends-form'); f.math.value = 'sum'; f.dispatchEvent(new Event('change')); })()`)
		d.until("the property field", `new URLSearchParams(location.search).get('math') === 'sum' && !document.querySelector('#trends-form .math-prop').hidden`)
		d.Do(chromedp.SendKeys(`#trends-form input[name=math_property]`, "revenue\n"))
		d.until("the sum", loaded+` && new URLSearchParams(location.search).get('math_property') === 'revenue' && document.querySelector('#trends-table tbody tr')`)
		var tr struct{ Series []struct{ Data []float64 } }
		getJSON(t, api+"/trends?event=purchase&math=sum&math_property=revenue&from="+time.Now().UTC().AddDate(0, 0, -6).Format("2006-01-02")+"&to="+time.Now().UTC().Format("2006-01-02"), &tr)
		want := 0.0
		for _, v := range tr.Series[0].Data {
			want += v
		}
		sum := 0
		for i := 0; i < w.visitors; i++ {
			if i%5 != 0 && i%3 == 1 {
				sum += 10 + i
			}
		}
		if want != float64(sum) {
			t.Errorf("API sum %v, want %d", want, sum)
		}
		if got := Eval[string](d.Tab, `document.querySelector('#trends-table tbody tr td.num').textContent`); strings.ReplaceAll(got, ",", "") != strconv.Itoa(sum) {
			t.Errorf("the table's total %q, want %d", got, sum)
		}
		if got := Eval[string](d.Tab, `document.querySelector('#insight-result h2').textContent`); got != "Sum of revenue" {
			t.Errorf("title %q", got)
		}
		d.noErrors("math")
	})

	t.Run("csv", func(t *testing.T) {
		d := openDash(t, b)
		d.Navigate(dashURL("/events", url.Values{"filter": {"plan==plan-03"}}))
		d.until("the events", loaded+` && document.querySelector('#events-table tr.ev-row') && document.querySelector('.csv-link')`)
		href := Eval[string](d.Tab, `document.querySelector('.csv-link').href`)
		u, err := url.Parse(href)
		if err != nil || u.Path != "/analytics/api/export" || u.Query().Get("format") != "csv" || u.Query().Get("filter") != "plan==plan-03" {
			t.Fatalf("CSV link %q", href)
		}
		if Eval[string](d.Tab, `document.querySelector('.csv-link').getAttribute('download')`) == "" {
			t.Error("the CSV link does not download")
		}
		rows := fetchCSV(t, href)
		shown := Eval[int](d.Tab, `document.querySelectorAll('#events-table tr.ev-row').length`)
		if len(rows) != shown+1 || rows[0][1] != "event" || shown != 3 {
			t.Errorf("CSV has %d rows, the table %d events (want 3 and a header)", len(rows), shown)
		}
		// A one-event trend links to its events.
		d.Navigate(dashURL("/insights/trends", url.Values{"event": {"signed_up"}}))
		d.until("the trend", loaded+` && document.querySelector('#insight-result .csv-link')`)
		rows = fetchCSV(t, Eval[string](d.Tab, `document.querySelector('#insight-result .csv-link').href`))
		if len(rows) != w.signups+1 {
			t.Errorf("signed_up CSV has %d rows, want %d and a header", len(rows), w.signups)
		}
		for _, r := range rows[1:] {
			if r[1] != "signed_up" {
				t.Errorf("CSV row of %q", r[1])
			}
		}
		d.noErrors("csv")
	})
}

func fetchCSV(t *testing.T, href string) [][]string {
	t.Helper()
	res, err := http.Get(href)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %d %s %s", href, res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	rows, err := csv.NewReader(res.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// screenshot13 writes a full-page screenshot to $FIRSTPARTY_SCREENSHOTS
// (docs/screenshots when making them) or a temporary directory.
func screenshot13(t *testing.T, d *dashTab, name string) {
	t.Helper()
	dir := os.Getenv("FIRSTPARTY_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(d.Ctx, 20*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	file := filepath.Join(dir, name+".png")
	if err := os.WriteFile(file, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	checkImage(t, file, buf)
}
