package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/internal/pgtest"
)

// The suite runs every test against SQLite and, when CTIBRIDGE_TEST_POSTGRES
// names a server, PostgreSQL, each test in a schema of its own.

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *clock               { return &clock{t: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)} }
func ev(master, kind, key string) Event {
	return Event{MasterID: master, Kind: kind, DedupeKey: key, Payload: []byte(`{}`)}
}

type opener func(t testing.TB) (db *DB, reopen func() *DB)

func openers(t *testing.T) map[string]opener {
	m := map[string]opener{"sqlite": openSQLite}
	m["postgres"] = openPostgres
	return m
}

func openSQLite(t testing.TB) (*DB, func() *DB) {
	path := filepath.Join(t.TempDir(), "ctibridge.db")
	open := func() *DB {
		db, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	return open(), open
}

func openPostgres(t testing.TB) (*DB, func() *DB) {
	dsn := pgtest.Schema(t, "the PostgreSQL store tests", "t")
	open := func() *DB {
		db, err := Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	return open(), open
}

type bundle struct {
	db     *DB
	clock  *clock
	reopen func() *DB
	ctx    context.Context
}

func TestStore(t *testing.T) {
	t.Parallel()
	tests := map[string]func(t *testing.T, b bundle){
		"AddEventDedupes":            testAddEventDedupes,
		"ClaimLeasesOneWorker":       testClaimLeasesOneWorker,
		"EventDuringWorkStaysDue":    testEventDuringWorkStaysDue,
		"DeferBacksOffAndParks":      testDeferBacksOffAndParks,
		"DeferDoesNotParkNewEvent":   testDeferDoesNotParkNewEvent,
		"RetryDuringAttemptStands":   testRetryDuringAttemptStands,
		"ExpiredLeaseIsReclaimed":    testExpiredLeaseIsReclaimed,
		"ExpiredLeaseGoesFirst":      testExpiredLeaseGoesFirst,
		"FailedClaimHoldsNothing":    testFailedClaimHoldsNothing,
		"ReleaseLeasesAfterCrash":    testReleaseLeasesAfterCrash,
		"ConcurrentClaimsNeverShare": testConcurrentClaimsNeverShare,
		"EventsSurviveReopen":        testEventsSurviveReopen,
		"ErrorLogDedupesAndResolves": testErrorLog,
		"ContactsListAndCounts":      testContactsListAndCounts,
		"EventsOfSeveralCalls":       testEventsOf,
		"UnknownContactIsNotFound":   testUnknownContact,
		"PingWrites":                 testPing,
		"PurgeKeepsUnfinishedWork":   testPurge,
		"EventsForeignKey":           testEventsForeignKey,
		"QuietWarningsResolve":       testQuietWarningsResolve,
		"LeaseHasOneHolder":          testLeaseHasOneHolder,
		"CursorWrittenUnderLease":    testCursorWrittenUnderLease,
		"GroupCommitSharesOneTx":     testGroupCommitSharesOneTransaction,
		"GroupCommitDedupes":         testGroupCommitDedupes,
		"GroupCommitBadEventAlone":   testGroupCommitBadEventFailsAlone,
		"GroupCommitVersions":        testGroupCommitVersionsUnderLoad,
		"WorkerWritesJoinTheBatch":   testWorkerWritesJoinTheBatch,
		"CallersWhoGiveUp":           testCallersWhoGiveUp,
		"CallersGivingUpUnderLoad":   testGroupCommitCallersGivingUpUnderLoad,
		"ReadsDoNotWaitForWrites":    testReadsDoNotWaitForWrites,
		"CountsFollowTheQueue":       testCountsFollowTheQueue,
		"QueriesUseIndexes":          testQueriesUseIndexes,
		"CommitsAreObserved":         testCommitsAreObserved,
	}
	for dbName, open := range openers(t) {
		t.Run(dbName, func(t *testing.T) {
			t.Parallel()
			for name, fn := range tests {
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					c := newClock()
					// On PostgreSQL leases and due times follow the
					// database's clock: the test clock moves it too.
					start := c.now()
					offset := func() time.Duration { return c.now().Sub(start) }
					db, reopen := open(t)
					db.now, db.dbClockOffset = c.now, offset
					fn(t, bundle{db: db, clock: c, ctx: context.Background(), reopen: func() *DB {
						d := reopen()
						d.now, d.dbClockOffset = c.now, offset
						return d
					}})
				})
			}
		})
	}
}

