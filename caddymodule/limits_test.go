package caddymodule_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLimitsThroughCaddy: through a real Caddy, a limits block cuts long
// values and drops surplus properties (counted in truncated_total), an
// over-long event name is dropped as too_long, and with respect_dnt a
// request carrying DNT or Sec-GPC is answered 200 and not stored (counted
// as dnt).
func TestLimitsThroughCaddy(t *testing.T) {
	startCaddy(t, config(filepath.Join(t.TempDir(), "lim.db"), `limits {
			value 100
			properties 20
		}`))
	const site = `site="test.example"`
	truncated0 := metricValue(t, `caddy_analytics_truncated_total{`+site+`}`)
	tooLong0 := metricValue(t, `caddy_analytics_events_rejected_total{reason="too_long",`+site+`}`)
	dnt0 := metricValue(t, `caddy_analytics_events_rejected_total{reason="dnt",`+site+`}`)

	props := `"$pathname":"/` + strings.Repeat("a", 5000) + `"`
	for i := 0; i < 30; i++ {
		props += fmt.Sprintf(`,"k%02d":"v"`, i)
	}
	body := `{"batch":[{"event":"big","distinct_id":"d1","properties":{` + props + `}},{"event":"` + strings.Repeat("n", 201) + `","distinct_id":"d1"}]}`
	if code, resp := post(t, "/batch/", []byte(body), nil); code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	for _, h := range []string{"DNT", "Sec-GPC"} {
		if code, resp := post(t, "/e/", []byte(`{"event":"private","distinct_id":"d2"}`), map[string]string{h: "1"}); code != 200 {
			t.Fatalf("%s: %d %s", h, code, resp)
		}
	}
	evs := events(t, "")
	if len(evs) != 1 || evs[0].Event != "big" {
		t.Fatalf("stored %v, want only the event named big", evs)
	}
	if p, _ := evs[0].Properties["$pathname"].(string); len(p) != 100 {
		t.Errorf("$pathname kept %d bytes, want 100", len(p))
	}
	if n := len(evs[0].Properties); n > 20+16 {
		t.Errorf("%d properties kept, want at most 20 sent plus enrichment", n)
	}
	if d := metricValue(t, `caddy_analytics_truncated_total{`+site+`}`) - truncated0; d != 1+11 {
		t.Errorf("truncated_total rose by %v, want 12 (one cut, eleven dropped)", d)
	}
	if d := metricValue(t, `caddy_analytics_events_rejected_total{reason="too_long",`+site+`}`) - tooLong0; d != 1 {
		t.Errorf("too_long rose by %v, want 1", d)
	}
	if d := metricValue(t, `caddy_analytics_events_rejected_total{reason="dnt",`+site+`}`) - dnt0; d != 2 {
		t.Errorf("dnt rose by %v, want 2", d)
	}
}

// TestRetentionOnReload: a retention added by `caddy reload` deletes the
// old events at once, not at the next hourly run.
func TestRetentionOnReload(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ret.db")
	startCaddy(t, config(db, ""))
	old := time.Now().Add(-40 * 24 * time.Hour).UnixMilli()
	body := fmt.Sprintf(`{"batch":[{"event":"old","distinct_id":"d","timestamp":%d},{"event":"new","distinct_id":"d"}]}`, old)
	if code, resp := post(t, "/batch/", []byte(body), nil); code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	count := func() int {
		var page struct{ Results []apiEvent }
		getJSON(t, api+"/events?limit=100&from=2020-01-01", &page)
		return len(page.Results)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d events before the reload, want 2", n)
	}
	if err := loadConfig(config(db, "retention 30d")); err != nil {
		t.Fatal(err)
	}
	// The hourly worker's first run is 10 s after the open; 5 s tells a
	// retention applied by the reload from one that waited for it.
	deadline := time.Now().Add(5 * time.Second)
	for count() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the 40-day-old event is still there 5 s after a reload set retention 30d")
		}
		time.Sleep(20 * time.Millisecond) // polling for the background deletion
	}
}

// rssAnon reads a process's anonymous resident memory in bytes.
func rssAnon(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no RssAnon in /proc status")
	return 0
}

