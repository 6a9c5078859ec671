package store

import (
	"container/heap"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tidwall/buntdb"

	"github.com/firstpartyhq/firstparty/store/histfile"
)

// EventQuery selects events for listing.
type EventQuery struct {
	Site string
	// From and To bound the event time, [From, To) in Unix ms.
	From, To int64
	// Event keeps only events of this name when not empty.
	Event string
	// DistinctID keeps only the events of the person this id belongs to.
	DistinctID string
	Filters    []Filter
	// Limit is the page size; default 100, at most 1000.
	Limit int
	// Cursor continues a previous page (its Next).
	Cursor string
}

// EventPage is a page of events, newest first.
type EventPage struct {
	Results   []*Event
	PersonIDs []string // the person id of each result
	// Next is the cursor of the following page, "" when this is the last.
	Next string
}

type rowTS struct {
	ts  int64
	row int
}

// newer orders rows newest first: by time, then by commit order.
func (a rowTS) newer(b rowTS) bool {
	if a.ts != b.ts {
		return a.ts > b.ts
	}
	return a.row > b.row
}

// oldestHeap keeps the newest n rows seen: its top is the oldest of them.
type oldestHeap []rowTS

func (h oldestHeap) Len() int           { return len(h) }
func (h oldestHeap) Less(i, j int) bool { return h[j].newer(h[i]) }
func (h oldestHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *oldestHeap) Push(x any)        { *h = append(*h, x.(rowTS)) }
func (h *oldestHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func parseCursor(c string) (rowTS, error) {
	ts, row, ok := strings.Cut(c, "_")
	if !ok {
		return rowTS{}, fmt.Errorf("bad cursor %q", c)
	}
	t, err1 := strconv.ParseInt(ts, 10, 64)
	r, err2 := strconv.Atoi(row)
	if err1 != nil || err2 != nil || r < 0 {
		return rowTS{}, fmt.Errorf("bad cursor %q", c)
	}
	return rowTS{t, r}, nil
}

func (r rowTS) cursor() string {
	return strconv.FormatInt(r.ts, 10) + "_" + strconv.Itoa(r.row)
}

// Events lists the events matching q, newest first.
func (s *DB) Events(ctx context.Context, q EventQuery) (EventPage, error) {
	var page EventPage
	if q.Limit <= 0 {
		q.Limit = 100
	}
	if q.Limit > 1000 {
		q.Limit = 1000
	}
	var after *rowTS
	if q.Cursor != "" {
		c, err := parseCursor(q.Cursor)
		if err != nil {
			return page, err
		}
		after = &c
	}
	t := s.table(q.Site)
	if t == nil {
		return page, nil
	}
	var spec *eventSpec // the event name or action asked for
	cols := filterProps(q.Filters)
	if q.Event != "" {
		sp, err := s.resolveEvent(q.Site, q.Event)
		if err != nil {
			return page, err
		}
		spec, cols = sp, append(cols, sp.columns()...)
	}
	if err := s.ensureColumns(t, cols); err != nil {
		return page, err
	}
	if err := t.rlock(); err != nil {
		return page, err
	}
	defer t.mu.RUnlock()
	m, err := t.compileFilters(q.Filters)
	if err != nil {
		return page, err
	}
	var events *eventSet
	if spec != nil {
		events = t.compileEvents([]*eventSpec{spec})
	}
	var roots []uint32
	personRoot := uint32(0)
	if q.DistinctID != "" {
		d, ok := t.dids.lookup(q.DistinctID)
		if !ok {
			return page, nil
		}
		roots = t.people.roots()
		personRoot = roots[d]
	}
	h := make(oldestHeap, 0, q.Limit+1)
	n := t.rows()
	for row := 0; row < n; row++ {
		if row&chunkMask == 0 && !t.mayHold(row>>chunkBits, q.From, q.To) {
			row += chunkSize - 1 // no row of this chunk is in range
			continue
		}
		ts := t.ts.at(row)
		if ts < q.From || ts >= q.To {
			continue
		}
		cur := rowTS{ts, row}
		if after != nil && !after.newer(cur) {
			continue
		}
		if events != nil && events.mask(row, t.name.at(row)) == 0 {
			continue
		}
		if t.loads.hidden.has(row) {
			// A server pageview the snippet confirmed: the page load is
			// the snippet's pageview (it stays in exports).
			continue
		}
		if roots != nil && roots[t.did.at(row)] != personRoot {
			continue
		}
		if !m.ok(row) {
			continue
		}
		if len(h) <= q.Limit {
			heap.Push(&h, cur)
		} else if cur.newer(h[0]) {
			h[0] = cur
			heap.Fix(&h, 0)
		}
		if row&0xffff == 0 && ctxDone(ctx) {
			return page, ctx.Err()
		}
	}
	sorted := []rowTS(h)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].newer(sorted[j]) })
	if len(sorted) > q.Limit {
		sorted = sorted[:q.Limit]
		page.Next = sorted[q.Limit-1].cursor()
	}
	rows := make([]int, len(sorted))
	for i, r := range sorted {
		rows[i] = r.row
	}
	page.Results, err = s.eventsAt(t, rows)
	if err != nil {
		return page, err
	}
	if roots == nil {
		roots = t.people.roots()
	}
	page.PersonIDs = make([]string, len(rows))
	for i, row := range rows {
		page.PersonIDs[i] = PersonID(t.site, t.dids.str(roots[t.did.at(row)]))
	}
	return page, nil
}

