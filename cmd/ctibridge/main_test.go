package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/api"
	"github.com/ctibridge/ctibridge/store"
)

func TestUnknownCommandAndHelp(t *testing.T) {
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"frobnicate"}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) || exitCode(err) != 1 {
		t.Errorf("err = %v (exit %d)", err, exitCode(err))
	}
	for _, name := range []string{"serve", "demo", "snowsim", "simulate", "doctor", "keys", "errors", "backup"} {
		if !strings.Contains(errs.String(), name) {
			t.Errorf("usage lacks %s:\n%s", name, errs.String())
		}
	}
}

func TestKeysNewMakesAUsableKey(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"keys", "new", "studio-prod"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`\bctb_[A-Za-z0-9_-]{40,}`).FindString(out.String())
	sum := regexp.MustCompile(`sha256: ([0-9a-f]{64})`).FindStringSubmatch(out.String())
	if key == "" || sum == nil {
		t.Fatalf("output lacks a key or its hash:\n%s", out.String())
	}
	keys, err := api.NewKeys([]api.Key{{Name: "studio-prod", SHA256: sum[1]}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if name, ok := keys.Check("Bearer " + key); !ok || name != "studio-prod" {
		t.Errorf("the printed key does not match its hash: %q %v", name, ok)
	}
	if strings.Count(out.String(), key) != 1 {
		t.Error("the key should be printed exactly once")
	}
	if err := run(context.Background(), []string{"keys", "new"}, &out, &out); err == nil {
		t.Error("keys new without a name was accepted")
	}
}

func TestErrorsListAndRetry(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "b.db")
	t.Setenv("CTIBRIDGE_DATABASE", dbPath)
	t.Setenv("CTIBRIDGE_SN_INSTANCE", "https://acme.service-now.com")
	t.Setenv("CTIBRIDGE_SN_USERNAME", "cti_integration")
	t.Setenv("CTIBRIDGE_SN_PASSWORD", "x")
	t.Setenv("CTIBRIDGE_API_KEYS", "0123456789abcdef0123")
	ctx := context.Background()
	db, err := store.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddEvent(ctx, store.Event{MasterID: "555", Kind: "queued", DedupeKey: "q", Payload: []byte(`{}`)}, "0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.RecordError(ctx, store.ErrorEntry{MasterID: "555", Operation: "create interaction", Severity: store.SeverityError,
		Status: 403, Message: "User Not Authorized", Attempts: 1, DedupeKey: "contact:555"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	db.Close()

	var out bytes.Buffer
	if err := run(ctx, []string{"errors", "list"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "555") || !strings.Contains(out.String(), "User Not Authorized") || !strings.Contains(out.String(), "403") {
		t.Errorf("errors list:\n%s", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"errors", "list", "--status", "500"}, &out, &out); err != nil || strings.Contains(out.String(), "555") {
		t.Errorf("filter by status: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"errors", "retry"}, &out, &out); err != nil || !strings.Contains(out.String(), "1 call(s) queued for retry") {
		t.Errorf("errors retry: %v\n%s", err, out.String())
	}
	if err := run(ctx, []string{"errors", "retry", "x"}, &out, &out); err == nil || !strings.Contains(err.Error(), "not an entry id") {
		t.Errorf("bad id: %v", err)
	}
}