// TestHostileValuesBoundedMemory: 300 capture requests from one client,
// each carrying one unique 1 MB $pathname, grow the resident memory of a
// real Caddy process by at most 64 MiB, and a restart does not bring them
// back (SPEC §5.1).
func TestHostileValuesBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a Caddy process")
	}
	bin := buildCaddy(t)
	dir := t.TempDir()
	addr := "127.0.0.1:9184"
	cfg := fmt.Sprintf(`{
	admin off
	http_port 9184
	skip_install_trust
	persist_config off
}
http://127.0.0.1:9184 {
	bind 127.0.0.1
	analytics {
		db %s
		site mem.example
	}
	respond "page" 200
}
`, filepath.Join(dir, "mem.db"))
	p := startCaddyProc(t, bin, dir, cfg, addr)
	postOK := func(body []byte) {
		t.Helper()
		res, err := http.Post("http://"+addr+"/_f/e/", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("capture answered %d", res.StatusCode)
		}
	}
	// Warm up: ordinary events, so the baseline includes the paths taken.
	for i := 0; i < 50; i++ {
		postOK([]byte(fmt.Sprintf(`{"event":"$pageview","distinct_id":"w%d","properties":{"$pathname":"/warm"}}`, i)))
	}
	base := rssAnon(t, p.cmd.Process.Pid)

	value := make([]byte, 1_000_000)
	start := time.Now()
	for i := 0; i < 300; i++ {
		// Rate limit: 50 a second with a burst of 200; keep under it as a
		// patient attacker would.
		if i >= 150 {
			if wait := time.Duration(i-150)*time.Second/45 - time.Since(start); wait > 0 {
				time.Sleep(wait)
			}
		}
		for j := range value {
			value[j] = 'a' + byte((i*31+j*7)%26)
		}
		copy(value, fmt.Sprintf("%06d", i))
		postOK([]byte(`{"event":"$pageview","distinct_id":"attacker","properties":{"$pathname":"/` + string(value) + `"}}`))
	}
	after := rssAnon(t, p.cmd.Process.Pid)
	t.Logf("RssAnon: %.1f MiB before, %.1f MiB after 300 × 1 MB values (+%.1f MiB)", mib(base), mib(after), mib(after-base))
	if after-base > 64<<20 {
		t.Errorf("RssAnon grew by %.1f MiB, want at most 64 MiB", mib(after-base))
	}

	// Restart: the log replays what was kept, which is the cut values.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	p2 := startCaddyProc(t, bin, dir, cfg, addr)
	res, err := http.Get("http://" + addr + "/analytics/api/stats?from=2020-01-01")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	restarted := rssAnon(t, p2.cmd.Process.Pid)
	t.Logf("RssAnon after restart: %.1f MiB (+%.1f MiB over the first process's baseline)", mib(restarted), mib(restarted-base))
	if restarted-base > 64<<20 {
		t.Errorf("after restart RssAnon is %.1f MiB above the baseline, want at most 64 MiB", mib(restarted-base))
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// TestHostFloodMakesNoSitesOrSeries: requests with thousands of distinct
// Host headers, good and bad, create no site and no metric series: sites
// come from the configuration, label values from configured sites and a
// fixed set of reasons.
func TestHostFloodMakesNoSitesOrSeries(t *testing.T) {
	startCaddy(t, config(filepath.Join(t.TempDir(), "flood.db"), ""))
	bodies := []string{`{"event":"x","distinct_id":"d"}`, `{not json`, `{"event":"","distinct_id":"d"}`}
	for i := 0; i < 3000; i++ {
		req, _ := http.NewRequest("POST", endpoint+"/e/", strings.NewReader(bodies[i%len(bodies)]))
		req.Host = fmt.Sprintf("flood-%d.example", i)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	var sites struct{ Sites []string }
	getJSON(t, api+"/sites", &sites)
	if len(sites.Sites) != 1 || sites.Sites[0] != "test.example" {
		t.Errorf("sites after the flood: %v, want [test.example]", sites.Sites)
	}
	res, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	series := 0
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_analytics_") {
			continue
		}
		series++
		if strings.Contains(line, "flood-") {
			t.Fatalf("a metric series carries a request's Host: %s", line)
		}
	}
	if series == 0 || series > 100 {
		t.Errorf("%d caddy_analytics_ series, want a handful", series)
	}
}
