package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

var (
	caddyBinOnce sync.Once
	caddyBin     string
	caddyBinErr  error
)

// buildCaddy builds ./cmd/caddy once per test run, for tests that need a
// Caddy in a process of its own (to kill it).
func buildCaddy(t *testing.T) string {
	t.Helper()
	caddyBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fp-caddy-bin")
		if err != nil {
			caddyBinErr = err
			return
		}
		caddyBin = filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", caddyBin, "../cmd/caddy")
		if out, err := cmd.CombinedOutput(); err != nil {
			caddyBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if caddyBinErr != nil {
		t.Fatal(caddyBinErr)
	}
	return caddyBin
}

// caddyProc is a Caddy running in its own process.
type caddyProc struct {
	cmd  *exec.Cmd
	addr string
}

func startCaddyProc(t *testing.T, bin, dir, caddyfile, addr string) *caddyProc {
	t.Helper()
	cfg := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cfg, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	logf, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &caddyProc{cmd: cmd, addr: addr}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		logf.Close()
	})
	// Wait until it answers.
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/_f/flags")
		if err == nil {
			res.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "caddy.log"))
			t.Fatalf("caddy did not start: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond) // polling the port until it answers
	}
}

func (p *caddyProc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

// storedUUIDs opens the database file the way a restart does and returns
// the uuids of every event of site.
func storedUUIDs(t *testing.T, path, site string) map[string]bool {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatalf("reopening after kill: %v", err)
	}
	defer db.Close()
	out := map[string]bool{}
	q := store.EventQuery{Site: site, To: 1 << 62, Limit: 1000}
	for {
		page, err := db.Events(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Results {
			out[e.UUID] = true
		}
		if page.Next == "" {
			return out
		}
		q.Cursor = page.Next
	}
}

// TestKill9UnderLoad kills Caddy with SIGKILL while clients send events and
// checks, after reopening the file, that every event answered 200 is there.
func TestKill9UnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a Caddy process")
	}
	bin := buildCaddy(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "kill.db")
	addr := "127.0.0.1:9181"
	cfg := fmt.Sprintf(`{
	admin off
	http_port 9181
	persist_config off
}
http://%s {
	analytics {
		db %s
		site kill.example
		rate_limit off
	}
}
`, addr, db)
	rounds := 20
	if s := os.Getenv("FIRSTPARTY_KILL_ROUNDS"); s != "" {
		fmt.Sscan(s, &rounds)
	}
	acked := map[string]bool{}
	for round := 0; round < rounds; round++ {
		p := startCaddyProc(t, bin, dir, cfg, addr)
		var mu sync.Mutex
		var n atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
		for w := 0; w < 16; w++ {
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
					var ids []string
					size := 1 + i%20 // single events and small batches
					body.WriteString(`{"api_key":"k","batch":[`)
					for j := 0; j < size; j++ {
						id := store.NewUUID(time.Now())
						ids = append(ids, id)
						if j > 0 {
							body.WriteByte(',')
						}
						fmt.Fprintf(&body, `{"event":"load","distinct_id":"w%d","uuid":%q,"properties":{"$current_url":"http://kill.example/p%d","i":%d}}`, w, id, i%7, i)
					}
					body.WriteString("]}")
					res, err := client.Post("http://"+addr+"/_f/batch/", "application/json", strings.NewReader(body.String()))
					if err != nil {
						continue // the server is gone
					}
					res.Body.Close()
					if res.StatusCode == 200 {
						mu.Lock()
						for _, id := range ids {
							acked[id] = true
						}
						mu.Unlock()
						n.Add(int64(len(ids)))
					}
				}
			}(w)
		}
		// Kill once a good number of events were acknowledged this round.
		target := int64(3000)
		for n.Load() < target {
			time.Sleep(5 * time.Millisecond) // progress of other goroutines: polled
		}
		p.kill9(t)
		close(stop)
		wg.Wait()

		stored := storedUUIDs(t, db, "kill.example")
		missing := 0
		for id := range acked {
			if !stored[id] {
				missing++
			}
		}
		t.Logf("round %d: %d acknowledged so far, %d stored, %d missing", round, len(acked), len(stored), missing)
		if missing > 0 {
			t.Fatalf("round %d: %d events answered 200 are missing after kill -9", round, missing)
		}
	}
}
