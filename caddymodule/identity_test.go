package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const mergeRefused = `caddy_analytics_events_rejected_total{reason="merge_refused",site="test.example"}`

// capture sends events as one batch to the capture endpoint, as posthog-js
// does, and fails unless it is accepted.
func capture(t *testing.T, evs ...map[string]any) {
	t.Helper()
	now := time.Now().UTC()
	for i, e := range evs {
		e["timestamp"] = now.Add(time.Duration(i-len(evs)) * time.Millisecond).Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal(map[string]any{"batch": evs, "sent_at": now.Format(time.RFC3339Nano)})
	if code, body := post(t, "/batch/", b, map[string]string{"Content-Type": "application/json"}); code != 200 {
		t.Fatalf("capture: %d %s", code, body)
	}
}

func capEvent(name, did string, props map[string]any) map[string]any {
	if props == nil {
		props = map[string]any{}
	}
	props["distinct_id"] = did
	return map[string]any{"event": name, "properties": props}
}

type apiPerson struct {
	ID          string         `json:"id"`
	DistinctIDs []string       `json:"distinct_ids"`
	Properties  map[string]any `json:"properties"`
}

func person(t *testing.T, id string) apiPerson {
	t.Helper()
	var p apiPerson
	getJSON(t, api+"/persons/"+id, &p)
	return p
}

// eventsOf lists event:distinct_id of the person of did, sorted.
func eventsOf(t *testing.T, did string) []string {
	t.Helper()
	var out []string
	for _, e := range events(t, "&distinct_id="+did) {
		out = append(out, e.Event+":"+e.DistinctID)
	}
	slices.Sort(out)
	return out
}

// TestIdentityHijackRefused is issue 11's identity hijack through a real
// Caddy: user-42 is identified and has events; an unauthenticated
// $create_alias from attacker-1 naming user-42 is answered as usual but
// refused as a merge (SPEC §4) and counted; the attacker's id does not
// reach the victim's events; deleting the attacker's person leaves the
// victim whole.
func TestIdentityHijackRefused(t *testing.T) {
	startCaddy(t, config(filepath.Join(t.TempDir(), "id.db"), ""))
	before := metricValue(t, mergeRefused)
	capture(t,
		capEvent("$pageview", "anon-v", map[string]any{"$current_url": "http://test.example/login", "$session_id": "s-v"}),
		capEvent("$identify", "user-42", map[string]any{"$anon_distinct_id": "anon-v", "$set": map[string]any{"email": "victim@example.com"}}),
		capEvent("purchase", "user-42", map[string]any{"amount": 90}),
	)
	victim := []string{"$identify:user-42", "$pageview:anon-v", "purchase:user-42"}
	if got := eventsOf(t, "user-42"); !slices.Equal(got, victim) {
		t.Fatalf("victim's events before: %v", got)
	}
	capture(t,
		capEvent("$pageview", "attacker-1", map[string]any{"$current_url": "http://test.example/", "$session_id": "s-a"}),
		capEvent("$create_alias", "attacker-1", map[string]any{"alias": "user-42"}),
	)
	// A second try through the victim's anonymous id.
	capture(t, capEvent("$identify", "attacker-1", map[string]any{"$anon_distinct_id": "anon-v"}))
	if d := metricValue(t, mergeRefused) - before; d != 2 {
		t.Errorf("%s went up by %v, want 2", mergeRefused, d)
	}
	attacker := []string{"$create_alias:attacker-1", "$identify:attacker-1", "$pageview:attacker-1"}
	if got := eventsOf(t, "attacker-1"); !slices.Equal(got, attacker) {
		t.Errorf("/api/events?distinct_id=attacker-1: %v, want %v", got, attacker)
	}
	if got := eventsOf(t, "user-42"); !slices.Equal(got, victim) {
		t.Errorf("victim's events after the attack: %v", got)
	}
	if p := person(t, "attacker-1"); fmt.Sprint(p.DistinctIDs) != "[attacker-1]" || p.Properties["email"] != nil {
		t.Errorf("attacker's person %+v", p)
	}
	if p := person(t, "user-42"); fmt.Sprint(p.DistinctIDs) != "[anon-v user-42]" || p.Properties["email"] != "victim@example.com" {
		t.Errorf("victim's person %+v", p)
	}

	code, body := send(t, "DELETE", api+"/persons/attacker-1", nil, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if code/100 != 2 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if got := eventsOf(t, "attacker-1"); len(got) != 0 {
		t.Errorf("attacker's events after deleting: %v", got)
	}
	if got := eventsOf(t, "user-42"); !slices.Equal(got, victim) {
		t.Errorf("victim's events after deleting the attacker: %v", got)
	}
	if p := person(t, "anon-v"); fmt.Sprint(p.DistinctIDs) != "[anon-v user-42]" || p.Properties["email"] != "victim@example.com" {
		t.Errorf("victim's person after deleting the attacker %+v", p)
	}
}

// TestPosthogNodeAliasRule: the real posthog-node client's alias. Aliasing
// an anonymous id to a signed-in user merges them; aliasing a second,
// identified user onto the first is refused and counted.
func TestPosthogNodeAliasRule(t *testing.T) {
	requireTool(t, "node")
	npm := requireTool(t, "npm")
	dir, _ := filepath.Abs("testdata/sdk-node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "posthog-node")); err != nil {
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
	}
	startCaddy(t, config(filepath.Join(t.TempDir(), "alias.db"), ""))
	before := metricValue(t, mergeRefused)
	cmd := exec.Command("node", "alias.mjs", endpoint)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sent") {
		t.Fatalf("node: %v\n%s", err, out)
	}
	evs := events(t, "")
	libs := 0
	for _, e := range evs {
		if e.Properties["$lib"] == "posthog-node" {
			libs++
		}
	}
	if len(evs) != 7 || libs != 7 {
		t.Fatalf("%d events (%d from posthog-node), want 7: %+v\nnode said: %s", len(evs), libs, evs, out)
	}
	if p := person(t, "sdk-anon-1"); fmt.Sprint(p.DistinctIDs) != "[sdk-anon-1 sdk-user-1]" || p.Properties["email"] != "one@example.com" {
		t.Errorf("the legitimate alias did not merge: %+v", p)
	}
	if p := person(t, "sdk-user-2"); fmt.Sprint(p.DistinctIDs) != "[sdk-user-2]" || p.Properties["email"] != "two@example.com" {
		t.Errorf("the second identified user was pulled in: %+v", p)
	}
	if got := eventsOf(t, "sdk-anon-1"); !slices.Equal(got, []string{"$create_alias:sdk-user-1", "$create_alias:sdk-user-1", "$identify:sdk-user-1", "purchased:sdk-user-1", "viewed_pricing:sdk-anon-1"}) {
		t.Errorf("first user's events: %v", got)
	}
	if d := metricValue(t, mergeRefused) - before; d != 1 {
		t.Errorf("%s went up by %v, want 1", mergeRefused, d)
	}
}
