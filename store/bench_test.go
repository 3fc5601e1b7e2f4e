package store

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchDBs opens the stores a benchmark runs on: SQLite always, PostgreSQL
// when CTIBRIDGE_TEST_POSTGRES is set.
func benchDBs(b *testing.B, run func(b *testing.B, db *DB)) {
	b.Run("sqlite", func(b *testing.B) { db, _ := openSQLite(b); run(b, db) })
	b.Run("postgres", func(b *testing.B) { db, _ := openPostgres(b); run(b, db) })
}

// BenchmarkAddEvent is the durable part of every Studio request: the event
// stored and the call bumped, with as many writers as processors.
func BenchmarkAddEvent(b *testing.B) {
	benchDBs(b, func(b *testing.B, db *DB) {
		var n atomic.Int64
		ctx := context.Background()
		commits := db.w.commits.Load()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				id := fmt.Sprint("bench-", i/3)
				_, _, err := db.AddEvent(ctx, Event{MasterID: id, Kind: "queued", DedupeKey: fmt.Sprint("k", i%3),
					Payload: []byte(`{"ani":"8013203420"}`)}, "0123456789abcdef0123456789abcdef")
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		if n := db.w.commits.Load() - commits; n > 0 {
			b.ReportMetric(float64(b.N)/float64(n), "events/tx")
		}
	})
}

// closedLoop runs b.N calls of fn from clients goroutines, each starting its
// next call when the last one returned (Studio requests in flight), and
// reports the rate and the 99th percentile of one call's latency.
func closedLoop(b *testing.B, clients int, fn func(i int) error) {
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := fn(int(i)); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// addEvents returns a closedLoop function adding the events of calls, three
// distinct events (queued, answered, released) a call.
func addEvents(db *DB, prefix string) func(i int) error {
	kinds := []string{"queued", "answered", "released"}
	return func(i int) error {
		_, _, err := db.AddEvent(context.Background(), Event{MasterID: prefix + strconv.Itoa(i/3), Kind: kinds[i%3], DedupeKey: kinds[i%3],
			Payload: []byte(`{"ani":"8013203420","skill":"Sales"}`)}, "0123456789abcdef0123456789abcdef")
		return err
	}
}

// BenchmarkAddEventConcurrent: 1, 16 and 128 Studio requests in flight, each
// waiting for its event to be durable, as the intake does. events/tx shows
// how many events shared a transaction (group commit).
func BenchmarkAddEventConcurrent(b *testing.B) {
	benchDBs(b, func(b *testing.B, db *DB) {
		for _, clients := range []int{1, 16, 128} {
			b.Run(fmt.Sprint("clients=", clients), func(b *testing.B) {
				commits := db.w.commits.Load()
				closedLoop(b, clients, addEvents(db, fmt.Sprintf("c%d-%d-", clients, b.N)))
				if n := db.w.commits.Load() - commits; n > 0 {
					b.ReportMetric(float64(b.N)/float64(n), "events/tx")
				}
			})
		}
	})
}

// benchRows is how many calls the benchmarks with a full store hold:
// CTIBRIDGE_BENCH_ROWS, default 500,000.
func benchRows(b *testing.B) int {
	n := 500_000
	if v := os.Getenv("CTIBRIDGE_BENCH_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			b.Fatalf("CTIBRIDGE_BENCH_ROWS=%q: want a number of calls", v)
		}
	}
	return n
}

// seed fills the store with n calls, as a store that has served for a while
// holds them: almost all synced, one in 1,000 pending, one in 5,000 parked,
// one in 10,000 leased (events are not seeded: the figures do not read them).
func seed(b *testing.B, db *DB, n int) {
	b.Helper()
	ctx := context.Background()
	now := ms(time.Now())
	rows := fmt.Sprintf(`WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < %d) SELECT i FROM seq`, n)
	if db.dialect == postgres {
		rows = fmt.Sprintf(`SELECT i FROM generate_series(1, %d) AS s(i)`, n)
	}
	sql := strings.ReplaceAll(`INSERT INTO contacts (master_id, sys_id, version, synced_version, attempts,
			next_attempt_at, parked, lease_owner, lease_until, created_at, updated_at)
		SELECT 'seed-' || i, '0123456789abcdef0123456789abcdef', 3,
			CASE WHEN i % 1000 = 0 THEN 2 ELSE 3 END,
			CASE WHEN i % 2000 = 0 THEN 2 ELSE 0 END,
			{{now}},
			CASE WHEN i % 5000 = 0 THEN 1 ELSE 0 END,
			CASE WHEN i % 10000 = 0 THEN 'w' ELSE '' END,
			CASE WHEN i % 10000 = 0 THEN {{now}} + 3600000 ELSE 0 END,
			{{now}}, {{now}}
		FROM (`+rows+`) n`, "{{now}}", strconv.FormatInt(now, 10))
	start := time.Now()
	if _, err := db.db.ExecContext(ctx, sql); err != nil {
		b.Fatal(err)
	}
	if _, err := db.db.ExecContext(ctx, `UPDATE call_counts SET calls = CASE WHEN shard = 0 THEN (SELECT COUNT(*) FROM contacts) ELSE 0 END`); err != nil {
		b.Fatal(err)
	}
	if db.dialect == postgres {
		// What autovacuum does after a bulk load; SQLite is left without
		// statistics, as a bridge leaves it.
		if _, err := db.db.ExecContext(ctx, `VACUUM ANALYZE contacts`); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("seeded %d calls in %s", n, time.Since(start).Round(time.Millisecond))
}

// BenchmarkCounts is what a /metrics scrape or /readyz costs the store
// with many calls stored (CTIBRIDGE_BENCH_ROWS).
func BenchmarkCounts(b *testing.B) {
	benchDBs(b, func(b *testing.B, db *DB) {
		rows := benchRows(b)
		seed(b, db, rows)
		b.Run(fmt.Sprint("calls=", rows), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				c, err := db.Counts(ctx)
				if err != nil || c.Contacts != int64(rows) {
					b.Fatalf("counts = %+v, %v", c, err)
				}
			}
		})
	})
}

