package cxonesim

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"
)

// firstContactID is the first contact id handed out: the master contact id
// of the Studio examples.
const firstContactID = 630241195

// Script is a call to play: it waits in the queue for QueueFor, then either
// the caller hangs up (Abandon) or AgentID answers and talks for TalkFor,
// during which it may be transferred to another agent.
type Script struct {
	ANI            string
	DNIS           string        // default 8005550100
	SkillName      string        // default Support
	PointOfContact string        // default Support Line
	AgentID        int64         // who answers; 0 with Abandon
	QueueFor       time.Duration // default 5s
	TalkFor        time.Duration // from the answer to the end; default 60s
	Abandon        bool
	TransferTo     *Transfer
}

// Transfer hands an answered call to another agent After it was answered.
type Transfer struct {
	AgentID int64
	After   time.Duration
}

// call is a scripted call: one leg, or two when it is transferred (a new
// contact id under the same master contact id).
type call struct {
	master         int64
	ani, dnis      string
	skill, poc     string
	skillID, pocID int64
	legs           []leg
}

type leg struct {
	contactID int64
	agentID   int64     // 0: nobody answered
	start     time.Time // enters the queue (first leg) or the new agent's hands
	answer    time.Time // zero: never answered
	end       time.Time
	transfer  string // transfer indicator: None, ReAgent
	endReason string
}

// Contact states the simulator reports (names as the Real-Time Data API
// gives them in stateName; ids and categories are the simulator's own).
type state struct {
	id       int64
	name     string
	category string
}

var (
	statePreQueue = state{3, "PreQueue", "Queued"}
	stateInQueue  = state{4, "InQueue", "Queued"}
	stateRouting  = state{5, "Routing", "Queued"}
	stateActive   = state{6, "Active", "Active"}
	stateHold     = state{7, "Hold", "Active"}
	stateEnd      = state{12, "EndContact", "Inactive"}
	states        = []state{statePreQueue, stateInQueue, stateRouting, stateActive, stateHold, stateEnd}
)

var transferIndicators = map[string]int64{"None": 0, "ReSkill": 1, "ReAgent": 2, "Consult": 3, "TakeOver": 4, "External": 5}

// AddCall scripts a call starting now and returns its master contact id.
// Errors name the field at fault.
func (s *Server) AddCall(sc Script) (int64, error) {
	if sc.DNIS == "" {
		sc.DNIS = "8005550100"
	}
	if sc.SkillName == "" {
		sc.SkillName = "Support"
	}
	if sc.PointOfContact == "" {
		sc.PointOfContact = "Support Line"
	}
	if sc.QueueFor == 0 {
		sc.QueueFor = 5 * time.Second
	}
	if sc.TalkFor == 0 && !sc.Abandon {
		sc.TalkFor = time.Minute
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(sc); err != nil {
		return 0, err
	}
	t0 := s.now()
	c := &call{master: s.nextID, ani: sc.ANI, dnis: sc.DNIS, skill: sc.SkillName, poc: sc.PointOfContact,
		skillID: idFor(s.skills, sc.SkillName, 4001), pocID: idFor(s.pocs, sc.PointOfContact, 5001)}
	s.nextID++
	first := leg{contactID: c.master, start: t0, transfer: "None", endReason: "Contact Hung Up"}
	answer := t0.Add(sc.QueueFor)
	switch {
	case sc.Abandon:
		first.end = answer
	case sc.TransferTo != nil:
		first.agentID, first.answer = sc.AgentID, answer
		first.end = answer.Add(sc.TransferTo.After)
		first.endReason = "Transfer"
		second := leg{contactID: s.nextID, agentID: sc.TransferTo.AgentID, start: first.end, answer: first.end,
			end: answer.Add(sc.TalkFor), transfer: "ReAgent", endReason: "Contact Hung Up"}
		s.nextID++
		c.legs = append(c.legs, first, second)
	default:
		first.agentID, first.answer = sc.AgentID, answer
		first.end = answer.Add(sc.TalkFor)
	}
	if len(c.legs) == 0 {
		c.legs = []leg{first}
	}
	s.calls = append(s.calls, c)
	s.byMaster[c.master] = c
	return c.master, nil
}

// check validates a script. Caller holds mu.
func (s *Server) check(sc Script) error {
	for _, f := range []struct {
		name  string
		value string
		max   int
	}{{"ani", sc.ANI, 128}, {"dnis", sc.DNIS, 128}, {"skillName", sc.SkillName, 256}, {"pointOfContact", sc.PointOfContact, 256}} {
		if len(f.value) > f.max {
			return fmt.Errorf("%s: longer than %d bytes", f.name, f.max)
		}
	}
	const day = 24 * time.Hour
	switch {
	case sc.QueueFor < 0 || sc.QueueFor > day:
		return errors.New("queueFor: want a duration from 0s to 24h")
	case sc.TalkFor < 0 || sc.TalkFor > day:
		return errors.New("talkFor: want a duration from 0s to 24h")
	case sc.Abandon && sc.AgentID != 0:
		return errors.New("agentId: an abandoned call never reaches an agent; leave it out")
	case sc.Abandon && sc.TransferTo != nil:
		return errors.New("transferTo: an abandoned call cannot be transferred")
	case !sc.Abandon && sc.AgentID == 0:
		return errors.New("agentId: required unless abandon is true")
	case !sc.Abandon && sc.TalkFor == 0:
		return errors.New("talkFor: an answered call needs a positive duration")
	}
	if !sc.Abandon {
		if _, ok := s.agents[sc.AgentID]; !ok {
			return fmt.Errorf("agentId: no agent %d (POST /sim/agents adds one)", sc.AgentID)
		}
	}
	if tr := sc.TransferTo; tr != nil {
		if _, ok := s.agents[tr.AgentID]; !ok {
			return fmt.Errorf("transferTo.agentId: no agent %d (POST /sim/agents adds one)", tr.AgentID)
		}
		if tr.AgentID == sc.AgentID {
			return errors.New("transferTo.agentId: the call is already with that agent")
		}
		if tr.After <= 0 || tr.After >= sc.TalkFor {
			return fmt.Errorf("transferTo.after: want a duration above 0s and below talkFor (%s)", sc.TalkFor)
		}
	}
	return nil
}

func idFor(ids map[string]int64, name string, first int64) int64 {
	if id, ok := ids[name]; ok {
		return id
	}
	id := first + int64(len(ids))
	ids[name] = id
	return id
}

// at is a leg's state at now, and since when it has been in it; ok is false
// before the leg exists.
func (l leg) at(now time.Time) (st state, since time.Time, ok bool) {
	switch {
	case now.Before(l.start):
		return state{}, time.Time{}, false
	case !now.Before(l.end):
		return stateEnd, l.end, true
	case l.answer.IsZero() || now.Before(l.answer):
		return stateInQueue, l.start, true
	}
	return stateActive, l.answer, true
}

// ms drops what CXone's timestamps do not show (they are written to the
// millisecond).
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond) }

