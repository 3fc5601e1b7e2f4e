package lifecycle

import (
	"github.com/ctibridge/ctibridge"

	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// synced is what ServiceNow is known to hold for one call: the reconciler's
// memory between attempts, stored with the contact. Fields holds the values
// last written (or read back), so only differences are sent.
type synced struct {
	Created   bool                           `json:"created,omitempty"`
	SysID     string                         `json:"sysId,omitempty"` // differs from the derived one only if the instance ignored it
	Number    string                         `json:"number,omitempty"`
	Fields    map[string]string              `json:"fields,omitempty"`
	Notes     []string                       `json:"notes,omitempty"`   // keys of work notes written
	Related   []string                       `json:"related,omitempty"` // table:sys_id of related records linked
	Caller    *ctibridge.Caller              `json:"caller,omitempty"`  // identification, done once per ANI
	CallerANI string                         `json:"callerAni,omitempty"`
	Agents    map[string]ctibridge.AgentUser `json:"agents,omitempty"` // per agent key, resolved once per call
	// ModCount is the record's sys_mod_count after ctibridge's last write
	// that is known to have landed, and Writer the user the instance
	// records for ctibridge's writes (sys_created_by of the record).
	ModCount string `json:"modCount,omitempty"`
	Writer   string `json:"writer,omitempty"`
	// NotesUnsure are the keys of notes sent in a write whose outcome is
	// unknown (the reply was lost): settled by reading the record back
	// before any note is written again.
	NotesUnsure []string `json:"notesUnsure,omitempty"`
	// Rewritten are fields ServiceNow stored otherwise than written, with
	// the value ctibridge wrote: not written again while the call wants
	// that same value.
	Rewritten map[string]string `json:"rewritten,omitempty"`
	// RelatedUnsure are related records whose create may have been
	// applied without a reply.
	RelatedUnsure []string `json:"relatedUnsure,omitempty"`
	// TasksFound: the caller's open tasks (Caller.Related) were looked up.
	TasksFound bool `json:"tasksFound,omitempty"`
	// FailingSince is when the current run of failed attempts began.
	FailingSince time.Time `json:"failingSince,omitzero"`
}

func decodeSynced(b []byte) (synced, error) {
	var s synced
	if len(b) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode synced state: %w", err)
	}
	return s, nil
}

func (s synced) encode() []byte {
	b, _ := json.Marshal(s)
	return b
}

func (s synced) hasNote(key string) bool { return slices.Contains(s.Notes, key) }

// failingFor reports how long the call has been failing, given the failed
// attempts before this one. Give-up counts from the first failure of the
// current run, not from the call's creation, so a backlog is not parked on
// its first error; a new event or an operator's retry resets attempts, and
// with them the count.
func (s *synced) failingFor(attemptsBefore int, now time.Time) time.Duration {
	if attemptsBefore == 0 || s.FailingSince.IsZero() {
		s.FailingSince = now
	}
	return now.Sub(s.FailingSince)
}

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

// stepError says which step failed.
type stepError struct {
	step ctibridge.Step
	err  error
}

func (e *stepError) Error() string {
	inner := e.err.Error()
	if strings.Contains(inner, string(e.step)) {
		return inner // "servicenow: create interaction: 403 ..." says it already
	}
	return string(e.step) + ": " + inner
}
func (e *stepError) Unwrap() error { return e.err }

func failed(st ctibridge.Step, err error) error { return &stepError{st, err} }

