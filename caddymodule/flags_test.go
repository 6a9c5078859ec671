package caddymodule_test

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posthog/posthog-go"
)

// refBucket is PostHog's bucketing hash written independently of the
// module, from its definition: the first 15 hex digits of
// sha1("<key>.<distinct id><salt>"), as an integer, over 0xFFFFFFFFFFFFFFF.
func refBucket(key, id, salt string) float64 {
	sum := sha1.Sum([]byte(key + "." + id + salt))
	n, err := strconv.ParseUint(hex.EncodeToString(sum[:])[:15], 16, 64)
	if err != nil {
		panic(err)
	}
	return float64(n) / float64(0xFFFFFFFFFFFFFFF)
}

// The flags of these tests, and what the reference says about them.
const (
	flagHalf = `{"key":"half","name":"Half","active":true,"filters":{"groups":[{"properties":[],"rollout_percentage":50}],"payloads":{"true":{"tier":"half"}}}}`
	// a 34%, b 33%, c 33%; b's payload is a string, c has none.
	flagThree  = `{"key":"three","name":"Three","active":true,"filters":{"groups":[{"rollout_percentage":100}],"multivariate":{"variants":[{"key":"a","rollout_percentage":34},{"key":"b","rollout_percentage":33},{"key":"c","rollout_percentage":33}]},"payloads":{"a":{"n":1},"b":"\"bee\""}}}`
	flagPro    = `{"key":"pro-only","name":"Pro","active":true,"filters":{"groups":[{"properties":[{"key":"plan","operator":"exact","value":["pro","enterprise"],"type":"person"}]}]}}`
	flagPaused = `{"key":"paused","active":false,"filters":{"groups":[{"rollout_percentage":100}]}}`
)

func refHalf(id string) bool { return refBucket("half", id, "") <= 0.5 }

func refThree(id string) string {
	h := refBucket("three", id, "variant") * 100
	switch {
	case h < 34:
		return "a"
	case h < 67:
		return "b"
	}
	return "c"
}

// refPayload is the payload each reference value must come with.
func refPayload(key string, v any) any {
	switch {
	case key == "half" && v == true:
		return map[string]any{"tier": "half"}
	case key == "three" && v == "a":
		return map[string]any{"n": float64(1)}
	case key == "three" && v == "b":
		return "bee"
	}
	return nil
}

func distinctIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return ids
}

// checkShares fails unless half is on for 50% ± 3 and a/b/c are 34/33/33
// ± 3 of the ids.
func checkShares(t *testing.T, who string, half map[string]bool, three map[string]string) {
	t.Helper()
	on := 0
	for _, v := range half {
		if v {
			on++
		}
	}
	counts := map[string]int{}
	for _, v := range three {
		counts[v]++
	}
	n := float64(len(three))
	share := func(k int) float64 { return 100 * float64(k) / n }
	t.Logf("%s: half on for %.1f%% of %d; three a %.1f%% b %.1f%% c %.1f%%", who, share(on), len(half), share(counts["a"]), share(counts["b"]), share(counts["c"]))
	if s := 100 * float64(on) / float64(len(half)); math.Abs(s-50) > 3 {
		t.Errorf("%s: half on for %.1f%%, want 50 ± 3", who, s)
	}
	for k, want := range map[string]float64{"a": 34, "b": 33, "c": 33} {
		if s := share(counts[k]); math.Abs(s-want) > 3 {
			t.Errorf("%s: variant %s for %.1f%%, want %v ± 3", who, k, s, want)
		}
	}
}

// createFlag posts a flag through the dashboard API and returns its id.
func createFlag(t *testing.T, js string) int64 {
	t.Helper()
	code, body := send(t, "POST", api+"/flags", []byte(js), map[string]string{"Content-Type": "application/json"})
	if code != http.StatusCreated {
		t.Fatalf("creating %s: %d %s", js, code, body)
	}
	var f struct{ ID int64 }
	json.Unmarshal([]byte(body), &f)
	return f.ID
}

func flagsKey(t *testing.T) string {
	t.Helper()
	var k struct{ Key string }
	getJSON(t, api+"/flags_key", &k)
	if !strings.HasPrefix(k.Key, "phs_") {
		t.Fatalf("flags key %q", k.Key)
	}
	return k.Key
}

