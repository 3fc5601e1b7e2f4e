package servicenow

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Error is a failed ServiceNow call. It carries what an operator needs to
// fix it (status, ServiceNow's message and detail, table and operation) and
// what a retry policy needs to decide (Temporary, RetryAfter). It never holds
// credentials.
type Error struct {
	Op         string // read, list, create, update, delete, oauth
	Table      string
	Status     int    // HTTP status; 0 for a transport failure
	Message    string // ServiceNow's error.message
	Detail     string // ServiceNow's error.detail
	RetryAfter time.Duration
	Err        error // transport or decoding cause, if any

	unsure  bool // the request may have been applied
	authGen int  // which OAuth token the request carried
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("servicenow: ")
	b.WriteString(e.Op)
	if e.Table != "" {
		b.WriteString(" " + e.Table)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": %d", e.Status)
		if e.Message == "" {
			b.WriteString(" " + http.StatusText(e.Status))
		}
	}
	if e.Message != "" {
		b.WriteString(" " + e.Message)
	}
	if e.Detail != "" {
		b.WriteString(" (" + e.Detail + ")")
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// MayHaveApplied reports whether the instance may have applied the request
// although the call failed: an attempt timed out, lost its connection after
// sending, or got a 5xx from a proxy. A refused connection or a 4xx never
// applied anything.
func (e *Error) MayHaveApplied() bool { return e.unsure }

// Temporary reports whether retrying the same call later can succeed:
// timeouts, rate limiting, server errors and transport failures. 400, 401,
// 403 and 404 are permanent (401 only after a fresh login was refused too).
func (e *Error) Temporary() bool {
	switch {
	case errors.Is(e.Err, errUnreadableReply):
		return true
	case e.Status == 0:
		return !errors.Is(e.Err, errConfig)
	case e.Status == http.StatusRequestTimeout, e.Status == http.StatusTooManyRequests:
		return true
	case e.Status >= 500:
		return true
	}
	return false
}

var (
	// ErrDuplicateSysID: an insert named a sys_id that already exists.
	ErrDuplicateSysID = errors.New("servicenow: a record with this sys_id exists")
	// ErrSysIDIgnored: the instance created the record under a sys_id of
	// its own instead of the one supplied (a business rule or an old
	// release). The record returned alongside is the one created.
	ErrSysIDIgnored = errors.New("servicenow: the instance ignored the supplied sys_id")
	// ErrUnconfirmed: a create was refused after an earlier attempt of the
	// same call may have succeeded, and the integration user may not read
	// the record to check. It is taken as created; the record returned
	// alongside holds only its sys_id.
	ErrUnconfirmed = errors.New("servicenow: create refused after an attempt of unknown outcome; the record cannot be read back to confirm it exists")

	// ErrRowsHidden: a table is readable but ACLs hide every matching row.
	ErrRowsHidden = errors.New("servicenow: every matching row is hidden by ACLs")

	errConfig          = errors.New("configuration")
	errUnreadableReply = errors.New("not a Table API answer")
)

// duplicateError is the instance's refusal of a create whose sys_id exists,
// as found by reading it back.
type duplicateError struct{ refused *Error }

func (e *duplicateError) Error() string {
	return e.refused.Error() + ": a record with this sys_id exists"
}
func (e *duplicateError) Unwrap() []error { return []error{e.refused, ErrDuplicateSysID} }
