package lifecycle

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/agentmap"
	"github.com/ctibridge/ctibridge/callerid"
	"github.com/ctibridge/ctibridge/secret"
	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/snowsim"
)

// stepsEnv is a reconciler wired to the (hardened) simulator, without a
// store: the steps are called directly.
type stepsEnv struct {
	r   *Reconciler
	sim *snowsim.Server
}

func newStepsEnv(t *testing.T) *stepsEnv {
	t.Helper()
	sim := snowsim.New(snowsim.Options{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sn, err := servicenow.New(servicenow.Config{Instance: srv.URL, RequestsPerHour: -1,
		Auth: servicenow.Auth{Method: servicenow.AuthBasic, Username: "cti_integration", Password: secret.Secret("cti_integration")}})
	if err != nil {
		t.Fatal(err)
	}
	agents, err := agentmap.New(sn, agentmap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{sn: snowClient{sn}, callers: callerid.NewFinder(sn, callerid.FinderOptions{}), agents: agents,
		norm: func(ani string) string { return callerid.Parse(ani, "US").E164 }}
	r.cfg.defaults()
	return &stepsEnv{r: r, sim: sim}
}

func (e *stepsEnv) user(t *testing.T, name string) string {
	t.Helper()
	for _, u := range e.sim.Records("sys_user") {
		if u["user_name"] == name {
			return u["sys_id"]
		}
	}
	t.Fatalf("no user %s", name)
	return ""
}

// TestStepsAgainstTheSimulator runs one call through the steps, moment by
// moment, and checks after each what an agent would see in ServiceNow and
// how many requests it cost.
func TestStepsAgainstTheSimulator(t *testing.T) {
	t.Parallel()
	e := newStepsEnv(t)
	ctx := context.Background()
	sysID := ctibridge.SysID("ns", "s1")
	at := func(s int) time.Time { return time.Date(2026, 11, 24, 9, 0, s, 0, time.UTC) }
	var evs []ctibridge.Event
	var s synced
	step := func(ev ctibridge.Event) (map[string]string, int64) {
		t.Helper()
		before := e.sim.Stats().Total
		ev.ReceivedAt = at(len(evs))
		evs = append(evs, ev)
		var err error
		if s, err = e.r.sync(ctx, "s1", sysID, ctibridge.Summarize("s1", evs), s, nil); err != nil {
			t.Fatalf("%s: %v", ev.Kind, err)
		}
		rec, ok := e.sim.Record("interaction", sysID)
		if !ok {
			t.Fatalf("%s: no interaction", ev.Kind)
		}
		return rec, e.sim.Stats().Total - before
	}
	journal := func() string {
		var all []string
		for _, j := range e.sim.Journal("interaction", sysID, "work_notes") {
			all = append(all, j.Value)
		}
		return strings.Join(all, "\n")
	}

	// Queued: identify the caller and their open incidents, create with
	// everything known, link the incidents.
	rec, n := step(ctibridge.Event{Kind: ctibridge.Queued, ANI: "801.320.3420", ContactID: "c1", SkillName: "Support"})
	if rec["state"] != "new" || rec["opened_for"] != e.user(t, "alice.caller") || rec["caller_phone_number"] != "+18013203420" ||
		rec["sys_mod_count"] != "0" || !strings.Contains(rec["short_description"], "skill Support") {
		t.Errorf("after queued: %v; want new, Alice, E.164, the skill, all in the create", rec)
	}
	if links := len(e.sim.Records("interaction_related_record")); links != 2 || n != 5 {
		t.Errorf("after queued: %d links in %d requests; want Alice's 2 incidents in 5 (caller lookup, incidents, create, 2 links)", links, n)
	}
	// Answered: map the agent, assign, work in progress.
	rec, n = step(ctibridge.Event{Kind: ctibridge.Answered, AgentUserName: "jdoe", ContactID: "c1"})
	if rec["state"] != "work_in_progress" || rec["assigned_to"] != e.user(t, "jdoe") || n != 2 {
		t.Errorf("after answered: state %q assigned %q in %d requests; want work_in_progress, jdoe, 2 (agent lookup, update)", rec["state"], rec["assigned_to"], n)
	}
	// Transferred: follow the agent, one note.
	rec, n = step(ctibridge.Event{Kind: ctibridge.Transferred, AgentUserName: "asmith", ContactID: "c2"})
	if rec["assigned_to"] != e.user(t, "asmith") || strings.Count(journal(), "transferred from John Doe to Anna Smith") != 1 || n != 2 {
		t.Errorf("after transferred: assigned %q in %d requests, notes:\n%s", rec["assigned_to"], n, journal())
	}
	// Released: close, one note; a repeated attempt changes nothing.
	rec, n = step(ctibridge.Event{Kind: ctibridge.Released, Reason: "16"})
	if rec["state"] != "closed_complete" || strings.Count(journal(), "call ended. reason: 16") != 1 || n != 1 {
		t.Errorf("after released: state %q in %d requests, notes:\n%s", rec["state"], n, journal())
	}
	before := e.sim.Stats().Total
	if _, err := e.r.sync(ctx, "s1", sysID, ctibridge.Summarize("s1", evs), s, nil); err != nil || e.sim.Stats().Total != before {
		t.Errorf("a repeated attempt: %v, %d requests; want none", err, e.sim.Stats().Total-before)
	}
}

// TestRetryPolicy: what the reconciler makes of ServiceNow's answers.
func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	r := &Reconciler{}
	r.cfg.defaults()
	for _, tc := range []struct {
		err       error
		permanent bool
		atLeast   time.Duration
	}{
		{&servicenow.Error{Op: "create", Status: http.StatusTooManyRequests, RetryAfter: 30 * time.Second}, false, 30 * time.Second},
		{&servicenow.Error{Op: "create", Status: http.StatusServiceUnavailable}, false, 0},
		{&servicenow.Error{Op: "update", Status: http.StatusForbidden, Message: "Operation Failed", Detail: "Data Policy Exception"}, true, 0},
		{&servicenow.Error{Op: "create", Status: http.StatusBadRequest}, true, 0},
		{context.DeadlineExceeded, false, 0},
	} {
		f := classify(failed(ctibridge.StepCreate, tc.err))
		if f.permanent != tc.permanent {
			t.Errorf("%v: permanent %v, want %v", tc.err, f.permanent, tc.permanent)
		}
		if d := r.backoff(1, f.retryAfter); d < tc.atLeast || d <= 0 || d > r.cfg.MaxBackoff+tc.atLeast {
			t.Errorf("%v: first retry after %s, want at least %s", tc.err, d, tc.atLeast)
		}
	}
	for attempt := 1; attempt < 30; attempt++ {
		if d := r.backoff(attempt, 0); d > r.cfg.MaxBackoff {
			t.Fatalf("attempt %d waits %s, more than maxBackoff %s", attempt, d, r.cfg.MaxBackoff)
		}
	}
	if msg := failed(ctibridge.StepCreate, &servicenow.Error{Op: "create", Table: "interaction", Status: 403}).Error(); strings.Count(msg, "create interaction") != 1 {
		t.Errorf("message %q names the step other than once", msg)
	}
}
