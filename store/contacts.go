package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Event is one thing Studio told us about a call. Payload is the event's body as
// received (JSON); the store does not interpret it.
type Event struct {
	ID         int64
	MasterID   string
	Kind       string
	DedupeKey  string // identical events (Studio retries) share a key
	OccurredAt time.Time
	ReceivedAt time.Time
	Payload    []byte
}

// Contact is one call as the store sees it. Version counts the distinct events
// accepted; SyncedVersion is the version whose consequences ServiceNow is known
// to hold. A contact with Version > SyncedVersion has work to do.
type Contact struct {
	MasterID      string
	SysID         string
	Version       int64
	SyncedVersion int64
	Synced        []byte // the lifecycle's record of what ServiceNow holds (JSON)
	Attempts      int
	NextAttemptAt time.Time // on PostgreSQL, read on the database's clock
	Parked        bool      // failed permanently; waits for a retry or a new event
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// Interrupted: the call's last attempt ended without releasing it (its
	// process died, or its lease ran out), so writes it sent may have
	// reached ServiceNow without their outcome being recorded. Set by
	// Claim, for the attempt that takes the call over.
	Interrupted bool
}

// Pending reports whether the contact has events ServiceNow does not reflect yet.
func (c Contact) Pending() bool { return c.Version > c.SyncedVersion }

const contactCols = `master_id, sys_id, version, synced_version, synced, attempts, next_attempt_at, parked, last_error, created_at, updated_at, interrupted`

func scanContact(row interface{ Scan(...any) error }) (Contact, error) {
	var c Contact
	var synced string
	var next, created, updated int64
	var parked, interrupted int
	err := row.Scan(&c.MasterID, &c.SysID, &c.Version, &c.SyncedVersion, &synced, &c.Attempts, &next, &parked, &c.LastError, &created, &updated, &interrupted)
	c.Synced = []byte(synced)
	c.NextAttemptAt, c.CreatedAt, c.UpdatedAt = fromMS(next), fromMS(created), fromMS(updated)
	c.Parked, c.Interrupted = parked != 0, interrupted != 0
	return c, err
}

// AddEvent records ev durably. The first event of a call creates its contact
// with the given sys_id. A duplicate event (same master id and dedupe key)
// changes nothing and reports added=false. A new event makes the contact due
// for work at once, even if it had been parked after a failure.
//
// Concurrent calls share one transaction (group commit, see writer.go);
// each returns only once its event is committed, with its own result: the
// contact as it stood just after its event. If ctx ends first, AddEvent
// returns its error, and the event may or may not have been stored.
func (s *DB) AddEvent(ctx context.Context, ev Event, sysID string) (c Contact, added bool, err error) {
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = s.now()
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = ev.ReceivedAt
	}
	res := s.submit(&writeReq{ctx: ctx, ev: ev, sysID: sysID})
	if res.err != nil {
		return Contact{}, false, fmt.Errorf("store: add %s event for %s: %w", ev.Kind, ev.MasterID, res.err)
	}
	return res.c, res.added, nil
}

