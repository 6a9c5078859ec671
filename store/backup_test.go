package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BenchmarkBackup snapshots a log of 500,000 events and reports the
// snapshot's speed and the longest Append that waited for it (writes wait
// while the snapshot is written; reads do not).
//
//	go test ./store -run '^$' -bench Backup -benchtime 3x
func BenchmarkBackup(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "b.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const n = 500000
	for i := 0; i < n; i += 10000 {
		evs := make([]*Event, 0, 10000)
		for j := i; j < i+10000; j++ {
			evs = append(evs, &Event{Site: "b.example", Name: "$pageview", DistinctID: fmt.Sprintf("u%d", j%9000), Time: int64(1.7e12) + int64(j)*1000,
				Props: Props{{Key: "$current_url", Val: StringValue(fmt.Sprintf("https://b.example/p/%d", j%500))}, {Key: "$session_id", Val: StringValue(fmt.Sprintf("s%d", j/15))}}})
		}
		if _, err := db.Append(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
	out := filepath.Join(b.TempDir(), "copy.db")
	b.ResetTimer()
	var size int64
	var worst time.Duration
	for i := 0; i < b.N; i++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // a writer during the backup
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				db.Append(context.Background(), []*Event{{Site: "b.example", Name: "w", DistinctID: "w", Time: int64(1.8e12) + int64(k)}})
				if d := time.Since(t0); d > worst {
					worst = d
				}
			}
		}()
		size, err = db.BackupTo(out)
		close(stop)
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(size)/(1<<20), "MB")
	b.ReportMetric(float64(size)/(1<<20)/(b.Elapsed().Seconds()/float64(b.N)), "MB/s")
	b.ReportMetric(float64(worst.Milliseconds()), "max-append-ms")
}
