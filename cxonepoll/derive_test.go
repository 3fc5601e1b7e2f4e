package cxonepoll

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func queued(contact string, s int) Leg {
	return Leg{Master: "100", Contact: contact, Phase: Queued, ANI: "8013203420", SkillName: "Support", Changed: at(s)}
}
func active(contact, agent string, s int) Leg {
	return Leg{Master: "100", Contact: contact, Agent: agent, Phase: Active, ANI: "8013203420", Changed: at(s), AgentStart: at(s)}
}
func ended(contact, agent string, s int) Leg {
	return Leg{Master: "100", Contact: contact, Agent: agent, Phase: Ended, ANI: "8013203420", Changed: at(s)}
}
func completed(contact, agent, reason string, abandoned bool, s int) Leg {
	l := ended(contact, agent, s)
	l.Completed, l.EndReason, l.Abandoned = true, reason, abandoned
	return l
}

// summary is what a test compares: the events, one per line, as
// kind:contact:agent.
func summary(emits []Emit) string {
	var b []string
	for _, e := range emits {
		s := string(e.Event.Kind) + ":" + e.Event.ContactID
		if e.Event.AgentID != "" {
			s += ":" + e.Event.AgentID
		}
		if e.Event.Source != Source || e.Master != "100" {
			s += " (bad source or master)"
		}
		b = append(b, s)
	}
	return strings.Join(b, " ")
}

