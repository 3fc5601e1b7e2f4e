package store

import (
	"errors"
	"testing"
	"time"
)

// One bridge polls CXone at a time: the lease has one holder, renewing keeps
// it, and another takes over only once it expired or was dropped.
func testLeaseHasOneHolder(t *testing.T, b bundle) {
	got := func(owner string) bool {
		t.Helper()
		ok, err := b.db.AcquireLease(b.ctx, "cxone-poll", owner, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !got("a") {
		t.Fatal("a: the free lease was not granted")
	}
	if got("b") {
		t.Fatal("b got the lease a holds")
	}
	b.clock.add(8 * time.Second)
	if !got("a") {
		t.Fatal("a could not renew its own lease")
	}
	b.clock.add(8 * time.Second) // 16s after a's first take, 8s after its renewal
	if got("b") {
		t.Fatal("b took a renewed lease before it expired")
	}
	b.clock.add(3 * time.Second) // a died: no renewal for 11s
	if !got("b") {
		t.Fatal("b could not take over the lease a let expire")
	}
	if holder, err := b.db.LeaseHolder(b.ctx, "cxone-poll"); err != nil || holder != "b" {
		t.Fatalf("holder %q, %v; want b", holder, err)
	}
	if got("a") {
		t.Fatal("a took the lease back while b holds it")
	}
	if err := b.db.DropLease(b.ctx, "cxone-poll", "b"); err != nil {
		t.Fatal(err)
	}
	if !got("a") {
		t.Fatal("a could not take the lease b dropped")
	}
	if _, err := b.db.AcquireLease(b.ctx, "", "a", time.Second); err == nil {
		t.Error("a lease without a name was accepted")
	}
}

// The poller's cursor survives a restart, and a bridge that lost the lease
// cannot move it.
func testCursorWrittenUnderLease(t *testing.T, b bundle) {
	if v, err := b.db.Meta(b.ctx, "cxone.cursor"); err != nil || v != "" {
		t.Fatalf("unset cursor: %q, %v", v, err)
	}
	if _, err := b.db.AcquireLease(b.ctx, "cxone-poll", "a", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.db.SetMetaUnderLease(b.ctx, "cxone-poll", "a", "cxone.cursor", "t1"); err != nil {
		t.Fatal(err)
	}
	if err := b.db.SetMetaUnderLease(b.ctx, "cxone-poll", "b", "cxone.cursor", "t0"); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("write without the lease: %v, want ErrLeaseLost", err)
	}
	b.clock.add(11 * time.Second)
	if err := b.db.SetMetaUnderLease(b.ctx, "cxone-poll", "a", "cxone.cursor", "t0"); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("write after the lease expired: %v, want ErrLeaseLost", err)
	}
	db := b.reopen()
	if v, err := db.Meta(b.ctx, "cxone.cursor"); err != nil || v != "t1" {
		t.Fatalf("cursor after reopen: %q, %v; want t1", v, err)
	}
}
