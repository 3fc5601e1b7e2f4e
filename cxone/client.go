// Package cxone is ctibridge's door to the NICE CXone REST APIs: access-key
// authentication with tokens renewed before they expire, the tenant's API
// base found by NICE's discovery document (or configured), short retries
// with exponential backoff and jitter, and a request budget with a
// concurrency cap, so a busy bridge stays a polite API user.
//
// It reads only: agents (Admin API), active contacts (Real-Time Data API),
// completed contacts (Reporting API) and contact-state descriptions. It must
// never write to CXone, and never put the access key secret or a token in an
// error, a log line or a metric.
//
// Every API path is /incontactapi/services/v30.0/… (APIVersion), the version
// NICE's own agent SDK calls the Admin API with; CXone serves older and newer
// versions side by side.
package cxone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/ctibridge/ctibridge/secret"
)

// APIVersion is the CXone API version of every path the client calls.
const APIVersion = "v30.0"

// Defaults for the hosts NICE documents. Auth tokens are issued by any
// region's auth host; API calls go to the tenant's regional host.
const (
	DefaultAuthBase      = "https://na1.nice-incontact.com"
	DefaultDiscoveryBase = "https://cxone.niceincontact.com"
)

// Config configures a Client. Zero values take the defaults noted.
type Config struct {
	AccessKeyID     string
	AccessKeySecret secret.Secret

	// TenantID names the tenant whose API base the discovery document
	// gives. Empty: read from the access token's tenantId claim.
	TenantID string
	// APIBase, when set, is used for the token and every API call, and no
	// discovery is done (a simulator, a proxy, a pinned region).
	APIBase string
	// AuthBase is where access keys are exchanged for tokens when APIBase
	// is empty; default DefaultAuthBase.
	AuthBase string
	// DiscoveryBase serves /.well-known/cxone-configuration; default
	// DefaultDiscoveryBase.
	DiscoveryBase string

	RequestsPerMinute int // request budget; default 600, -1 = unlimited
	Burst             int // requests allowed at once above the rate; default 20
	MaxConcurrent     int // requests in flight at once; default 4

	Timeout    time.Duration // per attempt; default 10s
	Retry      RetryPolicy
	HTTPClient *http.Client // default: a keep-alive client sized to MaxConcurrent
	Logger     *slog.Logger // default: discard
	UserAgent  string

	// Observe, if set, is told about every request (metrics).
	Observe func(RequestInfo)
}

// RetryPolicy bounds the client's own retries of transient failures (no
// reply, 408, 429, 5xx). CXone sends no reliable Retry-After, so waits are
// exponential with jitter, and the whole call gives up after Total.
type RetryPolicy struct {
	Attempts int           // total attempts; default 5
	Base     time.Duration // first backoff; default 500ms
	Max      time.Duration // backoff cap; default 8s
	Total    time.Duration // the longest one call may take, waits included; default 30s
}

// RequestInfo describes one HTTP request, for metrics.
type RequestInfo struct {
	Op       string // token, discovery, agent, active-contacts, completed-contacts, contact-states
	Method   string
	Status   int // 0 = no reply
	Duration time.Duration
	Err      error
}

// Client talks to one CXone tenant. It is safe for concurrent use.
type Client struct {
	cfg      Config
	hc       *http.Client
	log      *slog.Logger
	limit    *rate.Limiter
	sem      chan struct{}
	tokens   *tokens
	override *url.URL // cfg.APIBase, parsed; nil = discover
	disc     *discovery
}

// New checks cfg and builds a client. It does not contact CXone.
func New(cfg Config) (*Client, error) {
	if cfg.AccessKeyID == "" || cfg.AccessKeySecret.IsZero() {
		return nil, errors.New("cxone: an access key id and its secret are needed")
	}
	var override *url.URL
	if cfg.APIBase != "" {
		u, err := baseURL(cfg.APIBase)
		if err != nil {
			return nil, fmt.Errorf("cxone: API base %q: %w", cfg.APIBase, err)
		}
		override = u
	}
	if cfg.AuthBase == "" {
		cfg.AuthBase = DefaultAuthBase
	}
	if cfg.DiscoveryBase == "" {
		cfg.DiscoveryBase = DefaultDiscoveryBase
	}
	authBase, err := baseURL(cfg.AuthBase)
	if err != nil {
		return nil, fmt.Errorf("cxone: auth base %q: %w", cfg.AuthBase, err)
	}
	discBase, err := baseURL(cfg.DiscoveryBase)
	if err != nil {
		return nil, fmt.Errorf("cxone: discovery base %q: %w", cfg.DiscoveryBase, err)
	}
	if override != nil {
		authBase = override
	}
	if cfg.RequestsPerMinute == 0 {
		cfg.RequestsPerMinute = 600
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 20
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	r := &cfg.Retry
	if r.Attempts <= 0 {
		r.Attempts = 5
	}
	if r.Base <= 0 {
		r.Base = 500 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 8 * time.Second
	}
	if r.Total <= 0 {
		r.Total = 30 * time.Second
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "ctibridge"
	}
	c := &Client{cfg: cfg, hc: cfg.HTTPClient, log: cfg.Logger, override: override,
		limit: rate.NewLimiter(rate.Inf, cfg.Burst), sem: make(chan struct{}, cfg.MaxConcurrent)}
	if cfg.RequestsPerMinute > 0 {
		c.limit.SetLimit(rate.Limit(float64(cfg.RequestsPerMinute) / 60))
	}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.MaxConcurrent
		tr.IdleConnTimeout = 90 * time.Second
		c.hc = &http.Client{Transport: tr}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.tokens = &tokens{c: c, url: authBase.JoinPath("authentication/v1/token/access-key").String()}
	c.disc = &discovery{c: c, base: discBase}
	return c, nil
}

func baseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
		return nil, errors.New("want a URL like https://api-na1.niceincontact.com")
	}
	return u, nil
}

