package clickhouse

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/firstpartyhq/firstparty/store"
	"github.com/firstpartyhq/firstparty/store/clickhouse/chtest"
)

// BenchmarkClickHousePersons measures what resolving persons in
// ClickHouse costs: shipping rate with and without logins among the
// events (1 in 25 is an `$identify` of a device's anonymous id), then a
// persons page and one person read from ClickHouse beside the embedded
// store. FIRSTPARTY_CH_PERSONS_EVENTS sets the events (default 200,000).
func BenchmarkClickHousePersons(b *testing.B) {
	n := 200_000
	if s := os.Getenv("FIRSTPARTY_CH_PERSONS_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	c := chtest.Start(b)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var last *Backend
	user := "" // one user who logged in
	for _, logins := range []bool{false, true} {
		dir := b.TempDir()
		local, err := store.Open(filepath.Join(dir, "bench.db"), store.Options{CompactEvery: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		defer local.Close()
		db := fmt.Sprint("persons_", logins)
		dead, err := New(local, Options{URLs: []string{"http://127.0.0.1:1"}, Database: db, Flush: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		rnd := rand.New(rand.NewPCG(1, 2))
		for done := 0; done < n; {
			batch := make([]*store.Event, 0, 1000)
			for ; len(batch) < 1000 && done < n; done++ {
				u := rnd.IntN(20000)
				ts := start.Add(time.Duration(done) * time.Second)
				ev := &store.Event{Site: "s", Name: "$pageview", DistinctID: fmt.Sprint("anon-", u), Time: ts.UnixMilli(),
					UUID:  fmt.Sprintf("0190dddd-0000-7000-8000-%012d", done),
					Props: store.Props{{Key: "$session_id", Val: store.StringValue(fmt.Sprint(u, "-", ts.YearDay()))}, {Key: "$pathname", Val: store.StringValue("/")}}}
				if logins && done%25 == 0 {
					ev.Name, ev.DistinctID = "$identify", fmt.Sprint("user-", u/2) // two devices a user
					user = ev.DistinctID
					ev.Props = append(ev.Props, store.Prop{Key: "$anon_distinct_id", Val: store.StringValue(fmt.Sprint("anon-", u))})
				}
				batch = append(batch, ev)
			}
			if _, err := dead.Append(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
		dead.Stop()
		t0 := time.Now()
		live, err := New(local, Options{URLs: []string{c.Shards[0].URL(), c.Shards[1].URL()}, Database: db, Cluster: chtest.ClusterName,
			Batch: 10000, Flush: 100 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		err = live.Flush(ctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%d events, logins %v: shipping %.0f events/s", n, logins, float64(n)/time.Since(t0).Seconds())
		if logins {
			last = live
			defer live.Stop()
		} else {
			live.Stop()
		}
	}
	ctx := context.Background()
	p := must(last.DB.Person(ctx, "s", user))
	for _, be := range []struct {
		name string
		s    store.Store
	}{{"clickhouse", last}, {"embedded", last.DB}} {
		b.Run("persons-page/"+be.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := be.s.Persons(ctx, store.PersonQuery{Site: "s", Limit: 100}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("person/"+be.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := be.s.Person(ctx, "s", p.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
