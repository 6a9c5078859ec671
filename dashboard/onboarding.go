package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// The onboarding of a site without events: install steps, a "waiting for
// your first event" that turns green, and an install check.
//
//	GET  /api/onboarding     {"events", "snippet", "endpoint", "inject", "hosts", "latest": event|null}
//	                         (latest only with ?latest=1: it costs a scan)
//	POST /api/install_check  {"url": "/path" or "https://<own host>/path"} →
//	                         {"url", "status", "snippet", "posthog", "inject", "events"}
//
// The check fetches, from the server, a page of this site's own configured
// hosts only (and only on the port the dashboard was reached on, or the
// scheme's default): never another host, so the dashboard cannot be made
// to probe the network (no SSRF). One check runs at a time.
func (h *Handler) onboardingRoutes() {
	h.mux.HandleFunc("GET /api/onboarding", h.apiOnboarding)
	h.mux.HandleFunc("POST /api/install_check", h.apiInstallCheck)
}

// installCheckUA marks the check as a robot, so the site's own analytics
// (server pageviews) leave it out.
const installCheckUA = "Mozilla/5.0 (compatible; FirstpartyInstallCheck/1.0; +https://github.com/firstpartyhq/firstparty)"

// installCheckMax is how much of a page the check reads.
const installCheckMax = 2 << 20

// installCheckTimeout bounds one check, redirects included.
var installCheckTimeout = 8 * time.Second

// installCheckBusy lets one install check run at a time per process.
var installCheckBusy = make(chan struct{}, 1)

// siteSettings reads what the onboarding needs from the module's settings.
func (h *Handler) siteSettings() (endpoint string, inject bool) {
	if m, ok := h.cfg.Settings().(map[string]any); ok {
		endpoint, _ = m["endpoint"].(string)
		inject, _ = m["inject"].(bool)
	}
	return endpoint, inject
}

func (h *Handler) apiOnboarding(w http.ResponseWriter, r *http.Request) {
	site := h.site(r)
	endpoint, inject := h.siteSettings()
	n := h.store.Count(site)
	b := []byte(`{"events":`)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `,"snippet":`...)
	b = store.AppendJSONString(b, h.cfg.Snippet(site))
	b = append(b, `,"endpoint":`...)
	b = store.AppendJSONString(b, endpoint)
	b = append(b, `,"inject":`...)
	b = strconv.AppendBool(b, inject)
	b = append(b, `,"hosts":`...)
	hosts, _ := json.Marshal(nonNil(h.checkHosts()))
	b = append(b, hosts...)
	b = append(b, `,"latest":`...)
	latest := []byte("null")
	if n > 0 && r.URL.Query().Get("latest") == "1" {
		page, err := h.store.Events(r.Context(), store.EventQuery{Site: site, From: 0, To: h.opts.Now().Add(24 * time.Hour).UnixMilli(), Limit: 1})
		if err == nil && len(page.Results) > 0 {
			ev := page.Results[0]
			names := h.personNames(site, []string{ev.DistinctID})
			latest = withPerson(ev.AppendJSON(nil, page.PersonIDs[0]), personLabel(names, ev.DistinctID), "")
		}
	}
	b = append(b, latest...)
	writeJSON(w, http.StatusOK, append(b, '}'))
}

// checkHosts are the host names the install check may fetch: the site
// block's own hosts and the site id when it is a host name.
func (h *Handler) checkHosts() []string {
	var hosts []string
	add := func(s string) {
		s = strings.TrimSuffix(strings.ToLower(strings.Trim(s, "[]")), ".")
		if s != "" && !slices.Contains(hosts, s) {
			hosts = append(hosts, s)
		}
	}
	for _, s := range h.cfg.Hosts {
		add(s)
	}
	if hostName.MatchString(h.cfg.Site) {
		add(h.cfg.Site)
	}
	return hosts
}

// hostName is a DNS name or an IP address, nothing else.
var hostName = regexp.MustCompile(`^(?i:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.(?i:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?))*$`)

// errForeignHost refuses a URL outside the site.
var errForeignHost = errors.New("only pages of this site can be checked")

