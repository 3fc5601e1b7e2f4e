// The interaction as the call's events say it should be.

package lifecycle

import (
	"fmt"
	"strings"

	"github.com/ctibridge/ctibridge"
)

// note is a work note to write exactly once, identified by key.
type note struct {
	key  string
	text string
}

// desired is the interaction as the call's events say it should be.
type desired struct {
	fields map[string]string
	notes  []note
}

func agentKey(e ctibridge.Event) string { return e.Agent().Key() }

func agentLabel(e ctibridge.Event, u ctibridge.AgentUser) string {
	name := e.AgentUserName
	if name == "" {
		name = e.AgentEmail
	}
	if u.Name != "" {
		name = u.Name
	}
	if e.AgentID != "" {
		if name == "" {
			return "CXone agent " + e.AgentID
		}
		return fmt.Sprintf("%s (CXone agent %s)", name, e.AgentID)
	}
	if name == "" {
		return "an unidentified agent"
	}
	return name
}

// want computes the desired interaction. It needs the caller and agents
// already resolved into s.
func (r *Reconciler) want(call ctibridge.Call, s synced) desired {
	d := desired{fields: map[string]string{
		"type":      "phone",
		"direction": "inbound",
		"state":     call.State(r.cfg.States, r.cfg.KeepOpen),
	}}
	if q := call.Queued; q != nil {
		if q.Direction != "" {
			d.fields["direction"] = q.Direction
		}
		number := q.ANI
		if s.Caller != nil && s.Caller.Number != "" {
			number = s.Caller.Number
		} else if r.norm != nil && r.norm(q.ANI) != "" {
			number = r.norm(q.ANI)
		}
		// caller_phone_number is an E.164 field: a withheld or unparseable
		// ANI leaves it empty and is kept, as received, in the description.
		d.fields["caller_phone_number"] = ""
		if isE164(number) {
			d.fields["caller_phone_number"] = number
		}
		d.fields["short_description"] = shortDescription(number, q)
		if c := s.Caller; c != nil {
			for field, v := range map[string]string{"opened_for": c.User, "contact": c.Contact, "account": c.Account, "consumer": c.Consumer} {
				if v != "" {
					d.fields[field] = v
				}
			}
			if len(c.Candidates) > 1 {
				d.notes = append(d.notes, note{"callers:" + q.ANI, fmt.Sprintf(
					"ctibridge: %d records match caller number %s; none was chosen. Candidates: %s",
					len(c.Candidates), number, strings.Join(c.Candidates, ", "))})
			}
		}
		r.mapFields(d.fields, q)
	}
	var prev *ctibridge.Event
	for i := range call.Agents {
		e := call.Agents[i]
		u, resolved := s.Agents[agentKey(e)]
		prevResolved := true
		if prev != nil {
			_, prevResolved = s.Agents[agentKey(*prev)]
		}
		if !resolved || !prevResolved {
			// Not looked up yet: its notes wait until it is, so they name
			// the right people.
			prev = &call.Agents[i]
			r.mapFields(d.fields, &e)
			continue
		}
		if u.SysID == "" {
			d.notes = append(d.notes, note{"unmapped:" + agentKey(e), fmt.Sprintf(
				"ctibridge: %s has no ServiceNow user (agent id %q, user name %q, e-mail %q); the interaction is not assigned to them.",
				agentLabel(e, u), e.AgentID, e.AgentUserName, e.AgentEmail)})
		}
		if (prev == nil && e.Kind == ctibridge.Transferred) || (prev != nil && agentKey(*prev) != agentKey(e)) {
			from := "the queue"
			if prev != nil {
				from = agentLabel(*prev, s.Agents[agentKey(*prev)])
			}
			d.notes = append(d.notes, note{"transfer:" + e.DedupeKey(), fmt.Sprintf(
				"ctibridge: call transferred from %s to %s.", from, agentLabel(e, u))})
		}
		prev = &call.Agents[i]
		r.mapFields(d.fields, &e)
	}
	if a := call.Agent(); a != nil {
		// An unmapped agent clears the assignment rather than leaving the
		// previous agent's name on a call they no longer have; one not
		// looked up yet leaves it as it is for now.
		if u, ok := s.Agents[agentKey(*a)]; ok {
			d.fields["assigned_to"] = u.SysID
		}
	}
	if rel := call.Released; rel != nil {
		var parts []string
		for _, kv := range [][2]string{{"reason", rel.Reason}, {"disposition", rel.Disposition}, {"notes", rel.Notes}} {
			if kv[1] != "" {
				parts = append(parts, kv[0]+": "+kv[1])
			}
		}
		text := "ctibridge: call ended."
		if !call.Answered() {
			text = "ctibridge: caller hung up before an agent answered."
		}
		if len(parts) > 0 {
			text += " " + strings.Join(parts, "; ")
		}
		d.notes = append(d.notes, note{"released", text})
		r.mapFields(d.fields, rel)
	}
	return d
}

// isE164 reports whether s is a number in E.164 form: + and up to 15
// digits, the first not 0.
func isE164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func shortDescription(number string, q *ctibridge.Event) string {
	if number == "" {
		number = "a withheld number"
	}
	desc := "Phone call from " + number
	if q.SkillName != "" {
		desc += ", skill " + q.SkillName
	} else if q.Skill != "" {
		desc += ", skill " + q.Skill
	}
	if q.ContactID != "" {
		desc += ", CXone contact " + q.ContactID
	}
	return desc
}

// mapFields applies the configured call-attribute → interaction-field map.
func (r *Reconciler) mapFields(fields map[string]string, e *ctibridge.Event) {
	for attr, field := range r.cfg.FieldMap {
		if v := e.Attribute(attr); v != "" {
			fields[field] = v
		}
	}
}

// addNotes puts pending work notes into one write: each write of work_notes
// is one journal entry, so several notes share an entry, separated by a
// blank line, in the order the call produced them.
func addNotes(fields map[string]string, pending []note) {
	if len(pending) == 0 {
		return
	}
	texts := make([]string, len(pending))
	for i, n := range pending {
		texts[i] = n.text
	}
	fields["work_notes"] = strings.Join(texts, "\n\n")
}
