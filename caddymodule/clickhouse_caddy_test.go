package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store/clickhouse"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

func chBlock(c *chtest.Cluster, database string) string {
	return chBlockFlush(c, database, "50ms")
}

func chBlockFlush(c *chtest.Cluster, database, flush string) string {
	return fmt.Sprintf(`clickhouse %s %s {
			database %s
			cluster %s
			flush %s
			batch 200
		}`, c.Shards[0].URL(), c.Shards[1].URL(), database, chtest.ClusterName, flush)
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
	return pageviewAt(uuid, did, session, time.Now())
}

func pageviewAt(uuid, did, session string, at time.Time) map[string]any {
	return map[string]any{"event": "$pageview", "uuid": uuid, "timestamp": at.UTC().Format(time.RFC3339Nano),
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
	// The admin API's health shows the same, and the history files.
	var health struct {
		Databases []struct {
			History *struct {
				Dir string `json:"dir"`
			} `json:"history"`
			Shipping struct {
				ClickHouse []struct {
					URLs  []string `json:"urls"`
					Sites map[string]struct {
						Backlog   int    `json:"backlog"`
						LastError string `json:"last_error"`
					} `json:"sites"`
				} `json:"clickhouse"`
			} `json:"shipping"`
		} `json:"databases"`
	}
	getJSON(t, "http://localhost:2999/analytics/health", &health)
	if len(health.Databases) != 1 || health.Databases[0].History == nil || !strings.HasSuffix(health.Databases[0].History.Dir, "out.db.history") ||
		len(health.Databases[0].Shipping.ClickHouse) != 1 || len(health.Databases[0].Shipping.ClickHouse[0].URLs) == 0 {
		t.Fatalf("/analytics/health = %+v", health)
	}
	if st := health.Databases[0].Shipping.ClickHouse[0].Sites["test.example"]; st.Backlog <= 0 || st.LastError == "" {
		t.Fatalf("/analytics/health shipping of test.example during the outage: %+v", st)
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

// TestClickHouseTwoNodes: two Caddy processes with their own local dbs
// ship to one cluster. An anonymous visitor browses through node A; node
// B gets the $identify that links that anonymous id to a user. The merge
// B shipped applies to A's events: both dashboards count one person for
// them, the funnel from A's pageview to B's $identify reaches its second
// step, and the two dashboards give the same answers.
func TestClickHouseTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs two Caddy processes")
	}
	c := chtest.Start(t)
	bin := buildCaddy(t)
	var nodes []string
	// Node A ships its view of anon-1 (alone) well after node B shipped
	// the merge: the merge must still win.
	flush := []string{"3s", "50ms"}
	for i, port := range []int{9182, 9183} {
		dir := t.TempDir()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		cfg := fmt.Sprintf(`{
	admin off
	http_port %d
	persist_config off
}
http://%s {
	bind 127.0.0.1
	analytics {
		db %s
		site test.example
		rate_limit off
		endpoint /_f
		%s
	}
}
`, port, addr, filepath.Join(dir, fmt.Sprint("node", i, ".db")), chBlockFlush(c, "twonodes", flush[i]))
		startCaddyProc(t, bin, dir, cfg, addr)
		nodes = append(nodes, "http://"+addr)
	}
	a, b := nodes[0], nodes[1]
	earlier := time.Now().Add(-time.Minute) // the pageviews come before the $identify
	chCapture(t, a, pageviewAt("0190bbbb-0000-7000-8000-000000000001", "anon-1", "s1", earlier),
		pageviewAt("0190bbbb-0000-7000-8000-000000000002", "anon-1", "s1", earlier),
		pageviewAt("0190bbbb-0000-7000-8000-000000000003", "someone-else", "s2", earlier))
	identify := map[string]any{"event": "$identify", "uuid": "0190bbbb-0000-7000-8000-000000000004",
		"timestamp":  time.Now().UTC().Format(time.RFC3339Nano),
		"properties": map[string]any{"distinct_id": "user-1", "$anon_distinct_id": "anon-1", "$session_id": "s3"}}
	chCapture(t, b, identify, pageview("0190bbbb-0000-7000-8000-000000000005", "user-1", "s3"))
	for _, n := range nodes {
		waitFor(t, "both nodes to ship", 30*time.Second, func() bool {
			s := settingsOf(t, n+"/analytics/api")
			return s.ClickHouse.Backlog == 0 && s.ClickHouse.Shipped > 0
		})
	}
	answers := make([]string, 2)
	for i, n := range nodes {
		var st struct {
			Visitors, Pageviews, Sessions int
		}
		getJSON(t, n+"/analytics/api/stats?site=test.example", &st)
		if st.Visitors != 2 || st.Pageviews != 4 || st.Sessions != 3 {
			t.Errorf("node %d stats %+v, want 2 visitors (anon-1 and user-1 are one person), 4 pageviews, 3 sessions", i, st)
		}
		var fn struct {
			Steps []struct {
				Event string
				Count int
			}
		}
		getJSON(t, n+"/analytics/api/funnel?site=test.example&step=$pageview&step=$identify", &fn)
		if len(fn.Steps) != 2 || fn.Steps[0].Count != 3-1 || fn.Steps[1].Count != 1 {
			t.Errorf("node %d funnel %+v, want 2 then 1", i, fn.Steps)
		}
		var bd struct{ Results []map[string]any }
		getJSON(t, n+"/analytics/api/breakdown?site=test.example&property=$pathname", &bd)
		all, _ := json.Marshal([]any{st, fn, bd})
		answers[i] = string(all)
	}
	if answers[0] != answers[1] {
		t.Fatalf("the dashboards disagree:\nA %s\nB %s", answers[0], answers[1])
	}
	t.Logf("both dashboards: %s", answers[0])

	// A second device of the same user: anon-2 browses through node B and
	// its login reaches node A. Both nodes' persons and events are then
	// every node's: one person of anon-1, anon-2 and user-1 with the
	// events both nodes took.
	chCapture(t, b, pageviewAt("0190bbbb-0000-7000-8000-000000000006", "anon-2", "s4", earlier))
	chCapture(t, a, map[string]any{"event": "$identify", "uuid": "0190bbbb-0000-7000-8000-000000000007",
		"timestamp":  time.Now().UTC().Format(time.RFC3339Nano),
		"properties": map[string]any{"distinct_id": "user-1", "$anon_distinct_id": "anon-2", "$session_id": "s4"}})
	for i, n := range nodes {
		waitFor(t, "both nodes to ship", 30*time.Second, func() bool {
			s := settingsOf(t, n+"/analytics/api")
			return s.ClickHouse.Backlog == 0 && s.ClickHouse.Shipped >= int64(4-i) // 3+1 through A, 2+1 through B
		})
	}
	type person struct {
		ID          string   `json:"id"`
		DistinctIDs []string `json:"distinct_ids"`
	}
	lists := make([]string, 2)
	for i, n := range nodes {
		var st struct{ Visitors int }
		getJSON(t, n+"/analytics/api/stats?site=test.example", &st)
		if st.Visitors != 2 {
			t.Errorf("node %d: %d visitors, want 2 (anon-1, anon-2 and user-1 are one person)", i, st.Visitors)
		}
		var ps struct {
			Results []person
			Total   int
		}
		getJSON(t, n+"/analytics/api/persons?site=test.example", &ps)
		var user *person
		for j := range ps.Results {
			if slices.Contains(ps.Results[j].DistinctIDs, "user-1") {
				user = &ps.Results[j]
			}
		}
		if ps.Total != 2 || user == nil || len(user.DistinctIDs) != 3 || !slices.Contains(user.DistinctIDs, "anon-1") || !slices.Contains(user.DistinctIDs, "anon-2") {
			t.Fatalf("node %d persons %+v: want 2, one of them anon-1, anon-2 and user-1", i, ps)
		}
		var evs struct {
			Results []struct {
				UUID string `json:"uuid"`
			}
		}
		getJSON(t, n+"/analytics/api/events?site=test.example&distinct_id=anon-2", &evs)
		if len(evs.Results) != 6 {
			t.Errorf("node %d: %d events of anon-2's person, want 6 (through both nodes)", i, len(evs.Results))
		}
		var one person
		getJSON(t, n+"/analytics/api/persons/"+user.ID+"?site=test.example", &one)
		if one.ID != user.ID || len(one.DistinctIDs) != 3 {
			t.Errorf("node %d person %s: %+v", i, user.ID, one)
		}
		all, _ := json.Marshal(ps)
		lists[i] = string(all)
	}
	if lists[0] != lists[1] {
		t.Fatalf("the persons lists disagree:\nA %s\nB %s", lists[0], lists[1])
	}
}
