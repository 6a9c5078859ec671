package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store/histfile"
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
		hf, err := histfile.Open(0, f)
		if err != nil {
			t.Fatal(err)
		}
		if err := hf.Check(); err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		strs, err := hf.DictStrings("did")
		if err != nil {
			t.Fatal(err)
		}
		text.WriteString(strings.Join(strs, "\n"))
		for i := range hf.Header.Blocks {
			if v := hf.BlockValue(i); v != "" {
				d := must(decodeBlock(v))
				text.WriteString(strings.Join(d.strs, "\n"))
			}
		}
		if jd, _ := histJournal(hf); jd != nil {
			text.WriteString(strings.Join(jd.strs, "\n"))
		}
		for _, id := range person.DistinctIDs {
			if strings.Contains(text.String(), id) || bytes.Contains(hf.Bytes(), []byte(id)) {
				t.Errorf("%s still holds deleted id %q", f, id)
			}
		}
		hf.Close()
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

// crashEvents are the events the crash test's child stores: a bit more
// than one chunk.
func crashEvents() []*Event {
	var out []*Event
	generate(genConfig{Seed: 5, Start: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), Days: 10, Persons: 800, Events: 80000, Tick: time.Second}, func(e *Event) {
		out = append(out, e)
	})
	return out
}

// crashVictim is the person the crash test deletes: the first identified
// one among the events.
func crashVictimID() string {
	for _, e := range crashEvents() {
		if strings.Contains(e.DistinctID, "@") {
			return e.DistinctID
		}
	}
	return ""
}

