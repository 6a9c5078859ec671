package clickhouse

// Replicas. SPEC §7's block names a cluster, not its layout: when the
// cluster's remote_servers give a shard more than one replica, the local
// tables are ReplicatedReplacingMergeTree, kept in step through the
// ZooKeeper the servers are configured with, at
// /clickhouse/tables/{shard}/<database>/<table> with replica name
// {replica} — the `macros` every replicated ClickHouse server defines.
// The tables are created on each server in turn, never ON CLUSTER (18.16
// crashes running ON CLUSTER while ZooKeeper is unreachable).
//
// Queries and inserts go to the first configured server that answers: a
// server that could not be reached is skipped, and probed in the
// background until it answers again.

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"
)

// replicaState is what the backend knows of its servers' schema.
type replicaState struct {
	mu         sync.Mutex // one schema creation at a time
	done       []bool     // per server: its tables exist
	retrying   bool
	replicated bool // the cluster has replicas
}

// engine is a local table's engine: ReplacingMergeTree(ver), or its
// Replicated form.
func (b *Backend) engine(replicated bool, table Ident, ver SQL) SQL {
	if !replicated {
		if ver == "" {
			return "ReplacingMergeTree"
		}
		return Build("ReplacingMergeTree(?)", ver)
	}
	path := "/clickhouse/tables/{shard}/" + b.opts.Database + "/" + string(table)
	if ver == "" {
		return Build("ReplicatedReplacingMergeTree(?, '{replica}')", path)
	}
	return Build("ReplicatedReplacingMergeTree(?, '{replica}', ?)", path, ver)
}

// isReplicated reports whether a server with its tables said the
// cluster has replicas.
func (b *Backend) isReplicated() bool {
	b.reps.mu.Lock()
	defer b.reps.mu.Unlock()
	return b.reps.replicated
}

// replicated asks a server whether the cluster has replicas.
func (b *Backend) replicated(ctx context.Context, c *Client) (bool, error) {
	if b.opts.Cluster == "" {
		return false, nil
	}
	// Without the database, which may not exist yet.
	out, err := c.do(ctx, "", strings.NewReader(string(Build("SELECT count() FROM system.clusters WHERE cluster = ? AND replica_num > 1", b.opts.Cluster))), false)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(out)) != "0", nil
}

func (b *Backend) ensureSchemaReplicas(ctx context.Context) error {
	all, err := b.createSchema(ctx)
	if err != nil || all {
		return err
	}
	b.reps.mu.Lock()
	defer b.reps.mu.Unlock()
	if !b.reps.retrying {
		b.reps.retrying = true
		go b.retrySchema()
	}
	return nil
}

// createSchema creates the tables on every server that lacks them. On a
// replicated cluster, servers that cannot be reached are skipped (all
// reports false) when another server has its tables.
func (b *Backend) createSchema(ctx context.Context) (all bool, err error) {
	st := &b.reps
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done == nil {
		st.done = make([]bool, len(b.servers))
	}
	var skipped error
	anyRep := false
	for i, c := range b.servers {
		if st.done[i] {
			continue
		}
		rep, err := b.replicated(ctx, c)
		if err == nil {
			for _, q := range b.schema(rep) {
				if err = c.ExecNoDB(ctx, q); err != nil {
					break
				}
			}
		}
		if err != nil {
			if isUnavailable(err) && ctx.Err() == nil {
				skipped = err
				continue
			}
			return false, err
		}
		st.done[i] = true
		anyRep = anyRep || rep
		st.replicated = st.replicated || rep
	}
	switch {
	case skipped == nil:
		return true, nil
	case !anyRep:
		return false, skipped // every server holds a part: all need the tables
	}
	return false, nil
}

// retrySchema creates the tables on the replicas that could not be
// reached, once they can.
func (b *Backend) retrySchema() {
	for {
		select {
		case <-b.stop:
			return
		case <-time.After(time.Second):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		all, _ := b.createSchema(ctx)
		cancel()
		if all {
			b.reps.mu.Lock()
			b.reps.retrying = false
			b.reps.mu.Unlock()
			return
		}
	}
}

// pick returns the first server not known to be unreachable (all of them
// unreachable: the first).
func (b *Backend) pick() *Client {
	for _, c := range b.servers {
		if !c.isDown() {
			return c
		}
	}
	return b.servers[0]
}

// isDown reports whether the server could not be reached lately.
func (c *Client) isDown() bool { return c.down.Load() }

// markDown notes that the server could not be reached and probes it in
// the background (GET /ping) until it answers, or until nothing asked
// for it for a minute (the next call then tries it again).
func (c *Client) markDown() {
	if c.down.Swap(true) {
		return // already probing
	}
	go func() {
		defer c.down.Store(false)
		for time.Since(time.Unix(0, c.lastUse.Load())) < time.Minute {
			time.Sleep(500 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.URL, "/")+"/ping", nil)
			if err == nil {
				var resp *http.Response
				if resp, err = c.client().Do(req); err == nil {
					resp.Body.Close()
				}
			}
			cancel()
			if err == nil {
				return
			}
		}
	}()
}
