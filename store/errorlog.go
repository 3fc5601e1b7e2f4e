package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Severity of an error-log entry.
const (
	SeverityError   = "error"   // a call's ServiceNow work failed
	SeverityWarning = "warning" // degraded but working (unmapped agent, unreadable table)
)

// ErrorEntry is one line of the integration error log: a failure that exhausted
// its retries or could not succeed, with what ServiceNow said about it.
type ErrorEntry struct {
	ID         int64
	MasterID   string // "" for entries about the integration, not one call
	Operation  string // e.g. "create interaction", "update interaction", "find caller"
	Severity   string
	Status     int // HTTP status from ServiceNow, 0 for network errors
	Message    string
	Detail     string
	Attempts   int
	DedupeKey  string // entries with the same key within a window are one entry
	FirstAt    time.Time
	LastAt     time.Time
	ResolvedAt time.Time // zero while open
}

// Open reports whether the entry still needs attention.
func (e ErrorEntry) Open() bool { return e.ResolvedAt.IsZero() }

const errorCols = `id, master_id, operation, severity, status, message, detail, attempts, dedupe_key, first_at, last_at, resolved_at`

func scanError(row interface{ Scan(...any) error }) (ErrorEntry, error) {
	var e ErrorEntry
	var first, last, resolved int64
	err := row.Scan(&e.ID, &e.MasterID, &e.Operation, &e.Severity, &e.Status, &e.Message, &e.Detail, &e.Attempts, &e.DedupeKey, &first, &last, &resolved)
	e.FirstAt, e.LastAt, e.ResolvedAt = fromMS(first), fromMS(last), fromMS(resolved)
	return e, err
}

// RecordError adds e to the error log. When an open entry with the same dedupe
// key exists and was last seen within window, that entry is updated instead
// (attempts, message, last time) and created is false: a failure repeating
// every retry, or a warning repeating every call, is one entry, not thousands.
func (s *DB) RecordError(ctx context.Context, e ErrorEntry, window time.Duration) (id int64, created bool, err error) {
	now := s.now()
	if e.Severity == "" {
		e.Severity = SeverityError
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if e.DedupeKey != "" {
			row := tx.QueryRowContext(ctx, `SELECT id FROM error_log WHERE dedupe_key = $1 AND resolved_at = 0 AND last_at >= $2
				ORDER BY id DESC LIMIT 1`, e.DedupeKey, ms(now.Add(-window)))
			switch err := row.Scan(&id); {
			case err == nil:
				_, err := tx.ExecContext(ctx, `UPDATE error_log SET status = $2, message = $3, detail = $4, attempts = $5, last_at = $6
					WHERE id = $1`, id, e.Status, e.Message, e.Detail, e.Attempts, ms(now))
				return err
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		created = true
		return tx.QueryRowContext(ctx, `INSERT INTO error_log (master_id, operation, severity, status, message, detail, attempts, dedupe_key, first_at, last_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id`,
			e.MasterID, e.Operation, e.Severity, e.Status, e.Message, e.Detail, e.Attempts, e.DedupeKey, ms(now)).Scan(&id)
	})
	if err != nil {
		return 0, false, fmt.Errorf("store: record error: %w", err)
	}
	return id, created, nil
}

// ResolveErrors closes the open error entries of a contact (its work succeeded).
func (s *DB) ResolveErrors(ctx context.Context, masterID string) error {
	_, err := s.exec(ctx, `UPDATE error_log SET resolved_at = $2 WHERE master_id = $1 AND resolved_at = 0 AND severity = $3`,
		masterID, ms(s.now()), SeverityError)
	if err != nil {
		return fmt.Errorf("store: resolve errors of %s: %w", masterID, err)
	}
	return nil
}

// ResolveQuietWarnings resolves the open warnings that have not recurred
// since quietSince: their cause has gone (an agent was mapped, a table made
// readable), and resolved entries are purged with the rest. A warning that
// comes back later opens a new entry. It reports how many it resolved.
func (s *DB) ResolveQuietWarnings(ctx context.Context, quietSince time.Time) (int64, error) {
	res, err := s.exec(ctx, `UPDATE error_log SET resolved_at = $1 WHERE severity = $2 AND resolved_at = 0 AND last_at < $3`,
		ms(s.now()), SeverityWarning, ms(quietSince))
	if err != nil {
		return 0, fmt.Errorf("store: resolve quiet warnings: %w", err)
	}
	return res.RowsAffected()
}

// ErrorFilter selects error-log entries, newest first.
type ErrorFilter struct {
	OpenOnly  bool
	Severity  string
	Operation string
	Status    int // 0 = any
	MasterID  string
	Since     time.Time
	Limit     int // default 100
}

func (f ErrorFilter) where(args *[]any) string {
	var where []string
	arg := func(v any) string { *args = append(*args, v); return fmt.Sprintf("$%d", len(*args)) }
	if f.OpenOnly {
		where = append(where, "resolved_at = 0")
	}
	if f.Severity != "" {
		where = append(where, "severity = "+arg(f.Severity))
	}
	if f.Operation != "" {
		where = append(where, "operation = "+arg(f.Operation))
	}
	if f.Status != 0 {
		where = append(where, "status = "+arg(f.Status))
	}
	if f.MasterID != "" {
		where = append(where, "master_id = "+arg(f.MasterID))
	}
	if !f.Since.IsZero() {
		where = append(where, "last_at >= "+arg(ms(f.Since)))
	}
	if len(where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(where, " AND ")
}

// Errors lists error-log entries matching f.
func (s *DB) Errors(ctx context.Context, f ErrorFilter) ([]ErrorEntry, error) {
	var args []any
	q := `SELECT ` + errorCols + ` FROM error_log` + f.where(&args)
	if f.Limit <= 0 {
		f.Limit = 100
	}
	args = append(args, f.Limit)
	q += fmt.Sprintf(" ORDER BY last_at DESC, id DESC LIMIT $%d", len(args))
	return queryAll(ctx, s.rdb, "list errors", scanError, q, args...)
}

// Error returns one entry.
func (s *DB) Error(ctx context.Context, id int64) (ErrorEntry, error) {
	e, err := scanError(s.rdb.QueryRowContext(ctx, `SELECT `+errorCols+` FROM error_log WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("store: error entry %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("store: error entry %d: %w", id, err)
	}
	return e, nil
}

// CountErrors counts entries matching f (Limit ignored).
func (s *DB) CountErrors(ctx context.Context, f ErrorFilter) (int64, error) {
	var args []any
	var n int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM error_log`+f.where(&args), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count errors: %w", err)
	}
	return n, nil
}
