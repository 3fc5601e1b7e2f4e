// The read model: what the API and the console show of a call.

package lifecycle

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/store"
)

// Status is what ctibridge knows about a call.
type Status struct {
	MasterID         string    `json:"masterContactId"`
	InteractionSysID string    `json:"interactionSysId"`
	Number           string    `json:"number,omitempty"`
	ScreenPopURL     string    `json:"screenPopUrl"`
	Phase            string    `json:"phase"`
	DesiredState     string    `json:"desiredState"`
	ConfirmedState   string    `json:"confirmedState,omitempty"`
	InSync           bool      `json:"inSync"`
	Attempts         int       `json:"attempts"`
	LastError        string    `json:"lastError,omitempty"`
	Parked           bool      `json:"parked"`
	NextAttemptAt    time.Time `json:"nextAttemptAt,omitzero"`
	Caller           string    `json:"caller,omitempty"`     // caller_phone_number
	CallerUser       string    `json:"callerUser,omitempty"` // opened_for sys_id
	CallerName       string    `json:"callerName,omitempty"`
	CallerMatch      string    `json:"callerMatch,omitempty"` // user, contact, consumer, ambiguous, none, withheld
	Agent            string    `json:"agent,omitempty"`       // current agent as Studio named them
	AssignedTo       string    `json:"assignedTo,omitempty"`  // sys_id written
	ContactIDs       []string  `json:"contactIds,omitempty"`
	Events           int       `json:"events"`
	Sources          []string  `json:"sources,omitempty"` // who reported the call's moments: studio, cxone-poll
	UpdatedAt        time.Time `json:"updatedAt"`
	Age              string    `json:"age"`
}

// ErrUnknownContact is returned for a master contact id never seen.
var ErrUnknownContact = errors.New("unknown contact")

// Status reports what ctibridge knows about one call.
func (in *Intake) Status(ctx context.Context, masterID string) (Status, error) {
	c, evs, err := in.db.Contact(ctx, masterID)
	if errors.Is(err, store.ErrNotFound) {
		return Status{}, fmt.Errorf("contact %s: %w", masterID, ErrUnknownContact)
	}
	if err != nil {
		return Status{}, err
	}
	return in.status(c, evs)
}

func (in *Intake) status(c store.Contact, evs []store.Event) (Status, error) {
	call, err := summarize(c.MasterID, evs)
	if err != nil {
		return Status{}, err
	}
	s, err := decodeSynced(c.Synced)
	if err != nil {
		return Status{}, err
	}
	sysID := c.SysID
	if s.SysID != "" {
		sysID = s.SysID
	}
	st := Status{
		MasterID: c.MasterID, InteractionSysID: sysID, Number: s.Number, ScreenPopURL: in.pop.URL(sysID),
		Phase: call.Phase(), DesiredState: call.State(in.states, in.keepOpen), ConfirmedState: s.Fields["state"],
		InSync: !c.Pending(), Attempts: c.Attempts, LastError: c.LastError, Parked: c.Parked,
		Caller: s.Fields["caller_phone_number"], CallerUser: s.Fields["opened_for"], AssignedTo: s.Fields["assigned_to"],
		ContactIDs: call.ContactIDs, Events: len(evs), Sources: sources(call), UpdatedAt: c.UpdatedAt,
		Age: in.now().Sub(c.CreatedAt).Round(time.Second).String(),
	}
	if c.Pending() && !c.Parked {
		st.NextAttemptAt = c.NextAttemptAt
	}
	if c := s.Caller; c != nil {
		st.CallerName = c.Name
		switch {
		case c.Withheld:
			st.CallerMatch = "withheld"
		case c.User != "":
			st.CallerMatch = "user"
		case c.Contact != "":
			st.CallerMatch = "contact"
		case c.Consumer != "":
			st.CallerMatch = "consumer"
		case len(c.Candidates) > 1:
			st.CallerMatch = "ambiguous"
		default:
			st.CallerMatch = "none"
		}
	}
	if st.Caller == "" && call.Queued != nil {
		st.Caller = call.Queued.ANI
	}
	if a := call.Agent(); a != nil {
		st.Agent = a.AgentUserName
		if st.Agent == "" {
			st.Agent = a.AgentEmail
		}
		if st.Agent == "" {
			st.Agent = a.AgentID
		}
	}
	return st, nil
}

// Calls lists recent calls, newest activity first.
func (in *Intake) Calls(ctx context.Context, f store.ContactFilter) ([]Status, error) {
	cs, err := in.db.Contacts(ctx, f)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.MasterID
	}
	evs, err := in.db.EventsOf(ctx, ids...)
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(cs))
	for _, c := range cs {
		st, err := in.status(c, evs[c.MasterID])
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// summarize decodes a call's stored events and folds them into a Call.
func summarize(masterID string, evs []store.Event) (ctibridge.Call, error) {
	decoded := make([]ctibridge.Event, 0, len(evs))
	for _, se := range evs {
		var e ctibridge.Event
		if err := json.Unmarshal(se.Payload, &e); err != nil {
			return ctibridge.Call{}, fmt.Errorf("event %d of %s: %w", se.ID, masterID, err)
		}
		e.Kind, e.ReceivedAt = ctibridge.Kind(se.Kind), se.ReceivedAt
		decoded = append(decoded, e)
	}
	return ctibridge.Summarize(masterID, decoded), nil
}

// sources lists who reported the call's moments, in a stable order: "studio"
// for Studio's events, else the event's source (the CXone poller).
func sources(c ctibridge.Call) []string {
	evs := slices.Clone(c.Agents)
	for _, e := range []*ctibridge.Event{c.Queued, c.Released} {
		if e != nil {
			evs = append(evs, *e)
		}
	}
	var out []string
	for _, e := range evs {
		out = append(out, cmp.Or(e.Source, "studio"))
	}
	slices.Sort(out)
	return slices.Compact(out)
}
