// The retry policy: how a failure is classified, when to try again, and
// when to give up.

package lifecycle

import (
	"context"
	"errors"
	"math"
	mrand "math/rand/v2"
	"strings"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/store"
)

// failingFor reports how long the call has been failing, given the failed
// attempts before this one. Give-up counts from the first failure of the
// current run, not from the call's creation, so a backlog is not parked on
// its first error; a new event or an operator's retry resets attempts, and
// with them the count.
func (s *synced) failingFor(attemptsBefore int, now time.Time) time.Duration {
	if attemptsBefore == 0 || s.FailingSince.IsZero() {
		s.FailingSince = now
	}
	return now.Sub(s.FailingSince)
}

// stepError says which step failed.
type stepError struct {
	step ctibridge.Step
	err  error
}

func (e *stepError) Error() string {
	inner := e.err.Error()
	if strings.Contains(inner, string(e.step)) {
		return inner // "servicenow: create interaction: 403 ..." says it already
	}
	return string(e.step) + ": " + inner
}

func (e *stepError) Unwrap() error { return e.err }

func failed(st ctibridge.Step, err error) error { return &stepError{st, err} }

// wrapStep is failed for an error that may be nil.
func wrapStep(st ctibridge.Step, err error) error {
	if err == nil {
		return nil
	}
	return failed(st, err)
}

// fail records a failed attempt: ctx bounds the error-log write, attempt
// and leaseEnd the retries of the write that releases the call (see finish).
func (r *Reconciler) fail(ctx, attempt context.Context, leaseEnd time.Time, owner string, c *store.Contact, s synced, err error, start time.Time) error {
	f := classify(err)
	attempts := c.Attempts + 1
	park := f.permanent || s.failingFor(c.Attempts, r.now()) > r.cfg.GiveUpAfter
	next := r.now().Add(r.backoff(attempts, f.retryAfter))
	op := "sync interaction"
	var se *stepError
	if errors.As(err, &se) {
		op = string(se.step)
	}
	if park || attempts >= r.cfg.AlertAfter {
		_, _, lerr := r.db.RecordError(ctx, store.ErrorEntry{
			MasterID: c.MasterID, Operation: op, Severity: store.SeverityError, Status: f.status,
			Message: f.message, Detail: f.detail, Attempts: attempts, DedupeKey: "contact:" + c.MasterID,
		}, 365*24*time.Hour)
		if lerr != nil {
			r.log.Error("error log", "err", lerr)
		}
	}
	outcome := "retry"
	if park {
		outcome = "parked"
	}
	r.observe(outcome, start)
	r.log.Warn("sync failed", "contact", c.MasterID, "step", op, "attempt", attempts, "parked", park,
		"next", next.Format(time.RFC3339), "err", err)
	return r.finish(attempt, leaseEnd, func(wctx context.Context) error {
		return r.db.Defer(wctx, owner, c.MasterID, c.Version, s.encode(), err.Error(), next, park)
	})
}

// backoff is exponential with full jitter, never shorter than what ServiceNow
// asked for with Retry-After.
func (r *Reconciler) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := float64(r.cfg.MinBackoff) * math.Pow(2, float64(attempt-1))
	if d > float64(r.cfg.MaxBackoff) {
		d = float64(r.cfg.MaxBackoff)
	}
	wait := time.Duration(d/2 + mrand.Float64()*d/2)
	return max(wait, retryAfter)
}

// classify turns an error into what the retry policy and the error log need.
// Errors that are not ServiceNow's (store, context) are transient.
func classify(err error) failure {
	f := failure{message: err.Error()}
	var se *servicenow.Error
	if errors.As(err, &se) {
		f.status, f.message, f.detail = se.Status, se.Message, se.Detail
		f.permanent = !se.Temporary()
		f.retryAfter = se.RetryAfter
		if f.message == "" {
			f.message = se.Error()
		}
	}
	return f
}

// failure is an error as the retry policy and the error log see it.
type failure struct {
	status     int
	message    string
	detail     string
	permanent  bool
	retryAfter time.Duration
}
