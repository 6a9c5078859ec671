package caddymodule

import (
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("analytics", parseCaddyfile)
	// Early: before redir, rewrite and try_files (an SPA's fallback must not
	// rewrite our paths), before handle/route blocks and before every handler
	// that answers (respond, reverse_proxy, file_server), so no `order` line
	// is needed. `header` still applies to our responses.
	httpcaddyfile.RegisterDirectiveOrder("analytics", httpcaddyfile.Before, "redir")
}

// parseCaddyfile sets up the handler from Caddyfile tokens. The site block's
// concrete hosts become Hosts and, without a `site` line, the first of them
// the site id; a block without one (":8080", "*.example.com") must name its
// site, since the request's Host never does (SPEC §5.1).
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var a Handler
	if err := a.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	a.Hosts = blockHosts(h)
	if a.Site == "" {
		if len(a.Hosts) == 0 {
			return nil, h.Errf("analytics site: required in a site block without a concrete host (like :8080 or *.example.com); add `site <id>`")
		}
		a.Site = a.Hosts[0]
	}
	return &a, nil
}

// blockHosts returns the concrete hosts of the site block the directive is
// in, lower case, in order: not patterns ("*.example.com"), placeholders or
// host-less addresses (":8080"). httpcaddyfile keeps the block private, so
// it is read by reflection; if a later Caddy renames the field, there are
// none and the block must name its site.
func blockHosts(h httpcaddyfile.Helper) []string {
	pb := reflect.ValueOf(h).FieldByName("parentBlock")
	if !pb.IsValid() {
		return nil
	}
	keys := pb.FieldByName("Keys")
	if !keys.IsValid() || keys.Kind() != reflect.Slice {
		return nil
	}
	var hosts []string
	for i := 0; i < keys.Len(); i++ {
		text := keys.Index(i).FieldByName("Text")
		if !text.IsValid() || text.Kind() != reflect.String {
			continue
		}
		addr, err := httpcaddyfile.ParseAddress(text.String())
		if err != nil || addr.Host == "" || strings.ContainsAny(addr.Host, "*{}") {
			continue
		}
		host := strings.ToLower(strings.Trim(addr.Host, "[]"))
		if !slices.Contains(hosts, host) {
			hosts = append(hosts, host)
		}
	}
	return hosts
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	analytics {
//		db             <path>|:memory:
//		site           <id>
//		geoip          <path to .mmdb>
//		endpoint       <path prefix>|random
//		dashboard      <path prefix>|off
//		dashboard_auth <user> <bcrypt hash>
//		inject         [on|off]
//		record         on [rate]|off
//		persistence    localstorage|cookie|memory|none
//		count_server   on|off
//		downloads      <.ext>...
//		respect_dnt    on|off
//		store_ip       on|off
//		retention      <duration, e.g. 400d>
//		sync           always|everysecond
//		token          <string>
//		max_body       <size, e.g. 1MiB>
//		rate_limit     <requests per second per IP>
//		limits {
//			value      <size, e.g. 2KiB>
//			properties <count>
//			recording  <size per session, e.g. 20MiB>
//			recordings <size per site and day, e.g. 2GiB>
//		}
//	}
//
// Every bad value is an error naming the subdirective and the value.
func (a *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.Errf("analytics takes no arguments on its line, got %q; put settings in a block", d.Val())
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] && name != "dashboard_auth" {
			return d.Errf("analytics %s: given twice", name)
		}
		seen[name] = true
		args := d.RemainingArgs()
		if name == "limits" {
			if err := a.Limits.unmarshal(d, args); err != nil {
				return err
			}
			continue
		}
		if name == "clickhouse" {
			ch, err := unmarshalClickHouse(d, args)
			if err != nil {
				return err
			}
			a.ClickHouse = ch
			continue
		}
		if d.NextBlock(1) {
			return d.Errf("analytics %s: takes no block", name)
		}
		one := func() (string, error) {
			if len(args) != 1 {
				return "", d.Errf("analytics %s: want one value, got %d (%s)", name, len(args), strings.Join(args, " "))
			}
			return args[0], nil
		}
		switch name {
		case "db", "site", "geoip", "endpoint", "dashboard", "token", "persistence", "sync":
			v, err := one()
			if err != nil {
				return err
			}
			switch name {
			case "db":
				a.DB = v
			case "site":
				a.Site = v
			case "geoip":
				a.GeoIP = v
			case "endpoint":
				if v == EndpointRandom {
					a.Endpoint = v
					break
				}
				if !strings.HasPrefix(v, "/") || v == "/" || strings.ContainsAny(v, " ?#*{}") {
					return d.Errf("analytics endpoint: %q is not a path prefix like /_f, or random", v)
				}
				a.Endpoint = v
			case "dashboard":
				if v != "off" && (!strings.HasPrefix(v, "/") || v == "/" || strings.ContainsAny(v, " ?#*{}")) {
					return d.Errf("analytics dashboard: %q is not a path prefix like /analytics, or off", v)
				}
				a.Dashboard = v
			case "token":
				a.Token = v
			case "persistence":
				switch v {
				case "localstorage", "cookie", "memory", "none":
				default:
					return d.Errf("analytics persistence: unknown value %q (want localstorage, cookie, memory or none)", v)
				}
				a.Persistence = v
			case "sync":
				switch v {
				case "always", "everysecond":
				default:
					return d.Errf("analytics sync: unknown value %q (want always or everysecond)", v)
				}
				a.Sync = v
			}
		case "dashboard_auth":
			if len(args) != 2 {
				return d.Errf("analytics dashboard_auth: want <user> <bcrypt-hash>, got %q", strings.Join(args, " "))
			}
			if !strings.HasPrefix(args[1], "$2") {
				return d.Errf("analytics dashboard_auth: %q is not a bcrypt hash (make one with `caddy hash-password`)", args[1])
			}
			a.DashboardAuth = append(a.DashboardAuth, Account{Username: args[0], Hash: args[1]})
		case "record":
			if len(args) == 0 || len(args) > 2 || (args[0] != "on" && args[0] != "off") || (args[0] == "off" && len(args) == 2) {
				return d.Errf("analytics record: want on [rate] or off, got %q", strings.Join(args, " "))
			}
			a.Record = args[0] == "on"
			if len(args) == 2 {
				r, err := parseSampleRate(args[1])
				if err != nil {
					return d.Errf("analytics record: bad sample rate %q (want a fraction 0 < r <= 1 like 0.25, or a percentage like 25%%)", args[1])
				}
				if r < 1 {
					a.RecordSample = r
				}
			}
		case "downloads":
			if len(args) == 0 {
				return d.Errf("analytics downloads: want file extensions, e.g. .pdf .zip")
			}
			for _, ext := range args {
				e := strings.TrimPrefix(ext, ".")
				if e == "" || strings.ContainsAny(e, "/. *?") || len(e) > 16 {
					return d.Errf("analytics downloads: %q is not a file extension like .pdf", ext)
				}
				a.Downloads = append(a.Downloads, "."+strings.ToLower(e))
			}
		case "count_server":
			if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
				return d.Errf("analytics count_server: want on or off, got %q", strings.Join(args, " "))
			}
			on := args[0] == "on"
			a.CountServer = &on
		case "inject", "respect_dnt", "store_ip":
			on := true
			if len(args) > 1 || (name != "inject" && len(args) == 0) {
				return d.Errf("analytics %s: want on or off, got %q", name, strings.Join(args, " "))
			}
			if len(args) == 1 {
				switch args[0] {
				case "on":
				case "off":
					on = false
				default:
					return d.Errf("analytics %s: want on or off, got %q", name, args[0])
				}
			}
			switch name {
			case "inject":
				a.Inject = on
			case "respect_dnt":
				a.RespectDNT = &on
			case "store_ip":
				a.StoreIP = on
			}
		case "retention":
			v, err := one()
			if err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("analytics retention: bad duration %q (want e.g. 400d or 720h)", v)
			}
			a.Retention = caddy.Duration(dur)
		case "max_body":
			v, err := one()
			if err != nil {
				return err
			}
			n, err := humanize.ParseBytes(v)
			if err != nil || n == 0 || n > 1<<34 {
				return d.Errf("analytics max_body: bad size %q (want e.g. 1MiB)", v)
			}
			a.MaxBody = int64(n)
		case "rate_limit":
			v, err := one()
			if err != nil {
				return err
			}
			if v == "off" {
				a.RateLimit = -1
				continue
			}
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n <= 0 || n > 1e9 {
				return d.Errf("analytics rate_limit: bad value %q (want requests per second per IP, or off)", v)
			}
			a.RateLimit = n
		default:
			return d.Errf("analytics: unknown subdirective %q", name)
		}
	}
	return nil
}

// parseSampleRate reads a sampling rate: a fraction 0 < r <= 1 ("0.25") or
// a percentage 0 < p <= 100 ("25%").
func parseSampleRate(s string) (float64, error) {
	v, pct := strings.CutSuffix(s, "%")
	r, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, err
	}
	if pct {
		r /= 100
	}
	if !(r > 0 && r <= 1) {
		return 0, strconv.ErrRange
	}
	return r, nil
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
