package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"
)

// TestTokensAndSharesThroughCaddy: an API token and share links through a
// real Caddy with a login and an access log: the bearer call works, the
// token is not in Caddy's access log nor in the database file; a share
// link shows the overview in Chromium without login, a password-protected
// one asks first.
func TestTokensAndSharesThroughCaddy(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "guests.db")
	accessLog := filepath.Join(dir, "access.log")
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	startCaddy(t, fmt.Sprintf(testGlobal+`http://127.0.0.1:9080 {
	bind 127.0.0.1
	log {
		output file %s
		format json
	}
	analytics {
		db %s
		site share.example
		rate_limit off
		dashboard_auth admin %s
	}
	respond "page" 200
}
`, accessLog, db, hash))

	// Some traffic.
	var batch []string
	for i := 0; i < 12; i++ {
		batch = append(batch, fmt.Sprintf(`{"event":"$pageview","distinct_id":"v%d","properties":{"$current_url":"http://share.example/p%d","$session_id":"s%d"}}`, i%5, i%3, i%5))
	}
	if code, body := post(t, "/batch/", []byte(`{"api_key":"k","batch":[`+strings.Join(batch, ",")+`]}`), nil); code != 200 {
		t.Fatalf("batch: %d %s", code, body)
	}

	call := func(method, path, body string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, api+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	login := map[string]string{"Authorization": "Basic YWRtaW46cHc="} // admin:pw

	code, body := call("POST", "/tokens", `{"name":"ci","access":"read"}`, login)
	var tok struct{ Token string }
	json.Unmarshal([]byte(body), &tok)
	if code != 201 || tok.Token == "" {
		t.Fatalf("create token: %d %s", code, body)
	}
	bearer := map[string]string{"Authorization": "Bearer " + tok.Token}
	code, body = call("GET", "/stats?from=2000-01-01&to=2100-01-01", "", bearer)
	var st struct{ Pageviews, Visitors int }
	json.Unmarshal([]byte(body), &st)
	if code != 200 || st.Pageviews != 12 || st.Visitors != 5 {
		t.Fatalf("stats with the token: %d %s", code, body)
	}
	if code, body = call("POST", "/annotations", `{"date":"2026-01-01","text":"x"}`, bearer); code != 403 {
		t.Fatalf("write with a read token: %d %s", code, body)
	}

	// Shares: one open, one with a password.
	var open, locked struct{ URL string }
	code, body = call("POST", "/shares", `{}`, login)
	json.Unmarshal([]byte(body), &open)
	if code != 201 || open.URL == "" {
		t.Fatalf("share: %d %s", code, body)
	}
	code, body = call("POST", "/shares", `{"password":"open sesame"}`, login)
	json.Unmarshal([]byte(body), &locked)
	if code != 201 {
		t.Fatalf("locked share: %d %s", code, body)
	}

	b := StartBrowser(t)
	tab := b.NewTab(Isolated())
	tab.Navigate(base + open.URL)
	tab.WaitPage(`document.querySelector('[data-metric="pageviews"]')?.textContent === '12'`, 20*time.Second)
	tab.WaitPage(`[...document.querySelectorAll('.rank li')].some(li => li.textContent.includes('/p0'))`, 20*time.Second)
	if v := Eval[string](tab, `document.querySelector('[data-metric="visitors"]').textContent`); v != "5" {
		t.Fatalf("share page shows %s visitors, want 5", v)
	}
	if ex := tab.Exceptions(); len(ex) > 0 {
		t.Fatalf("share page errors: %v", ex)
	}
	// The page's own fetches of persons or events are refused.
	if s := Eval[int](tab, `fetch(location.pathname + '/api/persons').then(r => r.status)`); s != 403 {
		t.Fatalf("persons through the share link: %d", s)
	}

	tab2 := b.NewTab(Isolated())
	tab2.Navigate(base + locked.URL)
	tab2.WaitPage(`!!document.querySelector('input[type=password]')`, 20*time.Second)
	if Eval[bool](tab2, `!!document.querySelector('[data-metric]')`) {
		t.Fatal("the locked share shows numbers before the password")
	}
	tab2.Do(chromedp.SendKeys(chromedp.CSS("input[type=password]"), "open sesame"))
	tab2.DoAndWaitLoad(chromedp.Click(chromedp.CSS("button[type=submit]")))
	tab2.WaitPage(`document.querySelector('[data-metric="pageviews"]')?.textContent === '12'`, 20*time.Second)

	// The token is in neither Caddy's access log nor the database file.
	WaitFor(t, "the access log to hold the bearer call", 10*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(accessLog)
		return bytes.Contains(b, []byte("/analytics/api/stats")), fmt.Sprintf("%d bytes", len(b))
	})
	logData, _ := os.ReadFile(accessLog)
	if bytes.Contains(logData, []byte(tok.Token)) {
		t.Fatal("Caddy's access log holds the API token")
	}
	dbData, _ := os.ReadFile(db)
	if bytes.Contains(dbData, []byte(tok.Token)) || len(dbData) == 0 {
		t.Fatalf("the database file (%d bytes) holds the API token", len(dbData))
	}
}

