package caddymodule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
)

const testHash = "$2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG"

func TestUnmarshalCaddyfile(t *testing.T) {
	on, off := true, false
	cases := []struct {
		name string
		in   string
		want Handler
	}{
		{"empty block", "analytics", Handler{}},
		{"everything", `analytics {
			db /var/lib/caddy/a.db
			site example.com
			geoip /g/City.mmdb
			endpoint /k3x9q
			dashboard /stats-admin
			dashboard_auth alice ` + testHash + `
			dashboard_auth bob ` + testHash + `
			inject
			record on
			persistence cookie
			respect_dnt off
			store_ip on
			retention 400d
			sync always
			token phc_abc
			max_body 2MiB
			rate_limit 10
		}`, Handler{
			DB: "/var/lib/caddy/a.db", Site: "example.com", GeoIP: "/g/City.mmdb", Endpoint: "/k3x9q",
			Dashboard: "/stats-admin", DashboardAuth: []Account{{"alice", testHash}, {"bob", testHash}},
			Inject: true, Record: true, Persistence: "cookie", RespectDNT: &off, StoreIP: true,
			Retention: caddy.Duration(400 * 24 * time.Hour), Sync: "always", Token: "phc_abc",
			MaxBody: 2 << 20, RateLimit: 10,
		}},
		{"record sampled", "analytics {\n record on 0.1\n}", Handler{Record: true, RecordSample: 0.1}},
		{"record percent", "analytics {\n record on 25%\n}", Handler{Record: true, RecordSample: 0.25}},
		{"record all", "analytics {\n record on 100%\n}", Handler{Record: true}},
		{"switches", `analytics {
			inject off
			record off
			respect_dnt on
			dashboard off
			rate_limit off
			max_body 1000
		}`, Handler{Inject: false, RespectDNT: &on, Dashboard: "off", RateLimit: -1, MaxBody: 1000}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.in)); err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(h)
			want, _ := json.Marshal(c.want)
			if string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// Every bad value is an error that names the subdirective and the value.
func TestUnmarshalCaddyfileErrors(t *testing.T) {
	cases := map[string]string{
		"analytics {\n record maybe\n}":            `record: want on [rate] or off, got "maybe"`,
		"analytics {\n record on 0\n}":             `record: bad sample rate "0"`,
		"analytics {\n record on 1.5\n}":           `record: bad sample rate "1.5"`,
		"analytics {\n record on 250%\n}":          `record: bad sample rate "250%"`,
		"analytics {\n record on lots\n}":          `record: bad sample rate "lots"`,
		"analytics {\n record off 0.5\n}":          `record: want on [rate] or off, got "off 0.5"`,
		"analytics {\n persistence disk\n}":        `persistence: unknown value "disk"`,
		"analytics {\n sync never\n}":              `sync: unknown value "never"`,
		"analytics {\n retention forever\n}":       `retention: bad duration "forever"`,
		"analytics {\n max_body huge\n}":           `max_body: bad size "huge"`,
		"analytics {\n rate_limit -3\n}":           `rate_limit: bad value "-3"`,
		"analytics {\n rate_limit fast\n}":         `rate_limit: bad value "fast"`,
		"analytics {\n endpoint track\n}":          `endpoint: "track" is not a path prefix`,
		"analytics {\n dashboard stats\n}":         `dashboard: "stats" is not a path prefix`,
		"analytics {\n dashboard_auth alice\n}":    `dashboard_auth: want <user> <bcrypt-hash>, got "alice"`,
		"analytics {\n dashboard_auth a secret\n}": `dashboard_auth: "secret" is not a bcrypt hash`,
		"analytics {\n frobnicate\n}":              `unknown subdirective "frobnicate"`,
		"analytics {\n db\n}":                      `db: want one value, got 0`,
		"analytics {\n site a b\n}":                `site: want one value, got 2 (a b)`,
		"analytics {\n store_ip\n}":                `store_ip: want on or off`,
		"analytics {\n db a\n db b\n}":             `db: given twice`,
		"analytics extra":                          `takes no arguments`,
	}
	for in, want := range cases {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", in, err, want)
		}
	}
}

// TestCaddyfileAdapt compares the JSON the Caddyfile adapter makes with the
// golden files in testdata/adapt (the caddyfile_adapt format of Caddy's own
// tests: the Caddyfile, a line of dashes, the JSON).
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	newlines := regexp.MustCompile(`\r?\n`)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(string(data), "----------")
			if len(parts) != 2 {
				t.Fatalf("%s: want a Caddyfile, a line of dashes and JSON", f)
			}
			cfg := strings.TrimSpace(parts[0]) + "\n"
			want := newlines.ReplaceAllString(strings.TrimSpace(parts[1]), "\n")
			if !caddytest.CompareAdapt(t, f, cfg, "caddyfile", want) {
				t.Errorf("%s: adapted JSON differs", f)
			}
		})
	}
}
