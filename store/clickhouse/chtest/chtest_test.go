package chtest

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func query(t *testing.T, s *Server, q string) string {
	t.Helper()
	resp, err := http.Post(s.URL()+"/?wait_end_of_query=1", "text/plain", strings.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", q, resp.StatusCode, b)
	}
	return strings.TrimSpace(string(b))
}

// TestClusterHasTwoShards starts the cluster and checks that a query
// through the cluster reaches both servers.
func TestClusterHasTwoShards(t *testing.T) {
	t0 := time.Now()
	c := Start(t)
	t.Logf("started in %v", time.Since(t0))
	got := query(t, c.Shards[0], "SELECT count() FROM remote('127.0.0.1:"+strconv.Itoa(c.Shards[1].TCPPort)+"', system.one)")
	if got != "1" {
		t.Fatalf("remote: %q", got)
	}
	got = query(t, c.Shards[0], "SELECT count() FROM cluster('"+ClusterName+"', system.one)")
	if got != "2" {
		t.Fatalf("cluster %s has %s shards answering, want 2", ClusterName, got)
	}
	t0 = time.Now()
	c.Shards[1].Stop()
	t.Logf("stopped in %v", time.Since(t0))
	resp, err := http.Get(c.Shards[1].URL() + "/?query=SELECT%201")
	if err == nil {
		resp.Body.Close()
		t.Fatal("stopped shard still answers")
	}
	if err := c.Shards[1].Restart(); err != nil {
		t.Fatal(err)
	}
	if got := query(t, c.Shards[0], "SELECT count() FROM cluster('"+ClusterName+"', system.one)"); got != "2" {
		t.Fatalf("after restart: %s", got)
	}
}

// TestReplicas starts ZooKeeper and two replicas, and checks that a row
// inserted into one replica's ReplicatedReplacingMergeTree is read from
// the other's.
func TestReplicas(t *testing.T) {
	t0 := time.Now()
	c := StartReplicas(t)
	t.Logf("started in %v", time.Since(t0))
	for i, s := range c.Shards {
		if got := query(t, s, "SELECT max(replica_num) FROM system.clusters WHERE cluster = '"+ClusterName+"'"); got != "2" {
			t.Fatalf("server %d: %q replicas", i, got)
		}
		if got := query(t, s, "SELECT substitution FROM system.macros WHERE macro = 'replica'"); got != "shard"+strconv.Itoa(i) {
			t.Fatalf("server %d: replica macro %q", i, got)
		}
		query(t, s, "CREATE TABLE t (k UInt32, v String) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/chtest/{shard}/t', '{replica}') ORDER BY k")
	}
	query(t, c.Shards[0], "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
	deadline := time.Now().Add(20 * time.Second)
	for query(t, c.Shards[1], "SELECT count() FROM t") != "2" {
		if time.Now().After(deadline) {
			t.Fatal("the row never reached the second replica")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
