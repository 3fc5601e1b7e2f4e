package ctibridge

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// stored is evs as the bridge keeps them: in arrival order, each with the
// time it was received.
func stored(evs ...Event) []Event {
	out := slices.Clone(evs)
	for i := range out {
		out[i].ReceivedAt = at(100 + i)
	}
	return out
}

func at(s int) time.Time { return time.Date(2026, 11, 24, 9, 0, s, 0, time.UTC) }

func TestStateFromAnyOrder(t *testing.T) {
	t.Parallel()
	st := DefaultStates()
	q := Event{Kind: Queued, ANI: "1", OccurredAt: at(0)}
	a := Event{Kind: Answered, AgentUserName: "jdoe", ContactID: "1", OccurredAt: at(10)}
	x := Event{Kind: Transferred, AgentUserName: "asmith", ContactID: "2", OccurredAt: at(20)}
	r := Event{Kind: Released, OccurredAt: at(30)}
	tests := []struct {
		name     string
		evs      []Event
		keepOpen bool
		want     string
		agent    string
	}{
		{"queued", []Event{q}, false, "new", ""},
		{"answered", []Event{q, a}, false, "work_in_progress", "jdoe"},
		{"transferred", []Event{q, a, x}, false, "work_in_progress", "asmith"},
		{"released", []Event{q, a, x, r}, false, "closed_complete", "asmith"},
		{"abandoned", []Event{q, r}, false, "closed_abandoned", ""},
		{"released first", []Event{r, q}, false, "closed_abandoned", ""},
		{"answer after release arrives", []Event{q, r, a}, false, "closed_complete", "jdoe"},
		{"keep open", []Event{q, a, r}, true, "work_in_progress", "jdoe"},
		{"keep open abandoned", []Event{q, r}, true, "closed_abandoned", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(7, 9))
			for range 10 { // every shuffle gives the same answer
				evs := append([]Event(nil), tt.evs...)
				rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
				c := Summarize("m", stored(evs...))
				if got := c.State(st, tt.keepOpen); got != tt.want {
					t.Fatalf("order %v: state %q, want %q", kinds(evs), got, tt.want)
				}
				agent := ""
				if c.Agent() != nil {
					agent = c.Agent().AgentUserName
				}
				if agent != tt.agent {
					t.Fatalf("order %v: agent %q, want %q", kinds(evs), agent, tt.agent)
				}
			}
		})
	}
}

func kinds(evs []Event) []Kind {
	out := make([]Kind, len(evs))
	for i, e := range evs {
		out[i] = e.Kind
	}
	return out
}

func TestCustomStateNames(t *testing.T) {
	t.Parallel()
	c := Summarize("m", stored(Event{Kind: Queued}, Event{Kind: Released}))
	if got := c.State(States{New: "n", WorkInProgress: "w", ClosedComplete: "c", ClosedAbandoned: "gone"}, false); got != "gone" {
		t.Errorf("state = %q, want the configured name", got)
	}
}

func TestSysIDIsStableAndDistinct(t *testing.T) {
	t.Parallel()
	a, b := SysID("ns", "100"), SysID("ns", "100")
	if a != b || len(a) != 32 {
		t.Fatalf("sys_id %q / %q", a, b)
	}
	if SysID("ns", "101") == a || SysID("other", "100") == a {
		t.Error("different calls or namespaces share a sys_id")
	}
}

func TestScreenPop(t *testing.T) {
	t.Parallel()
	id := "0123456789abcdef0123456789abcdef"
	tests := map[string]string{
		"":                         "https://acme.service-now.com/now/cwf/agent/record/interaction/" + id,
		"agent":                    "https://acme.service-now.com/now/workspace/agent/record/interaction/" + id,
		"csm":                      "https://acme.service-now.com/now/cwf/agent/record/interaction/" + id,
		"sow":                      "https://acme.service-now.com/now/sow/record/interaction/" + id,
		"classic":                  "https://acme.service-now.com/nav_to.do?uri=interaction.do?sys_id=" + id,
		"{instance}/x?id={sys_id}": "https://acme.service-now.com/x?id=" + id,
	}
	for ws, want := range tests {
		p, err := NewScreenPop("https://acme.service-now.com/", ws)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.URL(id); got != want {
			t.Errorf("%q: %q, want %q", ws, got, want)
		}
	}
	if _, err := NewScreenPop("https://x", "nowhere"); err == nil {
		t.Error("unknown workspace accepted")
	}
}

