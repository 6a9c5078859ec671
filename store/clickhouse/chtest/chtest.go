// Package chtest starts a real two-shard ClickHouse cluster on loopback for
// tests and benchmarks: two clickhouse-server processes started by hand from
// config files in a temporary directory, ports in 9400–9499.
package chtest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ClusterName is the name of the cluster in remote_servers.
const ClusterName = "fp"

// Server is one clickhouse-server process.
type Server struct {
	Dir               string
	HTTPPort, TCPPort int
	InterserverPort   int
	cmd               *exec.Cmd
	exited            chan struct{}
}

// URL is the server's HTTP interface.
func (s *Server) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.HTTPPort) }

// Cluster is two shards that know each other as cluster "fp" or, started
// with Replicas, one shard of two replicas of each other kept in step
// through ZooKeeper.
type Cluster struct {
	// Shards are the servers (with Replicas, the replicas of the one
	// shard).
	Shards []*Server
	// ZK is the ZooKeeper of a replicated cluster.
	ZK *ZooKeeper
}

// URL is the first shard's HTTP interface.
func (c *Cluster) URL() string { return c.Shards[0].URL() }

// Binary returns the clickhouse-server path, or "" when it is missing.
func Binary() string {
	for _, p := range []string{"clickhouse-server"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	for _, p := range []string{"/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Require skips the test when clickhouse-server is missing, or fails it
// under FIRSTPARTY_REQUIRE_ALL (as CI sets it).
func Require(tb testing.TB) string {
	tb.Helper()
	bin := Binary()
	if bin == "" {
		if os.Getenv("FIRSTPARTY_REQUIRE_ALL") != "" {
			tb.Fatal("clickhouse-server is missing and FIRSTPARTY_REQUIRE_ALL is set (.ci/run installs it)")
		}
		tb.Skip("clickhouse-server is not installed")
	}
	return bin
}

var portMu sync.Mutex

// freeBase finds six consecutive free ports in 9400–9499 and holds a lock
// file for the block so that parallel test processes do not take the same.
func freeBase() (int, *os.File, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for base := 9400; base+6 <= 9500; base += 6 {
		lf, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("fp-chtest-%d.lock", base)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return 0, nil, err
		}
		if syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			lf.Close()
			continue
		}
		ok := true
		for p := base; p < base+6 && ok; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base, lf, nil
		}
		lf.Close()
	}
	return 0, nil, fmt.Errorf("chtest: no six free ports in 9400-9499")
}

// Start starts a two-shard cluster under tb's temporary directory and stops
// it when the test ends.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	bin := Require(tb)
	dir := tb.TempDir()
	c, err := StartIn(bin, dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// StartIn starts a two-shard cluster with its files under dir.
func StartIn(bin, dir string) (*Cluster, error) {
	return startIn(bin, dir, nil)
}

func startIn(bin, dir string, zk *ZooKeeper) (*Cluster, error) {
	base, lock, err := freeBase()
	if err != nil {
		return nil, err
	}
	c := &Cluster{ZK: zk}
	for i := 0; i < 2; i++ {
		c.Shards = append(c.Shards, &Server{Dir: filepath.Join(dir, fmt.Sprint("shard", i)),
			HTTPPort: base + 3*i, TCPPort: base + 3*i + 1, InterserverPort: base + 3*i + 2})
	}
	for _, s := range c.Shards {
		if err := s.writeConfig(c); err != nil {
			lock.Close()
			return nil, err
		}
	}
	for _, s := range c.Shards {
		if err := s.start(bin); err != nil {
			c.Stop()
			lock.Close()
			return nil, err
		}
	}
	go func() { // the port block is ours while the servers run
		for _, s := range c.Shards {
			<-s.exited
		}
		lock.Close()
	}()
	for _, s := range c.Shards {
		if err := s.Wait(30 * time.Second); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

func (s *Server) writeConfig(c *Cluster) error {
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o755); err != nil {
			return err
		}
	}
	var shards strings.Builder
	zk := ""
	if c.ZK == nil {
		for _, o := range c.Shards {
			fmt.Fprintf(&shards, "<shard><replica><host>127.0.0.1</host><port>%d</port></replica></shard>", o.TCPPort)
		}
	} else {
		shards.WriteString("<shard><internal_replication>true</internal_replication>")
		for _, o := range c.Shards {
			fmt.Fprintf(&shards, "<replica><host>127.0.0.1</host><port>%d</port></replica>", o.TCPPort)
		}
		shards.WriteString("</shard>")
		// The macros name each server's shard and replica in the paths of
		// Replicated tables, as ClickHouse's documentation sets them up.
		zk = fmt.Sprintf("<zookeeper><node><host>127.0.0.1</host><port>%d</port></node><session_timeout_ms>2000</session_timeout_ms></zookeeper>"+
			"<macros><shard>1</shard><replica>%s</replica></macros>", c.ZK.Port, filepath.Base(s.Dir))
	}
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>%[1]s/server.log</log><errorlog>%[1]s/error.log</errorlog><size>10M</size><count>1</count></logger>
  <http_port>%[2]d</http_port>
  <tcp_port>%[3]d</tcp_port>
  <interserver_http_port>%[4]d</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <listen_host>127.0.0.1</listen_host>
  <max_connections>256</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>50</max_concurrent_queries>
  <uncompressed_cache_size>104857600</uncompressed_cache_size>
  <mark_cache_size>104857600</mark_cache_size>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <users_config>%[1]s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
  <remote_servers><%[5]s>%[6]s</%[5]s></remote_servers>
  <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
  <max_session_timeout>3600</max_session_timeout>
  <default_session_timeout>60</default_session_timeout>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  %[7]s
</yandex>
`, s.Dir, s.HTTPPort, s.TCPPort, s.InterserverPort, ClusterName, shards.String(), zk)
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage><load_balancing>random</load_balancing></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(s.Dir, "config.xml"), []byte(config), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, "users.xml"), []byte(users), 0o644)
}

func (s *Server) start(bin string) error {
	out, err := os.OpenFile(filepath.Join(s.Dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--config-file="+filepath.Join(s.Dir, "config.xml"))
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = out, out
	// Pdeathsig: a test binary that panics skips its cleanups; the
	// servers must not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("chtest: start clickhouse-server: %w", err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		out.Close()
		close(s.exited)
	}()
	return nil
}

// Wait polls the server until it answers a query, or fails after timeout.
func (s *Server) Wait(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	cl := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("chtest: clickhouse-server on %d exited: %s", s.HTTPPort, s.tail())
		default:
		}
		resp, err := cl.Get(s.URL() + "/?query=SELECT%201")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.TrimSpace(string(b)) == "1" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chtest: clickhouse-server on %d did not answer in %v: %v %s", s.HTTPPort, timeout, err, s.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) tail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "error.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	o, _ := os.ReadFile(filepath.Join(s.Dir, "stdout.log"))
	if len(o) > 1000 {
		o = o[len(o)-1000:]
	}
	return string(b) + string(o)
}

// Stop kills the server by its pid and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	// SIGKILL: a graceful stop takes seconds, and an abrupt one is the
	// outage the tests want anyway (inserts are atomic per part).
	s.cmd.Process.Kill()
	<-s.exited
}

// Restart starts a stopped server again on the same ports and data.
func (s *Server) Restart() error {
	bin := Binary()
	if err := s.start(bin); err != nil {
		return err
	}
	return s.Wait(30 * time.Second)
}

// Stop stops every shard.
func (c *Cluster) Stop() {
	for _, s := range c.Shards {
		s.Stop()
	}
}
