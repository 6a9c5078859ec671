package dashboard

import (
	"encoding/json"
	"net/http"

	"go.uber.org/zap"
)

func zapErr(err error) zap.Field { return zap.Error(err) }

func (h *Handler) apiSettings(w http.ResponseWriter, r *http.Request) {
	b, err := json.Marshal(h.cfg.Settings())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// serveIndex serves the dashboard's page.
func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write([]byte("<!doctype html><meta charset=utf-8><title>Firstparty</title><h1>Firstparty</h1><p>The API is under <code>api/</code>.</p>\n"))
}
