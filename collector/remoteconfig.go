package collector

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"

	"github.com/firstpartyhq/firstparty/store"
)

// remoteConfig is the posthog-js remote configuration for this site. Without
// it posthog-js sends no $autocapture, so it turns on what we support:
// autocapture with the element chain as one string, gzip bodies, the /i/v0/e/
// path, and recording when `record on`.
func (c *Collector) remoteConfig(token string) []byte {
	b := []byte(`{"token":`)
	b = store.AppendJSONString(b, token)
	b = append(b, `,"supportedCompression":["gzip","gzip-js"],"hasFeatureFlags":false,"autocapture_opt_out":false,"autocaptureExceptions":false,"captureDeadClicks":false,"capturePerformance":false,"elementsChainAsString":true,"analytics":{"endpoint":"/i/v0/e/"},"heatmaps":false,"surveys":false,"defaultIdentifiedOnly":true,"siteApps":[],"sessionRecording":`...)
	if c.cfg.Record {
		b = append(b, `{"endpoint":"/s/","consoleLogRecordingEnabled":false,"recorderVersion":"v2","sampleRate":`...)
		// PostHog sends the rate as a string ("0.25"); posthog-js parses it
		// and samples per session id.
		if r := c.cfg.RecordSample; r > 0 && r < 1 {
			b = store.AppendJSONString(b, strconv.FormatFloat(r, 'f', -1, 64))
		} else {
			b = append(b, "null"...)
		}
		b = append(b, `,"minimumDurationMilliseconds":null,"linkedFlag":null,"networkPayloadCapture":null,"urlTriggers":[],"urlBlocklist":[],"eventTriggers":[],"scriptConfig":null}`...)
	} else {
		b = append(b, "false"...)
	}
	return append(b, '}')
}

// serveConfig answers GET /array/<token>/config.js (a script setting
// window._POSTHOG_REMOTE_CONFIG[token]) and /array/<token>/config (JSON).
func (c *Collector) serveConfig(w http.ResponseWriter, r *http.Request, rest string) {
	token, file, ok := strings.Cut(rest, "/")
	if !ok || token == "" {
		http.NotFound(w, r)
		return
	}
	cfg := c.remoteConfig(token)
	w.Header().Set("Cache-Control", "public, max-age=300")
	switch strings.TrimSuffix(file, "/") {
	case "config":
		writeJSON(w, http.StatusOK, cfg)
	case "config.js":
		// Escaped JSON is valid JavaScript; AppendJSONString escapes <, >,
		// & and the line separators, so the token cannot end the script.
		js := []byte(`(function(){var w=window;w._POSTHOG_REMOTE_CONFIG=w._POSTHOG_REMOTE_CONFIG||{};w._POSTHOG_REMOTE_CONFIG[`)
		js = store.AppendJSONString(js, token)
		js = append(js, `]={config:`...)
		js = append(js, cfg...)
		js = append(js, `,siteApps:[]};})();`...)
		w.Header().Set("Content-Type", "application/javascript; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		w.Write(js)
	default:
		http.NotFound(w, r)
	}
}

// serveFlags answers /decide/ and /flags/ with a valid answer that has no
// flags: the SDKs accept it and go on capturing.
func (c *Collector) serveFlags(w http.ResponseWriter, r *http.Request, decide bool) {
	if r.Method == http.MethodPost {
		// Read (and bound) the body so keep-alive works; its content does
		// not change an answer without flags.
		buf := bufPool.Get().(*bytes.Buffer)
		buf.Reset()
		_ = readBody(r, c.cfg.MaxBody, buf)
		bufPool.Put(buf)
	}
	b := []byte(`{"flags":{},"featureFlags":{},"featureFlagPayloads":{},"errorsWhileComputingFlags":false,"quotaLimited":[],"requestId":`)
	b = store.AppendJSONString(b, store.NewUUID(c.now()))
	if decide || r.URL.Query().Get("config") == "true" {
		cfg := c.remoteConfig(c.cfg.Token)
		// The decide answer carries the remote config fields at its top level.
		b = append(b, ',')
		b = append(b, cfg[1:len(cfg)-1]...)
		b = append(b, `,"config":{"enable_collect_everything":true}`...)
	}
	b = append(b, '}')
	writeJSON(w, http.StatusOK, b)
}
