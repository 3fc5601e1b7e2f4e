// Command benchdata fills a bridge's SQLite database with finished calls,
// so that benchmarks can show what a large store costs (or does not cost)
// the intake and /metrics. The database must exist (start the bridge on it
// once): benchdata writes the rows the bridge would have, each call synced,
// with one event, and last active within the past day so that the
// retention purge leaves them.
//
//	go run ./internal/benchdata --database bridge.db --calls 5000000
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"time"

	_ "modernc.org/sqlite"
)

func main() {
	path := flag.String("database", "", "the bridge's SQLite file")
	calls := flag.Int("calls", 1000000, "finished calls to add")
	flag.Parse()
	if err := fill(context.Background(), *path, *calls); err != nil {
		fmt.Fprintln(os.Stderr, "benchdata:", err)
		os.Exit(1)
	}
}

func fill(ctx context.Context, path string, calls int) error {
	if path == "" {
		return fmt.Errorf("--database is required")
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("--database: %w (start the bridge on it once first)", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	now := time.Now().UnixMilli()
	const chunk = 250000
	start := time.Now()
	for lo := 0; lo < calls; lo += chunk {
		n := min(chunk, calls-lo)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		// Spread over the past day; master ids "bench-<n>".
		_, err = tx.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
			INSERT INTO contacts (master_id, sys_id, version, synced_version, synced, created_at, updated_at)
			SELECT 'bench-' || i, lower(hex(randomblob(16))), 3, 3, '{"created":true}', $3 - (i % 86400000), $3 - (i % 86400000) FROM n`,
			lo, lo+n-1, now)
		if err == nil {
			_, err = tx.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
				INSERT INTO events (master_id, kind, dedupe_key, occurred_at, received_at, payload)
				SELECT 'bench-' || i, 'released', 'released', $3 - (i % 86400000), $3 - (i % 86400000), '{"ani":"+15551230000"}' FROM n`,
				lo, lo+n-1, now)
		}
		if err == nil {
			_, err = tx.ExecContext(ctx, `UPDATE call_counts SET calls = calls + $1 WHERE shard = 0`, n)
		}
		if err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "benchdata: %d calls (%s)\n", lo+n, time.Since(start).Round(time.Second))
	}
	_, err = db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}
