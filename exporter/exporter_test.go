package exporter_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/firstpartyhq/firstparty/exporter"
	"github.com/firstpartyhq/firstparty/store"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// fill appends n events to site straight into the store, in big batches.
func fill(t testing.TB, db *store.DB, site string, n int) {
	t.Helper()
	const batch = 20000
	for i := 0; i < n; i += batch {
		evs := make([]*store.Event, 0, batch)
		for j := i; j < min(n, i+batch); j++ {
			evs = append(evs, &store.Event{
				Site: site, Name: "$pageview", DistinctID: fmt.Sprintf("u%d", j%5000),
				Time: t0.Add(time.Duration(j) * time.Second).UnixMilli(),
				Props: store.Props{
					{Key: "$current_url", Val: store.StringValue(fmt.Sprintf("https://ex.com/page/%d?q=%d", j%300, j))},
					{Key: "$pathname", Val: store.StringValue(fmt.Sprintf("/page/%d", j%300))},
					{Key: "$session_id", Val: store.StringValue(fmt.Sprintf("s%d", j/20))},
					{Key: "n", Val: store.NumberValue(float64(j))},
					{Key: "note", Val: store.StringValue("=cmd|' /C calc'!A0")},
				},
			})
		}
		if _, err := db.Append(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
	}
}

func all(site string) store.Query {
	return store.Query{Site: site, From: time.Unix(0, 0), To: time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// heapWatcher records the largest live heap (after a collection) seen at
// its samples, every 16 MB of output.
type heapWatcher struct {
	w    io.Writer
	n    int64
	peak uint64
	ms   runtime.MemStats
	last int64
}

func (h *heapWatcher) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	if h.n-h.last > 16<<20 {
		h.last = h.n
		runtime.GC()
		runtime.ReadMemStats(&h.ms)
		h.peak = max(h.peak, h.ms.HeapAlloc)
	}
	return h.w.Write(p)
}

// TestExportMillionBoundedMemory streams a million events as NDJSON and as
// CSV and checks that the heap grows by far less than the output: the
// export holds a window of events, never all of them.
func TestExportMillionBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("a million events")
	}
	// No background compaction: its merges would come and go in the heap
	// the test measures.
	db, err := store.Open(filepath.Join(t.TempDir(), "m.db"), store.Options{CompactAfter: 1 << 30, CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 1000000
	fill(t, db, "big.example", n)
	// Group commits under load can make blocks of any size; compacted, they
	// are the store's block size, as they are after the first minutes of
	// a running server. The export holds two windows' blocks at most.
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"ndjson", "csv"} {
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		hw := &heapWatcher{w: io.Discard}
		got, err := exporter.Export(context.Background(), db, all("big.example"), format, hw)
		if err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Fatalf("%s: exported %d events, want %d", format, got, n)
		}
		growth := int64(hw.peak) - int64(base.HeapAlloc)
		t.Logf("%s: %d events, %d MB written, live heap %d MB before, peak live growth %d MB",
			format, got, hw.n>>20, base.HeapAlloc>>20, growth>>20)
		const bound = 64 << 20
		if hw.n < 3*bound {
			t.Fatalf("%s: output of %d bytes is too small to tell streaming from buffering", format, hw.n)
		}
		if growth > bound {
			t.Fatalf("%s: heap grew by %d MB during the export (bound %d MB): not streaming", format, growth>>20, bound>>20)
		}
	}
}

// TestExportFormatsAgree exports the same events as NDJSON, CSV and
// Parquet and reads the Parquet file back with parquet-go's untyped reader
// (by the file's own schema, not our Row type): the same rows.
func TestExportFormatsAgree(t *testing.T) {
	db, err := store.Open(":memory:", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 3000
	fill(t, db, "pq.example", n)
	// An event with awkward values.
	db.Append(context.Background(), []*store.Event{{Site: "pq.example", Name: "odd \"name\",\n", DistinctID: "-1+1",
		Time: t0.Add(-time.Hour).UnixMilli(), Props: store.Props{{Key: "k", Val: store.StringValue("ü\x00<b>")}}}})

	type rec struct{ UUID, Event, DistinctID, PersonID, Timestamp, Props string }
	var want []rec
	var nd bytes.Buffer
	if _, err := exporter.Export(context.Background(), db, all("pq.example"), "ndjson", &nd); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&nd)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			UUID       string          `json:"uuid"`
			Event      string          `json:"event"`
			DistinctID string          `json:"distinct_id"`
			PersonID   string          `json:"person_id"`
			Timestamp  string          `json:"timestamp"`
			Properties json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec{e.UUID, e.Event, e.DistinctID, e.PersonID, e.Timestamp, string(e.Properties)})
	}
	if len(want) != n+1 {
		t.Fatalf("ndjson: %d rows, want %d", len(want), n+1)
	}

	var cb bytes.Buffer
	if _, err := exporter.Export(context.Background(), db, all("pq.example"), "csv", &cb); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&cb).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != n+2 || fmt.Sprint(rows[0]) != fmt.Sprint(exporter.CSVHeader) {
		t.Fatalf("csv: %d rows, header %v", len(rows), rows[0])
	}
	for i, r := range rows[1:] {
		w := want[i]
		if r[0] != w.UUID || r[1] != w.Event || r[3] != w.PersonID || r[4] != w.Timestamp || r[5] != w.Props {
			t.Fatalf("csv row %d = %q, ndjson %+v", i+1, r, w)
		}
		if r[2] != exporter.CSVCell(w.DistinctID) {
			t.Fatalf("csv row %d distinct_id %q", i+1, r[2])
		}
	}
	if rows[1][2] != "'-1+1" {
		t.Fatalf("csv: a cell starting with - must be prefixed with ': %q", rows[1][2])
	}

	path := filepath.Join(t.TempDir(), "e.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exporter.Export(context.Background(), db, all("pq.example"), "parquet", f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// Independent read: open the file, take the column names from its
	// schema, read untyped rows.
	pf, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	st, _ := pf.Stat()
	file, err := parquet.OpenFile(pf, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if file.NumRows() != int64(len(want)) {
		t.Fatalf("parquet: %d rows, want %d", file.NumRows(), len(want))
	}
	col := map[string]int{}
	for i, c := range file.Schema().Columns() {
		col[c[0]] = i
	}
	for _, name := range []string{"uuid", "event", "distinct_id", "person_id", "timestamp", "properties"} {
		if _, ok := col[name]; !ok {
			t.Fatalf("parquet: no column %q in %v", name, file.Schema())
		}
	}
	r := parquet.NewReader(file)
	i := 0
	buf := make([]parquet.Row, 100)
	for {
		k, err := r.ReadRows(buf)
		for _, row := range buf[:k] {
			w := want[i]
			got := rec{row[col["uuid"]].String(), row[col["event"]].String(), row[col["distinct_id"]].String(),
				row[col["person_id"]].String(), store.FormatTime(row[col["timestamp"]].Int64()), row[col["properties"]].String()}
			if got != w {
				t.Fatalf("parquet row %d = %+v, want %+v", i, got, w)
			}
			i++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if i != len(want) {
		t.Fatalf("parquet: read %d rows, want %d", i, len(want))
	}
}
