package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// ship runs until Stop: it waits for events (at most Flush after the
// first one), ships the outbox oldest first, and retries a failed batch
// with the same rows after a growing pause.
func (b *Backend) ship() {
	defer close(b.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-b.stop:
			cancel()
		case <-b.done:
		}
	}()
	pause := 100 * time.Millisecond
	tick := time.NewTicker(b.opts.Flush)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-b.wake:
			if b.total() < b.opts.Batch { // gather up to Flush
				select {
				case <-b.stop:
					return
				case <-time.After(b.opts.Flush):
				}
			}
		case <-tick.C:
		}
		for {
			n, err := b.shipOnce(ctx)
			if err != nil {
				b.noteErr(err)
				select {
				case <-b.stop:
					return
				case <-time.After(pause):
				}
				pause = min(2*pause, 5*time.Second)
				continue
			}
			pause = 100 * time.Millisecond
			if n == 0 {
				break
			}
		}
	}
}

func (b *Backend) total() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, v := range b.backlog {
		n += v
	}
	return n
}

func (b *Backend) noteErr(err error) {
	if b.opts.OnError != nil {
		b.opts.OnError(err)
	}
	b.mu.Lock()
	b.lastErr, b.lastTime = err.Error(), time.Now()
	b.mu.Unlock()
}

// personRow is one distinct id's person in ClickHouse.
type personRow struct {
	Site       string `json:"site"`
	DistinctID string `json:"distinct_id"`
	Person     string `json:"person"`
	Deleted    uint8  `json:"deleted"`
	Ver        uint64 `json:"ver"`
}

// shipOnce ships the oldest outbox entries, up to Batch rows, and returns
// how many events it shipped.
func (b *Backend) shipOnce(ctx context.Context) (int, error) {
	if !b.schemaOK {
		if err := b.ensureSchema(ctx); err != nil {
			return 0, err
		}
		b.schemaOK = true
	}
	var keys []string
	var rows []string
	err := b.DB.ScanMeta(outboxPrefix, func(k, v string) bool {
		keys = append(keys, k)
		rows = append(rows, strings.Split(strings.TrimSpace(v), "\n")...)
		return len(rows) < b.opts.Batch
	})
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	// Each row's person: an id first seen here goes alone (its person id is
	// the one the local log gives a person of one id, no lookup needed);
	// a link ships the merged person the local log has now, on a higher
	// tier, so that it wins whatever order rows arrive in. Rows of persons
	// deleted here since are dropped (they are gone from the log too).
	var out, people []byte
	sites := map[string]int{}
	batch := map[string]string{} // site\x00id -> person shipped in this batch
	add := func(site, id, person string, tier uint64) {
		k := site + "\x00" + id
		if batch[k] == person || b.shippedPerson(site, id) == person && batch[k] == "" {
			return
		}
		batch[k] = person
		j, _ := json.Marshal(personRow{Site: site, DistinctID: id, Person: person, Ver: b.nextVer(tier)})
		people = append(append(people, j...), '\n')
	}
	for _, line := range rows {
		r, ok := rowHead(line)
		if !ok {
			continue // cannot happen: Append wrote it
		}
		sites[r.Site]++
		if b.wasDeleted(r.Site, r.DistinctID) {
			continue
		}
		if !strings.Contains(line, `,"p_pathname":`) {
			// Written by an older release: add the hot columns (a missing
			// field would read as "", not as its default).
			var full row
			if json.Unmarshal([]byte(line), &full) == nil {
				full.fillHot()
				if j, err := json.Marshal(full); err == nil {
					line = string(j)
				}
			}
		}
		out = append(append(out, line...), '\n')
		if r.Name != "$identify" && r.Name != "$create_alias" {
			if b.shippedPerson(r.Site, r.DistinctID) == "" {
				add(r.Site, r.DistinctID, store.PersonID(r.Site, r.DistinctID), tierAlone)
			}
			continue
		}
		p, err := b.DB.Person(ctx, r.Site, r.DistinctID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		tier := tierAlone
		if len(p.DistinctIDs) > 1 {
			tier = tierMerged
		}
		for _, id := range p.DistinctIDs {
			add(r.Site, id, p.ID, tier)
		}
	}
	c := b.client()
	// Both inserts at once (a query in between sees the events with
	// their distinct ids as persons until the persons are in); the batch
	// ships again unless both are in.
	var perr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		if len(people) > 0 {
			perr = c.InsertJSON(ctx, "person_map", people)
		}
	}()
	var ierr error
	if len(out) > 0 {
		ierr = c.InsertJSON(ctx, "events", out)
	}
	<-done
	if err := errors.Join(ierr, perr); err != nil {
		return 0, err
	}
	// Remember the persons shipped only once they are in.
	b.mu.Lock()
	for _, line := range strings.Split(strings.TrimSpace(string(people)), "\n") {
		var p personRow
		if json.Unmarshal([]byte(line), &p) == nil && p.Site != "" {
			b.persons[p.Site+"\x00"+p.DistinctID] = p.Person
		}
	}
	b.mu.Unlock()
	if err := b.DB.DeleteMetas(keys); err != nil {
		return 0, err // shipped again later: the same rows, kept once
	}
	b.mu.Lock()
	for s, n := range sites {
		b.backlog[s] -= n
		b.shipped[s] += int64(n)
	}
	b.mu.Unlock()
	if b.opts.OnShipped != nil {
		for s, n := range sites {
			b.opts.OnShipped(s, n)
		}
	}
	return len(rows), nil
}

