package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests of group commit, the read pool and the queue counts; they run in the
// TestStore suite, on SQLite and on PostgreSQL.

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// holdWrites opens a write transaction that keeps the store's writer from
// committing until release is called: on SQLite it holds the one write
// connection; on PostgreSQL it locks the events table against inserts.
func holdWrites(t *testing.T, b bundle) (release func()) {
	t.Helper()
	conn, err := b.db.db.Conn(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(b.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	hold := `UPDATE call_counts SET calls = calls WHERE shard = 0`
	if b.db.dialect == postgres {
		hold = `LOCK TABLE events IN SHARE MODE`
	}
	if _, err := tx.ExecContext(b.ctx, hold); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			tx.Rollback()
			conn.Close()
		})
	}
	t.Cleanup(release)
	return release
}

type addResult struct {
	c     Contact
	added bool
	err   error
}

// addAsync adds e in the background; the result arrives on the channel.
func addAsync(ctx context.Context, b bundle, e Event, sysID string) <-chan addResult {
	ch := make(chan addResult, 1)
	go func() {
		c, added, err := b.db.AddEvent(ctx, e, sysID)
		ch <- addResult{c, added, err}
	}()
	return ch
}

// blockWriter holds writes and gives the writer one event (call "blocker")
// to be stuck on, so that what is added next waits in its queue, in order.
//
// On PostgreSQL, where several batches may be written at once, the store is
// set to one at a time, so that what queues is known.
func blockWriter(t *testing.T, b bundle) (release func(), blocker <-chan addResult) {
	t.Helper()
	b.db.w.mu.Lock()
	b.db.w.maxLeaders = 1
	b.db.w.mu.Unlock()
	release = holdWrites(t, b)
	blocker = addAsync(b.ctx, b, ev("blocker", "queued", "q"), "sys-blocker")
	waitFor(t, "the writer is stuck on the first event", func() bool { return b.db.w.busy.Load() > 0 && b.db.w.queued() == 0 })
	return release, blocker
}

// queue adds events one after the other into the writer's queue (which
// blockWriter keeps from moving), so their order in the batch is known.
func queue(t *testing.T, b bundle, sysID func(Event) string, evs ...Event) []<-chan addResult {
	t.Helper()
	var out []<-chan addResult
	base := b.db.w.queued()
	for i, e := range evs {
		out = append(out, addAsync(b.ctx, b, e, sysID(e)))
		waitFor(t, fmt.Sprintf("event %d is queued", i+1), func() bool { return b.db.w.queued() == base+i+1 })
	}
	return out
}

func sysFor(e Event) string { return "sys-" + e.MasterID }

// wait waits for wg, failing the test after 20 s.
func wait(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("writers did not return")
	}
}

func result(t *testing.T, ch <-chan addResult) addResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("AddEvent did not return")
		return addResult{}
	}
}

// testGroupCommitSharesOneTransaction: events that arrive while the writer
// is busy are committed together, in one transaction, each caller getting
// its own answer, and all of them are on disk once acknowledged.
func testGroupCommitSharesOneTransaction(t *testing.T, b bundle) {
	release, blocker := blockWriter(t, b)
	const calls, kinds = 25, 4 // 100 events: statements of several sizes
	var wg sync.WaitGroup
	results := make([]addResult, calls*kinds)
	for i := range calls * kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := ev(fmt.Sprint("m", i%calls), "k", fmt.Sprint("e", i/calls))
			c, added, err := b.db.AddEvent(b.ctx, e, sysFor(e))
			results[i] = addResult{c, added, err}
		}()
	}
	waitFor(t, "every event is queued behind the busy writer", func() bool { return b.db.w.queued() == calls*kinds })
	commits := b.db.w.commits.Load()
	release()
	if r := result(t, blocker); r.err != nil || !r.added {
		t.Fatalf("blocking event: %+v", r)
	}
	wait(t, &wg)
	if n := b.db.w.commits.Load() - commits; n != 2 {
		t.Errorf("%d events queued behind a busy writer took %d transactions (with the one it was busy with); want 2", calls*kinds, n)
	}
	versions := map[string][]int64{}
	for i, r := range results {
		if r.err != nil || !r.added {
			t.Fatalf("event %d: added=%v err=%v", i, r.added, r.err)
		}
		versions[r.c.MasterID] = append(versions[r.c.MasterID], r.c.Version)
	}
	for id, vs := range versions {
		slices.Sort(vs)
		if !slices.Equal(vs, []int64{1, 2, 3, 4}) {
			t.Errorf("%s: the callers of its 4 events were told versions %v; want 1, 2, 3 and 4, one each", id, vs)
		}
	}
	b.db.Close()
	db := b.reopen()
	for i := range calls {
		c, evs, err := db.Contact(b.ctx, fmt.Sprint("m", i))
		if err != nil || c.Version != kinds || len(evs) != kinds || c.SysID != fmt.Sprint("sys-m", i) {
			t.Fatalf("after reopening: m%d = %+v with %d events, %v; want version %d", i, c, len(evs), err, kinds)
		}
	}
	if n, err := db.Counts(b.ctx); err != nil || n.Contacts != calls+1 || n.Pending != calls+1 {
		t.Errorf("counts = %+v, %v; want %d calls, all pending", n, err, calls+1)
	}
}

