package lifecycle

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
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
	sn, agents := clients(t, sim)
	r := &Reconciler{sn: snowClient{sn}, callers: callerid.NewFinder(sn, callerid.FinderOptions{}), agents: agents,
		norm: func(ani string) string { return callerid.Parse(ani, "US").E164 }}
	r.cfg.defaults()
	return &stepsEnv{r: r, sim: sim}
}

// clients are a ServiceNow client and an agent finder for the simulator
// served through h.
func clients(t *testing.T, h http.Handler) (*servicenow.Client, *agentmap.Finder) {
	t.Helper()
	srv := httptest.NewServer(h)
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
	return sn, agents
}

func (e *stepsEnv) user(t *testing.T, name string) string {
	t.Helper()
	return userSysID(t, e.sim, name)
}

// userSysID is the sys_id of the simulator's user name.
func userSysID(t *testing.T, sim *snowsim.Server, name string) string {
	t.Helper()
	for _, u := range sim.Records("sys_user") {
		if u["user_name"] == name {
			return u["sys_id"]
		}
	}
	t.Fatalf("no user %s", name)
	return ""
}

// stored returns a copy of s as the store would give it back: an attempt
// changes the maps of the state it is given.
func (s synced) stored() synced {
	c, err := decodeSynced(s.encode())
	if err != nil {
		panic(err)
	}
	return c
}

// notes returns the work notes of an interaction in the simulator, one by
// one (a write's notes share a journal entry, separated by a blank line).
func (e *stepsEnv) notes(sysID string) []string {
	var out []string
	for _, j := range e.sim.Journal("interaction", sysID, "work_notes") {
		out = append(out, strings.Split(j.Value, "\n\n")...)
	}
	return out
}

