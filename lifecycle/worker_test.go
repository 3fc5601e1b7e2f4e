package lifecycle

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/callerid"
	"github.com/ctibridge/ctibridge/snowsim"
	"github.com/ctibridge/ctibridge/store"
)

// TestEventDuringAnAttemptIsSynced: an answer arrives while the one worker
// is creating the call's interaction, and no one wakes the worker (the
// intake here has no reconciler to wake). It takes the call again when its
// attempt ends, so the agent is on the interaction at once, not at the next
// poll (an hour here).
func TestEventDuringAnAttemptIsSynced(t *testing.T) {
	sim := snowsim.New(snowsim.Options{})
	arrived, release := make(chan struct{}), make(chan struct{})
	var hold sync.Once
	sn, agents := clients(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/interaction") {
			hold.Do(func() { close(arrived); <-release })
		}
		sim.ServeHTTP(w, r)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "bridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := Config{Workers: 1, PollInterval: time.Hour}
	rec := NewReconciler(cfg, Deps{DB: db, SN: sn, Callers: callerid.NewFinder(sn, callerid.FinderOptions{}), Agents: agents})
	pop, err := ctibridge.NewScreenPop("https://example.service-now.com", "agent")
	if err != nil {
		t.Fatal(err)
	}
	in := NewIntake(db, cfg, pop, nil)
	if _, err := in.Accept(ctx, "7100", ctibridge.Event{Kind: ctibridge.Queued, ANI: "+13125550142"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); rec.Run(ctx) }() // its first claim finds the call
	t.Cleanup(func() { cancel(); <-done })
	<-arrived // the worker holds the call, its create in flight
	if _, err := in.Accept(ctx, "7100", ctibridge.Event{Kind: ctibridge.Answered, AgentUserName: "jdoe"}); err != nil {
		t.Fatal(err)
	}
	synced, stop := rec.synced.add("7100") // told at the end of each attempt that syncs the call
	defer stop()
	close(release)
	deadline := time.After(30 * time.Second)
	for {
		st, err := in.Status(ctx, "7100")
		if err != nil {
			t.Fatal(err)
		}
		if st.InSync {
			break
		}
		select {
		case <-synced:
		case <-deadline:
			t.Fatalf("the answer is not in ServiceNow 30 s after the attempt that held the call ended: %+v", st)
		}
	}
	recs := sim.Records("interaction")
	if len(recs) != 1 || recs[0]["state"] != "work_in_progress" || recs[0]["assigned_to"] != userSysID(t, sim, "jdoe") {
		t.Fatalf("interactions: %v, want one, work_in_progress, assigned to jdoe", recs)
	}
}