// testWorkerWritesJoinTheBatch: on SQLite, the workers' claims,
// checkpoints and releases that arrive while the writer is busy share the
// events' next transaction, and each still gets its own answer: claims
// take different calls, a release whose lease is gone is refused without
// undoing the others. (On PostgreSQL they are transactions of their own.)
func testWorkerWritesJoinTheBatch(t *testing.T, b bundle) {
	// Three calls due, two of them claimed beforehand.
	for _, m := range []string{"a", "b", "c", "d"} {
		mustAdd(t, b, ev(m, "queued", "q"))
	}
	ca, _, err := b.db.Claim(b.ctx, "w1", time.Minute)
	if err != nil || ca == nil {
		t.Fatalf("claim: %v, %v", ca, err)
	}
	cb, _, err := b.db.Claim(b.ctx, "w2", time.Minute)
	if err != nil || cb == nil {
		t.Fatalf("claim: %v, %v", cb, err)
	}
	release, blocker := blockWriter(t, b)
	commits := b.db.w.commits.Load()
	type claimed struct {
		c   *Contact
		evs []Event
		err error
	}
	var wg sync.WaitGroup
	claims := make([]claimed, 2)
	var checkpoint, done, lost error
	wg.Go(func() { checkpoint = b.db.Checkpoint(b.ctx, "w1", ca.MasterID, []byte(`{"step":1}`)) })
	wg.Go(func() { done = b.db.Done(b.ctx, "w2", cb.MasterID, cb.Version, []byte(`{"done":1}`)) })
	wg.Go(func() { lost = b.db.Done(b.ctx, "nobody", ca.MasterID, ca.Version, nil) })
	for i := range claims {
		wg.Go(func() {
			c, evs, err := b.db.Claim(b.ctx, fmt.Sprint("w", 3+i), time.Minute)
			claims[i] = claimed{c, evs, err}
		})
	}
	if b.db.dialect == sqlite {
		waitFor(t, "the workers' writes are queued behind the busy writer", func() bool { return b.db.w.queued() == 5 })
	} else {
		wait(t, &wg) // not held up by the events' batch
	}
	release()
	if r := result(t, blocker); r.err != nil {
		t.Fatal(r.err)
	}
	wait(t, &wg)
	if n := b.db.w.commits.Load() - commits; b.db.dialect == sqlite && n != 2 {
		t.Errorf("5 worker writes queued behind a busy writer took %d transactions (with the one it was busy with); want 2", n)
	}
	if checkpoint != nil || done != nil {
		t.Errorf("checkpoint: %v, done: %v; want both stored", checkpoint, done)
	}
	if !errors.Is(lost, ErrLeaseLost) {
		t.Errorf("a release by a worker without the lease: %v; want ErrLeaseLost", lost)
	}
	got := map[string]bool{}
	for i, cl := range claims {
		if cl.err != nil || cl.c == nil || len(cl.evs) == 0 {
			t.Fatalf("claim %d: %+v", i, cl)
		}
		got[cl.c.MasterID] = true
	}
	if len(got) != 2 || got[ca.MasterID] || got[cb.MasterID] {
		t.Errorf("two claims in one batch took %v; want the two unclaimed calls, one each", got)
	}
	c, _, err := b.db.Contact(b.ctx, ca.MasterID)
	if err != nil || string(c.Synced) != `{"step":1}` {
		t.Errorf("checkpointed call: %+v, %v", c, err)
	}
	c, _, err = b.db.Contact(b.ctx, cb.MasterID)
	if err != nil || c.Pending() {
		t.Errorf("released call: %+v, %v; want synced", c, err)
	}
}