// TestStepsAgainstTheSimulator runs one call through the steps, moment by
// moment, and checks after each what an agent would see in ServiceNow and
// how many round trips and requests it cost.
func TestStepsAgainstTheSimulator(t *testing.T) {
	t.Parallel()
	e := newStepsEnv(t)
	ctx := context.Background()
	sysID := ctibridge.SysID("ns", "s1")
	at := func(s int) time.Time { return time.Date(2026, 11, 24, 9, 0, s, 0, time.UTC) }
	var evs []ctibridge.Event
	var s synced
	type cost struct{ trips, requests int64 }
	step := func(ev ctibridge.Event) (map[string]string, cost) {
		t.Helper()
		before := e.sim.Stats()
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
		after := e.sim.Stats()
		return rec, cost{after.HTTPRequests - before.HTTPRequests, after.Total - before.Total}
	}
	journal := func() string { return strings.Join(e.notes(sysID), "\n") }

	// Queued: identify the caller and their open incidents, create with
	// everything known, link the incidents.
	rec, n := step(ctibridge.Event{Kind: ctibridge.Queued, ANI: "801.320.3420", ContactID: "c1", SkillName: "Support"})
	if rec["state"] != "new" || rec["opened_for"] != e.user(t, "alice.caller") || rec["caller_phone_number"] != "+18013203420" ||
		rec["sys_mod_count"] != "0" || !strings.Contains(rec["short_description"], "skill Support") {
		t.Errorf("after queued: %v; want new, Alice, E.164, the skill, all in the create", rec)
	}
	if links := len(e.sim.Records("interaction_related_record")); links != 2 || n != (cost{4, 7}) {
		t.Errorf("after queued: %d links in %+v; want Alice's 2 incidents in 4 round trips (one batch of 3 caller lookups, incidents, create, "+
			"one batch of 2 links), 7 requests", links, n)
	}
	// Answered: map the agent, assign, work in progress.
	rec, n = step(ctibridge.Event{Kind: ctibridge.Answered, AgentUserName: "jdoe", ContactID: "c1"})
	if rec["state"] != "work_in_progress" || rec["assigned_to"] != e.user(t, "jdoe") || n != (cost{2, 2}) {
		t.Errorf("after answered: state %q assigned %q in %+v; want work_in_progress, jdoe, 2 (agent lookup, update)", rec["state"], rec["assigned_to"], n)
	}
	// Transferred: follow the agent, one note.
	rec, n = step(ctibridge.Event{Kind: ctibridge.Transferred, AgentUserName: "asmith", ContactID: "c2"})
	if rec["assigned_to"] != e.user(t, "asmith") || strings.Count(journal(), "transferred from John Doe to Anna Smith") != 1 || n != (cost{2, 2}) {
		t.Errorf("after transferred: assigned %q in %+v, notes:\n%s", rec["assigned_to"], n, journal())
	}
	// Released: close, one note; a repeated attempt changes nothing.
	rec, n = step(ctibridge.Event{Kind: ctibridge.Released, Reason: "16"})
	if rec["state"] != "closed_complete" || strings.Count(journal(), "call ended. reason: 16") != 1 || n != (cost{1, 1}) {
		t.Errorf("after released: state %q in %+v, notes:\n%s", rec["state"], n, journal())
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

// TestLinksOnceInABatch: a call's links go in one batch. When the batch's
// reply is lost after ServiceNow made them, each is settled as a create of
// unknown outcome and taken as made (the integration user may not read
// them back), with a warning; when ServiceNow fails them all, each is kept
// as may-have-been-made and made on a later attempt. Either way every link
// exists once.
func TestLinksOnceInABatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		fault   snowsim.FailNext
		failing bool // the first attempt fails
		warned  bool
	}{
		{"batch reply lost", snowsim.FailNext{Count: 1, Drop: true, Table: "interaction_related_record"}, false, true},
		{"server errors", snowsim.FailNext{Count: 10, Status: 500, Table: "interaction_related_record"}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newStepsEnv(t)
			var w warnings
			e.r.warn = &w
			ctx := context.Background()
			sysID := ctibridge.SysID("ns", "l1")
			call := ctibridge.Summarize("l1", []ctibridge.Event{{Kind: ctibridge.Queued, ANI: "8013203420", ReceivedAt: time.Now()}})
			e.sim.SetFaults(snowsim.Faults{FailNext: &tc.fault})
			s, err := e.r.sync(ctx, "l1", sysID, call, synced{}, nil)
			if tc.failing {
				if err == nil || len(s.RelatedUnsure) != 2 || len(s.Related) != 0 {
					t.Fatalf("failing links: %v, unsure %v, made %v; want an error and both kept as may-have-been-made", err, s.RelatedUnsure, s.Related)
				}
				e.sim.SetFaults(snowsim.Faults{})
				s, err = e.r.sync(ctx, "l1", sysID, call, s, nil)
			}
			if err != nil || len(s.Related) != 2 || len(s.RelatedUnsure) != 0 {
				t.Fatalf("links: %v, made %v, unsure %v", err, s.Related, s.RelatedUnsure)
			}
			if n := len(e.sim.Records("interaction_related_record")); n != 2 {
				t.Errorf("%d links, want Alice's 2 incidents once each", n)
			}
			if got := slices.ContainsFunc(w, func(s string) bool { return strings.HasPrefix(s, "related-unconfirmed:") }); got != tc.warned {
				t.Errorf("warned about unconfirmed links: %v, want %v (%q)", got, tc.warned, w)
			}
			before := e.sim.Stats().Total
			if _, err := e.r.sync(ctx, "l1", sysID, call, s, nil); err != nil || e.sim.Stats().Total != before {
				t.Errorf("a repeated attempt: %v, %d requests; want none", err, e.sim.Stats().Total-before)
			}
		})
	}
}

