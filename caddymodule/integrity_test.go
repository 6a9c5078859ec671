package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// SPEC §5.1: one process owns a database file, and a damaged file never
// stops Caddy or another site.

// writeBatches stores batches × 4 events of site in a new file at path, one
// log record per batch, and returns each batch's uuids and the file offsets
// where each batch's record starts and ends.
func writeBatches(t *testing.T, path, site string, batches int) (uuids [][]string, bounds []int64) {
	t.Helper()
	db, err := store.Open(path, store.Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	bounds = append(bounds, size())
	now := time.Now().Add(-time.Hour)
	for b := 0; b < batches; b++ {
		var evs []*store.Event
		var ids []string
		for i := 0; i < 4; i++ {
			at := now.Add(time.Duration(b*4+i) * time.Second)
			id := store.NewUUID(at)
			ids = append(ids, id)
			evs = append(evs, &store.Event{UUID: id, Site: site, Name: "$pageview", DistinctID: fmt.Sprintf("v%d", b%7), Time: at.UnixMilli(),
				Props: store.Props{{Key: "$pathname", Val: store.StringValue(fmt.Sprintf("/page/%d/%d", b, i))}, {Key: "$current_url", Val: store.StringValue(fmt.Sprintf("http://%s/page/%d/%d?q=%x", site, b, i, at.UnixNano()))}}})
		}
		if _, err := db.Append(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
		uuids = append(uuids, ids)
		bounds = append(bounds, size())
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return uuids, bounds
}

// apiEventsAt lists every event of the last day of the block at base.
func apiEventsAt(t *testing.T, base string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	cursor := ""
	for {
		var page struct {
			Results []apiEvent
			Next    *string
		}
		u := base + "/analytics/api/events?limit=1000&from=" + time.Now().Add(-24*time.Hour).UTC().Format(time.RFC3339)
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		getJSON(t, u, &page)
		for _, e := range page.Results {
			out[e.UUID] = true
		}
		if page.Next == nil {
			return out
		}
		cursor = *page.Next
	}
}

func statusOf(t *testing.T, method, url, body string) int {
	t.Helper()
	code, _ := send(t, method, url, []byte(body), nil)
	return code
}

// TestDamagedFileServesOn: of two site blocks with their own db files, one
// file has 4 KiB of zeros in its middle. Caddy loads; the other block serves
// pages and capture; the damaged block serves too, with every event of the
// records the zeros missed, and its damaged file is kept beside.
func TestDamagedFileServesOn(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.db"), filepath.Join(dir, "bad.db")
	uuids, bounds := writeBatches(t, bad, "bad.example", 60)
	data, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	from := bounds[25] + 17
	to := from + 4096
	if to > int64(len(data)) {
		t.Fatalf("fixture too small: %d bytes", len(data))
	}
	copy(data[from:to], make([]byte, 4096))
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	want, lost := map[string]bool{}, 0
	for b, ids := range uuids {
		if bounds[b+1] > from && bounds[b] < to {
			lost++
			continue
		}
		for _, id := range ids {
			want[id] = true
		}
	}

	startCaddy(t, fmt.Sprintf(testGlobal+`http://127.0.0.1:9080 {
	bind 127.0.0.1
	analytics {
		db %s
		site good.example
		rate_limit off
	}
	respond "good page" 200
}
http://localhost:9080 {
	bind 127.0.0.1
	analytics {
		db %s
		site bad.example
		rate_limit off
	}
	respond "bad page" 200
}
`, good, bad))
	if c := statusOf(t, "GET", "http://127.0.0.1:9080/", ""); c != 200 {
		t.Fatalf("the other block's page: %d", c)
	}
	if c := statusOf(t, "POST", "http://127.0.0.1:9080/_f/e/", `{"event":"ok","distinct_id":"g"}`); c != 200 {
		t.Fatalf("the other block's capture: %d", c)
	}
	if c := statusOf(t, "GET", "http://localhost:9080/", ""); c != 200 {
		t.Fatalf("the damaged block's page: %d", c)
	}
	if c := statusOf(t, "POST", "http://localhost:9080/_f/e/", `{"event":"after","distinct_id":"b"}`); c != 200 {
		t.Fatalf("the damaged block's capture: %d", c)
	}
	got := apiEventsAt(t, "http://localhost:9080")
	for id := range want {
		if !got[id] {
			t.Fatalf("intact event %s missing from the damaged block", id)
		}
	}
	if len(got) != len(want)+1 {
		t.Errorf("damaged block has %d events, want the %d intact ones and the new one", len(got), len(want))
	}
	if n := len(apiEventsAt(t, "http://127.0.0.1:9080")); n != 1 {
		t.Errorf("the other block has %d events, want 1", n)
	}
	copies, _ := filepath.Glob(bad + ".damaged-*")
	if len(copies) != 1 {
		t.Fatalf("damaged copies beside the db: %q", copies)
	}
	t.Logf("%d of %d batches intact (%d touched by the zeros), damaged copy %s", len(uuids)-lost, len(uuids), lost, filepath.Base(copies[0]))
}

// TestSecondProcessRefused: a second Caddy process naming a db file that a
// first one holds (here through a symlink) fails to load with an error
// naming the file and the holder; the first serves on.
func TestSecondProcessRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Caddy processes")
	}
	bin := buildCaddy(t)
	dir1, dir2 := t.TempDir(), t.TempDir()
	db := filepath.Join(dir1, "held.db")
	link := filepath.Join(dir2, "link.db")
	if err := os.Symlink(db, link); err != nil {
		t.Fatal(err)
	}
	cfg := func(port int, path string) string {
		return fmt.Sprintf(`{
	admin off
	http_port %[1]d
	persist_config off
}
http://127.0.0.1:%[1]d {
	bind 127.0.0.1
	analytics {
		db %[2]s
		site held.example
		rate_limit off
	}
	respond "page" 200
}
`, port, path)
	}
	first := startCaddyProc(t, bin, dir1, cfg(9182, db), "127.0.0.1:9182")

	cfgPath := filepath.Join(dir2, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cfg(9183, link)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, bin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	second.Env = append(os.Environ(), "XDG_DATA_HOME="+dir2, "XDG_CONFIG_HOME="+dir2, "HOME="+dir2)
	out, err := second.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("the second process did not fail to load (err %v, ctx %v):\n%s", err, ctx.Err(), out)
	}
	real, _ := filepath.EvalSymlinks(db)
	host, _ := os.Hostname()
	wantMsg := fmt.Sprintf("analytics db %s: in use by pid %d on host %s since ", real, first.cmd.Process.Pid, host)
	// Caddy prints the error inside a JSON log line: compare it unescaped.
	if !strings.Contains(unquoteLog(string(out)), wantMsg) {
		t.Fatalf("the error does not name the file and the holder; want %q in:\n%s", wantMsg, out)
	}
	for i := 0; i < 20; i++ {
		if c := statusOf(t, "GET", "http://127.0.0.1:9182/", ""); c != 200 {
			t.Fatalf("the first process's page: %d", c)
		}
		if c := statusOf(t, "POST", "http://127.0.0.1:9182/_f/e/", fmt.Sprintf(`{"event":"e%d","distinct_id":"d"}`, i)); c != 200 {
			t.Fatalf("the first process's capture: %d", c)
		}
	}
	first.kill9(t)
	if n := len(storedUUIDs(t, link, "held.example")); n != 20 {
		t.Fatalf("%d events in the file, want 20", n)
	}
}

// unquoteLog turns each JSON log line into the text of its string fields.
func unquoteLog(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			b.WriteString(line + "\n")
			continue
		}
		for _, v := range m {
			if s, ok := v.(string); ok {
				b.WriteString(s + "\n")
			}
		}
	}
	return b.String()
}

