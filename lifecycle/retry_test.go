package lifecycle

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/store"
)

// down is a ServiceNow that answers every request with 503.
type down struct{}

func (down) insert(context.Context, string, string, map[string]string, bool) (inserted, error) {
	return inserted{}, &servicenow.Error{Op: "create", Status: http.StatusServiceUnavailable}
}
func (down) patch(context.Context, string, string, map[string]string, bool) (map[string]string, error) {
	return nil, &servicenow.Error{Op: "update", Status: http.StatusServiceUnavailable}
}
func (down) get(context.Context, string, string) (map[string]string, error) {
	return nil, &servicenow.Error{Op: "read", Status: http.StatusServiceUnavailable}
}

type noAgents struct{}

func (noAgents) FindAgent(context.Context, Agent) (AgentUser, error) { return AgentUser{}, nil }

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
	if _, err := NewIntake(db, Config{Namespace: "ns"}, ScreenPop{}, nil).Accept(ctx, "m1", Event{Kind: Queued}); err != nil {
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
