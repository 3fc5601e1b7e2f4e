// Package servicenow is ctibridge's one door to a ServiceNow instance's
// Table API: typed records, an encoded-query builder that escapes values,
// basic and OAuth authentication, short retries that are safe for creates,
// a request budget that keeps a busy bridge under the instance's limits, and
// batches that carry several requests in one round trip (Batch API).
package servicenow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ctibridge/ctibridge"
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

	// Observe, if set, is told about every request (metrics). A batch is
	// one request, of table "batch".
	Observe func(RequestInfo)

	// NoBatch sends every request on its own, never through the Batch API
	// (Client.Batch).
	NoBatch bool
	// Warner, if set, is told when the instance refuses the Batch API.
	Warner ctibridge.Warner
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
	Op       string // read, list, create, update, delete, batch, oauth
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
	batch  batchState
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
	r := ListRequest(table, opts)
	c.send(ctx, r)
	return r.Records()
}

// Get reads one record by sys_id.
func (c *Client) Get(ctx context.Context, table, sysID string) (Record, error) {
	r := GetRequest(table, sysID)
	c.send(ctx, r)
	return r.Record()
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
	// WholeRecord asks for every field of the record in the reply; by
	// default it carries the fields written and a few system fields (see
	// writeReply).
	WholeRecord bool
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
	r := InsertRequest(table, fields, opts)
	c.send(ctx, r)
	return r.Record()
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
	err := c.do(ctx, &call{op: "update", method: http.MethodPatch, table: table, sysID: sysID, body: fields, out: &out, safe: safe,
		query: writeReply(fields)})
	return out, err
}

// replySystemFields are the fields a write's reply carries besides those
// written: the record's identity, its version and who created and last
// changed it (what the reconciler reads to settle a write of unknown outcome).
var replySystemFields = []string{"sys_id", "number", "sys_mod_count", "sys_created_by", "sys_updated_by"}

