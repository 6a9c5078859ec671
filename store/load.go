package store

import (
	"runtime"
	"sync"

	"github.com/tidwall/buntdb"
)

// loadedBlock is a block on its way from the log into a table.
type loadedBlock struct {
	key  string
	val  string
	d    *decodedBlock
	err  error
	done chan struct{}
}

// load replays the log into the tables. Blocks are decoded in parallel and
// applied in key (commit) order, so rows, distinct-id codes and persons come
// out as they were before the restart. A block whose events are already
// stored (left by a compaction that was cut short) is cleaned up. A block
// that does not decode (a damaged value) is left out and returned, for Open
// to set aside; it never stops the load.
func (s *DB) load() (bad []string, err error) {
	var blocks []*loadedBlock
	err = s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys("e:*", func(k, v string) bool {
			if _, ok := parseBlockKey(k); !ok {
				bad = append(bad, k)
				return true
			}
			blocks = append(blocks, &loadedBlock{key: k, val: v, done: make(chan struct{})})
			return true
		})
	})
	if err != nil {
		return nil, err
	}
	if n := len(blocks); n > 0 {
		last, _ := parseBlockKey(blocks[n-1].key)
		s.seq = max(s.seq, last+1)
	}

	// Decode ahead on every core but one, bounded so that only a window of
	// decoded blocks is in memory at once.
	workers := runtime.GOMAXPROCS(0)
	window := make(chan struct{}, 4*workers)
	next := make(chan *loadedBlock)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				b.d, b.err = decodeBlock(b.val)
				close(b.done)
			}
		}()
	}
	go func() {
		for _, b := range blocks {
			window <- struct{}{}
			next <- b
		}
		close(next)
	}()

	type fix struct {
		key    string
		site   string
		events []rawRef // what the block should hold; none: delete it
	}
	var fixes []fix
	var ev Event
	for _, b := range blocks {
		<-b.done
		<-window
		if b.err != nil {
			bad = append(bad, b.key)
			b.val = ""
			continue
		}
		d := b.d
		t := s.tableFor(d.site)
		first := t.rows()
		var dups []int
		for i := range d.events {
			re := &d.events[i]
			if t.has(&re.uuid) {
				dups = append(dups, i)
				continue
			}
			d.fill(i, &ev)
			t.add(&ev, re.uuid)
		}
		if len(dups) > 0 {
			var keep []rawRef
			for i := range d.events {
				if len(dups) > 0 && dups[0] == i {
					dups = dups[1:]
					continue
				}
				keep = append(keep, rawRef{d, i})
			}
			fixes = append(fixes, fix{key: b.key, site: d.site, events: keep})
		}
		if n := t.rows() - first; n > 0 {
			t.addBlockRef(blockRef{key: b.key, first: first, n: n, compressed: b.val[2]&flagZstd != 0, size: len(b.val)})
		}
		b.d, b.val = nil, "" // fixes keep what they need
	}
	wg.Wait()
	if len(fixes) == 0 {
		return bad, nil
	}
	return bad, s.db.Update(func(tx *buntdb.Tx) error {
		for _, f := range fixes {
			if len(f.events) == 0 {
				if _, err := tx.Delete(f.key); err != nil && err != buntdb.ErrNotFound {
					return err
				}
				continue
			}
			if _, _, err := tx.Set(f.key, encodeRaw(f.site, f.events, compressBest), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// fill sets ev to the i-th event, reusing ev's property slice. The strings
// share memory with the block.
func (d *decodedBlock) fill(i int, ev *Event) {
	re := &d.events[i]
	ev.UUID = ""
	if re.uuidStr > 0 {
		ev.UUID = d.strs[re.uuidStr-1]
	}
	ev.Site = d.site
	ev.Name = d.strs[re.name]
	ev.DistinctID = d.strs[re.did]
	ev.Time = re.time
	ev.Props = ev.Props[:0]
	for _, p := range re.props {
		ev.Props = append(ev.Props, Prop{Key: d.strs[p.key], Val: d.value(p)})
	}
}
