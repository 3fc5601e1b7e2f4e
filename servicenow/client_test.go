package servicenow_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/secret"
	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/snowsim"
)

const (
	userPass     = "cti_integration"
	clientSecret = "ctibridge-secret"
)

// env is a simulator and a client on it.
type env struct {
	sim  *snowsim.Server
	srv  *httptest.Server
	c    *servicenow.Client
	logs *bytes.Buffer

	mu   sync.Mutex
	seen []servicenow.RequestInfo
}

func newEnv(t testing.TB, opts snowsim.Options, auth servicenow.Auth, tweak ...func(*servicenow.Config)) *env {
	t.Helper()
	e := &env{sim: snowsim.New(opts), logs: &bytes.Buffer{}}
	e.srv = httptest.NewServer(e.sim)
	t.Cleanup(e.srv.Close)
	cfg := servicenow.Config{
		Instance: e.srv.URL, Auth: auth, RequestsPerHour: -1,
		Logger:  slog.New(slog.NewTextHandler(syncWriter{e}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Observe: func(ri servicenow.RequestInfo) { e.mu.Lock(); e.seen = append(e.seen, ri); e.mu.Unlock() },
		Retry:   servicenow.RetryPolicy{Base: 5 * time.Millisecond, Max: 20 * time.Millisecond},
	}
	for _, f := range tweak {
		f(&cfg)
	}
	c, err := servicenow.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	return e
}

type syncWriter struct{ e *env }

func (w syncWriter) Write(p []byte) (int, error) {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	return w.e.logs.Write(p)
}

// oauthCalls counts token requests by kind ("login", "refresh_token").
func (e *env) oauthCalls(kind string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ri := range e.seen {
		if ri.Op == "oauth" && ri.Table == kind {
			n++
		}
	}
	return n
}

var (
	basic    = servicenow.Auth{Method: servicenow.AuthBasic, Username: "cti_integration", Password: secret.Secret(userPass)}
	password = servicenow.Auth{Method: servicenow.AuthOAuthPassword, Username: "cti_integration", Password: secret.Secret(userPass),
		ClientID: "ctibridge", ClientSecret: secret.Secret(clientSecret)}
	clientCreds = servicenow.Auth{Method: servicenow.AuthOAuthClientCredentials, ClientID: "ctibridge", ClientSecret: secret.Secret(clientSecret)}
)

func listOne(t *testing.T, c *servicenow.Client) []servicenow.Record {
	t.Helper()
	recs, err := c.List(context.Background(), "sys_user", servicenow.ListOptions{
		Query: "user_name=jdoe", Fields: []string{"sys_id", "user_name", "email"}})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(recs) != 1 || recs[0].Get("user_name") != "jdoe" {
		t.Fatalf("list: got %v, want jdoe", recs)
	}
	return recs
}

// hardenedExcept is the simulator's default, hardened instance with some
// behaviours changed.
func hardenedExcept(change func(h *snowsim.Hardening)) snowsim.Options {
	h := snowsim.DefaultHardening()
	change(&h)
	return snowsim.Options{Hardening: &h}
}

// withoutSessions: an instance session authenticates a request by its cookie
// alone, so a test of what happens to a token must not have one.
var withoutSessions = hardenedExcept(func(h *snowsim.Hardening) { h.Sessions = false })

func TestAuthMethods(t *testing.T) {
	// An instance whose admin enabled the client credentials grant.
	enabled := hardenedExcept(func(h *snowsim.Hardening) { h.RefuseClientCredentials = false })
	for name, auth := range map[string]servicenow.Auth{"basic": basic, "oauth password": password, "oauth client credentials": clientCreds} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, enabled, auth)
			listOne(t, e.c)
			listOne(t, e.c)
			if auth.Method != servicenow.AuthBasic && e.oauthCalls("login") != 1 {
				t.Errorf("logins = %d, want 1 (token cached)", e.oauthCalls("login"))
			}
		})
	}
}

