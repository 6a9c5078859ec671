package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store/clickhouse"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

func chBlock(c *chtest.Cluster, database string) string {
	return fmt.Sprintf(`clickhouse %s %s {
			database %s
			cluster %s
			flush 50ms
			batch 200
		}`, c.Shards[0].URL(), c.Shards[1].URL(), database, chtest.ClusterName)
}

// chCapture sends one batch of pageviews with the given uuids through the
// capture endpoint at baseURL and fails unless it is answered 200.
func chCapture(t *testing.T, baseURL string, evs ...map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"batch": evs})
	res, err := http.Post(baseURL+"/_f/batch/", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("capture: %d %s", res.StatusCode, b)
	}
}

func pageview(uuid, did, session string) map[string]any {
	return map[string]any{"event": "$pageview", "uuid": uuid, "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"properties": map[string]any{"distinct_id": did, "$session_id": session, "$current_url": "http://test.example/p"}}
}

type chSettings struct {
	ClickHouse struct {
		Backlog   int    `json:"backlog"`
		Shipped   int64  `json:"shipped"`
		LastError string `json:"last_error"`
	} `json:"clickhouse"`
}

func settingsOf(t *testing.T, apiURL string) chSettings {
	t.Helper()
	var s chSettings
	getJSON(t, apiURL+"/settings", &s)
	return s
}

// waitFor polls cond every 50 ms until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func chRows(t *testing.T, c *chtest.Cluster, db, q string) [][]json.RawMessage {
	t.Helper()
	cl := &clickhouse.Client{URL: c.URL(), Database: db}
	rows, err := cl.Query(context.Background(), clickhouse.Build(clickhouse.SQL(q)))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestClickHouseOutage: capture runs while one shard of the cluster is
// stopped; every request is answered 200, the backlog and the error show
// in /api/settings and the metrics; once the shard is back the backlog
// drains and ClickHouse holds every uuid exactly once.
func TestClickHouseOutage(t *testing.T) {
	c := chtest.Start(t)
	startCaddy(t, config(filepath.Join(t.TempDir(), "out.db"), chBlock(c, "outage")))
	var sent []string
	n := 0
	send := func(batches int) {
		for i := 0; i < batches; i++ {
			var evs []map[string]any
			for j := 0; j < 20; j++ {
				n++
				u := fmt.Sprintf("0190aaaa-0000-7000-8000-%012d", n)
				sent = append(sent, u)
				evs = append(evs, pageview(u, fmt.Sprint("visitor-", n%37), fmt.Sprint("sess-", n%11)))
			}
			chCapture(t, base, evs...)
		}
	}
	send(5)
	waitFor(t, "the first events to ship", 30*time.Second, func() bool {
		s := settingsOf(t, api)
		return s.ClickHouse.Backlog == 0 && s.ClickHouse.Shipped >= 100
	})
	c.Shards[1].Stop()
	send(15) // every request must be answered 200 (capture checks)
	waitFor(t, "the error to show", 30*time.Second, func() bool {
		s := settingsOf(t, api)
		return s.ClickHouse.Backlog > 0 && s.ClickHouse.LastError != ""
	})
	if v := metricValue(t, `caddy_analytics_ship_backlog{site="test.example"}`); v <= 0 {
		t.Fatalf("ship_backlog metric %v during the outage", v)
	}
	// The dashboard of this node still answers from the local log's count.
	send(5)
	if err := c.Shards[1].Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the backlog to drain", 60*time.Second, func() bool {
		return settingsOf(t, api).ClickHouse.Backlog == 0
	})
	if v := metricValue(t, `caddy_analytics_ship_backlog{site="test.example"}`); v != 0 {
		t.Fatalf("ship_backlog metric %v after draining", v)
	}
	rows := chRows(t, c, "outage", "SELECT uuid, count() FROM events GROUP BY uuid HAVING count() > 0 ORDER BY uuid")
	final := chRows(t, c, "outage", "SELECT count() FROM events FINAL")
	var got []string
	for _, r := range rows {
		var u string
		json.Unmarshal(r[0], &u)
		got = append(got, u)
	}
	sort.Strings(sent)
	if strings.Join(got, ",") != strings.Join(sent, ",") {
		t.Fatalf("ClickHouse holds %d uuids, sent %d", len(got), len(sent))
	}
	if nf, _ := strconv.Atoi(strings.Trim(string(final[0][0]), `"`)); nf != len(sent) {
		t.Fatalf("%d rows after FINAL, want %d (each uuid once)", nf, len(sent))
	}
	var st struct{ Pageviews int }
	getJSON(t, api+"/stats?site=test.example", &st)
	if st.Pageviews != len(sent) {
		t.Fatalf("dashboard pageviews %d, want %d", st.Pageviews, len(sent))
	}
}
