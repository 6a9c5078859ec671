package importer

import (
	"io"
	"net/url"
	"strings"

	"github.com/firstpartyhq/firstparty/store"
)

// GoatCounter's CSV export (format version 2): 2Path, Title, Event,
// UserAgent, Browser, System, Session, Bot, Referrer, Referrer scheme,
// Screen size, Location, FirstVisit, Date. A row is a pageview of Path, or,
// with Event true, a custom event named Path. Bot rows (Bot not 0) are
// left out. The session is GoatCounter's visitor id, used as the distinct
// id and the session id.

func (im *importer) goatcounter(r io.Reader) error {
	occ := occurrences{}
	versionChecked := false
	return im.csvRows(r, func(line int, rec []string, col map[string]int) error {
		if !versionChecked {
			versionChecked = true
			if _, ok := col["2Path"]; !ok {
				if _, v1 := col["1Path"]; v1 {
					return errBadVersion("GoatCounter export format 1; export again from a current GoatCounter (format 2)")
				}
				return errBadVersion("not a GoatCounter CSV export: the header has no 2Path column")
			}
		}
		path := field(rec, col, "2Path")
		date := field(rec, col, "Date")
		if path == "" {
			im.badRow(line, "no path")
			return nil
		}
		t, err := parseTime(date)
		if err != nil {
			im.badRow(line, "%v", err)
			return nil
		}
		if b := field(rec, col, "Bot"); b != "" && b != "0" {
			im.res.Ignored++
			return nil
		}
		session := field(rec, col, "Session")
		raw := strings.Join(rec, "\x00")
		ev := &store.Event{
			UUID: derivedUUID("goatcounter", im.o.Site, raw, occ.next(raw)),
			Time: t.UnixMilli(),
		}
		ev.DistinctID = session
		if ev.DistinctID == "" {
			ev.DistinctID = derivedUUID("goatcounter-visitor", im.o.Site, raw)
		}
		if strings.EqualFold(field(rec, col, "Event"), "true") {
			ev.Name = path
			if len(ev.Name) > 200 {
				im.badRow(line, "event name longer than 200 bytes")
				return nil
			}
		} else {
			ev.Name = "$pageview"
			p := path
			if !strings.HasPrefix(p, "/") {
				p = "/" + p
			}
			setStr(&ev.Props, "$pathname", p)
			setStr(&ev.Props, "$current_url", "https://"+im.o.Site+p)
			setStr(&ev.Props, "$host", im.o.Site)
		}
		setStr(&ev.Props, "$title", field(rec, col, "Title"))
		setStr(&ev.Props, "$session_id", session)
		name, version := splitVersion(field(rec, col, "Browser"))
		setStr(&ev.Props, "$browser", name)
		setStr(&ev.Props, "$browser_version", version)
		name, version = splitVersion(field(rec, col, "System"))
		setStr(&ev.Props, "$os", name)
		setStr(&ev.Props, "$os_version", version)
		ref := field(rec, col, "Referrer")
		switch field(rec, col, "Referrer scheme") {
		case "h":
			u := ref
			if !strings.Contains(u, "://") {
				u = "https://" + u
			}
			setStr(&ev.Props, "$referrer", u)
			if pu, err := url.Parse(u); err == nil {
				setStr(&ev.Props, "$referring_domain", pu.Hostname())
			}
		case "g", "o":
			setStr(&ev.Props, "$referring_domain", ref)
		case "c":
			setStr(&ev.Props, "utm_source", ref)
		}
		if ref == "" {
			setStr(&ev.Props, "$referring_domain", "$direct")
		}
		if parts := strings.Split(field(rec, col, "Screen size"), ","); len(parts) >= 2 && parts[0] != "" && parts[0] != "0" {
			ev.Props.Set("$screen_width", csvValue(parts[0]))
			ev.Props.Set("$screen_height", csvValue(parts[1]))
		}
		if loc := field(rec, col, "Location"); loc != "" {
			cc, region, _ := strings.Cut(loc, "-")
			setStr(&ev.Props, "$geoip_country_code", strings.ToUpper(cc))
			setStr(&ev.Props, "$geoip_subdivision_1_code", region)
		}
		return im.add(ev)
	})
}

type errBadVersion string

func (e errBadVersion) Error() string { return string(e) }

// splitVersion splits "Firefox 120" into name and version.
func splitVersion(s string) (string, string) {
	s = strings.TrimSpace(s)
	i := strings.LastIndexByte(s, ' ')
	if i < 0 {
		return s, ""
	}
	v := s[i+1:]
	if v == "" || v[0] < '0' || v[0] > '9' {
		return s, ""
	}
	return s[:i], v
}
