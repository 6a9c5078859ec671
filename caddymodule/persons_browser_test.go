package caddymodule_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestPersonsPagingInBrowser: the persons page says how many persons there
// are and loads the rest on demand; searching a country's name finds its
// visitors (a property derived from their events).
func TestPersonsPagingInBrowser(t *testing.T) {
	startCaddy(t, config(filepath.Join(t.TempDir(), "pp.db"), ""))
	var batch []string
	for i := 0; i < 130; i++ {
		cc, name := "FR", "France"
		if i%10 == 0 {
			cc, name = "DE", "Germany"
		}
		batch = append(batch, fmt.Sprintf(`{"event":"$pageview","distinct_id":"visitor-%03d","properties":{"$current_url":"https://test.example/","$geoip_country_code":%q,"$geoip_country_name":%q}}`, i, cc, name))
	}
	if code, resp := post(t, "/batch/", []byte(`{"batch":[`+strings.Join(batch, ",")+`]}`), nil); code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	tab := StartBrowser(t).NewTab()
	tab.Navigate(base + "/analytics/persons")
	tab.WaitPage(`document.querySelectorAll('#persons-table tbody tr').length === 100`, 15*time.Second)
	if got := Eval[string](tab, `document.getElementById('persons-count').textContent`); got != "100 of 130 persons" {
		t.Errorf("count line %q, want 100 of 130 persons", got)
	}
	tab.Do(chromedp.Click(chromedp.CSS("#persons-more")))
	tab.WaitPage(`document.querySelectorAll('#persons-table tbody tr').length === 130`, 15*time.Second)
	if hidden := Eval[bool](tab, `document.getElementById('persons-more').hidden`); !hidden {
		t.Error("Load more still shown after the last page")
	}
	ids := Eval[int](tab, `new Set([...document.querySelectorAll('#persons-table tbody tr td:first-child')].map(td => td.textContent)).size`)
	if ids != 130 {
		t.Errorf("%d distinct persons listed, want 130", ids)
	}
	tab.Navigate(base + "/analytics/persons?search=germany")
	tab.WaitPage(`document.getElementById('persons-count') && document.getElementById('persons-count').textContent === '13 of 13 matching persons'`, 15*time.Second)
}
