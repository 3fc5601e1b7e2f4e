package snowsim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// What an instance does to a write besides storing it: choice lists,
// field-level write ACLs, business rules that rewrite values, E.164 phone
// numbers, data policies and the wrap-up state. Each applies only with its
// Hardening switch; the declarations come from the dataset.

// apiError is a refusal in ServiceNow's error envelope.
type apiError struct {
	status          int
	message, detail string
}

func (e *apiError) write(w http.ResponseWriter) { writeError(w, e.status, e.message, e.detail) }

// adjustWrite turns the values a client sent into the values an instance
// stores: it drops what the user may not write, replaces values that are
// not on a choice list, normalises E.164 numbers, then applies value rules
// and checks data policies against the record as it would be. old is the
// stored row of an update, nil for a create. vals holds only writable
// fields of tableName. Caller holds mu.
func (s *Server) adjustWrite(user, tableName string, old, vals map[string]string) *apiError {
	def := s.schema[tableName]
	if s.hard.FieldRules {
		for field := range vals {
			if !s.mayWriteField(user, tableName, field) {
				delete(vals, field)
			}
		}
	}
	if s.hard.ChoiceLists {
		for field, fd := range def.fields {
			if fd.choices == nil {
				continue
			}
			v, sent := vals[field]
			switch {
			case old == nil && v == "":
				vals[field] = fd.choices.dflt // the dictionary default on insert
			case sent && v != "" && !fd.choices.has(v):
				vals[field] = fd.choices.dflt
			}
		}
	}
	if s.hard.E164 {
		for field, v := range vals {
			if !def.fields[field].e164 {
				continue
			}
			n, ok := normalizeE164(v)
			if !ok {
				return &apiError{http.StatusBadRequest, "Invalid phone number",
					fmt.Sprintf("%s: %q is not a valid E.164 phone number (+ and country code, or a 10-digit North American number)", field, v)}
			}
			vals[field] = n
		}
	}
	if tableName == "interaction" && s.hard.WrapUp && old != nil && old["state"] == "work_in_progress" && vals["state"] == "closed_complete" {
		vals["state"] = "wrap_up" // the conversation ended; the agent wraps up
	}
	after := func() map[string]string {
		r := copyRow(old)
		if r == nil {
			r = map[string]string{}
		}
		for k, v := range vals {
			r[k] = v
		}
		return r
	}
	if s.hard.FieldRules {
		for _, rule := range s.data.Rules {
			if rule.Table != tableName {
				continue
			}
			rec := after() // with the values earlier rules set
			if q := s.condition(rule.When); q.Match(func(f string) string { return s.fieldValue(tableName, rec, f) }) {
				for k, v := range rule.Set {
					vals[k] = v
				}
			}
		}
	}
	if s.hard.DataPolicies {
		var rec map[string]string
		for _, p := range s.data.DataPolicies {
			if p.Table != tableName {
				continue
			}
			if rec == nil {
				rec = after()
			}
			if q := s.condition(p.When); !q.Match(func(f string) string { return s.fieldValue(tableName, rec, f) }) {
				continue
			}
			var missing []string
			for _, field := range p.Mandatory {
				if rec[field] == "" {
					missing = append(missing, label(field))
				}
			}
			if len(missing) > 0 {
				return &apiError{http.StatusForbidden, "Operation Failed",
					"Data Policy Exception: The following fields are mandatory: " + strings.Join(missing, ", ")}
			}
		}
	}
	return nil
}

// mayWriteField applies the dataset's field-level write ACLs: a field with
// an ACL may be written only by a user holding one of its roles (or admin).
// Caller holds mu.
func (s *Server) mayWriteField(user, tableName, field string) bool {
	var roles []string
	limited := false
	for _, a := range s.data.FieldACLs {
		if a.Table == tableName && a.Field == field {
			limited = true
			roles = append(roles, a.Write...)
		}
	}
	if !limited {
		return true
	}
	var buf [8]string
	for _, name := range s.appendRoleNames(buf[:0], user) {
		if name == "admin" || slices.Contains(roles, name) {
			return true
		}
	}
	return false
}

