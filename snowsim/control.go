package snowsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// faultsJSON is the wire form of Faults: durations as Go strings ("200ms").
type faultsJSON struct {
	Latency          *string   `json:"latency,omitempty"`
	Jitter           *string   `json:"jitter,omitempty"`
	ErrorRate        *float64  `json:"errorRate,omitempty"`
	DropReplyRate    *float64  `json:"dropReplyRate,omitempty"`
	RateLimitPerHour *int      `json:"rateLimitPerHour,omitempty"`
	Down             *bool     `json:"down,omitempty"`
	FailNext         *FailNext `json:"failNext,omitempty"`
}

// serveControl is the admin-only control endpoint for tests and demos.
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	u, p, ok := r.BasicAuth()
	s.mu.RLock()
	admin := ok && s.password[u] == p && s.active(u) && s.allowed(u, "*", 'w') && s.allowedAll(u)
	s.mu.RUnlock()
	if !admin {
		writeError(w, http.StatusUnauthorized, "User Not Authenticated", "the control endpoint needs basic auth as an admin")
		return
	}
	switch {
	case r.URL.Path == "/sim/faults" && r.Method == http.MethodGet:
		f := s.Faults()
		lat, jit := f.Latency.String(), f.Jitter.String()
		writeJSON(w, faultsJSON{Latency: &lat, Jitter: &jit, ErrorRate: &f.ErrorRate, DropReplyRate: &f.DropReplyRate,
			RateLimitPerHour: &f.RateLimitPerHour, Down: &f.Down, FailNext: f.FailNext})
	case r.URL.Path == "/sim/faults" && r.Method == http.MethodPut:
		b, _ := readBody(r)
		var in faultsJSON
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			writeError(w, http.StatusBadRequest, "Invalid faults", err.Error())
			return
		}
		// Check everything first, then change the faults in one step: a
		// concurrent PUT or a scripted failure used meanwhile is not lost.
		var latency, jitter time.Duration
		for _, d := range []struct {
			in  *string
			out *time.Duration
			key string
		}{{in.Latency, &latency, "latency"}, {in.Jitter, &jitter, "jitter"}} {
			if d.in != nil {
				v, err := time.ParseDuration(*d.in)
				if err != nil || v < 0 {
					writeError(w, http.StatusBadRequest, "Invalid faults", fmt.Sprintf("%s: want a duration like 200ms", d.key))
					return
				}
				*d.out = v
			}
		}
		for _, p := range []struct {
			in  *float64
			key string
		}{{in.ErrorRate, "errorRate"}, {in.DropReplyRate, "dropReplyRate"}} {
			if p.in != nil && (*p.in < 0 || *p.in > 1) {
				writeError(w, http.StatusBadRequest, "Invalid faults", p.key+": want a fraction from 0 to 1")
				return
			}
		}
		s.updateFaults(func(f *Faults) {
			if in.Latency != nil {
				f.Latency = latency
			}
			if in.Jitter != nil {
				f.Jitter = jitter
			}
			if in.ErrorRate != nil {
				f.ErrorRate = *in.ErrorRate
			}
			if in.DropReplyRate != nil {
				f.DropReplyRate = *in.DropReplyRate
			}
			if in.RateLimitPerHour != nil {
				f.RateLimitPerHour = *in.RateLimitPerHour
			}
			if in.Down != nil {
				f.Down = *in.Down
			}
			if in.FailNext != nil {
				f.FailNext = in.FailNext
			}
		})
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/sim/stats" && r.Method == http.MethodGet:
		writeJSON(w, s.Stats())
	case r.URL.Path == "/sim/reset-stats" && r.Method == http.MethodPost:
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(r.URL.Path, "/sim/journal/") && r.Method == http.MethodGet:
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/sim/journal/"), "/")
		if len(parts) != 2 {
			writeError(w, http.StatusBadRequest, "Invalid path", "want /sim/journal/{table}/{sys_id}")
			return
		}
		var out []map[string]string
		for _, field := range []string{"work_notes", "comments"} {
			for _, j := range s.Journal(parts[0], parts[1], field) {
				out = append(out, map[string]string{"element": field, "value": j.Value, "sys_created_by": j.CreatedBy,
					"sys_created_on": j.CreatedOn.Format(timeFormat)})
			}
		}
		writeJSON(w, map[string]any{"result": out})
	default:
		writeError(w, http.StatusNotFound, "Not found", "control endpoints: GET|PUT /sim/faults, GET /sim/stats, POST /sim/reset-stats, GET /sim/journal/{table}/{sys_id}")
	}
}

// allowedAll reports whether a user has the admin role's rights on every table.
func (s *Server) allowedAll(user string) bool {
	for t := range schema {
		if !s.allowed(user, t, 'd') {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
