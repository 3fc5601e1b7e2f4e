package cxone

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// Agent is a CXone agent as the Admin API describes it (GET /agents/{agentId}).
// Only the fields ctibridge uses are kept.
type Agent struct {
	AgentID      int64  `json:"agentId"`
	UserName     string `json:"userName"`
	FirstName    string `json:"firstName"`
	LastName     string `json:"lastName"`
	EmailAddress string `json:"emailAddress"`
	IsActive     bool   `json:"isActive"`
	TeamID       int64  `json:"teamId"`
	TeamName     string `json:"teamName"`
	FederatedID  string `json:"federatedId"`
	CRMUserName  string `json:"crmUserName"`
	Custom1      string `json:"custom1"`
}

// ActiveContact is one contact of the Real-Time Data API's contacts/active.
// A transfer gives the call a new ContactID; MasterContactID stays.
type ActiveContact struct {
	ContactID             int64  `json:"contactId"`
	MasterContactID       int64  `json:"masterContactId"`
	AgentID               int64  `json:"agentId"` // 0 while no agent has it
	AgentStartDate        Time   `json:"agentStartDate"`
	FromAddress           string `json:"fromAddress"` // ANI
	ToAddress             string `json:"toAddress"`   // DNIS
	SkillID               int64  `json:"skillId"`
	SkillName             string `json:"skillName"`
	PointOfContactID      int64  `json:"pointOfContactId"`
	PointOfContactName    string `json:"pointOfContactName"`
	StateID               int64  `json:"stateId"`
	StateName             string `json:"stateName"`
	ContactStateCategory  string `json:"contactStateCategory"`
	TransferIndicatorID   int64  `json:"transferIndicatorId"`
	TransferIndicatorName string `json:"transferIndicatorName"`
	IsOutbound            bool   `json:"isOutbound"`
	MediaTypeID           int64  `json:"mediaTypeId"`
	MediaTypeName         string `json:"mediaTypeName"`
	LastUpdateTime        Time   `json:"lastUpdateTime"`
}

// ActiveContacts is one poll of contacts/active. Pass LastPollTime as the
// next poll's updatedSince to get only what changed since.
type ActiveContacts struct {
	LastPollTime time.Time
	Contacts     []ActiveContact
}

// CompletedContact is one finished contact of the Reporting API's
// contacts/completed.
type CompletedContact struct {
	ContactID             int64  `json:"contactId"`
	MasterContactID       int64  `json:"masterContactId"`
	AgentID               int64  `json:"agentId"`
	Abandoned             bool   `json:"abandoned"`
	AbandonSeconds        Number `json:"abandonSeconds"`
	InQueueSeconds        Number `json:"inQueueSeconds"`
	AgentSeconds          Number `json:"agentSeconds"`
	TotalDurationSeconds  Number `json:"totalDurationSeconds"`
	EndReason             string `json:"endReason"`
	FromAddress           string `json:"fromAddress"`
	ToAddress             string `json:"toAddress"`
	SkillID               int64  `json:"skillId"`
	SkillName             string `json:"skillName"`
	PointOfContactID      int64  `json:"pointOfContactId"`
	PointOfContactName    string `json:"pointOfContactName"`
	TransferIndicatorID   int64  `json:"transferIndicatorId"`
	TransferIndicatorName string `json:"transferIndicatorName"`
	IsOutbound            bool   `json:"isOutbound"`
	MediaTypeID           int64  `json:"mediaTypeId"`
	MediaTypeName         string `json:"mediaTypeName"`
	ContactStartDate      Time   `json:"contactStartDate"`
	LastUpdateTime        Time   `json:"lastUpdateTime"`
}

// CompletedContacts is one poll of contacts/completed.
type CompletedContacts struct {
	LastPollTime time.Time
	Contacts     []CompletedContact
}

// ContactState is one entry of contact-state-descriptions: the names
// contacts/active reports in stateName, with their category.
type ContactState struct {
	ID          int64  `json:"ContactStateId"`
	Description string `json:"ContactStateDescription"`
	Category    string `json:"ContactStateCategory"`
}

// Time is a CXone timestamp. CXone writes ISO 8601, mostly in UTC with a Z,
// sometimes without a zone (taken as UTC); an empty or null value is the
// zero time.
type Time struct{ time.Time }

// timeLayouts are tried in order; the last ones have no zone.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05"}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := parseTime(s)
	t.Time = v
	return err
}

// MarshalJSON implements json.Marshaler, in CXone's form.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(FormatTime(t.Time))
}

// FormatTime writes a time as CXone does: UTC, milliseconds, Z.
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	var err error
	for _, layout := range timeLayouts {
		var v time.Time
		if v, err = time.Parse(layout, s); err == nil {
			return v.UTC(), nil
		}
	}
	return time.Time{}, err
}

// Number is a count CXone sends as a JSON number or, in some versions, as a
// string of digits.
type Number float64

// UnmarshalJSON implements json.Unmarshaler.
func (n *Number) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*n = 0
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*n = 0
			return nil
		}
		v, err := strconv.ParseFloat(s, 64)
		*n = Number(v)
		return err
	}
	var v float64
	err := json.Unmarshal(b, &v)
	*n = Number(v)
	return err
}
