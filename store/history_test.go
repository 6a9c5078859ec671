package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// historyPair is the same data in two stores: one that moves whole chunks
// into history files as soon as they are full, one that keeps everything in
// the log.
type historyPair struct {
	hist, log         *DB
	histPath, logPath string
	ids               []string // distinct ids seen
}

func openPair(t *testing.T, dir string) (*DB, *DB) {
	t.Helper()
	onErr := func(err error) { t.Error(err) }
	h, err := Open(filepath.Join(dir, "hist.db"), Options{HistoryAfter: -1, CompactEvery: time.Hour, CompactAfter: 1 << 30, OnError: onErr})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(filepath.Join(dir, "log.db"), Options{NoHistory: true, CompactEvery: time.Hour, OnError: onErr})
	if err != nil {
		t.Fatal(err)
	}
	return h, l
}

// fillPair generates events (random persons, sessions, merges, server
// pageviews paired or not with the snippet's) into both stores.
func fillPair(t *testing.T, events int) *historyPair {
	t.Helper()
	dir := t.TempDir()
	p := &historyPair{histPath: filepath.Join(dir, "hist.db"), logPath: filepath.Join(dir, "log.db")}
	p.hist, p.log = openPair(t, dir)
	seen := map[string]bool{}
	var batch []*Event
	rnd := rand.New(rand.NewPCG(11, 12))
	n := 0
	flush := func() {
		mustAppend(t, p.hist, batch...)
		mustAppend(t, p.log, batch...)
		batch = nil
	}
	generate(genConfig{Seed: 21, Start: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), Days: 20, Persons: 3000, Events: events, Tick: time.Second}, func(e *Event) {
		if !seen[e.DistinctID] {
			seen[e.DistinctID] = true
			p.ids = append(p.ids, e.DistinctID)
		}
		batch = append(batch, e)
		n++
		// Some page loads have a server pageview, some confirmed by the
		// snippet's pageview (same ref), some not.
		if e.Name == "$pageview" && rnd.IntN(4) == 0 {
			ref := fmt.Sprintf("ref-%d", n)
			sp := &Event{Site: e.Site, Name: ServerPageview, DistinctID: e.DistinctID, Time: e.Time - 5,
				UUID: fmt.Sprintf("eeeeeeee-0000-7000-9000-%012x", n), Props: Props{{PageviewRef, StringValue(ref)}, {"$pathname", StringValue(e.Props.Str("$pathname"))}}}
			batch = append(batch, sp)
			if rnd.IntN(2) == 0 {
				e.Props = append(slices.Clone(e.Props), Prop{PageviewRef, StringValue(ref)})
			}
		}
		if len(batch) >= 500 {
			flush()
		}
	})
	flush()
	return p
}

// histFiles lists the history files of a db path.
func histFiles(t *testing.T, dbPath string) []string {
	t.Helper()
	ents, err := os.ReadDir(HistoryDir(dbPath))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(HistoryDir(dbPath), e.Name()))
	}
	return out
}