// sync brings ServiceNow in line with the call. It returns the synced state
// reached, also on error, so progress survives a failed attempt.
//
// save, if not nil, stores the synced state while the attempt holds its
// lease: it is called before writes that must not be repeated.
func (r *Reconciler) sync(ctx context.Context, masterID, sysID string, call ctibridge.Call, s synced, save func(synced) error) (synced, error) {
	if s.SysID == "" {
		s.SysID = sysID
	}
	// Create first: lookups that fail or are slow are left for a later
	// attempt, and what they find comes in a later update.
	later := r.lookup(ctx, call, &s)
	if len(s.NotesUnsure) > 0 {
		if err := r.settleNotes(ctx, &s); err != nil {
			return s, failed(ctibridge.StepUpdate, err)
		}
	}
	d := r.want(call, s)
	var pending []note
	for _, n := range d.notes {
		if !s.hasNote(n.key) {
			pending = append(pending, n)
		}
	}
	if !s.Created {
		// The create carries no work notes: a create is retried whenever
		// its outcome is unknown, and which notes an earlier attempt
		// carried could not be told. Notes follow in an update.
		res, err := r.sn.insert(ctx, r.cfg.Table, s.SysID, maps.Clone(d.fields), false)
		switch {
		case errors.Is(err, errExists):
			// Created by an earlier attempt whose outcome we did not record.
			// What it holds is unknown: read it back, or failing that assume
			// nothing and write every field.
			current, gerr := r.sn.get(ctx, r.cfg.Table, s.SysID)
			if gerr != nil && !errors.Is(gerr, errUnreadable) {
				return s, failed(ctibridge.StepCreate, gerr)
			}
			s.Created, s.Number, s.Fields = true, current["number"], current
			s.ModCount, s.Writer = current["sys_mod_count"], current["sys_created_by"]
		case err != nil:
			return s, failed(ctibridge.StepCreate, err)
		default:
			if res.sysIDIgnored && r.warn != nil {
				r.warn.Warn(ctx, "sysid-ignored:"+r.cfg.Table, string(ctibridge.StepCreate), fmt.Sprintf(
					"ServiceNow created %s %s under a sys_id of its own, not the one ctibridge chose (%s). ctibridge follows the real one, "+
						"but screen-pop URLs handed to Studio before the record existed do not open it, and a create retried after a lost reply "+
						"could make a second record. Look for a business rule on %s that sets sys_id.", r.cfg.Table, res.number, s.SysID, r.cfg.Table),
					r.cfg.WarnWindow)
			}
			s.Created, s.SysID, s.Number = true, res.sysID, res.number
			s.Fields = map[string]string{}
			r.compareStored(ctx, &s, d.fields, res.record)
			s.ModCount, s.Writer = res.modCount, res.writer
		}
	}
	patch := map[string]string{}
	for k, v := range d.fields {
		if cur, ok := s.Fields[k]; (!ok || cur != v) && s.Rewritten[k] != v {
			patch[k] = v
		}
	}
	if len(pending) > 0 && s.ModCount == "" {
		// The last write's outcome is unknown: learn the record's
		// sys_mod_count first, so a lost reply to the notes can be told.
		current, err := r.sn.get(ctx, r.cfg.Table, s.SysID)
		if err != nil && !errors.Is(err, errUnreadable) {
			return s, failed(ctibridge.StepUpdate, err)
		}
		s.ModCount = current["sys_mod_count"]
		if s.Writer == "" {
			s.Writer = current["sys_created_by"]
		}
	}
	// Writes that must not be repeated (notes append to a journal; links
	// may only be created) are recorded as under way before they are sent:
	// if the process dies before their outcome is stored, the next attempt
	// settles them as it settles a lost reply, instead of writing twice.
	priorLinks := slices.Clone(s.RelatedUnsure)
	links := r.pendingLinks(s)
	if len(pending) > 0 || len(links) > 0 {
		for _, n := range pending {
			s.NotesUnsure = appendNew(s.NotesUnsure, n.key)
		}
		for _, k := range links {
			s.RelatedUnsure = appendNew(s.RelatedUnsure, k)
		}
		if save != nil {
			if err := save(s); err != nil {
				return s, err
			}
		}
	}
	if len(patch) > 0 || len(pending) > 0 {
		send := maps.Clone(patch)
		addNotes(send, pending)
		// A write with notes appends to the journal: it is never repeated
		// blind, so a lost reply cannot write a note twice.
		rec, err := r.sn.patch(ctx, r.cfg.Table, s.SysID, send, len(pending) > 0)
		if err != nil {
			if !mayHaveApplied(err) {
				s.NotesUnsure = slices.DeleteFunc(s.NotesUnsure, func(k string) bool {
					return slices.ContainsFunc(pending, func(n note) bool { return n.key == k })
				})
			} else if len(pending) == 0 {
				s.ModCount = "" // unknown until read back
			}
			return s, failed(ctibridge.StepUpdate, err)
		}
		s.NotesUnsure = nil
		if s.Fields == nil {
			s.Fields = map[string]string{}
		}
		r.compareStored(ctx, &s, patch, rec)
		for _, n := range pending {
			s.Notes = append(s.Notes, n.key)
		}
		if mc := rec["sys_mod_count"]; mc != "" {
			s.ModCount = mc
		}
	}
	if err := r.linkRelated(ctx, &s, priorLinks); err != nil {
		return s, failed(ctibridge.StepLink, err)
	}
	return s, later
}

// appendNew appends k unless list holds it.
func appendNew(list []string, k string) []string {
	if slices.Contains(list, k) {
		return list
	}
	return append(list, k)
}

