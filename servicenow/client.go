// Package servicenow is ctibridge's one door to a ServiceNow instance's
// Table API: typed records, an encoded-query builder that escapes values,
// basic and OAuth authentication, short retries that are safe for creates,
// and a request budget that keeps a busy bridge under the instance's limits.
package servicenow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Config configures a Client. Zero values take the defaults noted.
type Config struct {
	Instance string // https://acme.service-now.com
	Auth     Auth

	RequestsPerHour int // request budget; default 10000, -1 = unlimited
	Burst           int // requests allowed at once above the rate; default 20
	// MaxConcurrent bounds requests in flight at once (default 64). Within
	// it the client adapts: it starts at 16, sends more while the instance
	// answers as quickly as before, and fewer when replies slow down or it
	// refuses (429, 503) or times out.
	MaxConcurrent int

	Timeout    time.Duration // per attempt; default 10s
	Retry      RetryPolicy
	HTTPClient *http.Client // default: a keep-alive client sized to MaxConcurrent
	Logger     *slog.Logger // default: discard
	UserAgent  string

	// Observe, if set, is told about every request (metrics).
	Observe func(RequestInfo)
}

// RetryPolicy bounds the client's own short retries of transient failures.
// Longer outages are the caller's business (the reconciler's backoff).
type RetryPolicy struct {
	Attempts      int           // total attempts; default 3
	Base          time.Duration // first backoff; default 200ms
	Max           time.Duration // backoff cap; default 2s
	MaxRetryAfter time.Duration // longest Retry-After waited in-process; default 10s
}

// RequestInfo describes one request, for metrics.
type RequestInfo struct {
	Op       string // read, list, create, update, delete, oauth
	Table    string
	Method   string
	Status   int // 0 = no reply
	Duration time.Duration
	Err      error
}

// Client talks to one instance. It is safe for concurrent use.
type Client struct {
	cfg    Config
	base   *url.URL
	hc     *http.Client
	log    *slog.Logger
	budget *budget
	tokens *tokens
	basic  string
}

// New checks cfg and builds a client. It does not contact the instance.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.Instance, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("servicenow: instance %q: want a URL like https://acme.service-now.com", cfg.Instance)
	}
	if err := cfg.Auth.check(); err != nil {
		return nil, fmt.Errorf("servicenow: %w", err)
	}
	if cfg.RequestsPerHour == 0 {
		cfg.RequestsPerHour = 10000
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 20
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	r := &cfg.Retry
	if r.Attempts <= 0 {
		r.Attempts = 3
	}
	if r.Base <= 0 {
		r.Base = 200 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 2 * time.Second
	}
	if r.MaxRetryAfter <= 0 {
		r.MaxRetryAfter = 10 * time.Second
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "ctibridge"
	}
	c := &Client{cfg: cfg, base: u, hc: cfg.HTTPClient, log: cfg.Logger}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.MaxConcurrent
		tr.MaxConnsPerHost = cfg.MaxConcurrent * 2
		tr.IdleConnTimeout = 90 * time.Second
		// The jar keeps the instance's session cookie: without it every
		// request opens a new session on the instance (KB0657578), which
		// under load ends in 401s and 429s.
		jar, _ := cookiejar.New(nil)
		c.hc = &http.Client{Transport: tr, Jar: jar}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.budget = newBudget(max(0, cfg.RequestsPerHour), cfg.Burst, cfg.MaxConcurrent, c.log)
	switch cfg.Auth.Method {
	case AuthBasic:
		c.basic = "Basic " + basicToken(cfg.Auth.Username, cfg.Auth.Password.Reveal())
	default:
		c.tokens = newTokens(c, u.String()+"/oauth_token.do")
	}
	return c, nil
}

// Instance returns the instance URL, without a trailing slash.
func (c *Client) Instance() string { return c.base.String() }

func (c *Client) observe(ri RequestInfo) {
	if c.cfg.Observe != nil {
		c.cfg.Observe(ri)
	}
}

// ListOptions shape a list call.
type ListOptions struct {
	Query                string   // encoded query, e.g. from Query().…Encode()
	Fields               []string // sysparm_fields; empty = all
	Limit                int      // sysparm_limit; 0 = the instance's default
	Offset               int
	DisplayValue         string // "", "true", "false" or "all"
	ExcludeReferenceLink bool
	NoCount              bool // sysparm_no_count: skip the total count
}

