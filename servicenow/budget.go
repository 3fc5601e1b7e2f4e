package servicenow

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"golang.org/x/time/rate"
)

// budget keeps the client under the instance's limits: a token bucket for
// the hourly request rate, an adaptive limit on requests in flight, and a
// shared back-off after a 429 so the whole client pauses, not just the one
// call.
//
// The concurrency limit is failsafe-go's adaptive limiter: it compares the
// latency of recent requests with a slowly moving baseline and raises the
// limit by one while they stay close (the instance is not queueing our
// requests), lowers it when latency grows, and never goes above
// MaxConcurrent. It learns only from latency, so refusals are ours to add:
// a 429, a 503 or a timeout means the instance is saturated now, and sends
// the limit back to where it started (startConcurrency, if it is above),
// from where it climbs again as replies come back quick.
type budget struct {
	limit    *rate.Limiter // rate.Inf when there is no hourly budget
	perHour  int           // in force: configured, or lowered to the instance's rule
	instance int           // the instance's X-RateLimit-Limit, 0 until seen
	conc     adaptivelimiter.AdaptiveLimiter[any]
	maxConc  int // MaxConcurrent: the most the limit may reach
	start    int // the limit at start and after a refusal
	inFlight atomic.Int64
	thrott   atomic.Int64
	overload atomic.Int64 // refusals and timeouts that cut the limit

	mu      sync.Mutex
	until   time.Time // no request before this (after a 429)
	minutes [60]int64 // requests per minute, ring
	stamp   [60]int64 // the minute each slot counts
}

// startConcurrency is the concurrency limit at start and after the instance
// refuses a request. The limit grows by one every two round trips or so: at
// 300 ms a request, from 16 to the 32 an instance might serve at once takes
// about 12 seconds (from 8 it took 20, a third of a 500-call burst). 16 is a
// quarter of the default cap; an instance that serves fewer at once queues
// them, which the limiter sees as latency and answers by going lower.
const startConcurrency = 16

func newBudget(perHour, burst, concurrent int, log *slog.Logger) *budget {
	start := min(startConcurrency, concurrent)
	b := &budget{perHour: perHour, maxConc: concurrent, start: start, limit: rate.NewLimiter(rate.Inf, max(burst, 1))}
	if perHour > 0 {
		b.limit.SetLimit(rate.Limit(float64(perHour) / 3600))
	}
	b.conc = adaptivelimiter.NewBuilder[any]().
		WithLimits(1, uint(concurrent), uint(start)).
		// A sample of thirty replies at least, over twice the quickest
		// reply (one round trip to send, one to see the effect): the limit
		// moves as fast as the instance answers, but not on noise. With
		// ten, the varying mix of requests (a create, an agent's user
		// record, each waiting for its turn at the instance) swung the
		// limit between 14 and 37 against an instance serving 32 at once,
		// which then did 62-76 % of the work it could; with thirty, 87 %.
		WithRecentWindow(0, 30*time.Second, 30).
		// Headroom not used is not kept: at most twice what was in flight,
		// but never below the start (little demand says nothing about the
		// instance).
		WithMaxLimitFunc(func(inflight int) float64 { return float64(max(start, 2*inflight)) }).
		WithLogger(log).
		Build()
	return b
}

// sizeTo follows the instance's rate-limit rule (X-RateLimit-Limit, requests
// an hour for this user): the budget is lowered to nine tenths of it when
// the configured one is higher or unlimited, so ctibridge slows down before
// the instance starts answering 429.
func (b *budget) sizeTo(instancePerHour int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if instancePerHour <= 0 || instancePerHour == b.instance {
		return
	}
	b.instance = instancePerHour
	if target := instancePerHour * 9 / 10; b.perHour == 0 || target < b.perHour {
		b.perHour = max(target, 1)
		b.limit.SetLimit(rate.Limit(float64(b.perHour) / 3600))
	}
}

// acquire waits for the back-off, a rate token for each of the n requests
// an HTTP request counts as (a batch counts its items), and one place under
// the concurrency limit; the permit it returns goes back through release.
func (b *budget) acquire(ctx context.Context, n int) (adaptivelimiter.Permit, error) {
	for {
		b.mu.Lock()
		wait := time.Until(b.until)
		b.mu.Unlock()
		if wait <= 0 {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	for left := n; left > 0; {
		k := min(left, b.limit.Burst()) // WaitN refuses more than the burst at once
		if err := b.limit.WaitN(ctx, k); err != nil {
			return nil, err
		}
		left -= k
	}
	p, err := b.conc.AcquirePermit(ctx)
	if err != nil {
		return nil, err
	}
	b.inFlight.Add(1)
	b.count(time.Now(), n)
	return p, nil
}

// outcome is what one attempt tells the concurrency limit.
type outcome int

const (
	replied    outcome = iota // a reply came: its latency counts
	noReply                   // no reply (refused connection, cancelled): says nothing of the instance's load
	overloaded                // 429, 503, or no reply in time: the instance is saturated
)

// release returns the attempt's permit and lets the limit learn from it.
func (b *budget) release(p adaptivelimiter.Permit, o outcome) {
	b.inFlight.Add(-1)
	switch o {
	case replied:
		p.Record()
	case noReply:
		p.Drop()
	case overloaded:
		p.Drop()
		b.overload.Add(1)
		// The limiter has no way to be told of a refusal but a reset to its
		// start; never one that raises the limit.
		if b.conc.Limit() > b.start {
			b.conc.Reset()
		}
	}
}

func (b *budget) count(now time.Time, n int) {
	m := now.Unix() / 60
	i := m % 60
	b.mu.Lock()
	if b.stamp[i] != m {
		b.stamp[i], b.minutes[i] = m, 0
	}
	b.minutes[i] += int64(n)
	b.mu.Unlock()
}

// throttled records a 429: every call waits until retryAfter has passed.
func (b *budget) throttled(d time.Duration) {
	b.thrott.Add(1)
	b.mu.Lock()
	if u := time.Now().Add(d); u.After(b.until) {
		b.until = u
	}
	b.mu.Unlock()
}

// BudgetStats is the client's use of its request budget, for metrics.
type BudgetStats struct {
	LimitPerHour     int       // budget in force; 0 = unlimited
	InstanceLimit    int       // the instance's rate-limit rule (X-RateLimit-Limit), 0 if none seen
	UsedLastHour     int64     // requests sent in the last 60 minutes, each item of a batch counted
	InFlight         int64     // HTTP requests in flight now (a batch is one)
	ConcurrencyLimit int       // requests allowed in flight now: the adaptive limit
	MaxConcurrent    int       // the most the limit may reach (MaxConcurrent)
	Overloaded       int64     // 429s, 503s and timeouts that cut the limit, since start
	BackoffUntil     time.Time // after a 429, no request before this
	Throttled429     int64     // 429 answers since start
}

// Budget reports the client's use of its request budget.
func (c *Client) Budget() BudgetStats {
	b := c.budget
	now := time.Now().Unix() / 60
	s := BudgetStats{InFlight: b.inFlight.Load(), ConcurrencyLimit: b.conc.Limit(), MaxConcurrent: b.maxConc,
		Overloaded: b.overload.Load(), Throttled429: b.thrott.Load()}
	b.mu.Lock()
	s.LimitPerHour, s.InstanceLimit = b.perHour, b.instance
	for i := range b.minutes {
		if now-b.stamp[i] < 60 {
			s.UsedLastHour += b.minutes[i]
		}
	}
	s.BackoffUntil = b.until
	b.mu.Unlock()
	return s
}
