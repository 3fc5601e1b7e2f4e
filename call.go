package ctibridge

import (
	"cmp"
	"slices"
	"time"
)

// Call is what the events of one call say, independent of the order in which
// they arrived: the reconciler derives the interaction's desired content from
// it, so late, duplicated or shuffled events converge to the same record.
type Call struct {
	MasterID   string
	ContactIDs []string // every contact id seen, in order of occurrence
	Queued     *Event   // the earliest queued event, nil if none arrived yet
	Agents     []Event  // answered and transferred events, in order of occurrence
	Released   *Event
}

// Summarize folds a call's events into a Call (evs in arrival order).
//
// The result depends only on the set of events, not on the order they
// arrived in, as far as the events allow: Studio retries and parallel
// requests deliver them in any order. When every agent event carries an
// occurredAt stamp, the stamps order the agents. Without stamps the kinds
// order themselves, because a call cannot go otherwise: an answer precedes
// the transfers of the same call; answers among themselves and transfers
// among themselves keep their arrival order. Queued and released events are
// single moments: the earliest of each counts.
func Summarize(masterID string, evs []Event) Call {
	c := Call{MasterID: masterID}
	decoded := make([]Event, 0, len(evs))
	stamped := true // every agent event carries an occurredAt from Studio
	keys := map[string]bool{}
	for _, e := range evs {
		k := e.DedupeKey()
		if keys[k] {
			continue // the store keeps one of each; be as strict here
		}
		keys[k] = true
		if e.OccurredAt.IsZero() {
			if e.Kind == Answered || e.Kind == Transferred {
				stamped = false
			}
			e.OccurredAt = e.ReceivedAt
		}
		decoded = append(decoded, e)
	}
	slices.SortStableFunc(decoded, func(a, b Event) int {
		if ra, rb := rank(a.Kind, stamped), rank(b.Kind, stamped); ra != rb {
			return cmp.Compare(ra, rb)
		}
		if stamped || a.Kind == Queued || a.Kind == Released {
			return a.OccurredAt.Compare(b.OccurredAt)
		}
		return 0 // arrival order
	})
	seen := map[string]bool{}
	for i := range decoded {
		e := decoded[i]
		if e.ContactID != "" && !seen[e.ContactID] {
			seen[e.ContactID] = true
			c.ContactIDs = append(c.ContactIDs, e.ContactID)
		}
		switch e.Kind {
		case Queued:
			if c.Queued == nil {
				c.Queued = &decoded[i]
			}
		case Answered, Transferred:
			c.Agents = append(c.Agents, e)
		case Released:
			if c.Released == nil {
				c.Released = &decoded[i]
			}
		}
	}
	return c
}

// rank is a kind's place in every call: queued, then the agents, then the
// release. With stamps, answers and transfers share a rank and the stamps
// decide between them.
func rank(k Kind, stamped bool) int {
	switch k {
	case Queued:
		return 0
	case Answered:
		return 1
	case Transferred:
		if stamped {
			return 1
		}
		return 2
	}
	return 3
}

// Answered reports whether any agent ever took the call.
func (c Call) Answered() bool { return len(c.Agents) > 0 }

// Agent returns the agent who has the call now (the last to answer or receive
// a transfer), or nil.
func (c Call) Agent() *Event {
	if len(c.Agents) == 0 {
		return nil
	}
	return &c.Agents[len(c.Agents)-1]
}

// States names the interaction states ctibridge writes. Instances differ (a
// wrap-up configuration, custom choices), so the names are configurable.
type States struct {
	New             string `yaml:"new"`
	WorkInProgress  string `yaml:"workInProgress"`
	ClosedComplete  string `yaml:"closedComplete"`
	ClosedAbandoned string `yaml:"closedAbandoned"`
}

// DefaultStates are the interaction table's out-of-box choices.
func DefaultStates() States {
	return States{New: "new", WorkInProgress: "work_in_progress", ClosedComplete: "closed_complete", ClosedAbandoned: "closed_abandoned"}
}

// State is the interaction state the call should show. A release is final:
// Studio's On Release branch runs once, when the call ends. With keepOpen an
// answered call stays in progress after release for the agent to close;
// a call nobody answered is still closed as abandoned.
func (c Call) State(s States, keepOpen bool) string {
	switch {
	case c.Released != nil && !c.Answered():
		return s.ClosedAbandoned
	case c.Released != nil && !keepOpen:
		return s.ClosedComplete
	case c.Answered():
		return s.WorkInProgress
	default:
		return s.New
	}
}

// Phase names the call's progress for people ("queued", "answered",
// "released", "abandoned"), independent of state configuration.
func (c Call) Phase() string {
	switch {
	case c.Released != nil && !c.Answered():
		return "abandoned"
	case c.Released != nil:
		return "released"
	case c.Answered():
		return "answered"
	case c.Queued != nil:
		return "queued"
	}
	return "unknown"
}

// Duration of the call so far or in all, from the first event.
func (c Call) Duration(now time.Time) time.Duration {
	var first time.Time
	if c.Queued != nil {
		first = c.Queued.OccurredAt
	} else if len(c.Agents) > 0 {
		first = c.Agents[0].OccurredAt
	}
	if first.IsZero() {
		return 0
	}
	end := now
	if c.Released != nil {
		end = c.Released.OccurredAt
	}
	return end.Sub(first)
}