func (o ListOptions) values() url.Values {
	v := url.Values{}
	if o.Query != "" {
		v.Set("sysparm_query", o.Query)
	}
	if len(o.Fields) > 0 {
		v.Set("sysparm_fields", strings.Join(o.Fields, ","))
	}
	if o.Limit > 0 {
		v.Set("sysparm_limit", strconv.Itoa(o.Limit))
	}
	if o.Offset > 0 {
		v.Set("sysparm_offset", strconv.Itoa(o.Offset))
	}
	if o.DisplayValue != "" {
		v.Set("sysparm_display_value", o.DisplayValue)
	}
	if o.ExcludeReferenceLink {
		v.Set("sysparm_exclude_reference_link", "true")
	}
	if o.NoCount {
		v.Set("sysparm_no_count", "true")
	}
	return v
}

// List returns the records of table matching opts. Unless opts.NoCount, a
// first page that comes back empty while the instance counts matching
// records is an error matching ErrRowsHidden: the table is readable, but
// ACLs hide every matching row from the integration user (real instances
// answer so, not with 403).
func (c *Client) List(ctx context.Context, table string, opts ListOptions) ([]Record, error) {
	var out []Record
	cl := &call{op: "list", method: http.MethodGet, table: table, query: opts.values(), out: &out, safe: true}
	err := c.do(ctx, cl)
	if err == nil && !opts.NoCount && opts.Offset == 0 && len(out) == 0 && cl.total > 0 {
		return nil, &Error{Op: "list", Table: table, Status: http.StatusOK, Message: "rows hidden",
			Detail: fmt.Sprintf("%d records match, but ACLs hide every one from the integration user", cl.total), Err: ErrRowsHidden}
	}
	return out, err
}

// Get reads one record by sys_id.
func (c *Client) Get(ctx context.Context, table, sysID string) (Record, error) {
	if err := checkSysID(table, sysID); err != nil {
		return nil, err
	}
	var out Record
	err := c.do(ctx, &call{op: "read", method: http.MethodGet, table: table, sysID: sysID, out: &out, safe: true})
	return out, err
}

// InsertOptions shape an insert.
type InsertOptions struct {
	// SysID, when set, is the sys_id the record is created with. It makes
	// the insert safe to retry: after an ambiguous failure (a timeout, a
	// dropped reply) the client reads the record back instead of creating
	// a second one.
	SysID string
	// MayExist says an earlier call may have created the record (its reply
	// was lost): a refused create of a record the user may not read back
	// is then taken as that call's success (ErrUnconfirmed).
	MayExist bool
}

// Insert creates a record. With opts.SysID, a record that exists already
// with that sys_id fails with an error matching ErrDuplicateSysID (returned
// with the record) — unless this call created it on an earlier attempt, in
// which case the record is returned. If the instance chose a sys_id of its
// own, the record is returned with an error matching ErrSysIDIgnored.
//
// Real instances refuse a repeated sys_id with 403 "Operation Failed" and a
// generic detail; the database's own text appears only where
// glide.db.loguser allows it, and hardened instances turn that off. So a
// refused create is never judged by its text: the sys_id is read back.
func (c *Client) Insert(ctx context.Context, table string, fields map[string]string, opts InsertOptions) (Record, error) {
	body := make(map[string]string, len(fields)+1)
	for k, v := range fields {
		body[k] = v
	}
	if opts.SysID != "" {
		if err := checkSysID(table, opts.SysID); err != nil {
			return nil, err
		}
		body["sys_id"] = opts.SysID
	}
	var out Record
	cl := &call{op: "create", method: http.MethodPost, table: table, body: body, out: &out, safe: opts.SysID != ""}
	err := c.do(ctx, cl)
	var se *Error
	if opts.SysID != "" && errors.As(err, &se) && (se.Status == http.StatusForbidden || se.Status == http.StatusConflict) {
		return c.existing(ctx, table, opts.SysID, cl.ambiguous() || opts.MayExist, se)
	}
	if err != nil {
		return nil, err
	}
	if opts.SysID != "" && out.SysID() != opts.SysID {
		return out, fmt.Errorf("%w: asked for %s, got %s in %s", ErrSysIDIgnored, opts.SysID, out.SysID(), table)
	}
	return out, nil
}

// existing tells why a create with a chosen sys_id was refused, by reading
// that sys_id back. ours says an earlier attempt (of this call, or one the
// caller knows of) may have created it.
func (c *Client) existing(ctx context.Context, table, sysID string, ours bool, refused *Error) (Record, error) {
	rec, err := c.Get(ctx, table, sysID)
	var ge *Error
	switch {
	case err == nil && ours:
		return rec, nil
	case err == nil:
		return rec, &duplicateError{refused}
	case errors.As(err, &ge) && (ge.Status == http.StatusForbidden || ge.Status == http.StatusNotFound) && ours:
		// The integration user may create records it cannot read
		// (interaction_related_record): the sys_id is all there is, and
		// the refusal is taken for the earlier attempt's success.
		return Record{"sys_id": sysID}, ErrUnconfirmed
	case errors.As(err, &ge) && ge.Status == http.StatusNotFound:
		return nil, refused // no such record: a real refusal (an ACL, a data policy)
	case errors.As(err, &ge) && ge.Status == http.StatusForbidden:
		return nil, refused
	}
	return nil, err // the read failed: try again later
}

