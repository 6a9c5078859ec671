package clickhouse

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

// openAt opens a backend over the log at path shipping to urls.
func openAt(t *testing.T, path string, urls []string, db string, keep time.Duration) *Backend {
	t.Helper()
	local, err := store.Open(path, store.Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(local, Options{URLs: urls, Database: db, Cluster: chtest.ClusterName, Flush: 20 * time.Millisecond, Batch: 500, Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sessionsOf(list []store.RecordingInfo) []string {
	out := make([]string, 0, len(list))
	for _, ri := range list {
		out = append(out, ri.SessionID)
	}
	sort.Strings(out)
	return out
}

// recent is a snapshot of one session whose events are an hour old.
func recent(session, did string) store.Snapshot {
	ts := time.Now().Add(-time.Hour).UnixMilli()
	return store.Snapshot{SessionID: session, WindowID: "w", DistinctID: did,
		Data: []byte(fmt.Sprintf(`[{"type":3,"timestamp":%d,"data":{"x":1}},{"type":3,"timestamp":%d,"data":{"x":2}}]`, ts, ts+500))}
}

// TestKeepDropsShippedRecordings: with keep, shipped recordings whose last
// event is older than keep leave the local log (the reopened log holds
// only the recent one), recordings still waiting to ship stay whatever
// their age, and ClickHouse answers every recording.
func TestKeepDropsShippedRecordings(t *testing.T) {
	c := chtest.Start(t)
	path := filepath.Join(t.TempDir(), "k.db")
	// ClickHouse unreachable: nothing ships, so nothing may go.
	b := openAt(t, path, []string{"http://127.0.0.1:1"}, "keeprec", 24*time.Hour)
	if err := b.AppendSnapshots(ctx, "s", append(snaps(0, 4), recent("fresh", "d9"))); err != nil {
		t.Fatal(err)
	}
	all := sessionsOf(b.DB.Recordings(ctx, "s", math.MinInt64, math.MaxInt64))
	if len(all) != 5 {
		t.Fatalf("%d recordings in the log, want 5", len(all))
	}
	if _, err := b.DropShipped(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sessionsOf(b.DB.Recordings(ctx, "s", math.MinInt64, math.MaxInt64)); fmt.Sprint(got) != fmt.Sprint(all) {
		t.Fatalf("recordings not shipped were dropped: %v left of %v", got, all)
	}
	b.Close()

	b = openAt(t, path, []string{c.Shards[0].URL(), c.Shards[1].URL()}, "keeprec", 24*time.Hour)
	flush(t, b)
	if _, err := b.DropShipped(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sessionsOf(b.DB.Recordings(ctx, "s", math.MinInt64, math.MaxInt64)); fmt.Sprint(got) != "[fresh]" {
		t.Fatalf("local log holds recordings %v, want only the recent one", got)
	}
	if got := sessionsOf(b.Recordings(ctx, "s", math.MinInt64, math.MaxInt64)); fmt.Sprint(got) != fmt.Sprint(all) {
		t.Fatalf("ClickHouse lists %v, want %v", got, all)
	}
	if _, err := b.Recording(ctx, "s", "sess-1"); err != nil {
		t.Fatalf("a dropped recording does not replay from ClickHouse: %v", err)
	}
	b.Close()

	local, err := store.Open(path, store.Options{CompactEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if got := sessionsOf(local.Recordings(ctx, "s", math.MinInt64, math.MaxInt64)); fmt.Sprint(got) != "[fresh]" {
		t.Fatalf("reopened log holds recordings %v, want only the recent one", got)
	}
}

// TestRecordingsDeletedOnAnotherNode: node B holds chunks of d1 that have
// not shipped (ClickHouse was unreachable from it) when node A deletes d1;
// once B reaches ClickHouse, those chunks never ship (no chunk of d1 in
// ClickHouse, and no deletion was needed there), B's local copies go, and
// B's other chunks ship.
func TestRecordingsDeletedOnAnotherNode(t *testing.T) {
	c := chtest.Start(t)
	dir := t.TempDir()
	urls := []string{c.Shards[0].URL(), c.Shards[1].URL()}
	bpath := filepath.Join(dir, "b.db")
	b := openAt(t, bpath, []string{"http://127.0.0.1:1"}, "recdel", 0)
	if err := b.AppendSnapshots(ctx, "s", []store.Snapshot{recent("b-d1-a", "d1"), recent("b-d1-b", "d1"), recent("b-d2", "d2")}); err != nil {
		t.Fatal(err)
	}
	b.Close()

	a := openAt(t, filepath.Join(dir, "a.db"), urls, "recdel", 0)
	defer a.Close()
	if _, err := a.Append(ctx, mkEvents(4, 0, func(int) string { return "d1" })); err != nil {
		t.Fatal(err)
	}
	if err := a.AppendSnapshots(ctx, "s", []store.Snapshot{recent("a-d1", "d1")}); err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	if err := a.DeletePerson(ctx, "s", "d1"); err != nil {
		t.Fatal(err)
	}
	mutations := func() int {
		n := 0
		for _, s := range c.Shards {
			n += count(t, &Client{URL: s.URL()}, "SELECT count() FROM system.mutations WHERE database = 'recdel' AND table = 'recordings_local'")
		}
		return n
	}
	before := mutations()
	if before == 0 {
		t.Fatal("node A's own recording of d1 was not deleted in ClickHouse")
	}

	b = openAt(t, bpath, urls, "recdel", 0)
	defer b.Close()
	flush(t, b)
	if n := count(t, b.client(), "SELECT count() FROM recordings WHERE distinct_id = 'd1'"); n != 0 {
		t.Fatalf("%d chunks of the deleted person in ClickHouse", n)
	}
	if n := count(t, b.client(), "SELECT count() FROM recordings WHERE distinct_id = 'd2'"); n != 1 {
		t.Fatalf("%d chunks of d2 in ClickHouse, want 1", n)
	}
	if after := mutations(); after != before {
		t.Fatalf("B shipped d1's chunks and deleted them afterwards (%d mutations, %d before)", after, before)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := sessionsOf(b.DB.Recordings(ctx, "s", math.MinInt64, math.MaxInt64))
		if fmt.Sprint(got) == "[b-d2]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node B's log holds recordings %v, want [b-d2]", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := sessionsOf(b.Recordings(ctx, "s", math.MinInt64, math.MaxInt64)); fmt.Sprint(got) != "[b-d2]" {
		t.Fatalf("ClickHouse lists %v, want [b-d2]", got)
	}
}

// TestRecordingUsageWholeSession: a session with chunks older than 24
// hours in ClickHouse (another node's) and a new chunk here: its size is
// all of its chunks, not only the last day's.
func TestRecordingUsageWholeSession(t *testing.T) {
	c := chtest.Start(t)
	b := open(t, filepath.Join(t.TempDir(), "u.db"), c, "recuse")
	defer b.Close()
	if err := b.rec.ensureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	var rows []byte
	oldBytes := 0
	for i := 0; i < 3; i++ {
		data := []byte(fmt.Sprintf(`[{"type":3,"timestamp":%d}]`, old.UnixMilli()+int64(i)))
		r := recRow{Site: "s", Session: "long", Node: "elsewhere", Ord: uint64(old.UnixMicro()) + uint64(i), T: old.UTC().Format(time.DateTime),
			DistinctID: "d1", First: old.UnixMilli(), Last: old.UnixMilli(), Events: 1, Bytes: 1000 + i,
			Data: base64.StdEncoding.EncodeToString(recEnc.EncodeAll(data, nil))}
		oldBytes += r.Bytes
		j, _ := json.Marshal(r)
		rows = append(append(rows, j...), '\n')
	}
	if err := b.client().InsertJSON(ctx, "recordings", rows); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendSnapshots(ctx, "s", []store.Snapshot{recent("long", "d1")}); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	localBytes, _ := b.DB.RecordingUsage("s", "long")
	want := int64(oldBytes) + localBytes
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, _ := b.RecordingUsage("s", "long")
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session size %d, want %d (%d of it older than a day)", got, want, oldBytes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRecordingShippedAfterDeletionIsPurged: a chunk of a deleted person
// that reached ClickHouse after the deleting node had purged its
// recordings (shipped by another node in the moment before it saw the
// tombstones) is deleted by that node once it sees them: here a node that
// starts after the deletion.
func TestRecordingShippedAfterDeletionIsPurged(t *testing.T) {
	c := chtest.Start(t)
	dir := t.TempDir()
	urls := []string{c.Shards[0].URL(), c.Shards[1].URL()}
	a := openAt(t, filepath.Join(dir, "a.db"), urls, "recpurge", 0)
	defer a.Close()
	if _, err := a.Append(ctx, mkEvents(3, 0, func(int) string { return "d1" })); err != nil {
		t.Fatal(err)
	}
	if err := a.AppendSnapshots(ctx, "s", []store.Snapshot{recent("a-d1", "d1"), recent("a-d2", "d2")}); err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	if err := a.DeletePerson(ctx, "s", "d1"); err != nil {
		t.Fatal(err)
	}
	// The late chunk, as another node's shipper would have inserted it.
	data := []byte(`[{"type":3,"timestamp":1}]`)
	late := recRow{Site: "s", Session: "late-d1", Node: "other", Ord: 1, T: time.Now().UTC().Format(time.DateTime), DistinctID: "d1",
		First: 1, Last: 1, Events: 1, Bytes: 10, Data: base64.StdEncoding.EncodeToString(recEnc.EncodeAll(data, nil))}
	j, _ := json.Marshal(late)
	if err := a.client().InsertJSON(ctx, "recordings", append(j, '\n')); err != nil {
		t.Fatal(err)
	}
	b := openAt(t, filepath.Join(dir, "b.db"), urls, "recpurge", 0)
	defer b.Close()
	deadline := time.Now().Add(15 * time.Second)
	for count(t, b.client(), "SELECT count() FROM recordings WHERE distinct_id = 'd1'") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the late chunk of the deleted person stayed in ClickHouse")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := sessionsOf(b.Recordings(ctx, "s", math.MinInt64, math.MaxInt64)); fmt.Sprint(got) != "[a-d2]" {
		t.Fatalf("ClickHouse lists %v, want [a-d2]", got)
	}
}
