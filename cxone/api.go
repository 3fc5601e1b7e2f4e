package cxone

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Agent reads one agent (Admin API GET /agents/{agentId}). An id CXone does
// not know is an error for which IsNotFound is true.
func (c *Client) Agent(ctx context.Context, agentID string) (Agent, error) {
	if !ValidAgentID(agentID) {
		return Agent{}, &Error{Op: "agent", Message: fmt.Sprintf("agent id %q: want the CXone agent id, digits only", agentID), Err: errBadInput}
	}
	var out struct {
		Agents []Agent `json:"agents"`
	}
	noContent, err := c.get(ctx, "agent", "agents/"+agentID, url.Values{}, &out)
	if err != nil {
		return Agent{}, err
	}
	if noContent || len(out.Agents) == 0 {
		return Agent{}, &Error{Op: "agent", Status: http.StatusNotFound, Message: "no agent " + agentID}
	}
	return out.Agents[0], nil
}

// ActiveContacts polls the Real-Time Data API's contacts/active. A zero
// updatedSince asks for every active contact; otherwise only contacts that
// changed since then come back, the ones that ended included (stateName
// EndContact). Pass the result's LastPollTime as the next updatedSince.
func (c *Client) ActiveContacts(ctx context.Context, updatedSince time.Time) (ActiveContacts, error) {
	q := url.Values{}
	if !updatedSince.IsZero() {
		q.Set("updatedSince", FormatTime(updatedSince))
	}
	items, poll, err := list[ActiveContact](ctx, c, "active-contacts", "contacts/active", q, "activeContacts")
	if err != nil {
		return ActiveContacts{}, err
	}
	return ActiveContacts{LastPollTime: pollTime(poll, updatedSince), Contacts: items}, nil
}

// CompletedContacts polls the Reporting API's contacts/completed for
// contacts that finished (or whose record changed) since updatedSince.
// NICE says reporting data may take 15 minutes or more to appear.
func (c *Client) CompletedContacts(ctx context.Context, updatedSince time.Time) (CompletedContacts, error) {
	if updatedSince.IsZero() {
		return CompletedContacts{}, &Error{Op: "completed-contacts", Message: "updatedSince is needed: the Reporting API does not list every contact ever", Err: errBadInput}
	}
	q := url.Values{"updatedSince": {FormatTime(updatedSince)}}
	items, poll, err := list[CompletedContact](ctx, c, "completed-contacts", "contacts/completed", q, "completedContacts")
	if err != nil {
		return CompletedContacts{}, err
	}
	return CompletedContacts{LastPollTime: pollTime(poll, updatedSince), Contacts: items}, nil
}

// ContactStateDescriptions lists the contact states (GET
// /contact-state-descriptions): the names contacts/active reports in
// stateName, with their categories.
func (c *Client) ContactStateDescriptions(ctx context.Context) ([]ContactState, error) {
	var out struct {
		States []ContactState `json:"contactStateDescriptions"`
	}
	if _, err := c.get(ctx, "contact-states", "contact-state-descriptions", url.Values{}, &out); err != nil {
		return nil, err
	}
	return out.States, nil
}

// pollTime is the reply's lastPollTime; without one (a 204, nothing
// changed), polling again from the same point loses nothing.
func pollTime(s string, since time.Time) time.Time {
	if t, err := parseTime(s); err == nil && !t.IsZero() {
		return t
	}
	return since
}

// ValidAgentID reports whether s can be a CXone agent id: digits only.
func ValidAgentID(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
