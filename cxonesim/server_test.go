package cxonesim_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/cxonesim"
)

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// do sends a request to the simulator; auth "control" is basic auth with
// the access key, "Bearer x" a token, "" none.
func do(t *testing.T, base, method, path, auth, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case auth == "control":
		req.SetBasicAuth(cxonesim.DefaultAccessKeyID, cxonesim.DefaultAccessKeySecret)
	case auth != "":
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r
}

func token(t *testing.T, base, id, secret string) reply {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"accessKeyId": id, "accessKeySecret": secret})
	return do(t, base, "POST", "/authentication/v1/token/access-key", "", string(b))
}

// TestControlScriptsCalls: POST /sim/contacts answers the master contact id
// of a call that then shows in contacts/active; a refused script names the
// field at fault.
func TestControlScriptsCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{})
	r := do(t, b.url, "POST", "/sim/contacts", "control", `{"ani":"+18013203420","dnis":"8005550100","skillName":"Billing",
		"pointOfContact":"Billing Line","agentId":1001,"queueFor":"20s","talkFor":"2m","transferTo":{"agentId":"1002","after":"30s"}}`)
	if r.status != http.StatusCreated {
		t.Fatalf("POST /sim/contacts: %d %s", r.status, r.raw)
	}
	master := int64(r.body["masterContactId"].(float64))
	_, got := b.active(t, time.Time{})
	want(t, "scripted call", got, []contact{{master, master, 0, "InQueue", "None", "+18013203420"}})
	act, _ := b.client.ActiveContacts(context.Background(), time.Time{})
	if c := act.Contacts[0]; c.SkillName != "Billing" || c.PointOfContactName != "Billing Line" || c.ToAddress != "8005550100" || c.MediaTypeName != "Call" {
		t.Errorf("call attributes: %+v", c)
	}

	for _, tc := range []struct{ body, field string }{
		{`{"agentId":9999}`, "agentId: no agent 9999"},
		{`{"abandon":true,"agentId":1001}`, "agentId: an abandoned call"},
		{`{"abandon":true,"transferTo":{"agentId":1002,"after":"1s"}}`, "transferTo: an abandoned call"},
		{`{}`, "agentId: required unless abandon"},
		{`{"agentId":1001,"queueFor":"soon"}`, `queueFor: "soon" is not a duration`},
		{`{"agentId":1001,"talkFor":"1m","transferTo":{"agentId":1002,"after":"2m"}}`, "transferTo.after"},
		{`{"agentId":1001,"transferTo":{"agentId":1001,"after":"2s"}}`, "transferTo.agentId: the call is already with that agent"},
		{`{"agentId":"10x1"}`, "agentId"},
		{`{"agentId":1001,"skill":"Billing"}`, `unknown field "skill"`},
		{`{"agentId":1001,"ani":"` + strings.Repeat("9", 129) + `"}`, "ani: longer than 128 bytes"},
	} {
		r := do(t, b.url, "POST", "/sim/contacts", "control", tc.body)
		if desc, _ := r.body["error_description"].(string); r.status != http.StatusBadRequest || !strings.Contains(desc, tc.field) || r.body["error"] != "invalid_request" {
			t.Errorf("POST /sim/contacts %s: %d %s, want 400 naming %q", tc.body, r.status, r.raw, tc.field)
		}
	}
	if r := do(t, b.url, "POST", "/sim/contacts", "", `{"agentId":1001}`); r.status != http.StatusUnauthorized {
		t.Errorf("control without the access key: %d", r.status)
	}
}

