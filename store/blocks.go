package store

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/tidwall/buntdb"
)

// blockCache keeps the last few decoded blocks: paging through events or a
// person's stream reads the same blocks again and again.
type blockCache struct {
	mu    sync.Mutex
	max   int
	order []string
	m     map[string]*decodedBlock
}

func (c *blockCache) init(max int) {
	c.max = max
	c.m = make(map[string]*decodedBlock)
}

func (c *blockCache) get(key string) *decodedBlock {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

func (c *blockCache) put(key string, d *decodedBlock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; ok {
		return
	}
	if len(c.order) >= c.max {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[key] = d
	c.order = append(c.order, key)
}

func (c *blockCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok {
		return
	}
	delete(c.m, key)
	for i, k := range c.order {
		if k == key {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

// readBlock returns the decoded block stored under key, through the cache.
func (s *DB) readBlock(key string) (*decodedBlock, error) {
	if d := s.bc.get(key); d != nil {
		return d, nil
	}
	d, err := s.readBlockUncached(key)
	if err == nil {
		s.bc.put(key, d)
	}
	return d, err
}

// eventsAt materialises the events of rows (any order). The caller holds
// t.mu (read) so that block references do not move.
func (s *DB) eventsAt(t *table, rows []int) ([]*Event, error) {
	out := make([]*Event, len(rows))
	for i, row := range rows {
		bi := t.blockOf(row)
		if bi < 0 {
			return nil, fmt.Errorf("row %d has no block", row)
		}
		b := &t.blocks[bi]
		ei := b.eventIndex(row)
		if ei < 0 || b.key == "" {
			return nil, fmt.Errorf("row %d was deleted", row)
		}
		d, err := s.readBlock(b.key)
		if err != nil {
			return nil, err
		}
		if ei >= len(d.events) {
			return nil, fmt.Errorf("row %d beyond block %s", row, b.key)
		}
		out[i] = d.event(ei)
	}
	return out, nil
}

// forEachStored calls fn for every stored event of the blocks refs with its
// row, in row order. Used to build columns and to rewrite blocks. Blocks
// are decoded ahead on the other cores (decoding is most of the cost of
// a column built over years of history), fn runs on the caller's
// goroutine, in order.
func (s *DB) forEachStored(refs []blockRef, fn func(row int, d *decodedBlock, i int)) error {
	decoded := decodeAhead(refs, s.readBlockUncached)
	defer decoded.stop()
	for _, b := range refs {
		if b.key == "" {
			continue
		}
		d, err := decoded.next()
		if err != nil {
			return err
		}
		ei := 0
		sk := 0
		for off := 0; off < b.n; off++ {
			if sk < len(b.skips) && int(b.skips[sk]) == off {
				sk++
				continue
			}
			if ei >= len(d.events) {
				return fmt.Errorf("block %s holds fewer events than rows", b.key)
			}
			fn(b.first+off, d, ei)
			ei++
		}
	}
	return nil
}

// aheadDecoder hands out the decoded blocks of a list in order, decoding
// a bounded number of them ahead on GOMAXPROCS workers.
type aheadDecoder struct {
	results chan chan decodeResult // one a block with a key, in order
	quit    chan struct{}
	done    sync.WaitGroup
	// read is the sequential fallback, for short lists and one core.
	read func(string) (*decodedBlock, error)
	keys []string
}

type decodeResult struct {
	d   *decodedBlock
	err error
}

// decodeAhead starts decoding the blocks of refs that have a key.
func decodeAhead(refs []blockRef, read func(string) (*decodedBlock, error)) *aheadDecoder {
	a := &aheadDecoder{read: read}
	workers := runtime.GOMAXPROCS(0)
	if workers < 2 || len(refs) < 4 {
		for _, b := range refs {
			if b.key != "" {
				a.keys = append(a.keys, b.key)
			}
		}
		return a
	}
	type job struct {
		key string
		out chan decodeResult
	}
	a.results = make(chan chan decodeResult, 2*workers)
	a.quit = make(chan struct{})
	jobs := make(chan job)
	a.done.Add(workers + 1)
	for w := 0; w < workers; w++ {
		go func() {
			defer a.done.Done()
			for j := range jobs {
				d, err := read(j.key)
				j.out <- decodeResult{d, err}
			}
		}()
	}
	go func() {
		defer a.done.Done()
		defer close(jobs)
		defer close(a.results)
		for _, b := range refs {
			if b.key == "" {
				continue
			}
			out := make(chan decodeResult, 1)
			// The slot is queued first (bounding how far decoding runs
			// ahead), then the job handed to a worker.
			select {
			case a.results <- out:
			case <-a.quit:
				return
			}
			select {
			case jobs <- job{b.key, out}:
			case <-a.quit:
				return
			}
		}
	}()
	return a
}

// next returns the next block's decoded value.
func (a *aheadDecoder) next() (*decodedBlock, error) {
	if a.results == nil {
		if len(a.keys) == 0 {
			return nil, fmt.Errorf("no block left to decode")
		}
		k := a.keys[0]
		a.keys = a.keys[1:]
		return a.read(k)
	}
	out, ok := <-a.results
	if !ok {
		return nil, fmt.Errorf("no block left to decode")
	}
	r := <-out
	return r.d, r.err
}

// stop ends the decoding and waits for the workers.
func (a *aheadDecoder) stop() {
	if a.quit == nil {
		return
	}
	close(a.quit)
	// Slots already queued may still get their job: drain them so that no
	// worker waits to hand over a result (their channels are buffered,
	// so workers never block; draining only frees the queue).
	for range a.results {
	}
	a.done.Wait()
}

// readBlockUncached decodes a block without filling the cache (full scans
// would only evict what paging needs).
func (s *DB) readBlockUncached(key string) (*decodedBlock, error) {
	if d := s.bc.get(key); d != nil {
		return d, nil
	}
	if isHistKey(key) {
		return s.readHistBlock(key)
	}
	var v string
	err := s.db.View(func(tx *buntdb.Tx) error {
		var err error
		v, err = tx.Get(key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading block %s: %w", key, err)
	}
	d, err := decodeBlock(v)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", key, err)
	}
	return d, nil
}