type flagsAnswer struct {
	Flags map[string]struct {
		Key     string
		Enabled bool
		Variant *string
		Reason  struct {
			Code           string
			ConditionIndex *int `json:"condition_index"`
		}
		Metadata struct {
			ID      int64
			Version int
			Payload *string
		}
	}
	FeatureFlags        map[string]any
	FeatureFlagPayloads map[string]string
}

func askFlags(t *testing.T, body string) flagsAnswer {
	t.Helper()
	code, resp := post(t, "/flags/?v=2", []byte(body), map[string]string{"Content-Type": "application/json"})
	var a flagsAnswer
	if code != 200 || json.Unmarshal([]byte(resp), &a) != nil {
		t.Fatalf("/flags/: %d %s", code, resp)
	}
	return a
}

// TestFlagsOverHTTP: flags made through the dashboard API are answered at
// /flags/ and /decide/ in PostHog's format, bucketed as the reference says
// for 2,000 ids; property conditions use the stored person and the
// person_properties sent; bad definitions are 400 naming the field; a
// flag whose cohort is gone evaluates false; local evaluation needs the
// key.
func TestFlagsOverHTTP(t *testing.T) {
	startCaddy(t, config(filepath.Join(t.TempDir(), "flags.db"), "token phc_flags"))
	var cfg map[string]any
	getJSON(t, endpoint+"/array/phc_flags/config", &cfg)
	if cfg["hasFeatureFlags"] != false {
		t.Errorf("hasFeatureFlags before any flag: %v", cfg["hasFeatureFlags"])
	}
	createFlag(t, flagPaused)
	getJSON(t, endpoint+"/array/phc_flags/config", &cfg)
	if cfg["hasFeatureFlags"] != false {
		t.Errorf("hasFeatureFlags with only an inactive flag: %v", cfg["hasFeatureFlags"])
	}
	halfID := createFlag(t, flagHalf)
	createFlag(t, flagThree)
	createFlag(t, flagPro)
	getJSON(t, endpoint+"/array/phc_flags/config", &cfg)
	if cfg["hasFeatureFlags"] != true {
		t.Errorf("hasFeatureFlags with active flags: %v", cfg["hasFeatureFlags"])
	}

	for js, field := range map[string]string{
		`{"key":"x","filters":{"groups":[{"properties":[{"key":"plan","operator":"resembles","value":"pro"}]}]}}`:                       "filters.groups[0].properties[0].operator",
		`{"key":"x","filters":{"multivariate":{"variants":[{"key":"a","rollout_percentage":50},{"key":"b","rollout_percentage":45}]}}}`: "filters.multivariate.variants",
		`{"key":"x","filters":{"payloads":{"true":"{\"open\": "}}}`:                                                                     "filters.payloads.true",
		`{"key":"x","filters":{"groups":[{"rollout_percentage":150}]}}`:                                                                 "filters.groups[0].rollout_percentage",
		`{"key":"half","filters":{}}`: "key",
	} {
		code, body := send(t, "POST", api+"/flags", []byte(js), nil)
		if code != 400 || !strings.Contains(body, field) {
			t.Errorf("%s: %d %s, want 400 naming %s", js, code, body, field)
		}
	}

	// 2,000 ids through the raw endpoint, each as the reference says.
	half, three := map[string]bool{}, map[string]string{}
	for _, id := range distinctIDs("raw", 2000) {
		a := askFlags(t, fmt.Sprintf(`{"token":"phc_flags","distinct_id":%q}`, id))
		h, th := a.Flags["half"], a.Flags["three"]
		if h.Enabled != refHalf(id) || a.FeatureFlags["half"] != refHalf(id) {
			t.Fatalf("%s: half %+v / %v, reference %v", id, h, a.FeatureFlags["half"], refHalf(id))
		}
		if th.Variant == nil || *th.Variant != refThree(id) || a.FeatureFlags["three"] != refThree(id) || !th.Enabled {
			t.Fatalf("%s: three %+v, reference %s", id, th, refThree(id))
		}
		if _, ok := a.Flags["paused"]; ok {
			t.Fatal("an inactive flag was answered")
		}
		if pro := a.Flags["pro-only"]; pro.Enabled || pro.Reason.Code != "no_condition_match" || a.FeatureFlags["pro-only"] != false {
			t.Fatalf("pro-only without a plan: %+v", pro)
		}
		if h.Enabled {
			if h.Reason.Code != "condition_match" || h.Reason.ConditionIndex == nil || *h.Reason.ConditionIndex != 0 || h.Metadata.ID != halfID || h.Metadata.Version != 1 ||
				h.Metadata.Payload == nil || *h.Metadata.Payload != `{"tier":"half"}` || a.FeatureFlagPayloads["half"] != `{"tier":"half"}` {
				t.Fatalf("%s: half %+v", id, h)
			}
		} else if h.Reason.Code != "out_of_rollout_bound" || h.Metadata.Payload != nil {
			t.Fatalf("%s: half off %+v", id, h)
		}
		half[id], three[id] = h.Enabled, *th.Variant
	}
	checkShares(t, "raw /flags/", half, three)

	// /decide/?v=3 gives the same values and the config.
	code, resp := post(t, "/decide/?v=3", []byte(`{"token":"phc_flags","distinct_id":"raw-7"}`), nil)
	var dec map[string]any
	json.Unmarshal([]byte(resp), &dec)
	if code != 200 || dec["featureFlags"].(map[string]any)["three"] != refThree("raw-7") || dec["hasFeatureFlags"] != true {
		t.Errorf("decide: %d %s", code, resp)
	}

	// Person properties: stored ($set through capture) and sent.
	code, _ = post(t, "/batch/", []byte(`{"api_key":"phc_flags","batch":[{"event":"$identify","distinct_id":"payer","properties":{"$set":{"plan":"Enterprise"}}}]}`), nil)
	if code != 200 {
		t.Fatal(code)
	}
	if a := askFlags(t, `{"token":"phc_flags","distinct_id":"payer"}`); !a.Flags["pro-only"].Enabled {
		t.Errorf("stored plan=Enterprise did not enable pro-only: %+v", a.Flags["pro-only"])
	}
	if a := askFlags(t, `{"token":"phc_flags","distinct_id":"payer","person_properties":{"plan":"free"}}`); a.Flags["pro-only"].Enabled {
		t.Error("sent plan=free did not override the stored plan")
	}
	if a := askFlags(t, `{"token":"phc_flags","distinct_id":"someone","person_properties":{"plan":"pro"}}`); !a.Flags["pro-only"].Enabled {
		t.Error("sent plan=pro did not enable pro-only")
	}
	if code, _ := post(t, "/flags/?v=2", []byte(`{"token":"phc_other","distinct_id":"x"}`), nil); code != 401 {
		t.Errorf("wrong token: %d", code)
	}

	// A flag whose cohort was deleted evaluates false; the others are
	// answered as before.
	code, body := send(t, "POST", api+"/cohorts", []byte(`{"name":"pros","kind":"property","property":"plan","op":"==","value":"pro"}`), nil)
	var coh struct{ ID int64 }
	json.Unmarshal([]byte(body), &coh)
	if code != 201 {
		t.Fatalf("cohort: %d %s", code, body)
	}
	createFlag(t, fmt.Sprintf(`{"key":"cohorted","active":true,"filters":{"groups":[{"properties":[{"type":"cohort","key":"id","value":%d}]}]}}`, coh.ID))
	if a := askFlags(t, `{"token":"phc_flags","distinct_id":"c1","person_properties":{"plan":"pro"}}`); !a.Flags["cohorted"].Enabled {
		t.Errorf("cohort member not matched: %+v", a.Flags["cohorted"])
	}
	if code, body := send(t, "DELETE", fmt.Sprintf("%s/cohorts/%d", api, coh.ID), nil, nil); code != 204 {
		t.Fatalf("deleting the cohort: %d %s", code, body)
	}
	a := askFlags(t, `{"token":"phc_flags","distinct_id":"c1","person_properties":{"plan":"pro"}}`)
	if a.Flags["cohorted"].Enabled || a.Flags["three"].Variant == nil {
		t.Errorf("after the cohort's deletion: %+v", a.Flags)
	}

	// Local evaluation: 401 without the key, with a wrong one and with the
	// old one after rotation.
	key := flagsKey(t)
	for _, p := range []string{"/api/feature_flag/local_evaluation?token=phc_flags&send_cohorts=true", "/flags/definitions?token=phc_flags&send_cohorts"} {
		for _, auth := range []string{"", "Bearer phs_wrong", "Bearer " + key + "x"} {
			if code, _ := send(t, "GET", endpoint+p, nil, map[string]string{"Authorization": auth}); code != 401 {
				t.Errorf("%s with %q: %d, want 401", p, auth, code)
			}
		}
		code, body := send(t, "GET", endpoint+p, nil, map[string]string{"Authorization": "Bearer " + key})
		var le struct {
			Flags []struct {
				Key     string
				Filters struct{ Payloads map[string]string }
			}
			GroupTypeMapping map[string]string `json:"group_type_mapping"`
			Cohorts          map[string]any
		}
		if code != 200 || json.Unmarshal([]byte(body), &le) != nil || len(le.Flags) != 4 || le.GroupTypeMapping == nil || le.Cohorts == nil {
			t.Fatalf("%s: %d %s", p, code, body)
		}
		for _, f := range le.Flags {
			if f.Key == "three" && (f.Filters.Payloads["a"] != `{"n":1}` || f.Filters.Payloads["b"] != `"bee"`) {
				t.Errorf("payloads not JSON strings: %s", body)
			}
		}
	}
	var rot struct{ Key string }
	code, body = send(t, "POST", api+"/flags_key/rotate", nil, nil)
	json.Unmarshal([]byte(body), &rot)
	if code != 200 || rot.Key == key || !strings.HasPrefix(rot.Key, "phs_") {
		t.Fatalf("rotate: %d %s", code, body)
	}
	if code, _ := send(t, "GET", endpoint+"/flags/definitions", nil, map[string]string{"Authorization": "Bearer " + key}); code != 401 {
		t.Errorf("old key after rotation: %d", code)
	}
	if code, _ := send(t, "GET", endpoint+"/flags/definitions", nil, map[string]string{"Authorization": "Bearer " + rot.Key}); code != 200 {
		t.Errorf("new key: %d", code)
	}
}