// permutations calls f with every order of evs.
func permutations(evs []Event, f func([]Event)) {
	var rec func(k int)
	rec = func(k int) {
		if k == len(evs) {
			f(slices.Clone(evs))
			return
		}
		for i := k; i < len(evs); i++ {
			evs[k], evs[i] = evs[i], evs[k]
			rec(k + 1)
			evs[k], evs[i] = evs[i], evs[k]
		}
	}
	rec(0)
}

// TestEveryOrderOfACall feeds the events of an answered call with two
// transfers in all 120 arrival orders, each also with a retried (duplicated)
// event, and checks the call the reconciler would write.
func TestEveryOrderOfACall(t *testing.T) {
	t.Parallel()
	st := DefaultStates()
	for _, withStamps := range []bool{false, true} {
		stamp := func(s int) time.Time {
			if withStamps {
				return at(s)
			}
			return time.Time{}
		}
		q := Event{Kind: Queued, ANI: "8013203420", ContactID: "c1", OccurredAt: stamp(0)}
		a := Event{Kind: Answered, AgentUserName: "jdoe", ContactID: "c1", OccurredAt: stamp(10)}
		t1 := Event{Kind: Transferred, AgentUserName: "asmith", ContactID: "c2", OccurredAt: stamp(20)}
		t2 := Event{Kind: Transferred, AgentUserName: "bjones", ContactID: "c3", OccurredAt: stamp(30)}
		r := Event{Kind: Released, Reason: "hangup", OccurredAt: stamp(40)}
		n := 0
		permutations([]Event{q, a, t1, t2, r}, func(order []Event) {
			n++
			// A retry of any one event, arriving last, changes nothing.
			for dup := -1; dup < len(order); dup++ {
				evs := order
				if dup >= 0 {
					evs = append(slices.Clone(order), order[dup])
				}
				c := Summarize("m", stored(evs...))
				// With stamps, the stamps decide; without, the transfer
				// that arrived last has the call.
				want := "bjones"
				if !withStamps && slices.IndexFunc(order, isAgent("bjones")) < slices.IndexFunc(order, isAgent("asmith")) {
					want = "asmith"
				}
				got := []string{}
				for _, e := range c.Agents {
					got = append(got, e.AgentUserName)
				}
				if c.State(st, false) != "closed_complete" || c.Agent() == nil || c.Agent().AgentUserName != want ||
					got[0] != "jdoe" || len(got) != 3 || c.Queued == nil || c.Released == nil {
					t.Fatalf("stamps=%v order %v (dup %d): state %q, agents %v, want closed_complete ending with %s",
						withStamps, kinds(evs), dup, c.State(st, false), got, want)
				}
				if c.ContactIDs[0] != "c1" {
					t.Fatalf("stamps=%v order %v: contact ids %v, want c1 first", withStamps, kinds(evs), c.ContactIDs)
				}
			}
		})
		if n != 120 {
			t.Fatalf("%d orders tried, want 120", n)
		}
	}
}

func isAgent(name string) func(Event) bool {
	return func(e Event) bool { return e.AgentUserName == name }
}

// TestStampsOrderAnswersAndTransfers: a call answered again after going back
// to the queue follows the stamps, whatever the kinds say.
func TestStampsOrderAnswersAndTransfers(t *testing.T) {
	t.Parallel()
	a1 := Event{Kind: Answered, AgentUserName: "jdoe", OccurredAt: at(10)}
	x := Event{Kind: Transferred, AgentUserName: "asmith", OccurredAt: at(20)}
	a2 := Event{Kind: Answered, AgentUserName: "bjones", ContactID: "2", OccurredAt: at(30)}
	c := Summarize("m", stored(a2, x, a1))
	if got := c.Agent().AgentUserName; got != "bjones" {
		t.Errorf("agent %q, want bjones (the latest stamp)", got)
	}
}
