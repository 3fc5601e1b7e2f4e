package store

import (
	"context"
	"strings"
	"testing"
)

// TestDSNPasswordNotInErrors: a PostgreSQL URL's password never reaches an
// error message (which ends up in logs), whatever goes wrong.
func TestDSNPasswordNotInErrors(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:Sup3rSecret@127.0.0.1:1/db?sslmode=disable",  // nothing listening
		"postgres://u:Sup3rSecret@127.0.0.1:5432/db?sslmode=bogus", // bad option
		"postgres://u:Sup3rSecret@[::1/db",                         // unparsable
	} {
		_, err := Open(context.Background(), dsn)
		if err == nil {
			t.Fatalf("%s opened", dsn)
		}
		if strings.Contains(err.Error(), "Sup3rSecret") {
			t.Errorf("password in error: %v", err)
		}
	}
}
