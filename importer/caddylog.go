package importer

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"mime"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/firstpartyhq/firstparty/store"
)

// Caddy's JSON access logs (one object a line: ts, request{client_ip,
// remote_ip, method, host, uri, headers, tls}, duration, size, status,
// resp_headers) become server pageviews by the rules of SPEC §8: only GET,
// status 2xx, 404 or 410, HTML responses (Content-Type text/html, or, when
// the log has no response headers, a path without a file extension), not
// a prefetch, not a bot. Each is a `$server_pageview` with $pathname,
// $current_url, $host, $referrer, $referring_domain, $status and
// $server_ms, the browser, OS and device from the User-Agent, and the
// distinct id hash(site, client IP, User-Agent, UTC day), as cookieless
// tracking gives; sessions are cut after 30 minutes without a pageview.

// serverSession is how long a visitor may pause within one session.
const serverSession = 30 * time.Minute

type caddySession struct {
	last int64
	id   string
}

func (im *importer) caddylog(r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	sessions := map[string]*caddySession{}
	for line := 1; ; line++ {
		b, err := readLine(br)
		if err == io.EOF {
			return nil
		}
		if err == errLongLine {
			im.res.Rows++
			im.badRow(line, "line longer than %d bytes", maxLine)
			continue
		}
		if err != nil {
			return err
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			continue
		}
		if err := im.row(); err != nil {
			return err
		}
		if !gjson.Valid(s) {
			im.badRow(line, "not JSON")
			continue
		}
		o := gjson.Parse(s)
		req := o.Get("request")
		if !req.IsObject() {
			if o.Get("msg").String() != "" && o.Get("logger").String() != "" {
				im.res.Ignored++ // another logger's line in the same file
				continue
			}
			im.badRow(line, "no request object: not a Caddy access log line")
			continue
		}
		var t time.Time
		switch ts := o.Get("ts"); ts.Type {
		case gjson.Number:
			t = time.Unix(0, int64(ts.Float()*1e9)).UTC()
			_, err = checkTime(t)
		default:
			t, err = parseTime(ts.String())
		}
		if err != nil {
			im.badRow(line, "ts: %v", err)
			continue
		}
		status := int(o.Get("status").Int())
		method := req.Get("method").String()
		uri := req.Get("uri").String()
		host := req.Get("host").String()
		hdr := func(obj gjson.Result, name string) string {
			return obj.Get(gjson.Escape(name) + ".0").String()
		}
		ua := hdr(req.Get("headers"), "User-Agent")
		if method != "GET" || !(status >= 200 && status < 300 || status == 404 || status == 410) {
			im.res.Ignored++
			continue
		}
		pu, err := url.ParseRequestURI(uri)
		if err != nil {
			im.badRow(line, "uri %q: %v", clip(uri), err)
			continue
		}
		if !isHTML(o.Get("resp_headers"), pu.Path) {
			im.res.Ignored++
			continue
		}
		h := req.Get("headers")
		if p := hdr(h, "Sec-Purpose") + hdr(h, "Purpose") + hdr(h, "X-Moz"); strings.Contains(strings.ToLower(p), "prefetch") {
			im.res.Ignored++
			continue
		}
		dev, bot := im.o.UA.Parse(ua)
		if bot {
			im.res.Ignored++
			continue
		}
		ip := req.Get("client_ip").String()
		if ip == "" {
			ip = req.Get("remote_ip").String()
		}
		day := t.Format("2006-01-02")
		did := hashHex("caddylog-visitor", im.o.Site, ip, ua, day)
		ms := t.UnixMilli()
		sess := sessions[did]
		if sess == nil || ms-sess.last > serverSession.Milliseconds() || ms < sess.last {
			sess = &caddySession{id: hashHex("caddylog-session", did, strconv.FormatInt(ms, 10))}
			sessions[did] = sess
			if len(sessions) > 200000 { // old visitors: their sessions are over
				for k, v := range sessions {
					if ms-v.last > serverSession.Milliseconds() {
						delete(sessions, k)
					}
				}
			}
		}
		sess.last = ms
		scheme := "http"
		if req.Get("tls").IsObject() {
			scheme = "https"
		}
		ev := &store.Event{
			UUID:       derivedUUID("caddylog", im.o.Site, s),
			Name:       "$server_pageview",
			DistinctID: did,
			Time:       ms,
		}
		setStr(&ev.Props, "$current_url", scheme+"://"+host+uri)
		setStr(&ev.Props, "$host", host)
		setStr(&ev.Props, "$pathname", pu.Path)
		ref := hdr(h, "Referer")
		setStr(&ev.Props, "$referrer", ref)
		rd := "$direct"
		if ru, err := url.Parse(ref); err == nil && ru.Hostname() != "" {
			rd = ru.Hostname()
		}
		setStr(&ev.Props, "$referring_domain", rd)
		ev.Props.Set("$status", store.NumberValue(float64(status)))
		dur := o.Get("duration")
		if dur.Type == gjson.Number {
			ev.Props.Set("$server_ms", store.NumberValue(float64(int64(dur.Float()*1e6))/1000))
		} else if d, err := time.ParseDuration(dur.String()); err == nil {
			ev.Props.Set("$server_ms", store.NumberValue(float64(d.Microseconds())/1000))
		}
		setStr(&ev.Props, "$session_id", sess.id)
		setStr(&ev.Props, "$browser", dev.Browser)
		setStr(&ev.Props, "$browser_version", dev.BrowserVersion)
		setStr(&ev.Props, "$os", dev.OS)
		setStr(&ev.Props, "$os_version", dev.OSVersion)
		setStr(&ev.Props, "$device_type", dev.DeviceType)
		setStr(&ev.Props, "$lib", "caddylog-import")
		if q := pu.Query(); len(q) > 0 {
			for _, k := range []string{"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"} {
				setStr(&ev.Props, k, q.Get(k))
			}
		}
		if err := im.add(ev); err != nil {
			return err
		}
	}
}

// isHTML says whether the response was a page: by its Content-Type when
// the log has the response headers, else by a path without an extension
// (or .html/.htm).
func isHTML(resp gjson.Result, p string) bool {
	if ct := resp.Get("Content-Type.0"); ct.Exists() {
		mt, _, err := mime.ParseMediaType(ct.String())
		return err == nil && (mt == "text/html" || mt == "application/xhtml+xml")
	}
	switch strings.ToLower(path.Ext(p)) {
	case "", ".html", ".htm":
		return true
	}
	return false
}

func hashHex(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
