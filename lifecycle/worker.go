// The worker loop: claiming due calls under a lease, one attempt each,
// recording the outcome, and housekeeping.

package lifecycle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/store"
)

// Reconciler runs the workers that bring ServiceNow in line with the calls in
// the store. It is level-triggered: it compares what the events ask for with
// what ServiceNow is known to hold and does what is missing, so duplicate,
// late and out-of-order events are harmless by construction.
type Reconciler struct {
	cfg     Config
	db      *store.DB
	sn      tableAPI
	callers ctibridge.CallerFinder
	agents  ctibridge.AgentFinder
	warn    ctibridge.Warner
	log     *slog.Logger
	norm    func(ani string) string
	obs     Observer
	owner   string
	wake    chan struct{}
	synced  waiters // requests waiting for a call to reach ServiceNow
	now     func() time.Time
}

// NewReconciler builds a reconciler; call Run to start its workers.
func NewReconciler(cfg Config, d Deps) *Reconciler {
	cfg.defaults()
	b := make([]byte, 6)
	rand.Read(b)
	r := &Reconciler{
		cfg: cfg, db: d.DB, sn: snowClient{d.SN}, callers: d.Callers, agents: d.Agents, obs: d.Observer,
		norm: d.Normalize, log: d.Logger, owner: "w-" + hex.EncodeToString(b), wake: make(chan struct{}, 1), now: time.Now,
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.warn = DBWarner{DB: d.DB, Log: r.log}
	return r
}

// Wake tells idle workers that work may be due (an event was just accepted).
func (r *Reconciler) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx is cancelled, then gives running attempts
// ShutdownGrace to finish, cancels the rest (their calls are released, due
// at once), and returns.
func (r *Reconciler) Run(ctx context.Context) error {
	if r.db.Dialect() == "sqlite" {
		// A SQLite file has one bridge: leases left by a killed process are ours.
		if err := r.db.ReleaseLeases(ctx, r.owner); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.housekeep(ctx)
	}()
	attempts, cancelAttempts := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelAttempts()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(r.cfg.ShutdownGrace, cancelAttempts)
		context.AfterFunc(attempts, func() { t.Stop() })
	})
	defer stop()
	for i := range r.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(ctx, attempts, fmt.Sprintf("%s-%d", r.owner, i))
		}()
	}
	wg.Wait()
	return nil
}

// housekeepEvery is how often quiet warnings are resolved and old calls
// purged.
const housekeepEvery = 5 * time.Minute