// testGroupCommitDedupes: inside one batch, an event repeating one stored
// before, and an event repeating one earlier in the same batch, are
// duplicates (added=false, nothing changed), exactly as if the events had
// come one at a time; each caller sees the call as it stood after its own
// event, and the first event of a new call names its sys_id.
func testGroupCommitDedupes(t *testing.T, b bundle) {
	mustAdd(t, b, ev("old", "queued", "q"))
	c, _ := mustClaim(t, b, "w")
	if err := b.db.Defer(b.ctx, "w", "old", c.Version, nil, "403", b.clock.now(), true); err != nil {
		t.Fatal(err)
	}
	release, blocker := blockWriter(t, b)
	chs := queue(t, b, sysFor,
		ev("old", "queued", "q"),     // 0: stored before
		ev("new", "queued", "q"),     // 1: new call
		ev("new", "queued", "q"),     // 2: repeats 1
		ev("old", "answered", "a"),   // 3: new event of a parked call
		ev("new", "answered", "a"),   // 4
		ev("old", "answered", "a"),   // 5: repeats 3
		ev("new", "released", "r"),   // 6
		ev("third", "queued", "q"),   // 7
		ev("third", "released", "r"), // 8
	)
	// A repeat of a new call's first event with another sys_id does not rename it.
	chs = append(chs, queue(t, b, func(Event) string { return "sys-other" }, ev("new", "queued", "q"))...) // 9
	release()
	if r := result(t, blocker); r.err != nil {
		t.Fatal(r.err)
	}
	want := []struct {
		added   bool
		version int64
		parked  bool
	}{
		{false, 1, true}, {true, 1, false}, {false, 1, false}, {true, 2, false}, {true, 2, false},
		{false, 2, false}, {true, 3, false}, {true, 1, false}, {true, 2, false}, {false, 3, false},
	}
	for i, ch := range chs {
		r := result(t, ch)
		if r.err != nil {
			t.Fatalf("event %d: %v", i, r.err)
		}
		if r.added != want[i].added || r.c.Version != want[i].version || r.c.Parked != want[i].parked {
			t.Errorf("event %d: added=%v version=%d parked=%v; want added=%v version=%d parked=%v",
				i, r.added, r.c.Version, r.c.Parked, want[i].added, want[i].version, want[i].parked)
		}
	}
	for id, n := range map[string]int{"old": 2, "new": 3, "third": 2} {
		c, evs, err := b.db.Contact(b.ctx, id)
		if err != nil || c.Version != int64(n) || len(evs) != n || c.SysID != "sys-"+id || c.Parked || c.Attempts != 0 {
			t.Errorf("%s = %+v with %d events, %v; want version %d, %d events, sys-%s, not parked", id, c, len(evs), err, n, n, id)
		}
	}
}

// addTrigger makes the database refuse any event of the call named poison,
// as it would refuse an event it cannot store.
func addTrigger(t *testing.T, b bundle) {
	t.Helper()
	stmts := []string{`CREATE TRIGGER refuse_poison BEFORE INSERT ON events WHEN NEW.master_id = 'poison'
		BEGIN SELECT RAISE(ABORT, 'event refused by the database'); END`}
	if b.db.dialect == postgres {
		stmts = []string{`CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.master_id = 'poison' THEN RAISE EXCEPTION 'event refused by the database'; END IF; RETURN NEW; END $$`,
			`CREATE TRIGGER refuse_poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_poison()`}
	}
	for _, s := range stmts {
		if _, err := b.db.db.ExecContext(b.ctx, s); err != nil {
			t.Fatal(err)
		}
	}
}

