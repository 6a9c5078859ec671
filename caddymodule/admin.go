package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/firstpartyhq/firstparty/store"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI is the `admin.api.analytics` module: routes on Caddy's admin
// endpoint for the analytics databases this Caddy has open (SPEC §10).
//
//	POST /analytics/backup  {"db": file, "out": file} → {"db","out","bytes"}
//	GET  /analytics/sites   → {"databases": [{"db", "sites": [{"site","events"}]}]}
//	GET  /analytics/health  → per database: log, history, shipping
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.analytics",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/analytics/backup", Handler: caddy.AdminHandlerFunc(adminBackup)},
		{Pattern: "/analytics/sites", Handler: caddy.AdminHandlerFunc(adminSites)},
		{Pattern: "/analytics/health", Handler: caddy.AdminHandlerFunc(adminHealth)},
	}
}

var _ caddy.AdminRouter = (*AdminAPI)(nil)

// openStores lists the databases open in this process, by file.
func openStores() map[string]*store.DB {
	out := map[string]*store.DB{}
	storePool.Range(func(k, v any) bool {
		if ps, ok := v.(pooledStore); ok {
			out[k.(string)] = ps.DB
		}
		return true
	})
	return out
}

// findStore returns the open database whose file is path (compared after
// resolving symlinks); with path empty, the only open one.
func findStore(path string) (string, *store.DB, error) {
	stores := openStores()
	if path == "" {
		if len(stores) == 1 {
			for k, s := range stores {
				return k, s, nil
			}
		}
		return "", nil, fmt.Errorf("%d databases are open; name one with \"db\"", len(stores))
	}
	want := canonicalPath(path)
	for k, s := range stores {
		if k != ":memory:" && canonicalPath(k) == want {
			return k, s, nil
		}
	}
	return "", nil, fmt.Errorf("%w: %s", errNotServing, path)
}

func canonicalPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

func adminBackup(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("POST only")}
	}
	var req struct {
		DB  string `json:"db"`
		Out string `json:"out"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("body: %w", err)}
	}
	if req.Out == "" || !filepath.IsAbs(req.Out) {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New(`"out": an absolute file path is required`)}
	}
	key, s, err := findStore(req.DB)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errNotServing) {
			status = http.StatusNotFound
		}
		return caddy.APIError{HTTPStatus: status, Err: err}
	}
	if canonicalPath(req.Out) == canonicalPath(key) {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New(`"out" is the database itself`)}
	}
	start := time.Now()
	n, err := s.BackupTo(req.Out)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("backup: %w", err)}
	}
	caddy.Log().Named("analytics").Info("backup written")
	return writeAdminJSON(w, map[string]any{"db": key, "out": req.Out, "bytes": n, "took_ms": time.Since(start).Milliseconds()})
}

type adminSite struct {
	Site   string `json:"site"`
	Events int    `json:"events"`
}

func siteList(s *store.DB) []adminSite {
	sites := []adminSite{}
	for _, site := range s.Sites() {
		sites = append(sites, adminSite{site, s.Count(site)})
	}
	return sites
}

func sortedKeys(m map[string]*store.DB) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func adminSites(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("GET only")}
	}
	stores := openStores()
	type db struct {
		DB    string      `json:"db"`
		Sites []adminSite `json:"sites"`
	}
	out := []db{}
	for _, k := range sortedKeys(stores) {
		out = append(out, db{k, siteList(stores[k])})
	}
	return writeAdminJSON(w, map[string]any{"databases": out})
}

// storeErrors keeps the last background error of each open database, for
// /analytics/health.
var storeErrors sync.Map // key → lastError

type lastError struct {
	At  time.Time `json:"at"`
	Msg string    `json:"message"`
}

// noteStoreError records a background error of the database key.
func noteStoreError(key string, err error) {
	storeErrors.Store(key, lastError{time.Now().UTC(), err.Error()})
}

func adminHealth(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("GET only")}
	}
	stores := openStores()
	type logHealth struct {
		File      string     `json:"file"`
		FileBytes int64      `json:"file_bytes"`
		Events    int        `json:"events"`
		LastError *lastError `json:"last_error"`
	}
	type dbHealth struct {
		DB    string      `json:"db"`
		Sites []adminSite `json:"sites"`
		Log   logHealth   `json:"log"`
		// History is null for a store that keeps every event in the log
		// (in memory); Shipping is null without a clickhouse block.
		History  *store.HistoryHealth `json:"history"`
		Shipping map[string]any       `json:"shipping"`
	}
	out := []dbHealth{}
	for _, k := range sortedKeys(stores) {
		s := stores[k]
		h := dbHealth{DB: k, Sites: siteList(s), Log: logHealth{File: k}}
		for _, st := range h.Sites {
			h.Log.Events += st.Events
		}
		if fi, err := os.Stat(k); err == nil {
			h.Log.FileBytes = fi.Size()
		}
		if e, ok := storeErrors.Load(k); ok {
			le := e.(lastError)
			h.Log.LastError = &le
		}
		h.History = s.HistoryHealth()
		h.Shipping = shippingHealth(s, h.Sites)
		out = append(out, h)
	}
	return writeAdminJSON(w, map[string]any{"databases": out})
}

func writeAdminJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}