// housekeep resolves warnings that have not recurred for their window, and
// deletes finished calls and resolved error entries older than the
// retention, at start and then every few minutes, until ctx ends.
func (r *Reconciler) housekeep(ctx context.Context) {
	t := time.NewTicker(housekeepEvery)
	defer t.Stop()
	for {
		if n, err := r.db.ResolveQuietWarnings(ctx, r.now().Add(-r.cfg.WarnWindow)); err != nil && ctx.Err() == nil {
			r.log.Error("resolve warnings", "err", err)
		} else if n > 0 {
			r.log.Info("warnings resolved: not seen again within their window", "count", n, "window", r.cfg.WarnWindow)
		}
		if r.cfg.Retention > 0 {
			calls, entries, err := r.db.Purge(ctx, r.now().Add(-r.cfg.Retention))
			switch {
			case err != nil && ctx.Err() == nil:
				r.log.Error("purge", "err", err)
			case calls+entries > 0:
				r.log.Info("purged", "calls", calls, "error_entries", entries, "older_than", r.cfg.Retention)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// work claims and reconciles calls until ctx ends; attempts run under
// attempts, which outlives ctx by the shutdown grace.
func (r *Reconciler) work(ctx, attempts context.Context, owner string) {
	ticker := time.NewTicker(r.cfg.PollInterval)
	defer ticker.Stop()
	for ctx.Err() == nil {
		did, err := r.RunOnce(attempts, owner)
		if err != nil {
			r.log.Error("reconcile", "err", err)
		}
		if did {
			continue
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-ticker.C:
		}
	}
}

// storeTimeout bounds the store write that ends an attempt. It runs even
// when the attempt was cancelled, so the call's lease is released.
const storeTimeout = 5 * time.Second

// RunOnce claims one due contact and reconciles it. It reports whether there
// was one. The attempt is bounded by JobTimeout and by ctx; whatever ends
// it, its outcome is recorded and the lease released.
func (r *Reconciler) RunOnce(ctx context.Context, owner string) (bool, error) {
	c, evs, err := r.db.Claim(ctx, owner, r.cfg.Lease)
	if err != nil || c == nil {
		return false, err
	}
	start := r.now()
	leaseEnd := start.Add(r.cfg.Lease)
	jctx, cancel := context.WithTimeout(ctx, r.cfg.JobTimeout)
	defer cancel()
	s, err := decodeSynced(c.Synced)
	if c.Interrupted {
		s.takeOver()
	}
	if err == nil {
		var call ctibridge.Call
		call, err = summarize(c.MasterID, evs)
		if err == nil {
			save := func(s synced) error { return r.db.Checkpoint(jctx, owner, c.MasterID, s.encode()) }
			s, err = r.sync(jctx, c.MasterID, c.SysID, call, s, save)
		}
	}
	s.Tried = true
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer scancel()
	if err == nil {
		s.FailingSince = time.Time{}
		if derr := r.finish(ctx, leaseEnd, func(wctx context.Context) error {
			return r.db.Done(wctx, owner, c.MasterID, c.Version, s.encode())
		}); derr != nil {
			return true, derr
		}
		r.synced.notify(c.MasterID)
		if c.Attempts > 0 || c.LastError != "" {
			// It had failed (an operator's retry resets attempts but
			// not the last error): its error-log entries are resolved.
			if rerr := r.db.ResolveErrors(sctx, c.MasterID); rerr != nil {
				r.log.Error("error log: resolve", "contact", c.MasterID, "err", rerr)
			}
		}
		r.observe("synced", start)
		r.log.Info("synced", "contact", c.MasterID, "sys_id", s.SysID, "number", s.Number, "version", c.Version)
		return true, nil
	}
	if ctx.Err() != nil {
		// Shut down mid-attempt: not the call's failure. It is released
		// and due at once, for the next start or another bridge.
		r.log.Info("attempt interrupted by shutdown", "contact", c.MasterID)
		return true, r.finish(ctx, leaseEnd, func(wctx context.Context) error {
			return r.db.Defer(wctx, owner, c.MasterID, c.Version, s.encode(), "interrupted by shutdown: "+err.Error(), r.now(), false)
		})
	}
	return true, r.fail(sctx, ctx, leaseEnd, owner, c, s, err, start)
}

// finish runs the store write that ends an attempt (Done or Defer), which
// also releases the lease, each try bounded by storeTimeout. If the database
// refuses it (a full disk, a PostgreSQL restart), it is tried again while
// the lease lasts and attempt (the attempt's context) is not cancelled:
// given up, the call would wait for its lease to expire (Lease, 2 minutes by
// default) before any worker took it again, though the database came back
// long before.
func (r *Reconciler) finish(attempt context.Context, leaseEnd time.Time, write func(context.Context) error) error {
	const firstDelay = 50 * time.Millisecond
	delay := firstDelay
	for {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(attempt), storeTimeout)
		err := write(wctx)
		cancel()
		if err == nil || errors.Is(err, store.ErrLeaseLost) || r.now().Add(delay).After(leaseEnd) {
			return err
		}
		if delay == firstDelay {
			r.log.Warn("store write failed; trying again while the lease lasts", "err", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-attempt.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

func (r *Reconciler) observe(outcome string, start time.Time) {
	if r.obs != nil {
		r.obs.JobDone(outcome, r.now().Sub(start))
	}
}

// Agents returns the agent finder in use.
func (r *Reconciler) Agents() ctibridge.AgentFinder { return r.agents }

// Callers returns the caller finder in use (nil when identification is off).
func (r *Reconciler) Callers() ctibridge.CallerFinder { return r.callers }