func TestWrongCredentialsArePermanent(t *testing.T) {
	for name, auth := range map[string]servicenow.Auth{
		"basic":        {Method: servicenow.AuthBasic, Username: "cti_integration", Password: "nope"},
		"oauth secret": {Method: servicenow.AuthOAuthPassword, Username: "cti_integration", Password: secret.Secret(userPass), ClientID: "ctibridge", ClientSecret: "nope"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, snowsim.Options{}, auth)
			_, err := e.c.List(context.Background(), "sys_user", servicenow.ListOptions{Limit: 1})
			var se *servicenow.Error
			if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || se.Temporary() {
				t.Fatalf("err = %v, want a permanent 401", err)
			}
			if strings.Contains(err.Error(), "nope") || strings.Contains(e.logs.String(), "nope") {
				t.Errorf("the wrong secret leaked: %v / %s", err, e.logs.String())
			}
		})
	}
}

func TestExpiredTokenIsRenewedUnnoticed(t *testing.T) {
	e := newEnv(t, snowsim.Options{TokenTTL: time.Second}, password)
	listOne(t, e.c)
	time.Sleep(1100 * time.Millisecond) // the instance's token is now expired
	listOne(t, e.c)
	if got := e.oauthCalls("refresh_token"); got != 1 {
		t.Errorf("refreshes = %d, want 1", got)
	}
	if got := e.oauthCalls("login"); got != 1 {
		t.Errorf("logins = %d, want 1 (the refresh token was good)", got)
	}
}

func TestRevokedTokenRetriedOnceWithAFreshOne(t *testing.T) {
	e := newEnv(t, withoutSessions, password)
	listOne(t, e.c)
	e.sim.RevokeAccessTokens() // the next request gets a 401
	listOne(t, e.c)
	if got := e.oauthCalls("refresh_token"); got != 1 {
		t.Errorf("refreshes = %d, want 1", got)
	}
}

func TestRefusedRefreshTokenLeadsToFreshLogin(t *testing.T) {
	e := newEnv(t, withoutSessions, password)
	listOne(t, e.c)
	e.sim.RevokeAccessTokens()
	e.sim.RevokeRefreshTokens()
	listOne(t, e.c)
	if got := e.oauthCalls("login"); got != 2 {
		t.Errorf("logins = %d, want 2 (first, then after the refused refresh)", got)
	}
}

func TestRetryAfterIsObeyed(t *testing.T) {
	e := newEnv(t, snowsim.Options{}, basic)
	e.sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 1, Status: 429, RetryAfter: 2}})
	start := time.Now()
	var wg sync.WaitGroup
	var other time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		for e.c.Budget().Throttled429 == 0 { // after the 429
			time.Sleep(5 * time.Millisecond)
		}
		s := time.Now()
		listOne(t, e.c)
		other = time.Since(s)
	}()
	listOne(t, e.c)
	wg.Wait()
	if d := time.Since(start); d < 1900*time.Millisecond {
		t.Errorf("call returned after %v, want it to wait the 2s Retry-After", d)
	}
	if other < 1500*time.Millisecond {
		t.Errorf("a concurrent call went through after %v: the whole client must back off", other)
	}
	if b := e.c.Budget(); b.Throttled429 != 1 {
		t.Errorf("Throttled429 = %d, want 1", b.Throttled429)
	}
}

func TestServerErrorBurstIsSurvived(t *testing.T) {
	e := newEnv(t, snowsim.Options{}, basic)
	e.sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 2, Status: 503}})
	listOne(t, e.c)
	e.sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 5, Status: 500}})
	_, err := e.c.List(context.Background(), "sys_user", servicenow.ListOptions{Limit: 1})
	var se *servicenow.Error
	if !errors.As(err, &se) || se.Status != 500 || !se.Temporary() {
		t.Fatalf("after 3 attempts: err = %v, want a temporary 500", err)
	}
}

