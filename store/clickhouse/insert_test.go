package clickhouse

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestInsertsStayWithinMonths: a batch spanning 250 months is cut into
// inserts of at most maxInsertMonths months each, at line ends, nothing
// lost or repeated; lines without "ts" and quoted look-alikes count in no
// month.
func TestInsertsStayWithinMonths(t *testing.T) {
	var rows []byte
	start := time.Date(2000, 1, 15, 0, 0, 0, 0, time.UTC)
	for m := 0; m < 250; m++ {
		for i := 0; i < 3; i++ {
			ts := start.AddDate(0, m, 0).UnixMilli()
			rows = append(rows, fmt.Sprintf(`{"site":"s","uuid":"u%d-%d","name":"x\",\"ts\":1","distinct_id":"d","ts":%d,"t":"-"}`+"\n", m, i, ts)...)
		}
		rows = append(rows, `{"site":"s","person":"p"}`+"\n"...)
	}
	var parts [][]byte
	for rest := rows; len(rest) > 0; {
		n := monthsPrefix(rest, maxInsertMonths)
		if n == 0 || n < len(rest) && rest[n-1] != '\n' {
			t.Fatalf("cut at %d, not after a line", n)
		}
		parts = append(parts, rest[:n])
		rest = rest[n:]
	}
	if len(parts) != 3 {
		t.Fatalf("%d inserts for 250 months, want 3", len(parts))
	}
	for i, p := range parts {
		months := map[int64]bool{}
		for _, line := range bytes.SplitAfter(p, []byte("\n")) {
			if m, ok := lineMonth(line); ok {
				months[m] = true
			}
		}
		if len(months) > maxInsertMonths {
			t.Fatalf("insert %d holds %d months", i, len(months))
		}
	}
	if !bytes.Equal(bytes.Join(parts, nil), rows) {
		t.Fatal("the inserts do not add up to the batch")
	}
	if m, ok := lineMonth([]byte(`{"name":"a,\"ts\":5","ts":-1000}`)); !ok || m != 1969*12+12 {
		t.Fatalf("month %d %v, want December 1969", m, ok)
	}
}