// TestHistoryCrashChild is the process the crash test kills: it stores the
// events, then moves a chunk into a history file or deletes a person (a
// rewrite), and kills itself with SIGKILL at the point FP_CRASH_POINT.
func TestHistoryCrashChild(t *testing.T) {
	point, path := os.Getenv("FP_CRASH_POINT"), os.Getenv("FP_CRASH_DB")
	if point == "" {
		t.Skip("run by TestHistoryCrashSafe")
	}
	db, err := Open(path, Options{HistoryAfter: -1, CompactEvery: time.Hour, CompactAfter: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	db.hist.crash = func(p string) {
		if p == point {
			killSelf()
		}
	}
	if strings.HasPrefix(point, "move:") {
		evs := crashEvents()
		for i := 0; i < len(evs); i += 1000 {
			mustAppend(t, db, evs[i:min(i+1000, len(evs))]...)
		}
		if err := db.MoveHistory(); err != nil {
			t.Fatal(err)
		}
	} else if err := db.DeletePerson(ctx, "s", crashVictimID()); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("point %s never reached", point)
}

// TestHistoryCrashSafe kills a process (SIGKILL) at each step of a move
// into a history file and of a rewrite, then reopens the store: every
// acknowledged event is there once, the deletion happened wholly or not at
// all, and no file the log does not list is left.
func TestHistoryCrashSafe(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	evs := crashEvents()
	want := map[string]bool{}
	for _, e := range evs {
		want[e.UUID] = true
	}
	run := func(path, point string) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestHistoryCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "FP_CRASH_POINT="+point, "FP_CRASH_DB="+path)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || !killedBySIGKILL(ee) {
			t.Fatalf("child at %s: %v, want killed\n%s", point, err, out)
		}
	}
	victimUUID := map[string]bool{}
	crashVictim := crashVictimID()
	check := func(path, point string, deleted bool) {
		t.Helper()
		db, err := Open(path, Options{CompactEvery: time.Hour})
		if err != nil {
			t.Fatalf("%s: reopening: %v", point, err)
		}
		defer db.Close()
		got := map[string]int{}
		if err := db.Export(ctx, Query{Site: "s", From: time.Unix(0, 0), To: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}, func(e *Event, pid string) error {
			got[e.UUID]++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for u, n := range got {
			if n != 1 || !want[u] {
				t.Fatalf("%s: uuid %s stored %d times (known %v)", point, u, n, want[u])
			}
		}
		for u := range want {
			if got[u] == 0 && !(deleted && victimUUID[u]) {
				t.Fatalf("%s: acknowledged event %s lost", point, u)
			}
			if got[u] != 0 && deleted && victimUUID[u] {
				t.Fatalf("%s: event %s of the deleted person remains", point, u)
			}
		}
		_, perr := db.Person(ctx, "s", crashVictim)
		if deleted != (perr == ErrNotFound) {
			t.Fatalf("%s: person after the crash: %v, deleted %v", point, perr, deleted)
		}
		listed := map[string]bool{}
		db.hist.mu.RLock()
		for _, hf := range db.hist.files {
			listed[hf.Path] = true
		}
		db.hist.mu.RUnlock()
		for _, f := range histFiles(t, path) {
			if !listed[f] {
				t.Fatalf("%s: stray file %s", point, f)
			}
		}
		if moved := len(listed) > 0; strings.HasPrefix(point, "move:") && moved != (point == "move:listed") {
			t.Fatalf("%s: %d files listed", point, len(listed))
		}
	}
	for _, point := range []string{"move:write", "move:rename", "move:list", "move:listed"} {
		path := filepath.Join(t.TempDir(), "crash.db")
		run(path, point)
		check(path, point, false)
	}

	// Rewrites: a store with its first chunk in a history file, then a
	// person deletion cut short at each step.
	base := filepath.Join(t.TempDir(), "base.db")
	db, err := Open(base, Options{HistoryAfter: -1, CompactEvery: time.Hour, CompactAfter: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(evs); i += 1000 {
		mustAppend(t, db, evs[i:min(i+1000, len(evs))]...)
	}
	if err := db.MoveHistory(); err != nil {
		t.Fatal(err)
	}
	victim := must(db.Person(ctx, "s", crashVictim))
	inFile := 0
	if err := db.Export(ctx, Query{Site: "s", From: time.Unix(0, 0), To: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}, func(e *Event, pid string) error {
		if pid == victim.ID {
			victimUUID[e.UUID] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("the person has %d events", len(victimUUID))
	db.Close()
	_ = inFile
	for _, point := range []string{"rewrite:write", "rewrite:rename", "rewrite:list", "rewrite:listed"} {
		path := filepath.Join(t.TempDir(), "crash.db")
		if _, err := linkOrCopy(base, path); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(HistoryDir(path), 0o700)
		for _, f := range histFiles(t, base) {
			if _, err := linkOrCopy(f, filepath.Join(HistoryDir(path), filepath.Base(f))); err != nil {
				t.Fatal(err)
			}
		}
		run(path, point)
		check(path, point, point == "rewrite:listed")
	}
}

// TestHistoryBackupRestore: a backup holds the history files its log
// lists; restored elsewhere it answers as the original did at the backup,
// whatever the original did after (a deletion that rewrote a file).
func TestHistoryBackupRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 80k events")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	db, err := Open(src, Options{HistoryAfter: -1, CompactEvery: time.Hour, CompactAfter: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs := crashEvents()
	for i := 0; i < len(evs); i += 1000 {
		mustAppend(t, db, evs[i:min(i+1000, len(evs))]...)
	}
	if err := db.MoveHistory(); err != nil {
		t.Fatal(err)
	}
	if len(histFiles(t, src)) == 0 {
		t.Fatal("no history file")
	}
	q := Query{Site: "s", From: time.Unix(0, 0), To: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	before := must(db.Stats(ctx, q))
	bk := filepath.Join(dir, "backup", "b.db")
	os.MkdirAll(filepath.Dir(bk), 0o700)
	if _, err := db.BackupTo(bk); err != nil {
		t.Fatal(err)
	}
	if len(histFiles(t, bk)) != len(histFiles(t, src)) {
		t.Fatalf("backup has %d history files, the store %d", len(histFiles(t, bk)), len(histFiles(t, src)))
	}
	// The original changes after the backup.
	if err := db.DeletePerson(ctx, "s", crashVictimID()); err != nil {
		t.Fatal(err)
	}
	if after := must(db.Stats(ctx, q)); after.Pageviews == before.Pageviews && after.Visitors == before.Visitors {
		t.Fatal("the deletion changed nothing")
	}
	dst := filepath.Join(dir, "restored.db")
	if _, err := Restore(bk, dst); err != nil {
		t.Fatal(err)
	}
	re, err := Open(dst, Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	same(t, "restored stats", must(re.Stats(ctx, q)), before)
	same(t, "restored count", re.Count("s"), len(evs)-countDups(evs))
}

func countDups(evs []*Event) int {
	seen := map[string]bool{}
	n := 0
	for _, e := range evs {
		if seen[e.UUID] {
			n++
		}
		seen[e.UUID] = true
	}
	return n
}

// TestVerifyReadsHistoryFiles: verify counts the events of the history
// files the log lists and reports one whose bytes changed.
func TestVerifyReadsHistoryFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 80k events")
	}
	path := filepath.Join(t.TempDir(), "v.db")
	db, err := Open(path, Options{HistoryAfter: -1, CompactEvery: time.Hour, CompactAfter: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	evs := crashEvents()
	for i := 0; i < len(evs); i += 1000 {
		mustAppend(t, db, evs[i:min(i+1000, len(evs))]...)
	}
	if err := db.MoveHistory(); err != nil {
		t.Fatal(err)
	}
	count := db.Count("s")
	db.Close()
	rep, err := VerifyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.HistoryFiles != 1 || rep.Events != count {
		t.Fatalf("verify: ok %v, %d files, %d events (the store has %d): %v", rep.OK(), rep.HistoryFiles, rep.Events, count, rep.Damage)
	}
	f := histFiles(t, path)[0]
	b, _ := os.ReadFile(f)
	b[len(b)-100] ^= 0xff
	os.WriteFile(f, b, 0o600)
	rep, err = VerifyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(rep.Damage[0].Msg, filepath.Base(f)) {
		t.Fatalf("a changed history file verifies: %+v", rep.Damage)
	}
}

// TestLostHistoryFile: a history file that is missing or unreadable costs
// its own rows, not the store: Open succeeds, reports the file, keeps it
// aside, and serves the other rows; later events are stored after them.
func TestLostHistoryFile(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 150k events")
	}
	p := fillPair(t, 150000)
	p.log.Close()
	if err := p.hist.MoveHistory(); err != nil {
		t.Fatal(err)
	}
	q := Query{Site: "s", From: time.Unix(0, 0), To: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	total := p.hist.Count("s")
	p.hist.Close()
	files := histFiles(t, p.histPath)
	if len(files) < 2 {
		t.Fatalf("%d history files", len(files))
	}
	sort.Strings(files)
	b, _ := os.ReadFile(files[0])
	copy(b[8:16], "garbage!") // the header length
	os.WriteFile(files[0], b, 0o600)
	var rep DamageReport
	db, err := Open(p.histPath, Options{CompactEvery: time.Hour, OnDamage: func(r DamageReport) { rep = r }})
	if err != nil {
		t.Fatalf("a damaged history file stopped the store: %v", err)
	}
	defer db.Close()
	if len(rep.LostHistory) != 1 || !strings.Contains(rep.LostHistory[0], filepath.Base(files[0])) {
		t.Fatalf("damage report %+v", rep)
	}
	if _, err := os.Stat(files[0]); !os.IsNotExist(err) {
		t.Fatal("the damaged file was not kept aside")
	}
	got := db.Count("s")
	if got >= total || got < total-chunkSize {
		t.Fatalf("%d events served after losing one chunk of %d", got, total)
	}
	if must(db.Stats(ctx, q)).Pageviews == 0 {
		t.Fatal("nothing served")
	}
	mustAppend(t, db, &Event{Site: "s", Name: "$pageview", DistinctID: "after", Time: time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC).UnixMilli()})
	if db.Count("s") != got+1 {
		t.Fatal("a new event was not stored")
	}
}
