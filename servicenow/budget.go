package servicenow

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// budget keeps the client under the instance's limits: a token bucket for
// the hourly request rate, a semaphore for concurrency, and a shared
// back-off after a 429 so the whole client pauses, not just the one call.
type budget struct {
	limit    *rate.Limiter // rate.Inf when there is no hourly budget
	perHour  int           // in force: configured, or lowered to the instance's rule
	instance int           // the instance's X-RateLimit-Limit, 0 until seen
	sem      chan struct{}
	inFlight atomic.Int64
	thrott   atomic.Int64

	mu      sync.Mutex
	until   time.Time // no request before this (after a 429)
	minutes [60]int64 // requests per minute, ring
	stamp   [60]int64 // the minute each slot counts
}

func newBudget(perHour, burst, concurrent int) *budget {
	b := &budget{perHour: perHour, sem: make(chan struct{}, concurrent), limit: rate.NewLimiter(rate.Inf, max(burst, 1))}
	if perHour > 0 {
		b.limit.SetLimit(rate.Limit(float64(perHour) / 3600))
	}
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

// acquire waits for the back-off, a rate token and a concurrency slot.
func (b *budget) acquire(ctx context.Context) error {
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
			return ctx.Err()
		case <-t.C:
		}
	}
	if err := b.limit.Wait(ctx); err != nil {
		return err
	}
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.inFlight.Add(1)
	b.count(time.Now())
	return nil
}

func (b *budget) release() {
	b.inFlight.Add(-1)
	<-b.sem
}

func (b *budget) count(now time.Time) {
	m := now.Unix() / 60
	i := m % 60
	b.mu.Lock()
	if b.stamp[i] != m {
		b.stamp[i], b.minutes[i] = m, 0
	}
	b.minutes[i]++
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
	LimitPerHour  int       // budget in force; 0 = unlimited
	InstanceLimit int       // the instance's rate-limit rule (X-RateLimit-Limit), 0 if none seen
	UsedLastHour  int64     // requests sent in the last 60 minutes
	InFlight      int64     // requests in flight now
	MaxConcurrent int       // concurrency cap
	BackoffUntil  time.Time // after a 429, no request before this
	Throttled429  int64     // 429 answers since start
}

// Budget reports the client's use of its request budget.
func (c *Client) Budget() BudgetStats {
	b := c.budget
	now := time.Now().Unix() / 60
	s := BudgetStats{InFlight: b.inFlight.Load(), MaxConcurrent: cap(b.sem), Throttled429: b.thrott.Load()}
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
