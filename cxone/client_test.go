package cxone_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ctibridge/ctibridge/cxone"
	"github.com/ctibridge/ctibridge/cxonesim"
)

// inMemory serves requests with a handler in the caller's goroutine, so a
// client and a simulator can share a synctest bubble and its fake clock.
type inMemory struct{ h http.Handler }

func (m inMemory) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// observed records what the client's Observe hook was told.
type observed struct {
	mu   sync.Mutex
	reqs []cxone.RequestInfo
}

func (o *observed) add(ri cxone.RequestInfo) {
	o.mu.Lock()
	o.reqs = append(o.reqs, ri)
	o.mu.Unlock()
}

func (o *observed) statuses(op string) []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []int
	for _, r := range o.reqs {
		if r.Op == op {
			out = append(out, r.Status)
		}
	}
	return out
}

type bundle struct {
	sim    *cxonesim.Server
	client *cxone.Client
	obs    *observed
	logs   *bytes.Buffer
}

// setup builds a simulator and a client of it over an in-memory transport.
// change adjusts the client's configuration (APIBase is set to the
// simulator's; clear it to test discovery).
func setup(t *testing.T, opts cxonesim.Options, change func(*cxone.Config)) *bundle {
	t.Helper()
	b := &bundle{sim: cxonesim.New(opts), obs: &observed{}, logs: &bytes.Buffer{}}
	cfg := cxone.Config{AccessKeyID: cxonesim.DefaultAccessKeyID, AccessKeySecret: cxonesim.DefaultAccessKeySecret,
		APIBase: "http://cxone.test", HTTPClient: &http.Client{Transport: inMemory{b.sim}}, Observe: b.obs.add,
		Logger: slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if change != nil {
		change(&cfg)
	}
	c, err := cxone.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.client = c
	return b
}

func (b *bundle) agent(t *testing.T, id string) cxone.Agent {
	t.Helper()
	a, err := b.client.Agent(context.Background(), id)
	if err != nil {
		t.Fatalf("Agent(%s): %v", id, err)
	}
	return a
}

// TestAgent: an agent is read by its CXone id; an unknown id is "not found",
// and an id that is not one is refused before anything is sent.
func TestAgent(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{}, nil)
	if a := b.agent(t, "1001"); a.AgentID != 1001 || a.EmailAddress != "jdoe@example.com" || a.FirstName != "John" || a.LastName != "Doe" {
		t.Errorf("agent 1001: %+v", a)
	}
	_, err := b.client.Agent(context.Background(), "9999")
	var ce *cxone.Error
	if !cxone.IsNotFound(err) || !errors.As(err, &ce) || ce.Temporary() || ce.Op != "agent" {
		t.Errorf("unknown agent: %v", err)
	}
	before := b.sim.Stats().Total
	for _, id := range []string{"", "agent-jdoe", "1001/../1002", "12345678901234567890"} {
		if _, err := b.client.Agent(context.Background(), id); err == nil || !strings.Contains(err.Error(), "digits only") {
			t.Errorf("Agent(%q): %v, want a refusal naming the id", id, err)
		}
	}
	if after := b.sim.Stats().Total; after != before {
		t.Errorf("a refused id cost %d requests", after-before)
	}
}

// TestTokenRenewedBeforeExpiry: a token is used for most of its hour and
// renewed before it ends, so CXone never sees an expired one.
func TestTokenRenewedBeforeExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, cxonesim.Options{TokenTTL: time.Hour}, nil)
		b.agent(t, "1001")
		time.Sleep(54 * time.Minute)
		b.agent(t, "1001")
		if got := b.sim.Stats().TokensIssued; got != 1 {
			t.Errorf("after 54 minutes: %d tokens, want the first still in use", got)
		}
		time.Sleep(2 * time.Minute)
		b.agent(t, "1001")
		st := b.sim.Stats()
		if st.TokensIssued != 2 || st.Unauthorized != 0 {
			t.Errorf("after 56 minutes: %d tokens, %d refused requests; want a renewal before the hour, no 401", st.TokensIssued, st.Unauthorized)
		}
	})
}

// TestOneRenewalAtATime: callers that need a token at once share one
// token request, at the start and after a revocation.
func TestOneRenewalAtATime(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{}, func(c *cxone.Config) { c.RequestsPerMinute, c.MaxConcurrent = -1, 20 })
	together := func() {
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() { b.agent(t, "1002") })
		}
		wg.Wait()
	}
	together()
	if got := b.sim.Stats().TokensIssued; got != 1 {
		t.Errorf("20 callers at start: %d token requests, want 1", got)
	}
	b.sim.RevokeTokens()
	together()
	if got := b.sim.Stats().TokensIssued; got != 2 {
		t.Errorf("20 callers after a revocation: %d token requests in all, want 2", got)
	}
}