func TestCreateWithLostReplyMakesOneRecord(t *testing.T) {
	e := newEnv(t, snowsim.Options{}, basic)
	before := len(e.sim.Records("interaction"))
	e.sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 1, Drop: true, Table: "interaction", Method: "POST"}})
	id := "0123456789abcdef0123456789abcdef"
	rec, err := e.c.Insert(context.Background(), "interaction", map[string]string{"type": "phone", "state": "new"}, servicenow.InsertOptions{SysID: id})
	if err != nil {
		t.Fatalf("insert: %v", err)
	}
	if rec.SysID() != id || !strings.HasPrefix(rec.Get("number"), "IMS") {
		t.Errorf("record = %v, want sys_id %s and a number", rec, id)
	}
	if got := len(e.sim.Records("interaction")) - before; got != 1 {
		t.Fatalf("interactions created = %d, want exactly 1", got)
	}

	// Without a chosen sys_id the client cannot tell: it does not repeat the
	// create and says the failure is worth retrying by someone who can check.
	e.sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 1, Drop: true, Table: "interaction", Method: "POST"}})
	_, err = e.c.Insert(context.Background(), "interaction", map[string]string{"type": "phone"}, servicenow.InsertOptions{})
	var se *servicenow.Error
	if !errors.As(err, &se) || !se.Temporary() {
		t.Fatalf("err = %v, want a temporary error", err)
	}
	if got := len(e.sim.Records("interaction")) - before; got != 2 {
		t.Fatalf("interactions = %d, want 2 (no blind repeat)", got)
	}
}

func TestDuplicateSysID(t *testing.T) {
	e := newEnv(t, snowsim.Options{}, basic)
	id := "fedcba9876543210fedcba9876543210"
	ctx := context.Background()
	if _, err := e.c.Insert(ctx, "interaction", map[string]string{"type": "phone"}, servicenow.InsertOptions{SysID: id}); err != nil {
		t.Fatal(err)
	}
	_, err := e.c.Insert(ctx, "interaction", map[string]string{"type": "phone"}, servicenow.InsertOptions{SysID: id})
	if !errors.Is(err, servicenow.ErrDuplicateSysID) {
		t.Fatalf("second insert: err = %v, want ErrDuplicateSysID", err)
	}
}