// BenchmarkAddEventScraped: 128 Studio requests in flight on a store holding
// many calls (CTIBRIDGE_BENCH_ROWS), without and with a /metrics scrape
// (the queue figures and the open errors) every second. The p99 should not
// move.
func BenchmarkAddEventScraped(b *testing.B) {
	benchDBs(b, func(b *testing.B, db *DB) {
		rows := benchRows(b)
		seed(b, db, rows)
		for _, every := range []time.Duration{0, time.Second} {
			name := "scrape=none"
			if every > 0 {
				name = "scrape=" + every.String()
			}
			b.Run(fmt.Sprintf("calls=%d/%s", rows, name), func(b *testing.B) {
				stop := make(chan struct{})
				var scrapes atomic.Int64
				var slowest atomic.Int64
				var wg sync.WaitGroup
				if every > 0 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						t := time.NewTicker(every)
						defer t.Stop()
						for {
							select {
							case <-stop:
								return
							case <-t.C:
							}
							t0 := time.Now()
							ctx := context.Background()
							if _, err := db.Counts(ctx); err != nil {
								b.Error(err)
							}
							for _, sev := range []string{SeverityError, SeverityWarning} {
								if _, err := db.CountErrors(ctx, ErrorFilter{OpenOnly: true, Severity: sev}); err != nil {
									b.Error(err)
								}
							}
							scrapes.Add(1)
							if d := int64(time.Since(t0)); d > slowest.Load() {
								slowest.Store(d)
							}
						}
					}()
				}
				closedLoop(b, 128, addEvents(db, fmt.Sprintf("s%s-%d-", name, b.N)))
				close(stop)
				wg.Wait()
				if every > 0 {
					b.ReportMetric(float64(scrapes.Load()), "scrapes")
					b.ReportMetric(float64(time.Duration(slowest.Load()).Microseconds())/1000, "slowest-scrape-ms")
				}
			})
		}
	})
}

// BenchmarkClaimDone is the store's share of reconciling one call: claim it
// with a lease, then record it synced.
func BenchmarkClaimDone(b *testing.B) { benchClaimDone(b, 0) }

// BenchmarkClaimPastHeld is BenchmarkClaimDone with 128 calls at the head
// of the queue held by other workers (a slow instance: every worker has a
// call in flight), which a claim must not pay for.
func BenchmarkClaimPastHeld(b *testing.B) { benchClaimDone(b, 128) }

// benchClaimDone: one worker claims and releases calls one after the
// other, while other workers hold the first held calls.
func benchClaimDone(b *testing.B, held int) {
	benchDBs(b, func(b *testing.B, db *DB) {
		ctx := context.Background()
		for i := range held + b.N {
			if _, _, err := db.AddEvent(ctx, Event{MasterID: fmt.Sprintf("c%09d", i), Kind: "queued", DedupeKey: "q", Payload: []byte(`{}`)},
				"0123456789abcdef0123456789abcdef"); err != nil {
				b.Fatal(err)
			}
		}
		for range held {
			if c, _, err := db.Claim(ctx, "other", time.Hour); err != nil || c == nil {
				b.Fatalf("claim: %v %v", c, err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			c, _, err := db.Claim(ctx, "w", time.Minute)
			if err != nil || c == nil {
				b.Fatalf("claim: %v %v", c, err)
			}
			if err := db.Done(ctx, "w", c.MasterID, c.Version, []byte(`{}`)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	})
}

// BenchmarkDiskSync is the floor under every SQLite commit on this machine's
// disk: 32 KiB written over a file's existing blocks (as a commit writes the
// write-ahead log's frames) and fsynced, nothing else running. It reports
// the median and the 99th percentile of one write and fsync.
func BenchmarkDiskSync(b *testing.B) {
	f, err := os.Create(b.TempDir() + "/wal")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const span = 4 << 20
	if _, err := f.WriteAt(make([]byte, span), 0); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, 32<<10)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := f.WriteAt(frame, int64(i*len(frame))%span); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