// TestRevokedToken: a token CXone no longer accepts is replaced and the
// call goes through, at the cost of one refused request.
func TestRevokedToken(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{}, nil)
	b.agent(t, "1001")
	b.sim.RevokeTokens()
	b.agent(t, "1003")
	st := b.sim.Stats()
	if st.TokensIssued != 2 || st.Unauthorized != 1 {
		t.Errorf("%d tokens, %d refused requests; want 2 and 1", st.TokensIssued, st.Unauthorized)
	}
	if got := b.obs.statuses("agent"); fmt.Sprint(got) != "[200 401 200]" {
		t.Errorf("agent requests observed: %v", got)
	}
}

// TestBadAccessKey: a refused access key is a permanent error that says
// what to check, is not retried, and never shows the secret.
func TestBadAccessKey(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-that-must-not-leak"
	b := setup(t, cxonesim.Options{}, func(c *cxone.Config) { c.AccessKeySecret = secret })
	_, err := b.client.Agent(context.Background(), "1001")
	var ce *cxone.Error
	if !errors.As(err, &ce) || ce.Op != "token" || ce.Status != http.StatusUnauthorized || ce.Temporary() ||
		!strings.Contains(err.Error(), "check the access key id and secret") {
		t.Fatalf("bad key: %v", err)
	}
	if got := b.sim.Stats().ByOp["token"]; got != 1 {
		t.Errorf("%d token requests, want 1: a refused key is not retried", got)
	}
	var observed string
	for _, r := range b.obs.reqs {
		observed += fmt.Sprintf("%+v %v", r, r.Err)
	}
	for where, text := range map[string]string{"error": err.Error(), "error %#v": fmt.Sprintf("%#v", err), "observe": observed, "logs": b.logs.String()} {
		if strings.Contains(text, secret) {
			t.Errorf("the secret shows in the %s: %s", where, text)
		}
	}
}

// TestDiscovery: without an API base, the tenant's is read from NICE's
// discovery document, once; the tenant comes from the configuration or
// from the token.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	for name, tenant := range map[string]string{"configured tenant": cxonesim.DefaultTenantID, "tenant from the token": ""} {
		t.Run(name, func(t *testing.T) {
			b := setup(t, cxonesim.Options{BaseURL: "http://api-sim1.cxone.test"}, nil)
			var hosts []string
			b.client = mustClient(t, b, func(c *cxone.Config) {
				c.APIBase, c.TenantID = "", tenant
				c.AuthBase, c.DiscoveryBase = "http://auth.cxone.test", "http://discovery.cxone.test"
				c.HTTPClient = &http.Client{Transport: recordHosts(&hosts, b.sim)}
			})
			for range 3 {
				b.agent(t, "1004")
			}
			if got := b.sim.Stats().ByOp["discovery"]; got != 1 {
				t.Errorf("%d discovery requests for 3 calls, want 1", got)
			}
			want := "auth.cxone.test discovery.cxone.test api-sim1.cxone.test api-sim1.cxone.test api-sim1.cxone.test"
			if got := strings.Join(hosts, " "); got != want {
				t.Errorf("hosts called: %s, want %s", got, want)
			}
		})
	}
	t.Run("unknown tenant", func(t *testing.T) {
		b := setup(t, cxonesim.Options{}, func(c *cxone.Config) {
			c.APIBase, c.TenantID = "", "not-our-tenant"
			c.AuthBase, c.DiscoveryBase = "http://auth.cxone.test", "http://discovery.cxone.test"
		})
		_, err := b.client.Agent(context.Background(), "1001")
		var ce *cxone.Error
		if !errors.As(err, &ce) || ce.Op != "discovery" || ce.Status != http.StatusNotFound || !strings.Contains(err.Error(), `tenant "not-our-tenant"`) {
			t.Errorf("unknown tenant: %v", err)
		}
	})
}

func mustClient(t *testing.T, b *bundle, change func(*cxone.Config)) *cxone.Client {
	t.Helper()
	cfg := cxone.Config{AccessKeyID: cxonesim.DefaultAccessKeyID, AccessKeySecret: cxonesim.DefaultAccessKeySecret, Observe: b.obs.add}
	change(&cfg)
	c, err := cxone.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type hostRecorder struct {
	mu    *sync.Mutex
	hosts *[]string
	next  http.RoundTripper
}

func recordHosts(hosts *[]string, h http.Handler) http.RoundTripper {
	return hostRecorder{&sync.Mutex{}, hosts, inMemory{h}}
}

func (r hostRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	*r.hosts = append(*r.hosts, req.URL.Host)
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// TestRetriesWithBackoff: transient failures are retried after waits that
// grow (500ms, 1s, 2s, each with jitter down to half), and the call
// succeeds.
func TestRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, cxonesim.Options{}, nil)
		b.agent(t, "1001") // the token, out of the way
		for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway} {
			b.sim.SetFaults(cxonesim.Faults{FailNext: &cxonesim.FailNext{Count: 3, Status: status, Path: "agents"}})
			start := time.Now()
			b.agent(t, "1001")
			took := time.Since(start)
			if took < 1750*time.Millisecond || took > 3500*time.Millisecond {
				t.Errorf("status %d three times: the call took %v, want the backoff's 1.75s to 3.5s", status, took)
			}
		}
		if got := fmt.Sprint(b.obs.statuses("agent")); got != "[200 503 503 503 200 429 429 429 200 502 502 502 200]" {
			t.Errorf("agent requests observed: %s", got)
		}
	})
}

