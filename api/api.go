// Package api is the HTTP interface CXone Studio calls: one fast, idempotent
// request per moment of a call. It validates, makes the event durable through
// the lifecycle intake, and answers with a small flat JSON object (Studio cuts
// replies at 32 KB and reads flat keys most easily).
//
// It never calls ServiceNow itself and never echoes a key or a secret.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/ctibridge/ctibridge"

	"github.com/ctibridge/ctibridge/lifecycle"
	"github.com/ctibridge/ctibridge/secret"
)

// MaxBody is the largest request body accepted. Studio payloads are well under
// a kilobyte.
const MaxBody = 64 << 10

// MaxWait bounds ?wait=: Studio's proxy gives up after a few seconds anyway.
const MaxWait = 5 * time.Second

// Server serves the Studio API.
type Server struct {
	intake  *lifecycle.Intake
	keys    *Keys
	log     *slog.Logger
	observe func(endpoint string, status int, d time.Duration)
	mux     *http.ServeMux
	limits  *limiters
	hmacKey secret.Secret
	onEvent func(kind string, duplicate bool)
}

// Options configure a Server.
type Options struct {
	Keys    *Keys
	Logger  *slog.Logger
	Observe func(endpoint string, status int, d time.Duration) // metrics hook, may be nil
	// OnEvent, if set, is told about every durable event (metrics).
	OnEvent func(kind string, duplicate bool)
	// RatePerKey limits each key to this many requests a second (0 = no
	// limit), with Burst requests at once; over it, 429 with Retry-After.
	RatePerKey float64
	Burst      int
	// HMACKey, when set, requires every event to be signed (see Sign).
	HMACKey secret.Secret
}

// New builds the Studio API handler.
func New(intake *lifecycle.Intake, o Options) *Server {
	s := &Server{intake: intake, keys: o.Keys, log: o.Logger, observe: o.Observe, mux: http.NewServeMux(),
		limits: newLimiters(o.RatePerKey, o.Burst), hmacKey: o.HMACKey, onEvent: o.OnEvent}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.mux.HandleFunc("POST /v1/contacts/{id}/{kind}", s.authed("event", s.handleEvent))
	s.mux.HandleFunc("GET /v1/contacts/{id}", s.authed("status", s.handleStatus))
	s.mux.HandleFunc("GET /v1/pop/{id}", s.handlePop)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "", "no such endpoint: see /openapi.json")
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Problem is an error answer: flat, naming the field at fault when there is one.
type Problem struct {
	Status  string `json:"status"` // always "error"
	Error   string `json:"error"`
	Field   string `json:"field,omitempty"`
	Code    int    `json:"code"`
	Message string `json:"-"`
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

// authed checks the API key, then runs h, measuring it.
func (s *Server) authed(endpoint string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if s.observe != nil {
				ep := endpoint
				if ep == "event" {
					// One label per event kind; anything else is one label,
					// so a caller cannot grow the metric without bound.
					ep = "unknown"
					if k, ok := ctibridge.ParseKind(r.PathValue("kind")); ok {
						ep = string(k)
					}
				}
				s.observe(ep, sw.status, time.Since(start))
			}
		}()
		name, ok := s.keys.Check(r.Header.Get("Authorization"))
		if !ok {
			sw.Header().Set("WWW-Authenticate", `Bearer realm="ctibridge"`)
			writeProblem(sw, http.StatusUnauthorized, "Authorization", "a valid API key is required: send 'Authorization: Bearer <key>'")
			s.log.Warn("api: refused key", "remote", r.RemoteAddr, "path", r.URL.Path)
			return
		}
		if ok, wait := s.limits.allow(name); !ok {
			sw.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeProblem(sw, http.StatusTooManyRequests, "Authorization", fmt.Sprintf("too many requests for key %q; retry after %s", name, wait.Round(time.Millisecond)))
			return
		}
		if r.Method == http.MethodPost {
			if status, field, why := s.verify(r); status != 0 {
				writeProblem(sw, status, field, why)
				s.log.Warn("api: refused signature", "key", name, "remote", r.RemoteAddr, "why", why)
				return
			}
		}
		r = r.WithContext(context.WithValue(r.Context(), keyNameCtx{}, name))
		h(sw, r)
	}
}

