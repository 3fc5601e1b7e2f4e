package cxonepoll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/cxone"
	"github.com/ctibridge/ctibridge/store"
)

// API is the part of the CXone client the poller uses.
type API interface {
	ActiveContacts(ctx context.Context, updatedSince time.Time) (cxone.ActiveContacts, error)
	CompletedContacts(ctx context.Context, updatedSince time.Time) (cxone.CompletedContacts, error)
	ContactStateDescriptions(ctx context.Context) ([]cxone.ContactState, error)
}

// Store keeps the poller's lease and cursors (store.DB does).
type Store interface {
	AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	DropLease(ctx context.Context, name, owner string) error
	Meta(ctx context.Context, key string) (string, error)
	SetMetaUnderLease(ctx context.Context, lease, owner, key, value string) error
}

// Accept hands an event to the intake; nil means it is durable.
type Accept func(ctx context.Context, masterID string, ev ctibridge.Event) error

// Names in the store.
const (
	LeaseName       = "cxone-poll"
	ActiveCursor    = "cxone.active.cursor"
	CompletedCursor = "cxone.completed.cursor"
)

// clockMargin allows for this bridge's clock running ahead of CXone's when a
// cursor has to start from it.
const clockMargin = time.Minute

// ErrNotLeader is returned by Poll when another bridge holds the lease.
var ErrNotLeader = errors.New("cxonepoll: another bridge is polling CXone")

// Config configures a Poller. Zero values take the defaults noted.
type Config struct {
	API    API
	Store  Store
	Accept Accept
	Owner  string // this bridge's name for the lease; required

	Interval          time.Duration // between polls of contacts/active; default 2s
	CompletedInterval time.Duration // between polls of contacts/completed; default 10s
	Lease             time.Duration // lease length; default 5 × Interval, at least 10s
	MaxBackoff        time.Duration // longest wait after failures; default 1m
	Forget            time.Duration // how long a quiet call is remembered; default 1h

	Now     func() time.Time // default time.Now
	Observe func(PollInfo)   // metrics; optional
	Logger  *slog.Logger
}

// PollInfo describes one poll, for metrics and the console.
type PollInfo struct {
	Op       string        // active-contacts or completed-contacts
	Duration time.Duration // the API call
	Contacts int           // rows the poll returned
	Events   int           // events derived and accepted
	Lag      time.Duration // now minus the cursor after the poll
	Err      error
}

// Poller follows calls from the CXone APIs. Run polls until its context
// ends; Poll does one round (tests drive it with the simulator's clock).
type Poller struct {
	cfg       Config
	tracker   Tracker
	states    States
	seeded    bool // a full poll of contacts/active was applied since the lease was taken
	active    time.Time
	completed time.Time
	lastDone  time.Time // when contacts/completed was last polled
	log       *slog.Logger
}

