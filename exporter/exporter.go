// Package exporter writes a site's events in portable formats: NDJSON and
// CSV in the shapes of the dashboard's /api/export, and Apache Parquet. All
// three stream: the store hands over events a window at a time and the
// writers keep at most one Parquet row group in memory.
package exporter

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"

	"github.com/firstpartyhq/firstparty/store"
)

// Formats are the export formats.
var Formats = []string{"ndjson", "csv", "parquet"}

// CSVHeader is the first line of a CSV export, the columns of the
// dashboard's /api/export?format=csv.
var CSVHeader = []string{"uuid", "event", "distinct_id", "person_id", "timestamp", "properties"}

// Row is one event in a Parquet export. Properties are the JSON object as
// text, so that any reader gets every property without a fixed schema.
type Row struct {
	UUID       string `parquet:"uuid"`
	Event      string `parquet:"event"`
	DistinctID string `parquet:"distinct_id"`
	PersonID   string `parquet:"person_id"`
	Timestamp  int64  `parquet:"timestamp,timestamp(millisecond)"`
	Properties string `parquet:"properties,json"`
}

// rowGroupRows is how many rows a Parquet row group holds; it bounds the
// writer's memory (a few tens of MB for typical events).
const rowGroupRows = 50000

// Export writes every event of q to w in format and returns how many.
func Export(ctx context.Context, st store.Reports, q store.Query, format string, w io.Writer) (int, error) {
	n := 0
	switch format {
	case "ndjson", "":
		bw := bufio.NewWriterSize(w, 64<<10)
		var line []byte
		err := st.Export(ctx, q, func(ev *store.Event, pid string) error {
			line = append(ev.AppendJSON(line[:0], pid), '\n')
			n++
			_, err := bw.Write(line)
			return err
		})
		if err != nil {
			return n, err
		}
		return n, bw.Flush()
	case "csv":
		bw := bufio.NewWriterSize(w, 64<<10)
		cw := csv.NewWriter(bw)
		cw.Write(CSVHeader)
		var props []byte
		rec := make([]string, len(CSVHeader))
		err := st.Export(ctx, q, func(ev *store.Event, pid string) error {
			props = ev.Props.AppendJSON(props[:0])
			rec[0], rec[1], rec[2], rec[3] = CSVCell(ev.UUID), CSVCell(ev.Name), CSVCell(ev.DistinctID), pid
			rec[4], rec[5] = store.FormatTime(ev.Time), string(props)
			n++
			return cw.Write(rec)
		})
		if err != nil {
			return n, err
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return n, err
		}
		return n, bw.Flush()
	case "parquet":
		pw := parquet.NewGenericWriter[Row](w, parquet.Compression(&parquet.Zstd))
		buf := make([]Row, 0, 1024)
		var props []byte
		inGroup := 0
		flush := func() error {
			if len(buf) == 0 {
				return nil
			}
			if _, err := pw.Write(buf); err != nil {
				return err
			}
			inGroup += len(buf)
			buf = buf[:0]
			if inGroup >= rowGroupRows {
				inGroup = 0
				return pw.Flush()
			}
			return nil
		}
		err := st.Export(ctx, q, func(ev *store.Event, pid string) error {
			props = ev.Props.AppendJSON(props[:0])
			buf = append(buf, Row{UUID: ev.UUID, Event: ev.Name, DistinctID: ev.DistinctID, PersonID: pid, Timestamp: ev.Time, Properties: string(props)})
			n++
			if len(buf) == cap(buf) {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return n, err
		}
		return n, pw.Close()
	}
	return 0, fmt.Errorf("format %q: want ndjson, csv or parquet", format)
}

// CSVCell keeps a spreadsheet from reading a cell as a formula (SPEC §5.1):
// a value starting with =, +, -, @, tab or CR gets a leading '.
func CSVCell(s string) string {
	if s != "" {
		switch s[0] {
		case '=', '+', '-', '@', '\t', '\r':
			return "'" + s
		}
	}
	return s
}