// head is what shipping reads of an outbox row.
type head struct {
	Site       string `json:"site"`
	Name       string `json:"name"`
	DistinctID string `json:"distinct_id"`
}

// rowHead reads site, name and distinct_id from an outbox row, which
// Append writes first (row's field order): only the first tokens are
// decoded, not the properties (decoding whole rows took most of the
// shipping time).
func rowHead(line string) (head, bool) {
	if h, ok := rowHeadFast(line); ok {
		return h, true
	}
	var h head
	d := json.NewDecoder(strings.NewReader(line))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return h, false
	}
	for seen := 0; seen < 3 && d.More(); {
		k, err := d.Token()
		if err != nil {
			return h, false
		}
		var dst *string
		switch k {
		case "site":
			dst = &h.Site
		case "name":
			dst = &h.Name
		case "distinct_id":
			dst = &h.DistinctID
		}
		if dst == nil {
			var skip json.RawMessage
			if d.Decode(&skip) != nil {
				return h, false
			}
			continue
		}
		if d.Decode(dst) != nil {
			return h, false
		}
		seen++
	}
	return h, true
}

// rowHeadFast reads the head of a row as json.Marshal writes row:
// {"site":"…","uuid":"…","name":"…","distinct_id":"…", each string
// taken as is when it has no escape; ok is false for anything else.
func rowHeadFast(line string) (head, bool) {
	var h head
	rest := line
	for _, f := range []struct {
		key string
		dst *string
	}{{`{"site":`, &h.Site}, {`,"uuid":`, nil}, {`,"name":`, &h.Name}, {`,"distinct_id":`, &h.DistinctID}} {
		if !strings.HasPrefix(rest, f.key) {
			return h, false
		}
		rest = rest[len(f.key):]
		if len(rest) == 0 || rest[0] != '"' {
			return h, false
		}
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return h, false
		}
		v := rest[1 : 1+end]
		if strings.IndexByte(v, '\\') >= 0 {
			return h, false // escapes: the decoder reads it
		}
		if f.dst != nil {
			*f.dst = v
		}
		rest = rest[2+end:]
	}
	return h, true
}