// get runs one GET of the versioned API with retries and decodes a JSON
// reply into out. A 204 leaves out untouched and reports noContent.
func (c *Client) get(ctx context.Context, op, path string, q url.Values, out any) (noContent bool, err error) {
	start := time.Now()
	stale := 0
	renewed := false
	for attempt := 1; ; attempt++ {
		var e *Error
		noContent, e = c.attempt(ctx, op, path, q, out, stale)
		if e == nil {
			return noContent, nil
		}
		e.Attempts = attempt
		if e.Status == http.StatusUnauthorized && e.Op == op && !renewed {
			// The token was revoked or expired early: once more with a
			// fresh one, not counted as an attempt.
			renewed, stale = true, e.gen
			attempt--
			continue
		}
		if !e.Temporary() || attempt >= c.cfg.Retry.Attempts || ctx.Err() != nil {
			return false, e
		}
		wait := c.backoff(attempt)
		if time.Since(start)+wait > c.cfg.Retry.Total {
			return false, e
		}
		c.log.Debug("cxone: retrying", "op", op, "attempt", attempt, "wait", wait, "error", e)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, e
		case <-t.C:
		}
	}
}

// backoff is exponential with jitter: a random wait in [d/2, d].
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.Retry.Base << (attempt - 1)
	if d > c.cfg.Retry.Max || d <= 0 {
		d = c.cfg.Retry.Max
	}
	return d/2 + rand.N(d/2+1)
}

func (c *Client) attempt(ctx context.Context, op, path string, q url.Values, out any, stale int) (bool, *Error) {
	tok, gen, err := c.tokens.get(ctx, stale)
	if err != nil {
		return false, asError("token", err)
	}
	base, err := c.apiBase(ctx)
	if err != nil {
		return false, asError("discovery", err)
	}
	u := base.JoinPath("incontactapi/services", APIVersion, path)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, &Error{Op: op, Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	status, raw, e := c.send(op, req)
	if e != nil {
		e.gen = gen
		return false, e
	}
	if status == http.StatusNoContent {
		return true, nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		// A proxy's or a maintenance page in place of JSON: worth trying
		// again later.
		return false, &Error{Op: op, Status: status, Message: snippet(raw), Err: errUnreadable}
	}
	return false, nil
}

func asError(op string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Op: op, Err: err}
}

// send makes one request within the budget and returns a 2xx reply's body;
// anything else is an *Error with CXone's error text.
func (c *Client) send(op string, req *http.Request) (int, []byte, *Error) {
	ctx := req.Context()
	if err := c.acquire(ctx); err != nil {
		return 0, nil, &Error{Op: op, Err: err}
	}
	defer func() { <-c.sem }()
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req = req.WithContext(actx)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	start := time.Now()
	resp, err := c.hc.Do(req)
	ri := RequestInfo{Op: op, Method: req.Method}
	defer func() {
		ri.Duration = time.Since(start)
		if c.cfg.Observe != nil {
			c.cfg.Observe(ri)
		}
	}()
	if err != nil {
		e := &Error{Op: op, Err: scrub(err)}
		ri.Err = e
		return 0, nil, e
	}
	defer resp.Body.Close()
	ri.Status = resp.StatusCode
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		e := &Error{Op: op, Status: resp.StatusCode, Err: scrub(err)}
		if resp.StatusCode < 300 {
			e.Status = 0 // the reply was cut: no answer
		}
		ri.Err = e
		return 0, nil, e
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, raw, nil
	}
	e := &Error{Op: op, Status: resp.StatusCode}
	var env struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Message     string `json:"message"`
	}
	if json.Unmarshal(raw, &env) == nil {
		e.Code, e.Message = env.Error, env.Description
		if e.Message == "" {
			e.Message = env.Message
		}
	}
	if e.Code == "" && e.Message == "" {
		e.Message = snippet(raw)
	}
	ri.Err = e
	return resp.StatusCode, nil, e
}

// acquire waits for a rate token and a concurrency slot.
func (c *Client) acquire(ctx context.Context) error {
	if err := c.limit.Wait(ctx); err != nil {
		return err
	}
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// snippet keeps a short, printable part of an unexpected body for errors.
func snippet(b []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// scrub removes the URL from a transport error, keeping its cause.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}

// list fetches every page of a list endpoint: CXone pages with top and skip
// and counts the matches in totalRecords.
func list[T any](ctx context.Context, c *Client, op, path string, q url.Values, key string) (items []T, lastPoll string, err error) {
	const pageSize, maxPages = 1000, 100
	for page := 0; page < maxPages; page++ {
		q.Set("top", strconv.Itoa(pageSize))
		q.Set("skip", strconv.Itoa(len(items)))
		var env map[string]json.RawMessage
		noContent, err := c.get(ctx, op, path, q, &env)
		if err != nil {
			return nil, "", err
		}
		if noContent {
			return items, lastPoll, nil
		}
		var got []T
		if raw, ok := env[key]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &got); err != nil {
				return nil, "", &Error{Op: op, Status: http.StatusOK, Message: "unexpected " + key + " shape", Err: err}
			}
		}
		if page == 0 {
			// The first page's poll time is the earliest: a change made
			// while later pages were read is seen again, never lost.
			json.Unmarshal(env["lastPollTime"], &lastPoll)
		}
		items = append(items, got...)
		var total int
		json.Unmarshal(env["totalRecords"], &total)
		if len(got) == 0 || len(items) >= total {
			return items, lastPoll, nil
		}
	}
	return nil, "", &Error{Op: op, Message: fmt.Sprintf("more than %d pages", maxPages), Err: errUnreadable}
}
