package store

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestSkewedBridgesShareOneClock: two bridges on one PostgreSQL database
// whose clocks are ten minutes apart. Leases and due times follow the
// database's clock, so the bridge whose clock runs ahead never takes a
// contact the other holds a live lease on, work either makes due is due for
// both, and a retry delay is the delay asked for, whoever asked.
func TestSkewedBridgesShareOneClock(t *testing.T) {
	t.Parallel()
	slow, reopen := openPostgres(t)
	fast := reopen()
	slow.now = func() time.Time { return time.Now().Add(-5 * time.Minute) }
	fast.now = func() time.Time { return time.Now().Add(5 * time.Minute) }
	var moved atomic.Int64 // how far the test moved the database's clock
	offset := func() time.Duration { return time.Duration(moved.Load()) }
	slow.dbClockOffset, fast.dbClockOffset = offset, offset
	ctx := context.Background()
	claim := func(db *DB, owner string) *Contact {
		t.Helper()
		c, _, err := db.Claim(ctx, owner, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	if _, _, err := fast.AddEvent(ctx, ev("m1", "queued", "q"), "sys-m1"); err != nil {
		t.Fatal(err)
	}
	held := claim(slow, "slow")
	if held == nil {
		t.Fatal("an event accepted by the bridge whose clock is ahead is not due for the other bridge")
	}
	if c := claim(fast, "fast"); c != nil {
		t.Fatalf("the bridge whose clock is 10 minutes ahead took %s while the other held a live 1-minute lease on it", c.MasterID)
	}
	if n, err := fast.Counts(ctx); err != nil || n.Running != 1 {
		t.Errorf("running as the fast bridge counts it = %+v, %v; want 1", n, err)
	}
	moved.Store(int64(45 * time.Second))
	if c := claim(fast, "fast"); c != nil {
		t.Fatalf("lease taken over 45 s into a 1-minute lease (database time)")
	}
	moved.Store(int64(61 * time.Second))
	taken := claim(fast, "fast")
	if taken == nil || taken.MasterID != "m1" {
		t.Fatalf("lease not taken over once it expired on the database's clock: %+v", taken)
	}
	if err := slow.Done(ctx, "slow", "m1", held.Version, nil); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Done by the bridge whose lease expired: %v, want ErrLeaseLost", err)
	}

	// A retry in 30 s asked for by the bridge whose clock is ahead is due
	// 30 s later for the other, not 10 minutes and 30 s later.
	if err := fast.Defer(ctx, "fast", "m1", taken.Version, nil, "503", fast.now().Add(30*time.Second), false); err != nil {
		t.Fatal(err)
	}
	if c := claim(slow, "slow"); c != nil {
		t.Fatal("claimed before its 30 s retry delay passed")
	}
	moved.Add(int64(31 * time.Second))
	if c := claim(slow, "slow"); c == nil {
		t.Fatal("not due 31 s after a 30 s retry delay (database time)")
	}
}
