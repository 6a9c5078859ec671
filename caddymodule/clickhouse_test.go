package caddymodule

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestClickHouseBlock parses the clickhouse block of SPEC §7 and rejects
// each bad value with a message naming it.
func TestClickHouseBlock(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`analytics {
		db /tmp/a.db
		clickhouse http://ch-a.internal:8123 http://ch-b.internal:8123 {
			database firstparty
			user default
			password s3cret
			cluster fp
			batch 5000
			flush 250ms
			keep 7d
		}
		sync always
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &ClickHouse{URLs: []string{"http://ch-a.internal:8123", "http://ch-b.internal:8123"}, Database: "firstparty", User: "default",
		Password: "s3cret", Cluster: "fp", Batch: 5000, Flush: caddy.Duration(250 * time.Millisecond), Keep: caddy.Duration(7 * 24 * time.Hour)}
	if !reflect.DeepEqual(h.ClickHouse, want) || h.Sync != "always" {
		t.Fatalf("got %+v (sync %q), want %+v", h.ClickHouse, h.Sync, want)
	}
	for in, msg := range map[string]string{
		"clickhouse":                                 "want the server's HTTP url",
		"clickhouse ftp://x":                         `bad url "ftp://x"`,
		"clickhouse http://x {\n batch 0\n}":         `batch: bad value "0"`,
		"clickhouse http://x {\n flush soon\n}":      `flush: bad duration "soon"`,
		"clickhouse http://x {\n database a-b\n}":    `database: bad name "a-b"`,
		"clickhouse http://x {\n cluster a.b\n}":     `cluster: bad name "a.b"`,
		"clickhouse http://x {\n replicas 2\n}":      `unknown setting "replicas"`,
		"clickhouse http://x {\n user a\n user b\n}": `user: given twice`,
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("analytics {\n" + in + "\n}"))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want one containing %q", in, err, msg)
		}
	}
}
