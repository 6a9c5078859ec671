package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// TestRecorderBuildUpToDate rebuilds the recording chunk with node and
// checks that the committed r.js, r.js.gz and r.js.br are what
// recorder/src/recorder.js and the locked rrweb build to.
func TestRecorderBuildUpToDate(t *testing.T) {
	checkBuild(t, "recorder", filepath.Join("node_modules", "@rrweb", "record"))
}

// TestRecorderChunk: r.js is rrweb's recorder with the glue, and it is
// served beside the snippet like it: precompressed, ETag, cached.
func TestRecorderChunk(t *testing.T) {
	t.Logf("r.js: %d B, gzip %d B, brotli %d B, version %s", len(recorderJS), len(recorderGzip), len(recorderBrotli), RecorderVersion)
	zr, err := gzip.NewReader(bytes.NewReader(recorderGzip))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(plain, recorderJS) {
		t.Fatalf("r.js.gz is not r.js gzipped (%v)", err)
	}
	if len(recorderBrotli) >= len(recorderGzip) {
		t.Errorf("brotli file (%d B) not smaller than gzip (%d B)", len(recorderBrotli), len(recorderGzip))
	}
	for _, want := range []string{"maskAllInputs", "firstparty", "$snapshot", "/s/", "ph-no-capture", "data-fp-mask", "takeFullSnapshot"} {
		if !bytes.Contains(recorderJS, []byte(want)) {
			t.Errorf("r.js lacks %q", want)
		}
	}
	// The snippet loads it and offers the ids through its hook.
	for _, want := range []string{"/r.js", "_r:"} {
		if !bytes.Contains(snippetJS, []byte(want)) {
			t.Errorf("app.js lacks %q", want)
		}
	}

	h := SnippetHandler{Name: "app.js", Recorder: "r.js"}
	get := func(target, ae, inm string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", target, nil)
		r.Header.Set("Accept-Encoding", ae)
		if inm != "" {
			r.Header.Set("If-None-Match", inm)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := get("/r.js", "gzip, br", "")
	if w.Code != 200 || w.Header().Get("Content-Encoding") != "br" || !bytes.Equal(w.Body.Bytes(), recorderBrotli) || w.Header().Get("Cache-Control") != snippetCacheUnversioned {
		t.Fatalf("r.js: %d %v", w.Code, w.Header())
	}
	etag := w.Header().Get("ETag")
	if !strings.Contains(etag, RecorderVersion) || strings.Contains(etag, SnippetVersion) {
		t.Errorf("r.js ETag %q", etag)
	}
	if w := get("/r.js", "gzip, br", etag); w.Code != 304 {
		t.Errorf("If-None-Match: %d", w.Code)
	}
	if w := get("/r.js?v="+RecorderVersion, "gzip", ""); w.Header().Get("Cache-Control") != snippetCacheUnversioned {
		t.Errorf("r.js under its own hash, not the tag's version, cached for long: %v", w.Header())
	}
	if w := get("/r.js?v="+SnippetVersion, "gzip", ""); w.Header().Get("Cache-Control") != snippetCacheVersioned || !bytes.Equal(w.Body.Bytes(), recorderGzip) {
		t.Errorf("versioned gzip r.js: %v", w.Header())
	}
	if w := get("/r.js", "", ""); !bytes.Equal(w.Body.Bytes(), recorderJS) || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/javascript") {
		t.Errorf("plain r.js: %v", w.Header())
	}
	if w := (SnippetHandler{Name: "app.js"}); true {
		r := httptest.NewRequest("GET", "/r.js", nil)
		rec := httptest.NewRecorder()
		w.ServeHTTP(rec, r)
		if rec.Code != 404 {
			t.Errorf("r.js without a Recorder name: %d", rec.Code)
		}
	}
}

// TestRemoteConfigSampleRate: `record on 25%` reaches posthog-js as
// sessionRecording.sampleRate, as PostHog sends it (a string).
func TestRemoteConfigSampleRate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want any
	}{
		{Config{Record: true, RecordSample: 0.25}, "0.25"},
		{Config{Record: true}, nil},
		{Config{Record: false, RecordSample: 0.5}, false},
	} {
		f := newFixture(t, c.cfg)
		code, body := f.do(req{method: "GET", path: "/array/phc_x/config"})
		var cfg map[string]any
		if code != 200 || json.Unmarshal([]byte(body), &cfg) != nil {
			t.Fatalf("%d %s", code, body)
		}
		sr := cfg["sessionRecording"]
		if m, ok := sr.(map[string]any); ok {
			if m["sampleRate"] != c.want || m["endpoint"] != "/s/" {
				t.Errorf("%+v: sessionRecording %v", c.cfg, sr)
			}
		} else if sr != c.want {
			t.Errorf("%+v: sessionRecording %v", c.cfg, sr)
		}
	}
}

// TestRecordingGzipMutations: posthog-js (cv "2024-10") also compresses the
// texts, attributes, removes and adds of mutation snapshots, each a gzip
// string; they are stored decoded, and an event with a part that does not
// decode is dropped (the masker cannot see what it holds).
func TestRecordingGzipMutations(t *testing.T) {
	f := newFixture(t, Config{})
	latin := func(s string) string {
		var r []rune
		for _, b := range gz([]byte(s)) {
			r = append(r, rune(b))
		}
		j, _ := json.Marshal(string(r))
		return string(j)
	}
	body := `[{"event":"$snapshot","properties":{"$session_id":"m","$window_id":"w","distinct_id":"d","$snapshot_data":[
	  {"type":2,"timestamp":1763999999999,"data":{"node":{"type":0,"id":1,"childNodes":[{"type":3,"id":4,"textContent":"hi"}]}}},
	  {"type":3,"cv":"2024-10","timestamp":1764000000000,"data":{"source":0,"texts":` + latin(`[{"id":4,"value":"hello"}]`) + `,"attributes":` + latin(`[]`) + `,"removes":` + latin(`[{"parentId":1,"id":9}]`) + `,"adds":` + latin(`[{"parentId":1,"nextId":null,"node":{"type":3,"textContent":"added","id":10}}]`) + `}},
	  {"type":3,"cv":"2024-10","timestamp":1764000000001,"data":{"source":0,"texts":"not gzip","attributes":[],"removes":[],"adds":[]}}]}}]`
	if code, resp := f.do(req{path: "/s/", body: []byte(body)}); code != 200 {
		t.Fatalf("%d %s", code, resp)
	}
	data, err := f.db.Recording(context.Background(), "example.com", "m")
	if err != nil {
		t.Fatal(err)
	}
	var evs []map[string]any
	if err := json.Unmarshal(data, &evs); err != nil || len(evs) != 2 {
		t.Fatalf("%v %s", err, data)
	}
	d := evs[1]["data"].(map[string]any)
	if _, ok := evs[1]["cv"]; ok || fmt.Sprint(d["texts"]) != "[map[id:4 value:hello]]" || fmt.Sprint(d["removes"]) != "[map[id:9 parentId:1]]" ||
		!strings.Contains(fmt.Sprint(d["adds"]), "added") || fmt.Sprint(d["attributes"]) != "[]" || d["source"] != float64(0) {
		t.Errorf("mutation not decoded: %s", data)
	}
	if strings.Contains(string(data), "not gzip") || evs[0]["type"] != float64(2) {
		t.Errorf("an undecodable event was stored: %s", data)
	}
}