// Patch updates fields of one record and returns it as stored.
func (c *Client) Patch(ctx context.Context, table, sysID string, fields map[string]string) (Record, error) {
	return c.patch(ctx, table, sysID, fields, true)
}

// PatchOnce is Patch for a write that must not be applied twice, such as
// one that appends to a journal field (work_notes): an attempt whose outcome
// is unknown is not repeated, and the error says MayHaveApplied. The caller
// finds out what happened (by reading the record back) before writing again.
func (c *Client) PatchOnce(ctx context.Context, table, sysID string, fields map[string]string) (Record, error) {
	return c.patch(ctx, table, sysID, fields, false)
}

func (c *Client) patch(ctx context.Context, table, sysID string, fields map[string]string, safe bool) (Record, error) {
	if err := checkSysID(table, sysID); err != nil {
		return nil, err
	}
	var out Record
	err := c.do(ctx, &call{op: "update", method: http.MethodPatch, table: table, sysID: sysID, body: fields, out: &out, safe: safe})
	return out, err
}

// Delete removes one record.
func (c *Client) Delete(ctx context.Context, table, sysID string) error {
	if err := checkSysID(table, sysID); err != nil {
		return err
	}
	return c.do(ctx, &call{op: "delete", method: http.MethodDelete, table: table, sysID: sysID, safe: true})
}

// IsSysID reports whether s has the form of a sys_id: 32 lowercase hex
// characters.
func IsSysID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

func checkSysID(table, id string) error {
	if id == "" || strings.ContainsAny(id, "/?#%") || len(id) > 64 {
		return &Error{Op: "request", Table: table, Message: fmt.Sprintf("invalid sys_id %q", id), Err: errConfig}
	}
	return nil
}

// call is one logical operation, maybe several attempts.
type call struct {
	op, method, table, sysID string
	query                    url.Values
	body                     any
	out                      any
	// safe: repeating the request cannot do harm (reads, patches, deletes,
	// creates with a chosen sys_id).
	safe bool
	// unsure counts attempts whose outcome is unknown (the request may have
	// been applied): transport errors after sending, 5xx, timeouts.
	unsure int
	// total is a list reply's X-Total-Count (0 when absent).
	total int
}

func (cl *call) ambiguous() bool { return cl.unsure > 0 }

// do runs a call with retries. A failure after any attempt of unknown
// outcome says MayHaveApplied.
func (c *Client) do(ctx context.Context, cl *call) error {
	err := c.retry(ctx, cl)
	var se *Error
	if cl.ambiguous() && errors.As(err, &se) {
		se.unsure = true
	}
	return err
}

