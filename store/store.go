// Package store keeps ctibridge's durable state: the calls (contacts) it follows,
// every event Studio sent about them, and the integration error log.
//
// One implementation serves both databases: SQLite (embedded, the default) and
// PostgreSQL (several bridges sharing one database). The SQL is written once;
// only the schema's column types and the claim query differ by dialect.
//
// The store never talks to ServiceNow and never interprets events: the lifecycle
// package decides what an event means. What the store guarantees is that an
// accepted event is committed before AddEvent returns, that a duplicate event is
// recognised, and that one contact is worked on by at most one worker at a time.
// On PostgreSQL, lease expiry and due times are read on the database's clock,
// so that guarantee does not depend on the bridges' clocks agreeing.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// ErrNotFound is returned when a contact or error-log entry does not exist.
var ErrNotFound = errors.New("not found")

// ErrLeaseLost is returned when a worker tries to finish a contact whose lease it
// no longer holds (it expired and another worker took the contact over).
var ErrLeaseLost = errors.New("lease lost")

type dialect int

const (
	sqlite dialect = iota
	postgres
)

// DB is the store. It is safe for concurrent use.
//
// Writes go through db; on SQLite that is one connection, because SQLite has
// one writer at a time. Reads that need not see a write under way (the
// console, metrics, readiness, a call's status) go through rdb: on SQLite a
// pool of read-only connections that, in WAL mode, read the last committed
// state without waiting for the writer; on PostgreSQL the same pool as db.
// Events are written through w, which commits the events of concurrent
// requests together (see writer.go), through edb: on PostgreSQL a pool of
// its own, one connection for each batch that may be written at once, so
// that an event Studio waits for never queues for a connection behind the
// workers (64 by default, sharing db's 12); on SQLite db.
type DB struct {
	db  *sql.DB
	rdb *sql.DB
	edb *sql.DB
	w   *writer
	// gate orders the writes on SQLite's one connection; nil on PostgreSQL.
	gate *gate
	// prepared holds the writer's statements on SQLite (see prepare).
	prepMu   sync.Mutex
	prepared map[string]*sql.Stmt
	dialect  dialect
	now      func() time.Time
	// dbClockOffset moves the database's clock, for tests that need lease
	// and due times to pass on PostgreSQL; nil in production.
	dbClockOffset func() time.Duration
	// onCommit is told how long each write transaction's commit took (see
	// ObserveCommits).
	onCommit atomic.Pointer[func(time.Duration)]
}

// ObserveCommits has f told, after each write transaction commits, how long
// its commit took: on SQLite the write of the write-ahead log and its fsync,
// on PostgreSQL the round trip until the server has flushed its log. Every
// Studio event waits for one, so a slow disk shows here first.
func (s *DB) ObserveCommits(f func(time.Duration)) { s.onCommit.Store(&f) }

// Open opens (and migrates) the store named by dsn: a postgres:// or
// postgresql:// URL selects PostgreSQL, anything else is a SQLite file path
// (or a "file:" URI).
func Open(ctx context.Context, dsn string) (*DB, error) {
	if dsn == "" {
		return nil, errors.New("store: database is empty; set a SQLite file path or a postgres:// URL")
	}
	s := &DB{now: time.Now}
	var err error
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s.dialect = postgres
		s.db, err = sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		s.db.SetMaxOpenConns(pgConns)
		s.db.SetMaxIdleConns(pgConns)
	} else {
		s.dialect = sqlite
		s.db, err = sql.Open("sqlite", sqliteDSN(dsn))
		if err != nil {
			return nil, fmt.Errorf("store: open sqlite %s: %w", dsn, err)
		}
		// SQLite allows one writer; one connection avoids SQLITE_BUSY between
		// our own goroutines and keeps transactions strictly serial.
		s.db.SetMaxOpenConns(1)
		s.gate = &gate{}
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	s.w = newWriter(1)
	if s.dialect == postgres {
		s.w.maxLeaders = pgLeaders
	}
	s.rdb, s.edb = s.db, s.db
	if s.dialect == postgres {
		// Opened after the migration, like the read pool below.
		s.edb, err = sql.Open("pgx", dsn)
		if err != nil {
			s.db.Close()
			return nil, fmt.Errorf("store: open postgres for events: %w", err)
		}
		s.edb.SetMaxOpenConns(pgLeaders)
		s.edb.SetMaxIdleConns(pgLeaders)
	}
	if s.dialect == sqlite && !sqliteInMemory(dsn) {
		// Opened after the migration, which put the file in WAL mode.
		s.rdb, err = sql.Open("sqlite", sqliteReadDSN(dsn))
		if err != nil {
			s.db.Close()
			return nil, fmt.Errorf("store: open sqlite %s for reading: %w", dsn, err)
		}
		s.rdb.SetMaxOpenConns(readConns)
		s.rdb.SetMaxIdleConns(readConns)
		if err := s.rdb.PingContext(ctx); err != nil {
			s.rdb.Close()
			s.db.Close()
			return nil, fmt.Errorf("store: connect for reading: %w", err)
		}
	}
	return s, nil
}

