// The steps of an attempt: look up the caller, their open tasks and the
// agents (never holding up the create), create or update the interaction,
// settle writes whose outcome was lost, write notes once, link related
// records.

package lifecycle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ctibridge/ctibridge"
)

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
	if len(s.NotesUnsure) > 0 && !s.CreateNotes {
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
		// The first attempt's create carries the notes known so far (when
		// a backlog is worked off, a call's every event is known before
		// its first attempt, and its closing note costs no update of its
		// own). They are recorded as under way first, with CreateNotes.
		// A create is retried until its outcome is known; a retry carries
		// the same notes, no more, so whichever create made the record,
		// the notes are in it once. Notes known later follow in an
		// update, as do all of a later attempt's (see Tried).
		first := !s.CreateNotes
		var carry []note
		for _, n := range pending {
			if (first && !s.Tried) || slices.Contains(s.NotesUnsure, n.key) {
				carry = append(carry, n)
			}
		}
		if first && len(carry) > 0 {
			s.CreateNotes = true
			for _, n := range carry {
				s.NotesUnsure = append(s.NotesUnsure, n.key)
			}
			if save != nil {
				if err := save(s); err != nil {
					return s, err
				}
			}
		}
		fields := maps.Clone(d.fields)
		addNotes(fields, carry)
		res, err := insert(ctx, r.sn, r.cfg.Table, s.SysID, fields, false)
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
			// An earlier create made it: after a create with notes, that
			// one, with the notes under way; else one without notes, by
			// an attempt that did not record it (a bridge of a version
			// that sent none).
			var written []string
			if !first {
				written = s.NotesUnsure
			}
			s.createNotesLanded(written)
		case err != nil:
			if first && len(carry) > 0 && !mayHaveApplied(err) {
				s.CreateNotes, s.NotesUnsure = false, nil
			}
			return s, failed(ctibridge.StepCreate, err)
		default:
			// This create made it, with the notes it carried. (A note under
			// way that the call no longer wants, an earlier create's, was
			// not carried; should it be wanted again, it is written then.)
			var written []string
			for _, n := range carry {
				written = append(written, n.key)
			}
			s.createNotesLanded(written)
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
		pending = slices.DeleteFunc(pending, func(n note) bool { return s.hasNote(n.key) })
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
			s.RelatedUnsure = priorLinks // the links were not tried
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
		job   int
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
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Go(func() {
			res := job(bg)
			res.job = i
			results <- res
		})
	}
	go func() { wg.Wait(); cancel() }()
	wait := time.NewTimer(r.cfg.LookupWait)
	defer wait.Stop()
	answered := make([]bool, len(jobs))
	var first error
	for range jobs {
		select {
		case res := <-results:
			answered[res.job] = true
			if res.apply != nil {
				res.apply(s)
			}
			first = cmp.Or(first, res.err)
		case <-wait.C:
			slow := steps[slices.Index(answered, false)]
			return cmp.Or(first, failed(slow, errNoAnswerYet))
		case <-ctx.Done():
			return cmp.Or(first, ctx.Err())
		}
	}
	return first
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
// caller, all in one round trip where the instance serves batches. The
// record's sys_id is derived, so a retried job cannot link twice. A link
// whose create may have been applied without its outcome recorded (a lost
// reply, a lost batch reply, a process killed mid-write: prior holds those
// of earlier attempts) may be refused as a duplicate; the integration user
// may only create these records, not read them, so such a refusal is taken
// as that create's success, with a warning. Each link's outcome is recorded,
// and the first failure returned.
func (r *Reconciler) linkRelated(ctx context.Context, s *synced, prior []string) error {
	if s.Caller == nil {
		return nil
	}
	var todo []ctibridge.Related
	var rows []newRow
	for _, t := range s.Caller.Related {
		key := t.Table + ":" + t.SysID
		if slices.Contains(s.Related, key) {
			continue
		}
		todo = append(todo, t)
		rows = append(rows, newRow{sysID: ctibridge.RelatedSysID(s.SysID, t.Table, t.SysID), mayExist: slices.Contains(prior, key), fields: map[string]string{
			"interaction": s.SysID, "document_table": t.Table, "document_id": t.SysID, "task": t.SysID, "type": "task",
		}})
	}
	if len(rows) == 0 {
		return nil
	}
	res, errs := r.sn.insertAll(ctx, "interaction_related_record", rows)
	var first error
	for i, t := range todo {
		key, err := t.Table+":"+t.SysID, errs[i]
		switch {
		case err != nil && mayHaveApplied(err):
			s.RelatedUnsure = appendNew(s.RelatedUnsure, key)
			first = cmp.Or(first, err)
			continue
		case err != nil && !errors.Is(err, errExists):
			s.RelatedUnsure = slices.DeleteFunc(s.RelatedUnsure, func(k string) bool { return k == key }) // not made
			first = cmp.Or(first, err)
			continue
		case res[i].unconfirmed && r.warn != nil:
			r.warn.Warn(ctx, "related-unconfirmed", string(ctibridge.StepLink), fmt.Sprintf(
				"ServiceNow refused to link %s %s to interaction %s again after an earlier attempt's outcome was lost, and the integration user may not "+
					"read interaction_related_record to check: ctibridge takes the link as made. Grant read on interaction_related_record to confirm such links.",
				t.Table, t.Number, s.Number), r.cfg.WarnWindow)
		}
		s.Related = append(s.Related, key)
		s.RelatedUnsure = slices.DeleteFunc(s.RelatedUnsure, func(k string) bool { return k == key })
	}
	return first
}