// testGroupCommitBadEventFailsAlone: an event the database refuses fails
// its own request only; the others in its batch are stored and get the
// answers they would have got without it.
func testGroupCommitBadEventFailsAlone(t *testing.T, b bundle) {
	addTrigger(t, b)
	mustAdd(t, b, ev("g1", "queued", "q"))
	release, blocker := blockWriter(t, b)
	chs := queue(t, b, sysFor,
		ev("g1", "answered", "a"),
		ev("poison", "queued", "q"),
		ev("g2", "queued", "q"),
		ev("g1", "queued", "q"),
	)
	pinged := make(chan error, 1)
	go func() { pinged <- b.db.Ping(b.ctx) }()
	waitFor(t, "the readiness write is queued", func() bool { return b.db.w.queued() == len(chs)+1 })
	release()
	if r := result(t, blocker); r.err != nil {
		t.Fatal(r.err)
	}
	rs := make([]addResult, len(chs))
	for i, ch := range chs {
		rs[i] = result(t, ch)
	}
	if rs[1].err == nil || !strings.Contains(rs[1].err.Error(), "poison") || !strings.Contains(rs[1].err.Error(), "refused by the database") {
		t.Errorf("the refused event: %v; want an error naming the call and the database's reason", rs[1].err)
	}
	if r := rs[0]; r.err != nil || !r.added || r.c.Version != 2 {
		t.Errorf("g1 answered beside the refused event: %+v", r)
	}
	if r := rs[2]; r.err != nil || !r.added || r.c.Version != 1 {
		t.Errorf("g2 queued beside the refused event: %+v", r)
	}
	if r := rs[3]; r.err != nil || r.added || r.c.Version != 2 {
		t.Errorf("g1's repeated queued event beside the refused event: %+v", r)
	}
	if err := <-pinged; err != nil {
		t.Errorf("readiness write beside the refused event: %v", err)
	}
	if _, _, err := b.db.Contact(b.ctx, "poison"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the refused event's call exists: %v", err)
	}
	for id, n := range map[string]int{"g1": 2, "g2": 1} {
		if c, evs, err := b.db.Contact(b.ctx, id); err != nil || c.Version != int64(n) || len(evs) != n {
			t.Errorf("%s = %+v with %d events, %v; want %d", id, c, len(evs), err, n)
		}
	}
	if n, err := b.db.Counts(b.ctx); err != nil || n.Contacts != 3 {
		t.Errorf("counts = %+v, %v; want 3 calls (blocker, g1, g2)", n, err)
	}
}

// testGroupCommitVersionsUnderLoad: many writers, many duplicates, no
// coordination: each distinct event is added exactly once, and the callers
// of a call's added events are told versions 1..n, one each, as when every
// event had its own transaction.
func testGroupCommitVersionsUnderLoad(t *testing.T, b bundle) {
	const writers, each, calls = 16, 60, 25
	type told struct {
		master string
		key    string
		added  bool
		ver    int64
	}
	var mu sync.Mutex
	var all []told
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// Writers overlap: the same events are sent by several of them.
				n := (w*7 + i*3) % (calls * 4)
				e := ev(fmt.Sprint("c", n%calls), "k", fmt.Sprint("e", n/calls))
				c, added, err := b.db.AddEvent(b.ctx, e, sysFor(e))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				all = append(all, told{e.MasterID, e.DedupeKey, added, c.Version})
				mu.Unlock()
			}
		}()
	}
	wait(t, &wg)
	addedKeys := map[[2]string]int{}
	versions := map[string][]int64{}
	for _, r := range all {
		if r.added {
			addedKeys[[2]string{r.master, r.key}]++
			versions[r.master] = append(versions[r.master], r.ver)
		}
	}
	for k, n := range addedKeys {
		if n != 1 {
			t.Errorf("event %v reported added %d times", k, n)
		}
	}
	for id, vs := range versions {
		slices.Sort(vs)
		c, evs, err := b.db.Contact(b.ctx, id)
		if err != nil || c.Version != int64(len(evs)) || int(c.Version) != len(vs) {
			t.Errorf("%s: version %d, %d events, %d added (%v)", id, c.Version, len(evs), len(vs), err)
		}
		for i, v := range vs {
			if v != int64(i+1) {
				t.Errorf("%s: callers of added events were told versions %v; want 1..%d once each", id, vs, len(vs))
				break
			}
		}
	}
}

