package store

import (
	"context"
	"fmt"
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

// BenchmarkAddEvent is the durable part of every Studio request: one
// transaction that stores the event and bumps the call.
func BenchmarkAddEvent(b *testing.B) {
	benchDBs(b, func(b *testing.B, db *DB) {
		var n atomic.Int64
		ctx := context.Background()
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
	})
}

// BenchmarkClaimDone is the store's share of reconciling one call: claim it
// with a lease, then record it synced.
func BenchmarkClaimDone(b *testing.B) {
	benchDBs(b, func(b *testing.B, db *DB) {
		ctx := context.Background()
		for i := range b.N {
			if _, _, err := db.AddEvent(ctx, Event{MasterID: fmt.Sprint("c", i), Kind: "queued", DedupeKey: "q", Payload: []byte(`{}`)},
				"0123456789abcdef0123456789abcdef"); err != nil {
				b.Fatal(err)
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