// TestFlagsPosthogGo: posthog-go evaluates the flags locally from
// /api/feature_flag/local_evaluation with the secret key, and remotely,
// as the reference says for 500 ids; its $feature_flag_called events are
// stored and the flag's calls per variant count them.
func TestFlagsPosthogGo(t *testing.T) {
	startCaddy(t, config(filepath.Join(t.TempDir(), "goflags.db"), ""))
	createFlag(t, flagHalf)
	threeID := createFlag(t, flagThree)
	createFlag(t, flagPro)
	key := flagsKey(t)
	local, err := posthog.NewWithConfig("phc_go", posthog.Config{Endpoint: endpoint, PersonalApiKey: key, BatchSize: 1000, Interval: time.Hour,
		DefaultFeatureFlagsPollingInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	remote, err := posthog.NewWithConfig("phc_go", posthog.Config{Endpoint: endpoint, BatchSize: 1000, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	half, three := map[string]bool{}, map[string]string{}
	for i, id := range distinctIDs("go", 1000) {
		h, err := local.GetFeatureFlag(posthog.FeatureFlagPayload{Key: "half", DistinctId: id, OnlyEvaluateLocally: true})
		if err != nil || h != refHalf(id) {
			t.Fatalf("%s: local half %v %v, reference %v", id, h, err, refHalf(id))
		}
		v, err := local.GetFeatureFlag(posthog.FeatureFlagPayload{Key: "three", DistinctId: id, OnlyEvaluateLocally: true})
		if err != nil || v != refThree(id) {
			t.Fatalf("%s: local three %v %v, reference %s", id, v, err, refThree(id))
		}
		p, err := local.GetFeatureFlagPayload(posthog.FeatureFlagPayload{Key: "three", DistinctId: id, OnlyEvaluateLocally: true})
		if want := refPayload("three", v); want != nil {
			var got any
			if err != nil || json.Unmarshal([]byte(p), &got) != nil || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s: local payload of %v: %q %v", id, v, p, err)
			}
		}
		half[id], three[id] = h.(bool), v.(string)
		if i%5 == 0 { // remote for a fifth of them: 200 requests
			rv, err := remote.GetFeatureFlag(posthog.FeatureFlagPayload{Key: "three", DistinctId: id})
			if err != nil || rv != refThree(id) {
				t.Fatalf("%s: remote three %v %v", id, rv, err)
			}
		}
	}
	checkShares(t, "posthog-go local", half, three)
	pro, err := local.GetFeatureFlag(posthog.FeatureFlagPayload{Key: "pro-only", DistinctId: "go-0", PersonProperties: posthog.NewProperties().Set("plan", "pro"), OnlyEvaluateLocally: true})
	if err != nil || pro != true {
		t.Errorf("pro-only with plan=pro, locally: %v %v", pro, err)
	}
	remote.Close()
	local.Close()

	// The $feature_flag_called events the SDK sent are stored and counted
	// per variant.
	evs := waitEvents(t, "$feature_flag_called events", has("$feature_flag_called", 100))
	called := map[string]int{}
	for _, e := range named(evs, "$feature_flag_called") {
		if e.Properties["$feature_flag"] == "three" {
			called[str(e.Properties["$feature_flag_response"])]++
		}
	}
	var tr struct {
		Series []struct {
			BreakdownValue *string `json:"breakdown_value"`
			Data           []int
		}
	}
	getJSON(t, fmt.Sprintf("%s/flags/%d/calls", api, threeID), &tr)
	fromAPI := map[string]int{}
	for _, s := range tr.Series {
		for _, n := range s.Data {
			fromAPI[*s.BreakdownValue] += n
		}
	}
	if len(called) != 3 || fmt.Sprint(called) != fmt.Sprint(fromAPI) {
		t.Errorf("calls per variant: stored %v, API %v", called, fromAPI)
	}
}

// TestFlagsPosthogNode: posthog-node evaluates remotely (/flags/) and
// locally (/flags/definitions with the secret key) as the reference says
// for 400 ids, payloads included, and person properties passed with the
// call decide property conditions.
func TestFlagsPosthogNode(t *testing.T) {
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
	startCaddy(t, config(filepath.Join(t.TempDir(), "nodeflags.db"), ""))
	createFlag(t, flagHalf)
	createFlag(t, flagThree)
	createFlag(t, flagPro)
	key := flagsKey(t)
	ids := distinctIDs("node", 1000)
	in, _ := json.Marshal(map[string]any{"ids": ids, "override": map[string]any{"pro-only": map[string]string{"plan": "enterprise"}}})
	cmd := exec.Command("node", "flags.mjs", endpoint, key, "half", "three")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var res struct {
		Remote, Local map[string]map[string]any
		LocalReady    bool
		Override      map[string]map[string]any
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !res.LocalReady {
		t.Fatal("posthog-node never loaded the definitions")
	}
	for mode, m := range map[string]map[string]map[string]any{"remote": res.Remote, "local": res.Local} {
		half, three := map[string]bool{}, map[string]string{}
		for _, id := range ids {
			got := m[id]
			if got["half"] != refHalf(id) || got["three"] != refThree(id) {
				t.Fatalf("%s %s: %v, reference half %v three %s", mode, id, got, refHalf(id), refThree(id))
			}
			for _, k := range []string{"half", "three"} {
				if want := refPayload(k, got[k]); fmt.Sprint(got[k+":payload"]) != fmt.Sprint(want) {
					t.Fatalf("%s %s: payload of %s=%v is %v, want %v", mode, id, k, got[k], got[k+":payload"], want)
				}
			}
			half[id], three[id] = got["half"].(bool), got["three"].(string)
		}
		checkShares(t, "posthog-node "+mode, half, three)
	}
	if o := res.Override["pro-only"]; o["remote"] != true || o["local"] != true || o["remoteWithout"] != false {
		t.Errorf("person properties: %v", o)
	}
}
