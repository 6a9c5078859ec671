package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
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
	var lastDrop time.Time // when DropShipped last ran
	var lastSync time.Time // when syncDeletions last ran (a query a second at most)
	var lastImp time.Time  // when shipImported last ran
	synced := false        // syncDeletions has run: the backfill skips the persons deleted elsewhere
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
		if b.schemaOK && time.Since(lastSync) >= max(b.opts.Flush, time.Second) {
			lastSync = time.Now()
			if err := b.syncDeletions(ctx); err != nil {
				b.noteErr(err)
			} else {
				synced = true
			}
		}
		if b.schemaOK && synced { // events that never went through the outbox (backfill.go)
			if err := b.runBackfill(ctx); err != nil {
				b.noteErr(err)
			}
		}
		if b.schemaOK && time.Since(lastImp) >= time.Minute {
			lastImp = time.Now() // imported aggregates (imported.go): at start, then once a minute
			if _, err := b.shipImported(ctx); err != nil {
				b.noteErr(err)
			}
		}
		if b.opts.Keep > 0 && time.Since(lastDrop) >= min(time.Minute, b.opts.Keep/2) {
			lastDrop = time.Now()
			if _, err := b.DropShipped(ctx); err != nil {
				b.noteErr(err)
			}
		}
	}
}

func (b *Backend) total() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.totalLocked()
}

