package cxone

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error is a failed CXone call. It carries what an operator needs to act
// (the operation, CXone's status and its error text) and what a caller needs
// to decide (Temporary, NotFound). It never holds the access key secret or a
// token.
type Error struct {
	Op       string // token, discovery, agent, active-contacts, completed-contacts, contact-states
	Status   int    // HTTP status; 0 when no reply came
	Code     string // CXone's "error" field
	Message  string // CXone's "error_description" (or "message")
	Attempts int    // attempts made, retries included
	Err      error  // transport or decoding cause, if any

	gen int // which token the request carried, so a 401 renews that one
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("cxone: ")
	b.WriteString(e.Op)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": %d", e.Status)
		if e.Code == "" && e.Message == "" {
			b.WriteString(" " + http.StatusText(e.Status))
		}
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(" (" + e.Message + ")")
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the same call may succeed later: no reply,
// timeouts, rate limiting and server errors. 400, 401, 403 and 404 are
// permanent (401 only once a fresh token was refused too).
func (e *Error) Temporary() bool {
	switch {
	case errors.Is(e.Err, errBadInput), errors.Is(e.Err, errConfig):
		return false
	case errors.Is(e.Err, errUnreadable):
		return true
	case e.Status == 0:
		return true
	case e.Status == http.StatusRequestTimeout, e.Status == http.StatusTooManyRequests, e.Status >= 500:
		return true
	}
	return false
}

// IsNotFound reports whether err says CXone has no such record (an agent id
// that does not exist).
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

var (
	errBadInput   = errors.New("invalid input")
	errConfig     = errors.New("configuration")
	errUnreadable = errors.New("not a CXone API answer")
)
