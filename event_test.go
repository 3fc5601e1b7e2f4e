package ctibridge

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeEvent(t *testing.T) {
	t.Parallel()
	ev, err := DecodeEvent(Queued, []byte(`{"contactId": 123456, "ani": " 8013203420 ", "skill": 42, "direction": "Inbound",
		"occurredAt": "2026-11-24T09:00:00Z", "customerTier": "gold", "vip": true, "nothing": null}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.ContactID != "123456" || ev.ANI != "8013203420" || ev.Skill != "42" || ev.Direction != "inbound" {
		t.Errorf("decoded %+v", ev)
	}
	if !ev.OccurredAt.Equal(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("occurredAt = %v", ev.OccurredAt)
	}
	if ev.Extra["customerTier"] != "gold" || ev.Extra["vip"] != "true" || ev.Extra["nothing"] != "" {
		t.Errorf("unknown fields not kept: %v", ev.Extra)
	}
	ms, err := DecodeEvent(Answered, []byte(`{"occurredAt": 1795510800000}`))
	if err != nil || ms.OccurredAt.UnixMilli() != 1795510800000 {
		t.Errorf("epoch ms: %v %v", ms.OccurredAt, err)
	}
	if empty, err := DecodeEvent(Released, nil); err != nil || empty.Kind != Released {
		t.Errorf("empty body: %+v %v", empty, err)
	}
}

func TestDecodeEventRejects(t *testing.T) {
	t.Parallel()
	many := "{"
	for i := range MaxExtra + 1 {
		if i > 0 {
			many += ","
		}
		many += `"f` + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":"v"`
	}
	many += "}"
	tests := []struct {
		name, body, field string
	}{
		{"not json", `ani=1`, "body"},
		{"array", `[1,2]`, "body"},
		{"trailing data", `{} {}`, "body"},
		{"nested", `{"ani":{"a":1}}`, "ani"},
		{"array value", `{"skill":[1]}`, "skill"},
		{"too long", `{"dnis":"` + strings.Repeat("9", MaxFieldLen+1) + `"}`, "dnis"},
		{"ani too long", `{"ani":"` + strings.Repeat("8", MaxANILen+1) + `"}`, "ani"},
		{"notes too long", `{"notes":"` + strings.Repeat("n", MaxNotesLen+1) + `"}`, "notes"},
		{"bad email", `{"agentEmail":"nobody"}`, "agentEmail"},
		{"bad direction", `{"direction":"up"}`, "direction"},
		{"bad time", `{"occurredAt":"tomorrow"}`, "occurredAt"},
		{"too many unknown", many, ""},
		{"invalid utf8", "{\"ani\":\"\xff\"}", "body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeEvent(Queued, []byte(tt.body))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a FieldError", err)
			}
			if tt.field != "" && fe.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", fe.Field, tt.field, err)
			}
		})
	}
}

func TestValidateMasterID(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"1", "123456789012", "abc-DEF_1.2"} {
		if err := ValidateMasterID(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "..", ".", "a/b", "a b", "../etc", strings.Repeat("1", 65), "x\x00", "é"} {
		if err := ValidateMasterID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDedupeKeyIgnoresRetryNoise(t *testing.T) {
	t.Parallel()
	a := Event{Kind: Answered, ContactID: "1", AgentID: "7", OccurredAt: time.Unix(1, 0)}
	b := a
	b.OccurredAt = time.Unix(2, 0) // a retry stamped again
	if a.DedupeKey() != b.DedupeKey() {
		t.Error("the same answer with another timestamp is a new event")
	}
	c := a
	c.AgentID = "8"
	if a.DedupeKey() == c.DedupeKey() {
		t.Error("another agent's answer is the same event")
	}
}

// FuzzDecodeEvent: whatever Studio (or an attacker) sends, decoding never
// panics, and a refusal always names the field at fault.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"ani":"8013203420","skill":42,"custom":"x"}`))
	f.Add([]byte(`{"agentEmail":"a@b","occurredAt":"2026-11-24T10:00:00Z"}`))
	f.Add([]byte(`{"ani":{"a":[1,2]}}`))
	f.Add([]byte("{\"notes\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, k := range []Kind{Queued, Answered, Transferred, Released} {
			ev, err := DecodeEvent(k, body)
			if err != nil {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field == "" || fe.Reason == "" {
					t.Fatalf("%q: error %v does not name a field", body, err)
				}
				continue
			}
			if len(ev.ANI) > MaxANILen || len(ev.Extra) > MaxExtra || len(ev.Notes) > MaxNotesLen {
				t.Fatalf("%q: limits not enforced: %+v", body, ev)
			}
		}
	})
}

// TestScalarAndTimeFastPaths: a JSON string read without json.Unmarshal and
// a time tried as Unix milliseconds only when it is a whole number give
// what the general paths give.
func TestScalarAndTimeFastPaths(t *testing.T) {
	for _, raw := range []string{`""`, `"8013203420"`, `"Sales queue"`, `"a\"b"`, `"tab\there"`, `"\u00e9t\u00e9"`, `"été"`, `"\ud83d\ude00"`, "\"\xff\"", `"back\\slash"`, `"~!@#$%^&*()"`} {
		got, err := scalar(json.RawMessage(raw))
		var want string
		if jerr := json.Unmarshal([]byte(raw), &want); jerr != nil || err != nil || got != want {
			t.Errorf("scalar(%s) = %q, %v; json.Unmarshal gives %q, %v", raw, got, err, want, jerr)
		}
	}
	for s, want := range map[string]time.Time{
		"1764000000000":             time.UnixMilli(1764000000000).UTC(),
		"-1000":                     time.UnixMilli(-1000).UTC(),
		"+1000":                     time.UnixMilli(1000).UTC(),
		"2026-11-24T10:00:00Z":      time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
		"2026-11-24T10:00:00+01:00": time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC),
	} {
		if got, err := parseTime(s); err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"-", "+", "12a", "99999999999999999999", "yesterday"} {
		if _, err := parseTime(s); err == nil {
			t.Errorf("parseTime(%q) accepted", s)
		}
	}
}