func mustAdd(t *testing.T, b bundle, e Event) (Contact, bool) {
	t.Helper()
	c, added, err := b.db.AddEvent(b.ctx, e, "sys-"+e.MasterID)
	if err != nil {
		t.Fatal(err)
	}
	return c, added
}

func mustClaim(t *testing.T, b bundle, owner string) (*Contact, []Event) {
	t.Helper()
	c, evs, err := b.db.Claim(b.ctx, owner, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return c, evs
}

// testCommitsAreObserved: the commit of an event's transaction is reported
// with how long it took (the bridge's commit-duration metric).
func testCommitsAreObserved(t *testing.T, b bundle) {
	var mu sync.Mutex
	var seen []time.Duration
	b.db.ObserveCommits(func(d time.Duration) {
		mu.Lock()
		seen = append(seen, d)
		mu.Unlock()
	})
	mustAdd(t, b, ev("m1", "queued", "q"))
	mustAdd(t, b, ev("m1", "answered", "a"))
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("two events, each in a transaction of its own, reported %d commits; want 2", len(seen))
	}
	for _, d := range seen {
		if d <= 0 {
			t.Errorf("a commit reported as taking %v", d)
		}
	}
}

func testAddEventDedupes(t *testing.T, b bundle) {
	c, added := mustAdd(t, b, ev("m1", "queued", "q"))
	if !added || c.Version != 1 || c.SysID != "sys-m1" || !c.Pending() {
		t.Fatalf("first event: added=%v contact=%+v", added, c)
	}
	c, added = mustAdd(t, b, ev("m1", "queued", "q"))
	if added || c.Version != 1 {
		t.Fatalf("duplicate event changed the contact: added=%v version=%d", added, c.Version)
	}
	c, added = mustAdd(t, b, ev("m1", "answered", "a"))
	if !added || c.Version != 2 {
		t.Fatalf("second distinct event: added=%v version=%d", added, c.Version)
	}
	_, evs, err := b.db.Contact(b.ctx, "m1")
	if err != nil || len(evs) != 2 || evs[0].Kind != "queued" || evs[1].Kind != "answered" {
		t.Fatalf("events = %+v, %v; want queued then answered", evs, err)
	}
}

// testFailedClaimHoldsNothing: a claim whose events cannot be read (the
// database went away between taking the lease and the read) leaves the call
// unleased, so the next claim takes it at once rather than after the lease.
func testFailedClaimHoldsNothing(t *testing.T, b bundle) {
	mustAdd(t, b, ev("m1", "queued", "q"))
	if _, err := b.db.db.ExecContext(b.ctx, `ALTER TABLE events RENAME TO events_away`); err != nil {
		t.Fatal(err)
	}
	c, _, err := b.db.Claim(b.ctx, "w1", time.Minute)
	if err == nil || c != nil {
		t.Fatalf("claim with unreadable events = %+v, %v; want an error and no contact", c, err)
	}
	if _, err := b.db.db.ExecContext(b.ctx, `ALTER TABLE events_away RENAME TO events`); err != nil {
		t.Fatal(err)
	}
	if c, evs := mustClaim(t, b, "w2"); c == nil || c.MasterID != "m1" || len(evs) != 1 {
		t.Fatalf("after the failed claim: %+v with %d events; want m1 claimable at once", c, len(evs))
	}
}

