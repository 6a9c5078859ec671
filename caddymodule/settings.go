package caddymodule

import (
	"html"
	"strconv"
	"time"

	"github.com/firstpartyhq/firstparty/collector"
	"github.com/firstpartyhq/firstparty/tools/adblock"
)

// snippetTag is the script tag that loads the snippet for a site, with the
// settings the snippet reads from its data attributes.
func (h *Handler) snippetTag(site string) string {
	src := h.Endpoint + "/" + adblock.DefaultSnippetName + "?v=" + collector.SnippetVersion
	tag := `<script defer src="` + html.EscapeString(src) + `" data-api="` + html.EscapeString(h.Endpoint) + `"`
	if h.Persistence != "" && h.Persistence != "localstorage" {
		tag += ` data-persistence="` + html.EscapeString(h.Persistence) + `"`
	}
	if h.RespectDNT != nil && !*h.RespectDNT {
		tag += ` data-respect-dnt="off"`
	}
	if h.Record {
		tag += ` data-record="on"`
		if r := h.RecordSample; r > 0 && r < 1 {
			tag += ` data-record-sample="` + strconv.FormatFloat(r, 'f', -1, 64) + `"`
		}
	}
	if h.Token != "" {
		tag += ` data-token="` + html.EscapeString(h.Token) + `"`
	}
	return tag + `></script>`
}

// settings is the site's configuration as the module sees it, for the
// dashboard's settings page; password hashes are left out.
func (h *Handler) settings() any {
	users := make([]string, len(h.DashboardAuth))
	for i, a := range h.DashboardAuth {
		users[i] = a.Username
	}
	return map[string]any{
		"site":            h.Site,
		"db":              h.DB,
		"geoip":           h.GeoIP,
		"endpoint":        h.Endpoint,
		"dashboard":       h.Dashboard,
		"dashboard_users": users,
		"inject":          h.Inject,
		"record":          h.Record,
		"record_sample":   recordSample(h.RecordSample),
		"persistence":     h.Persistence,
		"respect_dnt":     h.RespectDNT == nil || *h.RespectDNT,
		"store_ip":        h.StoreIP,
		"retention":       time.Duration(h.Retention).String(),
		"sync":            h.Sync,
		"token_set":       h.Token != "",
		"max_body":        h.MaxBody,
		"rate_limit":      h.RateLimit,
		"snippet":         h.snippetTag(h.Site),
		"clickhouse":      h.clickHouseSettings(),
	}
}

// recordSample is the fraction of sessions recorded, 1 when unset.
func recordSample(r float64) float64 {
	if r <= 0 || r > 1 {
		return 1
	}
	return r
}
