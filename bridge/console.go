package bridge

import (
	"context"
	"net/http"
	"time"

	"github.com/ctibridge/ctibridge/console"
	"github.com/ctibridge/ctibridge/lifecycle"
)

// consoleSource lets the console read and act on the bridge.
type consoleSource struct{ b *Bridge }

func (s consoleSource) Calls(ctx context.Context, f lifecycle.CallFilter) ([]lifecycle.Status, error) {
	return s.b.Intake.Calls(ctx, f)
}

func (s consoleSource) Errors(ctx context.Context, f lifecycle.ErrorFilter) ([]lifecycle.ErrorEntry, error) {
	return s.b.Errors.List(ctx, f)
}

func (s consoleSource) RetryError(ctx context.Context, id int64) (int, error) {
	return s.b.Errors.Retry(ctx, id)
}

func (s consoleSource) RetryMatching(ctx context.Context, f lifecycle.ErrorFilter) (int, error) {
	return s.b.Errors.RetryMatching(ctx, f)
}

func (s consoleSource) Queue(ctx context.Context) (lifecycle.QueueCounts, error) {
	return s.b.DB.Counts(ctx)
}

func (s consoleSource) RecordURL(sysID string) string { return s.b.pop.URL(sysID) }

func (s consoleSource) Chart(now time.Time, minutes int) []console.Point {
	pts := s.b.ops.metrics.recent.last(now, minutes)
	out := make([]console.Point, len(pts))
	for i, p := range pts {
		out[i] = console.Point{Minute: time.Unix(p.minute*60, 0).UTC(), Calls: p.calls, Requests: p.requests, Errors: p.errors}
		if p.requests > 0 {
			out[i].Latency = p.latency / time.Duration(p.requests)
		}
	}
	return out
}

func (s consoleSource) Budget() console.Budget {
	bs := s.b.SN.Budget()
	return console.Budget{LimitPerHour: bs.LimitPerHour, UsedLastHour: int(bs.UsedLastHour), InFlight: int(bs.InFlight),
		ConcurrencyLimit: bs.ConcurrencyLimit, MaxConcurrent: bs.MaxConcurrent, Throttled429: bs.Throttled429, BackoffUntil: bs.BackoffUntil}
}

// consoleHandler is the console, or a page saying how to enable it.
func (b *Bridge) consoleHandler() http.Handler {
	if b.cfg.Console.Password.IsZero() {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "The console is off: set console.password or CTIBRIDGE_CONSOLE_PASSWORD.", http.StatusNotFound)
		})
	}
	return console.New(consoleSource{b}, b.consoleLogin)
}
