package caddymodule

import (
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// The collectors are built once and registered in the registry of every
// config that provisions the handler; the registry of a reload is new.
var analyticsMetrics = struct {
	once      sync.Once
	events    *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	truncated *prometheus.CounterVec
	ingest    prometheus.Histogram
	stored    *storedCollector
}{}

func initMetrics() {
	analyticsMetrics.once.Do(func() {
		const ns, sub = "caddy", "analytics"
		analyticsMetrics.events = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_total",
			Help: "Events stored, by site and kind.",
		}, []string{"site", "kind"})
		analyticsMetrics.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_rejected_total",
			Help: "Events or requests not stored, by site and reason.",
		}, []string{"site", "reason"})
		analyticsMetrics.truncated = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "truncated_total",
			Help: "Properties cut or dropped by the limits, by site.",
		}, []string{"site"})
		analyticsMetrics.ingest = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "ingest_seconds",
			Help:    "Time to take in a capture request, commit included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		})
		analyticsMetrics.stored = &storedCollector{desc: prometheus.NewDesc(
			"caddy_analytics_stored_events", "Events in the store, by site.", []string{"site"}, nil)}
	})
}

// provisionMetrics registers the collectors in ctx's registry and returns
// the collector's view of them.
func provisionMetrics(ctx caddy.Context) metricsSink {
	initMetrics()
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		for _, c := range []prometheus.Collector{analyticsMetrics.events, analyticsMetrics.rejected, analyticsMetrics.truncated, analyticsMetrics.ingest, analyticsMetrics.stored} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					ctx.Logger().Warn("registering analytics metrics", zap.Error(err))
				}
			}
		}
	}
	return metricsSink{}
}

// metricsSink implements collector.Metrics on the shared collectors.
type metricsSink struct{}

func (metricsSink) Stored(site, kind string, n int) {
	analyticsMetrics.events.WithLabelValues(site, kind).Add(float64(n))
}

func (metricsSink) Rejected(site, reason string, n int) {
	analyticsMetrics.rejected.WithLabelValues(site, reason).Add(float64(n))
}

func (metricsSink) Truncated(site string, n int) {
	analyticsMetrics.truncated.WithLabelValues(site).Add(float64(n))
}

func (metricsSink) Observe(d time.Duration) { analyticsMetrics.ingest.Observe(d.Seconds()) }

// storedCollector reports the stored events of every site of every open
// database when scraped.
type storedCollector struct{ desc *prometheus.Desc }

func (c *storedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *storedCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	storePool.Range(func(_, v any) bool {
		db := v.(pooledStore).DB
		for _, site := range db.Sites() {
			counts[site] += db.Count(site)
		}
		return true
	})
	for site, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), site)
	}
}
