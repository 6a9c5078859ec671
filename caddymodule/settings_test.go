package caddymodule_test

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstpartyhq/firstparty/collector"
	"github.com/firstpartyhq/firstparty/tools/adblock"
)

// TestEndpointRandom: `endpoint random` serves everything under the
// prefix derived from the site id, and the snippet tag points there with the
// snippet's content hash as its version.
func TestEndpointRandom(t *testing.T) {
	startCaddy(t, config(filepath.Join(t.TempDir(), "rnd.db"), "endpoint random"))
	prefix := adblock.RandomEndpoint("test.example")
	if prefix == adblock.DefaultEndpoint || len(prefix) != 6 {
		t.Fatalf("RandomEndpoint = %q", prefix)
	}
	var snip struct{ HTML string }
	getJSON(t, api+"/snippet", &snip)
	wantSrc := `src="` + prefix + "/app.js?v=" + collector.SnippetVersion + `"`
	if !strings.Contains(snip.HTML, wantSrc) || !strings.Contains(snip.HTML, `data-api="`+prefix+`"`) {
		t.Fatalf("snippet tag %q, want %s", snip.HTML, wantSrc)
	}
	res, err := http.Get(base + prefix + "/app.js?v=" + collector.SnippetVersion)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("snippet under %s: %d %v", prefix, res.StatusCode, res.Header)
	}
	code, body := postTo(t, base+prefix+"/e/", `{"event":"random_prefix","distinct_id":"r"}`)
	if code != 200 {
		t.Fatalf("capture under %s: %d %s", prefix, code, body)
	}
	if evs := events(t, ""); len(evs) != 1 || evs[0].Event != "random_prefix" {
		t.Fatalf("events %+v", evs)
	}
	if res, _ := http.Get(endpoint + "/app.js"); res == nil || res.StatusCode == 200 && strings.Contains(res.Header.Get("Content-Type"), "javascript") {
		t.Errorf("the default endpoint still serves the snippet")
	}
}

func postTo(t *testing.T, url, body string) (int, string) {
	t.Helper()
	res, err := http.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b := new(strings.Builder)
	_, _ = io.Copy(b, res.Body)
	return res.StatusCode, b.String()
}
