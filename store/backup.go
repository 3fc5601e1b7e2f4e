package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrPostgresBackup is returned by Backup for a PostgreSQL database, which is
// backed up with PostgreSQL's own tools.
var ErrPostgresBackup = errors.New("the database is PostgreSQL: back it up with pg_dump (or your provider's point-in-time recovery); ctibridge backup copies SQLite stores")

// Backup writes a consistent copy of the SQLite store named by dsn to path,
// while bridges may be using it: the copy is one read transaction's snapshot
// (SQLite's VACUUM INTO), so every event committed before Backup began is in
// it. It never overwrites: an existing path is an error. The copy is written
// beside path under a temporary name, flushed to disk, and only then given
// its name, so path never names half a backup.
//
// The store is not migrated: a backup leaves the database as it found it.
func Backup(ctx context.Context, dsn, path string) error {
	if dsn == "" {
		return errors.New("store: backup: the database is empty; set a SQLite file path")
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return fmt.Errorf("store: backup: %w", ErrPostgresBackup)
	}
	if path == "" {
		return errors.New("store: backup: no file to write the backup to")
	}
	if _, err := os.Lstat(path); err == nil {
		return exists(path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: backup: %w", err)
	}
	if !strings.HasPrefix(dsn, "file:") {
		if _, err := os.Stat(dsn); err != nil {
			return fmt.Errorf("store: backup: no database to back up: %w", err)
		}
	}
	// mode=rw: a missing database is an error, not a new empty file.
	src := sqliteDSN(dsn)
	if !strings.Contains(dsn, "mode=") {
		src = strings.Replace(src, "?", "?mode=rw&", 1)
	}
	db, err := sql.Open("sqlite", src)
	if err != nil {
		return fmt.Errorf("store: backup: open %s: %w", dsn, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var version int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("store: backup: %s is not a ctibridge database: %w", dsn, err)
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName)
	// VACUUM INTO wants a file that does not exist or is empty.
	if _, err := db.ExecContext(ctx, `VACUUM INTO $1`, tmpName); err != nil {
		return fmt.Errorf("store: backup of %s: %w", dsn, err)
	}
	if err := syncFile(tmpName); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	// A hard link gives the copy its name only if the name is still free;
	// where the filesystem has no links, a rename after a last look.
	if err := os.Link(tmpName, path); errors.Is(err, fs.ErrExist) {
		return exists(path)
	} else if err != nil {
		if _, err := os.Lstat(path); err == nil {
			return exists(path)
		}
		if err := os.Rename(tmpName, path); err != nil {
			return fmt.Errorf("store: backup: %w", err)
		}
	}
	if err := syncFile(filepath.Dir(path)); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}

func exists(path string) error {
	return fmt.Errorf("store: backup: %s already exists; a backup never overwrites a file, choose a new name", path)
}

// syncFile flushes a file (or a directory's entries) to disk.
func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