// testCallersWhoGiveUp: a caller whose context ends while the writer is
// stuck gets its error at once; an event not yet taken into a batch when its
// caller gave up is not written; a closed store answers writes with
// ErrClosed instead of hanging, including the events waiting for it.
func testCallersWhoGiveUp(t *testing.T, b bundle) {
	release, blocker := blockWriter(t, b)
	ctx, cancel := context.WithCancel(b.ctx)
	gaveUp := addAsync(ctx, b, ev("gave-up", "queued", "q"), "sys-gave-up")
	waitFor(t, "the event is queued", func() bool { return b.db.w.queued() == 1 })
	cancel()
	if r := result(t, gaveUp); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("AddEvent after its caller gave up: %v; want context.Canceled", r.err)
	}
	release()
	if r := result(t, blocker); r.err != nil {
		t.Fatal(r.err)
	}
	if _, _, err := b.db.Contact(b.ctx, "gave-up"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an event whose caller gave up before its turn was written: %v", err)
	}

	release, blocker = blockWriter(t, b)
	waiting := addAsync(b.ctx, b, ev("waiting", "queued", "q"), "sys-waiting")
	waitFor(t, "an event is queued", func() bool { return b.db.w.queued() == 1 })
	closed := make(chan error, 1)
	go func() { closed <- b.db.Close() }()
	if r := result(t, waiting); !errors.Is(r.err, ErrClosed) {
		t.Errorf("an event waiting when the store closed: %v; want ErrClosed", r.err)
	}
	if r := result(t, blocker); r.err == nil {
		t.Errorf("the event being written when the store closed was acknowledged: %+v", r)
	}
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return while a write was stuck")
	}
	release()
	if _, _, err := b.db.AddEvent(b.ctx, ev("late", "queued", "q"), "sys-late"); !errors.Is(err, ErrClosed) {
		t.Errorf("AddEvent on a closed store: %v; want ErrClosed", err)
	}
	if err := b.db.Ping(b.ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping on a closed store: %v; want ErrClosed", err)
	}
	db := b.reopen()
	for _, id := range []string{"waiting", "late"} {
		if _, _, err := db.Contact(b.ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v; want it never written", id, err)
		}
	}
}

// testGroupCommitCallersGivingUpUnderLoad: callers give up at every moment
// (queued, being written, handed the next batch) while others keep writing;
// the writes never stall, and whatever was acknowledged is stored.
func testGroupCommitCallersGivingUpUnderLoad(t *testing.T, b bundle) {
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for w := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				id := fmt.Sprintf("w%d-%d", w, i)
				ctx, cancel := context.WithTimeout(b.ctx, time.Duration(1+(w*40+i)%8)*400*time.Microsecond)
				_, _, err := b.db.AddEvent(ctx, ev(id, "queued", "q"), "sys-"+id)
				cancel()
				if err == nil {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				} else if !errors.Is(err, context.DeadlineExceeded) {
					t.Error(err)
				}
			}
		}()
	}
	wait(t, &wg)
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if _, added, err := b.db.AddEvent(ctx, ev("after", "queued", "q"), "sys-after"); err != nil || !added {
		t.Fatalf("an event after callers gave up: added=%v %v; the writes stalled", added, err)
	}
	if err := b.db.Ping(ctx); err != nil {
		t.Fatalf("readiness write after callers gave up: %v", err)
	}
	for id := range acked {
		if _, _, err := b.db.Contact(b.ctx, id); err != nil {
			t.Errorf("acknowledged %s: %v", id, err)
		}
	}
	t.Logf("%d of %d events acknowledged before their callers gave up", len(acked), 24*40)
}

