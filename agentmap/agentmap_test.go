package agentmap_test

import (
	"context"
	"github.com/ctibridge/ctibridge"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/agentmap"
	"github.com/ctibridge/ctibridge/cxone"
	"github.com/ctibridge/ctibridge/cxonesim"
	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/snowsim"
)

func setup(t *testing.T, o agentmap.Options) (*agentmap.Finder, *snowsim.Server) {
	t.Helper()
	sim := snowsim.New(snowsim.Options{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sn, err := servicenow.New(servicenow.Config{Instance: srv.URL, RequestsPerHour: -1,
		Auth: servicenow.Auth{Method: servicenow.AuthBasic, Username: "cti_integration", Password: "cti_integration"}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := agentmap.New(sn, o)
	if err != nil {
		t.Fatal(err)
	}
	return f, sim
}

func userID(sim *snowsim.Server, name string) string {
	if name == "" {
		return ""
	}
	for _, u := range sim.Records("sys_user") {
		if u["user_name"] == name {
			return u["sys_id"]
		}
	}
	return ""
}

func find(t *testing.T, f *agentmap.Finder, a ctibridge.Agent) ctibridge.AgentUser {
	t.Helper()
	u, err := f.FindAgent(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestStrategies(t *testing.T) {
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "agents.csv")
	// Built-in users have fixed sys_ids, so the map can name one.
	dprince := userID(snowsim.New(snowsim.Options{}), "dprince")
	os.WriteFile(csvPath, []byte("agent_id,servicenow\n5001,ckent\n5002,"+dprince+"\n"), 0o600)
	f, sim := setup(t, agentmap.Options{MapFile: csvPath})
	for _, tc := range []struct {
		name string
		a    ctibridge.Agent
		want string // user_name, "" = unmapped
		how  string
	}{
		{"map to user_name", ctibridge.Agent{ID: "5001", UserName: "jdoe"}, "ckent", agentmap.ByMap},
		{"map to sys_id", ctibridge.Agent{ID: "5002"}, "dprince", agentmap.ByMap},
		{"user name", ctibridge.Agent{ID: "9", UserName: "asmith"}, "asmith", agentmap.ByUserName},
		{"e-mail, any case", ctibridge.Agent{ID: "9", Email: "BWayne@Example.COM"}, "bwayne", agentmap.ByEmail},
		{"user name wins over e-mail", ctibridge.Agent{UserName: "jdoe", Email: "asmith@example.com"}, "jdoe", agentmap.ByUserName},
		{"unknown", ctibridge.Agent{ID: "77", UserName: "temp.agent", Email: "temp@example.org"}, "", ""},
		{"caret in a name", ctibridge.Agent{UserName: "jdoe^NQuser_name=asmith"}, "", ""},
	} {
		u := find(t, f, tc.a)
		if want := userID(sim, tc.want); u.SysID != want || (tc.want != "" && u.How != tc.how) {
			t.Errorf("%s: got %+v, want %s by %s", tc.name, u, tc.want, tc.how)
		}
	}
}

func TestStrategyOrderAndCache(t *testing.T) {
	f, sim := setup(t, agentmap.Options{Strategies: []string{agentmap.ByEmail}, TTL: time.Minute})
	if u := find(t, f, ctibridge.Agent{UserName: "jdoe"}); u.SysID != "" {
		t.Errorf("user_name strategy not configured, yet mapped: %+v", u)
	}
	before := sim.Stats().Total
	for range 3 {
		if u := find(t, f, ctibridge.Agent{Email: "asmith@example.com"}); u.SysID != userID(sim, "asmith") {
			t.Fatalf("email: %+v", u)
		}
	}
	if got := sim.Stats().Total - before; got != 1 {
		t.Errorf("%d requests for 3 lookups of one agent, want 1", got)
	}
	if h, m := f.Stats(); h != 2 || m != 2 {
		t.Errorf("cache stats %d/%d, want 2 hits, 2 misses", h, m)
	}
}

func TestMapFileReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agents.yaml")
	os.WriteFile(path, []byte("\"5001\": jdoe\n"), 0o600)
	f, sim := setup(t, agentmap.Options{MapFile: path})
	if u := find(t, f, ctibridge.Agent{ID: "5001"}); u.SysID != userID(sim, "jdoe") {
		t.Fatalf("initial map: %+v", u)
	}
	os.WriteFile(path, []byte("\"5001\": asmith\n"), 0o600)
	later := time.Now().Add(time.Minute)
	os.Chtimes(path, later, later)
	deadline := time.Now().Add(10 * time.Second)
	for {
		u := find(t, f, ctibridge.Agent{ID: "5001"})
		if u.SysID == userID(sim, "asmith") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edited map not picked up: %+v", u)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A broken edit keeps the last good map.
	os.WriteFile(path, []byte("{{{"), 0o600)
	evenLater := later.Add(time.Minute)
	os.Chtimes(path, evenLater, evenLater)
	deadline = time.Now().Add(10 * time.Second)
	for f.MapFileError() == nil { // lookups re-read the file every few seconds
		if u := find(t, f, ctibridge.Agent{ID: "5001"}); u.SysID != userID(sim, "asmith") {
			t.Fatalf("broken map file replaced the good one: %+v", u)
		}
		if time.Now().After(deadline) {
			t.Fatal("the broken edit was never read")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if u := find(t, f, ctibridge.Agent{ID: "5001"}); u.SysID != userID(sim, "asmith") {
		t.Errorf("broken map file replaced the good one: %+v", u)
	}
}

func TestBadMapFileAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agents.txt")
	os.WriteFile(path, []byte("x"), 0o600)
	sn, _ := servicenow.New(servicenow.Config{Instance: "https://x.service-now.com",
		Auth: servicenow.Auth{Method: servicenow.AuthBasic, Username: "u", Password: "p"}})
	if _, err := agentmap.New(sn, agentmap.Options{MapFile: path}); err == nil {
		t.Error("a map file with an unknown extension was accepted")
	}
	if _, err := agentmap.New(sn, agentmap.Options{MapFile: filepath.Join(t.TempDir(), "missing.csv")}); err == nil {
		t.Error("a missing map file was accepted")
	}
}

// cxoneSetup is setup with a CXone simulator as the directory.
func cxoneSetup(t *testing.T, o agentmap.Options) (*agentmap.Finder, *snowsim.Server, *cxonesim.Server) {
	t.Helper()
	cx := cxonesim.New(cxonesim.Options{})
	srv := httptest.NewServer(cx)
	t.Cleanup(srv.Close)
	c, err := cxone.New(cxone.Config{AccessKeyID: cxonesim.DefaultAccessKeyID, AccessKeySecret: cxonesim.DefaultAccessKeySecret,
		APIBase: srv.URL, RequestsPerMinute: -1, MaxConcurrent: 32, Retry: cxone.RetryPolicy{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	o.Directory = c
	f, sim := setup(t, o)
	return f, sim, cx
}

// TestCXoneStrategy: an event that carries only the CXone agent id is
// mapped through the agent's CXone record: its e-mail finds the ServiceNow
// user. An id CXone does not know, or that is not a CXone id, is unmapped
// without an error.
func TestCXoneStrategy(t *testing.T) {
	t.Parallel()
	f, sim, cx := cxoneSetup(t, agentmap.Options{})
	for _, tc := range []struct {
		name string
		a    ctibridge.Agent
		want string // user_name, "" = unmapped
		how  string
	}{
		{"only the id", ctibridge.Agent{ID: "1001"}, "jdoe", agentmap.ByEmail},
		{"id and a user name that maps", ctibridge.Agent{ID: "1002", UserName: "asmith"}, "asmith", agentmap.ByUserName},
		{"an event with both is not completed", ctibridge.Agent{ID: "1003", UserName: "clark", Email: "ckent@example.com"}, "ckent", agentmap.ByEmail},
		{"unknown to CXone", ctibridge.Agent{ID: "9999"}, "", ""},
		{"not a CXone id", ctibridge.Agent{ID: "agent-jdoe"}, "", ""},
	} {
		u := find(t, f, tc.a)
		if want := userID(sim, tc.want); u.SysID != want || (tc.want != "" && u.How != tc.how) {
			t.Errorf("%s: got %+v, want %s by %s", tc.name, u, tc.want, tc.how)
		}
	}
	if got := cx.Stats().ByOp["agent"]; got != 3 {
		t.Errorf("%d CXone agent requests, want 3 (1001, 1002 and 9999; not 1003, whose event had both, nor agent-jdoe)", got)
	}
	// The record is cached: the same agent seen with other event fields
	// costs CXone nothing, and neither does an agent CXone does not know.
	find(t, f, ctibridge.Agent{ID: "1001", UserName: "nobody"})
	find(t, f, ctibridge.Agent{ID: "9999", UserName: "nobody"})
	if got := cx.Stats().ByOp["agent"]; got != 3 {
		t.Errorf("%d CXone agent requests after cached agents, want still 3", got)
	}
}

// TestCXoneOneRequestPerAgent: calls answered by one agent at the same
// moment ask CXone about that agent once.
func TestCXoneOneRequestPerAgent(t *testing.T) {
	t.Parallel()
	f, sim, cx := cxoneSetup(t, agentmap.Options{})
	cx.SetFaults(cxonesim.Faults{Latency: 50 * time.Millisecond})
	want := userID(sim, "dprince")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if u, err := f.FindAgent(context.Background(), ctibridge.Agent{ID: "1005"}); err != nil || u.SysID != want {
				t.Errorf("FindAgent: %+v, %v", u, err)
			}
		})
	}
	wg.Wait()
	if got := cx.Stats().ByOp["agent"]; got != 1 {
		t.Errorf("%d CXone requests for one agent, want 1", got)
	}
}

// TestCXoneFailureIsRetried: when CXone fails, the mapping fails (to be
// tried again) instead of leaving the agent unmapped; the next try maps it.
func TestCXoneFailureIsRetried(t *testing.T) {
	t.Parallel()
	f, sim, cx := cxoneSetup(t, agentmap.Options{})
	cx.SetFaults(cxonesim.Faults{FailNext: &cxonesim.FailNext{Count: 1, Status: 503, Path: "agents"}})
	if u, err := f.FindAgent(context.Background(), ctibridge.Agent{ID: "1004"}); err == nil || !strings.Contains(err.Error(), "by cxone") {
		t.Fatalf("CXone down: %+v, %v; want an error naming the cxone strategy", u, err)
	}
	if u := find(t, f, ctibridge.Agent{ID: "1004"}); u.SysID != userID(sim, "ckent") {
		t.Errorf("after CXone recovered: %+v", u)
	}
}

// TestCXoneNotInStrategies: strategies that leave cxone out never ask it.
func TestCXoneNotInStrategies(t *testing.T) {
	t.Parallel()
	f, _, cx := cxoneSetup(t, agentmap.Options{Strategies: []string{agentmap.ByUserName, agentmap.ByEmail}})
	if u := find(t, f, ctibridge.Agent{ID: "1001"}); u.SysID != "" {
		t.Errorf("mapped without CXone: %+v", u)
	}
	if got := cx.Stats().Total; got != 0 {
		t.Errorf("%d CXone requests", got)
	}
}