// TestRetriesStopAtTheCap: a call that keeps failing gives up within
// Retry.Total with the last failure, which says it is temporary.
func TestRetriesStopAtTheCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, cxonesim.Options{}, func(c *cxone.Config) {
			c.Retry = cxone.RetryPolicy{Attempts: 100, Base: time.Second, Max: 8 * time.Second, Total: 20 * time.Second}
		})
		b.sim.SetFaults(cxonesim.Faults{FailNext: &cxonesim.FailNext{Count: 1000, Status: http.StatusServiceUnavailable, Path: "agents"}})
		start := time.Now()
		_, err := b.client.Agent(context.Background(), "1001")
		took := time.Since(start)
		var ce *cxone.Error
		if !errors.As(err, &ce) || ce.Status != http.StatusServiceUnavailable || !ce.Temporary() || ce.Attempts < 3 {
			t.Fatalf("err %v", err)
		}
		if took > 20*time.Second {
			t.Errorf("gave up after %v, beyond the 20s cap", took)
		}
		if took < 4*time.Second {
			t.Errorf("gave up after %v: the cap was not used", took)
		}
	})
}

// TestNoRetryOnRefusals: 400 and 404 are answers, not failures to retry.
func TestNoRetryOnRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{}, nil)
	b.sim.SetFaults(cxonesim.Faults{FailNext: &cxonesim.FailNext{Count: 1, Status: http.StatusBadRequest, Path: "agents"}})
	if _, err := b.client.Agent(context.Background(), "1001"); err == nil {
		t.Fatal("a 400 succeeded")
	}
	b.client.Agent(context.Background(), "4242")
	if got := fmt.Sprint(b.obs.statuses("agent")); got != "[400 404]" {
		t.Errorf("agent requests: %s, want one each", got)
	}
}

// TestServiceDown: a load balancer's HTML page is a temporary failure with
// the page's text in the error, not a decoding crash.
func TestServiceDown(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{Faults: cxonesim.Faults{Down: true}}, func(c *cxone.Config) { c.Retry.Attempts = 1 })
	_, err := b.client.Agent(context.Background(), "1001")
	var ce *cxone.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusServiceUnavailable || !ce.Temporary() || !strings.Contains(ce.Message, "Temporarily Unavailable") {
		t.Errorf("down: %v", err)
	}
}

// TestBudget: the request rate and the requests in flight stay within the
// configured budget.
func TestBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, cxonesim.Options{}, func(c *cxone.Config) { c.RequestsPerMinute, c.Burst = 60, 1 })
		start := time.Now()
		for range 4 {
			b.agent(t, "1001") // 5 requests with the token
		}
		if took := time.Since(start); took < 4*time.Second {
			t.Errorf("5 requests at 60 a minute took %v, want at least 4s", took)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, cxonesim.Options{}, func(c *cxone.Config) { c.MaxConcurrent = 2 })
		b.agent(t, "1001")
		b.sim.SetFaults(cxonesim.Faults{Latency: time.Second})
		b.sim.ResetStats()
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() { b.agent(t, "1002") })
		}
		wg.Wait()
		if got := b.sim.Stats().MaxInFlight; got != 2 {
			t.Errorf("%d requests in flight at once, want the cap of 2", got)
		}
	})
}

// TestActiveContactsPages: a list longer than a page is read to its end.
func TestActiveContactsPages(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{}, nil)
	for i := range 2500 {
		if _, err := b.sim.AddCall(cxonesim.Script{ANI: fmt.Sprint(i), AgentID: 1001, QueueFor: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.client.ActiveContacts(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, c := range got.Contacts {
		seen[c.ContactID] = true
	}
	if len(got.Contacts) != 2500 || len(seen) != 2500 {
		t.Errorf("%d contacts, %d distinct; want 2500", len(got.Contacts), len(seen))
	}
	if n := b.sim.Stats().ByOp["active-contacts"]; n != 3 {
		t.Errorf("%d pages requested, want 3", n)
	}
}

// TestConfigRefused: a configuration that cannot work is refused at once,
// naming what is wrong.
func TestConfigRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  cxone.Config
		want string
	}{
		{cxone.Config{AccessKeyID: "k"}, "access key id and its secret"},
		{cxone.Config{AccessKeyID: "k", AccessKeySecret: "s", APIBase: "api-na1.niceincontact.com"}, "API base"},
		{cxone.Config{AccessKeyID: "k", AccessKeySecret: "s", AuthBase: "ftp://x"}, "auth base"},
	} {
		if _, err := cxone.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want an error naming %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := cxone.New(cxone.Config{AccessKeyID: "k", AccessKeySecret: "very-secret", APIBase: "nope"}); err != nil && strings.Contains(err.Error(), "very-secret") {
		t.Errorf("the secret shows in %v", err)
	}
}