func (c *Client) retry(ctx context.Context, cl *call) error {
	if !validTable(cl.table) {
		return &Error{Op: cl.op, Table: cl.table, Message: "invalid table name", Err: errConfig}
	}
	u := *c.base
	u.Path = "/api/now/table/" + cl.table
	if cl.sysID != "" {
		u.Path += "/" + cl.sysID
	}
	u.RawQuery = cl.query.Encode()
	var body []byte
	if cl.body != nil {
		var err error
		if body, err = json.Marshal(cl.body); err != nil {
			return &Error{Op: cl.op, Table: cl.table, Err: err}
		}
	}
	reauthed := false
	stale := 0
	for attempt := 1; ; attempt++ {
		err := c.attempt(ctx, cl, u.String(), body, stale)
		var se *Error
		if err == nil || !errors.As(err, &se) {
			return err
		}
		if se.unsure {
			cl.unsure++
		}
		if se.Status == http.StatusUnauthorized && c.tokens != nil && !reauthed {
			// The token may have been revoked or expired early: one more
			// try with a fresh one, not counted as an attempt.
			reauthed, stale = true, se.authGen
			attempt--
			continue
		}
		if !se.Temporary() || attempt >= c.cfg.Retry.Attempts || ctx.Err() != nil {
			return err
		}
		if !cl.safe && se.unsure {
			return err // a write that may have happened: never repeat blind
		}
		wait := c.backoff(attempt)
		if se.RetryAfter > 0 {
			if se.RetryAfter > c.cfg.Retry.MaxRetryAfter {
				return err
			}
			wait = se.RetryAfter
		}
		c.log.Debug("servicenow: retrying", "op", cl.op, "table", cl.table, "attempt", attempt, "wait", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// backoff is exponential with full jitter: a random wait in [d/2, d].
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.Retry.Base << (attempt - 1)
	if d > c.cfg.Retry.Max || d <= 0 {
		d = c.cfg.Retry.Max
	}
	return d/2 + rand.N(d/2+1)
}

func (c *Client) attempt(ctx context.Context, cl *call, u string, body []byte, stale int) (err error) {
	permit, err := c.budget.acquire(ctx)
	if err != nil {
		return &Error{Op: cl.op, Table: cl.table, Err: err}
	}
	told := noReply
	defer func() { c.budget.release(permit, told) }()
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	auth, gen := c.basic, 0
	if c.tokens != nil {
		if auth, gen, err = c.tokens.header(actx, stale); err != nil {
			var se *Error
			if errors.As(err, &se) {
				se.Op, se.Table = cl.op+" (oauth)", cl.table
			}
			return err
		}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	// Whether the request left: a failure before that applied nothing.
	var sent atomic.Bool
	trace := &httptrace.ClientTrace{WroteHeaders: func() { sent.Store(true) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(actx, trace), cl.method, u, rd)
	if err != nil {
		return &Error{Op: cl.op, Table: cl.table, Err: errConfig}
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set("Authorization", auth)

	start := time.Now()
	resp, err := c.hc.Do(req)
	ri := RequestInfo{Op: cl.op, Table: cl.table, Method: cl.method}
	defer func() { ri.Duration, ri.Err = time.Since(start), err; c.observe(ri) }()
	if err != nil {
		// A request that never left (a refused connection, a cancel before
		// sending) applied nothing; once sent, it may have been applied,
		// whether the reply was lost or the wait for it cancelled.
		e := &Error{Op: cl.op, Table: cl.table, Err: scrub(err), unsure: sent.Load()}
		if ctx.Err() != nil {
			e.Err = ctx.Err()
		} else if timedOut(err) {
			told = overloaded // no reply within Timeout: the instance is saturated
		}
		return e
	}
	defer resp.Body.Close()
	ri.Status = resp.StatusCode
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		told = overloaded
	default:
		told = replied
	}
	if n, err := strconv.Atoi(resp.Header.Get("X-RateLimit-Limit")); err == nil {
		c.budget.sizeTo(n)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		if told == replied {
			told = noReply
		}
		return &Error{Op: cl.op, Table: cl.table, Status: resp.StatusCode, Err: scrub(err), unsure: true}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		cl.total, _ = strconv.Atoi(resp.Header.Get("X-Total-Count"))
		if cl.out == nil || resp.StatusCode == http.StatusNoContent {
			return nil
		}
		var env struct {
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(raw, &env); err != nil || len(env.Result) == 0 {
			// A hibernating or waking instance, or a proxy's page, answers
			// 200 with HTML: worth trying again later.
			return &Error{Op: cl.op, Table: cl.table, Status: resp.StatusCode, Message: "unreadable reply",
				Detail: snippet(raw), Err: errUnreadableReply, unsure: true}
		}
		if err := json.Unmarshal(env.Result, cl.out); err != nil {
			return &Error{Op: cl.op, Table: cl.table, Status: resp.StatusCode, Message: "unexpected result shape", Detail: err.Error()}
		}
		return nil
	}
	e := &Error{Op: cl.op, Table: cl.table, Status: resp.StatusCode, authGen: gen}
	var env struct {
		Error struct {
			Message string `json:"message"`
			Detail  any    `json:"detail"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &env) == nil && env.Error.Message != "" {
		e.Message = env.Error.Message
		if d, ok := env.Error.Detail.(string); ok {
			e.Detail = d
		}
	} else {
		e.Detail = snippet(raw)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(strings.TrimSpace(ra)); err == nil && s >= 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			e.RetryAfter = max(0, time.Until(t))
		}
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		d := e.RetryAfter
		if d == 0 {
			d = c.backoff(2)
		}
		c.budget.throttled(d)
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout {
		// 502/504 from a proxy, or a 500 after a partial write: the
		// instance may have applied the request.
		e.unsure = true
	}
	return e
}

// timedOut reports whether a request failed for want of a reply in time.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// snippet keeps a short, printable part of an unexpected body for errors.
func snippet(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.TrimSpace(s)
}

// scrub removes the URL (which holds the query, never credentials, but can
// be long) from a transport error, keeping its cause.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}

func validTable(t string) bool {
	if t == "" || len(t) > 80 {
		return false
	}
	for _, r := range t {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
