package dashboard

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// send makes a request with a JSON body from the dashboard's own origin.
func (e *env) send(method, path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// want checks a response's status and exact body.
func (e *env) want(path string, status int, body string) {
	e.t.Helper()
	w := e.do("GET", path, nil)
	if w.Code != status || strings.TrimSpace(w.Body.String()) != body {
		e.t.Errorf("GET %s: %d\n got %s\nwant %s", path, w.Code, w.Body, body)
	}
}

// reportsEnv holds, on 2026-11-23 (UTC):
//
//	a: session s1: / at 10:00, /pricing at 10:01, a click at 10:02, pageleave at 10:03
//	b: session s2: / at 11:00; identified as c after the range, c bought at 11:30
func reportsEnv(t *testing.T) *env {
	e := newEnv(t)
	d := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	hm := func(h, m int) time.Time { return d.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	e.add(
		ev("$pageview", "a", hm(10, 0), "$session_id", "s1", "$pathname", "/"),
		ev("$pageview", "a", hm(10, 1), "$session_id", "s1", "$pathname", "/pricing"),
		ev("$autocapture", "a", hm(10, 2), "$session_id", "s1", "$pathname", "/pricing", "$event_type", "click",
			"$click_x", "0.25", "$click_y", "300", "$elements_chain", `button.buy:attr__id="buy"nth-child="1"nth-of-type="1"text="Buy <now>"`),
		ev("$pageleave", "a", hm(10, 3), "$session_id", "s1", "$prev_pageview_pathname", "/pricing", "$prev_pageview_max_content", "1234"),
		ev("$pageview", "b", hm(11, 0), "$session_id", "s2", "$pathname", "/"),
		ev("purchase", "c", hm(11, 30), "plan", "pro"),
		ev("$identify", "c", hm(30, 0), "$anon_distinct_id", "b"),
	)
	return e
}

const day = "from=2026-11-23&to=2026-11-23"

func TestReportsAPI(t *testing.T) {
	e := reportsEnv(t)
	// Sessions s1 (3 minutes, not a bounce) and s2 (a bounce).
	e.want("/api/stats?"+day, 200, `{"visitors":2,"pageviews":3,"sessions":2,"bounce_rate":0.5,"avg_session_seconds":90,"views_per_session":1.5}`)
	// Filter scope: the pageviews of / pass; s1 and s2 count whole.
	e.want("/api/stats?"+day+"&filter=$pathname==/", 200, `{"visitors":2,"pageviews":2,"sessions":2,"bounce_rate":0.5,"avg_session_seconds":90,"views_per_session":1}`)
	// The next day has only c's $identify: an event, without a session.
	e.want("/api/stats?from=2026-11-24", 200, `{"visitors":1,"pageviews":0,"sessions":0,"bounce_rate":0,"avg_session_seconds":0,"views_per_session":0}`)
	e.want("/api/breakdown?"+day+"&property=$pathname", 200, `{"results":[{"value":"/","count":2,"visitors":2},{"value":"/pricing","count":2,"visitors":1}]}`)
	e.want("/api/breakdown?"+day+"&property=$pathname&event=$pageview&limit=1", 200, `{"results":[{"value":"/","count":2,"visitors":2}]}`)
	e.want("/api/breakdown?"+day+"&property=nothing", 200, `{"results":[]}`)
	e.want("/api/trends?from=2026-11-22&to=2026-11-23&event=$pageview&event=purchase&math=unique", 200,
		`{"labels":["2026-11-22","2026-11-23"],"series":[{"event":"$pageview","breakdown_value":null,"data":[0,2]},{"event":"purchase","breakdown_value":null,"data":[0,1]}]}`)
	// In Tokyo (UTC+9) b's pageview at 11:00 UTC is on the 23rd at 20:00,
	// a's at 10:00 too; the range of the 23rd in Tokyo starts at 15:00 UTC
	// on the 22nd.
	e.want("/api/trends?from=2026-11-23&to=2026-11-24&tz=Asia/Tokyo&interval=day", 200,
		`{"labels":["2026-11-23","2026-11-24"],"series":[{"event":"$pageview","breakdown_value":null,"data":[3,0]}]}`)
	e.want("/api/trends?"+day+"&breakdown=$pathname", 200,
		`{"labels":["2026-11-23"],"series":[{"event":"$pageview","breakdown_value":"/","data":[2]},{"event":"$pageview","breakdown_value":"/pricing","data":[1]}]}`)
	// b became c: the purchase follows b's pageview.
	e.want("/api/funnel?"+day+"&step=$pageview&step=purchase&window=1h", 200, `{"steps":[{"event":"$pageview","count":2},{"event":"purchase","count":1}]}`)
	e.want("/api/funnel?"+day+"&step=$pageview&step=purchase&window=29m", 200, `{"steps":[{"event":"$pageview","count":2},{"event":"purchase","count":0}]}`)
	e.want("/api/retention?from=2026-11-22&to=2026-11-23&period=day&periods=2", 200, `{"cohorts":[{"date":"2026-11-22","size":0,"values":[0,0]},{"date":"2026-11-23","size":2,"values":[2,0]}]}`)
	e.want("/api/paths?"+day, 200, `{"links":[{"source":"1_/","target":"2_/pricing","value":1}]}`)
	e.want("/api/paths?"+day+"&start=/pricing", 200, `{"links":[]}`)
	e.want("/api/heatmap?"+day+"&url=/pricing", 200, `{"points":[{"x":0.25,"y":300,"count":1}]}`)
	e.want("/api/heatmap?"+day+"&url=/pricing&type=scroll", 200, `{"points":[{"x":0,"y":0,"count":1},{"x":0,"y":100,"count":1},{"x":0,"y":200,"count":1},{"x":0,"y":300,"count":1},{"x":0,"y":400,"count":1},{"x":0,"y":500,"count":1},{"x":0,"y":600,"count":1},{"x":0,"y":700,"count":1},{"x":0,"y":800,"count":1},{"x":0,"y":900,"count":1},{"x":0,"y":1000,"count":1},{"x":0,"y":1100,"count":1},{"x":0,"y":1200,"count":1}]}`)

	for _, bad := range []string{
		"/api/stats?from=nope",
		"/api/stats?filter=x",
		"/api/stats?cohort=abc",
		"/api/stats?cohort=42",
		"/api/breakdown",
		"/api/breakdown?property=p&limit=0",
		"/api/trends?interval=fortnight",
		"/api/trends?math=max",
		"/api/trends?event=action:7",
		"/api/funnel",
		"/api/funnel?step=a&window=soon",
		"/api/retention?period=year",
		"/api/retention?periods=-1",
		"/api/paths?steps=x",
		"/api/heatmap",
		"/api/heatmap?url=/&type=hover",
		"/api/export?format=xml",
	} {
		w := e.do("GET", bad, nil)
		var body struct{ Error string }
		if w.Code != 400 || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error == "" {
			t.Errorf("%s: %d %s", bad, w.Code, w.Body)
		}
	}
}

func TestExportAPI(t *testing.T) {
	e := reportsEnv(t)
	w := e.do("GET", "/api/export?"+day+"&filter=$session_id==s1", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	lines := strings.Split(strings.TrimSuffix(w.Body.String(), "\n"), "\n")
	var names []string
	for _, l := range lines {
		var ev struct {
			Event    string
			PersonID string `json:"person_id"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.PersonID != store.PersonID("example.com", "a") {
			t.Fatalf("line %q: %v", l, err)
		}
		names = append(names, ev.Event)
	}
	if strings.Join(names, " ") != "$pageview $pageview $autocapture $pageleave" {
		t.Errorf("events %v", names)
	}

	w = e.do("GET", "/api/export?"+day+"&format=csv&filter=event==purchase", nil)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/csv") {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	rows, err := csv.NewReader(w.Body).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("%v %q", err, rows)
	}
	got := rows[1]
	got[0] = "uuid"
	want := []string{"uuid", "purchase", "c", store.PersonID("example.com", "b"), "2026-11-23T11:30:00.000Z", `{"plan":"pro"}`}
	if strings.Join(rows[0], ",") != "uuid,event,distinct_id,person_id,timestamp,properties" || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("csv %q", rows)
	}
	// Nothing in range: just the header.
	w = e.do("GET", "/api/export?from=2020-01-01&to=2020-01-02&format=csv", nil)
	if w.Code != 200 || w.Body.String() != "uuid,event,distinct_id,person_id,timestamp,properties\n" {
		t.Errorf("empty csv: %d %q", w.Code, w.Body)
	}
}

func TestActionsAndCohortsAPI(t *testing.T) {
	e := reportsEnv(t)
	w := e.send("POST", "/api/actions", `{"name":"buy click","steps":[{"event":"$autocapture","selector":"button#buy"},{"event":"purchase","url_contains":null}],"extra":"ignored"}`)
	if w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	var a struct{ ID int64 }
	json.Unmarshal(w.Body.Bytes(), &a)
	id := itoa(a.ID)
	wantAction := `{"id":` + id + `,"name":"buy click","steps":[{"event":"$autocapture","url_contains":null,"selector":"button#buy","text":null,"href":null},{"event":"purchase","url_contains":null,"selector":null,"text":null,"href":null}]}`
	if w.Body.String() != wantAction {
		t.Errorf("created:\n got %s\nwant %s", w.Body, wantAction)
	}
	e.want("/api/actions/"+id, 200, wantAction)
	e.want("/api/actions", 200, `{"results":[`+wantAction+`]}`)
	e.want("/api/trends?"+day+"&event=action:"+id, 200, `{"labels":["2026-11-23"],"series":[{"event":"action:`+id+`","breakdown_value":null,"data":[2]}]}`)
	e.want("/api/breakdown?"+day+"&property=event&event=action:"+id, 200, `{"results":[{"value":"$autocapture","count":1,"visitors":1},{"value":"purchase","count":1,"visitors":1}]}`)
	e.want("/api/funnel?"+day+"&step=$pageview&step=action:"+id, 200, `{"steps":[{"event":"$pageview","count":2},{"event":"action:`+id+`","count":2}]}`)

	if w := e.send("PUT", "/api/actions/"+id, `{"name":"buy","steps":[{"text":"Buy <now>"}]}`); w.Code != 200 || !strings.Contains(w.Body.String(), `"text":"Buy \u003cnow\u003e"`) {
		t.Errorf("update: %d %s", w.Code, w.Body)
	}
	e.want("/api/trends?"+day+"&event=action:"+id, 200, `{"labels":["2026-11-23"],"series":[{"event":"action:`+id+`","breakdown_value":null,"data":[1]}]}`)
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/api/actions", `{"name":"x","steps":[]}`, 400},
		{"POST", "/api/actions", `{"name":"x","steps":[{"selector":"a >"}]}`, 400},
		{"POST", "/api/actions", `not json`, 400},
		{"PUT", "/api/actions/999", `{"name":"x","steps":[{"event":"x"}]}`, 404},
		{"PUT", "/api/actions/zz", `{"name":"x","steps":[{"event":"x"}]}`, 404},
		{"POST", "/api/cohorts", `{"name":"x","kind":"behavioral","event":"e"}`, 400},
		{"POST", "/api/cohorts", `{"name":"x","kind":"everyone"}`, 400},
	} {
		if w := e.send(c.method, c.path, c.body); w.Code != c.status {
			t.Errorf("%s %s %s: %d %s", c.method, c.path, c.body, w.Code, w.Body)
		}
	}
	// Writes need the dashboard's origin.
	r := httptest.NewRequest("DELETE", "/api/actions/"+id, nil)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	r.Header.Set("Origin", "https://evil.example")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	if rec.Code != 403 {
		t.Errorf("cross-site delete: %d", rec.Code)
	}
	if w := e.send("DELETE", "/api/actions/"+id, ""); w.Code != 204 {
		t.Errorf("delete: %d", w.Code)
	}
	e.want("/api/actions/"+id, 404, `{"error":"not found"}`)

	w = e.send("POST", "/api/cohorts", `{"name":"buyers","kind":"behavioral","performed":"purchase","days":7}`)
	if w.Code != 201 {
		t.Fatalf("create cohort: %d %s", w.Code, w.Body)
	}
	var c struct{ ID int64 }
	json.Unmarshal(w.Body.Bytes(), &c)
	cid := itoa(c.ID)
	e.want("/api/cohorts/"+cid, 200, `{"id":`+cid+`,"name":"buyers","kind":"behavioral","event":"purchase","days":7}`)
	// b (merged into c's person) bought within 7 days of to.
	e.want("/api/stats?"+day+"&cohort="+cid, 200, `{"visitors":1,"pageviews":1,"sessions":1,"bounce_rate":1,"avg_session_seconds":0,"views_per_session":1}`)
	w = e.do("GET", "/api/cohorts/"+cid+"/persons?to=2026-11-24", nil)
	var persons struct {
		Results []struct {
			ID          string   `json:"id"`
			DistinctIDs []string `json:"distinct_ids"`
		}
		Count int
	}
	if json.Unmarshal(w.Body.Bytes(), &persons) != nil || persons.Count != 1 || len(persons.Results) != 1 ||
		persons.Results[0].ID != store.PersonID("example.com", "b") || strings.Join(persons.Results[0].DistinctIDs, ",") != "b,c" {
		t.Errorf("cohort persons: %d %s", w.Code, w.Body)
	}
	// Ten days later nobody has bought within 7 days.
	e.want("/api/cohorts/"+cid+"/persons?to=2026-12-03", 200, `{"results":[],"count":0}`)
	e.want("/api/cohorts/999/persons", 404, `{"error":"not found"}`)
	w = e.send("PUT", "/api/cohorts/"+cid, `{"name":"pro","kind":"property","property":"plan","op":"!=","value":"free"}`)
	if w.Code != 200 || w.Body.String() != `{"id":`+cid+`,"name":"pro","kind":"property","property":"plan","op":"!=","value":"free"}` {
		t.Errorf("update cohort: %d %s", w.Code, w.Body)
	}
	e.want("/api/cohorts", 200, `{"results":[{"id":`+cid+`,"name":"pro","kind":"property","property":"plan","op":"!=","value":"free"}]}`)
	if w := e.send("DELETE", "/api/cohorts/"+cid, ""); w.Code != 204 {
		t.Errorf("delete cohort: %d", w.Code)
	}
	e.want("/api/cohorts", 200, `{"results":[]}`)
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestLiveAPI(t *testing.T) {
	e := newEnv(t)
	defer func(d time.Duration) { liveKeepAlive = d }(liveKeepAlive)
	liveKeepAlive = 20 * time.Millisecond
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.h.ServeHTTP(w, r)
		if r.URL.Path == "/api/live" {
			close(done)
		}
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/live")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	rd := bufio.NewReader(resp.Body)
	line := func() string {
		l, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(l, "\n")
	}
	if l := line(); l != ": connected" {
		t.Fatalf("first line %q", l)
	}
	line()
	// Subscribed before the first line was sent: this event is streamed.
	e.add(ev("$pageview", "a", now, "$pathname", "/<x>"))
	for {
		l := line()
		if l == ": keep-alive" || l == "" {
			continue
		}
		if !strings.HasPrefix(l, "data: {") || !strings.Contains(l, `"$pathname":"/\u003cx\u003e"`) {
			t.Fatalf("event line %q", l)
		}
		break
	}
	// Keep-alive comments come while nothing happens.
	for l := line(); l != ": keep-alive"; l = line() {
	}
	resp.Body.Close()
	<-done // the handler returns once the client has gone

	e.add(ev("$pageview", "b", now.Add(-4*time.Minute)), ev("$pageview", "c", now.Add(-6*time.Minute)))
	e.want("/api/live/count", 200, `{"online":2}`)
}
