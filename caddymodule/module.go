// Package caddymodule is Firstparty's Caddy module: the `analytics` HTTP
// handler. It serves the snippet and the capture endpoints under `endpoint`,
// the dashboard under `dashboard`, optionally injects the snippet into HTML
// passing through, and hands every other request to the next handler.
package caddymodule

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/firstpartyhq/firstparty/collector"
	"github.com/firstpartyhq/firstparty/dashboard"
	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse"
	"github.com/firstpartyhq/firstparty/tools/adblock"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the handler's settings.
const (
	DefaultDashboard = "/analytics"
	DefaultMaxBody   = 1 << 20
	DefaultRateLimit = 50
	DefaultDBName    = "analytics.db"

	// EndpointRandom as the endpoint asks for a per-deployment prefix.
	EndpointRandom = "random"
)

// Account is a dashboard login.
type Account struct {
	// Username is the login name.
	Username string `json:"username"`
	// Hash is the bcrypt hash of the password, as `caddy hash-password`
	// prints it.
	Hash string `json:"hash"`
}

// Handler is the `analytics` handler: privacy-first product analytics that
// speaks PostHog's capture protocol, served from the site's own origin.
type Handler struct {
	// DB is the buntdb file events are stored in; ":memory:" keeps them in
	// memory only. Site blocks naming the same file share one open
	// database. Default: analytics/analytics.db under Caddy's data directory.
	DB string `json:"db,omitempty"`

	// Site is the id events are stored under; required. The Caddyfile
	// adapter defaults it to the first concrete host of the site block. The
	// request's Host never names a site (SPEC §5.1).
	Site string `json:"site,omitempty"`

	// Hosts are the site block's own host names (the Caddyfile adapter
	// fills them in). Without DashboardAuth the dashboard answers only
	// requests whose Host is loopback or one of these.
	Hosts []string `json:"hosts,omitempty"`

	// GeoIP is a GeoIP2/GeoLite2 City or Country database. Default: the
	// embedded IP-to-country database (countries only).
	GeoIP string `json:"geoip,omitempty"`

	// Endpoint is the path prefix of the snippet and the capture endpoints,
	// or "random" for a stable random-looking prefix derived from the site
	// id (five characters alternating letter and digit, like /k3x9q).
	// Default: /_f, chosen to pass ad-block filter lists.
	Endpoint string `json:"endpoint,omitempty"`

	// Dashboard is the path prefix of the dashboard and its API; "off"
	// disables it. Default: /analytics.
	Dashboard string `json:"dashboard,omitempty"`

	// DashboardAuth are the logins allowed into the dashboard. Without any,
	// the dashboard answers loopback clients only.
	DashboardAuth []Account `json:"dashboard_auth,omitempty"`

	// Inject puts the snippet tag into HTML responses passing through.
	Inject bool `json:"inject,omitempty"`

	// Record turns session recording on. Default: off.
	Record bool `json:"record,omitempty"`

	// RecordSample is the fraction of sessions recorded when Record is on,
	// 0 < r <= 1; each session is in or out as a whole. 0 means 1 (every
	// session).
	RecordSample float64 `json:"record_sample,omitempty"`

	// Persistence is how the snippet keeps the visitor id: localstorage,
	// cookie (first-party) or memory (cookieless). Default: localstorage.
	Persistence string `json:"persistence,omitempty"`

	// RespectDNT makes browsers that send Do Not Track or Global Privacy
	// Control send nothing. Default: true.
	RespectDNT *bool `json:"respect_dnt,omitempty"`

	// StoreIP keeps the client IP with each event. Default: false; the IP
	// is used for GeoIP and dropped.
	StoreIP bool `json:"store_ip,omitempty"`

	// Retention is how long events are kept; 0 keeps them forever.
	Retention caddy.Duration `json:"retention,omitempty"`

	// Sync is the fsync policy of the database: always or everysecond.
	// Default: everysecond. Either way an event is written before it is
	// acknowledged.
	Sync string `json:"sync,omitempty"`

	// Token, when set, rejects events whose api_key/token differs.
	Token string `json:"token,omitempty"`

	// MaxBody bounds a capture request body in bytes, before and after
	// decompression. Default: 1 MiB.
	MaxBody int64 `json:"max_body,omitempty"`

	// RateLimit is the capture requests a second allowed per client IP, with
	// a burst of four times that; a batch counts as one request. Default:
	// 50; a negative value disables the limit.
	RateLimit float64 `json:"rate_limit,omitempty"`

	// CountServer stores a server pageview for every HTML page served
	// with inject (and every 404/410 page), and feed fetches, so visitors
	// without the snippet are counted once too (SPEC §8). Default: on when
	// inject is on.
	CountServer *bool `json:"count_server,omitempty"`

	// Downloads are file extensions (".pdf") whose full GET responses are
	// stored as $download events.
	Downloads []string `json:"downloads,omitempty"`

	// Limits bound what one event and one session can make the server
	// keep. Defaults: value 2KiB, properties 300, recording 20MiB,
	// recordings 2GiB.
	Limits Limits `json:"limits,omitzero"`

	// ClickHouse ships events to ClickHouse and answers reports from it
	// (SPEC §7).
	ClickHouse *ClickHouse `json:"clickhouse,omitempty"`

	countServer bool // CountServer resolved
	watching    bool // responses are watched for server events

	store     *store.DB
	ch        *clickhouse.Backend // with a clickhouse block
	chKey     string
	storeKey  string
	geo       *collector.GeoLookup
	collector *collector.Collector
	dashboard *dashboard.Handler
	inject    *injector
	logger    *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.analytics",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets defaults, opens (or shares) the store and builds the
// collector and the dashboard.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	switch h.Endpoint {
	case "":
		h.Endpoint = adblock.DefaultEndpoint
	case EndpointRandom:
		seed := h.Site
		if seed == "" {
			seed = h.DB
		}
		h.Endpoint = adblock.RandomEndpoint(seed)
	}
	h.Endpoint = "/" + strings.Trim(h.Endpoint, "/")
	if h.Dashboard == "" {
		h.Dashboard = DefaultDashboard
	}
	if h.Dashboard != "off" {
		h.Dashboard = "/" + strings.Trim(h.Dashboard, "/")
	}
	if h.Persistence == "" {
		h.Persistence = "localstorage"
	}
	if h.RespectDNT == nil {
		t := true
		h.RespectDNT = &t
	}
	if h.Sync == "" {
		h.Sync = string(store.SyncEverySecond)
	}
	if h.MaxBody == 0 {
		h.MaxBody = DefaultMaxBody
	}
	h.countServer = h.Inject
	if h.CountServer != nil {
		h.countServer = *h.CountServer
	}
	for i, d := range h.Downloads {
		h.Downloads[i] = "." + strings.TrimPrefix(strings.ToLower(d), ".")
	}
	h.watching = h.countServer || len(h.Downloads) > 0
	if h.RateLimit == 0 {
		h.RateLimit = DefaultRateLimit
	}
	if h.DB == "" {
		h.DB = filepath.Join(caddy.AppDataDir(), "analytics", DefaultDBName)
	}
	if err := h.Validate(); err != nil {
		return err
	}

	st, key, err := openStore(h.DB, store.SyncPolicy(h.Sync), h.logger)
	if err != nil {
		return err
	}
	h.store, h.storeKey = st, key
	if h.Site != "" {
		st.AddSite(h.Site)
	}
	if h.Site != "" {
		// Every (re)load applies the configured retention at once, and a
		// retention taken out of the configuration stops deleting.
		st.SetRetention(h.Site, time.Duration(h.Retention))
	}

	var st2 store.Store
	if st2, err = h.provisionClickHouse(ctx, st); err != nil {
		return err
	}

	h.geo, err = collector.OpenGeo(h.GeoIP)
	if err != nil {
		return fmt.Errorf("analytics geoip: %w", err)
	}

	dc, err := datacenter()
	if err != nil {
		return fmt.Errorf("analytics: hosting networks table: %w", err)
	}
	m := provisionMetrics(ctx)
	rate := h.RateLimit
	if rate < 0 {
		rate = 0
	}
	h.collector = collector.New(collector.Config{
		Site:         h.Site,
		Token:        h.Token,
		MaxBody:      h.MaxBody,
		RateLimit:    rate,
		StoreIP:      h.StoreIP,
		Record:       h.Record,
		RecordSample: h.RecordSample,
		RespectDNT:   *h.RespectDNT,
		Limits:       h.Limits.collector(),
	}, st2, collector.Options{
		Geo:        h.geo,
		UA:         sharedUAParser,
		Metrics:    m,
		ClientIP:   clientIP,
		Datacenter: dc.Contains,
	})
	h.collector.Snippet = collector.SnippetHandler{Name: adblock.DefaultSnippetName, Recorder: adblock.RecorderChunkName}
	h.inject = newInjector(h.snippetTag(h.Site), h.Endpoint+"/"+adblock.DefaultSnippetName)

	if h.Dashboard != "off" {
		accounts := make([]dashboard.Account, len(h.DashboardAuth))
		for i, a := range h.DashboardAuth {
			accounts[i] = dashboard.Account{Username: a.Username, Hash: []byte(a.Hash)}
		}
		h.dashboard = dashboard.New(dashboard.Config{
			Prefix:   h.Dashboard,
			Site:     h.Site,
			Hosts:    h.Hosts,
			Accounts: accounts,
			Snippet:  h.snippetTag,
			Settings: h.settings,
		}, st2, dashboard.Options{ClientIP: clientIP, Logger: h.logger})
	}
	return nil
}

