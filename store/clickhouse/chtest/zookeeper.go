package chtest

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ZooKeeper is one standalone ZooKeeper server (Debian's zookeeper
// package, 3.8), started by hand from a config in a temporary directory,
// listening on loopback only.
type ZooKeeper struct {
	Dir    string
	Port   int
	cmd    *exec.Cmd
	exited chan struct{}
	lock   *os.File
}

// zkJar is Debian's ZooKeeper jar; its manifest names the jars it needs.
const zkJar = "/usr/share/java/zookeeper.jar"

// ZooKeeperAvailable reports whether ZooKeeper and java are installed.
func ZooKeeperAvailable() bool {
	_, err := os.Stat(zkJar)
	_, jerr := exec.LookPath("java")
	return err == nil && jerr == nil
}

// StartReplicas starts ZooKeeper and a cluster of one shard with two
// replicas under tb's temporary directory, and stops them when the test
// ends. Tables made ReplicatedReplacingMergeTree on each server are
// replicas of each other.
func StartReplicas(tb testing.TB) *Cluster {
	tb.Helper()
	bin := Require(tb)
	if !ZooKeeperAvailable() {
		if os.Getenv("FIRSTPARTY_REQUIRE_ALL") != "" {
			tb.Fatal("zookeeper (and java) are missing and FIRSTPARTY_REQUIRE_ALL is set (.ci/run installs them)")
		}
		tb.Skip("zookeeper is not installed")
	}
	dir := tb.TempDir()
	zk, err := StartZooKeeper(filepath.Join(dir, "zk"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(zk.Stop)
	c, err := startIn(bin, dir, zk)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// StartZooKeeper starts a standalone ZooKeeper with its files under dir on
// a free port of 9400–9499 and waits until it answers.
func StartZooKeeper(dir string) (*ZooKeeper, error) {
	base, lock, err := freeBase() // a block of its own: the first port is ZooKeeper's
	if err != nil {
		return nil, err
	}
	z := &ZooKeeper{Dir: dir, Port: base, lock: lock}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		lock.Close()
		return nil, err
	}
	cfg := fmt.Sprintf(`tickTime=500
initLimit=10
syncLimit=5
dataDir=%s/data
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=srvr
maxClientCnxns=0
`, dir, z.Port)
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		lock.Close()
		return nil, err
	}
	if err := z.start(); err != nil {
		lock.Close()
		return nil, err
	}
	if err := z.Wait(60 * time.Second); err != nil {
		z.Stop()
		return nil, err
	}
	return z, nil
}

func (z *ZooKeeper) start() error {
	out, err := os.OpenFile(filepath.Join(z.Dir, "zookeeper.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("java", "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.log.dir="+z.Dir,
		"-cp", zkJar+":/usr/share/java/slf4j-simple.jar", "org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(z.Dir, "zoo.cfg"))
	cmd.Dir = z.Dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("chtest: start zookeeper: %w", err)
	}
	z.cmd, z.exited = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		out.Close()
		close(z.exited)
	}()
	return nil
}

// Wait polls ZooKeeper with "srvr" until it serves.
func (z *ZooKeeper) Wait(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-z.exited:
			b, _ := os.ReadFile(filepath.Join(z.Dir, "zookeeper.log"))
			return fmt.Errorf("chtest: zookeeper exited: %s", b)
		default:
		}
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", z.Port), time.Second); err == nil {
			conn.SetDeadline(time.Now().Add(2 * time.Second))
			conn.Write([]byte("srvr"))
			b, _ := io.ReadAll(conn)
			conn.Close()
			// "ruok" answers before the server serves; "srvr" names its
			// mode only once it does.
			if strings.Contains(string(b), "Mode: standalone") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chtest: zookeeper on %d did not answer in %v", z.Port, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills ZooKeeper by its pid and waits for it to exit.
func (z *ZooKeeper) Stop() {
	if z.cmd == nil || z.cmd.Process == nil {
		return
	}
	select {
	case <-z.exited:
	default:
		z.cmd.Process.Kill()
		<-z.exited
	}
	z.lock.Close()
}
