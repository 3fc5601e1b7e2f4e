package servicenow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Request is one Table API request to send with Client.Batch, built with
// ListRequest, GetRequest or InsertRequest. Once sent, Records or Record
// give exactly what List, Get or Insert would have returned: the same
// records, the same errors. A Request is sent once and read by one
// goroutine.
type Request struct {
	cl *call
	// settle turns the call's outcome into the request's result; it may ask
	// the instance more (a create refused as a duplicate reads the sys_id
	// back).
	settle func(ctx context.Context, c *Client, err error) error
	rec    Record
	recs   []Record
	err    error
	done   bool
}

// errNotSent: a request read before it was sent.
var errNotSent = errors.New("servicenow: request not sent yet")

// Records returns a list request's records, or why there are none.
func (r *Request) Records() ([]Record, error) {
	if !r.done {
		return nil, errNotSent
	}
	return r.recs, r.err
}

// Record returns a get or insert request's record, or why there is none
// (an insert may return both: see Client.Insert).
func (r *Request) Record() (Record, error) {
	if !r.done {
		return nil, errNotSent
	}
	return r.rec, r.err
}

// Sent reports whether the request has its result.
func (r *Request) Sent() bool { return r.done }

// refused is a request that is wrong before it is sent.
func refused(err error) *Request { return &Request{err: err, done: true} }

// ListRequest is List as a Request.
func ListRequest(table string, opts ListOptions) *Request {
	r := &Request{}
	r.cl = &call{op: "list", method: http.MethodGet, table: table, query: opts.values(), out: &r.recs, safe: true}
	r.settle = func(_ context.Context, _ *Client, err error) error {
		switch {
		case err != nil:
			r.recs = nil
			return err
		case !opts.NoCount && opts.Offset == 0 && len(r.recs) == 0 && r.cl.total > 0:
			r.recs = nil
			return &Error{Op: "list", Table: table, Status: http.StatusOK, Message: "rows hidden",
				Detail: fmt.Sprintf("%d records match, but ACLs hide every one from the integration user", r.cl.total), Err: ErrRowsHidden}
		}
		return nil
	}
	return r
}

// GetRequest is Get as a Request.
func GetRequest(table, sysID string) *Request {
	if err := checkSysID(table, sysID); err != nil {
		return refused(err)
	}
	r := &Request{}
	r.cl = &call{op: "read", method: http.MethodGet, table: table, sysID: sysID, out: &r.rec, safe: true}
	r.settle = func(_ context.Context, _ *Client, err error) error {
		if err != nil {
			r.rec = nil
		}
		return err
	}
	return r
}

// InsertRequest is Insert as a Request.
func InsertRequest(table string, fields map[string]string, opts InsertOptions) *Request {
	body := make(map[string]string, len(fields)+1)
	for k, v := range fields {
		body[k] = v
	}
	if opts.SysID != "" {
		if err := checkSysID(table, opts.SysID); err != nil {
			return refused(err)
		}
		body["sys_id"] = opts.SysID
	}
	r := &Request{}
	r.cl = &call{op: "create", method: http.MethodPost, table: table, body: body, out: &r.rec, safe: opts.SysID != ""}
	if !opts.WholeRecord {
		r.cl.query = writeReply(body)
	}
	r.settle = func(ctx context.Context, c *Client, err error) error {
		var se *Error
		if opts.SysID != "" && errors.As(err, &se) && (se.Status == http.StatusForbidden || se.Status == http.StatusConflict) {
			r.rec, err = c.existing(ctx, table, opts.SysID, r.cl.ambiguous() || opts.MayExist, se)
			return err
		}
		if err != nil {
			r.rec = nil
			return err
		}
		if opts.SysID != "" && r.rec.SysID() != opts.SysID {
			return fmt.Errorf("%w: asked for %s, got %s in %s", ErrSysIDIgnored, opts.SysID, r.rec.SysID(), table)
		}
		return nil
	}
	return r
}

// send sends one request on its own.
func (c *Client) send(ctx context.Context, r *Request) {
	if !r.done {
		c.settle(ctx, r, c.do(ctx, r.cl))
	}
}

// settle records a request's result from its call's outcome.
func (c *Client) settle(ctx context.Context, r *Request, err error) {
	r.err, r.done = r.settle(ctx, c, err), true
}