// DeletePerson deletes the person in ClickHouse first (a tombstone for
// each of its ids that every query honours at once, and a mutation that
// removes the rows), then in the local log.
func (b *Backend) DeletePerson(ctx context.Context, site, id string) error {
	p, err := b.DB.Person(ctx, site, id)
	if err != nil {
		return err
	}
	var tomb []byte
	for _, d := range p.DistinctIDs {
		j, _ := json.Marshal(personRow{Site: site, DistinctID: d, Person: p.ID, Deleted: 1, Ver: b.nextVer(tierDeleted)})
		tomb = append(append(tomb, j...), '\n')
	}
	if !b.schemaOK {
		if err := b.ensureSchema(ctx); err != nil {
			return err
		}
	}
	if err := b.client().InsertJSON(ctx, "person_map", tomb); err != nil {
		return err
	}
	local := Ident("events")
	if b.opts.Cluster != "" {
		local = Ident("events_local")
	}
	for _, c := range b.servers {
		if err := c.Exec(ctx, Build("ALTER TABLE ? DELETE WHERE site = ? AND has(?, distinct_id)", local, site, p.DistinctIDs)); err != nil {
			b.noteErr(err) // the tombstones already hide the rows
		}
	}
	b.mu.Lock()
	for _, d := range p.DistinctIDs {
		delete(b.persons, site+"\x00"+d)
		b.deleted[site+"\x00"+d] = true
	}
	b.mu.Unlock()
	if err := b.deleteRecordings(ctx, site, p.DistinctIDs); err != nil {
		return err
	}
	if err := b.DB.DeletePerson(ctx, site, id); err != nil {
		return err
	}
	// The log replays the remaining events into persons again (a link the
	// deleted person took part in may have been refused before): ship
	// every mapping that changed.
	return b.reshipPersons(ctx, site)
}

// reshipPersons ships the person of every distinct id of a site whose
// shipped person differs from the local log's.
func (b *Backend) reshipPersons(ctx context.Context, site string) error {
	var rows []byte
	cursor := ""
	for {
		page, err := b.DB.Persons(ctx, store.PersonQuery{Site: site, Limit: 1000, Cursor: cursor})
		if err != nil {
			return err
		}
		for _, p := range page.Results {
			for _, d := range p.DistinctIDs {
				if b.shippedPerson(site, d) != p.ID {
					j, _ := json.Marshal(personRow{Site: site, DistinctID: d, Person: p.ID, Ver: b.nextVer(tierReplayed)})
					rows = append(append(rows, j...), '\n')
				}
			}
		}
		if page.Next == "" || len(page.Results) == 0 {
			break
		}
		cursor = page.Next
	}
	if len(rows) == 0 {
		return nil
	}
	if err := b.client().InsertJSON(ctx, "person_map", rows); err != nil {
		return err
	}
	b.mu.Lock()
	for _, line := range strings.Split(strings.TrimSpace(string(rows)), "\n") {
		var p personRow
		if json.Unmarshal([]byte(line), &p) == nil {
			b.persons[p.Site+"\x00"+p.DistinctID] = p.Person
		}
	}
	b.mu.Unlock()
	return nil
}

func (b *Backend) shippedPerson(site, id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.persons[site+"\x00"+id]
}

// Tiers of person rows: which node's view of a distinct id wins. A node
// that saw an id alone ships it alone; one that saw it linked ships its
// merged person, which must win whichever arrives last (the merge applies
// to every node's events); a node that deleted a person ships the persons
// its log replayed after it, and the tombstones, over both.
const (
	tierAlone uint64 = iota + 1
	tierMerged
	tierReplayed
	tierDeleted
)

// nextVer orders person rows: the tier first, then time (later wins, also
// within one insert, so that nodes agree roughly on which came last).
func (b *Backend) nextVer(tier uint64) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ver = max(b.ver+1, uint64(time.Now().UnixNano())>>8)
	return tier<<56 | b.ver&(1<<56-1)
}

// wasDeleted reports whether this node deleted the person of an id since
// it started: its rows still in the outbox are not shipped.
func (b *Backend) wasDeleted(site, id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.deleted[site+"\x00"+id]
}