func testClaimLeasesOneWorker(t *testing.T, b bundle) {
	mustAdd(t, b, ev("m1", "queued", "q"))
	c, evs := mustClaim(t, b, "w1")
	if c == nil || c.MasterID != "m1" || len(evs) != 1 {
		t.Fatalf("claim = %+v, %d events; want m1 with 1 event", c, len(evs))
	}
	if other, _ := mustClaim(t, b, "w2"); other != nil {
		t.Fatalf("second worker claimed leased contact %s", other.MasterID)
	}
	if err := b.db.Done(b.ctx, "w1", "m1", c.Version, []byte(`{"created":true}`)); err != nil {
		t.Fatal(err)
	}
	if again, _ := mustClaim(t, b, "w2"); again != nil {
		t.Fatalf("synced contact claimed again: %+v", again)
	}
	got, _, _ := b.db.Contact(b.ctx, "m1")
	if got.Pending() || string(got.Synced) != `{"created":true}` {
		t.Fatalf("after Done: pending=%v synced=%s", got.Pending(), got.Synced)
	}
	if err := b.db.Done(b.ctx, "w1", "m1", c.Version, nil); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Done without lease: err = %v, want ErrLeaseLost", err)
	}
}

func testEventDuringWorkStaysDue(t *testing.T, b bundle) {
	mustAdd(t, b, ev("m1", "queued", "q"))
	c, _ := mustClaim(t, b, "w1")
	mustAdd(t, b, ev("m1", "released", "r")) // arrives while w1 works on version 1
	if err := b.db.Done(b.ctx, "w1", "m1", c.Version, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	next, evs := mustClaim(t, b, "w1")
	if next == nil || next.Version != 2 || len(evs) != 2 {
		t.Fatalf("event during work was lost: claim=%+v events=%d", next, len(evs))
	}
	if c.Interrupted || next.Interrupted {
		t.Errorf("interrupted: first claim %v, claim after Done %v; want neither", c.Interrupted, next.Interrupted)
	}
}

func testDeferBacksOffAndParks(t *testing.T, b bundle) {
	mustAdd(t, b, ev("m1", "queued", "q"))
	c, _ := mustClaim(t, b, "w1")
	if err := b.db.Defer(b.ctx, "w1", "m1", c.Version, []byte(`{"p":1}`), "503 down", b.clock.now().Add(time.Minute), false); err != nil {
		t.Fatal(err)
	}
	if got, _ := mustClaim(t, b, "w1"); got != nil {
		t.Fatal("contact claimed before its backoff elapsed")
	}
	b.clock.add(61 * time.Second)
	c, _ = mustClaim(t, b, "w1")
	if c == nil || c.Attempts != 1 || c.LastError != "503 down" || string(c.Synced) != `{"p":1}` {
		t.Fatalf("after backoff: %+v", c)
	}
	if err := b.db.Defer(b.ctx, "w1", "m1", c.Version, c.Synced, "403 forbidden", b.clock.now(), true); err != nil {
		t.Fatal(err)
	}
	b.clock.add(time.Hour)
	if got, _ := mustClaim(t, b, "w1"); got != nil {
		t.Fatal("parked contact claimed")
	}
	if n, err := b.db.Retry(b.ctx, "m1", "unknown"); err != nil || n != 1 {
		t.Fatalf("Retry = %d, %v; want 1", n, err)
	}
	c, _ = mustClaim(t, b, "w1")
	if c == nil || c.Attempts != 0 || c.Parked {
		t.Fatalf("retried contact: %+v", c)
	}
}

// An operator retries a call while a failing attempt holds it: the
// attempt's release must not park it again, and it is due at once.
func testRetryDuringAttemptStands(t *testing.T, b bundle) {
	mustAdd(t, b, ev("m1", "queued", "q"))
	c, _ := mustClaim(t, b, "w1")
	if n, err := b.db.Retry(b.ctx, "m1"); err != nil || n != 1 {
		t.Fatalf("Retry = %d, %v; want 1", n, err)
	}
	if err := b.db.Defer(b.ctx, "w1", "m1", c.Version, nil, "403 forbidden", b.clock.now().Add(time.Hour), true); err != nil {
		t.Fatal(err)
	}
	got, _ := mustClaim(t, b, "w1")
	if got == nil {
		t.Fatal("a call retried during its failing attempt was parked or delayed by that attempt")
	}
	// The retry was used up by that claim: the next failure parks again.
	if err := b.db.Defer(b.ctx, "w1", "m1", got.Version, nil, "403 forbidden", b.clock.now().Add(time.Hour), true); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := b.db.Contact(b.ctx, "m1"); !c.Parked {
		t.Error("a failure after the retried attempt did not park the call")
	}
}

func testDeferDoesNotParkNewEvent(t *testing.T, b bundle) {
	mustAdd(t, b, ev("m1", "queued", "q"))
	c, _ := mustClaim(t, b, "w1")
	mustAdd(t, b, ev("m1", "answered", "a"))
	if err := b.db.Defer(b.ctx, "w1", "m1", c.Version, nil, "403", b.clock.now().Add(time.Hour), true); err != nil {
		t.Fatal(err)
	}
	if got, _ := mustClaim(t, b, "w1"); got == nil || got.Version != 2 {
		t.Fatalf("new event held by an old failure: %+v", got)
	}
}

func testExpiredLeaseIsReclaimed(t *testing.T, b bundle) {
	mustAdd(t, b, ev("m1", "queued", "q"))
	if c, _ := mustClaim(t, b, "dead"); c == nil {
		t.Fatal("no claim")
	}
	b.clock.add(2 * time.Minute)
	c, _ := mustClaim(t, b, "alive")
	if c == nil {
		t.Fatal("contact of a dead worker not reclaimed after its lease expired")
	}
	if !c.Interrupted {
		t.Error("a call whose lease ran out was claimed without being reported as interrupted")
	}
	if err := b.db.Done(b.ctx, "dead", "m1", 1, nil); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("late Done by dead worker: %v, want ErrLeaseLost", err)
	}
}

