package cxonesim_test

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ctibridge/ctibridge/cxone"
	"github.com/ctibridge/ctibridge/cxonesim"
)

// clock is the simulator's injected clock: tests move it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type bundle struct {
	sim    *cxonesim.Server
	url    string
	clock  *clock
	client *cxone.Client
}

// setup starts a simulator on a clock the test drives, and a client of it.
func setup(t *testing.T, opts cxonesim.Options) *bundle {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	opts.Now = clk.Now
	if opts.TokenTTL == 0 {
		opts.TokenTTL = 1000 * time.Hour // the test's clock runs far; keep tokens out of the way
	}
	sim := cxonesim.New(opts)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	c, err := cxone.New(cxone.Config{AccessKeyID: cxonesim.DefaultAccessKeyID, AccessKeySecret: cxonesim.DefaultAccessKeySecret,
		APIBase: ts.URL, Retry: cxone.RetryPolicy{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{sim: sim, url: ts.URL, clock: clk, client: c}
}

// contact is what a test compares of an active contact.
type contact struct {
	Contact, Master, Agent int64
	State, Transfer, ANI   string
}

func (b *bundle) active(t *testing.T, since time.Time) (cxone.ActiveContacts, []contact) {
	t.Helper()
	got, err := b.client.ActiveContacts(context.Background(), since)
	if err != nil {
		t.Fatal(err)
	}
	var out []contact
	for _, c := range got.Contacts {
		out = append(out, contact{c.ContactID, c.MasterContactID, c.AgentID, c.StateName, c.TransferIndicatorName, c.FromAddress})
	}
	return got, out
}

func want(t *testing.T, what string, got, want []contact) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

// TestTransferredCall: a scripted call waits in the queue, is answered by
// its agent, is transferred (a new contact id under the same master) and
// ends; contacts/completed then reports both legs.
func TestTransferredCall(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{})
	start := b.clock.Now()
	master, err := b.sim.AddCall(cxonesim.Script{ANI: "8013203420", AgentID: 1001, QueueFor: 10 * time.Second,
		TalkFor: time.Minute, TransferTo: &cxonesim.Transfer{AgentID: 1002, After: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	_, got := b.active(t, time.Time{})
	want(t, "queued", got, []contact{{master, master, 0, "InQueue", "None", "8013203420"}})

	b.clock.Add(10 * time.Second)
	poll, got := b.active(t, time.Time{})
	want(t, "answered", got, []contact{{master, master, 1001, "Active", "None", "8013203420"}})
	if !poll.LastPollTime.Equal(b.clock.Now()) {
		t.Errorf("lastPollTime %v, want the simulator's now %v", poll.LastPollTime, b.clock.Now())
	}

	b.clock.Add(20 * time.Second)
	_, got = b.active(t, time.Time{})
	second := master + 1
	want(t, "transferred, full poll", got, []contact{{second, master, 1002, "Active", "ReAgent", "8013203420"}})
	_, got = b.active(t, poll.LastPollTime)
	want(t, "transferred, delta", got, []contact{
		{master, master, 1001, "EndContact", "None", "8013203420"},
		{second, master, 1002, "Active", "ReAgent", "8013203420"},
	})

	b.clock.Add(40 * time.Second)
	if _, got = b.active(t, time.Time{}); len(got) != 0 {
		t.Errorf("ended call still active: %+v", got)
	}
	done, err := b.client.CompletedContacts(context.Background(), start)
	if err != nil {
		t.Fatal(err)
	}
	type completed struct {
		Contact, Master, Agent int64
		Abandoned              bool
		EndReason              string
		Queue, Talk            float64
	}
	var legs []completed
	for _, c := range done.Contacts {
		legs = append(legs, completed{c.ContactID, c.MasterContactID, c.AgentID, c.Abandoned, c.EndReason, float64(c.InQueueSeconds), float64(c.AgentSeconds)})
	}
	if diff := cmp.Diff([]completed{
		{master, master, 1001, false, "Transfer", 10, 20},
		{second, master, 1002, false, "Contact Hung Up", 0, 40},
	}, legs); diff != "" {
		t.Errorf("completed (-want +got):\n%s", diff)
	}
}

// TestAbandonedCall: the caller hangs up in the queue; no agent ever has the
// call, and the completed record says abandoned.
func TestAbandonedCall(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{})
	start := b.clock.Now()
	master, err := b.sim.AddCall(cxonesim.Script{ANI: "anonymous", QueueFor: 15 * time.Second, Abandon: true})
	if err != nil {
		t.Fatal(err)
	}
	b.clock.Add(14 * time.Second)
	_, got := b.active(t, time.Time{})
	want(t, "still queued", got, []contact{{master, master, 0, "InQueue", "None", "anonymous"}})
	b.clock.Add(time.Second)
	_, got = b.active(t, start)
	want(t, "abandoned, delta", got, []contact{{master, master, 0, "EndContact", "None", "anonymous"}})
	done, err := b.client.CompletedContacts(context.Background(), start)
	if err != nil {
		t.Fatal(err)
	}
	if len(done.Contacts) != 1 {
		t.Fatalf("completed: %+v", done.Contacts)
	}
	c := done.Contacts[0]
	if !c.Abandoned || c.AgentID != 0 || c.AbandonSeconds != 15 || c.MasterContactID != master || c.EndReason != "Contact Hung Up" {
		t.Errorf("completed abandoned call: %+v", c)
	}
}

// TestUpdatedSinceDeltas: a poll from the last lastPollTime returns only the
// contacts that changed; with nothing changed, nothing (204) and the same
// poll time; an ended contact leaves the deltas after EndedVisibleFor.
func TestUpdatedSinceDeltas(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{EndedVisibleFor: 30 * time.Second})
	quick, _ := b.sim.AddCall(cxonesim.Script{ANI: "1", AgentID: 1001, QueueFor: 5 * time.Second, TalkFor: 10 * time.Second})
	slow, _ := b.sim.AddCall(cxonesim.Script{ANI: "2", AgentID: 1002, QueueFor: 20 * time.Second, TalkFor: time.Hour})
	first, got := b.active(t, time.Time{})
	want(t, "first poll", got, []contact{{quick, quick, 0, "InQueue", "None", "1"}, {slow, slow, 0, "InQueue", "None", "2"}})

	b.clock.Add(time.Second)
	poll, got := b.active(t, first.LastPollTime)
	want(t, "nothing changed", got, nil)
	if !poll.LastPollTime.Equal(first.LastPollTime) {
		t.Errorf("an empty delta moved the poll time from %v to %v", first.LastPollTime, poll.LastPollTime)
	}

	b.clock.Add(5 * time.Second) // quick answered
	poll, got = b.active(t, poll.LastPollTime)
	want(t, "quick answered", got, []contact{{quick, quick, 1001, "Active", "None", "1"}})

	b.clock.Add(14 * time.Second) // quick ended at 15s, slow answered at 20s
	poll, got = b.active(t, poll.LastPollTime)
	want(t, "quick ended, slow answered", got, []contact{{quick, quick, 1001, "EndContact", "None", "1"}, {slow, slow, 1002, "Active", "None", "2"}})

	b.clock.Add(31 * time.Second)
	_, got = b.active(t, first.LastPollTime)
	want(t, "an ended contact leaves the deltas", got, []contact{{slow, slow, 1002, "Active", "None", "2"}})
}

// TestReportingDelay: a completed contact is reported only once the
// Reporting API has it.
func TestReportingDelay(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{ReportingDelay: 15 * time.Minute})
	start := b.clock.Now()
	b.sim.AddCall(cxonesim.Script{AgentID: 1003, QueueFor: time.Second, TalkFor: time.Minute})
	b.clock.Add(10 * time.Minute)
	if got, err := b.client.CompletedContacts(context.Background(), start); err != nil || len(got.Contacts) != 0 {
		t.Errorf("before the reporting delay: %+v, %v", got.Contacts, err)
	}
	b.clock.Add(10 * time.Minute)
	got, err := b.client.CompletedContacts(context.Background(), start)
	if err != nil || len(got.Contacts) != 1 || got.Contacts[0].AgentID != 1003 {
		t.Errorf("after the reporting delay: %+v, %v", got.Contacts, err)
	}
}

// TestContactStates: the descriptions name every state contacts/active
// reports.
func TestContactStates(t *testing.T) {
	t.Parallel()
	b := setup(t, cxonesim.Options{})
	states, err := b.client.ContactStateDescriptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, s := range states {
		names[s.Description] = s.Category
	}
	for _, n := range []string{"InQueue", "Active", "EndContact"} {
		if names[n] == "" {
			t.Errorf("state %s missing from %+v", n, states)
		}
	}
}