func TestPermissionDeniedNamesTableAndOperation(t *testing.T) {
	e := newEnv(t, snowsim.Options{}, basic)
	ctx := context.Background()
	rec, err := e.c.Insert(ctx, "interaction", map[string]string{"type": "phone"}, servicenow.InsertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = e.c.Delete(ctx, "interaction", rec.SysID())
	var se *servicenow.Error
	if !errors.As(err, &se) || se.Status != 403 || se.Temporary() || se.Table != "interaction" || se.Op != "delete" {
		t.Fatalf("err = %#v, want a permanent 403 on delete interaction", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "delete interaction") || !strings.Contains(msg, "Operation Failed") || !strings.Contains(msg, "ACL Exception Delete Failed") {
		t.Errorf("message %q should name the operation, table and ServiceNow's message", msg)
	}
	e.mu.Lock()
	n := len(e.seen)
	e.mu.Unlock()
	if n != 2 {
		t.Errorf("requests = %d, want 2 (a 403 is not retried)", n)
	}
}

func TestRecordShapes(t *testing.T) {
	e := newEnv(t, snowsim.Options{}, servicenow.Auth{Method: servicenow.AuthBasic, Username: "admin", Password: "admin"})
	ctx := context.Background()
	users, err := e.c.List(ctx, "sys_user", servicenow.ListOptions{Query: "user_name=jdoe", Fields: []string{"sys_id", "name"}})
	if err != nil || len(users) != 1 {
		t.Fatalf("users %v %v", users, err)
	}
	rec, err := e.c.Insert(ctx, "interaction", map[string]string{"type": "phone", "assigned_to": users[0].SysID()}, servicenow.InsertOptions{WholeRecord: true})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Get("assigned_to") != users[0].SysID() || !strings.HasSuffix(rec.Link("assigned_to"), "/sys_user/"+users[0].SysID()) {
		t.Errorf("reference: value %q link %q", rec.Get("assigned_to"), rec.Link("assigned_to"))
	}
	if _, ok := rec["short_description"]; !ok {
		t.Errorf("whole record asked for, fields %v", slices.Sorted(maps.Keys(rec)))
	}
	// By default a write's reply carries what was written and the system
	// fields a writer reads, references as plain sys_ids.
	want := []string{"assigned_to", "number", "sys_created_by", "sys_id", "sys_mod_count", "sys_updated_by", "type"}
	small, err := e.c.Insert(ctx, "interaction", map[string]string{"type": "phone", "assigned_to": users[0].SysID()}, servicenow.InsertOptions{})
	if got := slices.Sorted(maps.Keys(small)); err != nil || !slices.Equal(got, want) || small["assigned_to"] != users[0].SysID() {
		t.Errorf("create's reply: %v, %v; want the fields %v, assigned_to a plain sys_id", small, err, want)
	}
	patched, err := e.c.Patch(ctx, "interaction", small.SysID(), map[string]string{"state": "closed_complete"})
	want = []string{"number", "state", "sys_created_by", "sys_id", "sys_mod_count", "sys_updated_by"}
	if got := slices.Sorted(maps.Keys(patched)); err != nil || !slices.Equal(got, want) || patched["sys_mod_count"] != "1" {
		t.Errorf("update's reply: %v, %v; want the fields %v, sys_mod_count 1", patched, err, want)
	}
	all, err := e.c.List(ctx, "interaction", servicenow.ListOptions{Query: "sys_id=" + rec.SysID(), DisplayValue: "all"})
	if err != nil || len(all) != 1 {
		t.Fatalf("list all: %v %v", all, err)
	}
	if all[0].Get("assigned_to") != users[0].SysID() || all[0].Display("assigned_to") != users[0].Get("name") {
		t.Errorf("display all: value %q display %q, want %q / %q", all[0].Get("assigned_to"), all[0].Display("assigned_to"), users[0].SysID(), users[0].Get("name"))
	}
	plain, err := e.c.Get(ctx, "interaction", rec.SysID())
	if err != nil || plain.Get("type") != "phone" || plain.Get("sys_mod_count") != "0" {
		t.Errorf("get: %v %v", plain, err)
	}
}

func TestCaretInValueCannotChangeTheQuery(t *testing.T) {
	e := newEnv(t, snowsim.Options{}, servicenow.Auth{Method: servicenow.AuthBasic, Username: "admin", Password: "admin"})
	ctx := context.Background()
	tricky := "Smith^NQactive=true"
	if _, err := e.c.Insert(ctx, "sys_user", map[string]string{"user_name": "tricky", "last_name": tricky}, servicenow.InsertOptions{}); err != nil {
		t.Fatal(err)
	}
	q, err := servicenow.Query().Eq("last_name", tricky).Encode()
	if err != nil {
		t.Fatal(err)
	}
	recs, err := e.c.List(ctx, "sys_user", servicenow.ListOptions{Query: q, Fields: []string{"user_name"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Get("user_name") != "tricky" {
		t.Fatalf("query %q matched %d records, want only the one named %q", q, len(recs), tricky)
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	auth := password
	auth.Password = "pa55-Very-Secret"
	auth.ClientSecret = "cl1ent-Very-Secret"
	sim := snowsim.New(snowsim.Options{Data: func() *snowsim.Dataset {
		d := snowsim.DefaultDataset()
		d.Users = append(d.Users, snowsim.User{UserName: "cti2", Password: "pa55-Very-Secret", Roles: []string{"cti_integration"}})
		d.OAuthClients = append(d.OAuthClients, snowsim.OAuthClient{ID: "c2", Secret: "cl1ent-Very-Secret"})
		return d
	}()})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	var logs bytes.Buffer
	var mu sync.Mutex
	var errs []string
	for _, a := range []servicenow.Auth{
		{Method: servicenow.AuthOAuthPassword, Username: "cti2", Password: auth.Password, ClientID: "c2", ClientSecret: auth.ClientSecret},
		{Method: servicenow.AuthOAuthPassword, Username: "cti2", Password: auth.Password, ClientID: "ctibridge", ClientSecret: auth.ClientSecret},
		{Method: servicenow.AuthBasic, Username: "cti2", Password: auth.Password},
		{Method: servicenow.AuthBasic, Username: "cti2", Password: auth.Password + "x"},
	} {
		c, err := servicenow.New(servicenow.Config{Instance: srv.URL, Auth: a,
			Logger: slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Retry:  servicenow.RetryPolicy{Base: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 1, Status: 503}})
		_, err = c.List(context.Background(), "sys_user", servicenow.ListOptions{Limit: 1})
		if err != nil {
			errs = append(errs, err.Error())
		}
		sim.RevokeAccessTokens()
		err = c.Delete(context.Background(), "sys_user", "0123456789abcdef0123456789abcdef")
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) < 3 {
		t.Fatalf("expected failures to inspect, got %v", errs)
	}
	all := logs.String() + strings.Join(errs, "\n")
	for _, s := range []string{"pa55-Very-Secret", "cl1ent-Very-Secret", "Basic "} {
		if strings.Contains(all, s) {
			t.Errorf("%q appears in logs or errors:\n%s", s, all)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestBudgetCountsAndCaps(t *testing.T) {
	e := newEnv(t, snowsim.Options{Faults: snowsim.Faults{Latency: 20 * time.Millisecond}}, basic, func(c *servicenow.Config) {
		c.MaxConcurrent = 2
		c.RequestsPerHour = 100000
	})
	var wg sync.WaitGroup
	var peak int64
	var pmu sync.Mutex
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			listOne(t, e.c)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for loop := true; loop; {
		select {
		case <-done:
			loop = false
		default:
			pmu.Lock()
			peak = max(peak, e.c.Budget().InFlight)
			pmu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}
	b := e.c.Budget()
	if b.UsedLastHour != 10 || b.LimitPerHour != 100000 || b.MaxConcurrent != 2 {
		t.Errorf("budget = %+v, want 10 used of 100000, cap 2", b)
	}
	if peak > 2 {
		t.Errorf("%d requests in flight at once, cap is 2", peak)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]servicenow.Config{
		"no instance":  {Auth: basic},
		"ftp instance": {Instance: "ftp://x", Auth: basic},
		"no method":    {Instance: "https://x.service-now.com"},
		"no password":  {Instance: "https://x.service-now.com", Auth: servicenow.Auth{Method: servicenow.AuthBasic, Username: "u"}},
		"no secret":    {Instance: "https://x.service-now.com", Auth: servicenow.Auth{Method: servicenow.AuthOAuthClientCredentials, ClientID: "c"}},
	} {
		if _, err := servicenow.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	c, _ := servicenow.New(servicenow.Config{Instance: "https://x.service-now.com", Auth: basic})
	if _, err := c.Get(context.Background(), "interaction", "../sys_user"); err == nil || !strings.Contains(err.Error(), "invalid sys_id") {
		t.Errorf("path in sys_id: err = %v", err)
	}
	if _, err := c.List(context.Background(), "sys_user?x=1", servicenow.ListOptions{}); err == nil || !strings.Contains(err.Error(), "invalid table") {
		t.Errorf("bad table: err = %v", err)
	}
}

// The integration user may create interaction_related_record without
// reading it: a create whose reply was lost must still end in success.
func TestLostReplyOnCreateOnlyTable(t *testing.T) {
	e := newEnv(t, snowsim.Options{}, basic)
	e.sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 1, Drop: true, Table: "interaction_related_record"}})
	id := "00112233445566778899aabbccddeeff"
	rec, err := e.c.Insert(context.Background(), "interaction_related_record", map[string]string{"document_table": "incident"},
		servicenow.InsertOptions{SysID: id})
	if !errors.Is(err, servicenow.ErrUnconfirmed) || rec.SysID() != id {
		t.Fatalf("insert: %v %v, want the sys_id and ErrUnconfirmed", rec, err)
	}
	if n := len(e.sim.Records("interaction_related_record")); n != 1 {
		t.Errorf("%d records, want 1", n)
	}
}

// TestDuplicatesWithoutTheDatabaseText: on an instance that never shows the
// database's "Unique Key violation" text, a create whose reply was lost is
// still found, a second create of an existing sys_id is still recognised,
// and a create refused by an ACL is still a refusal.
func TestDuplicatesWithoutTheDatabaseText(t *testing.T) {
	e := newEnv(t, snowsim.Options{}, basic) // hardened: the generic text
	ctx := context.Background()

	e.sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 1, Drop: true, Table: "interaction", Method: "POST"}})
	id := "0123456789abcdef0123456789abcde0"
	rec, err := e.c.Insert(ctx, "interaction", map[string]string{"type": "phone"}, servicenow.InsertOptions{SysID: id})
	if err != nil || rec.SysID() != id || rec.Get("number") == "" {
		t.Fatalf("create after a lost reply: %v %v, want the record", rec, err)
	}

	rec, err = e.c.Insert(ctx, "interaction", map[string]string{"type": "phone"}, servicenow.InsertOptions{SysID: id})
	if !errors.Is(err, servicenow.ErrDuplicateSysID) || rec.SysID() != id {
		t.Fatalf("second create: %v %v, want ErrDuplicateSysID with the record", rec, err)
	}
	var se *servicenow.Error
	if !errors.As(err, &se) || se.Status != http.StatusForbidden {
		t.Errorf("second create: %v, want ServiceNow's 403 kept", err)
	}

	// cti_integration may not create users: a refusal, not a duplicate.
	_, err = e.c.Insert(ctx, "sys_user", map[string]string{"user_name": "x"}, servicenow.InsertOptions{SysID: "0123456789abcdef0123456789abcde1"})
	if errors.Is(err, servicenow.ErrDuplicateSysID) || errors.Is(err, servicenow.ErrUnconfirmed) || !errors.As(err, &se) || se.Status != http.StatusForbidden {
		t.Fatalf("create refused by an ACL: %v, want the 403 as it is", err)
	}

	// A link created by an earlier call whose reply was lost: the user may
	// not read links, so the refusal is taken as that call's success.
	link := "0123456789abcdef0123456789abcde2"
	e.sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 1, Drop: true, Table: "interaction_related_record"}})
	e.c.Insert(ctx, "interaction_related_record", map[string]string{"document_table": "incident"}, servicenow.InsertOptions{SysID: link})
	_, err = e.c.Insert(ctx, "interaction_related_record", map[string]string{"document_table": "incident"}, servicenow.InsertOptions{SysID: link})
	if errors.Is(err, servicenow.ErrUnconfirmed) || err == nil {
		t.Fatalf("without MayExist a refused link is a refusal, got %v", err)
	}
	rec, err = e.c.Insert(ctx, "interaction_related_record", map[string]string{"document_table": "incident"}, servicenow.InsertOptions{SysID: link, MayExist: true})
	if !errors.Is(err, servicenow.ErrUnconfirmed) || rec.SysID() != link {
		t.Fatalf("with MayExist: %v %v, want ErrUnconfirmed and the sys_id", rec, err)
	}
}

func TestIgnoredSysIDIsReported(t *testing.T) {
	e := newEnv(t, snowsim.Options{IgnoreClientSysID: true}, basic)
	want := "abcdefabcdefabcdefabcdefabcdef12"
	rec, err := e.c.Insert(context.Background(), "interaction", map[string]string{"type": "phone"}, servicenow.InsertOptions{SysID: want})
	if !errors.Is(err, servicenow.ErrSysIDIgnored) || rec.SysID() == "" || rec.SysID() == want {
		t.Fatalf("rec %v err %v, want the created record and ErrSysIDIgnored", rec.SysID(), err)
	}
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), rec.SysID()) {
		t.Errorf("error %q should name both sys_ids", err)
	}
}

