package store

import (
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// chainDepth is the size of the alias chain of issue 10: one person whose
// ids were seen oldest last, so that a union-find rooted at the smallest
// code grows one level per alias.
const chainDepth = 60000

// buildAliasChain stores n pageviews of ids a-0 … a-(n-1), then a server
// that aliases them, newest first, into one person ("chain-user"), and a
// few events of an unrelated person ("bystander").
func buildAliasChain(tb testing.TB, db *DB, n int) {
	tb.Helper()
	batch := make([]*Event, 0, 1000)
	flush := func() {
		if _, err := db.Append(ctx, batch); err != nil {
			tb.Fatal(err)
		}
		batch = batch[:0]
	}
	add := func(e *Event) {
		if batch = append(batch, e); len(batch) == cap(batch) {
			flush()
		}
	}
	add(ev("s", "$pageview", "bystander", 1, "$pathname", "/"))
	for i := 0; i < n; i++ {
		add(ev("s", "$pageview", fmt.Sprint("a-", i), int64(10+i), "$pathname", "/p"))
	}
	for i := n - 1; i >= 0; i-- {
		add(ev("s", "$create_alias", "chain-user", int64(10+n+i), "alias", fmt.Sprint("a-", i)))
	}
	add(ev("s", "$pageview", "bystander", 2, "$pathname", "/"))
	flush()
}

// BenchmarkDeletePersonAliasChain deletes a person of 60,001 ids built by a
// 60,000-deep alias chain (120,000 events), on a file-backed store.
//
//	go test ./store -run '^$' -bench 'AliasChain|CaptureDuringDelete' -benchtime 3x
func BenchmarkDeletePersonAliasChain(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db, err := Open(filepath.Join(b.TempDir(), "chain.db"), Options{CompactEvery: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		buildAliasChain(b, db, chainDepth)
		if err := db.Compact(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := db.DeletePerson(ctx, "s", "a-0"); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if n := db.Count("s"); n != 2 {
			b.Fatalf("%d events left, want the bystander's 2", n)
		}
		db.Close()
	}
}

// BenchmarkCaptureDuringDelete measures single-event captures (each its own
// Append, as one HTTP request is) issued back to back while the person of
// the alias chain is deleted: the reported figures are the slowest capture
// and the median, in milliseconds.
func BenchmarkCaptureDuringDelete(b *testing.B) {
	var all []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db, err := Open(filepath.Join(b.TempDir(), "chain.db"), Options{CompactEvery: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		buildAliasChain(b, db, chainDepth)
		if err := db.Compact(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		done := make(chan error, 1)
		go func() { done <- db.DeletePerson(ctx, "s", "a-0") }()
		captures := 0
	loop:
		for {
			select {
			case err := <-done:
				if err != nil {
					b.Fatal(err)
				}
				break loop
			default:
			}
			began := time.Now()
			if _, err := db.Append(ctx, []*Event{ev("s", "$pageview", "visitor", int64(captures), "$pathname", "/")}); err != nil {
				b.Fatal(err)
			}
			all = append(all, time.Since(began))
			captures++
		}
		b.StopTimer()
		db.Close()
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)-1].Microseconds())/1000, "max-capture-ms")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-capture-ms")
		b.ReportMetric(float64(len(all))/float64(b.N), "captures/delete")
	}
}
