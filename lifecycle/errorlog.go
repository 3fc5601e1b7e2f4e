package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ctibridge/ctibridge/store"
)

// The error log's records and the calls list's filter, as the service hands
// them to the admin API, the console and the command line.
type (
	ErrorEntry  = store.ErrorEntry
	ErrorFilter = store.ErrorFilter
	CallFilter  = store.ContactFilter
	QueueCounts = store.Counts
)

// Severities of error-log entries.
const (
	SeverityError   = store.SeverityError
	SeverityWarning = store.SeverityWarning
)

// ErrNoEntry: no error-log entry has that id.
var ErrNoEntry = store.ErrNotFound

// ParseErrorFilter reads an error-log filter from query or form values, the
// same way for the admin API, the console and the command line:
//
//	operation, severity, contact   exact match
//	status                         a ServiceNow HTTP status, 100 to 599
//	since                          seen within this long, a positive duration like 90m
//	limit                          1 to 1000 entries
//	open                           "false": resolved entries too (default: open ones only)
//
// A value it cannot apply is an error naming the parameter, never ignored:
// ignoring it would widen the filter, and a retry made with it.
func ParseErrorFilter(q url.Values, now time.Time) (ErrorFilter, error) {
	f := ErrorFilter{OpenOnly: true, Operation: strings.TrimSpace(q.Get("operation")), Severity: strings.TrimSpace(q.Get("severity")),
		MasterID: strings.TrimSpace(q.Get("contact"))}
	if v := strings.TrimSpace(q.Get("open")); v != "" {
		open, err := strconv.ParseBool(v)
		if err != nil {
			return f, &FilterError{"open", "want true (open entries only) or false (resolved ones too)"}
		}
		f.OpenOnly = open
	}
	if v := strings.TrimSpace(q.Get("status")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 || n > 599 {
			return f, &FilterError{"status", "want an HTTP status from 100 to 599, like 403"}
		}
		f.Status = n
	}
	if v := strings.TrimSpace(q.Get("since")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return f, &FilterError{"since", "want a positive duration like 90m or 2h"}
		}
		f.Since = now.Add(-d)
	}
	if v := strings.TrimSpace(q.Get("limit")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return f, &FilterError{"limit", "want 1 to 1000"}
		}
		f.Limit = n
	}
	return f, nil
}

// FilterError is an error-log filter parameter that cannot be applied.
type FilterError struct{ Param, Want string }

func (e *FilterError) Error() string { return e.Param + ": " + e.Want }

// ErrorLog is the integration error log as operators use it: the entries,
// and retrying the calls behind them.
type ErrorLog struct {
	db   *store.DB
	wake func() // tells workers that calls are due; may be nil
}

// NewErrorLog serves the error log of db; wake, if not nil, is called when
// calls were made due again.
func NewErrorLog(db *store.DB, wake func()) *ErrorLog { return &ErrorLog{db: db, wake: wake} }

// List returns the entries matching f, newest first.
func (l *ErrorLog) List(ctx context.Context, f ErrorFilter) ([]ErrorEntry, error) {
	return l.db.Errors(ctx, f)
}

// Retry makes the calls behind the entries with these ids due again now. An
// unknown id is ErrNoEntry.
func (l *ErrorLog) Retry(ctx context.Context, ids ...int64) (int, error) {
	var calls []string
	for _, id := range ids {
		e, err := l.db.Error(ctx, id)
		if err != nil {
			return 0, fmt.Errorf("error entry %d: %w", id, err)
		}
		if e.MasterID != "" {
			calls = append(calls, e.MasterID)
		}
	}
	return l.retry(ctx, calls)
}

// RetryMatching makes the calls behind every open entry matching f due
// again now.
func (l *ErrorLog) RetryMatching(ctx context.Context, f ErrorFilter) (int, error) {
	f.OpenOnly, f.Limit = true, 100000
	entries, err := l.db.Errors(ctx, f)
	if err != nil {
		return 0, err
	}
	var calls []string
	for _, e := range entries {
		if e.MasterID != "" {
			calls = append(calls, e.MasterID)
		}
	}
	return l.retry(ctx, calls)
}

func (l *ErrorLog) retry(ctx context.Context, calls []string) (int, error) {
	if len(calls) == 0 {
		return 0, nil
	}
	n, err := l.db.Retry(ctx, calls...)
	if l.wake != nil {
		l.wake()
	}
	return n, err
}

// IsNoEntry reports whether err says an error-log entry does not exist.
func IsNoEntry(err error) bool { return errors.Is(err, ErrNoEntry) }

// DBWarner writes warnings to the error log, once per key per window.
type DBWarner struct {
	DB  *store.DB
	Log *slog.Logger
}

// Warn implements Warner.
func (w DBWarner) Warn(ctx context.Context, key, operation, message string, window time.Duration) {
	_, created, err := w.DB.RecordError(ctx, store.ErrorEntry{
		Operation: operation, Severity: store.SeverityWarning, Message: message, DedupeKey: key,
	}, window)
	if err != nil {
		w.Log.Error("error log", "err", err)
	} else if created {
		w.Log.Warn(message, "key", key)
	}
}