// testExpiredLeaseGoesFirst: a dead worker's call is taken as soon as its
// lease runs out, even while the queue never empties.
func testExpiredLeaseGoesFirst(t *testing.T, b bundle) {
	mustAdd(t, b, ev("m1", "queued", "q"))
	if c, _ := mustClaim(t, b, "dead"); c == nil {
		t.Fatal("no claim")
	}
	for _, m := range []string{"m2", "m3", "m4"} {
		mustAdd(t, b, ev(m, "queued", "q"))
	}
	if c, _ := mustClaim(t, b, "busy"); c == nil || c.MasterID != "m2" {
		t.Fatalf("claim while m1 is held: %+v, want m2", c)
	}
	b.clock.add(2 * time.Minute)
	mustAdd(t, b, ev("m5", "queued", "q"))
	if c, _ := mustClaim(t, b, "alive"); c == nil || c.MasterID != "m1" || !c.Interrupted {
		t.Fatalf("claim after the leases of m1 and m2 ran out: %+v, want m1, interrupted", c)
	}
	if c, _ := mustClaim(t, b, "alive"); c == nil || c.MasterID != "m2" {
		t.Fatalf("second claim: %+v, want m2, whose lease ran out later", c)
	}
	if c, _ := mustClaim(t, b, "alive"); c == nil || c.MasterID != "m3" {
		t.Fatalf("third claim: %+v, want m3, the call due soonest", c)
	}
}

func testReleaseLeasesAfterCrash(t *testing.T, b bundle) {
	mustAdd(t, b, ev("m1", "queued", "q"))
	mustClaim(t, b, "crashed")
	if err := b.db.ReleaseLeases(b.ctx, "fresh"); err != nil {
		t.Fatal(err)
	}
	c, _ := mustClaim(t, b, "fresh")
	if c == nil {
		t.Fatal("lease of a crashed process still held after ReleaseLeases")
	}
	if !c.Interrupted {
		t.Error("a call the crashed process never released was claimed without being reported as interrupted")
	}
	if err := b.db.Defer(b.ctx, "fresh", "m1", c.Version, nil, "503", b.clock.now(), false); err != nil {
		t.Fatal(err)
	}
	if c, _ := mustClaim(t, b, "fresh"); c == nil || c.Interrupted {
		t.Fatalf("claim after a released attempt: %+v, want a call not interrupted", c)
	}
}