// New checks cfg and builds a poller.
func New(cfg Config) (*Poller, error) {
	switch {
	case cfg.API == nil:
		return nil, errors.New("cxonepoll: a CXone client is needed")
	case cfg.Store == nil:
		return nil, errors.New("cxonepoll: a store is needed")
	case cfg.Accept == nil:
		return nil, errors.New("cxonepoll: an intake is needed")
	case cfg.Owner == "":
		return nil, errors.New("cxonepoll: an owner name is needed for the lease")
	case cfg.Interval < 0 || cfg.CompletedInterval < 0:
		return nil, errors.New("cxonepoll: poll intervals must be positive")
	}
	if cfg.Interval == 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.CompletedInterval == 0 {
		cfg.CompletedInterval = 10 * time.Second
	}
	if cfg.Lease <= 0 {
		cfg.Lease = max(5*cfg.Interval, 10*time.Second)
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.Forget <= 0 {
		cfg.Forget = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Poller{cfg: cfg, log: cfg.Logger}, nil
}

// Interval is the configured poll interval.
func (p *Poller) Interval() time.Duration { return p.cfg.Interval }

// Poll does one round: it takes (or renews) the lease, and on the first round
// after taking it reads the contact states and every active contact, then
// polls contacts/active since the stored cursor (and contacts/completed when
// due), hands the derived events to the intake and only then stores the new
// cursors. A round that fails stores nothing, so the next one repeats it;
// the intake recognises what was already accepted.
func (p *Poller) Poll(ctx context.Context) error {
	ok, err := p.cfg.Store.AcquireLease(ctx, LeaseName, p.cfg.Owner, p.cfg.Lease)
	if err != nil {
		return err
	}
	if !ok {
		p.seeded = false
		return ErrNotLeader
	}
	if !p.seeded {
		if err := p.seed(ctx); err != nil {
			return err
		}
	}
	if err := p.pollActive(ctx, p.active, true); err != nil {
		return err
	}
	if now := p.cfg.Now(); p.lastDone.IsZero() || now.Sub(p.lastDone) >= p.cfg.CompletedInterval {
		if err := p.pollCompleted(ctx); err != nil {
			return err
		}
		p.lastDone = now
	}
	p.tracker.Forget(p.cfg.Now().Add(-p.cfg.Forget))
	return nil
}

// seed reads the state names and the stored cursors, and applies a full poll
// of contacts/active so the tracker knows every live leg before it reads the
// changes since the cursor (a leg ending then is a transfer, not the end of
// the call, when another leg of it is live).
func (p *Poller) seed(ctx context.Context) error {
	ds, err := p.cfg.API.ContactStateDescriptions(ctx)
	if err != nil {
		return err
	}
	p.states = NewStates(ds)
	p.tracker = Tracker{}
	if p.active, err = p.cursor(ctx, ActiveCursor); err != nil {
		return err
	}
	if p.completed, err = p.cursor(ctx, CompletedCursor); err != nil {
		return err
	}
	full := p.active.IsZero()
	// The full poll moves the cursor only on the first start ever: otherwise
	// the changes since the stored cursor are still to be read.
	if err := p.pollActive(ctx, time.Time{}, full); err != nil {
		return err
	}
	if full {
		// First start ever: the full poll was the delta; contacts
		// completed from now on are the backstop's.
		p.completed = p.active
		if err := p.save(ctx, CompletedCursor, p.completed); err != nil {
			return err
		}
	}
	p.seeded = true
	p.log.Info("polling CXone", "activeCursor", p.active, "completedCursor", p.completed)
	return nil
}

func (p *Poller) cursor(ctx context.Context, key string) (time.Time, error) {
	v, err := p.cfg.Store.Meta(ctx, key)
	if err != nil || v == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("cxonepoll: stored %s %q is not a time", key, v)
	}
	return t, nil
}

func (p *Poller) save(ctx context.Context, key string, t time.Time) error {
	return p.cfg.Store.SetMetaUnderLease(ctx, LeaseName, p.cfg.Owner, key, t.UTC().Format(time.RFC3339Nano))
}

// pollActive polls contacts/active since since (zero: every live contact),
// feeds the events, and moves the active cursor forward if move.
func (p *Poller) pollActive(ctx context.Context, since time.Time, move bool) error {
	start := time.Now()
	res, err := p.cfg.API.ActiveContacts(ctx, since)
	info := PollInfo{Op: "active-contacts", Duration: time.Since(start), Contacts: len(res.Contacts), Err: err}
	if err != nil {
		p.observe(info)
		return err
	}
	legs := make([]Leg, 0, len(res.Contacts))
	for _, c := range res.Contacts {
		if l, ok := FromActive(p.states, c); ok {
			legs = append(legs, l)
		}
	}
	info.Events, err = p.feed(ctx, legs)
	next := res.LastPollTime
	if next.IsZero() {
		// A full poll with nothing live gives no poll time: start from a
		// little before this clock's now (what is read twice is a duplicate).
		next = p.cfg.Now().Add(-clockMargin)
	}
	if err == nil && move && next.After(p.active) {
		if err = p.save(ctx, ActiveCursor, next); err == nil {
			p.active = next
		}
	}
	info.Err = err
	info.Lag = p.cfg.Now().Sub(p.active)
	p.observe(info)
	return err
}

// pollCompleted polls contacts/completed since its cursor: it confirms
// releases and abandons and recovers calls that began and ended between two
// polls of contacts/active.
func (p *Poller) pollCompleted(ctx context.Context) error {
	if p.completed.IsZero() {
		p.completed = p.cfg.Now().Add(-clockMargin)
	}
	start := time.Now()
	res, err := p.cfg.API.CompletedContacts(ctx, p.completed)
	info := PollInfo{Op: "completed-contacts", Duration: time.Since(start), Contacts: len(res.Contacts), Err: err}
	if err != nil {
		p.observe(info)
		return err
	}
	legs := make([]Leg, 0, len(res.Contacts))
	for _, c := range res.Contacts {
		if isCall(c.MediaTypeID, c.MediaTypeName) && c.MasterContactID != 0 {
			legs = append(legs, FromCompleted(c))
		}
	}
	info.Events, err = p.feed(ctx, legs)
	if err == nil && res.LastPollTime.After(p.completed) {
		if err = p.save(ctx, CompletedCursor, res.LastPollTime); err == nil {
			p.completed = res.LastPollTime
		}
	}
	info.Err = err
	info.Lag = p.cfg.Now().Sub(p.completed)
	p.observe(info)
	return err
}

// feed applies legs to the tracker and hands the events to the intake. If
// the intake fails, the tracker is rebuilt at the next round (the cursor
// did not move, so the same rows come again).
func (p *Poller) feed(ctx context.Context, legs []Leg) (int, error) {
	emits := p.tracker.Apply(legs)
	for i, e := range emits {
		if err := p.cfg.Accept(ctx, e.Master, e.Event); err != nil {
			p.seeded = false
			return i, fmt.Errorf("cxonepoll: %s event for %s: %w", e.Event.Kind, e.Master, err)
		}
	}
	return len(emits), nil
}

func (p *Poller) observe(info PollInfo) {
	if p.cfg.Observe != nil {
		p.cfg.Observe(info)
	}
}

// Run polls every Interval until ctx ends. Failures are logged and waited
// out with exponential backoff (Interval doubling up to MaxBackoff); a bridge
// that is not the leader checks the lease again every Interval. On the way
// out it drops the lease so another bridge takes over at once.
func (p *Poller) Run(ctx context.Context) {
	defer func() {
		if err := p.cfg.Store.DropLease(context.WithoutCancel(ctx), LeaseName, p.cfg.Owner); err != nil {
			p.log.Warn("could not drop the CXone poll lease", "err", err)
		}
	}()
	wait := p.cfg.Interval
	failures := 0
	for {
		err := p.Poll(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil || errors.Is(err, ErrNotLeader):
			failures, wait = 0, p.cfg.Interval
		default:
			failures++
			wait = min(p.cfg.Interval<<min(failures, 16), p.cfg.MaxBackoff)
			level := slog.LevelWarn
			var ce *cxone.Error
			if errors.As(err, &ce) && !ce.Temporary() {
				level = slog.LevelError
			}
			if errors.Is(err, store.ErrLeaseLost) {
				p.seeded = false
			}
			p.log.Log(ctx, level, "CXone poll failed", "err", err, "failures", failures, "retryIn", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