func (b *Backend) totalLocked() int {
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
	sites, err := b.shipLines(ctx, rows)
	if err != nil {
		return 0, err
	}
	if err := b.DB.DeleteMetas(keys); err != nil {
		return 0, err // shipped again later: the same rows, kept once
	}
	last, _ := strconv.ParseUint(keys[len(keys)-1][len(outboxPrefix):], 10, 64)
	b.mu.Lock()
	b.shippedSeq = max(b.shippedSeq, last+1)
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

// shipLines inserts rows (JSONEachRow lines as Append writes them) and
// their persons, and resolves the persons their links touch; it returns
// how many rows each site had (those of deleted persons included, which
// are left out).
func (b *Backend) shipLines(ctx context.Context, rows []string) (map[string]int, error) {
	// Each row's id ships alone the first time (its person id is the one
	// the store gives a person of one id); the persons of several ids are
	// resolved in ClickHouse from every node's links once the batch is in
	// (see persons.go). Rows of persons deleted since are dropped (they are
	// gone from the log too).
	var out, people []byte
	sites := map[string]int{}
	linked := map[string][]string{} // the ids of this batch's links, by site
	batch := map[string]bool{}      // site\x00id shipped alone in this batch
	for _, line := range rows {
		r, ok := rowHead(line)
		if !ok {
			continue // cannot happen: Append wrote it
		}
		sites[r.Site]++
		if b.wasDeleted(r.Site, r.DistinctID) {
			continue
		}
		if !strings.Contains(line, `,"p_current_url":`) {
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
		if r.Name == "$identify" || r.Name == "$create_alias" {
			// A link: its other id is among the properties (only links
			// are decoded whole).
			var props struct {
				Keys []string `json:"prop_keys"`
				Vals []string `json:"prop_vals"`
			}
			_ = json.Unmarshal([]byte(line), &props)
			other := "alias"
			if r.Name == "$identify" {
				other = "$anon_distinct_id"
			}
			linked[r.Site] = append(linked[r.Site], r.DistinctID)
			for i, k := range props.Keys {
				if k == other && i < len(props.Vals) {
					linked[r.Site] = append(linked[r.Site], props.Vals[i])
				}
			}
		}
		k := r.Site + "\x00" + r.DistinctID
		if !batch[k] && b.shippedPerson(r.Site, r.DistinctID) == "" {
			batch[k] = true
			j, _ := json.Marshal(personRow{Site: r.Site, DistinctID: r.DistinctID, Person: store.PersonID(r.Site, r.DistinctID), Ver: b.nextVer(tierAlone)})
			people = append(append(people, j...), '\n')
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
		return nil, err
	}
	// Remember the persons shipped only once they are in.
	b.rememberPersons(people)
	// Ids this node ships for the first time that are already part of a
	// person of several ids (linked through another node): their first
	// event may be the person's first to arrive, which decides its root,
	// so their components are resolved again too.
	merged, err := b.mergedIDs(ctx, batch)
	if err != nil {
		return nil, err
	}
	for s, ids := range merged {
		// In parts: a part's link components stay small enough to list
		// (linkClosure), where all of them at once might not.
		for start := 0; start < len(ids); start += resolvePart {
			if err := b.resolve(ctx, s, ids[start:min(start+resolvePart, len(ids))]...); err != nil {
				return nil, err
			}
		}
	}
	for s, ids := range linked {
		if err := b.resolve(ctx, s, ids...); err != nil {
			return nil, err // the batch ships again, the same rows
		}
	}
	return sites, nil
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

func (b *Backend) shippedPerson(site, id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.persons[site+"\x00"+id]
}

// Tiers of person rows: which row of a distinct id wins. A node ships an
// id alone the first time it ships its events; the persons resolved from
// every node's links (persons.go) win over that; a deleted person's
// tombstones win over both. (tierMerged was a node's own merged person,
// before persons were resolved in ClickHouse; rows of it may remain.)
const (
	tierAlone uint64 = iota + 1
	tierMerged
	tierResolved
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

// outboxKeys are the fields of an outbox row that say what it holds.
type outboxKeys struct {
	Site    string `json:"site"`
	UUID    string `json:"uuid"`
	Session string `json:"session"`
}

// outboxed returns, by site, what of each row waiting in the outbox under
// prefix value picks (its uuid, its session).
func (b *Backend) outboxed(ctx context.Context, prefix string, value func(outboxKeys) string) (map[string][]string, error) {
	out := map[string][]string{}
	err := b.DB.ScanMeta(prefix, func(k, v string) bool {
		for _, line := range strings.Split(strings.TrimSpace(v), "\n") {
			var r outboxKeys
			if json.Unmarshal([]byte(line), &r) == nil {
				out[r.Site] = append(out[r.Site], value(r))
			}
		}
		return ctx.Err() == nil
	})
	if err == nil {
		err = ctx.Err()
	}
	return out, err
}

// eachSite runs drop for every site of the local store and adds up what
// it dropped, up to the first error.
func (b *Backend) eachSite(drop func(site string) (int, error)) (int, error) {
	total := 0
	for _, site := range b.DB.Sites() {
		n, err := drop(site)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// DropShipped deletes from the local log the events older than Keep that
// have shipped, and the shipped recordings whose last event is older than
// Keep (dropShippedRecordings); those still in the outbox stay whatever
// their time. It
// runs in the shipping loop at most once a minute (or every Keep/2 when
// that is shorter); it returns how many events went.
//
// An event appended while it runs may be dropped before it ships: its
// row is in the outbox already (Append writes it there before it
// returns), so it still ships.
func (b *Backend) DropShipped(ctx context.Context) (int, error) {
	if b.opts.Keep <= 0 {
		return 0, nil
	}
	cutoff := time.Now().Add(-b.opts.Keep).UnixMilli()
	unshipped, err := b.outboxed(ctx, outboxPrefix, func(r outboxKeys) string { return r.UUID })
	if err != nil {
		return 0, err
	}
	total, err := b.eachSite(func(site string) (int, error) {
		if b.backfilling(site) {
			return 0, nil // not shipped yet
		}
		return b.DB.DropBefore(site, cutoff, unshipped[site])
	})
	if err != nil {
		return total, err
	}
	// Recordings too: the shipped ones whose last event is older.
	if _, err := b.dropShippedRecordings(ctx, cutoff); err != nil {
		return total, err
	}
	return total, nil
}

// resolvePart is how many ids mergedIDs found one resolve takes.
const resolvePart = 200

// mergedIDs returns (by site) the ids of batch (site\x00id) that
// person_map maps as part of a person of several ids (a row above the
// alone tier, not deleted).
func (b *Backend) mergedIDs(ctx context.Context, batch map[string]bool) (map[string][]string, error) {
	linked := map[string][]string{}
	bySite := map[string][]string{}
	for k := range batch {
		site, id, _ := strings.Cut(k, "\x00")
		bySite[site] = append(bySite[site], id)
	}
	for site, ids := range bySite {
		sort.Strings(ids)
		for start := 0; start < len(ids); start += idsPerQuery {
			part := ids[start:min(start+idsPerQuery, len(ids))]
			rows, err := b.client().Query(ctx, Build(`SELECT distinct_id FROM person_map WHERE site = ? AND ?
GROUP BY distinct_id HAVING max(ver) >= ? AND argMax(deleted, ver) = 0`, site, hasStr(part, "distinct_id"), tierMerged<<56))
			if err != nil {
				return nil, err
			}
			for _, r := range rows {
				linked[site] = append(linked[site], asStr(r[0]))
			}
		}
	}
	return linked, nil
}
