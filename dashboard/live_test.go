package dashboard

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// TestLiveRecent: the snapshot is the last five minutes exactly as
// /api/live/count counts them: events of the window newest first with
// their person's name, online persons, pageviews and pages.
func TestLiveRecent(t *testing.T) {
	e := newEnv(t)
	e.add(
		ev("$pageview", "old", now.Add(-5*time.Minute-time.Second), "$pathname", "/old", "$session_id", "s0"),
		ev("$pageview", "anon", now.Add(-3*time.Minute), "$pathname", "/pricing", "$session_id", "s1"),
		ev("$pageview", "bob", now.Add(-time.Minute), "$pathname", "/docs", "$session_id", "s2"),
		ev("$pageview", "bob", now.Add(-30*time.Second), "$pathname", "/docs", "$session_id", "s2"),
		ev("$pageview", "bot", now.Add(-20*time.Second), "$pathname", "/docs", store.Datacenter, "true"),
	)
	idf := ev("$identify", "ada", now.Add(-2*time.Minute), "$anon_distinct_id", "anon")
	idf.Props = append(idf.Props, store.Prop{Key: "$set", Val: store.Value{Kind: store.KindJSON, S: `{"email":"ada@example.com"}`}})
	e.add(idf)

	w := e.do("GET", "/api/live/recent", nil)
	var res struct {
		Now           string
		WindowSeconds int `json:"window_seconds"`
		Online        int
		Pageviews     int
		Pages         []store.BreakdownRow
		Results       []struct {
			Event      string
			DistinctID string `json:"distinct_id"`
			Person     string
			PersonID   string `json:"person_id"`
			Properties map[string]any
		}
	}
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &res) != nil {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var count struct{ Online int }
	json.Unmarshal(e.do("GET", "/api/live/count", nil).Body.Bytes(), &count)
	if res.Online != 2 || count.Online != 2 || res.Pageviews != 3 || res.WindowSeconds != 300 {
		t.Errorf("online %d (count %d), pageviews %d, window %d: want 2, 2, 3, 300", res.Online, count.Online, res.Pageviews, res.WindowSeconds)
	}
	var got []string
	for _, r := range res.Results {
		got = append(got, r.Event+" "+r.Person)
		if r.PersonID == "" {
			t.Errorf("%s: no person id", r.DistinctID)
		}
	}
	want := []string{"$pageview bob", "$pageview bob", "$identify ada@example.com", "$pageview ada@example.com"}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
	if len(res.Pages) != 2 || res.Pages[0].Value != "/docs" || res.Pages[0].Count != 2 || res.Pages[0].Visitors != 1 || res.Pages[1].Value != "/pricing" {
		t.Errorf("pages %+v", res.Pages)
	}
}

// TestLiveStreamNamesPersons: the SSE stream's events carry the person's
// name and id, on a copy (the published bytes are shared by every
// subscriber).
func TestLiveStreamNamesPersons(t *testing.T) {
	e := newEnv(t)
	idf := ev("$identify", "ada", now.Add(-time.Hour), "$anon_distinct_id", "anon")
	idf.Props = append(idf.Props, store.Prop{Key: "$set", Val: store.Value{Kind: store.KindJSON, S: `{"name":"Ada"}`}})
	e.add(idf)
	shared := make([]byte, 0, 4096)
	shared = append(shared, `{"uuid":"u","event":"$pageview","distinct_id":"anon","timestamp":"x","properties":{}}`...)
	full := append([]byte(nil), shared[:cap(shared)]...)
	out := e.h.liveEventPerson("example.com", shared)
	var got struct {
		Person   string
		PersonID string `json:"person_id"`
	}
	if err := json.Unmarshal(out, &got); err != nil || got.Person != "Ada" || got.PersonID == "" {
		t.Errorf("%s: %+v %v", out, got, err)
	}
	if !bytes.Equal(shared[:cap(shared)], full) {
		t.Errorf("the shared bytes were written to")
	}
	if out := e.h.liveEventPerson("example.com", []byte(`{"distinct_id":"stranger"}`)); string(out) != `{"distinct_id":"stranger","person":"stranger"}` {
		t.Errorf("unknown id: %s", out)
	}
}

// TestLiveRecentFiguresOnly: events=0 answers the figures without events.
func TestLiveRecentFiguresOnly(t *testing.T) {
	e := newEnv(t)
	e.add(ev("$pageview", "bob", now.Add(-time.Minute), "$pathname", "/docs", "$session_id", "s2"))
	w := e.do("GET", "/api/live/recent?events=0", nil)
	var res struct {
		Online  int
		Results []any
	}
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &res) != nil || res.Online != 1 || res.Results == nil || len(res.Results) != 0 {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}

// TestOnboardingAPI: the count of stored events, the site's tag and hosts;
// the latest event, named, only when asked for.
func TestOnboardingAPI(t *testing.T) {
	e := newEnv(t)
	var res struct {
		Events  int
		Snippet string
		Hosts   []string
		Latest  *struct{ Event, Person string }
	}
	get := func(q string) {
		t.Helper()
		res.Latest = nil
		w := e.do("GET", "/api/onboarding"+q, nil)
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &res) != nil {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	get("?latest=1")
	if res.Events != 0 || res.Latest != nil || res.Snippet != `<script defer src="/_f/app.js"></script>` || len(res.Hosts) != 1 || res.Hosts[0] != "example.com" {
		t.Errorf("empty site: %+v", res)
	}
	first := ev("$pageview", "ada", now.Add(-time.Minute), "$pathname", "/hello")
	first.Props = append(first.Props, store.Prop{Key: "$set", Val: store.Value{Kind: store.KindJSON, S: `{"email":"ada@example.com"}`}})
	e.add(first)
	get("")
	if res.Events != 1 || res.Latest != nil {
		t.Errorf("without latest=1: %+v", res)
	}
	get("?latest=1")
	if res.Events != 1 || res.Latest == nil || res.Latest.Event != "$pageview" || res.Latest.Person != "ada@example.com" {
		t.Errorf("after one event: %+v %+v", res, res.Latest)
	}
}