func testConcurrentClaimsNeverShare(t *testing.T, b bundle) {
	const n = 40
	for i := range n {
		mustAdd(t, b, ev(fmt.Sprintf("m%02d", i), "queued", "q"))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("w%d", w)
			for {
				c, _, err := b.db.Claim(b.ctx, owner, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if c == nil {
					return
				}
				mu.Lock()
				seen[c.MasterID]++
				mu.Unlock()
				if err := b.db.Done(b.ctx, owner, c.MasterID, c.Version, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("claimed %d distinct contacts, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("%s claimed %d times", id, k)
		}
	}
}

func testEventsSurviveReopen(t *testing.T, b bundle) {
	mustAdd(t, b, ev("m1", "queued", "q"))
	mustAdd(t, b, ev("m1", "released", "r"))
	b.db.Close()
	db := b.reopen()
	c, evs, err := db.Contact(b.ctx, "m1")
	if err != nil || c.Version != 2 || len(evs) != 2 || !c.Pending() {
		t.Fatalf("after reopen: %+v %d events %v", c, len(evs), err)
	}
}

func testErrorLog(t *testing.T, b bundle) {
	e := ErrorEntry{MasterID: "m1", Operation: "create interaction", Status: 503, Message: "down", Attempts: 5, DedupeKey: "job:m1"}
	id1, created, err := b.db.RecordError(b.ctx, e, time.Hour)
	if err != nil || !created {
		t.Fatalf("first: %v %v", created, err)
	}
	b.clock.add(time.Minute)
	e.Attempts, e.Message = 6, "still down"
	id2, created, err := b.db.RecordError(b.ctx, e, time.Hour)
	if err != nil || created || id2 != id1 {
		t.Fatalf("repeat made a new entry: id %d→%d created=%v %v", id1, id2, created, err)
	}
	got, err := b.db.Error(b.ctx, id1)
	if err != nil || got.Attempts != 6 || got.Message != "still down" || !got.Open() || !got.LastAt.After(got.FirstAt) {
		t.Fatalf("updated entry: %+v %v", got, err)
	}
	w := ErrorEntry{Operation: "map agent", Severity: SeverityWarning, Message: "agent 42 unmapped", DedupeKey: "agent:42"}
	b.db.RecordError(b.ctx, w, time.Hour)
	b.clock.add(2 * time.Hour)
	if _, created, _ := b.db.RecordError(b.ctx, w, time.Hour); !created {
		t.Error("a warning outside its window must make a new entry")
	}
	if err := b.db.ResolveErrors(b.ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	open, _ := b.db.Errors(b.ctx, ErrorFilter{OpenOnly: true, Severity: SeverityError})
	if len(open) != 0 {
		t.Errorf("resolved entry still open: %+v", open)
	}
	all, _ := b.db.Errors(b.ctx, ErrorFilter{})
	if len(all) != 3 {
		t.Errorf("log has %d entries, want 3", len(all))
	}
	n, err := b.db.CountErrors(b.ctx, ErrorFilter{Operation: "map agent"})
	if err != nil || n != 2 {
		t.Errorf("count by operation = %d, %v; want 2", n, err)
	}
	if _, err := b.db.Error(b.ctx, 9999); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing entry: %v", err)
	}
}

func testEventsOf(t *testing.T, b bundle) {
	mustAdd(t, b, ev("a", "queued", "q"))
	mustAdd(t, b, ev("b", "queued", "q"))
	mustAdd(t, b, ev("a", "released", "r"))
	got, err := b.db.EventsOf(b.ctx, "a", "b", "never")
	if err != nil {
		t.Fatal(err)
	}
	if len(got["a"]) != 2 || got["a"][0].Kind != "queued" || got["a"][1].Kind != "released" || len(got["b"]) != 1 || len(got["never"]) != 0 {
		t.Errorf("events = %+v", got)
	}
	ids := make([]string, 1200) // more than one batch
	for i := range ids {
		ids[i] = fmt.Sprint("x", i)
	}
	ids[1100] = "b"
	if got, err := b.db.EventsOf(b.ctx, ids...); err != nil || len(got["b"]) != 1 {
		t.Errorf("batched: %v %v", got, err)
	}
}

func testContactsListAndCounts(t *testing.T, b bundle) {
	mustAdd(t, b, ev("m1", "queued", "q"))
	b.clock.add(time.Second)
	mustAdd(t, b, ev("m2", "queued", "q"))
	c, _ := mustClaim(t, b, "w")
	b.db.Defer(b.ctx, "w", c.MasterID, c.Version, nil, "403", b.clock.now(), true)
	list, err := b.db.Contacts(b.ctx, ContactFilter{})
	if err != nil || len(list) != 2 {
		t.Fatalf("list = %d, %v", len(list), err)
	}
	parked, _ := b.db.Contacts(b.ctx, ContactFilter{ParkedOnly: true})
	if len(parked) != 1 || parked[0].MasterID != c.MasterID {
		t.Errorf("parked = %+v", parked)
	}
	counts, err := b.db.Counts(b.ctx)
	if err != nil || counts != (Counts{Contacts: 2, Pending: 2, Parked: 1}) {
		t.Errorf("counts = %+v, %v", counts, err)
	}
}

func testUnknownContact(t *testing.T, b bundle) {
	if _, _, err := b.db.Contact(b.ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

// testEventsForeignKey: on PostgreSQL, an event does not lock its call's
// row (no foreign key: several bridges' claims and releases would queue
// behind the intake); on SQLite, one bridge to a file, the key stays.
func testEventsForeignKey(t *testing.T, b bundle) {
	q, want := `SELECT COUNT(*) FROM pragma_foreign_key_list('events')`, 1
	if b.db.dialect == postgres {
		q, want = `SELECT COUNT(*) FROM information_schema.table_constraints
			WHERE table_schema = current_schema() AND table_name = 'events' AND constraint_type = 'FOREIGN KEY'`, 0
	}
	var n int
	if err := b.db.db.QueryRowContext(b.ctx, q).Scan(&n); err != nil || n != want {
		t.Fatalf("%s: foreign keys on events: %d, %v; want %d", b.db.Dialect(), n, err, want)
	}
}

func testPurge(t *testing.T, b bundle) {
	add := func(id, key string) {
		t.Helper()
		if _, _, err := b.db.AddEvent(b.ctx, Event{MasterID: id, Kind: "queued", DedupeKey: key, Payload: []byte(`{}`)}, "0123456789abcdef0123456789abcdef"); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"done", "pending", "parked"} {
		add(id, "q")
	}
	// done: ServiceNow reflects it; pending: never synced; parked: failed.
	b.db.db.ExecContext(b.ctx, `UPDATE contacts SET synced_version = version, lease_owner = '', parked = 0 WHERE master_id = 'done'`)
	b.db.db.ExecContext(b.ctx, `UPDATE contacts SET synced_version = 0, lease_owner = '', parked = 0 WHERE master_id = 'pending'`)
	b.db.db.ExecContext(b.ctx, `UPDATE contacts SET synced_version = 0, lease_owner = '', parked = 1 WHERE master_id = 'parked'`)
	if _, _, err := b.db.RecordError(b.ctx, ErrorEntry{MasterID: "done", Operation: "create interaction", Severity: SeverityError, Message: "x", DedupeKey: "k1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	b.db.ResolveErrors(b.ctx, "done")
	if _, _, err := b.db.RecordError(b.ctx, ErrorEntry{MasterID: "parked", Operation: "create interaction", Severity: SeverityError, Message: "y", DedupeKey: "k2"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	b.clock.add(48 * time.Hour)
	calls, entries, err := b.db.Purge(b.ctx, b.clock.now().Add(-24*time.Hour))
	if err != nil || calls != 1 || entries != 1 {
		t.Fatalf("purge: %d calls, %d entries, %v; want 1 and 1", calls, entries, err)
	}
	if _, _, err := b.db.Contact(b.ctx, "done"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the finished call is still there: %v", err)
	}
	for _, id := range []string{"pending", "parked"} {
		if _, evs, err := b.db.Contact(b.ctx, id); err != nil || len(evs) != 1 {
			t.Errorf("%s was purged: %v", id, err)
		}
	}
	if n, _ := b.db.CountErrors(b.ctx, ErrorFilter{OpenOnly: true}); n != 1 {
		t.Errorf("%d open entries after purge, want 1", n)
	}
	var events int
	b.db.db.QueryRowContext(b.ctx, `SELECT COUNT(*) FROM events WHERE master_id = 'done'`).Scan(&events)
	if events != 0 {
		t.Errorf("%d events of a purged call remain", events)
	}
	// A purged call that Studio reports again starts afresh.
	add("done", "q")
}

func testPing(t *testing.T, b bundle) {
	if err := b.db.Ping(b.ctx); err != nil {
		t.Error(err)
	}
}

func TestOpenRejectsEmptyDSN(t *testing.T) {
	t.Parallel()
	if _, err := Open(context.Background(), ""); err == nil {
		t.Fatal("empty database accepted")
	}
}

func testQuietWarningsResolve(t *testing.T, b bundle) {
	warn := func(key string) (created bool) {
		t.Helper()
		_, created, err := b.db.RecordError(b.ctx, ErrorEntry{Operation: "map agent", Severity: SeverityWarning, Message: key, DedupeKey: key}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return created
	}
	open := func() int64 {
		t.Helper()
		n, err := b.db.CountErrors(b.ctx, ErrorFilter{OpenOnly: true, Severity: SeverityWarning})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	warn("quiet")
	warn("recurring")
	if _, _, err := b.db.RecordError(b.ctx, ErrorEntry{MasterID: "m", Operation: "create interaction", Message: "500"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	b.clock.add(50 * time.Minute)
	warn("recurring") // seen again: still one entry, still open
	b.clock.add(20 * time.Minute)
	n, err := b.db.ResolveQuietWarnings(b.ctx, b.clock.now().Add(-time.Hour))
	if err != nil || n != 1 || open() != 1 {
		t.Fatalf("resolved %d (%v), %d open; want the quiet one resolved and the recurring one open", n, err, open())
	}
	b.clock.add(time.Hour)
	if n, _ := b.db.ResolveQuietWarnings(b.ctx, b.clock.now().Add(-time.Hour)); n != 1 || open() != 0 {
		t.Fatalf("resolved %d, %d open; want none open once both are quiet", n, open())
	}
	if n, _ := b.db.CountErrors(b.ctx, ErrorFilter{OpenOnly: true}); n != 1 {
		t.Errorf("%d open entries, want the call's error still open (only warnings resolve by themselves)", n)
	}
	if !warn("quiet") {
		t.Error("a warning that comes back after it was resolved did not open a new entry")
	}
	b.clock.add(48 * time.Hour)
	if _, entries, err := b.db.Purge(b.ctx, b.clock.now().Add(-24*time.Hour)); err != nil || entries != 2 {
		t.Errorf("purge removed %d entries (%v), want the 2 resolved warnings", entries, err)
	}
}

// TestEventsDoNotQueueBehindWorkers: on PostgreSQL, with every connection
// of the pool the workers and reads share taken (64 workers claiming at
// once, say), an event is still committed: the events have a pool of
// their own.
func TestEventsDoNotQueueBehindWorkers(t *testing.T) {
	db, _ := openPostgres(t)
	ctx := context.Background()
	for range pgConns {
		conn, err := db.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, added, err := db.AddEvent(wctx, Event{MasterID: "m1", Kind: "queued", DedupeKey: "q", Payload: []byte(`{}`)}, "sys-m1"); err != nil || !added {
		t.Fatalf("an event while the shared pool is taken: added=%v, %v", added, err)
	}
}