// readConns is the size of SQLite's read pool.
const readConns = 4

// pgLeaders is how many batches of events may be written at once on
// PostgreSQL (see writer.go), each on a connection of the events' pool.
const pgLeaders = 4

// pgConns is the size of the PostgreSQL pool that the workers, the reads
// and the other writes share. With the events' pool, a bridge holds 16
// connections at most. More made things slower, not faster: with 80,
// one bridge synced 353-378 calls a second where 16 synced 520-650 (the
// database's own contention grows with its sessions).
const pgConns = 12

// sqliteInMemory reports whether dsn names an in-memory SQLite database,
// which a second pool would not share: it is read through its one connection.
func sqliteInMemory(dsn string) bool {
	return dsn == ":memory:" || strings.HasPrefix(dsn, "file::memory:") || strings.Contains(dsn, "mode=memory")
}

// sqliteDSN adds the pragmas the store relies on: WAL for concurrent readers,
// a busy timeout, FULL sync so a committed event survives power loss, and
// foreign keys.
func sqliteDSN(path string) string {
	dsn := path
	if !strings.HasPrefix(dsn, "file:") {
		dsn = "file:" + dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
}

// sqliteReadDSN is the DSN of the read pool: connections that refuse to
// write (query_only), so a read can never take SQLite's write lock.
func sqliteReadDSN(path string) string {
	dsn := path
	if !strings.HasPrefix(dsn, "file:") {
		dsn = "file:" + dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "_pragma=busy_timeout(10000)&_pragma=query_only(1)"
}

// Close stops the writer (events still waiting for it fail with ErrClosed)
// and closes the database.
func (s *DB) Close() error {
	s.w.close()
	var err error
	s.prepMu.Lock()
	for _, st := range s.prepared {
		err = errors.Join(err, st.Close())
	}
	s.prepMu.Unlock()
	err = errors.Join(err, s.db.Close())
	for _, extra := range []*sql.DB{s.rdb, s.edb} {
		if extra != s.db {
			err = errors.Join(err, extra.Close())
		}
	}
	return err
}

// Ping checks that the database answers and accepts a write (for readiness).
// The write joins the events' next group commit, so it costs no transaction
// of its own under load.
func (s *DB) Ping(ctx context.Context) error {
	if res := s.submit(&writeReq{ctx: ctx, ping: true}); res.err != nil {
		return fmt.Errorf("store: write check: %w", res.err)
	}
	return nil
}

// Dialect names the database in use ("sqlite" or "postgres").
func (s *DB) Dialect() string {
	if s.dialect == postgres {
		return "postgres"
	}
	return "sqlite"
}

// tx runs fn in a write transaction.
func (s *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.writeTx(ctx, false, fn)
}

// writeTx runs fn in a write transaction; events marks the events'
// batches, which go first on SQLite's write connection (see gate) and have
// a pool of their own on PostgreSQL.
func (s *DB) writeTx(ctx context.Context, events bool, fn func(*sql.Tx) error) error {
	if err := s.gate.enter(ctx, events); err != nil {
		return err
	}
	defer s.gate.leave()
	db := s.db
	if events {
		db = s.edb
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	start := time.Now()
	if err := tx.Commit(); err != nil {
		return err
	}
	if f := s.onCommit.Load(); f != nil {
		(*f)(time.Since(start))
	}
	return nil
}

// exec runs one write statement.
func (s *DB) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if err := s.gate.enter(ctx, false); err != nil {
		return nil, err
	}
	defer s.gate.leave()
	return s.db.ExecContext(ctx, q, args...)
}

// pgClockMS is PostgreSQL's clock in Unix milliseconds.
const pgClockMS = `(extract(epoch from clock_timestamp()) * 1000)::bigint`

// withClock replaces {{now}} in q with the time that lease expiry and due
// times are measured against, adding its argument to args.
//
// On PostgreSQL that is the database's clock: several bridges share the
// database and their own clocks may disagree, but they all read one clock, so
// a lease one of them holds never looks expired to another, and work one of
// them makes due is due for all. On SQLite (one bridge per file, on the
// database's own machine) it is now, this process's time.
func (s *DB) withClock(q string, now time.Time, args ...any) (string, []any) {
	if !strings.Contains(q, "{{now}}") {
		return q, args
	}
	if s.dialect == postgres {
		var offset time.Duration
		if s.dbClockOffset != nil {
			offset = s.dbClockOffset()
		}
		args = append(args, offset.Milliseconds())
		return strings.ReplaceAll(q, "{{now}}", fmt.Sprintf("(%s + $%d)", pgClockMS, len(args))), args
	}
	args = append(args, ms(now))
	return strings.ReplaceAll(q, "{{now}}", fmt.Sprintf("$%d", len(args))), args
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
