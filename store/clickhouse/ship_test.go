package clickhouse

import (
	"encoding/json"
	"testing"
)

// TestRowHead: shipping reads site, name and distinct_id from the head of
// an outbox row as a full decode does, whatever the strings hold.
func TestRowHead(t *testing.T) {
	for _, r := range []row{
		{Site: "s", UUID: "u", Name: "$pageview", DistinctID: "d", Keys: []string{"a"}, Vals: []string{"b"}},
		{Site: `a"b\c`, UUID: `"site":"x"`, Name: "näme \u2028 <x>", DistinctID: `{"distinct_id":"y"}`},
		{Site: "", Name: "", DistinctID: ""},
	} {
		j, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var want head
		if err := json.Unmarshal(j, &want); err != nil {
			t.Fatal(err)
		}
		got, ok := rowHead(string(j))
		if !ok || got != want {
			t.Errorf("rowHead(%s) = %+v, %v; want %+v", j, got, ok, want)
		}
	}
	plain, _ := json.Marshal(row{Site: "s", UUID: "u", Name: "n", DistinctID: "d"})
	if h, ok := rowHeadFast(string(plain)); !ok || h != (head{"s", "n", "d"}) {
		t.Errorf("rowHeadFast(%s) = %+v, %v", plain, h, ok)
	}
	if _, ok := rowHead(`not json`); ok {
		t.Error("rowHead accepted a broken row")
	}
}

// TestFillHot: a hot column is the first value of its key, as
// prop_vals[indexOf(prop_keys, key)] reads it.
func TestFillHot(t *testing.T) {
	r := row{Keys: []string{"$pathname", "$datacenter", "$pathname", "$datacenter"}, Vals: []string{"", "true", "/x", "false"}}
	r.fillHot()
	if r.PPathname != "" || r.PDatacenter != "true" {
		t.Errorf("fillHot: pathname %q, datacenter %q; want \"\", \"true\"", r.PPathname, r.PDatacenter)
	}
	r = row{Keys: []string{"a"}, Vals: []string{"b"}}
	r.fillHot()
	if r.PPathname != "" || r.PDatacenter != "" {
		t.Errorf("fillHot without the keys: %q, %q", r.PPathname, r.PDatacenter)
	}
}
