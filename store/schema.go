package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
)

// migrations are applied in order, once each. Times are Unix milliseconds and
// booleans integers so that one SQL text serves both databases; {{id}} is the
// dialect's auto-increment primary key.
var migrations = []string{
	`CREATE TABLE contacts (
		master_id       TEXT PRIMARY KEY,
		sys_id          TEXT NOT NULL,
		version         BIGINT NOT NULL,
		synced_version  BIGINT NOT NULL DEFAULT 0,
		synced          TEXT NOT NULL DEFAULT '{}',
		attempts        INTEGER NOT NULL DEFAULT 0,
		next_attempt_at BIGINT NOT NULL DEFAULT 0,
		parked          INTEGER NOT NULL DEFAULT 0,
		last_error      TEXT NOT NULL DEFAULT '',
		lease_owner     TEXT NOT NULL DEFAULT '',
		lease_until     BIGINT NOT NULL DEFAULT 0,
		created_at      BIGINT NOT NULL,
		updated_at      BIGINT NOT NULL
	);
	CREATE INDEX contacts_due ON contacts (next_attempt_at) WHERE version > synced_version AND parked = 0;
	CREATE INDEX contacts_updated ON contacts (updated_at);
	CREATE TABLE events (
		id          {{id}},
		master_id   TEXT NOT NULL REFERENCES contacts (master_id) ON DELETE CASCADE,
		kind        TEXT NOT NULL,
		dedupe_key  TEXT NOT NULL,
		occurred_at BIGINT NOT NULL,
		received_at BIGINT NOT NULL,
		payload     TEXT NOT NULL,
		UNIQUE (master_id, dedupe_key)
	);
	CREATE TABLE error_log (
		id          {{id}},
		master_id   TEXT NOT NULL DEFAULT '',
		operation   TEXT NOT NULL,
		severity    TEXT NOT NULL,
		status      INTEGER NOT NULL DEFAULT 0,
		message     TEXT NOT NULL,
		detail      TEXT NOT NULL DEFAULT '',
		attempts    INTEGER NOT NULL DEFAULT 0,
		dedupe_key  TEXT NOT NULL DEFAULT '',
		first_at    BIGINT NOT NULL,
		last_at     BIGINT NOT NULL,
		resolved_at BIGINT NOT NULL DEFAULT 0
	);
	CREATE INDEX error_log_open ON error_log (resolved_at, last_at);
	CREATE INDEX error_log_key ON error_log (dedupe_key, last_at);
	CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
	INSERT INTO meta (key, value) VALUES ('last_ping', '0');`,
	// Named leases for work only one bridge may do at a time (the CXone
	// poller), and the cursors that work keeps in meta.
	`CREATE TABLE leases (
		name  TEXT PRIMARY KEY,
		owner TEXT NOT NULL,
		until BIGINT NOT NULL
	);`,
	// Queue figures without scanning the calls (see countsQuery): a
	// count of calls, kept by the writes that add and purge them, and
	// partial indexes holding only the pending and the leased calls. The
	// count is the sum of 16 rows, each write adding to one of them, so
	// that concurrent writers (several bridges on PostgreSQL) seldom wait
	// for the same row.
	`CREATE TABLE call_counts (shard INTEGER PRIMARY KEY, calls BIGINT NOT NULL);
	INSERT INTO call_counts (shard, calls) SELECT 0, COUNT(*) FROM contacts;
	INSERT INTO call_counts (shard, calls) VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0),
		(9, 0), (10, 0), (11, 0), (12, 0), (13, 0), (14, 0), (15, 0);
	CREATE INDEX contacts_pending ON contacts (attempts, parked, version, synced_version) WHERE version > synced_version;
	CREATE INDEX contacts_leased ON contacts (lease_until) WHERE lease_until > 0;`,
	// On PostgreSQL the foreign key from events to contacts goes: checking
	// it share-locked the call's row for every event inserted, which
	// queued the claims and releases of other bridges behind the intake
	// (and filled the multixact cache). The store writes a call's row
	// before its events in one transaction, and Purge deletes a call's
	// events with it. SQLite, one bridge to a file, keeps it.
	`{{drop_events_fk}}`,
	// Whether a claimed call's last attempt ended without a release (see
	// Contact.Interrupted), and whether an operator retried the call while
	// an attempt held it (see Retry).
	`ALTER TABLE contacts ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE contacts ADD COLUMN retried INTEGER NOT NULL DEFAULT 0;`,
	// The due index without the leased calls (see claimQuery).
	`DROP INDEX contacts_due;
	CREATE INDEX contacts_due ON contacts (next_attempt_at) WHERE version > synced_version AND parked = 0 AND lease_until = 0;`,
}

// migrateLock is the PostgreSQL advisory lock key that serialises migrations
// between bridges starting at once on one database.
const migrateLock = 727274

// migrate brings the schema up to date. It runs on one connection of its own:
// on PostgreSQL that connection takes the advisory lock before anything else
// (even creating schema_migrations, which is not safe to race), so the lock,
// the version read, the DDL and the unlock are all one session's.
func (s *DB) migrate(ctx context.Context) (err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer conn.Close()
	if s.dialect == postgres {
		// Several bridges may start at once against one database.
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
			return fmt.Errorf("store: migrate lock: %w", err)
		}
		defer func() {
			if _, uerr := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLock); uerr != nil {
				// A session lock lives as long as its connection: drop
				// the connection rather than return it to the pool
				// still holding the lock.
				conn.Raw(func(any) error { return driver.ErrBadConn })
				if err == nil {
					err = fmt.Errorf("store: migrate unlock: %w", uerr)
				}
			}
		}()
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	id := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if s.dialect == postgres {
		id = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
	}
	for v := 1; v <= len(migrations); v++ {
		dropFK := ""
		if s.dialect == postgres {
			dropFK = `ALTER TABLE events DROP CONSTRAINT IF EXISTS events_master_id_fkey`
		}
		ddl := strings.NewReplacer("{{id}}", id, "{{drop_events_fk}}", dropFK).Replace(migrations[v-1])
		if err := applyMigration(ctx, conn, v, ddl); err != nil {
			return fmt.Errorf("store: migration %d: %w", v, err)
		}
	}
	return nil
}

// applyMigration applies migration v in one transaction unless the schema is
// already at v or later. The version is read inside the transaction: on
// SQLite the transaction holds the write lock (immediate), so another process
// opening the same file cannot apply it in between.
func applyMigration(ctx context.Context, conn *sql.Conn, v int, ddl string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return err
	}
	if have >= v {
		return nil
	}
	for _, stmt := range strings.Split(ddl, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v); err != nil {
		return err
	}
	return tx.Commit()
}