type keyNameCtx struct{}

// KeyName returns the name of the API key that authenticated r.
func KeyName(ctx context.Context) string { s, _ := ctx.Value(keyNameCtx{}).(string); return s }

// WriteJSON answers with v as JSON, never cached: every JSON reply of the
// bridge's HTTP surfaces goes through it.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, status int, field, msg string) {
	WriteJSON(w, status, Problem{Status: "error", Error: msg, Field: field, Code: status})
}

// EventReply is the answer to an accepted event.
type EventReply struct {
	Status           string `json:"status"` // "accepted" or "duplicate"
	InteractionSysID string `json:"interactionSysId"`
	ScreenPopURL     string `json:"screenPopUrl"`
	Number           string `json:"number,omitempty"`
}

func (s *Server) handleEvent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := ctibridge.ValidateMasterID(id); err != nil {
		writeFieldError(w, err)
		return
	}
	kind, ok := ctibridge.ParseKind(r.PathValue("kind"))
	if !ok {
		writeProblem(w, http.StatusNotFound, "event", fmt.Sprintf("unknown event %q: want queued, answered, transferred or released", r.PathValue("kind")))
		return
	}
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > MaxWait {
			writeProblem(w, http.StatusBadRequest, "wait", fmt.Sprintf("must be a duration from 0s to %s, like 2s", MaxWait))
			return
		}
		wait = d
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeProblem(w, http.StatusRequestEntityTooLarge, "body", fmt.Sprintf("is larger than %d bytes", MaxBody))
			return
		}
		writeProblem(w, http.StatusBadRequest, "body", "could not be read")
		return
	}
	ev, err := ctibridge.DecodeEvent(kind, body)
	if err != nil {
		writeFieldError(w, err)
		return
	}
	acc, err := s.intake.Accept(r.Context(), id, ev)
	if err != nil {
		// Not durable: Studio must retry, so this is a 5xx.
		s.log.Error("api: accept", "contact", id, "event", kind, "err", err)
		writeProblem(w, http.StatusServiceUnavailable, "", "the event could not be stored; retry")
		return
	}
	if s.onEvent != nil {
		s.onEvent(string(kind), acc.Duplicate)
	}
	reply := EventReply{Status: "accepted", InteractionSysID: acc.InteractionSysID, ScreenPopURL: acc.ScreenPopURL}
	if acc.Duplicate {
		reply.Status = "duplicate"
	}
	if wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		reply.Number = s.intake.Wait(ctx, id)
		cancel()
	}
	s.log.Info("api: event", "contact", id, "event", kind, "key", KeyName(r.Context()), "status", reply.Status)
	WriteJSON(w, http.StatusOK, reply)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := ctibridge.ValidateMasterID(id); err != nil {
		writeFieldError(w, err)
		return
	}
	st, err := s.intake.Status(r.Context(), id)
	switch {
	case errors.Is(err, lifecycle.ErrUnknownContact):
		writeProblem(w, http.StatusNotFound, "masterContactId", "no event has been received for contact "+strconv.Quote(id))
	case err != nil:
		s.log.Error("api: status", "contact", id, "err", err)
		writeProblem(w, http.StatusInternalServerError, "", "status unavailable")
	default:
		WriteJSON(w, http.StatusOK, st)
	}
}

func writeFieldError(w http.ResponseWriter, err error) {
	var fe *ctibridge.FieldError
	if errors.As(err, &fe) {
		writeProblem(w, http.StatusBadRequest, fe.Field, fe.Error())
		return
	}
	writeProblem(w, http.StatusBadRequest, "", err.Error())
}

// handlePop redirects an agent's browser to the call's interaction in the
// configured workspace: for calls that ctibridge follows from CXone's APIs,
// where no Studio reply carried the screen-pop URL. It needs no key (a
// browser opens it) and reveals nothing: the address depends only on the
// master contact id, and ServiceNow asks the agent to log in.
func (s *Server) handlePop(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := ctibridge.ValidateMasterID(id); err != nil {
		writeFieldError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, s.intake.ScreenPopURL(id), http.StatusFound)
}
