package ctibridge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is a moment of a call that Studio reports.
type Kind string

const (
	Queued      Kind = "queued"
	Answered    Kind = "answered"
	Transferred Kind = "transferred"
	Released    Kind = "released"
)

// ParseKind validates an event kind taken from a URL.
func ParseKind(s string) (Kind, bool) {
	switch k := Kind(s); k {
	case Queued, Answered, Transferred, Released:
		return k, true
	}
	return "", false
}

// Event is a decoded Studio event. Known fields are typed; every other field
// Studio sent is kept in Extra (for field mapping), as text.
type Event struct {
	Kind Kind `json:"-"`

	ContactID string `json:"contactId,omitempty"`
	// OccurredAt orders agent events when they arrive out of order; when Studio
	// does not send it, the time the bridge received the event is used.
	OccurredAt time.Time `json:"occurredAt,omitzero"`
	// ReceivedAt is when the bridge stored the event (not part of what
	// Studio sends).
	ReceivedAt time.Time `json:"-"`

	// queued
	ANI            string `json:"ani,omitempty"`
	DNIS           string `json:"dnis,omitempty"`
	Skill          string `json:"skill,omitempty"`
	SkillName      string `json:"skillName,omitempty"`
	PointOfContact string `json:"pointOfContact,omitempty"`
	Direction      string `json:"direction,omitempty"`

	// answered, transferred
	AgentID       string `json:"agentId,omitempty"`
	AgentUserName string `json:"agentUserName,omitempty"`
	AgentEmail    string `json:"agentEmail,omitempty"`

	// released
	Reason      string `json:"reason,omitempty"`
	Disposition string `json:"disposition,omitempty"`
	Notes       string `json:"notes,omitempty"`

	Extra map[string]string `json:"extra,omitempty"`

	// Source names where the event came from: "" for Studio, "cxone-poll"
	// for the CXone poller. It is set by the bridge, never by a request
	// body (a "source" field Studio sends is kept in Extra like any other),
	// and takes no part in the dedupe key: the same moment reported by
	// both sources is one event.
	Source string `json:"source,omitempty"`
}

// Limits on what Studio may send. Studio payloads are small; anything larger is
// a mistake or an attack, and is refused with an error naming the field.
const (
	MaxFieldLen   = 256  // any known field
	MaxNotesLen   = 4000 // released.notes (goes into a work note)
	MaxANILen     = 128  // an ANI, or a SIP URI carrying one
	MaxExtra      = 32   // unknown fields kept for field mapping
	MaxExtraKey   = 64
	MaxExtraValue = 1024
)

// FieldError is a rejected input, naming the field at fault.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// textFields are the fields ctibridge understands besides occurredAt, each
// with where it goes in an Event.
var textFields = map[string]func(*Event) *string{
	"contactId":      func(e *Event) *string { return &e.ContactID },
	"ani":            func(e *Event) *string { return &e.ANI },
	"dnis":           func(e *Event) *string { return &e.DNIS },
	"skill":          func(e *Event) *string { return &e.Skill },
	"skillName":      func(e *Event) *string { return &e.SkillName },
	"pointOfContact": func(e *Event) *string { return &e.PointOfContact },
	"direction":      func(e *Event) *string { return &e.Direction },
	"agentId":        func(e *Event) *string { return &e.AgentID },
	"agentUserName":  func(e *Event) *string { return &e.AgentUserName },
	"agentEmail":     func(e *Event) *string { return &e.AgentEmail },
	"reason":         func(e *Event) *string { return &e.Reason },
	"disposition":    func(e *Event) *string { return &e.Disposition },
	"notes":          func(e *Event) *string { return &e.Notes },
}

func known(key string) bool { return key == "occurredAt" || textFields[key] != nil }

// DecodeEvent parses and validates an event body. An empty body is an event
// with no fields. Values may be JSON strings, numbers or booleans (Studio
// variables are untyped); objects and arrays are refused.
func DecodeEvent(kind Kind, body []byte) (Event, error) {
	ev := Event{Kind: kind}
	if len(bytes.TrimSpace(body)) == 0 {
		return ev, nil
	}
	if !utf8.Valid(body) {
		return ev, &FieldError{"body", "is not valid UTF-8"}
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return ev, &FieldError{"body", "is not a JSON object: " + jsonProblem(err)}
	}
	if dec.More() {
		return ev, &FieldError{"body", "has data after the JSON object"}
	}
	for key, val := range raw {
		if key == "" {
			return ev, &FieldError{"body", "has a field with an empty name"}
		}
		s, err := scalar(val)
		if err != nil {
			return ev, &FieldError{key, err.Error()}
		}
		if !known(key) {
			if ev.Extra == nil {
				ev.Extra = map[string]string{}
			}
			if len(ev.Extra) >= MaxExtra {
				return ev, &FieldError{key, fmt.Sprintf("too many unknown fields (at most %d are kept)", MaxExtra)}
			}
			if len(key) > MaxExtraKey || len(s) > MaxExtraValue {
				return ev, &FieldError{key, fmt.Sprintf("unknown field too long (name ≤ %d, value ≤ %d bytes)", MaxExtraKey, MaxExtraValue)}
			}
			ev.Extra[key] = s
			continue
		}
		limit := MaxFieldLen
		switch key {
		case "notes":
			limit = MaxNotesLen
		case "ani":
			limit = MaxANILen
		}
		if len(s) > limit {
			return ev, &FieldError{key, fmt.Sprintf("is %d bytes, at most %d allowed", len(s), limit)}
		}
		if key == "occurredAt" {
			t, err := parseTime(s)
			if err != nil {
				return ev, &FieldError{key, err.Error()}
			}
			ev.OccurredAt = t
			continue
		}
		*textFields[key](&ev) = strings.TrimSpace(s)
	}
	if ev.AgentEmail != "" && !strings.Contains(ev.AgentEmail, "@") {
		return ev, &FieldError{"agentEmail", "is not an e-mail address"}
	}
	switch strings.ToLower(ev.Direction) {
	case "", "inbound", "outbound":
		ev.Direction = strings.ToLower(ev.Direction)
	default:
		return ev, &FieldError{"direction", `must be "inbound" or "outbound"`}
	}
	return ev, nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "found " + te.Value
	}
	return err.Error()
}