// TestHTMLReplyIsTransient: a hibernating instance (or a proxy) answering
// 200 with a web page is not a permanent failure.
func TestHTMLReplyIsTransient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html><body>Your instance is hibernating. Sign in to wake it.</body></html>"))
	}))
	defer srv.Close()
	c, err := servicenow.New(servicenow.Config{Instance: srv.URL, Auth: basic, Retry: servicenow.RetryPolicy{Attempts: 2, Base: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.List(context.Background(), "sys_user", servicenow.ListOptions{Limit: 1})
	var se *servicenow.Error
	if !errors.As(err, &se) || !se.Temporary() || !strings.Contains(err.Error(), "hibernating") {
		t.Fatalf("err = %v, want a temporary error showing what came back", err)
	}
}

// TestOneSessionAndTheInstancesRateLimit: an instance opens a session for
// every request that carries no session cookie, and sends its rate-limit
// rule on every reply. The client keeps one session and sizes its budget to
// nine tenths of the rule.
func TestOneSessionAndTheInstancesRateLimit(t *testing.T) {
	e := newEnv(t, snowsim.Options{Faults: snowsim.Faults{RateLimitPerHour: 1000}}, basic)
	for range 20 {
		if _, err := e.c.List(context.Background(), "sys_user", servicenow.ListOptions{Query: "user_name=jdoe", Limit: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.sim.Stats().SessionsCreated; n != 1 {
		t.Errorf("%d sessions opened on the instance for 20 requests, want 1", n)
	}
	if b := e.c.Budget(); b.InstanceLimit != 1000 || b.LimitPerHour != 900 {
		t.Errorf("budget %+v, want the instance's 1000/h seen and 900/h in force", b)
	}
}
