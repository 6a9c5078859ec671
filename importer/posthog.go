package importer

import (
	"bufio"
	"io"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/firstpartyhq/firstparty/store"
)

// PostHog's event exports: JSON lines (a batch export's JSONLines files, or
// any NDJSON of events) with uuid, event, distinct_id, timestamp and
// properties — an object, or a JSON-encoded string as batch exports write
// it — and "$set"/"$set_once" as "set"/"set_once"; or a CSV with those
// columns, where properties is a JSON object or is spread over
// "properties.<name>" columns. A file ending in .csv (.csv.gz) is CSV.

func (im *importer) posthog(path string) error {
	p := strings.TrimSuffix(path, ".gz")
	if strings.HasSuffix(p, ".csv") {
		return im.withReader(path, im.posthogCSV)
	}
	return im.withReader(path, im.posthogNDJSON)
}

const maxLine = 8 << 20

func (im *importer) posthogNDJSON(r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	occ := occurrences{}
	for line := 1; ; line++ {
		b, err := readLine(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if err == errLongLine {
				im.res.Rows++
				im.badRow(line, "line longer than %d bytes", maxLine)
				continue
			}
			return err
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			continue
		}
		if err := im.row(); err != nil {
			return err
		}
		if !gjson.Valid(s) || !gjson.Parse(s).IsObject() {
			im.badRow(line, "not a JSON object")
			continue
		}
		o := gjson.Parse(s)
		get := func(k string) string { return o.Get(gjson.Escape(k)).String() }
		props := o.Get("properties")
		if props.Type == gjson.String && gjson.Valid(props.Str) {
			props = gjson.Parse(props.Str)
		}
		ev, msg := im.posthogEvent(get("uuid"), get("event"), get("distinct_id"), get("timestamp"), occ, s)
		if msg != "" {
			im.badRow(line, "%s", msg)
			continue
		}
		if props.IsObject() {
			props.ForEach(func(k, v gjson.Result) bool {
				ev.Props.Set(k.String(), store.ValueFromJSON(v))
				return true
			})
		}
		for _, k := range []string{"set", "set_once"} {
			v := o.Get(k)
			if v.Type == gjson.String && gjson.Valid(v.Str) {
				v = gjson.Parse(v.Str)
			}
			if v.IsObject() {
				ev.Props.SetIfMissing("$"+k, store.Value{Kind: store.KindJSON, S: v.Raw})
			}
		}
		if err := im.add(ev); err != nil {
			return err
		}
	}
}

// posthogEvent checks and builds the common part of an event; msg says
// what is wrong.
func (im *importer) posthogEvent(uuid, name, did, ts string, occ occurrences, raw string) (*store.Event, string) {
	if name == "" {
		return nil, "no event name"
	}
	if did == "" {
		return nil, "no distinct_id"
	}
	if len(name) > 200 || len(did) > 200 {
		return nil, "event name or distinct_id longer than 200 bytes"
	}
	t, err := parseTime(ts)
	if err != nil {
		return nil, err.Error()
	}
	if uuid == "" {
		uuid = derivedUUID("posthog", raw, occ.next(raw))
	}
	return &store.Event{UUID: uuid, Name: name, DistinctID: did, Time: t.UnixMilli()}, ""
}

func (im *importer) posthogCSV(r io.Reader) error {
	occ := occurrences{}
	return im.csvRows(r, func(line int, rec []string, col map[string]int) error {
		raw := strings.Join(rec, "\x00")
		ev, msg := im.posthogEvent(field(rec, col, "uuid"), field(rec, col, "event"), field(rec, col, "distinct_id"), field(rec, col, "timestamp"), occ, raw)
		if msg != "" {
			im.badRow(line, "%s", msg)
			return nil
		}
		if p := field(rec, col, "properties"); p != "" {
			o := gjson.Parse(p)
			if !gjson.Valid(p) || !o.IsObject() {
				im.badRow(line, "properties is not a JSON object")
				return nil
			}
			o.ForEach(func(k, v gjson.Result) bool {
				ev.Props.Set(k.String(), store.ValueFromJSON(v))
				return true
			})
		}
		for name, i := range col {
			if k, ok := strings.CutPrefix(name, "properties."); ok && k != "" && rec[i] != "" {
				ev.Props.Set(k, csvValue(rec[i]))
			}
		}
		return im.add(ev)
	})
}

// csvValue reads a CSV cell: JSON numbers, booleans, objects and arrays
// keep their type; anything else is a string.
func csvValue(s string) store.Value {
	if s == "true" || s == "false" || (len(s) > 0 && (s[0] == '{' || s[0] == '[' || s[0] == '-' || s[0] >= '0' && s[0] <= '9')) {
		if gjson.Valid(s) {
			return store.ValueFromJSON(gjson.Parse(s))
		}
	}
	return store.StringValue(s)
}

type longLineError struct{}

func (longLineError) Error() string { return "line too long" }

var errLongLine error = longLineError{}

// readLine reads one line, without its newline; a line over maxLine is
// skipped whole and reported as errLongLine.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				return buf, nil
			}
			return nil, err
		}
		if len(buf)+len(chunk) > maxLine {
			for isPrefix {
				if _, isPrefix, err = br.ReadLine(); err != nil {
					return nil, err
				}
			}
			return nil, errLongLine
		}
		buf = append(buf, chunk...)
		if !isPrefix {
			return buf, nil
		}
	}
}