// scalar turns a JSON string, number, boolean or null into text.
func scalar(v json.RawMessage) (string, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", nil
	}
	switch v[0] {
	case '"':
		if s, ok := plainString(v); ok {
			return s, nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("invalid string")
		}
		return s, nil
	case '{', '[':
		return "", fmt.Errorf("must be a string or number, not an object or array")
	case 'n':
		return "", nil
	default: // number or boolean, kept as written
		return string(v), nil
	}
}

// plainString returns the text of a JSON string with nothing to unescape
// (printable ASCII, no backslash), as json.Unmarshal would, without its
// allocations; ok is false for any other string.
func plainString(v json.RawMessage) (s string, ok bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	for _, c := range inner {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return "", false
		}
	}
	return string(inner), true
}

// parseTime accepts RFC 3339 or Unix epoch milliseconds.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if wholeNumber(s) {
		if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.UnixMilli(ms).UTC(), nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("must be an RFC 3339 time or Unix milliseconds")
	}
	return t.UTC(), nil
}

// wholeNumber reports whether s is digits with at most a sign before them,
// so that an RFC 3339 time is not first tried (and an error allocated) as
// Unix milliseconds.
func wholeNumber(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// DedupeKey identifies an event so that a retried request is recognised as the
// same event: the kind plus the fields that make it a distinct happening. Two
// answers by the same agent on the same contact leg are one event whatever
// else differs; two queued reports of the same leg likewise. An agent with a
// CXone agent id is known by that id alone, so Studio's answer (which may add
// the user name) and the CXone poller's answer (id only) for the same leg are
// one event.
func (e Event) DedupeKey() string {
	switch e.Kind {
	case Answered, Transferred:
		if e.AgentID != "" {
			return string(e.Kind) + ":" + e.ContactID + ":" + e.AgentID
		}
		return string(e.Kind) + ":" + e.ContactID + "::" + e.AgentUserName + ":" + e.AgentEmail
	case Queued:
		return string(e.Kind) + ":" + e.ContactID
	default: // released: one per call
		return string(e.Kind)
	}
}

// Hash is a short stable digest of the whole event, for logs.
func (e Event) Hash() string {
	b, _ := json.Marshal(e)
	h := sha256.Sum256(append([]byte(e.Kind), b...))
	return hex.EncodeToString(h[:6])
}

// KnownFields lists the event fields ctibridge understands, sorted; any
// other field is kept as a call attribute for field mapping.
func KnownFields() []string {
	out := append(slices.Collect(maps.Keys(textFields)), "occurredAt")
	slices.Sort(out)
	return out
}

// Attribute returns a call attribute by the name Studio used for it.
func (e *Event) Attribute(name string) string {
	switch name {
	case "contactId":
		return e.ContactID
	case "ani":
		return e.ANI
	case "dnis":
		return e.DNIS
	case "skill":
		return e.Skill
	case "skillName":
		return e.SkillName
	case "pointOfContact":
		return e.PointOfContact
	case "direction":
		return e.Direction
	case "agentId":
		return e.AgentID
	case "agentUserName":
		return e.AgentUserName
	case "agentEmail":
		return e.AgentEmail
	case "reason":
		return e.Reason
	case "disposition":
		return e.Disposition
	}
	return e.Extra[name]
}

// Agent is the CXone agent an answered or transferred event names.
func (e Event) Agent() Agent {
	return Agent{ID: e.AgentID, UserName: e.AgentUserName, Email: e.AgentEmail}
}

// ValidateMasterID checks a CXone master contact id: CXone ids are numeric,
// but integrations also use other systems' ids, so letters, digits, '-', '_'
// and '.' are allowed, 1 to 64 characters. Anything else (slashes, spaces,
// control characters) is refused.
func ValidateMasterID(id string) error {
	if id == "" || len(id) > 64 {
		return &FieldError{"masterContactId", "must be 1 to 64 characters"}
	}
	for _, r := range id {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '_', r == '.':
		default:
			return &FieldError{"masterContactId", fmt.Sprintf("contains %q; only letters, digits, '-', '_' and '.' are allowed", r)}
		}
	}
	if id == "." || id == ".." {
		return &FieldError{"masterContactId", "must not be . or .."}
	}
	return nil
}