// writeReply asks the instance to answer a write (create or update) with
// the fields written and replySystemFields only (sysparm_fields), references
// as plain sys_ids: a whole interaction is some 80 fields to render, send and
// decode, of which a writer reads the few it wrote.
func writeReply(written map[string]string) url.Values {
	fields := slices.Collect(maps.Keys(written))
	for _, f := range replySystemFields {
		if _, ok := written[f]; !ok {
			fields = append(fields, f)
		}
	}
	slices.Sort(fields)
	return url.Values{"sysparm_fields": {strings.Join(fields, ",")}, "sysparm_exclude_reference_link": {"true"}}
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
func (c *Client) do(ctx context.Context, cl *call) error { return c.resume(ctx, cl, nil) }

// resume is do for a call whose first attempt may have been made already,
// in a batch: first is that attempt's failure (nil: no attempt yet). The
// call goes on from there as it would have alone.
func (c *Client) resume(ctx context.Context, cl *call, first error) error {
	err := c.retry(ctx, cl, first)
	var se *Error
	if cl.ambiguous() && errors.As(err, &se) {
		se.unsure = true
	}
	return err
}

// target returns the call's path and query, relative to the instance, and
// its JSON body.
func (cl *call) target() (*url.URL, []byte, error) {
	if !validTable(cl.table) {
		return nil, nil, &Error{Op: cl.op, Table: cl.table, Message: "invalid table name", Err: errConfig}
	}
	u := &url.URL{Path: "/api/now/table/" + cl.table, RawQuery: cl.query.Encode()}
	if cl.sysID != "" {
		u.Path += "/" + cl.sysID
	}
	var body []byte
	if cl.body != nil {
		var err error
		if body, err = json.Marshal(cl.body); err != nil {
			return nil, nil, &Error{Op: cl.op, Table: cl.table, Err: err}
		}
	}
	return u, body, nil
}

func (c *Client) retry(ctx context.Context, cl *call, first error) error {
	rel, body, err := cl.target()
	if err != nil {
		return err
	}
	u := *c.base
	u.Path, u.RawQuery = rel.Path, rel.RawQuery
	reauthed := false
	stale := 0
	for attempt := 1; ; attempt++ {
		err := first
		if first == nil {
			err = c.attempt(ctx, cl, u.String(), body, stale)
		}
		first = nil
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

func (c *Client) attempt(ctx context.Context, cl *call, u string, body []byte, stale int) error {
	return c.exchange(ctx, exchange{op: cl.op, table: cl.table, method: cl.method, url: u, body: body, stale: stale,
		requests: 1, timeout: c.cfg.Timeout, read: func(r reply) (bool, error) { return false, c.outcome(cl, r) }})
}

// exchange is one HTTP request to the instance: a Table API request, or a
// batch of them.
type exchange struct {
	op, table, method, url string
	body                   []byte
	stale                  int // the OAuth token generation refused last, 0 if none
	requests               int // what it counts as in the hourly budget
	timeout                time.Duration
	// batch: the reply's latency is the sum of its items' and says
	// nothing of the instance's load.
	batch bool
	// read turns the reply into the outcome, and says whether the reply
	// holds a refusal for overload (a batch's item answered 429 or 503).
	read func(reply) (overloaded bool, err error)
}

// reply is what came back from the instance.
type reply struct {
	status int
	header http.Header
	body   []byte
	gen    int // the OAuth token generation the request carried
}

// exchange sends x under the budget and returns read's outcome of the
// reply, or an *Error when none came.
func (c *Client) exchange(ctx context.Context, x exchange) (err error) {
	permit, err := c.budget.acquire(ctx, x.requests)
	if err != nil {
		return &Error{Op: x.op, Table: x.table, Err: err}
	}
	told := noReply
	defer func() {
		if x.batch && told == replied {
			told = noReply
		}
		c.budget.release(permit, told)
	}()
	actx, cancel := context.WithTimeout(ctx, x.timeout)
	defer cancel()

	auth, gen := c.basic, 0
	if c.tokens != nil {
		if auth, gen, err = c.tokens.header(actx, x.stale); err != nil {
			var se *Error
			if errors.As(err, &se) {
				se.Op, se.Table = x.op+" (oauth)", x.table
			}
			return err
		}
	}
	var rd io.Reader
	if x.body != nil {
		rd = bytes.NewReader(x.body)
	}
	// Whether the request left: a failure before that applied nothing.
	var sent atomic.Bool
	trace := &httptrace.ClientTrace{WroteHeaders: func() { sent.Store(true) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(actx, trace), x.method, x.url, rd)
	if err != nil {
		return &Error{Op: x.op, Table: x.table, Err: errConfig}
	}
	req.Header.Set("Accept", "application/json")
	if x.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set("Authorization", auth)

	start := time.Now()
	resp, err := c.hc.Do(req)
	ri := RequestInfo{Op: x.op, Table: x.table, Method: x.method}
	defer func() { ri.Duration, ri.Err = time.Since(start), err; c.observe(ri) }()
	if err != nil {
		// A request that never left (a refused connection, a cancel before
		// sending) applied nothing; once sent, it may have been applied,
		// whether the reply was lost or the wait for it cancelled.
		e := &Error{Op: x.op, Table: x.table, Err: scrub(err), unsure: sent.Load()}
		if ctx.Err() != nil {
			e.Err = ctx.Err()
		} else if timedOut(err) {
			told = overloaded // no reply within the timeout: the instance is saturated
		}
		return e
	}
	defer resp.Body.Close()
	ri.Status = resp.StatusCode
	told = replied
	if overload(resp.StatusCode) {
		told = overloaded
	}
	raw, err := readBody(resp, 64<<20)
	if err != nil {
		if told == replied {
			told = noReply
		}
		return &Error{Op: x.op, Table: x.table, Status: resp.StatusCode, Err: scrub(err), unsure: true}
	}
	busy, err := x.read(reply{status: resp.StatusCode, header: resp.Header, body: raw, gen: gen})
	if busy {
		told = overloaded
	}
	return err
}

// overload reports whether a status is the instance refusing for want of
// capacity: 429, 503, or 504 from a proxy.
func overload(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// outcome turns a Table API reply into the call's result: cl.out filled
// in, or an *Error saying what the instance refused and whether trying
// again may help.
func (c *Client) outcome(cl *call, r reply) error {
	if n, err := strconv.Atoi(r.header.Get("X-RateLimit-Limit")); err == nil {
		c.budget.sizeTo(n)
	}
	if r.status >= 200 && r.status < 300 {
		cl.total, _ = strconv.Atoi(r.header.Get("X-Total-Count"))
		if cl.out == nil || r.status == http.StatusNoContent {
			return nil
		}
		var env struct {
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(r.body, &env); err != nil || len(env.Result) == 0 {
			// A hibernating or waking instance, or a proxy's page, answers
			// 200 with HTML: worth trying again later.
			return &Error{Op: cl.op, Table: cl.table, Status: r.status, Message: "unreadable reply",
				Detail: snippet(r.body), Err: errUnreadableReply, unsure: true}
		}
		if err := json.Unmarshal(env.Result, cl.out); err != nil {
			return &Error{Op: cl.op, Table: cl.table, Status: r.status, Message: "unexpected result shape", Detail: err.Error()}
		}
		return nil
	}
	e := &Error{Op: cl.op, Table: cl.table, Status: r.status, authGen: r.gen}
	var env struct {
		Error struct {
			Message string `json:"message"`
			Detail  any    `json:"detail"`
		} `json:"error"`
	}
	if json.Unmarshal(r.body, &env) == nil && env.Error.Message != "" {
		e.Message = env.Error.Message
		if d, ok := env.Error.Detail.(string); ok {
			e.Detail = d
		}
	} else {
		e.Detail = snippet(r.body)
	}
	if ra := r.header.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(strings.TrimSpace(ra)); err == nil && s >= 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			e.RetryAfter = max(0, time.Until(t))
		}
	}
	if r.status == http.StatusTooManyRequests {
		d := e.RetryAfter
		if d == 0 {
			d = c.backoff(2)
		}
		c.budget.throttled(d)
	}
	if r.status >= 500 || r.status == http.StatusRequestTimeout {
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

// readBody reads a reply's body, at most limit bytes: in one allocation
// when the reply says its length (most replies), where io.ReadAll would
// grow its buffer several times.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	if n := resp.ContentLength; n > 0 && n <= limit {
		b := make([]byte, n)
		_, err := io.ReadFull(resp.Body, b)
		return b, err
	}
	return io.ReadAll(io.LimitReader(resp.Body, limit))
}