// errNoAnswerYet: a lookup did not answer within LookupWait.
var errNoAnswerYet = errors.New("no answer yet; the interaction went ahead without it")

// lookup resolves what the interaction needs besides the call's own events:
// who the caller is and their open tasks, and the agents' ServiceNow users.
// The lookups run side by side; what fails, or has not answered within
// LookupWait, is left for a later attempt, so a slow or failing lookup never
// holds up the create. A slow lookup goes on in the background (up to
// JobTimeout) and its answer waits in the finder's cache. It returns the
// first lookup left over, or nil.
func (r *Reconciler) lookup(ctx context.Context, call ctibridge.Call, s *synced) error {
	type result struct {
		apply func(*synced) // nil when there is nothing to keep
		err   error
	}
	var steps []ctibridge.Step
	var jobs []func(context.Context) result
	if q := call.Queued; q != nil && r.callers != nil && (s.Caller == nil || s.CallerANI != q.ANI) {
		ani := q.ANI
		steps = append(steps, ctibridge.StepIdentify)
		jobs = append(jobs, func(ctx context.Context) result {
			c, err := r.callers.FindCaller(ctx, ani)
			if err != nil {
				return result{err: failed(ctibridge.StepIdentify, err)}
			}
			rel, err := r.callers.OpenTasks(ctx, c)
			c.Related = rel
			return result{apply: func(s *synced) { s.Caller, s.CallerANI, s.TasksFound = &c, ani, err == nil }, err: wrapStep(ctibridge.StepLink, err)}
		})
	} else if s.Caller != nil && r.callers != nil && !s.TasksFound {
		c := *s.Caller
		steps = append(steps, ctibridge.StepLink)
		jobs = append(jobs, func(ctx context.Context) result {
			rel, err := r.callers.OpenTasks(ctx, c)
			if err != nil {
				return result{err: failed(ctibridge.StepLink, err)}
			}
			return result{apply: func(s *synced) { s.Caller.Related, s.TasksFound = rel, true }}
		})
	}
	seen := map[string]bool{}
	for _, e := range call.Agents {
		k := agentKey(e)
		if _, ok := s.Agents[k]; ok || seen[k] {
			continue
		}
		seen[k] = true
		steps = append(steps, ctibridge.StepMapAgent)
		jobs = append(jobs, func(ctx context.Context) result {
			u, err := r.agents.FindAgent(ctx, ctibridge.Agent{ID: e.AgentID, UserName: e.AgentUserName, Email: e.AgentEmail})
			if err != nil {
				return result{err: failed(ctibridge.StepMapAgent, err)}
			}
			if u.SysID == "" && r.warn != nil {
				r.warn.Warn(ctx, "unmapped-agent:"+k, string(ctibridge.StepMapAgent), fmt.Sprintf(
					"%s has no ServiceNow user (user name %q, e-mail %q); interactions stay unassigned",
					agentLabel(e, u), e.AgentUserName, e.AgentEmail), r.cfg.WarnWindow)
			}
			return result{apply: func(s *synced) {
				if s.Agents == nil {
					s.Agents = map[string]ctibridge.AgentUser{}
				}
				s.Agents[k] = u
			}}
		})
	}
	if len(jobs) == 0 {
		return nil
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.JobTimeout)
	results := make(chan result, len(jobs)) // buffered: a job answering late does not block
	pending := make([]bool, len(jobs))
	var wg sync.WaitGroup
	for i, job := range jobs {
		pending[i] = true
		wg.Go(func() {
			res := job(bg)
			results <- res
		})
	}
	go func() { wg.Wait(); cancel() }()
	wait := time.NewTimer(r.cfg.LookupWait)
	defer wait.Stop()
	var first error
	for range jobs {
		select {
		case res := <-results:
			if res.apply != nil {
				res.apply(s)
			}
			if first == nil {
				first = res.err
			}
		case <-wait.C:
			return cmp.Or(first, failed(steps[0], errNoAnswerYet))
		case <-ctx.Done():
			return cmp.Or(first, ctx.Err())
		}
	}
	return first
}

// wrapStep is failed for an error that may be nil.
func wrapStep(st ctibridge.Step, err error) error {
	if err == nil {
		return nil
	}
	return failed(st, err)
}

