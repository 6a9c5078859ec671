package collector

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/firstpartyhq/firstparty/store"
)

// remoteConfig is the posthog-js remote configuration for this site. Without
// it posthog-js sends no $autocapture, so it turns on what we support:
// autocapture with the element chain as one string, gzip bodies, the /i/v0/e/
// path, and recording when `record on`.
//
// hasFlags says the site has an active feature flag: posthog-js asks
// /flags/ only when the config says so.
func (c *Collector) remoteConfig(token string, hasFlags bool) []byte {
	b := []byte(`{"token":`)
	b = store.AppendJSONString(b, token)
	b = append(b, `,"supportedCompression":["gzip","gzip-js"],"hasFeatureFlags":`...)
	b = strconv.AppendBool(b, hasFlags)
	b = append(b, `,"autocapture_opt_out":false,"autocaptureExceptions":false,"captureDeadClicks":false,"capturePerformance":false,"elementsChainAsString":true,"analytics":{"endpoint":"/i/v0/e/"},"heatmaps":false,"surveys":false,"defaultIdentifiedOnly":true,"siteApps":[],"sessionRecording":`...)
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
	cfg := c.remoteConfig(token, c.hasFlags(c.site(r)))
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