// hides reports whether the role sees no row of tableName (Hardening.HiddenRows).
func (s *Server) hides(role, tableName string) bool {
	return s.hard.HiddenRows && slices.Contains(s.data.HiddenRows[role], tableName)
}

// mayRead reports whether user passes tableName's table-level read ACL:
// a role grants it, or (Hardening.HiddenRows) a role is listed in
// hiddenRows for it, which passes the table but hides every row.
func (s *Server) mayRead(user, tableName string) bool {
	if s.allowed(user, tableName, 'r') {
		return true
	}
	if !s.hard.HiddenRows {
		return false
	}
	var buf [8]string
	for _, name := range s.appendRoleNames(buf[:0], user) {
		if s.hides(name, tableName) {
			return true
		}
	}
	return false
}

// refuse answers a create, write or delete the user's roles do not allow,
// worded as a hardened instance does with Hardening.ACLErrorText.
func (s *Server) refuse(w http.ResponseWriter, tableName, op string) {
	if s.hard.ACLErrorText && op == "read" {
		writeError(w, http.StatusForbidden, "User Not Authorized", "User is unauthorized to access table: "+tableName)
		return
	}
	if s.hard.ACLErrorText {
		word := map[string]string{"create": "Insert", "write": "Update", "delete": "Delete"}[op]
		writeError(w, http.StatusForbidden, "Operation Failed", "ACL Exception "+word+" Failed due to security constraints")
		return
	}
	notAuthorized(w, tableName, op)
}

// normalizeE164 reads a phone number as an E.164 field does: "+" and 7 to 15
// digits, or a national number of the default territory (North America: 10
// digits, or 11 starting with 1), with spaces, dots, dashes and brackets
// allowed between digits. It returns the number as +digits. Letters are
// never valid. "" stays "".
func normalizeE164(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", true
	}
	plus := strings.HasPrefix(v, "+")
	var d strings.Builder
	for _, r := range strings.TrimPrefix(v, "+") {
		switch {
		case r >= '0' && r <= '9':
			d.WriteRune(r)
		case strings.ContainsRune(" -.()", r):
		default:
			return "", false
		}
	}
	n := d.String()
	switch {
	case plus && len(n) >= 7 && len(n) <= 15 && n[0] != '0':
		return "+" + n, true
	case !plus && len(n) == 11 && n[0] == '1' && n[1] >= '2':
		return "+" + n, true
	case !plus && len(n) == 10 && n[0] >= '2':
		return "+1" + n, true
	}
	return "", false
}

// endWrapUps closes the interactions whose wrap-up time is over, as the
// wrap-up configuration's automatic end does. Caller holds mu (write).
func (s *Server) endWrapUps() {
	if len(s.wrapUps) == 0 {
		return
	}
	now := s.now()
	t := s.tab("interaction")
	for id, end := range s.wrapUps {
		if now.Before(end) {
			continue
		}
		delete(s.wrapUps, id)
		row := t.rows[id]
		if row == nil || row["state"] != "wrap_up" {
			continue
		}
		stamp := now.UTC().Format(timeFormat)
		t.set(row, "state", "closed_complete")
		closeInteraction(row, stamp, t.set)
		t.set(row, "sys_updated_on", stamp)
		t.set(row, "sys_updated_by", "system")
	}
}

// noteWrapUp starts or forgets an interaction's wrap-up timer after a write.
// Caller holds mu (write).
func (s *Server) noteWrapUp(row map[string]string) {
	if row["state"] == "wrap_up" {
		if _, ok := s.wrapUps[row["sys_id"]]; !ok {
			s.wrapUps[row["sys_id"]] = s.now().Add(s.opts.WrapUpDuration)
		}
		return
	}
	delete(s.wrapUps, row["sys_id"])
}

// label is a field's default label as the dictionary makes it from the
// name: "assigned_to" → "Assigned to".
func label(field string) string {
	l := strings.ReplaceAll(strings.TrimPrefix(field, "u_"), "_", " ")
	if l == "" {
		return field
	}
	return strings.ToUpper(l[:1]) + l[1:]
}
