package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/firstpartyhq/firstparty/collector"
)

// Limits bound what one visitor can make the server keep (SPEC §5.1).
type Limits struct {
	// Value is the longest string property value kept, in bytes; longer
	// values are cut at a UTF-8 boundary. Autocapture's $elements_chain
	// and URLs may be 16 times as long. Default: 2 KiB.
	Value int64 `json:"value,omitempty"`
	// Properties is how many properties of one event are kept. Default:
	// 300.
	Properties int `json:"properties,omitempty"`
	// Recording is the most bytes stored for one session's recording.
	// Default: 20 MiB.
	Recording int64 `json:"recording,omitempty"`
	// Recordings is the most recording bytes stored for the site a day.
	// Default: 2 GiB.
	Recordings int64 `json:"recordings,omitempty"`
}

func (l Limits) collector() collector.Limits {
	return collector.Limits{Value: int(l.Value), Properties: l.Properties, Recording: l.Recording, Recordings: l.Recordings}
}

// unmarshal reads a `limits { ... }` block.
func (l *Limits) unmarshal(d *caddyfile.Dispenser, args []string) error {
	if len(args) > 0 {
		return d.Errf("analytics limits: takes a block, not %q", args)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		args := d.RemainingArgs()
		if len(args) != 1 {
			return d.Errf("analytics limits %s: want one value, got %d", name, len(args))
		}
		v := args[0]
		switch name {
		case "value", "recording", "recordings":
			n, err := humanize.ParseBytes(v)
			if err != nil || n == 0 || n > 1<<40 || (name == "value" && n > 16<<20) {
				return d.Errf("analytics limits %s: bad size %q (want e.g. 2KiB)", name, v)
			}
			switch name {
			case "value":
				l.Value = int64(n)
			case "recording":
				l.Recording = int64(n)
			case "recordings":
				l.Recordings = int64(n)
			}
		case "properties":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 100000 {
				return d.Errf("analytics limits properties: bad count %q (want e.g. 300)", v)
			}
			l.Properties = n
		default:
			return d.Errf("analytics limits: unknown setting %q (want value, properties, recording or recordings)", name)
		}
	}
	return nil
}
