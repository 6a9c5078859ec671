package caddymodule

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// clientIP is the client address Caddy trusts: the immediate peer, unless
// the server's trusted_proxies trust it; then the rightmost address of the
// client IP headers (X-Forwarded-For by default) that is not itself a
// trusted proxy. Caddy's own client_ip without trusted_proxies_strict is
// the leftmost entry, which the client writes: keyed on it, a client that
// rotates it would escape every limit.
func clientIP(r *http.Request) netip.Addr {
	ctx := r.Context()
	peer := remoteIP(r)
	trusted, _ := caddyhttp.GetVar(ctx, caddyhttp.TrustedProxyVarKey).(bool)
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !trusted || srv == nil {
		if peer.IsValid() {
			return peer
		}
		return varIP(ctx)
	}
	if srv.TrustedProxiesStrict > 0 {
		// Caddy already walks from the right.
		if ip := varIP(ctx); ip.IsValid() {
			return ip
		}
		return peer
	}
	var leftmost netip.Addr
	for _, name := range srv.ClientIPHeaders {
		parts := strings.Split(strings.Join(r.Header.Values(name), ","), ",")
		for i := len(parts) - 1; i >= 0; i-- {
			ip, ok := parseForwarded(parts[i])
			if !ok {
				continue
			}
			if !trustedProxy(srv, ip) {
				return ip
			}
			leftmost = ip
		}
	}
	// Every hop is a trusted proxy: the leftmost was written by one of
	// them about its own peer.
	if leftmost.IsValid() {
		return leftmost
	}
	return peer
}

// trustedProxy asks the server whether ip is among its trusted_proxies.
// The ranges are private to the server, so a bare request from ip is put
// through caddyhttp.PrepareRequest, which decides as it does for real
// requests (static or dynamic ranges alike). That costs a few
// microseconds, so answers are kept for a minute (BenchmarkClientIP).
func trustedProxy(srv *caddyhttp.Server, ip netip.Addr) bool {
	k := trustKey{weak.Make(srv), ip}
	now := time.Now().UnixNano()
	trustCache.Lock()
	e, ok := trustCache.m[k]
	trustCache.Unlock()
	if ok && now < e.until {
		return e.trusted
	}
	probe := &http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Path: "/"},
		Header:     http.Header{},
		RemoteAddr: netip.AddrPortFrom(ip, 0).String(),
	}
	probe = probe.WithContext(context.Background())
	probe = caddyhttp.PrepareRequest(probe, caddy.NewEmptyReplacer(), nil, srv)
	trusted, _ := caddyhttp.GetVar(probe.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	trustCache.Lock()
	if len(trustCache.m) >= trustCacheMax {
		clear(trustCache.m)
	}
	trustCache.m[k] = trustEntry{trusted, now + int64(trustTTL)}
	trustCache.Unlock()
	return trusted
}

// trustCache holds recent trustedProxy answers per server (weakly: an old
// config's server is not kept alive by it) and address.
var trustCache = struct {
	sync.Mutex
	m map[trustKey]trustEntry
}{m: make(map[trustKey]trustEntry)}

const (
	trustTTL      = time.Minute
	trustCacheMax = 4096
)

type trustKey struct {
	srv weak.Pointer[caddyhttp.Server]
	ip  netip.Addr
}

type trustEntry struct {
	trusted bool
	until   int64 // unix ns
}

// parseForwarded reads one entry of a client IP header: an address,
// perhaps with a port or a zone.
func parseForwarded(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	s, _, _ = strings.Cut(s, "%")
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

func remoteIP(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func varIP(ctx context.Context) netip.Addr {
	if s, ok := caddyhttp.GetVar(ctx, caddyhttp.ClientIPVarKey).(string); ok {
		if ip, err := netip.ParseAddr(s); err == nil {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}
