package store

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkOpenLarge: what the check at every Open and a recovery cost for
// a file of about 1,000,000 events (the benchmark site of bench_test.go,
// compacted, every event kept in the log: NoHistory), built once per run:
//
//	go test ./store -run '^$' -bench OpenLarge -benchtime 3x
func BenchmarkOpenLarge(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "large.db")
	db, err := Open(path, Options{NoHistory: true})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]*Event, 0, 1000)
	n := 0
	generate(genConfig{Seed: 1, Start: benchStart, Days: 30, Persons: 30000, Events: 1120000}, func(e *Event) {
		if batch = append(batch, e); len(batch) == cap(batch) {
			if _, err := db.Append(ctx, batch); err != nil {
				b.Fatal(err)
			}
			n += len(batch)
			batch = batch[:0]
		}
	})
	if _, err := db.Append(ctx, batch); err != nil {
		b.Fatal(err)
	}
	n += len(batch)
	if err := db.Compact(); err != nil {
		b.Fatal(err)
	}
	if err := db.db.Shrink(); err != nil {
		b.Fatal(err)
	}
	db.Close()
	clean, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d events, file %d MiB", n, len(clean)>>20)

	b.Run("check", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if c, err := CheckFile(path); err != nil || len(c.Damage) != 0 || c.Records < 400 {
				b.Fatal(c, err)
			}
		}
	})
	b.Run("open-clean", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			db, err := Open(path, Options{NoHistory: true})
			if err != nil {
				b.Fatal(err)
			}
			db.Close()
		}
	})
	recs := readLog(b, clean)
	for _, kind := range []struct {
		name string
		at   int
	}{
		{"open-damaged-value", recs[len(recs)/2].off + 200},   // zeros inside a block: it does not decode
		{"open-damaged-framing", recs[len(recs)/2].off - 100}, // zeros over a record start: the log does not parse
	} {
		b.Run(kind.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				damaged := append([]byte(nil), clean...)
				copy(damaged[kind.at:], make([]byte, 4096))
				if err := os.WriteFile(path, damaged, 0o600); err != nil {
					b.Fatal(err)
				}
				var rep DamageReport
				b.StartTimer()
				db, err := Open(path, Options{NoHistory: true, OnDamage: func(r DamageReport) { rep = r }})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if rep.DamagedCopy == "" || rep.Kept < len(recs)-3 {
					b.Fatalf("recovery: %+v", rep)
				}
				b.Logf("kept %d of %d records, lost ≥%d (%d regions, %d values), %d events left; Open took %v",
					rep.Kept, len(recs), rep.Lost(), len(rep.Regions), len(rep.Values), db.Count("s"), rep.Took)
				db.Close()
				os.Remove(rep.DamagedCopy)
				b.StartTimer()
			}
		})
	}
}
