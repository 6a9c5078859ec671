package clickhouse

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestHotFieldsMatchColumns: each hot property fills the field that
// ships as its own column (row's fields and hotProps in one order), the
// first value of a key wins, and every row carries p_current_url, by
// which ship.go tells the rows of older releases.
func TestHotFieldsMatchColumns(t *testing.T) {
	if n := len(new(row).hotFields()); n != len(hotProps) {
		t.Fatalf("row has %d hot fields, hotProps %d", n, len(hotProps))
	}
	for i, h := range hotProps {
		r := row{Keys: []string{"other", h.key, h.key}, Vals: []string{"o", "first", "second"}}
		r.fillHot()
		j, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(j), `,"p_current_url":`) {
			t.Errorf("row without p_current_url: %s", j)
		}
		var m map[string]any
		if err := json.Unmarshal(j, &m); err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			if !strings.HasPrefix(k, "p_") {
				continue
			}
			want := ""
			if k == string(h.col) {
				want = "first"
			}
			if v != want {
				t.Errorf("hot %d (%s): column %s = %v, want %q", i, h.key, k, v, want)
			}
		}
		if m[string(h.col)] != "first" {
			t.Errorf("hot %d (%s): column %s missing from %s", i, h.key, h.col, j)
		}
	}
}