// compareStored records what ServiceNow stored for the fields asked, as its
// reply shows. A value replaced (not a valid choice), dropped (a field-level
// ACL, a field the table lacks) or rewritten (a business rule) while the
// write still succeeded is warned about once per field per window, and not
// written again until the call asks for another value.
func (r *Reconciler) compareStored(ctx context.Context, s *synced, asked, stored map[string]string) {
	for k, v := range asked {
		got, ok := stored[k]
		if stored == nil {
			got, ok = v, true // nothing to compare with: take what was asked
		}
		s.Fields[k] = got
		if !ok && v == "" || got == v {
			delete(s.Rewritten, k)
			continue
		}
		if s.Rewritten == nil {
			s.Rewritten = map[string]string{}
		}
		s.Rewritten[k] = v
		if r.warn != nil {
			r.warn.Warn(ctx, "rewritten:"+r.cfg.Table+"."+k, string(ctibridge.StepUpdate), fmt.Sprintf(
				"ServiceNow stored %s.%s = %q on %s where ctibridge wrote %q, and answered success: the value is not a valid choice, "+
					"the integration user may not write the field, or a business rule changed it. ctibridge does not write it again until the call "+
					"needs another value. Check the field's choices, its write ACL and the business rules on %s.",
				r.cfg.Table, k, got, s.Number, v, r.cfg.Table), r.cfg.WarnWindow)
		}
	}
}

// settleNotes finds out whether a write with notes whose reply was lost
// reached ServiceNow. It did if the record changed since ctibridge's last
// known write (sys_mod_count grew) and the last change is ctibridge's own
// (sys_updated_by). If someone else changed the record since, the notes are
// written again: a rare duplicate rather than a lost note. A record the
// integration user may not read cannot tell: the notes count as written.
func (r *Reconciler) settleNotes(ctx context.Context, s *synced) error {
	current, err := r.sn.get(ctx, r.cfg.Table, s.SysID)
	applied := true
	switch {
	case errors.Is(err, errUnreadable):
	case err != nil:
		return err
	default:
		was, werr := strconv.Atoi(s.ModCount)
		now, nerr := strconv.Atoi(current["sys_mod_count"])
		if werr == nil && nerr == nil {
			applied = now > was && (s.Writer == "" || current["sys_updated_by"] == s.Writer)
			s.ModCount = current["sys_mod_count"]
		}
	}
	if applied {
		s.Notes = append(s.Notes, s.NotesUnsure...)
	}
	s.NotesUnsure = nil
	return nil
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

// pendingLinks lists the related records still to link, as table:sys_id.
func (r *Reconciler) pendingLinks(s synced) []string {
	if s.Caller == nil {
		return nil
	}
	var out []string
	for _, t := range s.Caller.Related {
		if key := t.Table + ":" + t.SysID; !slices.Contains(s.Related, key) {
			out = append(out, key)
		}
	}
	return out
}

// linkRelated creates one interaction_related_record per open task of the
// caller. The record's sys_id is derived, so a retried job cannot link twice.
// A link whose create may have been applied without its outcome recorded
// (a lost reply, a process killed mid-write: prior holds those of earlier
// attempts) may be refused as a duplicate; the integration user may only
// create these records, not read them, so such a refusal is taken as that
// create's success, with a warning.
func (r *Reconciler) linkRelated(ctx context.Context, s *synced, prior []string) error {
	if s.Caller == nil || len(s.Caller.Related) == 0 {
		return nil
	}
	for _, t := range s.Caller.Related {
		key := t.Table + ":" + t.SysID
		if slices.Contains(s.Related, key) {
			continue
		}
		res, err := r.sn.insert(ctx, "interaction_related_record", ctibridge.RelatedSysID(s.SysID, t.Table, t.SysID), map[string]string{
			"interaction": s.SysID, "document_table": t.Table, "document_id": t.SysID, "task": t.SysID, "type": "task",
		}, slices.Contains(prior, key))
		switch {
		case err != nil && mayHaveApplied(err):
			s.RelatedUnsure = appendNew(s.RelatedUnsure, key)
			return err
		case err != nil && !errors.Is(err, errExists):
			s.RelatedUnsure = slices.DeleteFunc(s.RelatedUnsure, func(k string) bool { return k == key }) // not made
			return err
		case res.unconfirmed && r.warn != nil:
			r.warn.Warn(ctx, "related-unconfirmed", string(ctibridge.StepLink), fmt.Sprintf(
				"ServiceNow refused to link %s %s to interaction %s again after an earlier attempt's outcome was lost, and the integration user may not "+
					"read interaction_related_record to check: ctibridge takes the link as made. Grant read on interaction_related_record to confirm such links.",
				t.Table, t.Number, s.Number), r.cfg.WarnWindow)
		}
		s.Related = append(s.Related, key)
		s.RelatedUnsure = slices.DeleteFunc(s.RelatedUnsure, func(k string) bool { return k == key })
	}
	return nil
}