// TestSymlinkedBlocksShareOneStore: two site blocks name one db file, one
// through a symlink; they share one store (a second store would be refused
// the file's lock), and after a restart both sites' events are in the file,
// which opens cleanly.
func TestSymlinkedBlocksShareOneStore(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "data", "shared.db")
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		t.Fatal(err)
	}
	linkDir := filepath.Join(dir, "via")
	if err := os.Symlink(filepath.Join(dir, "data"), linkDir); err != nil {
		t.Fatal(err)
	}
	// The file does not exist yet: the second name goes through a
	// symlinked directory.
	startCaddy(t, fmt.Sprintf(testGlobal+`http://127.0.0.1:9080 {
	bind 127.0.0.1
	analytics {
		db %s
		site one.example
		rate_limit off
	}
	respond "one" 200
}
http://localhost:9080 {
	bind 127.0.0.1
	analytics {
		db %s
		site two.example
		rate_limit off
	}
	respond "two" 200
}
`, db, filepath.Join(linkDir, "shared.db")))
	for i := 0; i < 5; i++ {
		for _, base := range []string{"http://127.0.0.1:9080", "http://localhost:9080"} {
			if c := statusOf(t, "POST", base+"/_f/e/", `{"event":"x","distinct_id":"d`+strconv.Itoa(i)+`"}`); c != 200 {
				t.Fatalf("capture at %s: %d", base, c)
			}
		}
	}
	stopCaddy(t)
	c, err := store.CheckFile(db)
	if err != nil || len(c.Damage) != 0 {
		t.Fatalf("the shared file is damaged: %+v %v", c, err)
	}
	for _, site := range []string{"one.example", "two.example"} {
		if n := len(storedUUIDs(t, db, site)); n != 5 {
			t.Errorf("%s: %d events after a restart, want 5", site, n)
		}
	}
	if copies, _ := filepath.Glob(db + ".damaged-*"); len(copies) != 0 {
		t.Errorf("damaged copies: %q", copies)
	}
}