// Validate checks the settings.
func (h *Handler) Validate() error {
	if h.Site == "" {
		return fmt.Errorf("analytics site: required (the request's Host never names a site); give `site <id>` or a concrete host on the site block")
	}
	switch h.Persistence {
	case "", "localstorage", "cookie", "memory", "none":
	default:
		return fmt.Errorf("analytics persistence: unknown value %q (want localstorage, cookie, memory or none)", h.Persistence)
	}
	switch h.Sync {
	case "", string(store.SyncAlways), string(store.SyncEverySecond):
	default:
		return fmt.Errorf("analytics sync: unknown value %q (want always or everysecond)", h.Sync)
	}
	if h.RecordSample < 0 || h.RecordSample > 1 || math.IsNaN(h.RecordSample) {
		return fmt.Errorf("analytics record: sample rate %v is not in (0, 1]", h.RecordSample)
	}
	if h.MaxBody < 0 {
		return fmt.Errorf("analytics max_body: must be positive, got %d", h.MaxBody)
	}
	if h.Retention < 0 {
		return fmt.Errorf("analytics retention: must be positive, got %s", time.Duration(h.Retention))
	}
	if err := checkPrefix("endpoint", h.Endpoint); err != nil {
		return err
	}
	if h.Dashboard != "off" {
		if err := checkPrefix("dashboard", h.Dashboard); err != nil {
			return err
		}
		if h.Dashboard != "" && h.Endpoint != "" && (strings.HasPrefix(h.Endpoint+"/", h.Dashboard+"/") || strings.HasPrefix(h.Dashboard+"/", h.Endpoint+"/")) {
			return fmt.Errorf("analytics: endpoint %q and dashboard %q overlap", h.Endpoint, h.Dashboard)
		}
	}
	for _, a := range h.DashboardAuth {
		if err := dashboard.CheckHash([]byte(a.Hash)); err != nil {
			return fmt.Errorf("analytics dashboard_auth %s: %w", a.Username, err)
		}
	}
	return nil
}

func checkPrefix(name, p string) error {
	if p == "" {
		return nil
	}
	if !strings.HasPrefix(p, "/") || p == "/" || strings.ContainsAny(p, " ?#*{}") {
		return fmt.Errorf("analytics %s: %q is not a path prefix like /name", name, p)
	}
	return nil
}

// Cleanup stores the server events still queued, then releases the shared
// store and the GeoIP database.
func (h *Handler) Cleanup() error {
	if h.collector != nil {
		h.collector.Close()
	}
	if h.geo != nil {
		h.geo.Close()
	}
	if err := h.releaseClickHouse(); err != nil {
		h.logger.Warn("analytics clickhouse: release", zap.Error(err))
	}
	if h.storeKey != "" {
		_, err := storePool.Delete(h.storeKey)
		return err
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
