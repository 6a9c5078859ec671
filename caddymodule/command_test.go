package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// runCLI runs the built caddy with args and returns its combined output
// and exit code.
func runCLI(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

func TestAnalyticsHelpListsCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds caddy")
	}
	bin := buildCaddy(t)
	out, code := runCLI(t, bin, "help", "analytics")
	if code != 0 {
		t.Fatalf("caddy help analytics: exit %d\n%s", code, out)
	}
	for _, c := range []string{"backup", "restore", "export", "import", "delete-person", "verify"} {
		if !regexp.MustCompile(`(?m)^\s+` + c + `\s`).MatchString(out) {
			t.Errorf("caddy help analytics does not list %q:\n%s", c, out)
		}
	}
}

// TestBackupUnderLoad takes a backup through the admin API of a real Caddy
// while clients post events, restores it into a fresh file and checks that
// every event acknowledged before the backup began is there, whole; verify
// passes on the backup and fails, naming the offset, on a damaged copy.
func TestBackupUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a Caddy process")
	}
	bin := buildCaddy(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "live.db")
	// Ports of its own: the in-process test Caddy (caddytest) keeps 2999
	// and 9080 between tests.
	addr := "127.0.0.1:9183"
	const admin = "127.0.0.1:2997"
	cfg := fmt.Sprintf(`{
	admin `+admin+`
	http_port 9183
	persist_config off
}
http://%s {
	bind 127.0.0.1
	analytics {
		db %s
		site backup.example
		rate_limit off
	}
}
`, addr, db)
	p := startCaddyProc(t, bin, dir, cfg, addr)
	defer p.cmd.Process.Kill()

	var mu sync.Mutex
	acked := map[string]string{} // uuid → distinct id
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var body strings.Builder
				ids := map[string]string{}
				body.WriteString(`{"api_key":"k","batch":[`)
				for j := 0; j < 1+i%10; j++ {
					id := store.NewUUID(time.Now())
					did := fmt.Sprintf("w%d-%d", w, i)
					ids[id] = did
					if j > 0 {
						body.WriteByte(',')
					}
					fmt.Fprintf(&body, `{"event":"load","distinct_id":%q,"uuid":%q,"properties":{"$current_url":"http://backup.example/p%d","i":%d,"pad":"%s"}}`, did, id, j, i, strings.Repeat("x", 64))
				}
				body.WriteString("]}")
				res, err := client.Post("http://"+addr+"/_f/batch/", "application/json", strings.NewReader(body.String()))
				if err != nil {
					t.Errorf("post: %v", err)
					return
				}
				res.Body.Close()
				if res.StatusCode == 200 {
					mu.Lock()
					for id, did := range ids {
						acked[id] = did
					}
					mu.Unlock()
					n.Add(int64(len(ids)))
				}
			}
		}(w)
	}
	for n.Load() < 5000 {
		time.Sleep(5 * time.Millisecond) // other goroutines' progress: polled
	}
	// Everything acknowledged up to here must be in the backup.
	mu.Lock()
	before := make(map[string]string, len(acked))
	for k, v := range acked {
		before[k] = v
	}
	mu.Unlock()
	backup := filepath.Join(dir, "backup.db")
	out, code := runCLI(t, bin, "analytics", "backup", "--db", db, "--out", backup, "--admin", admin)
	atBackup := n.Load()
	// Let the load go on a little after the backup, then stop it.
	for n.Load() < atBackup+1000 {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if code != 0 || !strings.Contains(out, "admin API") {
		t.Fatalf("backup: exit %d, want it through the admin API:\n%s", code, out)
	}
	t.Logf("%s(%d acknowledged before it began, %d at its end)", out, len(before), atBackup)

	// The admin API reports the open database.
	var health struct {
		Databases []struct {
			DB  string `json:"db"`
			Log struct {
				FileBytes int64 `json:"file_bytes"`
				Events    int   `json:"events"`
			} `json:"log"`
			History *struct {
				Dir string `json:"dir"`
			} `json:"history"`
			Shipping any `json:"shipping"`
		} `json:"databases"`
	}
	res, err := http.Get("http://" + admin + "/analytics/health")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(res.Body).Decode(&health)
	res.Body.Close()
	if len(health.Databases) != 1 || health.Databases[0].DB != db || health.Databases[0].Log.Events < len(before) || health.Databases[0].Log.FileBytes == 0 ||
		health.Databases[0].History == nil || health.Databases[0].History.Dir != store.HistoryDir(db) || health.Databases[0].Shipping != nil {
		t.Fatalf("/analytics/health = %+v", health)
	}
	var sites struct {
		Databases []struct {
			Sites []struct {
				Site   string `json:"site"`
				Events int    `json:"events"`
			} `json:"sites"`
		} `json:"databases"`
	}
	res, err = http.Get("http://" + admin + "/analytics/sites")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(res.Body).Decode(&sites)
	res.Body.Close()
	if len(sites.Databases) != 1 || len(sites.Databases[0].Sites) != 1 || sites.Databases[0].Sites[0].Site != "backup.example" {
		t.Fatalf("/analytics/sites = %+v", sites)
	}

	out, code = runCLI(t, bin, "analytics", "verify", "--db", backup)
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("verify of the backup: exit %d\n%s", code, out)
	}
	// Commands that would open the file a running Caddy holds refuse.
	for _, args := range [][]string{
		{"restore", "--from", backup, "--db", db},
		{"export", "--db", db, "--format", "ndjson"},
		{"import", "--db", db, "--site", "backup.example", "--format", "umami", filepath.Join("..", "testdata", "import", "umami.csv")},
		{"delete-person", "--db", db, "--site", "backup.example", "w0-0"},
	} {
		out, code := runCLI(t, bin, append(append([]string{"analytics"}, args...), "--admin", admin)...)
		if code == 0 || !strings.Contains(out, "is open in the Caddy at "+admin) {
			t.Fatalf("%s on the database Caddy serves: exit %d\n%s", args[0], code, out)
		}
	}
	restored := filepath.Join(dir, "restored", "r.db")
	out, code = runCLI(t, bin, "analytics", "restore", "--from", backup, "--db", restored)
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}

	// Every event acknowledged before the backup began is in the restored
	// database, each whole (name, distinct id, properties).
	rdb, err := store.Open(restored, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	q := store.EventQuery{Site: "backup.example", To: 1 << 62, Limit: 1000}
	for {
		page, err := rdb.Events(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Results {
			got[e.UUID] = true
			mu.Lock()
			did, ok := acked[e.UUID]
			mu.Unlock()
			if !ok || e.Name != "load" || e.DistinctID != did || len(e.Props.Str("pad")) != 64 || e.Props.Str("i") == "" {
				t.Fatalf("restored event not as sent (acknowledged %v): %+v", ok, e)
			}
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	rdb.Close()
	missing := 0
	for id := range before {
		if !got[id] {
			missing++
		}
	}
	t.Logf("restored %d events; %d acknowledged before the backup", len(got), len(before))
	if missing > 0 {
		t.Fatalf("%d events acknowledged before the backup began are missing from it", missing)
	}

	// A damaged copy: break the framing of a record in the middle.
	data, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data[len(data)/2:], []byte("\r\n*3\r\n$3\r\nset\r\n"))
	if at < 0 {
		t.Fatal("no record found in the middle of the backup")
	}
	start := len(data)/2 + at + 2                // the '*' of the record
	data[start+len("*3\r\n$3\r\nset\r\n")] = 'X' // the key's "$len" line
	damaged := filepath.Join(dir, "damaged.db")
	os.WriteFile(damaged, data, 0o600)
	out, code = runCLI(t, bin, "analytics", "verify", "--db", damaged)
	if code != 1 || !strings.Contains(out, "offset "+strconv.Itoa(start)+":") {
		t.Fatalf("verify of a copy damaged at byte %d: exit %d, want 1 and the offset\n%s", start, code, out)
	}
}

// TestImportExportCLI drives `caddy analytics` import, export,
// delete-person and verify on a file, as an operator would.
func TestImportExportCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds caddy")
	}
	bin := buildCaddy(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "cli.db")
	fixture := filepath.Join("..", "testdata", "import", "umami.csv")
	out, code := runCLI(t, bin, "analytics", "import", "--db", db, "--site", "cli.example", "--format", "umami", fixture)
	m := regexp.MustCompile(`(\d+) events stored, (\d+) already there`).FindStringSubmatch(out)
	if code != 0 || m == nil || m[1] == "0" || m[2] != "0" || !strings.Contains(out, "umami.csv:79:") {
		t.Fatalf("first import: exit %d\n%s", code, out)
	}
	stored := m[1]
	out, code = runCLI(t, bin, "analytics", "import", "--db", db, "--site", "cli.example", "--format", "umami", fixture)
	if m2 := regexp.MustCompile(`(\d+) events stored, (\d+) already there`).FindStringSubmatch(out); code != 0 || m2 == nil || m2[1] != "0" || m2[2] != stored {
		t.Fatalf("second import: exit %d, want 0 stored and %s already there\n%s", code, stored, out)
	}
	csvOut := filepath.Join(dir, "e.csv")
	if out, code = runCLI(t, bin, "analytics", "export", "--db", db, "--site", "cli.example", "--format", "csv", "--out", csvOut); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, out)
	}
	data, _ := os.ReadFile(csvOut)
	n, _ := strconv.Atoi(stored)
	if got := strings.Count(string(data), "\n"); got != n+1 {
		t.Fatalf("csv export has %d lines, want %d events and a header", got, n)
	}
	if out, code = runCLI(t, bin, "analytics", "export", "--db", db, "--format", "parquet", "--out", filepath.Join(dir, "e.parquet")); code != 0 || !strings.Contains(out, "exported "+stored+" events") {
		t.Fatalf("parquet export: exit %d\n%s", code, out)
	}
	// The first row's distinct id is a person to delete.
	first := strings.Split(strings.Split(string(data), "\n")[1], ",")[2]
	if out, code = runCLI(t, bin, "analytics", "delete-person", "--db", db, "--site", "cli.example", first); code != 0 {
		t.Fatalf("delete-person %s: exit %d\n%s", first, code, out)
	}
	out, code = runCLI(t, bin, "analytics", "export", "--db", db, "--site", "cli.example", "--format", "ndjson")
	if code != 0 || strings.Contains(out, `"distinct_id":"`+first+`"`) || !strings.Contains(out, `"distinct_id":"`) {
		t.Fatalf("after delete-person the export still has %s (exit %d)", first, code)
	}
	if out, code = runCLI(t, bin, "analytics", "verify", "--db", db); code != 0 {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	if out, code = runCLI(t, bin, "analytics", "import", "--db", db, "--site", "x", "--format", "nope", fixture); code == 0 || !strings.Contains(out, "want one of") {
		t.Fatalf("unknown format: exit %d\n%s", code, out)
	}
}
