package importer

import (
	"io"
	"strings"

	"github.com/firstpartyhq/firstparty/store"
)

// Umami's event CSV (its website_event rows joined with their session):
// website_id, session_id, visit_id, event_id, hostname, browser, os, device,
// screen, language, country, region, city, url_path, url_query, utm_*,
// referrer_path, referrer_query, referrer_domain, page_title, click ids,
// event_type (1 pageview, 2 custom event), event_name, tag, distinct_id,
// created_at, job_id. event_id is kept as the uuid; the distinct id is
// distinct_id when set, else the session; the visit is the session id.

func (im *importer) umami(r io.Reader) error {
	occ := occurrences{}
	checked := false
	return im.csvRows(r, func(line int, rec []string, col map[string]int) error {
		if !checked {
			checked = true
			for _, c := range []string{"session_id", "event_type", "created_at", "url_path"} {
				if _, ok := col[c]; !ok {
					return errBadVersion("not an Umami event CSV: no " + c + " column")
				}
			}
		}
		f := func(name string) string { return field(rec, col, name) }
		t, err := parseTime(f("created_at"))
		if err != nil {
			im.badRow(line, "created_at: %v", err)
			return nil
		}
		ev := &store.Event{Time: t.UnixMilli()}
		switch f("event_type") {
		case "1":
			ev.Name = "$pageview"
		case "2":
			ev.Name = f("event_name")
			if ev.Name == "" {
				im.badRow(line, "custom event without event_name")
				return nil
			}
		default:
			// 3 and 4 are Umami's link and pixel hits, not site events.
			if t := f("event_type"); t == "3" || t == "4" {
				im.res.Ignored++
				return nil
			}
			im.badRow(line, "event_type %q", clip(f("event_type")))
			return nil
		}
		ev.DistinctID = f("distinct_id")
		if ev.DistinctID == "" {
			ev.DistinctID = f("session_id")
		}
		if ev.DistinctID == "" {
			im.badRow(line, "no session_id")
			return nil
		}
		if len(ev.Name) > 200 || len(ev.DistinctID) > 200 {
			im.badRow(line, "event name or distinct id longer than 200 bytes")
			return nil
		}
		if _, ok := parseUUIDish(f("event_id")); ok {
			ev.UUID = strings.ToLower(f("event_id"))
		} else {
			raw := strings.Join(rec, "\x00")
			ev.UUID = derivedUUID("umami", im.o.Site, raw, occ.next(raw))
		}
		host, path, query := f("hostname"), f("url_path"), f("url_query")
		if path == "" {
			path = "/"
		}
		u := "https://" + host + path
		if query != "" {
			u += "?" + query
		}
		if host != "" {
			setStr(&ev.Props, "$current_url", u)
		}
		setStr(&ev.Props, "$host", host)
		setStr(&ev.Props, "$pathname", path)
		setStr(&ev.Props, "$title", f("page_title"))
		sid := f("visit_id")
		if sid == "" {
			sid = f("session_id")
		}
		setStr(&ev.Props, "$session_id", sid)
		if d := f("referrer_domain"); d != "" {
			setStr(&ev.Props, "$referring_domain", d)
			ref := "https://" + d + f("referrer_path")
			if q := f("referrer_query"); q != "" {
				ref += "?" + q
			}
			setStr(&ev.Props, "$referrer", ref)
		} else {
			setStr(&ev.Props, "$referring_domain", "$direct")
		}
		setStr(&ev.Props, "$browser", umamiName(f("browser")))
		setStr(&ev.Props, "$os", f("os"))
		switch d := strings.ToLower(f("device")); d {
		case "desktop", "laptop":
			setStr(&ev.Props, "$device_type", "Desktop")
		case "mobile":
			setStr(&ev.Props, "$device_type", "Mobile")
		case "tablet":
			setStr(&ev.Props, "$device_type", "Tablet")
		}
		if w, h, ok := strings.Cut(f("screen"), "x"); ok {
			ev.Props.Set("$screen_width", csvValue(w))
			ev.Props.Set("$screen_height", csvValue(h))
		}
		setStr(&ev.Props, "$browser_language", f("language"))
		setStr(&ev.Props, "$geoip_country_code", strings.ToUpper(f("country")))
		region := f("region")
		if region == "" {
			region = f("subdivision1")
		}
		if _, r, ok := strings.Cut(region, "-"); ok {
			region = r
		}
		setStr(&ev.Props, "$geoip_subdivision_1_code", region)
		setStr(&ev.Props, "$geoip_city_name", f("city"))
		for _, k := range []string{"utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "gclid", "fbclid", "msclkid", "ttclid", "li_fat_id", "twclid"} {
			setStr(&ev.Props, k, f(k))
		}
		return im.add(ev)
	})
}

// umamiName capitalises Umami's browser ids ("chrome" → "Chrome",
// "ios" → "iOS").
func umamiName(s string) string {
	switch s {
	case "":
		return ""
	case "ios":
		return "Mobile Safari"
	case "crios":
		return "Chrome iOS"
	case "edge-chromium", "edge":
		return "Microsoft Edge"
	case "samsung":
		return "Samsung Internet"
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// parseUUIDish accepts the 36-character hyphenated form.
func parseUUIDish(s string) (string, bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return "", false
	}
	for i := 0; i < 36; i++ {
		c := s[i] | 0x20
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return s, true
}