// compareStores runs random §4 queries on both stores and fails on any
// difference.
func compareStores(t *testing.T, a, b *DB, ids []string, rounds int, seed uint64) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(seed, 99))
	pick := func(xs ...string) string { return xs[rnd.IntN(len(xs))] }
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	ny, _ := time.LoadLocation("America/New_York")
	events := []string{"$pageview", "$autocapture", "$pageleave", "purchase", "$identify", ServerPageview, "$pageview|$pathname==/pricing"}
	filters := []string{"$pathname==/", "$pathname!=/pricing", "$pathname~docs", "$browser==Chrome", "$geoip_country_code!=",
		"utm_source~goo", "event!=$pageleave", "plan==pro", "$entry_pathname==/", "$channel_type==Direct", "$entry_pathname~docs"}
	for i := 0; i < rounds && !t.Failed(); i++ {
		tz := pick("utc", "ny")
		loc := time.UTC
		if tz == "ny" {
			loc = ny
		}
		from := start.Add(time.Duration(rnd.IntN(20*24)) * time.Hour)
		to := from.Add(time.Duration(1+rnd.IntN(15*24)) * time.Hour)
		q := Query{Site: "s", From: from, To: to, TZ: loc}
		for n := rnd.IntN(3); n > 0; n-- {
			f, err := ParseFilter(filters[rnd.IntN(len(filters))])
			if err != nil {
				t.Fatal(err)
			}
			q.Filters = append(q.Filters, f)
		}
		name := fmt.Sprintf("round %d %v..%v %v", i, from, to, q.Filters)
		same(t, name+" stats", must(a.Stats(ctx, q)), must(b.Stats(ctx, q)))
		bq := BreakdownQuery{Property: pick("$pathname", "$browser", "event", "$geoip_country_code", "utm_source", "plan", "$entry_pathname", "$current_url"), Limit: 1 + rnd.IntN(30)}
		same(t, name+" breakdown", must(a.Breakdown(ctx, q, bq)), must(b.Breakdown(ctx, q, bq)))
		tq := TrendsQuery{Interval: pick(IntervalHour, IntervalDay, IntervalWeek), Math: pick(MathTotal, MathUnique, MathDAU), Events: []string{pick(events...), pick(events...)}}
		same(t, name+" trends", must(a.Trends(ctx, q, tq)), must(b.Trends(ctx, q, tq)))
		fq := FunnelQuery{Window: time.Duration(1+rnd.IntN(3*24)) * time.Hour, Steps: []string{pick(events...), pick(events...), pick(events...)}}
		same(t, name+" funnel", must(a.Funnel(ctx, q, fq)), must(b.Funnel(ctx, q, fq)))
		rq := RetentionQuery{StartEvent: pick(events...), ReturnEvent: pick(events...), Period: pick(PeriodDay, PeriodWeek), Periods: 1 + rnd.IntN(8)}
		same(t, name+" retention", must(a.Retention(ctx, q, rq)), must(b.Retention(ctx, q, rq)))
		pq := PathsQuery{Steps: 2 + rnd.IntN(4)}
		same(t, name+" paths", must(a.Paths(ctx, q, pq)), must(b.Paths(ctx, q, pq)))
		same(t, name+" server", must(a.Server(ctx, q, 10)), must(b.Server(ctx, q, 10)))
		eq := EventQuery{Site: "s", From: from.UnixMilli(), To: to.UnixMilli(), Limit: 50 + rnd.IntN(200)}
		if rnd.IntN(2) == 0 {
			eq.DistinctID = ids[rnd.IntN(len(ids))]
		}
		pa, pb := must(a.Events(ctx, eq)), must(b.Events(ctx, eq))
		// Row numbers (in the cursor) differ once a reopened log has
		// dropped deleted rows: the pages are compared, and the next ones.
		sameLines(t, name+" events", jsonAll(pa.Results)+fmt.Sprint(pa.PersonIDs), jsonAll(pb.Results)+fmt.Sprint(pb.PersonIDs))
		if (pa.Next == "") != (pb.Next == "") {
			t.Errorf("%s: next page %q vs %q", name, pa.Next, pb.Next)
		} else if pa.Next != "" {
			eqa, eqb := eq, eq
			eqa.Cursor, eqb.Cursor = pa.Next, pb.Next
			na, nb := must(a.Events(ctx, eqa)), must(b.Events(ctx, eqb))
			sameLines(t, name+" events page 2", jsonAll(na.Results)+fmt.Sprint(na.PersonIDs), jsonAll(nb.Results)+fmt.Sprint(nb.PersonIDs))
		}
		var ea, eb bytes.Buffer
		for _, x := range []struct {
			db *DB
			w  *bytes.Buffer
		}{{a, &ea}, {b, &eb}} {
			if err := x.db.Export(ctx, q, func(e *Event, pid string) error {
				fmt.Fprintf(x.w, "%s %s %s\n", e.UUID, e.Name, pid)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		if ea.String() != eb.String() {
			t.Errorf("%s: exports differ (%d vs %d bytes)", name, ea.Len(), eb.Len())
		}
	}
	for i := 0; i < 40 && !t.Failed(); i++ {
		id := ids[rnd.IntN(len(ids))]
		pa, ea := a.Person(ctx, "s", id)
		pb, eb := b.Person(ctx, "s", id)
		if ea != eb {
			t.Fatalf("person %s: %v vs %v", id, ea, eb)
		}
		if ea == nil {
			same(t, "person "+id, pa, pb)
		}
	}
	same(t, "count", a.Count("s"), b.Count("s"))
	pq := PersonQuery{Site: "s", Limit: 100}
	same(t, "persons", must(a.Persons(ctx, pq)), must(b.Persons(ctx, pq)))
}

// TestHistoryAnswersSameAsLog: the §4 answers are the same whether events
// are in the log or in history files, after moves, after deletions and
// retention, and after both stores are reopened.
func TestHistoryAnswersSameAsLog(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 150k events")
	}
	p := fillPair(t, 150000)
	for _, db := range []*DB{p.hist, p.log} {
		if err := db.Compact(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.hist.MoveHistory(); err != nil {
		t.Fatal(err)
	}
	files := histFiles(t, p.histPath)
	if len(files) < 2 {
		t.Fatalf("%d history files after %d events, want 2 or more", len(files), p.hist.Count("s"))
	}
	if n := len(histFiles(t, p.logPath)); n != 0 {
		t.Fatalf("the NoHistory store wrote %d history files", n)
	}
	// The moved blocks left the log.
	t.Logf("%d events, %d history files", p.hist.Count("s"), len(files))
	compareStores(t, p.hist, p.log, p.ids, 10, 1)

	// Deleting persons (their rows in files and in the log) and retention
	// rewrite the files; the answers stay the same.
	for _, id := range []string{p.ids[3], p.ids[len(p.ids)/2], p.ids[len(p.ids)-5]} {
		for _, db := range []*DB{p.hist, p.log} {
			if err := db.DeletePerson(ctx, "s", id); err != nil && err != ErrNotFound {
				t.Fatal(err)
			}
		}
	}
	compareStores(t, p.hist, p.log, p.ids, 8, 2)

	for _, db := range []*DB{p.hist, p.log} {
		db.Close()
	}
	var err error
	if p.hist, err = Open(p.histPath, Options{HistoryAfter: -1, CompactEvery: time.Hour}); err != nil {
		t.Fatal(err)
	}
	defer p.hist.Close()
	if p.log, err = Open(p.logPath, Options{NoHistory: true, CompactEvery: time.Hour}); err != nil {
		t.Fatal(err)
	}
	defer p.log.Close()
	compareStores(t, p.hist, p.log, p.ids, 8, 3)

	// More events after the restart: uuids already in history files stay
	// duplicates, new ones land after them.
	gen := 0
	var again []*Event
	generate(genConfig{Seed: 21, Start: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), Days: 20, Persons: 3000, Events: 2000, Tick: time.Second}, func(e *Event) {
		if gen < 2000 {
			again = append(again, e)
		}
		gen++
	})
	out := mustAppend(t, p.hist, again...)
	for i, o := range out {
		if o != Duplicate {
			t.Fatalf("event %d (%s) of the first chunk stored again after restart", i, again[i].UUID)
		}
	}
	compareStores(t, p.hist, p.log, p.ids, 5, 4)
}

// TestHistoryFileHoldsNoDeletedPerson: after a person is deleted no file
// on disk names any of their distinct ids or holds their events.
func TestHistoryFileHoldsNoDeletedPerson(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 70k events")
	}
	p := fillPair(t, 70000)
	defer p.log.Close()
	if err := p.hist.MoveHistory(); err != nil {
		t.Fatal(err)
	}
	if len(histFiles(t, p.histPath)) == 0 {
		t.Fatal("no history file")
	}
	// A person with events in the history file.
	victim := p.ids[2]
	person := must(p.hist.Person(ctx, "s", victim))
	if err := p.hist.DeletePerson(ctx, "s", victim); err != nil {
		t.Fatal(err)
	}
	p.hist.Close()
	for _, f := range histFiles(t, p.histPath) {
		hf, err := openHist(0, f)
		if err != nil {
			t.Fatal(err)
		}
		if err := hf.check(); err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		strs, err := hf.dictStrings("did")
		if err != nil {
			t.Fatal(err)
		}
		text.WriteString(strings.Join(strs, "\n"))
		for i := range hf.hdr.Blocks {
			if v := hf.blockValue(i); v != "" {
				d := must(decodeBlock(v))
				text.WriteString(strings.Join(d.strs, "\n"))
			}
		}
		if jd, _ := hf.journal(); jd != nil {
			text.WriteString(strings.Join(jd.strs, "\n"))
		}
		for _, id := range person.DistinctIDs {
			if strings.Contains(text.String(), id) || bytes.Contains(hf.data, []byte(id)) {
				t.Errorf("%s still holds deleted id %q", f, id)
			}
		}
		unmapFile(hf.data)
	}
	db, err := Open(p.histPath, Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Person(ctx, "s", victim); err != ErrNotFound {
		t.Fatalf("deleted person after reopen: %v", err)
	}
	sort.Strings(person.DistinctIDs)
}

// sameLines fails at the first line where got and want differ.
func sameLines(t *testing.T, what, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var a, b string
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			if len(a) > 600 {
				a = a[:600]
			}
			if len(b) > 600 {
				b = b[:600]
			}
			t.Errorf("%s: line %d of %d/%d differs:\n got %s\nwant %s", what, i, len(g), len(w), a, b)
			return
		}
	}
}
