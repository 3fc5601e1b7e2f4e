package lifecycle

import (
	"github.com/ctibridge/ctibridge"

	"context"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/store"
)

// down is a ServiceNow that answers every request with 503.
type down struct{}

func (down) insertAll(_ context.Context, _ string, rows []newRow) ([]inserted, []error) {
	errs := make([]error, len(rows))
	for i := range errs {
		errs[i] = &servicenow.Error{Op: "create", Status: http.StatusServiceUnavailable}
	}
	return make([]inserted, len(rows)), errs
}
func (down) patch(context.Context, string, string, map[string]string, bool) (map[string]string, error) {
	return nil, &servicenow.Error{Op: "update", Status: http.StatusServiceUnavailable}
}
func (down) get(context.Context, string, string) (map[string]string, error) {
	return nil, &servicenow.Error{Op: "read", Status: http.StatusServiceUnavailable}
}

type noAgents struct{}

func (noAgents) FindAgent(context.Context, ctibridge.Agent) (ctibridge.AgentUser, error) {
	return ctibridge.AgentUser{}, nil
}

// TestBacklogIsNotParkedOnItsFirstFailure: calls accepted two days ago while
// the bridge could not work (a long outage, a stopped worker) fail once when
// work resumes. They are retried, not parked: give-up counts from the first
// failure, not from when Studio reported the call.
func TestBacklogIsNotParkedOnItsFirstFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := NewIntake(db, Config{Namespace: "ns"}, ctibridge.ScreenPop{}, nil).Accept(ctx, "m1", ctibridge.Event{Kind: ctibridge.Queued}); err != nil {
		t.Fatal(err)
	}
	r := NewReconciler(Config{GiveUpAfter: 24 * time.Hour}, Deps{DB: db, Agents: noAgents{}})
	r.sn = down{}
	later := time.Now().Add(48 * time.Hour)
	r.now = func() time.Time { return later }
	if did, err := r.RunOnce(ctx, "w"); !did || err != nil {
		t.Fatalf("RunOnce = %v, %v", did, err)
	}
	c, _, err := db.Contact(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Parked || c.Attempts != 1 {
		t.Errorf("after its first failure the two-day-old call is parked=%v with %d attempts; want it kept for retries", c.Parked, c.Attempts)
	}
}

func TestGiveUpCountsFromTheFirstFailure(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	var s synced
	if d := s.failingFor(0, t0); d != 0 {
		t.Fatalf("first failure: failing for %s", d)
	}
	if d := s.failingFor(5, t0.Add(25*time.Hour)); d != 25*time.Hour {
		t.Errorf("sixth failure a day later: failing for %s, want 25h", d)
	}
	// A new event or a retry resets attempts: the count starts again.
	if d := s.failingFor(0, t0.Add(26*time.Hour)); d != 0 {
		t.Errorf("after a reset: failing for %s, want 0", d)
	}
}

// memSN is an instance in memory whose choice list for state knows only
// the out-of-box values: anything else is stored as "new", with success.
type memSN struct {
	recs    map[string]map[string]string
	patches int
}

func (m *memSN) store(sysID string, fields map[string]string) map[string]string {
	if m.recs == nil {
		m.recs = map[string]map[string]string{}
	}
	rec := m.recs[sysID]
	if rec == nil {
		rec = map[string]string{"sys_id": sysID, "number": "IMS0000001", "sys_mod_count": "-1"}
		m.recs[sysID] = rec
	}
	for k, v := range fields {
		if k == "state" && !slices.Contains([]string{"new", "work_in_progress", "closed_complete", "closed_abandoned"}, v) {
			v = "new"
		}
		if k != "work_notes" {
			rec[k] = v
		}
	}
	n, _ := strconv.Atoi(rec["sys_mod_count"])
	rec["sys_mod_count"] = strconv.Itoa(n + 1)
	return maps.Clone(rec)
}

func (m *memSN) insertAll(_ context.Context, _ string, rows []newRow) ([]inserted, []error) {
	var res []inserted
	for _, r := range rows {
		rec := m.store(r.sysID, r.fields)
		res = append(res, inserted{sysID: r.sysID, number: rec["number"], modCount: rec["sys_mod_count"], record: rec})
	}
	return res, make([]error, len(rows))
}
func (m *memSN) patch(_ context.Context, _, sysID string, f map[string]string, _ bool) (map[string]string, error) {
	m.patches++
	return m.store(sysID, f), nil
}
func (m *memSN) get(_ context.Context, _, sysID string) (map[string]string, error) {
	return maps.Clone(m.recs[sysID]), nil
}

type warnings []string

func (w *warnings) Warn(_ context.Context, key, _, message string, _ time.Duration) {
	*w = append(*w, key+": "+message)
}

// TestRewrittenValueIsWarnedNotRewritten: an instance that silently stores
// another value than the one written (here a state outside its choice list)
// gets one warning naming field and values, and no endless rewrites.
func TestRewrittenValueIsWarnedNotRewritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sn := &memSN{}
	var w warnings
	r := &Reconciler{sn: sn, agents: noAgents{}, warn: &w}
	r.cfg.States = ctibridge.States{New: "new", WorkInProgress: "work_in_progress", ClosedComplete: "closed", ClosedAbandoned: "closed_abandoned"}
	r.cfg.defaults()
	call := ctibridge.Call{Queued: &ctibridge.Event{Kind: ctibridge.Queued, ANI: "+18015550100"}, Agents: []ctibridge.Event{{Kind: ctibridge.Answered, AgentID: "1"}}, Released: &ctibridge.Event{Kind: ctibridge.Released}}
	s, err := r.sync(ctx, "m1", "0123456789abcdef0123456789abcdef", call, synced{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rewritten := slices.DeleteFunc(slices.Clone(w), func(s string) bool { return !strings.HasPrefix(s, "rewritten:") })
	if len(rewritten) != 1 || !strings.Contains(rewritten[0], `interaction.state = "new"`) || !strings.Contains(rewritten[0], `ctibridge wrote "closed"`) {
		t.Fatalf("warnings %q, want one naming interaction.state, the value stored and the value written", w)
	}
	before := sn.patches
	for range 3 { // later attempts of the same call
		if s, err = r.sync(ctx, "m1", "0123456789abcdef0123456789abcdef", call, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	if sn.patches != before {
		t.Errorf("%d more writes of a value the instance keeps replacing, want none", sn.patches-before)
	}
	if s.Fields["state"] != "new" {
		t.Errorf("recorded state %q, want what ServiceNow stored (new)", s.Fields["state"])
	}
}