// testReadsDoNotWaitForWrites: while a write is under way and stuck, the
// reads behind the console, /metrics, /readyz's queue check and a call's
// status answer at once.
func testReadsDoNotWaitForWrites(t *testing.T, b bundle) {
	mustAdd(t, b, ev("m1", "queued", "q"))
	id, _, err := b.db.RecordError(b.ctx, ErrorEntry{MasterID: "m1", Operation: "create interaction", Message: "500"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	release, blocker := blockWriter(t, b)
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if c, evs, err := b.db.Contact(ctx, "m1"); err != nil || c.Version != 1 || len(evs) != 1 {
		t.Errorf("call status during a write: %+v, %d events, %v", c, len(evs), err)
	}
	if cs, err := b.db.Contacts(ctx, ContactFilter{}); err != nil || len(cs) != 1 {
		t.Errorf("call list during a write: %d, %v", len(cs), err)
	}
	if evs, err := b.db.EventsOf(ctx, "m1"); err != nil || len(evs["m1"]) != 1 {
		t.Errorf("events during a write: %v, %v", evs, err)
	}
	if n, err := b.db.Counts(ctx); err != nil || n.Contacts != 1 || n.Pending != 1 {
		t.Errorf("queue counts during a write: %+v, %v", n, err)
	}
	if es, err := b.db.Errors(ctx, ErrorFilter{OpenOnly: true}); err != nil || len(es) != 1 {
		t.Errorf("error log during a write: %d, %v", len(es), err)
	}
	if n, err := b.db.CountErrors(ctx, ErrorFilter{OpenOnly: true}); err != nil || n != 1 {
		t.Errorf("open errors during a write: %d, %v", n, err)
	}
	if _, err := b.db.Error(ctx, id); err != nil {
		t.Errorf("an error entry during a write: %v", err)
	}
	if b.db.w.busy.Load() == 0 {
		t.Fatal("the write finished before the reads; the test proved nothing")
	}
	release()
	if r := result(t, blocker); r.err != nil {
		t.Fatal(r.err)
	}
	// Reads see what was acknowledged before them.
	if c, _, err := b.db.Contact(b.ctx, "blocker"); err != nil || c.Version != 1 {
		t.Errorf("an acknowledged event, read back: %+v, %v", c, err)
	}
}

// oracleCounts is the queue figures by brute force: every call looked at.
func oracleCounts(t *testing.T, b bundle) Counts {
	t.Helper()
	var c Counts
	q, args := b.db.withClock(`SELECT COUNT(*),
		COALESCE(SUM(CASE WHEN version > synced_version THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN lease_until >= {{now}} THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN version > synced_version AND parked = 0 AND attempts > 0 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN version > synced_version AND parked = 1 THEN 1 ELSE 0 END), 0)
		FROM contacts`, b.db.now())
	if err := b.db.db.QueryRowContext(b.ctx, q, args...).Scan(&c.Contacts, &c.Pending, &c.Running, &c.Retrying, &c.Parked); err != nil {
		t.Fatal(err)
	}
	return c
}

// testCountsFollowTheQueue: with thousands of calls, the queue figures
// (kept without scanning the calls) agree with a count of every call
// through adding, claiming, finishing, failing, parking, retrying, new
// events on parked calls, expired leases and purging.
func testCountsFollowTheQueue(t *testing.T, b bundle) {
	const calls = 3000
	check := func(step string, want *Counts) {
		t.Helper()
		got, err := b.db.Counts(b.ctx)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if oracle := oracleCounts(t, b); got != oracle {
			t.Fatalf("%s: counts %+v, but counting every call gives %+v", step, got, oracle)
		}
		if want != nil && got != *want {
			t.Fatalf("%s: counts %+v, want %+v", step, got, *want)
		}
	}
	var wg sync.WaitGroup
	for w := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < calls; i += 24 {
				id := fmt.Sprintf("c%05d", i)
				for _, k := range []string{"q", "q", "a"} { // a retried event among them
					if _, _, err := b.db.AddEvent(b.ctx, ev(id, "k", k), sysFor(ev(id, "", ""))); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	check("added", &Counts{Contacts: calls, Pending: calls})

	claimed := make([]*Contact, 0, 400)
	for range 400 {
		c, _ := mustClaim(t, b, "w")
		claimed = append(claimed, c)
	}
	check("claimed", &Counts{Contacts: calls, Pending: calls, Running: 400})
	for i, c := range claimed {
		var err error
		switch {
		case i < 200:
			err = b.db.Done(b.ctx, "w", c.MasterID, c.Version, []byte(`{}`))
		case i < 300:
			err = b.db.Defer(b.ctx, "w", c.MasterID, c.Version, nil, "503", b.clock.now().Add(time.Minute), false)
		case i < 350:
			err = b.db.Defer(b.ctx, "w", c.MasterID, c.Version, nil, "403", b.clock.now(), true)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	check("finished, failed, parked", &Counts{Contacts: calls, Pending: calls - 200, Running: 50, Retrying: 100, Parked: 50})

	if n, err := b.db.Retry(b.ctx, claimed[300].MasterID, claimed[301].MasterID); err != nil || n != 2 {
		t.Fatalf("retry: %d, %v", n, err)
	}
	mustAdd(t, b, ev(claimed[302].MasterID, "released", "r")) // a new event un-parks
	mustAdd(t, b, ev(claimed[0].MasterID, "released", "r"))   // and makes a synced call pending again
	mustAdd(t, b, ev("c-new", "queued", "q"))
	check("retried, new events", &Counts{Contacts: calls + 1, Pending: calls - 199 + 1, Running: 50, Retrying: 100, Parked: 47})

	b.clock.add(2 * time.Minute) // the 50 leases still held expire, the 100 retries fall due
	check("leases expired", &Counts{Contacts: calls + 1, Pending: calls - 199 + 1, Running: 0, Retrying: 100, Parked: 47})

	b.clock.add(48 * time.Hour)
	purged, _, err := b.db.Purge(b.ctx, b.clock.now().Add(-24*time.Hour))
	if err != nil || purged != 199 {
		t.Fatalf("purge: %d calls, %v; want the 199 synced", purged, err)
	}
	check("purged", &Counts{Contacts: calls + 1 - 199, Pending: calls - 199 + 1, Running: 0, Retrying: 100, Parked: 47})

	// A purged call that comes back counts again.
	mustAdd(t, b, ev(claimed[1].MasterID, "queued", "q"))
	check("a purged call again", nil)
	b.db.Close()
	b.db = b.reopen()
	check("reopened", &Counts{Contacts: calls + 1 - 198, Pending: calls - 199 + 2, Running: 0, Retrying: 100, Parked: 47})
}

// explain returns the plan of q, one line per step. On PostgreSQL the
// planner is told to avoid sequential scans, so whatever the table
// statistics, a plan without one shows that an index answers the query.
func explain(t *testing.T, b bundle, q string, args ...any) []string {
	t.Helper()
	tx, err := b.db.rdb.BeginTx(b.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	prefix := "EXPLAIN QUERY PLAN "
	if b.db.dialect == postgres {
		if _, err := tx.ExecContext(b.ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			t.Fatal(err)
		}
		prefix = "EXPLAIN "
	}
	rows, err := tx.QueryContext(b.ctx, prefix+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var plan []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		line := vals[len(vals)-1] // SQLite: id, parent, notused, detail
		if b, ok := line.([]byte); ok {
			line = string(b)
		}
		plan = append(plan, fmt.Sprint(line))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// testQueriesUseIndexes: the queue figures are read from the counter and
// the partial indexes, never by scanning the calls (a scrape costs what the
// queue holds, not what the store holds); a claim takes an expired lease
// from the lease index, or the call due soonest from the due index,
// without sorting the queue; releasing a dead process's leases looks only
// at leased calls.
func testQueriesUseIndexes(t *testing.T, b bundle) {
	countsQ, countsArgs := b.db.withClock(countsQuery, b.db.now())
	claimQ, claimArgs := b.db.claimQuery("w", time.Minute)
	for _, c := range []struct {
		name    string
		q       string
		args    []any
		indexes []string
	}{
		{"counts", countsQ, countsArgs, []string{"contacts_pending", "contacts_leased"}},
		{"claim", claimQ, claimArgs, []string{"contacts_due", "contacts_leased"}},
		{"release leases", releaseLeasesQuery, []any{"w"}, []string{"contacts_leased"}},
	} {
		plan := explain(t, b, c.q, c.args...)
		text := strings.Join(plan, "\n")
		for _, line := range plan {
			scan := strings.Contains(line, "Seq Scan on contacts") ||
				(strings.HasPrefix(line, "SCAN ") && strings.Contains(line, "contacts") && !strings.Contains(line, "INDEX"))
			if scan {
				t.Errorf("%s scans a table: %q in the plan\n%s", c.name, line, text)
			}
			if b.db.dialect == sqlite && c.name == "claim" && strings.Contains(line, "TEMP B-TREE") {
				t.Errorf("claim sorts the queue: %q in the plan\n%s", line, text)
			}
		}
		for _, index := range c.indexes {
			if !strings.Contains(text, index) {
				t.Errorf("%s does not use %s:\n%s", c.name, index, text)
			}
		}
	}
}