// TestAccessCardInBrowser: the Settings page makes a token (shown once)
// that opens the API, makes a share link that opens the overview, and
// revokes the token.
func TestAccessCardInBrowser(t *testing.T) {
	db := filepath.Join(t.TempDir(), "access.db")
	startCaddy(t, config(db, ""))
	if code, body := post(t, "/batch/", []byte(`{"api_key":"k","batch":[{"event":"$pageview","distinct_id":"a","properties":{"$current_url":"http://test.example/x"}}]}`), nil); code != 200 {
		t.Fatalf("batch: %d %s", code, body)
	}
	b := StartBrowser(t)
	tab := b.NewTab(Isolated())
	tab.Navigate(base + "/analytics/settings")
	tab.WaitPage(`!!document.querySelector('#access-card #token-name')`, 20*time.Second)
	tab.Do(chromedp.SendKeys(chromedp.CSS("#token-name"), "ci <b>bold</b>"))
	tab.Do(chromedp.Click(chromedp.CSS("#access-card form button[type=submit]")))
	tab.WaitPage(`(document.querySelector('#new-token')?.textContent || '').startsWith('fpt_')`, 20*time.Second)
	token := Eval[string](tab, `document.querySelector('#new-token').textContent`)
	tab.WaitPage(`(document.querySelector('#token-list')?.textContent || '').includes('ci <b>bold</b>')`, 20*time.Second)
	if Eval[bool](tab, `!!document.querySelector('#token-list b')`) {
		t.Fatal("a token's name was rendered as HTML")
	}
	bearerGet := func() int {
		req, _ := http.NewRequest("GET", api+"/stats?from=2000-01-01&to=2100-01-01", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if c := bearerGet(); c != 200 {
		t.Fatalf("the token made in the page: %d", c)
	}

	tab.Do(chromedp.SendKeys(chromedp.CSS("#share-name"), "public"))
	tab.Do(chromedp.Click(chromedp.CSS("#access-card form:nth-of-type(2) button[type=submit]")))
	tab.WaitPage(`!!document.querySelector('#new-share')`, 20*time.Second)
	link := Eval[string](tab, `document.querySelector('#new-share').href`)
	view := b.NewTab(Isolated())
	view.Navigate(link)
	view.WaitPage(`document.querySelector('[data-metric="pageviews"]')?.textContent === '1'`, 20*time.Second)

	// Revoke the token from the page.
	tab.Do(chromedp.Click(chromedp.CSS("#token-list button")))
	WaitFor(t, "the revoked token to be refused", 10*time.Second, func() (bool, string) {
		c := bearerGet()
		return c == 401, fmt.Sprint(c)
	})
	if ex := append(tab.Exceptions(), view.Exceptions()...); len(ex) > 0 {
		t.Fatalf("page errors: %v", ex)
	}
}
