// Package importer brings history from other analytics tools into the
// store (SPEC §10): PostHog event exports (NDJSON or CSV), GoatCounter's CSV
// export and Umami's event CSV as events; Caddy's JSON access logs as
// server pageviews; Plausible CE's CSV export (daily aggregates) as
// imported aggregates. Every event gets a uuid that is the source's own or
// is derived from the row, so importing the same file twice stores it once.
// A bad row is reported with its file and line and skipped.
package importer

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/firstpartyhq/firstparty/collector"
	"github.com/firstpartyhq/firstparty/store"
)

// Formats are the import formats.
var Formats = []string{"posthog", "goatcounter", "umami", "plausible", "caddylog"}

// Options tune an import.
type Options struct {
	// Site is the site the data is imported into. Required.
	Site string
	// Progress receives a line now and then during long imports; nil is
	// silent.
	Progress io.Writer
	// UA parses User-Agents (caddylog); default a fresh parser.
	UA *collector.UAParser
	// Batch is how many events one Append takes; default 5000.
	Batch int
}

// BadRow is a row that was skipped.
type BadRow struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Err  string `json:"error"`
}

func (b BadRow) String() string { return fmt.Sprintf("%s:%d: %s", b.File, b.Line, b.Err) }

// Result counts what an import did.
type Result struct {
	Rows       int // data rows read
	Stored     int // events stored
	Duplicates int // events already stored (same uuid)
	Ignored    int // rows left out by the format's rules (bots, assets, ...)
	Days       int // days of imported aggregates written
	Bad        []BadRow
}

// maxBadReported bounds the list of bad rows kept; all are counted.
const maxBadReported = 1000

// Importer is the state of one import.
type importer struct {
	ctx     context.Context
	db      *store.DB
	o       Options
	res     *Result
	batch   []*store.Event
	bad     int
	started time.Time
	lastMsg time.Time
	file    string
}

// Import reads files in format into db.
func Import(ctx context.Context, db *store.DB, format string, files []string, o Options) (Result, error) {
	var res Result
	if o.Site == "" {
		return res, errors.New("import: a site is required")
	}
	if o.Batch <= 0 {
		o.Batch = 5000
	}
	if o.UA == nil {
		o.UA = collector.NewUAParser(4096)
	}
	im := &importer{ctx: ctx, db: db, o: o, res: &res, started: time.Now(), lastMsg: time.Now()}
	for _, f := range files {
		im.file = f
		var err error
		switch format {
		case "posthog":
			err = im.posthog(f)
		case "goatcounter":
			err = im.withReader(f, im.goatcounter)
		case "umami":
			err = im.withReader(f, im.umami)
		case "plausible":
			err = im.plausible(f)
		case "caddylog":
			err = im.withReader(f, im.caddylog)
		default:
			return res, fmt.Errorf("import format %q: want one of %s", format, strings.Join(Formats, ", "))
		}
		if err == nil {
			err = im.flush()
		}
		if err != nil {
			return res, fmt.Errorf("%s: %w", f, err)
		}
	}
	im.progress(true)
	return res, nil
}

// withReader opens a file (gunzipping *.gz) and hands it to fn.
func (im *importer) withReader(path string, fn func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	}
	return fn(r)
}

// badRow records a skipped row.
func (im *importer) badRow(line int, format string, args ...any) {
	im.bad++
	if len(im.res.Bad) < maxBadReported {
		im.res.Bad = append(im.res.Bad, BadRow{File: im.file, Line: line, Err: fmt.Sprintf(format, args...)})
	}
	if im.o.Progress != nil && im.bad <= 20 {
		fmt.Fprintf(im.o.Progress, "skipped %s:%d: %s\n", im.file, line, fmt.Sprintf(format, args...))
	}
}

// add queues an event, committing a batch when full.
func (im *importer) add(ev *store.Event) error {
	ev.Site = im.o.Site
	im.batch = append(im.batch, ev)
	if len(im.batch) >= im.o.Batch {
		return im.flush()
	}
	return nil
}

func (im *importer) flush() error {
	if len(im.batch) == 0 {
		return nil
	}
	out, err := im.db.Append(im.ctx, im.batch)
	if err != nil {
		return err
	}
	for _, o := range out {
		if o == store.Duplicate {
			im.res.Duplicates++
		} else {
			im.res.Stored++
		}
	}
	im.batch = im.batch[:0]
	im.progress(false)
	return nil
}

