package caddymodule_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFilterScopeInBrowser: after "Source is news.ycombinator.com" and
// "Page is /pricing", the overview's visitors tile shows the visitors of
// the Hacker News visits that reached /pricing (Plausible's filter scope),
// as the API answers; the Channels tab ranks the visits' channels.
func TestFilterScopeInBrowser(t *testing.T) {
	startCaddy(t, config(filepath.Join(t.TempDir(), "scope.db"), ""))
	now := time.Now().Add(-time.Hour).UnixMilli()
	var batch []string
	ev := func(name, did, sid, path, ref string, at int64) {
		props := fmt.Sprintf(`"$session_id":%q,"$current_url":"https://test.example%s"`, sid, path)
		if ref != "" {
			props += fmt.Sprintf(`,"$referrer":%q`, ref)
		}
		batch = append(batch, fmt.Sprintf(`{"event":%q,"distinct_id":%q,"timestamp":%d,"properties":{%s}}`, name, did, at, props))
	}
	// 20 visits from Hacker News; visits 0-7 go on to /pricing.
	for i := 0; i < 20; i++ {
		did, sid := fmt.Sprint("hn-", i), fmt.Sprint("hn-s", i)
		ev("$pageview", did, sid, "/", "https://news.ycombinator.com/item?id=1", now+int64(i)*1000)
		if i < 8 {
			ev("$pageview", did, sid, "/pricing", "https://test.example/", now+int64(i)*1000+30000)
		}
	}
	// 10 direct visits, 6 of them to /pricing.
	for i := 0; i < 10; i++ {
		did, sid := fmt.Sprint("d-", i), fmt.Sprint("d-s", i)
		ev("$pageview", did, sid, "/", "", now+int64(i)*1000)
		if i < 6 {
			ev("$pageview", did, sid, "/pricing", "https://test.example/", now+int64(i)*1000+30000)
		}
	}
	if code, resp := post(t, "/batch/", []byte(`{"batch":[`+strings.Join(batch, ",")+`]}`), nil); code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	filters := "filter=" + "%24entry_referring_domain%3D%3Dnews.ycombinator.com" + "&filter=" + "%24pathname%3D%3D%2Fpricing"
	var st struct {
		Visitors, Pageviews, Sessions int
		Bounce                        float64 `json:"bounce_rate"`
	}
	getJSON(t, api+"/stats?"+filters, &st)
	if st.Visitors != 8 || st.Sessions != 8 || st.Pageviews != 8 || st.Bounce != 0 {
		t.Fatalf("API stats %+v, want 8 visitors in 8 whole visits (no bounce), 8 pageviews of /pricing", st)
	}
	tab := StartBrowser(t).NewTab()
	tab.Navigate(base + "/analytics/?" + filters)
	WaitFor(t, "the visitors tile", 15*time.Second, func() (bool, string) {
		v := Eval[string](tab, `(document.querySelector('#stat-visitors .stat-value')?.textContent || '') + ' ' + (document.querySelector('#main .error')?.textContent || '') + ' ' + location.search`)
		return strings.HasPrefix(v, "8 "), v
	})
	if got := Eval[string](tab, `document.querySelector('#stat-bounce_rate .stat-value').textContent`); got != "0%" {
		t.Errorf("bounce tile %q, want 0%% (the visits are counted whole)", got)
	}
	// Channels, unfiltered: 20 Organic Social visits (Hacker News), 10 Direct.
	tab.Navigate(base + "/analytics/")
	tab.WaitPage(`document.querySelector('#panel-sources .tab[data-tab="channels"]')`, 15*time.Second)
	Eval[bool](tab, `(document.querySelector('#panel-sources .tab[data-tab="channels"]').click(), true)`)
	tab.WaitPage(`document.querySelector('#panel-sources .rank-row[data-value="Direct"]') && document.querySelectorAll('#panel-sources .rank-row').length === 2`, 15*time.Second)
	rows := Eval[[]string](tab, `[...document.querySelectorAll('#panel-sources .rank-row')].map((r) => r.dataset.value + '=' + r.querySelector('.rank-num').textContent)`)
	if want := []string{"Organic Social=" + strconv.Itoa(20), "Direct=10"}; fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("channels %v, want %v", rows, want)
	}
}