func filterProps(fs []Filter) []string {
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = f.Prop
	}
	return keys
}

// Person is a person as the API shows it.
type Person struct {
	ID          string
	DistinctIDs []string
	Properties  Props
	// CreatedAt is the time of the person's first event, Unix ms.
	CreatedAt int64
}

// AppendJSON appends {"id","distinct_ids","properties","created_at"}.
func (p *Person) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = AppendJSONString(b, p.ID)
	b = append(b, `,"distinct_ids":[`...)
	for i, d := range p.DistinctIDs {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, d)
	}
	b = append(b, `],"properties":`...)
	b = p.Properties.AppendJSON(b)
	b = append(b, `,"created_at":"`...)
	b = append(b, FormatTime(p.CreatedAt)...)
	return append(b, `"}`...)
}

// person builds the Person rooted at r, its distinct ids in the order they
// were first seen; the caller holds t.mu (read). It takes time linear in
// the person's ids (roots is not needed, and kept for the callers).
func (t *table) person(_ []uint32, r uint32, sp personSpan) Person {
	p := Person{
		ID:         PersonID(t.site, t.dids.str(r)),
		Properties: t.personProps(r, sp),
		CreatedAt:  sp.first,
	}
	ids := slices.Clone(t.people.members(r))
	slices.Sort(ids)
	p.DistinctIDs = make([]string, len(ids))
	for i, d := range ids {
		p.DistinctIDs[i] = t.dids.str(d)
	}
	return p
}

// resolvePerson finds the root of the person named by id (a person id or a
// distinct id); the caller holds t.mu (read).
func (t *table) resolvePerson(id string) (uint32, bool) {
	if k, ok := parseUUID(id); ok {
		if d, ok := t.people.lookupID(t.site, t.dids, k); ok {
			return t.people.rootOf(d), true
		}
	}
	if d, ok := t.dids.lookup(id); ok && d != 0 {
		return t.people.rootOf(d), true
	}
	return 0, false
}

// Person returns the person named by id: a person id, an id the person had
// before a merge, or any of its distinct ids.
func (s *DB) Person(ctx context.Context, site, id string) (*Person, error) {
	t := s.table(site)
	if t == nil {
		return nil, ErrNotFound
	}
	if err := t.rlock(); err != nil {
		return nil, err
	}
	defer t.mu.RUnlock()
	r, ok := t.resolvePerson(id)
	if !ok {
		return nil, ErrNotFound
	}
	sp, ok := t.spanOf(r)
	if !ok {
		return nil, ErrNotFound
	}
	p := t.person(nil, r, sp)
	return &p, nil
}

