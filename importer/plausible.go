package importer

import (
	"archive/zip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// Plausible CE's CSV export: a zip of files named
// [imported_]<table>_<YYYYMMDD>_<YYYYMMDD>.csv, one row per day (and value)
// with daily aggregates. They are kept as imported aggregates (store/
// imported.go): imported_visitors gives the day's totals (visitors,
// pageviews, bounces, visits, visit_duration); pages, sources, entry and
// exit pages, browsers, devices, operating systems and locations give the
// day's breakdowns under the event properties the overview breaks down.
// custom_events is not imported (it names events, not pageviews).
// FILE may be the zip or the CSV files themselves.

var plausibleName = regexp.MustCompile(`^(?:imported_)?([a-z_]+)_(\d{8})_(\d{8})\.csv$`)

// plausibleTables maps a table to the columns that give the breakdown
// value, per property.
var plausibleTables = map[string]map[string]string{
	"pages":             {"$pathname": "page"},
	"entry_pages":       {"$entry_pathname": "entry_page"},
	"exit_pages":        {"$exit_pathname": "exit_page"},
	"sources":           {"$referring_domain": "source", "utm_source": "utm_source", "utm_medium": "utm_medium", "utm_campaign": "utm_campaign", "utm_content": "utm_content", "utm_term": "utm_term"},
	"browsers":          {"$browser": "browser"},
	"devices":           {"$device_type": "device"},
	"operating_systems": {"$os": "operating_system"},
	"locations":         {"$geoip_country_code": "country"},
}

func (im *importer) plausible(path string) error {
	if strings.HasSuffix(strings.ToLower(path), ".zip") {
		zr, err := zip.OpenReader(path)
		if err != nil {
			return err
		}
		defer zr.Close()
		seen := 0
		for _, f := range zr.File {
			name := filepath.Base(f.Name)
			if !plausibleName.MatchString(name) {
				continue
			}
			seen++
			rc, err := f.Open()
			if err != nil {
				return err
			}
			im.file = path + ":" + name
			err = im.plausibleCSV(name, rc)
			rc.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		im.file = path
		if seen == 0 {
			return fmt.Errorf("no Plausible export file (imported_<table>_<from>_<to>.csv) in the zip")
		}
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return im.plausibleCSV(filepath.Base(path), f)
}

func (im *importer) plausibleCSV(name string, r io.Reader) error {
	m := plausibleName.FindStringSubmatch(name)
	if m == nil {
		return fmt.Errorf("file name %q is not a Plausible export's (imported_<table>_<YYYYMMDD>_<YYYYMMDD>.csv)", name)
	}
	table := m[1]
	if table == "visitors" {
		return im.plausibleVisitors(r)
	}
	props, ok := plausibleTables[table]
	if !ok {
		im.progressNote("%s: table %s is not imported", name, table)
		return nil
	}
	// day → property → value → row
	days := map[string]map[string]map[string]*store.ImportedRow{}
	err := im.csvRows(r, func(line int, rec []string, col map[string]int) error {
		day, err := plausibleDay(field(rec, col, "date"))
		if err != nil {
			im.badRow(line, "%v", err)
			return nil
		}
		nums := map[string]int{}
		for _, k := range []string{"visitors", "pageviews", "visits", "entrances", "exits"} {
			if _, ok := col[k]; !ok {
				continue
			}
			n, err := strconv.Atoi(strings.TrimSpace(field(rec, col, k)))
			if err != nil || n < 0 {
				im.badRow(line, "%s: %q is not a count", k, clip(field(rec, col, k)))
				return nil
			}
			nums[k] = n
		}
		visits := max(nums["visits"], nums["entrances"], nums["exits"])
		d := days[day]
		if d == nil {
			d = map[string]map[string]*store.ImportedRow{}
			days[day] = d
		}
		for prop, c := range props {
			v := field(rec, col, c)
			if prop == "$referring_domain" && (v == "" || v == "Direct / None") {
				v = "$direct"
			}
			if prop == "$device_type" {
				v = strings.TrimSuffix(v, " ")
			}
			if v == "" {
				continue
			}
			vals := d[prop]
			if vals == nil {
				vals = map[string]*store.ImportedRow{}
				d[prop] = vals
			}
			row := vals[v]
			if row == nil {
				row = &store.ImportedRow{Value: v}
				vals[v] = row
			}
			row.Visitors += nums["visitors"]
			row.Pageviews += nums["pageviews"]
			row.Visits += visits
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, day := range sortedDays(days) {
		for prop, vals := range days[day] {
			rows := make([]store.ImportedRow, 0, len(vals))
			for _, r := range vals {
				rows = append(rows, *r)
			}
			sort.Slice(rows, func(i, j int) bool { return rows[i].Value < rows[j].Value })
			if err := im.db.SetImportedRows(im.o.Site, prop, day, rows); err != nil {
				return err
			}
		}
	}
	return nil
}

func (im *importer) plausibleVisitors(r io.Reader) error {
	days := map[string]store.ImportedTotals{}
	err := im.csvRows(r, func(line int, rec []string, col map[string]int) error {
		day, err := plausibleDay(field(rec, col, "date"))
		if err != nil {
			im.badRow(line, "%v", err)
			return nil
		}
		var n [5]int64
		for i, k := range []string{"visitors", "pageviews", "bounces", "visits", "visit_duration"} {
			v, err := strconv.ParseInt(strings.TrimSpace(field(rec, col, k)), 10, 64)
			if err != nil || v < 0 {
				im.badRow(line, "%s: %q is not a count", k, clip(field(rec, col, k)))
				return nil
			}
			n[i] = v
		}
		t := days[day] // a day split over rows adds up
		t.Visitors += int(n[0])
		t.Pageviews += int(n[1])
		t.Bounces += int(n[2])
		t.Visits += int(n[3])
		t.VisitDuration += n[4]
		days[day] = t
		return nil
	})
	if err != nil {
		return err
	}
	for _, day := range sortedDays(days) {
		if err := im.db.SetImportedDay(im.o.Site, day, days[day]); err != nil {
			return err
		}
		im.res.Days++
	}
	return nil
}

func plausibleDay(s string) (string, error) {
	t, err := time.Parse("2006-01-02", strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("date %q is not YYYY-MM-DD", clip(s))
	}
	if _, err := checkTime(t); err != nil {
		return "", err
	}
	return t.Format("2006-01-02"), nil
}

func sortedDays[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (im *importer) progressNote(format string, args ...any) {
	if im.o.Progress != nil {
		fmt.Fprintf(im.o.Progress, format+"\n", args...)
	}
}