// TestControlAddsAgents: an agent added through POST /sim/agents is what
// the Admin API answers for its id.
func TestControlAddsAgents(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{})
	r := do(t, b.url, "POST", "/sim/agents", "control", `{"agentId":2001,"userName":"lane@example.org","emailAddress":"Lois.Lane@Example.org","firstName":"Lois","lastName":"Lane"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("POST /sim/agents: %d %s", r.status, r.raw)
	}
	a, err := b.client.Agent(context.Background(), "2001")
	if err != nil || a.EmailAddress != "Lois.Lane@Example.org" || a.UserName != "lane@example.org" || a.FirstName != "Lois" || !a.IsActive {
		t.Errorf("agent 2001: %+v, %v", a, err)
	}
	r = do(t, b.url, "POST", "/sim/agents", "control", `{"userName":"next@example.org"}`)
	if r.status != http.StatusCreated || r.body["agentId"].(float64) != 2002 {
		t.Errorf("an agent without an id gets the next one: %d %s", r.status, r.raw)
	}
	for _, body := range []string{`{"agentId":2003}`, `{"userName":"x","emailAddress":"not-an-address"}`} {
		if r := do(t, b.url, "POST", "/sim/agents", "control", body); r.status != http.StatusBadRequest {
			t.Errorf("POST /sim/agents %s: %d %s, want 400", body, r.status, r.raw)
		}
	}
}

// TestDefaultAgents: the ServiceNow simulator's agents, ids 1001..1005,
// with their e-mail addresses.
func TestDefaultAgents(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{})
	for id, email := range map[string]string{"1001": "jdoe@example.com", "1002": "asmith@example.com", "1003": "bwayne@example.com",
		"1004": "ckent@example.com", "1005": "dprince@example.com"} {
		a, err := b.client.Agent(context.Background(), id)
		if err != nil || a.EmailAddress != email {
			t.Errorf("agent %s: %+v, %v; want %s", id, a, err, email)
		}
	}
}

// TestTokens: the access key buys a token that opens the APIs until it
// expires or is revoked; a wrong secret, no token and an unknown token are
// refused with CXone's error envelope.
func TestTokens(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{TokenTTL: time.Hour})
	const agent = "/incontactapi/services/v30.0/agents/1001"
	if r := token(t, b.url, cxonesim.DefaultAccessKeyID, "wrong"); r.status != http.StatusUnauthorized || r.body["error"] != "invalid_client" {
		t.Errorf("wrong secret: %d %s", r.status, r.raw)
	}
	if r := do(t, b.url, "POST", "/authentication/v1/token/access-key", "", `{"accessKeyId":"cxonesim"}`); r.status != http.StatusBadRequest {
		t.Errorf("no secret: %d %s", r.status, r.raw)
	}
	r := token(t, b.url, cxonesim.DefaultAccessKeyID, cxonesim.DefaultAccessKeySecret)
	tok, _ := r.body["access_token"].(string)
	if r.status != http.StatusOK || strings.Count(tok, ".") != 2 || r.body["expires_in"].(float64) != 3600 || r.body["token_type"] != "Bearer" {
		t.Fatalf("token: %d %s", r.status, r.raw)
	}
	if r := do(t, b.url, "GET", agent, "Bearer "+tok, ""); r.status != http.StatusOK {
		t.Errorf("with the token: %d %s", r.status, r.raw)
	}
	// Paths are matched as CXone's servers match them: any version, any case.
	if r := do(t, b.url, "GET", "/inContactAPI/services/v26.0/agents/1001", "Bearer "+tok, ""); r.status != http.StatusOK {
		t.Errorf("another version, another case: %d %s", r.status, r.raw)
	}
	for _, auth := range []string{"", "Bearer nonsense"} {
		if r := do(t, b.url, "GET", agent, auth, ""); r.status != http.StatusUnauthorized || r.body["error"] != "invalid_token" {
			t.Errorf("auth %q: %d %s", auth, r.status, r.raw)
		}
	}
	b.clock.Add(time.Hour)
	if r := do(t, b.url, "GET", agent, "Bearer "+tok, ""); r.status != http.StatusUnauthorized {
		t.Errorf("expired token: %d %s", r.status, r.raw)
	}
	tok = token(t, b.url, cxonesim.DefaultAccessKeyID, cxonesim.DefaultAccessKeySecret).body["access_token"].(string)
	if r := do(t, b.url, "POST", "/sim/revoke-tokens", "control", ""); r.status != http.StatusNoContent {
		t.Fatalf("revoke: %d", r.status)
	}
	if r := do(t, b.url, "GET", agent, "Bearer "+tok, ""); r.status != http.StatusUnauthorized {
		t.Errorf("revoked token: %d %s", r.status, r.raw)
	}
}

// TestDiscoveryDocument: the tenant's document names the simulator as the
// API endpoint; another tenant is unknown.
func TestDiscoveryDocument(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{})
	r := do(t, b.url, "GET", "/.well-known/cxone-configuration?tenantId="+cxonesim.DefaultTenantID, "", "")
	if r.status != http.StatusOK || r.body["api_endpoint"] != b.url {
		t.Errorf("discovery: %d %s", r.status, r.raw)
	}
	if r := do(t, b.url, "GET", "/.well-known/cxone-configuration?tenantId=someone-else", "", ""); r.status != http.StatusNotFound {
		t.Errorf("unknown tenant: %d %s", r.status, r.raw)
	}
}

// TestFaults: scripted failures, a service that is down, and the rate
// limit, set through PUT /sim/faults.
func TestFaults(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{})
	tok := "Bearer " + token(t, b.url, cxonesim.DefaultAccessKeyID, cxonesim.DefaultAccessKeySecret).body["access_token"].(string)
	const agent = "/incontactapi/services/v30.0/agents/1001"
	put := func(body string) {
		t.Helper()
		if r := do(t, b.url, "PUT", "/sim/faults", "control", body); r.status != http.StatusNoContent {
			t.Fatalf("PUT /sim/faults %s: %d %s", body, r.status, r.raw)
		}
	}
	put(`{"failNext":{"count":2,"status":503,"path":"contacts"}}`)
	if r := do(t, b.url, "GET", agent, tok, ""); r.status != http.StatusOK {
		t.Errorf("a path the failure does not name: %d", r.status)
	}
	for i := 0; i < 2; i++ {
		if r := do(t, b.url, "GET", "/incontactapi/services/v30.0/contacts/active", tok, ""); r.status != http.StatusServiceUnavailable || r.body["error"] != "server_error" {
			t.Errorf("scripted failure %d: %d %s", i, r.status, r.raw)
		}
	}
	if r := do(t, b.url, "GET", "/incontactapi/services/v30.0/contacts/active", tok, ""); r.status != http.StatusNoContent {
		t.Errorf("after the scripted failures: %d %s", r.status, r.raw)
	}

	put(`{"down":true}`)
	if r := do(t, b.url, "GET", agent, tok, ""); r.status != http.StatusServiceUnavailable || !strings.Contains(r.raw, "<html>") {
		t.Errorf("down: %d %s", r.status, r.raw)
	}
	put(`{"down":false,"rateLimitPerMinute":2}`)
	var statuses []int
	for i := 0; i < 3; i++ {
		r := do(t, b.url, "GET", agent, tok, "")
		statuses = append(statuses, r.status)
		if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") != "" {
			t.Errorf("429 with Retry-After %q: CXone sends none", r.header.Get("Retry-After"))
		}
	}
	if statuses[0] != 200 || statuses[1] != 200 || statuses[2] != 429 {
		t.Errorf("rate limit 2 a minute: %v", statuses)
	}
	b.clock.Add(time.Minute)
	if r := do(t, b.url, "GET", agent, tok, ""); r.status != http.StatusOK {
		t.Errorf("next minute: %d", r.status)
	}
	for _, body := range []string{`{"errorRate":2}`, `{"latency":"soon"}`, `{"failNext":{"count":1,"status":200}}`, `{"speed":1}`} {
		if r := do(t, b.url, "PUT", "/sim/faults", "control", body); r.status != http.StatusBadRequest {
			t.Errorf("PUT /sim/faults %s: %d %s, want 400", body, r.status, r.raw)
		}
	}
	r := do(t, b.url, "GET", "/sim/faults", "control", "")
	if r.status != http.StatusOK || r.body["rateLimitPerMinute"].(float64) != 2 || r.body["latency"] != "0s" {
		t.Errorf("GET /sim/faults: %d %s", r.status, r.raw)
	}
}

// TestListParameters: a bad updatedSince or page size is refused naming
// the parameter; completed contacts need a time to start from.
func TestListParameters(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{})
	tok := "Bearer " + token(t, b.url, cxonesim.DefaultAccessKeyID, cxonesim.DefaultAccessKeySecret).body["access_token"].(string)
	for path, field := range map[string]string{
		"/incontactapi/services/v30.0/contacts/active?updatedSince=yesterday":  "updatedSince",
		"/incontactapi/services/v30.0/contacts/active?top=0":                   "top",
		"/incontactapi/services/v30.0/contacts/completed":                      "updatedSince",
		"/incontactapi/services/v30.0/contacts/completed?startDate=2026-01-01": "endDate",
	} {
		if r := do(t, b.url, "GET", path, tok, ""); r.status != http.StatusBadRequest || !strings.Contains(r.raw, field) {
			t.Errorf("GET %s: %d %s, want 400 naming %s", path, r.status, r.raw, field)
		}
	}
}

// TestCXoneSimMainServesUntilCancelled runs `ctibridge cxonesim` as a user would.
func TestCXoneSimMainServesUntilCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- cxonesim.Main(ctx, []string{"--addr", "127.0.0.1:0", "--latency", "1ms", "--token-ttl", "10m"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	base := regexp.MustCompile(`http://127\.0\.0\.1:\d+`).FindString(line)
	if base == "" || !strings.Contains(line, "cxonesim/cxonesim-secret") || !strings.Contains(line, "1001 jdoe@example.com") {
		t.Fatalf("banner %q", line)
	}
	r := token(t, base, cxonesim.DefaultAccessKeyID, cxonesim.DefaultAccessKeySecret)
	if r.status != http.StatusOK || r.body["expires_in"].(float64) != 600 {
		t.Errorf("token from the command: %d %s", r.status, r.raw)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Main after interrupt: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Main did not stop")
	}
	if err := cxonesim.Main(context.Background(), []string{"--error-rate", "2"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--error-rate") {
		t.Errorf("bad flag: %v", err)
	}
}
