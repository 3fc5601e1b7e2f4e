package store

import (
	"context"
	"database/sql"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/internal/pgtest"
)

// freshPostgres creates an empty PostgreSQL database of its own for the test
// (dropped at the end) and returns its URL, or skips when
// CTIBRIDGE_TEST_POSTGRES is unset.
func freshPostgres(t *testing.T) string {
	t.Helper()
	return pgtest.Database(t, "the PostgreSQL migration test", "ctibridge_t")
}

// TestConcurrentOpenMigratesOnce: bridges starting at the same moment on an
// empty PostgreSQL database all start, the schema is created exactly once, and
// no bridge is left holding the migration lock (a later start would hang).
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	dsn := freshPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const bridges = 8
	dbs := make([]*DB, bridges)
	errs := make([]error, bridges)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range bridges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			dbs[i], errs[i] = Open(ctx, dsn)
		}()
	}
	close(start)
	wg.Wait()
	for i, db := range dbs {
		if db != nil {
			t.Cleanup(func() { db.Close() })
		}
		if errs[i] != nil {
			t.Errorf("bridge %d of %d did not start: %v", i+1, bridges, errs[i])
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	check, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	var versions []int
	rows, err := check.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		rows.Scan(&v)
		versions = append(versions, v)
	}
	rows.Close()
	want := make([]int, len(migrations))
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(versions, want) {
		t.Errorf("schema_migrations holds %v, want each of %v once", versions, want)
	}
	for _, table := range []string{"contacts", "events", "error_log", "meta"} {
		var n int
		if err := check.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = $1`, table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s: found %d, %v", table, n, err)
		}
	}
	var locks int
	if err := check.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
		WHERE l.locktype = 'advisory' AND d.datname = current_database()`).Scan(&locks); err != nil {
		t.Fatal(err)
	}
	if locks != 0 {
		t.Errorf("%d advisory locks still held after every bridge started; the next start would wait for them forever", locks)
	}

	// Every handle works on the one schema: an event added through one is
	// seen through another.
	if _, _, err := dbs[0].AddEvent(ctx, ev("m1", "queued", "q"), "sys-m1"); err != nil {
		t.Fatal(err)
	}
	if c, _, err := dbs[bridges-1].Contact(ctx, "m1"); err != nil || c.Version != 1 {
		t.Errorf("contact through another handle: %+v, %v", c, err)
	}
	// And a ninth bridge, started later, finds the schema in place.
	late, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("a bridge started after the others: %v", err)
	}
	late.Close()
}