// row counts a data row and reports progress every few seconds.
func (im *importer) row() error {
	im.res.Rows++
	if im.res.Rows%4096 == 0 {
		im.progress(false)
		if err := im.ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (im *importer) progress(final bool) {
	if im.o.Progress == nil {
		return
	}
	now := time.Now()
	if !final && now.Sub(im.lastMsg) < 2*time.Second {
		return
	}
	im.lastMsg = now
	r := im.res
	word := "importing"
	if final {
		word = "imported"
	}
	fmt.Fprintf(im.o.Progress, "%s: %d rows, %d events stored, %d already there, %d left out, %d aggregate days, %d bad rows (%s)\n",
		word, r.Rows, r.Stored, r.Duplicates, r.Ignored, r.Days, im.bad, now.Sub(im.started).Round(time.Millisecond))
}

// csvRows reads a CSV with a header line and calls fn with each data row,
// its line number and the column index. Rows with the wrong number of
// fields or unparseable quoting are reported and skipped.
func (im *importer) csvRows(r io.Reader, fn func(line int, rec []string, col map[string]int) error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			return errors.New("empty file")
		}
		return fmt.Errorf("header: %w", err)
	}
	col := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		col[h] = i
	}
	n := len(header)
	hdr := strings.Join(header, ",")
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				im.res.Rows++
				im.badRow(pe.StartLine, "%v", pe.Err)
				continue
			}
			return err
		}
		if len(rec) == 1 && rec[0] == "" {
			continue // a blank line
		}
		if err := im.row(); err != nil {
			return err
		}
		if strings.Join(rec, ",") == hdr {
			continue // a repeated header (concatenated exports)
		}
		if len(rec) != n {
			im.badRow(line, "%d fields, the header has %d", len(rec), n)
			continue
		}
		if err := fn(line, rec, col); err != nil {
			return err
		}
	}
}

// field returns the named column of rec, "" when the file has none.
func field(rec []string, col map[string]int, name string) string {
	if i, ok := col[name]; ok && i < len(rec) {
		return rec[i]
	}
	return ""
}

// derivedUUID makes a uuid from the row's content: the same row gives the
// same uuid, so a second import of it is a duplicate.
func derivedUUID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x80 // version 8: custom
	u[8] = u[8]&0x3f | 0x80
	const hx = "0123456789abcdef"
	b := make([]byte, 0, 36)
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hx[c>>4], hx[c&15])
	}
	return string(b)
}

// occurrences numbers identical rows so that two real, identical rows of a
// file (same page, same second, same visitor) stay two events, and the
// same rows imported again map to the same uuids.
type occurrences map[[32]byte]int

func (o occurrences) next(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	n := o[k]
	o[k] = n + 1
	return fmt.Sprint(n)
}

// parseTime reads the timestamps the exports use: RFC 3339 (with or without
// fraction or zone), "YYYY-MM-DD hh:mm:ss[.frac][zone]", Unix seconds or
// milliseconds. A time without a zone is UTC.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("no timestamp")
	}
	for _, layout := range []string{
		time.RFC3339Nano,
		"2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999Z07",
		"2006-01-02 15:04:05.999999999 -0700 MST",
		"2006-01-02 15:04:05.999999999",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return checkTime(t.UTC())
		}
	}
	var n float64
	if _, err := fmt.Sscan(s, &n); err == nil && !strings.ContainsAny(s, " -:") {
		if n > 1e11 { // milliseconds
			return checkTime(time.UnixMilli(int64(n)).UTC())
		}
		return checkTime(time.Unix(0, int64(n*1e9)).UTC())
	}
	return time.Time{}, fmt.Errorf("timestamp %q not understood", clip(s))
}

func checkTime(t time.Time) (time.Time, error) {
	if t.Year() < 1995 || t.After(time.Now().Add(48*time.Hour)) {
		return t, fmt.Errorf("timestamp %s out of range", t.Format(time.RFC3339))
	}
	return t, nil
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

func setStr(ps *store.Props, key, v string) {
	if v != "" {
		ps.Set(key, store.StringValue(v))
	}
}