// Claim takes the contact that is due soonest and leases it to owner until
// now+lease, so no other worker (in this process or another bridge) works on
// it meanwhile. It returns nil when nothing is due. On PostgreSQL, now is the
// database's clock (see withClock). The lease and the read of the contact's
// events are one transaction: a claim whose events cannot be read (the
// database went away in between) does not hold the contact for a lease.
// They are two statements: on PostgreSQL the read's own snapshot holds
// every event up to the version the lease returned, where one statement
// would read the events as of its start and miss those of a batch that
// committed while the lease waited for the row.
func (s *DB) Claim(ctx context.Context, owner string, lease time.Duration) (*Contact, []Event, error) {
	var claimed *Contact
	var evs []Event
	err := s.write(ctx, func(ctx context.Context, tx *writerTx) error {
		claimed, evs = nil, nil
		q, args := s.claimQuery(owner, lease)
		c, err := scanContact(tx.QueryRowContext(ctx, q, args...))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		evs, err = collect(ctx, tx, scanEvent, `SELECT `+eventCols+` FROM events WHERE master_id = $1 ORDER BY id`, c.MasterID)
		if err != nil {
			return fmt.Errorf("events of %s: %w", c.MasterID, err)
		}
		claimed = &c
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: claim: %w", err)
	}
	return claimed, evs, nil
}

// claimQuery is Claim's statement. A call whose lease has expired (its
// attempt died, or outlived its lease) is taken first, through the
// contacts_leased index; otherwise the call due soonest among those no one
// holds, through contacts_due, in the order it keeps them. The due index
// holds only unleased calls, so a claim does not walk past the calls other
// workers hold (on PostgreSQL, each one a row fetched and tested, a few
// dozen at the head of a busy queue, for every claim of every bridge).
// A leased call is always due (a claim takes only due calls, and only a
// release parks a call or records it synced), so an expired lease needs
// no other test.
func (s *DB) claimQuery(owner string, lease time.Duration) (string, []any) {
	lock := ""
	if s.dialect == postgres {
		lock = " FOR NO KEY UPDATE SKIP LOCKED" // not FOR UPDATE: events inserted meanwhile (a foreign key to the row) need not wait
	}
	// A lease's owner is cleared only by a release: one still there
	// belongs to an attempt that never finished.
	return s.withClock(`UPDATE contacts SET lease_owner = $1, lease_until = {{now}} + $2,
		interrupted = CASE WHEN lease_owner <> '' THEN 1 ELSE 0 END, retried = 0
		WHERE master_id = COALESCE(
			(SELECT master_id FROM contacts
				WHERE lease_until > 0 AND lease_until < {{now}}
				ORDER BY lease_until LIMIT 1`+lock+`),
			(SELECT master_id FROM contacts
				WHERE version > synced_version AND parked = 0 AND lease_until = 0 AND next_attempt_at <= {{now}}
				ORDER BY next_attempt_at LIMIT 1`+lock+`))
		RETURNING `+contactCols, s.now(), owner, lease.Milliseconds())
}

// Done records that ServiceNow now reflects the contact up to syncedVersion and
// releases the lease. If events arrived meanwhile the contact stays due.
func (s *DB) Done(ctx context.Context, owner, masterID string, syncedVersion int64, synced []byte) error {
	return s.release(ctx, s.now(), owner, masterID, `synced_version = $3, synced = $4, attempts = 0, last_error = '', parked = 0`,
		syncedVersion, string(synced))
}

// Checkpoint stores the progress of an attempt (synced) while owner keeps
// the lease: a worker records writes it is about to send that must not be
// repeated, so that whoever works on the call next, after a crash, knows
// to check them first. ErrLeaseLost if the lease is no longer owner's.
func (s *DB) Checkpoint(ctx context.Context, owner, masterID string, synced []byte) error {
	err := s.leased(ctx, `UPDATE contacts SET synced = $3 WHERE master_id = $1 AND lease_owner = $2`, masterID, owner, string(synced))
	if err != nil {
		return fmt.Errorf("store: checkpoint %s: %w", masterID, err)
	}
	return nil
}

// leased runs a write to one leased call (q, whose first two arguments are
// the call and the lease's owner): ErrLeaseLost if it changed nothing.
func (s *DB) leased(ctx context.Context, q string, args ...any) error {
	lost := false
	err := s.write1(ctx, func(ctx context.Context, tx *writerTx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		lost = n != 1
		return err
	})
	if err == nil && lost {
		err = ErrLeaseLost
	}
	return err
}

// Defer records a failed attempt: progress made (synced), the error, and when to
// try again. A parked contact is not tried again until Retry or a new event.
//
// claimedVersion is the version the worker acted on: if an event arrived during
// the attempt, the contact is neither parked nor delayed, so the new event is
// not held hostage by the old failure. Nor is it if an operator retried it
// during the attempt: the retry stands.
//
// next is read on this process's clock; what is stored is the same delay from
// now on the clock leases are measured against (see withClock).
func (s *DB) Defer(ctx context.Context, owner, masterID string, claimedVersion int64, synced []byte, lastErr string, next time.Time, parked bool) error {
	now := s.now()
	return s.release(ctx, now, owner, masterID, `synced = $3, attempts = attempts + 1, last_error = $4,
		next_attempt_at = CASE WHEN version = $7 AND retried = 0 THEN {{now}} + $5 ELSE next_attempt_at END,
		parked = CASE WHEN version = $7 AND retried = 0 THEN $6 ELSE 0 END`,
		string(synced), lastErr, ms(next)-ms(now), boolInt(parked), claimedVersion)
}

func (s *DB) release(ctx context.Context, now time.Time, owner, masterID, set string, args ...any) error {
	args = append([]any{masterID, owner}, args...)
	args = append(args, ms(now))
	q, args := s.withClock(`UPDATE contacts SET `+set+`, lease_owner = '', lease_until = 0, updated_at = $`+fmt.Sprint(len(args))+
		` WHERE master_id = $1 AND lease_owner = $2`, now, args...)
	if err := s.leased(ctx, q, args...); err != nil {
		return fmt.Errorf("store: release %s: %w", masterID, err)
	}
	return nil
}

// releaseLeasesQuery is ReleaseLeases' statement. The owner stays: the
// next claim learns that the attempt never finished.
const releaseLeasesQuery = `UPDATE contacts SET lease_until = 0
	WHERE lease_until > 0 AND lease_owner <> '' AND lease_owner <> $1`

// ReleaseLeases drops every lease held by owners other than keep. A single
// SQLite bridge calls it at start: leases left by a killed process would
// otherwise delay those contacts until they expire.
func (s *DB) ReleaseLeases(ctx context.Context, keep string) error {
	_, err := s.exec(ctx, releaseLeasesQuery, keep)
	if err != nil {
		return fmt.Errorf("store: release leases: %w", err)
	}
	return nil
}

// Contact returns one contact and its events in arrival order.
func (s *DB) Contact(ctx context.Context, masterID string) (Contact, []Event, error) {
	c, err := scanContact(s.rdb.QueryRowContext(ctx, `SELECT `+contactCols+` FROM contacts WHERE master_id = $1`, masterID))
	if errors.Is(err, sql.ErrNoRows) {
		return Contact{}, nil, fmt.Errorf("store: contact %s: %w", masterID, ErrNotFound)
	}
	if err != nil {
		return Contact{}, nil, fmt.Errorf("store: contact %s: %w", masterID, err)
	}
	evs, err := s.events(ctx, masterID)
	return c, evs, err
}

const eventCols = `id, master_id, kind, dedupe_key, occurred_at, received_at, payload`

func scanEvent(row interface{ Scan(...any) error }) (Event, error) {
	var e Event
	var occ, rec int64
	var payload string
	err := row.Scan(&e.ID, &e.MasterID, &e.Kind, &e.DedupeKey, &occ, &rec, &payload)
	e.OccurredAt, e.ReceivedAt, e.Payload = fromMS(occ), fromMS(rec), []byte(payload)
	return e, err
}

func (s *DB) events(ctx context.Context, masterID string) ([]Event, error) {
	return queryAll(ctx, s.rdb, "events of "+masterID, scanEvent,
		`SELECT `+eventCols+` FROM events WHERE master_id = $1 ORDER BY id`, masterID)
}

// EventsOf returns the events of several calls in one query, each call's
// in arrival order.
func (s *DB) EventsOf(ctx context.Context, masterIDs ...string) (map[string][]Event, error) {
	out := make(map[string][]Event, len(masterIDs))
	for len(masterIDs) > 0 {
		batch := masterIDs[:min(len(masterIDs), 500)]
		masterIDs = masterIDs[len(batch):]
		marks := make([]string, len(batch))
		args := make([]any, len(batch))
		for i, id := range batch {
			marks[i], args[i] = "$"+strconv.Itoa(i+1), id
		}
		evs, err := queryAll(ctx, s.rdb, "events of calls", scanEvent,
			`SELECT `+eventCols+` FROM events WHERE master_id IN (`+strings.Join(marks, ", ")+`) ORDER BY id`, args...)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			out[e.MasterID] = append(out[e.MasterID], e)
		}
	}
	return out, nil
}

