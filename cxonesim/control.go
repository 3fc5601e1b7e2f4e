package cxonesim

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serveControl serves the simulator's own endpoints, for tests, demos and
// trials. They need basic auth with the tenant's access key (id as the
// user, secret as the password).
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	u, p, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.opts.AccessKeyID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(p), []byte(s.opts.AccessKeySecret)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="cxonesim"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "the control endpoints need basic auth with the access key id and secret")
		return
	}
	switch route := r.Method + " " + r.URL.Path; route {
	case "POST /sim/agents":
		var in struct {
			AgentID      json.RawMessage `json:"agentId"`
			UserName     string          `json:"userName"`
			EmailAddress string          `json:"emailAddress"`
			FirstName    string          `json:"firstName"`
			LastName     string          `json:"lastName"`
		}
		if !decode(w, r, &in) {
			return
		}
		id, err := idField("agentId", in.AgentID)
		if err != nil {
			badRequest(w, err)
			return
		}
		a, err := s.PutAgent(Agent{AgentID: id, UserName: in.UserName, EmailAddress: in.EmailAddress, FirstName: in.FirstName, LastName: in.LastName})
		if err != nil {
			badRequest(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, a)
	case "GET /sim/agents":
		writeJSON(w, http.StatusOK, map[string]any{"agents": s.Agents()})
	case "POST /sim/contacts":
		var err error
		var in struct {
			ANI            string          `json:"ani"`
			DNIS           string          `json:"dnis"`
			SkillName      string          `json:"skillName"`
			PointOfContact string          `json:"pointOfContact"`
			AgentID        json.RawMessage `json:"agentId"`
			QueueFor       string          `json:"queueFor"`
			TalkFor        string          `json:"talkFor"`
			Abandon        bool            `json:"abandon"`
			TransferTo     *struct {
				AgentID json.RawMessage `json:"agentId"`
				After   string          `json:"after"`
			} `json:"transferTo"`
		}
		if !decode(w, r, &in) {
			return
		}
		sc := Script{ANI: in.ANI, DNIS: in.DNIS, SkillName: in.SkillName, PointOfContact: in.PointOfContact, Abandon: in.Abandon}
		var errs []error
		sc.AgentID, err = idField("agentId", in.AgentID)
		errs = append(errs, err)
		sc.QueueFor, err = durationField("queueFor", in.QueueFor)
		errs = append(errs, err)
		sc.TalkFor, err = durationField("talkFor", in.TalkFor)
		errs = append(errs, err)
		if tr := in.TransferTo; tr != nil {
			sc.TransferTo = &Transfer{}
			sc.TransferTo.AgentID, err = idField("transferTo.agentId", tr.AgentID)
			errs = append(errs, err)
			sc.TransferTo.After, err = durationField("transferTo.after", tr.After)
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			badRequest(w, err)
			return
		}
		master, err := s.AddCall(sc)
		if err != nil {
			badRequest(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]int64{"masterContactId": master})
	case "GET /sim/faults":
		f := s.Faults()
		writeJSON(w, http.StatusOK, faultsJSON{Latency: ptr(duration(f.Latency)), Jitter: ptr(duration(f.Jitter)), ErrorRate: &f.ErrorRate,
			RateLimitPerMinute: &f.RateLimitPerMinute, Down: &f.Down, FailNext: f.FailNext})
	case "PUT /sim/faults":
		var in faultsJSON
		if !decode(w, r, &in) {
			return
		}
		if err := in.check(); err != nil {
			badRequest(w, err)
			return
		}
		s.mu.Lock()
		in.apply(&s.faults)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case "POST /sim/revoke-tokens":
		s.RevokeTokens()
		w.WriteHeader(http.StatusNoContent)
	case "GET /sim/stats":
		writeJSON(w, http.StatusOK, s.Stats())
	case "POST /sim/reset-stats":
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusNotFound, "not_found", "control endpoints: POST|GET /sim/agents, POST /sim/contacts, GET|PUT /sim/faults, POST /sim/revoke-tokens, GET /sim/stats, POST /sim/reset-stats")
	}
}

// faultsJSON is the wire form of Faults: durations as Go strings ("200ms"),
// and only the keys given change.
type faultsJSON struct {
	Latency            *duration `json:"latency,omitempty"`
	Jitter             *duration `json:"jitter,omitempty"`
	ErrorRate          *float64  `json:"errorRate,omitempty"`
	RateLimitPerMinute *int      `json:"rateLimitPerMinute,omitempty"`
	Down               *bool     `json:"down,omitempty"`
	FailNext           *FailNext `json:"failNext,omitempty"`
}

func (in faultsJSON) check() error {
	switch {
	case in.Latency != nil && *in.Latency < 0, in.Jitter != nil && *in.Jitter < 0:
		return errors.New("latency, jitter: want a duration like 200ms")
	case in.ErrorRate != nil && (*in.ErrorRate < 0 || *in.ErrorRate > 1):
		return errors.New("errorRate: want a fraction from 0 to 1")
	case in.RateLimitPerMinute != nil && *in.RateLimitPerMinute < 0:
		return errors.New("rateLimitPerMinute: want 0 (none) or more")
	case in.FailNext != nil && (in.FailNext.Status < 400 || in.FailNext.Status > 599):
		return errors.New("failNext.status: want an HTTP error status, 400 to 599")
	}
	return nil
}

func (in faultsJSON) apply(f *Faults) {
	if in.Latency != nil {
		f.Latency = time.Duration(*in.Latency)
	}
	if in.Jitter != nil {
		f.Jitter = time.Duration(*in.Jitter)
	}
	if in.ErrorRate != nil {
		f.ErrorRate = *in.ErrorRate
	}
	if in.RateLimitPerMinute != nil {
		f.RateLimitPerMinute = *in.RateLimitPerMinute
	}
	if in.Down != nil {
		f.Down = *in.Down
	}
	if in.FailNext != nil {
		f.FailNext = in.FailNext.clone()
	}
}

func ptr[T any](v T) *T { return &v }

// decode reads a JSON body strictly: unknown fields and trailing data are
// refused, with the field named.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		badRequest(w, errors.New("body: larger than 64 KiB"))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			err = fmt.Errorf("%s: want a %s", te.Field, te.Type)
		}
		badRequest(w, fmt.Errorf("body: %w", err))
		return false
	}
	if dec.More() {
		badRequest(w, errors.New("body: one JSON object expected"))
		return false
	}
	return true
}

func badRequest(w http.ResponseWriter, err error) {
	writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
}

// duration is a Go duration written as a string ("200ms"), for the faults.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`latency, jitter: want a duration like "200ms"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf(`latency, jitter: %q is not a duration like "200ms"`, s)
	}
	*d = duration(v)
	return nil
}

func (d duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// durationField reads a duration written like "20s"; "" is zero.
func durationField(name, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration like 20s", name, v)
	}
	return d, nil
}

// idField reads a CXone id, given as a number or a string of digits; none
// is zero.
func idField(name string, v json.RawMessage) (int64, error) {
	t := strings.Trim(string(v), `"`)
	if t == "" || t == "null" {
		return 0, nil
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: %s is not a CXone id (digits)", name, v)
	}
	return n, nil
}
