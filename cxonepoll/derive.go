// Package cxonepoll follows calls from CXone's own APIs, with no Studio
// edits: it polls the Real-Time Data API's contacts/active (and, as a
// backstop, the Reporting API's contacts/completed), derives the moments
// Studio would have reported (queued, answered, transferred, released) per
// master contact, and feeds them to the same intake as Studio's events.
//
// The derivation (Tracker) is pure: it turns observations of contact legs
// into events and touches nothing else. The events carry the fields Studio
// sends for the same moment, so their dedupe keys are Studio's: a call seen by
// both sources is one set of events.
package cxonepoll

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/cxone"
)

// Source is the Event.Source of every event the poller derives.
const Source = "cxone-poll"

// Phase is where a contact leg is.
type Phase int

const (
	Queued Phase = iota // in the IVR, the queue or routing; no agent has it
	Active              // an agent has it (talking or on hold)
	Ended               // the leg is over
)

func (p Phase) String() string {
	return [...]string{"queued", "active", "ended"}[p]
}

// Leg is one observation of a contact leg: a row of contacts/active or
// contacts/completed. A transfer gives the call a new leg (a new contact id)
// under the same master contact id.
type Leg struct {
	Master, Contact string
	Agent           string // CXone agent id; "" when no agent has (had) it
	Phase           Phase
	ANI, DNIS       string
	Skill           string // skill id
	SkillName       string
	PointOfContact  string
	Outbound        bool
	Changed         time.Time // when the leg entered Phase
	Start           time.Time // when the contact began, if known
	AgentStart      time.Time // when the agent took the leg, if known

	// From contacts/completed only.
	Completed bool
	Abandoned bool
	EndReason string
}

// Emit is an event derived for a call.
type Emit struct {
	Master string
	Event  ctibridge.Event
}

// Tracker remembers the legs of the calls it has seen, so it can tell a
// transfer (a leg ends while another of the call goes on) from the end of
// the call. The zero value is ready to use; it is not safe for concurrent
// use.
type Tracker struct {
	calls map[string]*call
}

type call struct {
	legs     map[string]Leg // by contact id, the latest observation
	queued   bool
	agents   map[string]string // contact id → agent id already reported
	released bool
	last     time.Time
}

// Apply folds a batch of observations (one poll) into what the tracker
// knows and returns the events they imply, in the order they happened.
// Every event is derived from the observations alone, so applying the same
// batch twice, or a batch an earlier poll already covered, yields no event
// the intake does not recognise as a duplicate.
//
// Rules, per master contact:
//   - first sight of the call → queued (contact id = master id, with ANI,
//     DNIS, skill and point of contact);
//   - a leg an agent has (active, or ended or completed with an agent) →
//     answered when the leg is the master leg, else transferred, as Studio
//     sends it; a new agent on the same leg is reported again;
//   - every known leg ended, and the last one not by a transfer → released
//     (reason: the completed contact's end reason, when known).
//
// A leg that ended stays ended: a late observation of an earlier phase
// changes nothing.
func (t *Tracker) Apply(batch []Leg) []Emit {
	if t.calls == nil {
		t.calls = map[string]*call{}
	}
	legs := append([]Leg(nil), batch...)
	sort.SliceStable(legs, func(i, j int) bool { return legs[i].Changed.Before(legs[j].Changed) })
	var out []Emit
	touched := []string{}
	for _, l := range legs {
		if l.Master == "" || l.Contact == "" {
			continue
		}
		c := t.calls[l.Master]
		if c == nil {
			c = &call{legs: map[string]Leg{}, agents: map[string]string{}}
			t.calls[l.Master] = c
		}
		if l.Changed.After(c.last) {
			c.last = l.Changed
		}
		if prev, ok := c.legs[l.Contact]; ok {
			if prev.Phase == Ended && l.Phase != Ended {
				continue // late news of a leg already over
			}
			if l.Agent == "" && prev.Agent != "" && l.Phase != Queued {
				l.Agent = prev.Agent
			}
			if l.EndReason == "" {
				l.EndReason = prev.EndReason
			}
		}
		c.legs[l.Contact] = l
		if !containsStr(touched, l.Master) {
			touched = append(touched, l.Master)
		}
		if !c.queued {
			c.queued = true
			out = append(out, Emit{l.Master, queuedEvent(l)})
		}
		if l.Agent != "" && l.Phase != Queued && c.agents[l.Contact] != l.Agent {
			c.agents[l.Contact] = l.Agent
			out = append(out, Emit{l.Master, agentEvent(l)})
		}
	}
	for _, m := range touched {
		c := t.calls[m]
		if c.released {
			continue
		}
		if last, ok := c.finished(); ok {
			c.released = true
			out = append(out, Emit{m, releasedEvent(last)})
		}
	}
	return out
}

// finished reports whether every known leg of the call ended and the call
// with them, and returns the leg that ended last.
func (c *call) finished() (Leg, bool) {
	var last Leg
	for _, l := range c.legs {
		if l.Phase != Ended {
			return Leg{}, false
		}
		if last.Contact == "" || l.Changed.After(last.Changed) ||
			(l.Changed.Equal(last.Changed) && contactLess(last.Contact, l.Contact)) {
			last = l
		}
	}
	if last.Contact == "" || isTransferEnd(last.EndReason) {
		return Leg{}, false
	}
	return last, true
}

// Forget drops calls released, or not heard of, since before cutoff, to
// bound memory. Hearing of one again is harmless: the intake recognises
// the events it derives as duplicates.
func (t *Tracker) Forget(cutoff time.Time) {
	for m, c := range t.calls {
		if c.last.Before(cutoff) {
			delete(t.calls, m)
		}
	}
}

