package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestBackupWhileWriting: a backup taken while events keep arriving holds
// every event added before it began, is a sound SQLite file, and opens as a
// store.
func TestBackupWhileWriting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "live.db")
	db, err := Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var added atomic.Int64 // events committed so far
	stop, flowing := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, _, err := db.AddEvent(ctx, ev("m"+strconv.Itoa(i), "queued", "q"), "sys"); err != nil {
				t.Error(err)
				close(flowing)
				return
			}
			added.Store(int64(i + 1))
			if i == 199 {
				close(flowing)
			}
		}
	}()
	<-flowing
	if t.Failed() {
		t.FailNow()
	}
	before := added.Load()
	dst := filepath.Join(dir, "backup.db")
	err = Backup(ctx, src, dst)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}

	raw, err := sql.Open("sqlite", dst)
	if err != nil {
		t.Fatal(err)
	}
	var check string
	if err := raw.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check of the backup: %q, %v", check, err)
	}
	raw.Close()
	restored, err := Open(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	for i := range before {
		if _, evs, err := restored.Contact(ctx, "m"+strconv.Itoa(int(i))); err != nil || len(evs) != 1 {
			t.Fatalf("event %d of %d added before the backup began is not in it: %v", i+1, before, err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".backup.db.partial-*")); len(left) != 0 {
		t.Errorf("temporary files left beside the backup: %v", left)
	}
}

func TestBackupRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "live.db")
	db, err := Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	existing := filepath.Join(dir, "monday.db")
	os.WriteFile(existing, []byte("last week's backup"), 0o600)
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	notOurs := filepath.Join(dir, "other.db")
	other, _ := sql.Open("sqlite", notOurs)
	other.Exec(`CREATE TABLE t (x)`)
	other.Close()

	for _, c := range []struct {
		name, dsn, path, want string
	}{
		{"an existing file", src, existing, "monday.db already exists"},
		{"an existing empty file", src, empty, "empty.db already exists"},
		{"PostgreSQL", "postgres://ctibridge:Sup3rSecret@db.example.com/ctibridge", filepath.Join(dir, "pg.db"), "pg_dump"},
		{"a missing database", filepath.Join(dir, "nope.db"), filepath.Join(dir, "b1.db"), "no database to back up"},
		{"not a ctibridge database", notOurs, filepath.Join(dir, "b2.db"), "is not a ctibridge database"},
		{"no file name", src, "", "no file"},
	} {
		err := Backup(ctx, c.dsn, c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one saying %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "Sup3rSecret") {
			t.Errorf("%s: the password is in the error: %v", c.name, err)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "last week's backup" {
		t.Errorf("an existing file was overwritten: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("backing up a missing database created it: %v", err)
	}
	if err := Backup(ctx, "postgres://x@y/z", filepath.Join(dir, "pg.db")); !errors.Is(err, ErrPostgresBackup) {
		t.Errorf("PostgreSQL: %v, want ErrPostgresBackup", err)
	}
}
