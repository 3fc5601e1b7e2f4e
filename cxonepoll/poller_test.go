package cxonepoll_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/cxone"
	"github.com/ctibridge/ctibridge/cxonepoll"
	"github.com/ctibridge/ctibridge/cxonesim"
	"github.com/ctibridge/ctibridge/lifecycle"
	"github.com/ctibridge/ctibridge/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	sim    *cxonesim.Server
	clock  *clock
	client *cxone.Client
	db     *store.DB
	intake *lifecycle.Intake
}

func setup(t *testing.T) *env {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	sim := cxonesim.New(cxonesim.Options{Now: clk.Now, TokenTTL: 1000 * time.Hour})
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	c, err := cxone.New(cxone.Config{AccessKeyID: cxonesim.DefaultAccessKeyID, AccessKeySecret: cxonesim.DefaultAccessKeySecret,
		APIBase: ts.URL, Retry: cxone.RetryPolicy{Attempts: 1}, RequestsPerMinute: -1})
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "ctibridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pop, _ := ctibridge.NewScreenPop("https://example.service-now.com", "")
	return &env{sim: sim, clock: clk, client: c, db: db, intake: lifecycle.NewIntake(db, lifecycle.Config{Namespace: "test"}, pop, nil)}
}

func (e *env) poller(t *testing.T, owner string) *cxonepoll.Poller {
	t.Helper()
	p, err := cxonepoll.New(cxonepoll.Config{API: e.client, Store: e.db, Owner: owner, Now: e.clock.Now,
		Accept: func(ctx context.Context, m string, ev ctibridge.Event) error {
			_, err := e.intake.Accept(ctx, m, ev)
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// kinds lists a call's stored events as kind:contact[:agent], sorted by the store.
func (e *env) kinds(t *testing.T, master int64) map[string]int {
	t.Helper()
	_, evs, err := e.db.Contact(context.Background(), fmt.Sprint(master))
	if err != nil {
		t.Fatalf("call %d: %v", master, err)
	}
	out := map[string]int{}
	for _, ev := range evs {
		out[ev.DedupeKey]++
	}
	return out
}

// 1,000 generated calls (answered, transferred, abandoned, shorter than the
// poll interval) played by the simulator while the bridge polls every 2s and
// is restarted now and then: every call ends with exactly its events, none
// missing, none twice.
func TestNoCallLostOrDoubledAcrossRestarts(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	type want struct {
		master int64
		keys   []string
	}
	var calls []want
	p := e.poller(t, "bridge-1")
	restarts := 0
	for i := 0; i < 1000; i++ {
		sc := cxonesim.Script{ANI: fmt.Sprintf("801555%04d", i), QueueFor: time.Duration(rng.IntN(8000)) * time.Millisecond}
		kind := rng.IntN(4)
		switch kind {
		case 0:
			sc.Abandon = true
		case 1:
			sc.AgentID, sc.TalkFor = 1001, time.Duration(1+rng.IntN(1500))*time.Millisecond // shorter than a poll
			sc.QueueFor = time.Duration(rng.IntN(300)) * time.Millisecond
		case 2:
			sc.AgentID, sc.TalkFor = 1002, time.Duration(10+rng.IntN(50))*time.Second
			sc.TransferTo = &cxonesim.Transfer{AgentID: 1003, After: 5 * time.Second}
		default:
			sc.AgentID, sc.TalkFor = 1004, time.Duration(3+rng.IntN(60))*time.Second
		}
		m, err := e.sim.AddCall(sc)
		if err != nil {
			t.Fatal(err)
		}
		w := want{master: m, keys: []string{"queued:" + fmt.Sprint(m), "released"}}
		switch kind {
		case 1:
			w.keys = append(w.keys, fmt.Sprintf("answered:%d:1001", m))
		case 2:
			w.keys = append(w.keys, fmt.Sprintf("answered:%d:1002", m), fmt.Sprintf("transferred:%d:1003", m+1))
		case 3:
			w.keys = append(w.keys, fmt.Sprintf("answered:%d:1004", m))
		}
		calls = append(calls, w)
		e.clock.Add(time.Duration(rng.IntN(700)) * time.Millisecond)
		if i%3 == 0 {
			e.clock.Add(2 * time.Second)
			if err := p.Poll(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if i%97 == 96 { // the bridge restarts: a new poller, the same database
			restarts++
			e.clock.Add(time.Duration(rng.IntN(20)) * time.Second)
			p = e.poller(t, "bridge-1")
		}
	}
	for range 100 { // let every call end and be reported
		e.clock.Add(2 * time.Second)
		if err := p.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	lost, doubled := 0, 0
	for _, w := range calls {
		got := e.kinds(t, w.master)
		for _, k := range w.keys {
			if got[k] != 1 {
				lost++
				t.Errorf("call %d: event %s stored %d times; all: %v", w.master, k, got[k], got)
			}
		}
		if len(got) != len(w.keys) {
			doubled++
			t.Errorf("call %d: events %v, want exactly %v", w.master, got, w.keys)
		}
	}
	if restarts < 10 {
		t.Fatalf("only %d restarts", restarts)
	}
	t.Logf("%d calls, %d restarts: %d lost, %d with extra events", len(calls), restarts, lost, doubled)
}

// With several bridges on one database exactly one polls; when it stops
// renewing its lease (it died), another takes over and carries on from the
// stored cursor.
func TestOnePollerAtATime(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	a, b := e.poller(t, "bridge-a"), e.poller(t, "bridge-b")
	if err := a.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := e.sim.AddCall(cxonesim.Script{ANI: "8013203420", AgentID: 1001, QueueFor: time.Second, TalkFor: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Poll(ctx); err != cxonepoll.ErrNotLeader {
		t.Fatalf("second bridge polled while the first holds the lease: %v", err)
	}
	e.clock.Add(2 * time.Second)
	if err := a.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.kinds(t, m); got[fmt.Sprintf("answered:%d:1001", m)] != 1 {
		t.Fatalf("after the leader's poll: %v", got)
	}
	// a dies: no more renewals. The store's lease is on the real clock
	// here (SQLite, this process), so b waits for it, as it would.
	if err := e.db.DropLease(ctx, cxonepoll.LeaseName, "bridge-a"); err != nil { // as when a stops cleanly
		t.Fatal(err)
	}
	e.clock.Add(40 * time.Second)
	if err := b.Poll(ctx); err != nil {
		t.Fatalf("the other bridge did not take over: %v", err)
	}
	if got := e.kinds(t, m); got["released"] != 1 || len(got) != 3 {
		t.Fatalf("after the takeover: %v", got)
	}
	if err := a.Poll(ctx); err != cxonepoll.ErrNotLeader {
		t.Fatalf("the old leader polled again: %v", err)
	}
}
