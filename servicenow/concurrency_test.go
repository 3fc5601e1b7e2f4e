package servicenow_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/snowsim"
)

// inMemory hands requests to a handler in the same process, so that a test
// running in a synctest bubble sees the simulator's latency on the bubble's
// clock. A request whose context ends first fails as it would on the wire.
type inMemory struct {
	h       http.Handler
	serving sync.WaitGroup
}

func (t *inMemory) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	t.serving.Go(func() {
		defer close(done)
		t.h.ServeHTTP(rec, r)
	})
	select {
	case <-done:
		return rec.Result(), nil
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
}

// load is a busy bridge: callers goroutines asking for one record each, again
// and again, until stopped.
type load struct {
	stop func()
	wg   sync.WaitGroup

	mu   sync.Mutex
	peak int64 // most requests seen in flight at once
	over bool  // more in flight than the limit allowed
}

func startLoad(c *servicenow.Client, id string, callers int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{stop: cancel}
	for range callers {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				c.Get(ctx, "sys_user", id)
				b := c.Budget()
				l.mu.Lock()
				l.peak = max(l.peak, b.InFlight)
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *load) end() {
	l.stop()
	l.wg.Wait()
}

// waitFor polls cond on the bubble's clock until it holds, failing after a
// minute of simulated time.
func waitFor(t *testing.T, what string, c *servicenow.Client, cond func(servicenow.BudgetStats) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond(c.Budget()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute; budget %+v", what, c.Budget())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConcurrencyAdapts: the client starts at 16 requests in flight, grows
// to MaxConcurrent while the instance answers as quickly as ever, and falls
// back when the instance slows down, refuses (429, 503) or does not answer
// in time; after each it grows again. The simulator's clock is the bubble's,
// so a minute of load takes seconds.
func TestConcurrencyAdapts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const quick = 50 * time.Millisecond
		sim := snowsim.New(snowsim.Options{})
		id := sim.Records("sys_user")[0]["sys_id"]
		sim.SetFaults(snowsim.Faults{Latency: quick})
		tr := &inMemory{h: sim}
		defer tr.serving.Wait()
		c, err := servicenow.New(servicenow.Config{Instance: "https://acme.service-now.com", Auth: basic, RequestsPerHour: -1,
			HTTPClient: &http.Client{Transport: tr}, Timeout: 2 * time.Second, Retry: servicenow.RetryPolicy{Attempts: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if b := c.Budget(); b.ConcurrencyLimit != 16 || b.MaxConcurrent != 64 {
			t.Fatalf("at start: limit %d of %d, want 16 of 64", b.ConcurrencyLimit, b.MaxConcurrent)
		}
		l := startLoad(c, id, 100)
		defer l.end()
		grown := func(b servicenow.BudgetStats) bool { return b.ConcurrencyLimit == 64 }
		waitFor(t, "limit grows to MaxConcurrent while replies stay quick", c, grown)

		sim.SetFaults(snowsim.Faults{Latency: 3 * quick})
		waitFor(t, "limit falls when the instance slows down", c, func(b servicenow.BudgetStats) bool { return b.ConcurrencyLimit <= 60 })
		waitFor(t, "limit grows again once the slower replies are the norm", c, grown)
		sim.SetFaults(snowsim.Faults{Latency: quick})

		// A refusal sends the limit back to its start (16); it grows by one
		// every two round trips, so a limit of 20 at most shows the cut.
		cut := func(b servicenow.BudgetStats) bool { return b.ConcurrencyLimit <= 20 }
		for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
			before := c.Budget().Overloaded
			sim.SetFaults(snowsim.Faults{Latency: quick, FailNext: &snowsim.FailNext{Count: 3, Status: status}})
			waitFor(t, fmt.Sprintf("three %ds counted and the limit cut", status), c, func(b servicenow.BudgetStats) bool {
				return b.Overloaded == before+3 && cut(b)
			})
			waitFor(t, fmt.Sprintf("limit grows again after %d", status), c, grown)
		}
		if b := c.Budget(); b.Throttled429 != 3 {
			t.Errorf("429s counted: %d, want 3", b.Throttled429)
		}

		sim.SetFaults(snowsim.Faults{Latency: 3 * time.Second}) // beyond the client's 2s timeout
		waitFor(t, "limit cut when requests time out", c, cut)
		sim.SetFaults(snowsim.Faults{Latency: quick})
		waitFor(t, "limit grows again after timeouts", c, grown)
		l.end()
		if l.peak > 64 {
			t.Errorf("%d requests in flight at once, MaxConcurrent is 64", l.peak)
		}
	})
}