func stamp(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// serveActive answers the Real-Time Data API's GET /contacts/active.
func (s *Server) serveActive(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := timeParam(q, "updatedSince")
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	s.mu.Lock()
	now := s.now()
	var rows []row
	for _, c := range s.calls {
		for _, l := range c.legs {
			st, changed, ok := l.at(now)
			if !ok {
				continue
			}
			if since.IsZero() && st == stateEnd {
				continue // a full poll shows live contacts only
			}
			if !since.IsZero() && (!changed.After(since) || (st == stateEnd && !now.Before(l.end.Add(s.opts.EndedVisibleFor)))) {
				continue
			}
			rows = append(rows, row{changed, l.contactID, s.activeJSON(c, l, st, changed)})
		}
	}
	s.mu.Unlock()
	s.page(w, r, "activeContacts", rows, now)
}

func (s *Server) activeJSON(c *call, l leg, st state, changed time.Time) map[string]any {
	agentID, first, last := int64(0), "", ""
	if st != stateInQueue && l.agentID != 0 {
		a := s.agents[l.agentID]
		agentID, first, last = l.agentID, a.FirstName, a.LastName
	}
	var agentStart any
	if agentID != 0 {
		agentStart = stamp(l.answer)
	}
	return map[string]any{
		"contactId": l.contactID, "masterContactId": c.master, "agentId": agentID, "agentStartDate": agentStart,
		"firstName": first, "lastName": last, "teamId": 3001, "teamName": "Support",
		"fromAddress": c.ani, "toAddress": c.dnis, "skillId": c.skillID, "skillName": c.skill,
		"pointOfContactId": c.pocID, "pointOfContactName": c.poc, "campaignId": 0, "campaignName": "",
		"stateId": st.id, "stateName": st.name, "contactStateCategory": st.category,
		"mediaTypeId": 4, "mediaTypeName": "Call", "isOutbound": false, "isLogged": false, "isTakeover": false,
		"holdCount": 0, "targetAgentId": 0,
		"transferIndicatorId": transferIndicators[l.transfer], "transferIndicatorName": l.transfer,
		"lastUpdateTime": stamp(changed),
	}
}

// serveCompleted answers the Reporting API's GET /contacts/completed: by
// updatedSince, or by a startDate/endDate range of contact starts.
func (s *Server) serveCompleted(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := timeParam(q, "updatedSince")
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	from, err := timeParam(q, "startDate")
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	to, err := timeParam(q, "endDate")
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if since.IsZero() && (from.IsZero() || to.IsZero()) {
		writeError(w, http.StatusBadRequest, "invalid_request", "give updatedSince, or startDate and endDate")
		return
	}
	s.mu.Lock()
	now := s.now()
	var rows []row
	for _, c := range s.calls {
		for _, l := range c.legs {
			reported := l.end.Add(s.opts.ReportingDelay)
			if now.Before(reported) {
				continue
			}
			if !since.IsZero() && !reported.After(since) {
				continue
			}
			if !from.IsZero() && (ms(l.start).Before(from) || !ms(l.start).Before(to)) {
				continue
			}
			rows = append(rows, row{reported, l.contactID, s.completedJSON(c, l, reported)})
		}
	}
	s.mu.Unlock()
	s.page(w, r, "completedContacts", rows, now)
}

func (s *Server) completedJSON(c *call, l leg, reported time.Time) map[string]any {
	abandoned := l.answer.IsZero()
	queue, talk := l.end.Sub(l.start), time.Duration(0)
	if !abandoned {
		queue, talk = l.answer.Sub(l.start), l.end.Sub(l.answer)
	}
	abandonSeconds := 0.0
	if abandoned {
		abandonSeconds = queue.Seconds()
	}
	a := s.agents[l.agentID]
	return map[string]any{
		"contactId": l.contactID, "masterContactId": c.master, "agentId": l.agentID, "firstName": a.FirstName, "lastName": a.LastName,
		"teamId": 3001, "teamName": "Support", "abandoned": abandoned, "abandonSeconds": abandonSeconds, "isShortAbandon": abandoned && queue < 5*time.Second,
		"inQueueSeconds": queue.Seconds(), "agentSeconds": talk.Seconds(), "totalDurationSeconds": l.end.Sub(l.start).Seconds(),
		"acwSeconds": 0, "holdCount": 0, "holdSeconds": 0, "conferenceSeconds": 0, "endReason": l.endReason,
		"fromAddress": c.ani, "toAddress": c.dnis, "skillId": c.skillID, "skillName": c.skill,
		"pointOfContactId": c.pocID, "pointOfContactName": c.poc, "campaignId": 0, "campaignName": "",
		"mediaTypeId": 4, "mediaTypeName": "Call", "isOutbound": false, "isLogged": false, "isRefused": false, "isTakeover": false,
		"transferIndicatorId": transferIndicators[l.transfer], "transferIndicatorName": l.transfer,
		"contactStartDate": stamp(l.start), "lastUpdateTime": stamp(reported),
	}
}

// serveStates answers GET /contact-state-descriptions, with the capitalised
// keys NICE's definitions give it.
func (s *Server) serveStates(w http.ResponseWriter) {
	out := make([]map[string]any, len(states))
	for i, st := range states {
		out[i] = map[string]any{"ContactStateId": st.id, "ContactStateDescription": st.name, "ContactStateCategory": st.category}
	}
	writeJSON(w, http.StatusOK, map[string]any{"contactStateDescriptions": out})
}

// row is one record of a list, with what it is ordered by.
type row struct {
	changed time.Time
	id      int64
	json    map[string]any
}

// page writes one page of a list with CXone's envelope (top and skip), or
// 204 when nothing matched.
func (s *Server) page(w http.ResponseWriter, r *http.Request, key string, rows []row, now time.Time) {
	q := r.URL.Query()
	top, err := intParam(q, "top", 10000, 1, 10000)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	skip, err := intParam(q, "skip", 0, 0, 1<<31)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if len(rows) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].changed.Equal(rows[j].changed) {
			return rows[i].changed.Before(rows[j].changed)
		}
		return rows[i].id < rows[j].id
	})
	total := len(rows)
	rows = rows[min(skip, total):min(skip+top, total)]
	items := make([]map[string]any, len(rows))
	for i, rw := range rows {
		items[i] = rw.json
	}
	link := func(skip int) string {
		lq := url.Values{}
		for k, v := range q {
			lq[k] = v
		}
		lq.Set("skip", strconv.Itoa(skip))
		lq.Set("top", strconv.Itoa(top))
		return s.base(r) + r.URL.Path + "?" + lq.Encode()
	}
	links := map[string]any{"self": link(skip), "next": nil, "previous": nil}
	if skip+top < total {
		links["next"] = link(skip + top)
	}
	if skip > 0 {
		links["previous"] = link(max(0, skip-top))
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalRecords": total, "_links": links, "businessUnitId": s.opts.BusinessUnitID,
		"lastPollTime": stamp(ms(now)), key: items})
}

// timeParam reads an ISO 8601 time; without a zone it is UTC.
func timeParam(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return ms(t.UTC()), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s: %q is not an ISO 8601 time like 2026-01-05T08:00:00.000Z", name, v)
}

func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s: want a whole number from %d to %d", name, lo, hi)
	}
	return n, nil
}