func TestDerive(t *testing.T) {
	tests := []struct {
		name    string
		batches [][]Leg
		want    string
	}{
		{"queued only", [][]Leg{{queued("100", 0)}}, "queued:100"},
		{"queued, answered, ended over three polls",
			[][]Leg{{queued("100", 0)}, {active("100", "11", 5)}, {ended("100", "11", 60)}},
			"queued:100 answered:100:11 released:100"},
		{"first seen answered (the queue fell between polls)",
			[][]Leg{{active("100", "11", 5)}, {ended("100", "11", 60)}},
			"queued:100 answered:100:11 released:100"},
		{"the whole call in one poll",
			[][]Leg{{ended("100", "11", 60), queued("100", 0), active("100", "11", 5)}},
			"queued:100 answered:100:11 released:100"},
		{"abandoned in the queue",
			[][]Leg{{queued("100", 0)}, {ended("100", "", 20)}},
			"queued:100 released:100"},
		{"transfer: old leg ends as the new one starts, in one poll",
			[][]Leg{{queued("100", 0)}, {active("100", "11", 5)}, {ended("100", "11", 30), active("101", "12", 30)}, {ended("101", "12", 90)}},
			"queued:100 answered:100:11 transferred:101:12 released:101"},
		{"transfer seen only as the new leg",
			[][]Leg{{active("101", "12", 30)}, {ended("101", "12", 90)}},
			"queued:100 transferred:101:12 released:101"},
		{"agent change on the same leg",
			[][]Leg{{active("100", "11", 5)}, {active("100", "12", 20)}, {ended("100", "12", 40)}},
			"queued:100 answered:100:11 answered:100:12 released:100"},
		{"a late queued row after the end changes nothing",
			[][]Leg{{active("100", "11", 5)}, {ended("100", "11", 60)}, {queued("100", 0), active("100", "11", 5)}},
			"queued:100 answered:100:11 released:100"},
		{"repeated polls report nothing twice",
			[][]Leg{{queued("100", 0)}, {queued("100", 0)}, {active("100", "11", 5)}, {active("100", "11", 5)}},
			"queued:100 answered:100:11"},
		{"very short call only in completed contacts",
			[][]Leg{{completed("100", "11", "Contact Hung Up", false, 3)}},
			"queued:100 answered:100:11 released:100"},
		{"short abandon only in completed contacts",
			[][]Leg{{completed("100", "", "Contact Hung Up", true, 1)}},
			"queued:100 released:100"},
		{"short transferred call in completed contacts, legs in two polls",
			[][]Leg{{completed("100", "11", "Transfer", false, 3)}, {completed("101", "12", "Contact Hung Up", false, 6)}},
			"queued:100 answered:100:11 transferred:101:12 released:101"},
		{"completed confirms a release already seen",
			[][]Leg{{active("100", "11", 5)}, {ended("100", "11", 60)}, {completed("100", "11", "Contact Hung Up", false, 60)}},
			"queued:100 answered:100:11 released:100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tr Tracker
			var all []Emit
			for _, b := range tc.batches {
				all = append(all, tr.Apply(b)...)
			}
			if got := summary(all); got != tc.want {
				t.Errorf("events\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// Every order in which one poll can list a transferred call's rows gives
// the same events.
func TestDeriveAnyOrderInOneBatch(t *testing.T) {
	rows := []Leg{queued("100", 0), active("100", "11", 5), ended("100", "11", 30), active("101", "12", 30), ended("101", "12", 90)}
	want := "queued:100 answered:100:11 transferred:101:12 released:101"
	permute(rows, 0, func(p []Leg) {
		var tr Tracker
		if got := summary(tr.Apply(p)); got != want {
			t.Fatalf("order %v: got %s, want %s", contacts(p), got, want)
		}
	})
}

// Every order in which separate polls deliver the rows of a call (a poll
// lists what changed; a slow reply or a restart can deliver older rows
// later) gives the same set of events, each once, and the call is never
// released while a leg it is known to have is live. (A leg that ends in one
// poll before its successor shows in a later one does look like the end of
// the call: README's limits say so.)
func TestDeriveAnyOrderAcrossPolls(t *testing.T) {
	rows := []Leg{queued("100", 0), active("100", "11", 5), ended("100", "11", 30), active("101", "12", 30), ended("101", "12", 90)}
	want := map[string]bool{"queued:100": true, "answered:100:11": true, "transferred:101:12": true, "released:101": true}
	permute(rows, 0, func(p []Leg) {
		var tr Tracker
		got := map[string]bool{}
		for i, l := range p {
			for _, e := range tr.Apply([]Leg{l}) {
				k := summary([]Emit{e})
				if got[k] || (e.Event.Kind == ctibridge.Released && (got["released:100"] || got["released:101"])) {
					t.Fatalf("order %v: %s twice", contacts(p), k)
				}
				got[k] = true
				if e.Event.Kind == ctibridge.Released && !allSeenEnded(p[:i+1]) {
					t.Fatalf("order %v: released while a leg is live", contacts(p))
				}
			}
		}
		for k := range want {
			if !got[k] && k != "released:101" {
				t.Fatalf("order %v: no %s (got %v)", contacts(p), k, got)
			}
		}
	})
}

func allSeenEnded(p []Leg) bool {
	ended := map[string]bool{}
	for _, l := range p {
		ended[l.Contact] = ended[l.Contact] || l.Phase == Ended
	}
	for _, e := range ended {
		if !e {
			return false
		}
	}
	return true
}

func contacts(p []Leg) string {
	var s []string
	for _, l := range p {
		s = append(s, fmt.Sprintf("%s/%s", l.Contact, l.Phase))
	}
	return strings.Join(s, ",")
}

func permute(a []Leg, k int, fn func([]Leg)) {
	if k == len(a) {
		fn(append([]Leg(nil), a...))
		return
	}
	for i := k; i < len(a); i++ {
		a[k], a[i] = a[i], a[k]
		permute(a, k+1, fn)
		a[k], a[i] = a[i], a[k]
	}
}

// The poller's events carry what Studio sends for the same moment, so the
// dedupe keys match Studio's, including Studio's optional agent user name.
func TestDedupeKeysMatchStudio(t *testing.T) {
	var tr Tracker
	got := map[string]bool{}
	for _, e := range tr.Apply([]Leg{queued("100", 0), active("100", "11", 5), ended("100", "11", 30), active("101", "12", 30), ended("101", "12", 90)}) {
		got[e.Event.DedupeKey()] = true
	}
	studio := []ctibridge.Event{
		{Kind: ctibridge.Queued, ContactID: "100", ANI: "8013203420"},
		{Kind: ctibridge.Answered, ContactID: "100", AgentID: "11", AgentUserName: "jdoe"},
		{Kind: ctibridge.Transferred, ContactID: "101", AgentID: "12"},
		{Kind: ctibridge.Released, ContactID: "101", Reason: "hangup"},
	}
	for _, e := range studio {
		if !got[e.DedupeKey()] {
			t.Errorf("Studio's %s event (key %q) is not one of the poller's: %v", e.Kind, e.DedupeKey(), got)
		}
	}
}

func TestPhaseOf(t *testing.T) {
	s := States{"inqueue": "queued", "active": "active", "hold": "active", "endcontact": "inactive", "postqueue": "inactive"}
	for _, tc := range []struct {
		name, cat string
		agent     bool
		want      Phase
	}{
		{"InQueue", "", false, Queued}, {"Active", "", true, Active}, {"Hold", "", true, Active},
		{"Active", "", false, Queued}, {"EndContact", "", true, Ended}, {"PostQueue", "", false, Ended},
		{"Unknown", "Inactive", false, Ended}, {"Routing", "Queued", true, Queued}, {"Released", "", true, Ended},
	} {
		if got := s.PhaseOf(tc.name, tc.cat, tc.agent); got != tc.want {
			t.Errorf("PhaseOf(%q, %q, agent %v) = %s, want %s", tc.name, tc.cat, tc.agent, got, tc.want)
		}
	}
}