// TestNoteAfterTwoInterruptedAttempts: a bridge dies after an update without
// notes reached ServiceNow (the write is never recorded); the next attempt
// records the closing note as under way and dies before sending it. The
// attempt after that must write the note: the record's count grew since the
// count stored before the first death, but not by the note.
func TestNoteAfterTwoInterruptedAttempts(t *testing.T) {
	t.Parallel()
	e := newStepsEnv(t)
	ctx := context.Background()
	sysID := ctibridge.SysID("ns", "k1")
	at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	evs := []ctibridge.Event{{Kind: ctibridge.Queued, ANI: "+13125550100", ContactID: "c1", ReceivedAt: at}}
	stored, err := e.r.sync(ctx, "k1", sysID, ctibridge.Summarize("k1", evs), synced{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Answered: the update lands, the bridge dies before storing the outcome.
	evs = append(evs, ctibridge.Event{Kind: ctibridge.Answered, AgentUserName: "jdoe", ContactID: "c1", ReceivedAt: at.Add(time.Second)})
	if _, err := e.r.sync(ctx, "k1", sysID, ctibridge.Summarize("k1", evs), stored.stored(), nil); err != nil {
		t.Fatal(err)
	}
	// Released: the note is checkpointed as under way, and the bridge dies
	// before sending it.
	evs = append(evs, ctibridge.Event{Kind: ctibridge.Released, Reason: "16", ReceivedAt: at.Add(2 * time.Second)})
	died := errors.New("killed")
	s := stored
	s.takeOver()
	_, err = e.r.sync(ctx, "k1", sysID, ctibridge.Summarize("k1", evs), s, func(s synced) error { stored = s.stored(); return died })
	if !errors.Is(err, died) || len(stored.NotesUnsure) != 1 {
		t.Fatalf("second attempt: %v, notes under way %v; want it to die after recording the note as under way", err, stored.NotesUnsure)
	}
	s = stored
	s.takeOver()
	if _, err := e.r.sync(ctx, "k1", sysID, ctibridge.Summarize("k1", evs), s, nil); err != nil {
		t.Fatal(err)
	}
	if notes := e.notes(sysID); len(notes) != 1 || !strings.Contains(notes[0], "call ended. reason: 16") {
		t.Errorf("work notes %q; want the closing note once", notes)
	}
}

// callEvent is an event of a test call from +13125550100 (agent and CXone
// contact as given), sec seconds after 09:00 on 2026-11-24.
func callEvent(kind ctibridge.Kind, agent, contact string, sec int) ctibridge.Event {
	when := time.Date(2026, 11, 24, 9, 0, sec, 0, time.UTC)
	return ctibridge.Event{Kind: kind, ANI: "+13125550100", AgentUserName: agent, ContactID: contact, ReceivedAt: when, OccurredAt: when}
}

// TestCreateCarriesNotes: when a call's events are all known before its
// first attempt (a backlog being worked off), the create carries its notes
// and no update follows. A create whose outcome the attempt did not learn
// (the bridge died after recording the notes as under way) is made again
// with the same notes; whichever create made the record, each note is in it
// once, and a note the call stopped wanting meanwhile is written when it is
// wanted again.
func TestCreateCarriesNotes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("backlog", func(t *testing.T) {
		e := newStepsEnv(t)
		sysID := ctibridge.SysID("ns", "b1")
		released := callEvent(ctibridge.Released, "", "c1", 60)
		released.Reason = "16"
		evs := []ctibridge.Event{callEvent(ctibridge.Queued, "", "c1", 0), callEvent(ctibridge.Answered, "jdoe", "c1", 10), released}
		saves := 0
		before := e.sim.Stats()
		s, err := e.r.sync(ctx, "b1", sysID, ctibridge.Summarize("b1", evs), synced{}, func(synced) error { saves++; return nil })
		if err != nil {
			t.Fatal(err)
		}
		after := e.sim.Stats()
		rec, _ := e.sim.Record("interaction", sysID)
		if notes := e.notes(sysID); len(notes) != 1 || notes[0] != "ctibridge: call ended. reason: 16" || rec["sys_mod_count"] != "0" || rec["state"] != "closed_complete" {
			t.Errorf("notes %q, sys_mod_count %s, state %s; want the closing note, with its reason, in the create, no update", notes, rec["sys_mod_count"], rec["state"])
		}
		if patches := after.ByTable["interaction"]["PATCH"] - before.ByTable["interaction"]["PATCH"]; patches != 0 || saves != 1 || !s.hasNote("released") || s.CreateNotes {
			t.Errorf("%d updates, %d saves, state %+v; want none, one save before the create, the note settled", patches, saves, s)
		}
	})

	t.Run("died before the create, then a note no longer wanted", func(t *testing.T) {
		e := newStepsEnv(t)
		sysID := ctibridge.SysID("ns", "b2")
		// First attempt: the call as known then is queued and transferred
		// to jdoe (the answer is still to come): a note "from the queue to
		// John Doe". The bridge dies once the note is recorded as under way.
		evs := []ctibridge.Event{callEvent(ctibridge.Queued, "", "c1", 0), callEvent(ctibridge.Transferred, "jdoe", "c3", 70)}
		var stored synced
		died := errors.New("killed")
		if _, err := e.r.sync(ctx, "b2", sysID, ctibridge.Summarize("b2", evs), synced{}, func(s synced) error { stored = s.stored(); return died }); !errors.Is(err, died) {
			t.Fatalf("first attempt: %v", err)
		}
		if !stored.CreateNotes || len(stored.NotesUnsure) != 1 {
			t.Fatalf("stored before the create: %+v; want the transfer note under way", stored)
		}
		// Next attempt: the answer by jdoe arrived, so the transfer to
		// jdoe is no transfer at all and its note is not wanted.
		evs = append(evs, callEvent(ctibridge.Answered, "jdoe", "c1", 10))
		s := stored
		s.takeOver()
		s, err := e.r.sync(ctx, "b2", sysID, ctibridge.Summarize("b2", evs), s, nil)
		if err != nil {
			t.Fatal(err)
		}
		if notes := e.notes(sysID); len(notes) != 0 {
			t.Errorf("notes %q; want none", notes)
		}
		// Then asmith's part arrives: jdoe, asmith, jdoe. Both transfers'
		// notes are wanted, the second one again.
		evs = append(evs, callEvent(ctibridge.Transferred, "asmith", "c2", 40), callEvent(ctibridge.Released, "", "c3", 90))
		if _, err := e.r.sync(ctx, "b2", sysID, ctibridge.Summarize("b2", evs), s, nil); err != nil {
			t.Fatal(err)
		}
		notes := e.notes(sysID)
		want := []string{"to Anna Smith", "from Anna Smith", "call ended"}
		for _, w := range want {
			n := 0
			for _, got := range notes {
				if strings.Contains(got, w) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d notes with %q, want one; notes %q", n, w, notes)
			}
		}
	})

	t.Run("create made, reply never read", func(t *testing.T) {
		e := newStepsEnv(t)
		sysID := ctibridge.SysID("ns", "b3")
		evs := []ctibridge.Event{callEvent(ctibridge.Queued, "", "c1", 0), callEvent(ctibridge.Released, "", "c1", 30)}
		var stored synced
		// The create lands with its note; the bridge dies before it
		// records the outcome: what is stored is the checkpoint.
		if _, err := e.r.sync(ctx, "b3", sysID, ctibridge.Summarize("b3", evs), synced{}, func(s synced) error { stored = s.stored(); return nil }); err != nil {
			t.Fatal(err)
		}
		s := stored
		s.takeOver()
		s, err := e.r.sync(ctx, "b3", sysID, ctibridge.Summarize("b3", evs), s, nil)
		if err != nil || !s.hasNote("released") || s.CreateNotes {
			t.Fatalf("after the create was found made: %v, %+v", err, s)
		}
		if notes := e.notes(sysID); len(notes) != 1 || !strings.Contains(notes[0], "caller hung up before an agent answered") {
			t.Errorf("notes %q; want the closing note once", notes)
		}
	})
}

// TestTakeOverWritesFieldsAgain: a bridge dies after its update reassigning
// the call to asmith reached ServiceNow, before recording it; the call then
// goes back to jdoe, whom the stored state still names. The attempt that
// takes the call over must assign it to jdoe, not trust what it had stored.
func TestTakeOverWritesFieldsAgain(t *testing.T) {
	t.Parallel()
	e := newStepsEnv(t)
	ctx := context.Background()
	sysID := ctibridge.SysID("ns", "t1")
	evs := []ctibridge.Event{callEvent(ctibridge.Queued, "", "c1", 0), callEvent(ctibridge.Answered, "jdoe", "c1", 10)}
	stored, err := e.r.sync(ctx, "t1", sysID, ctibridge.Summarize("t1", evs), synced{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	evs = append(evs, callEvent(ctibridge.Transferred, "asmith", "c2", 40))
	if _, err := e.r.sync(ctx, "t1", sysID, ctibridge.Summarize("t1", evs), stored.stored(), nil); err != nil {
		t.Fatal(err) // landed; the bridge dies before storing the outcome
	}
	if rec, _ := e.sim.Record("interaction", sysID); rec["assigned_to"] != e.user(t, "asmith") {
		t.Fatalf("after the transfer to asmith, assigned_to %q", rec["assigned_to"])
	}
	evs = append(evs, callEvent(ctibridge.Transferred, "jdoe", "c3", 70))
	s := stored
	s.takeOver()
	if _, err := e.r.sync(ctx, "t1", sysID, ctibridge.Summarize("t1", evs), s, nil); err != nil {
		t.Fatal(err)
	}
	if rec, _ := e.sim.Record("interaction", sysID); rec["assigned_to"] != e.user(t, "jdoe") {
		t.Errorf("assigned_to %q, want jdoe (%s), who has the call", rec["assigned_to"], e.user(t, "jdoe"))
	}
}
