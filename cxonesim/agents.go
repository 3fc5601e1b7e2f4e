package cxonesim

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Agent is an agent of the simulated tenant.
type Agent struct {
	AgentID      int64  `json:"agentId"`
	UserName     string `json:"userName"`
	EmailAddress string `json:"emailAddress"`
	FirstName    string `json:"firstName"`
	LastName     string `json:"lastName"`
}

// DefaultAgents are the ServiceNow simulator's agents, as CXone knows them:
// ids 1001 to 1005 and the same e-mail addresses. CXone user names have the
// form of an e-mail address, so they are the address here too, and a bridge
// maps these agents by e-mail, not by user name.
func DefaultAgents() []Agent {
	people := []struct{ user, first, last string }{
		{"jdoe", "John", "Doe"}, {"asmith", "Anna", "Smith"}, {"bwayne", "Bruce", "Wayne"},
		{"ckent", "Clark", "Kent"}, {"dprince", "Diana", "Prince"},
	}
	out := make([]Agent, len(people))
	for i, p := range people {
		email := p.user + "@example.com"
		out[i] = Agent{AgentID: int64(1001 + i), UserName: email, EmailAddress: email, FirstName: p.first, LastName: p.last}
	}
	return out
}

// PutAgent adds an agent or replaces the one with its id; an agent without
// an id gets the next free one. It returns the agent as stored.
func (s *Server) PutAgent(a Agent) (Agent, error) {
	if err := checkAgent(a); err != nil {
		return Agent{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putAgent(a), nil
}

func checkAgent(a Agent) error {
	switch {
	case a.AgentID < 0:
		return fmt.Errorf("agentId: want a positive number, got %d", a.AgentID)
	case strings.TrimSpace(a.UserName) == "":
		return fmt.Errorf("userName: required")
	case a.EmailAddress != "" && !strings.Contains(a.EmailAddress, "@"):
		return fmt.Errorf("emailAddress: %q is not an e-mail address", a.EmailAddress)
	}
	for field, v := range map[string]string{"userName": a.UserName, "emailAddress": a.EmailAddress, "firstName": a.FirstName, "lastName": a.LastName} {
		if len(v) > 256 {
			return fmt.Errorf("%s: longer than 256 bytes", field)
		}
	}
	return nil
}

// putAgent stores an agent. Caller holds mu (or is New).
func (s *Server) putAgent(a Agent) Agent {
	if a.AgentID == 0 {
		a.AgentID = 1001
		for _, have := range s.agents {
			a.AgentID = max(a.AgentID, have.AgentID+1)
		}
	}
	s.agents[a.AgentID] = a
	return a
}

// Agents returns the tenant's agents by id.
func (s *Server) Agents() []Agent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Agent, 0, len(s.agents))
	for _, a := range s.agents {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AgentID < out[j].AgentID })
	return out
}

// serveAgent answers GET /agents/{agentId}.
func (s *Server) serveAgent(w http.ResponseWriter, r *http.Request, id string) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("agentId %q is not a number", id))
		return
	}
	s.mu.Lock()
	a, ok := s.agents[n]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("agent %d does not exist", n))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": []map[string]any{s.agentJSON(a)}})
}

// agentJSON is an agent as the Admin API writes it: every documented field
// a client might read, with CXone's defaults for those the simulator does
// not model.
func (s *Server) agentJSON(a Agent) map[string]any {
	return map[string]any{
		"agentId": a.AgentID, "userName": a.UserName, "firstName": a.FirstName, "middleName": "", "lastName": a.LastName,
		"emailAddress": a.EmailAddress, "isActive": true, "teamId": 3001, "teamName": "Support", "reportToId": 0,
		"isSupervisor": false, "location": "", "custom1": "", "custom2": "", "custom3": "", "custom4": "", "custom5": "",
		"internalId": "", "profileId": 1, "profileName": "Agent", "timeZone": "UTC", "country": "US", "city": "",
		"federatedId": "", "crmUserName": "", "notes": "", "locked": false, "userType": "User",
		"lastUpdated": "2026-01-05T08:00:00.000Z", "createDate": "2026-01-05T08:00:00.000Z",
	}
}
