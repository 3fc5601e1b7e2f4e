// Package pgtest gives a test a PostgreSQL database or schema of its own on
// the server named by CTIBRIDGE_TEST_POSTGRES, dropped when the test ends,
// and skips the test with a visible reason when that variable is unset.
// It is for tests only.
package pgtest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx driver for database/sql
)

// Var names the server: a postgres:// URL.
const Var = "CTIBRIDGE_TEST_POSTGRES"

// Server returns the server's URL, or skips the test saying why: what runs
// only with PostgreSQL.
func Server(t testing.TB, what string) string {
	t.Helper()
	dsn := os.Getenv(Var)
	if dsn == "" {
		t.Skipf("SKIP: %s is unset, so %s cannot run; set it to a postgres:// URL (.ci/run does)", Var, what)
	}
	return dsn
}

// Database creates an empty database named prefix_<random> and returns its
// URL; it is dropped (with FORCE, ending sessions a killed process left) when
// the test ends.
func Database(t testing.TB, what, prefix string) string {
	t.Helper()
	dsn := Server(t, what)
	admin := open(t, dsn)
	name := prefix + "_" + random()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("postgres at %s: create database: %v", Var, err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return withPath(t, dsn, func(u *url.URL) { u.Path = "/" + name })
}

// Schema creates a schema named prefix_<random> in the server's database and
// returns a URL whose search_path is that schema; it is dropped when the
// test ends. Cheaper than a database, for tests that share one server.
func Schema(t testing.TB, what, prefix string) string {
	t.Helper()
	dsn := Server(t, what)
	admin := open(t, dsn)
	schema := prefix + "_" + random()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("postgres at %s: create schema: %v", Var, err)
	}
	t.Cleanup(func() { admin.Exec("DROP SCHEMA " + schema + " CASCADE") })
	return withPath(t, dsn, func(u *url.URL) {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
	})
}

func open(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return admin
}

func withPath(t testing.TB, dsn string, change func(*url.URL)) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s: %v", Var, err)
	}
	change(u)
	return u.String()
}

func random() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}