// ContactFilter selects contacts for listing, newest activity first.
type ContactFilter struct {
	MasterID    string    // just this contact
	Since       time.Time // updated at or after
	PendingOnly bool
	ParkedOnly  bool
	Limit       int // default 100
}

// Contacts lists contacts (without events) matching f.
func (s *DB) Contacts(ctx context.Context, f ContactFilter) ([]Contact, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.MasterID != "" {
		where = append(where, "master_id = "+arg(f.MasterID))
	}
	if !f.Since.IsZero() {
		where = append(where, "updated_at >= "+arg(ms(f.Since)))
	}
	if f.PendingOnly {
		where = append(where, "version > synced_version")
	}
	if f.ParkedOnly {
		where = append(where, "parked = 1")
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := `SELECT ` + contactCols + ` FROM contacts`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY updated_at DESC, master_id LIMIT " + arg(f.Limit)
	return queryAll(ctx, s.rdb, "list contacts", scanContact, q, args...)
}

// querier is a database or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, db querier, what string, scan func(interface{ Scan(...any) error }) (T, error), q string, args ...any) ([]T, error) {
	out, err := collect(ctx, db, scan, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// collect runs a query and scans every row with scan.
func collect[T any](ctx context.Context, db querier, scan func(interface{ Scan(...any) error }) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Retry makes the given contacts due now, un-parking them and resetting their
// attempt count. It returns how many contacts were affected. A retry made
// while an attempt holds a contact stands: that attempt's failure (Defer)
// neither parks nor delays it again. (The flag it sets is cleared by the
// next claim.)
func (s *DB) Retry(ctx context.Context, masterIDs ...string) (int, error) {
	n := 0
	for _, id := range masterIDs {
		now := s.now()
		q, args := s.withClock(`UPDATE contacts SET parked = 0, attempts = 0, next_attempt_at = {{now}}, updated_at = $2, retried = 1
			WHERE master_id = $1 AND version > synced_version`, now, id, ms(now))
		res, err := s.exec(ctx, q, args...)
		if err != nil {
			return n, fmt.Errorf("store: retry %s: %w", id, err)
		}
		k, _ := res.RowsAffected()
		n += int(k)
	}
	return n, nil
}

// Counts summarises the work queue for metrics and readiness.
type Counts struct {
	Contacts int64
	Pending  int64 // has work to do (includes parked and leased)
	Running  int64 // leased to a worker now
	Retrying int64 // pending with at least one failed attempt, not parked
	Parked   int64
}

// countsQuery reads the queue figures without scanning the contacts: the
// number of calls is a count kept by the writes that add and purge them,
// the pending ones (parked and retrying are among them) are read from a
// partial index that holds only pending calls, and the leased ones from a
// partial index of leases. The cost follows the queue, not the calls stored.
// One statement, so the figures are one snapshot.
const countsQuery = `SELECT c.calls, p.pending, p.retrying, p.parked, l.running
	FROM (SELECT COALESCE(SUM(calls), 0) AS calls FROM call_counts) c,
	(SELECT COUNT(*) AS pending,
		COALESCE(SUM(CASE WHEN parked = 0 AND attempts > 0 THEN 1 ELSE 0 END), 0) AS retrying,
		COALESCE(SUM(CASE WHEN parked = 1 THEN 1 ELSE 0 END), 0) AS parked
		FROM contacts WHERE version > synced_version) p,
	(SELECT COUNT(*) AS running FROM contacts WHERE lease_until > 0 AND lease_until >= {{now}}) l`

// Counts returns queue figures. It reads through the read pool and never
// scans every call, so a metrics scrape does not hold up the intake.
func (s *DB) Counts(ctx context.Context) (Counts, error) {
	var c Counts
	q, args := s.withClock(countsQuery, s.now())
	err := s.rdb.QueryRowContext(ctx, q, args...).Scan(&c.Contacts, &c.Pending, &c.Retrying, &c.Parked, &c.Running)
	if err != nil {
		return c, fmt.Errorf("store: counts: %w", err)
	}
	return c, nil
}

// Purge deletes what is no longer needed: calls ServiceNow fully reflects
// whose last activity is before before (with their events), and error-log
// entries resolved before it. Calls with work left, parked or leased, and
// open error entries, are never purged. It reports how many calls and
// entries it deleted.
func (s *DB) Purge(ctx context.Context, before time.Time) (calls, entries int64, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		del := `DELETE FROM contacts WHERE version <= synced_version AND parked = 0
			AND lease_owner = '' AND updated_at < $1`
		if s.dialect == postgres {
			// No foreign key to cascade (see the schema): the events go too.
			if err := tx.QueryRowContext(ctx, `WITH c AS (`+del+` RETURNING master_id),
				e AS (DELETE FROM events WHERE master_id IN (SELECT master_id FROM c))
				SELECT COUNT(*) FROM c`, ms(before)).Scan(&calls); err != nil || calls == 0 {
				return err
			}
		} else {
			res, err := tx.ExecContext(ctx, del, ms(before))
			if err != nil {
				return err
			}
			if calls, err = res.RowsAffected(); err != nil || calls == 0 {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, countCallsSQL, -calls, rand.IntN(callCountShards))
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store: purge calls: %w", err)
	}
	res, err := s.exec(ctx, `DELETE FROM error_log WHERE resolved_at > 0 AND resolved_at < $1`, ms(before))
	if err != nil {
		return calls, 0, fmt.Errorf("store: purge error log: %w", err)
	}
	entries, _ = res.RowsAffected()
	return calls, entries, nil
}
