package caddymodule_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestRetentionPeriodKeepsRange: choosing weekly cohorts on the retention
// page leaves the date range as it was, and choosing another range leaves
// the cohorts weekly (they once shared the `period` URL parameter).
func TestRetentionPeriodKeepsRange(t *testing.T) {
	startCaddy(t, config(filepath.Join(t.TempDir(), "ret.db"), ""))
	tab := StartBrowser(t).NewTab()
	tab.Navigate(base + "/analytics/insights/retention?period=30d")
	tab.WaitPage(`document.querySelector('#retention-form select[name=period_kind]') && document.getElementById('period')`, 15*time.Second)
	choose := func(sel, v string) {
		t.Helper()
		Eval[bool](tab, fmt.Sprintf(`(() => { const s = document.querySelector(%q); s.value = %q; s.dispatchEvent(new Event('change', {bubbles: true})); return true })()`, sel, v))
	}
	choose("#retention-form select[name=period_kind]", "week")
	tab.WaitPage(`new URLSearchParams(location.search).get('retention_period') === 'week'`, 10*time.Second)
	if got := Eval[string](tab, `new URLSearchParams(location.search).get('period') + ' ' + document.getElementById('period').value`); got != "30d 30d" {
		t.Errorf("after choosing weekly cohorts the range is %q, want 30d 30d", got)
	}
	choose("#period", "month")
	tab.WaitPage(`new URLSearchParams(location.search).get('period') === 'month'`, 10*time.Second)
	tab.WaitPage(`document.querySelector('#retention-form select[name=period_kind]')?.value === 'week'`, 10*time.Second)
}