// Calls is how many calls the tracker remembers.
func (t *Tracker) Calls() int { return len(t.calls) }

// isTransferEnd reports whether a completed contact's end reason says the
// leg ended by a transfer, not the call.
func isTransferEnd(reason string) bool {
	return strings.Contains(strings.ToLower(reason), "transfer")
}

// contactLess orders contact ids numerically when they are numbers.
func contactLess(a, b string) bool {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	if errA == nil && errB == nil {
		return x < y
	}
	return a < b
}

func containsStr(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func queuedEvent(l Leg) ctibridge.Event {
	dir := "inbound"
	if l.Outbound {
		dir = "outbound"
	}
	at := l.Changed
	if l.Phase != Queued {
		at = l.Start // zero when not known: the intake stamps it
	}
	return ctibridge.Event{Kind: ctibridge.Queued, ContactID: l.Master, OccurredAt: at, ANI: l.ANI, DNIS: l.DNIS,
		Skill: l.Skill, SkillName: l.SkillName, PointOfContact: l.PointOfContact, Direction: dir, Source: Source}
}

func agentEvent(l Leg) ctibridge.Event {
	kind := ctibridge.Answered
	if l.Contact != l.Master {
		kind = ctibridge.Transferred
	}
	return ctibridge.Event{Kind: kind, ContactID: l.Contact, OccurredAt: l.AgentStart, AgentID: l.Agent, Source: Source}
}

func releasedEvent(l Leg) ctibridge.Event {
	reason := l.EndReason
	if reason == "" && l.Abandoned {
		reason = "abandoned"
	}
	return ctibridge.Event{Kind: ctibridge.Released, ContactID: l.Contact, OccurredAt: l.Changed, Reason: reason, Source: Source}
}

// States maps CXone contact state names to their categories (from
// contact-state-descriptions).
type States map[string]string

// NewStates builds the map from the API's descriptions.
func NewStates(ds []cxone.ContactState) States {
	s := States{}
	for _, d := range ds {
		s[strings.ToLower(d.Description)] = strings.ToLower(d.Category)
	}
	return s
}

// endedStates are state names that end a leg whatever their category says.
var endedStates = map[string]bool{"endcontact": true, "released": true, "disconnected": true, "abandoned": true, "interrupted": true}

// PhaseOf maps a contact's state to a phase: its category from the state
// descriptions (else the row's own contactStateCategory) decides; a leg an
// agent has in an active state is Active, an inactive one is Ended, anything
// else (IVR, queue, routing) is Queued.
func (s States) PhaseOf(stateName, category string, agent bool) Phase {
	name := strings.ToLower(stateName)
	if endedStates[name] {
		return Ended
	}
	cat := s[name]
	if cat == "" {
		cat = strings.ToLower(category)
	}
	switch cat {
	case "inactive", "ended", "closed":
		return Ended
	case "active":
		if agent {
			return Active
		}
	}
	return Queued
}

// isCall reports whether a contact is a phone call (contacts/active lists
// every channel).
func isCall(mediaTypeID int64, mediaTypeName string) bool {
	if mediaTypeName == "" && mediaTypeID == 0 {
		return true
	}
	return mediaTypeID == 4 || strings.EqualFold(mediaTypeName, "Call")
}

// FromActive turns a contacts/active row into a Leg; ok is false for
// contacts that are not phone calls.
func FromActive(s States, c cxone.ActiveContact) (Leg, bool) {
	if !isCall(c.MediaTypeID, c.MediaTypeName) || c.MasterContactID == 0 {
		return Leg{}, false
	}
	agent := ""
	if c.AgentID != 0 {
		agent = strconv.FormatInt(c.AgentID, 10)
	}
	l := Leg{Master: strconv.FormatInt(c.MasterContactID, 10), Contact: strconv.FormatInt(c.ContactID, 10), Agent: agent,
		Phase: s.PhaseOf(c.StateName, c.ContactStateCategory, agent != ""), ANI: c.FromAddress, DNIS: c.ToAddress,
		SkillName: c.SkillName, PointOfContact: c.PointOfContactName, Outbound: c.IsOutbound,
		Changed: c.LastUpdateTime.Time, AgentStart: c.AgentStartDate.Time}
	if c.SkillID != 0 {
		l.Skill = strconv.FormatInt(c.SkillID, 10)
	}
	if l.AgentStart.IsZero() && l.Phase == Active {
		l.AgentStart = l.Changed
	}
	return l, true
}

// FromCompleted turns a contacts/completed row into an ended Leg.
func FromCompleted(c cxone.CompletedContact) Leg {
	agent := ""
	if c.AgentID != 0 && !c.Abandoned {
		agent = strconv.FormatInt(c.AgentID, 10)
	}
	start := c.ContactStartDate.Time
	l := Leg{Master: strconv.FormatInt(c.MasterContactID, 10), Contact: strconv.FormatInt(c.ContactID, 10), Agent: agent,
		Phase: Ended, ANI: c.FromAddress, DNIS: c.ToAddress, SkillName: c.SkillName, PointOfContact: c.PointOfContactName,
		Outbound: c.IsOutbound, Start: start, Completed: true, Abandoned: c.Abandoned, EndReason: c.EndReason,
		Changed: start.Add(seconds(c.TotalDurationSeconds))}
	if c.SkillID != 0 {
		l.Skill = strconv.FormatInt(c.SkillID, 10)
	}
	if agent != "" {
		l.AgentStart = start.Add(seconds(c.InQueueSeconds))
	}
	if start.IsZero() {
		l.Changed = c.LastUpdateTime.Time
	}
	return l
}

func seconds(n cxone.Number) time.Duration { return time.Duration(float64(n) * float64(time.Second)) }
