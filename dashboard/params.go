package dashboard

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// params are the query parameters every report shares.
type params struct {
	site     string
	from, to time.Time // [from, to)
	tz       *time.Location
	filters  []store.Filter
	cohort   string
}

// parseParams reads site, from, to, tz, filter and cohort. from and to are
// RFC 3339 or YYYY-MM-DD (a date-only `to` includes that whole day in tz);
// without them the range is the last 7 days in tz, today included.
func (h *Handler) parseParams(q url.Values, site string) (params, error) {
	p := params{site: site, tz: time.UTC, cohort: q.Get("cohort")}
	if tz := q.Get("tz"); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return p, fmt.Errorf("tz: unknown time zone %q", tz)
		}
		p.tz = loc
	}
	now := h.opts.Now().In(p.tz)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, p.tz)
	p.to = today.AddDate(0, 0, 1)
	p.from = today.AddDate(0, 0, -6)
	if s := q.Get("from"); s != "" {
		t, _, err := parseTimeParam(s, p.tz)
		if err != nil {
			return p, fmt.Errorf("from: %w", err)
		}
		p.from = t
	}
	if s := q.Get("to"); s != "" {
		t, dateOnly, err := parseTimeParam(s, p.tz)
		if err != nil {
			return p, fmt.Errorf("to: %w", err)
		}
		if dateOnly {
			t = t.AddDate(0, 0, 1)
		}
		p.to = t
	}
	if p.to.Before(p.from) {
		return p, fmt.Errorf("to (%s) is before from (%s)", p.to.Format(time.RFC3339), p.from.Format(time.RFC3339))
	}
	for _, f := range q["filter"] {
		flt, err := store.ParseFilter(f)
		if err != nil {
			return p, err
		}
		p.filters = append(p.filters, flt)
	}
	return p, nil
}

// parseTimeParam reads RFC 3339 or a date in loc.
func parseTimeParam(s string, loc *time.Location) (time.Time, bool, error) {
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return t, true, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, false, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), false, nil
	}
	return time.Time{}, false, fmt.Errorf("%q is neither RFC 3339 nor YYYY-MM-DD", s)
}

// intParam reads a positive integer parameter with a default and a maximum.
func intParam(q url.Values, name string, def, max int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: want a positive integer, got %q", name, s)
	}
	if n > max {
		n = max
	}
	return n, nil
}
