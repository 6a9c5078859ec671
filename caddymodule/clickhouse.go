package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse"
)

// ClickHouse is the `clickhouse` block (SPEC §7): events are committed to
// the local db first and shipped to ClickHouse in the background, which
// then answers the reports.
type ClickHouse struct {
	// URLs are the servers' HTTP interfaces: the first that answers takes
	// queries and inserts; with Cluster, the tables are created on each
	// (list every shard).
	URLs     []string       `json:"urls"`
	Database string         `json:"database,omitempty"`
	User     string         `json:"user,omitempty"`
	Password string         `json:"password,omitempty"`
	Cluster  string         `json:"cluster,omitempty"`
	Batch    int            `json:"batch,omitempty"`
	Flush    caddy.Duration `json:"flush,omitempty"`
	Keep     caddy.Duration `json:"keep,omitempty"`
}

// unmarshalClickHouse reads `clickhouse <url> [<url>...] { ... }`.
func unmarshalClickHouse(d *caddyfile.Dispenser, args []string) (*ClickHouse, error) {
	if len(args) == 0 {
		return nil, d.Errf("analytics clickhouse: want the server's HTTP url, e.g. http://127.0.0.1:8123")
	}
	c := &ClickHouse{}
	for _, a := range args {
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, d.Errf("analytics clickhouse: bad url %q (want http://host:port)", a)
		}
		c.URLs = append(c.URLs, a)
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return nil, d.Errf("analytics clickhouse %s: given twice", name)
		}
		seen[name] = true
		args := d.RemainingArgs()
		if len(args) != 1 {
			return nil, d.Errf("analytics clickhouse %s: want one value, got %d", name, len(args))
		}
		v := args[0]
		switch name {
		case "database", "cluster":
			if !identOK(v) {
				return nil, d.Errf("analytics clickhouse %s: bad name %q (letters, digits and _)", name, v)
			}
			if name == "database" {
				c.Database = v
			} else {
				c.Cluster = v
			}
		case "user":
			c.User = v
		case "password":
			c.Password = v
		case "batch":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1_000_000 {
				return nil, d.Errf("analytics clickhouse batch: bad value %q (want 1 to 1000000 rows)", v)
			}
			c.Batch = n
		case "flush", "keep":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return nil, d.Errf("analytics clickhouse %s: bad duration %q", name, v)
			}
			if name == "flush" {
				c.Flush = caddy.Duration(dur)
			} else {
				c.Keep = caddy.Duration(dur)
			}
		default:
			return nil, d.Errf("analytics clickhouse: unknown setting %q (want database, user, password, cluster, batch, flush or keep)", name)
		}
	}
	return c, nil
}

func identOK(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// chPool holds one backend per local db and configuration, shared by the
// site blocks naming them and kept across a reload.
var chPool = caddy.NewUsagePool()

type pooledBackend struct{ *clickhouse.Backend }

// Destruct stops shipping; the local db is the store pool's to close.
func (p pooledBackend) Destruct() error {
	p.Backend.Stop()
	return nil
}

// provisionClickHouse wraps the local store in the ClickHouse backend when
// the block asks for it; it returns the store the collector and the
// dashboard use.
func (h *Handler) provisionClickHouse(ctx caddy.Context, db *store.DB) (store.Store, error) {
	if h.ClickHouse == nil {
		return db, nil
	}
	registerClickHouseMetrics(ctx)
	logger := h.logger
	c := h.ClickHouse
	cfg, _ := json.Marshal(c)
	key := h.storeKey + "\x00" + string(cfg)
	v, _, err := chPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		b, err := clickhouse.New(db, clickhouse.Options{
			URLs: c.URLs, Database: c.Database, User: c.User, Password: c.Password, Cluster: c.Cluster,
			Batch: c.Batch, Flush: time.Duration(c.Flush), Keep: time.Duration(c.Keep),
			OnError: func(err error) {
				logger.Warn("analytics clickhouse: shipping failed; retrying", zap.Error(err))
			},
			OnShipped: func(site string, n int) {
				chMetrics.shipped.WithLabelValues(site).Add(float64(n))
			},
		})
		if err != nil {
			return nil, fmt.Errorf("analytics clickhouse: %w", err)
		}
		return pooledBackend{b}, nil
	})
	if err != nil {
		return nil, err
	}
	h.chKey = key
	h.ch = v.(pooledBackend).Backend
	return h.ch, nil
}

// releaseClickHouse lets go of the backend (before the store).
func (h *Handler) releaseClickHouse() error {
	if h.chKey == "" {
		return nil
	}
	_, err := chPool.Delete(h.chKey)
	return err
}

// clickHouseSettings is the shipping state for /api/settings.
func (h *Handler) clickHouseSettings() any {
	if h.ch == nil {
		return nil
	}
	st := h.ch.Status(h.Site)
	return map[string]any{
		"urls": h.ClickHouse.URLs, "database": h.ClickHouse.Database, "cluster": h.ClickHouse.Cluster,
		"backlog": st.Backlog, "shipped": st.Shipped, "last_error": st.LastError, "last_error_at": st.ErrorAt,
	}
}

// shippingHealth is /analytics/health's shipping state of db: by backend
// shipping it (one per clickhouse configuration), the servers and each
// site's backlog, shipped count and last error; nil when none ships it.
func shippingHealth(db *store.DB, sites []adminSite) map[string]any {
	var backends []map[string]any
	chPool.Range(func(_, v any) bool {
		b := v.(pooledBackend).Backend
		if b.DB != db {
			return true
		}
		bySite := map[string]clickhouse.Status{}
		for _, st := range sites {
			bySite[st.Site] = b.Status(st.Site)
		}
		backends = append(backends, map[string]any{"urls": b.URLs(), "sites": bySite})
		return true
	})
	if backends == nil {
		return nil
	}
	return map[string]any{"clickhouse": backends}
}

// backlogCollector reports every backend's backlog by site when scraped.
type backlogCollector struct{ desc *prometheus.Desc }

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	chPool.Range(func(_, v any) bool {
		for site, n := range v.(pooledBackend).Backlogs() {
			counts[site] += n
		}
		return true
	})
	for site, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), site)
	}
}

// chMetrics are the shipping metrics, registered in the registry of every
// config with a clickhouse block.
var chMetrics = struct {
	once    sync.Once
	shipped *prometheus.CounterVec
	backlog *backlogCollector
}{}

func registerClickHouseMetrics(ctx caddy.Context) {
	chMetrics.once.Do(func() {
		chMetrics.shipped = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "analytics", Name: "shipped_total",
			Help: "Events shipped to ClickHouse, by site.",
		}, []string{"site"})
		chMetrics.backlog = &backlogCollector{desc: prometheus.NewDesc(
			"caddy_analytics_ship_backlog", "Events committed locally and not yet in ClickHouse, by site.", []string{"site"}, nil)}
	})
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return
	}
	for _, c := range []prometheus.Collector{chMetrics.shipped, chMetrics.backlog} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				ctx.Logger().Warn("registering clickhouse metrics", zap.Error(err))
			}
		}
	}
}
