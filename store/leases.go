package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AcquireLease takes or renews the named lease for owner until now+ttl. It
// reports whether owner holds it: false when another owner's lease has not
// expired. On PostgreSQL expiry is read on the database's clock, so bridges
// whose clocks disagree still never both hold a lease.
func (s *DB) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if name == "" || owner == "" || ttl <= 0 {
		return false, errors.New("store: lease: a name, an owner and a positive duration are needed")
	}
	q, args := s.withClock(`INSERT INTO leases (name, owner, until) VALUES ($1, $2, {{now}} + $3)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
		WHERE leases.owner = excluded.owner OR leases.until < {{now}}`, s.now(), name, owner, ttl.Milliseconds())
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("store: lease %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: lease %s: %w", name, err)
	}
	return n == 1, nil
}

// DropLease gives up owner's lease at once, so another bridge can take over
// without waiting for it to expire. Dropping a lease owner does not hold is
// not an error.
func (s *DB) DropLease(ctx context.Context, name, owner string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM leases WHERE name = $1 AND owner = $2`, name, owner); err != nil {
		return fmt.Errorf("store: drop lease %s: %w", name, err)
	}
	return nil
}

// LeaseHolder names who holds the lease now, "" when nobody does.
func (s *DB) LeaseHolder(ctx context.Context, name string) (string, error) {
	q, args := s.withClock(`SELECT owner FROM leases WHERE name = $1 AND until >= {{now}}`, s.now(), name)
	var owner string
	err := s.db.QueryRowContext(ctx, q, args...).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: lease %s: %w", name, err)
	}
	return owner, nil
}

// Meta reads a value kept in the meta table, "" if it was never set.
func (s *DB) Meta(ctx context.Context, key string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: read %s: %w", key, err)
	}
	return v, nil
}

// SetMetaUnderLease writes a meta value, but only while owner holds the named
// lease: a bridge that lost the lease (paused, then overtaken) cannot move a
// cursor the new holder owns. It returns ErrLeaseLost otherwise.
func (s *DB) SetMetaUnderLease(ctx context.Context, lease, owner, key, value string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		q, args := s.withClock(`SELECT owner FROM leases WHERE name = $1 AND owner = $2 AND until >= {{now}}`, s.now(), lease, owner)
		var got string
		if err := tx.QueryRowContext(ctx, q, args...).Scan(&got); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: write %s: %w", key, ErrLeaseLost)
		} else if err != nil {
			return fmt.Errorf("store: write %s: %w", key, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
			return fmt.Errorf("store: write %s: %w", key, err)
		}
		return nil
	})
}