// spanOf returns the first and last live events of the person rooted at r.
func (t *table) spanOf(r uint32) (personSpan, bool) {
	var sp personSpan
	found := false
	n := t.rows()
	for row := 0; row < n; row++ {
		ts := t.ts.at(row)
		if ts == deletedTime || t.people.rootOf(t.did.at(row)) != r {
			continue
		}
		sp.see(ts, row, !found)
		found = true
	}
	return sp, found
}

// personRows returns the live rows from row from on of the person rooted at
// r, in commit order; the caller holds t.mu (read).
func (t *table) personRows(r uint32, from int) []int {
	var rows []int
	n := t.rows()
	for row := from; row < n; row++ {
		if t.ts.at(row) != deletedTime && t.people.rootOf(t.did.at(row)) == r {
			rows = append(rows, row)
		}
	}
	return rows
}

// ExportPerson writes the person as one NDJSON line
// {"type":"person",...} followed by each of their events
// {"type":"event",...}, oldest first.
func (s *DB) ExportPerson(ctx context.Context, site, id string, w io.Writer) error {
	t := s.table(site)
	if t == nil {
		return ErrNotFound
	}
	if err := t.rlock(); err != nil {
		return err
	}
	defer t.mu.RUnlock()
	r, ok := t.resolvePerson(id)
	if !ok {
		return ErrNotFound
	}
	rows := t.personRows(r, 0)
	if len(rows) == 0 {
		return ErrNotFound
	}
	sp, _ := t.spanOf(r)
	p := t.person(nil, r, sp)
	b := append([]byte(`{"type":"person","person":`), p.AppendJSON(nil)...)
	b = append(b, "}\n"...)
	if _, err := w.Write(b); err != nil {
		return err
	}
	sort.SliceStable(rows, func(i, j int) bool { return t.ts.at(rows[i]) < t.ts.at(rows[j]) })
	for start := 0; start < len(rows); start += 256 {
		end := min(start+256, len(rows))
		evs, err := s.eventsAt(t, rows[start:end])
		if err != nil {
			return err
		}
		b = b[:0]
		for _, ev := range evs {
			b = append(b, `{"type":"event","event":`...)
			b = ev.AppendJSON(b, p.ID)
			b = append(b, "}\n"...)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		if ctxDone(ctx) {
			return ctx.Err()
		}
	}
	return nil
}

// DeletePerson removes every event and recording of the person named by id
// from the log and from memory, then rewrites the log file so that nothing
// of theirs is left on disk. The refused link events of others that named
// one of the person's ids lose that id: the person's id is gone from the
// log, and a replay of the log without the person's events (where such a
// link would merge) gives the persons memory has (see people).
//
// Captures go on meanwhile: the rows are found under the read lock and
// rewritten outside it (rewriteRows), and the write lock is held only to
// mark rows and, at the end, to check that no event of the person came in
// since and forget the person, all in time linear in the person's ids and
// rows. When events of the person did come in, another pass takes them.
func (s *DB) DeletePerson(ctx context.Context, site, id string) error {
	t := s.table(site)
	if t == nil {
		return ErrNotFound
	}
	s.maint.Lock()
	defer s.maint.Unlock()

	if err := t.rlock(); err != nil {
		return err
	}
	d, ok := t.resolvePerson(id) // any id of the person names it in every pass
	t.mu.RUnlock()
	if !ok {
		return ErrNotFound
	}
	stripped := make(map[int]bool)
	var dids map[string]bool
	for pass := 0; ; pass++ {
		if err := t.rlock(); err != nil {
			return err
		}
		drop, strip := t.deletionRows(d, 0, stripped)
		seen := t.rows()
		t.mu.RUnlock()
		if pass == 0 && len(drop) == 0 {
			return ErrNotFound
		}
		if len(drop) > 0 || len(strip) > 0 {
			if err := s.rewriteRows(t, drop, strip); err != nil {
				return err
			}
			for row := range strip {
				stripped[row] = true
			}
		}
		if testHookDeletePass != nil {
			testHookDeletePass(pass)
		}
		if ctxDone(ctx) && pass > 0 {
			return ctx.Err()
		}
		if err := t.lock(); err != nil {
			return err
		}
		if drop, strip := t.deletionRows(d, seen, stripped); len(drop) > 0 || len(strip) > 0 {
			t.mu.Unlock()
			continue
		}
		dids = make(map[string]bool)
		members := slices.Clone(t.people.members(d))
		for _, m := range members {
			dids[t.dids.str(m)] = true
		}
		t.people.forget(d)
		t.mu.Unlock()
		if err := s.scrubDistinctIDs(t, members); err != nil {
			return err
		}
		break
	}
	if err := s.deleteRecordingsOf(site, func(ri *RecordingInfo) bool { return dids[ri.DistinctID] }); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return s.shrink()
}

// testHookDeletePass, set by tests, runs after each pass of DeletePerson
// has rewritten its rows, with no lock held.
var testHookDeletePass func(pass int)

// deletionRows returns what deleting d's person changes from row from on,
// leaving out the rows in done: drop, ascending, the live rows of its
// events; strip, the live refused link events of others that named one of
// its ids, with the property that named it. The caller holds t.mu.
func (t *table) deletionRows(d uint32, from int, done map[int]bool) (drop []int, strip map[int]string) {
	r := t.people.rootOf(d)
	drop = t.personRows(r, from)
	l := t.people.lead[d]
	strip = t.refusedLinks(func(rf refusal) bool {
		return rf.row >= from && !done[rf.row] && t.people.lead[rf.other] == l && t.people.rootOf(t.did.at(rf.row)) != r
	})
	return drop, strip
}

// shrink rewrites the log file from memory: buntdb only appends, so deleted
// data stays in the file until then.
func (s *DB) shrink() error {
	if err := s.db.Shrink(); err != nil && err != buntdb.ErrShrinkInProcess {
		return fmt.Errorf("rewriting the log after deleting: %w", err)
	}
	return nil
}

// deleteRows removes the events of rows (ascending) from their blocks and
// marks the rows deleted; retention uses it. The refused link events that
// remain lose the id they named: a replay of the log without the deleted
// events, which may be the ones that made that id's person identified,
// could otherwise accept them. The caller holds s.maint.
func (s *DB) deleteRows(t *table, rows []int) error {
	t.mu.RLock()
	gone := make(map[int]bool, len(rows))
	for _, row := range rows {
		gone[row] = true
	}
	strip := t.refusedLinks(func(rf refusal) bool { return !gone[rf.row] })
	t.mu.RUnlock()
	if err := s.rewriteRows(t, rows, strip); err != nil {
		return err
	}
	t.mu.Lock()
	t.people.dropRefusals(func(row int) bool { _, ok := strip[row]; return ok || t.ts.at(row) == deletedTime })
	t.mu.Unlock()
	return nil
}

// refusedLinks returns the live rows of the refused link events that take
// says to take, with the property that names the other id. The caller holds
// t.mu.
func (t *table) refusedLinks(take func(rf refusal) bool) map[int]string {
	var out map[int]string
	for _, rf := range t.people.refused {
		if t.ts.at(rf.row) == deletedTime || !take(rf) {
			continue
		}
		if out == nil {
			out = make(map[int]string)
		}
		out[rf.row] = "alias"
		if t.name.value(rf.row) == "$identify" {
			out[rf.row] = "$anon_distinct_id"
		}
	}
	return out
}

// rewriteRows removes the events of drop (ascending) from their blocks and
// marks those rows deleted, and rewrites the events of the rows in strip
// without the property strip names. The caller holds s.maint.
func (s *DB) rewriteRows(t *table, drop []int, strip map[int]string) error {
	type change struct {
		bi   int
		ref  blockRef
		rows []int // dropped
		val  string
	}
	rows := slices.Clone(drop)
	for row := range strip {
		rows = append(rows, row)
	}
	slices.Sort(rows)
	rows = slices.Compact(rows)
	dropped := make(map[int]bool, len(drop))
	for _, row := range drop {
		dropped[row] = true
	}
	var changes []*change
	t.mu.RLock()
	for _, row := range rows {
		bi := t.blockOf(row)
		if len(changes) == 0 || changes[len(changes)-1].bi != bi {
			changes = append(changes, &change{bi: bi, ref: t.blocks[bi]})
		}
		c := changes[len(changes)-1]
		if dropped[row] {
			c.rows = append(c.rows, row)
		}
	}
	t.mu.RUnlock()

	for _, c := range changes {
		var keep []rawRef
		var own *decodedBlock // a copy of the block's events, to strip
		err := s.forEachStored([]blockRef{c.ref}, func(row int, d *decodedBlock, i int) {
			if dropped[row] {
				return
			}
			key, ok := strip[row]
			if !ok {
				keep = append(keep, rawRef{d, i})
				return
			}
			if own == nil {
				cp := *d // d may be the cache's: change a copy
				cp.events = slices.Clone(d.events)
				own = &cp
			}
			ev := &own.events[i]
			ev.props = slices.DeleteFunc(slices.Clone(ev.props), func(p rawProp) bool { return own.strs[p.key] == key })
			keep = append(keep, rawRef{own, i})
		})
		if err != nil {
			return err
		}
		if len(keep) > 0 {
			c.val = encodeRaw(t.site, keep, compressBest)
		}
	}
	histVals := make(map[string]string)
	for _, c := range changes {
		if isHistKey(c.ref.key) {
			histVals[c.ref.key] = c.val
		}
	}
	logOps := func(tx *buntdb.Tx) error {
		for _, c := range changes {
			if isHistKey(c.ref.key) {
				continue
			}
			if c.val == "" {
				if _, err := tx.Delete(c.ref.key); err != nil && err != buntdb.ErrNotFound {
					return err
				}
				continue
			}
			if _, _, err := tx.Set(c.ref.key, c.val, nil); err != nil {
				return err
			}
		}
		return nil
	}
	inMemory := func() {
		for _, c := range changes {
			b := &t.blocks[c.bi]
			for _, row := range c.rows {
				if t.ts.at(row) != deletedTime {
					t.ts.set(row, deletedTime)
				}
				t.live--
				b.skips = append(b.skips, int32(row-b.first))
			}
			sort.Slice(b.skips, func(i, j int) bool { return b.skips[i] < b.skips[j] })
			if c.val == "" {
				b.key = ""
			}
			b.compressed = true
			b.size = len(c.val)
			s.bc.drop(c.ref.key)
		}
		for row, key := range strip {
			if col := t.colByKey[key]; col != nil && row < col.len() && col.at(row) != 0 {
				col.setCode(row, 0)
			}
		}
		t.hist.journal = slices.DeleteFunc(t.hist.journal, func(j journalEntry) bool { return dropped[int(j.row)] })
		for i, j := range t.hist.journal {
			if k, ok := strip[int(j.row)]; ok {
				ev := *j.ev
				ev.Props = slices.DeleteFunc(slices.Clone(ev.Props), func(p Prop) bool { return p.Key == k })
				t.hist.journal[i].ev = &ev
			}
		}
	}
	touch := func(hf *histfile.File) bool {
		for i := range hf.Header.Blocks {
			if _, ok := histVals[blockKeyIn(hf.ID, i)]; ok {
				return true
			}
		}
		return false
	}
	return s.rewriteAll(t, histEdit{drop: dropped, strip: strip}, histVals, touch, logOps, inMemory)
}