// checkTarget makes the URL to fetch from what the user typed: a path on
// the host the dashboard was reached at (when it is one of the site's), or
// a full URL on one of the site's hosts.
func (h *Handler) checkTarget(r *http.Request, raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	hosts := h.checkHosts()
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	reqHost, reqPort := hostOf(r), portOf(r.Host)
	if raw == "" || (strings.HasPrefix(raw, "/") && !strings.HasPrefix(raw, "//")) {
		if !slices.Contains(hosts, reqHost) {
			if len(hosts) == 0 {
				return nil, fmt.Errorf("%w: this site block names no host; enter the page's full address", errForeignHost)
			}
			return nil, fmt.Errorf("%w: enter the page's full address on %s", errForeignHost, strings.Join(hosts, ", "))
		}
		raw = scheme + "://" + r.Host + raw
	} else if !strings.Contains(raw, "://") {
		raw = scheme + "://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("url: %v", err)
	}
	if err := allowedTarget(u, hosts, reqHost, reqPort); err != nil {
		return nil, err
	}
	u.Fragment = ""
	return u, nil
}

// allowedTarget checks a URL the check would fetch (the first or a
// redirect's): http(s), no credentials, one of hosts, and on the port the
// dashboard was reached at (when reached at that host) or the scheme's
// default.
func allowedTarget(u *url.URL, hosts []string, reqHost, reqPort string) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: want an http or https address", errForeignHost)
	}
	if u.User != nil {
		return fmt.Errorf("%w: no credentials in the address", errForeignHost)
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if !slices.Contains(hosts, host) {
		return fmt.Errorf("%w: %q is not one of its hosts (%s)", errForeignHost, host, strings.Join(hosts, ", "))
	}
	port := u.Port()
	def := map[string]string{"http": "80", "https": "443"}[u.Scheme]
	switch {
	case port == "" || port == def:
	case host == reqHost && port == reqPort:
	default:
		return fmt.Errorf("%w: port %s is not the site's", errForeignHost, port)
	}
	return nil
}

// portOf is the port of a Host header, "" when it has none.
func portOf(hostport string) string {
	if _, p, err := net.SplitHostPort(hostport); err == nil {
		return p
	}
	return ""
}

// installCheck is the answer of POST /api/install_check.
type installCheck struct {
	URL     string `json:"url"`
	Status  int    `json:"status"`
	Snippet bool   `json:"snippet"`
	PostHog bool   `json:"posthog"`
	Inject  bool   `json:"inject"`
	Events  int    `json:"events"`
}

func (h *Handler) apiInstallCheck(w http.ResponseWriter, r *http.Request) {
	var req struct {
		URL string `json:"url"`
	}
	if !readDefinition(w, r, &req) {
		return
	}
	u, err := h.checkTarget(r, req.URL)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	select {
	case installCheckBusy <- struct{}{}:
		defer func() { <-installCheckBusy }()
	default:
		writeError(w, http.StatusTooManyRequests, "another install check is running; try again in a moment")
		return
	}
	hosts, reqHost, reqPort := h.checkHosts(), hostOf(r), portOf(r.Host)
	client := &http.Client{
		Timeout: installCheckTimeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: installCheckTimeout,
			MaxIdleConns:          1,
			DisableKeepAlives:     true,
		},
		CheckRedirect: func(next *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return allowedTarget(next.URL, hosts, reqHost, reqPort)
		},
	}
	ctx, cancel := context.WithTimeout(r.Context(), installCheckTimeout)
	defer cancel()
	hr, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	hr.Header.Set("User-Agent", installCheckUA)
	hr.Header.Set("Accept", "text/html,*/*;q=0.5")
	res, err := client.Do(hr)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, errForeignHost) {
			writeError(w, http.StatusBadRequest, "a redirect left the site: "+msg)
			return
		}
		writeError(w, http.StatusBadGateway, "could not fetch "+u.String()+": "+msg)
		return
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, installCheckMax))
	endpoint, inject := h.siteSettings()
	page := string(body)
	out := installCheck{URL: res.Request.URL.String(), Status: res.StatusCode, Inject: inject, Events: h.store.Count(h.site(r))}
	out.Snippet = snippetIn(page, h.cfg.Snippet(h.site(r)))
	out.PostHog = posthogIn(page, endpoint)
	writeResult(w, out)
}

var srcAttr = regexp.MustCompile(`src="([^"?]+)`)

// snippetIn reports whether page loads the snippet of tag (its script's
// path, whatever the version parameter).
func snippetIn(page, tag string) bool {
	m := srcAttr.FindStringSubmatch(tag)
	if m == nil {
		return false
	}
	return strings.Contains(page, `src="`+m[1]) || strings.Contains(page, `src='`+m[1])
}

// posthogIn reports whether page initialises posthog-js with this
// endpoint as its api_host.
func posthogIn(page, endpoint string) bool {
	if endpoint == "" || !strings.Contains(page, "posthog") {
		return false
	}
	i := strings.Index(page, "api_host")
	return i >= 0 && strings.Contains(page[i:min(len(page), i+300)], endpoint)
}
