package bridge

import (
	"context"
	"github.com/ctibridge/ctibridge/api"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ctibridge/ctibridge/lifecycle"
)

// ops serves what operators and their tools use: health, readiness, metrics,
// and the admin API behind console credentials.
type ops struct {
	b       *Bridge
	metrics *metrics
}

func newOps(b *Bridge) *ops { return &ops{b: b, metrics: newMetrics(b)} }

// register adds the operational endpoints to mux. /metrics, /healthz and
// /readyz reveal no call data and need no key; the admin API and console are
// added only where admin is true.
func (o *ops) register(mux *http.ServeMux, admin bool) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", o.readyz)
	if admin {
		o.registerAdmin(mux)
	}
}

// MaxPending is the queue length above which, with ServiceNow unreachable,
// the bridge reports itself not ready.
const MaxPending = 5000

func (o *ops) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	type check struct {
		OK     bool   `json:"ok"`
		Detail string `json:"detail,omitempty"`
	}
	checks := map[string]check{}
	ready := true
	if err := o.b.DB.Ping(ctx); err != nil {
		checks["store"] = check{false, "not writable: " + err.Error()}
		ready = false
	} else {
		checks["store"] = check{true, o.b.DB.Dialect() + " writable"}
	}
	counts, err := o.b.DB.Counts(ctx)
	if err != nil {
		checks["queue"] = check{false, err.Error()}
		ready = false
	} else {
		checks["queue"] = check{counts.Pending < MaxPending, strconv.FormatInt(counts.Pending, 10) + " calls pending, " +
			strconv.FormatInt(counts.Parked, 10) + " parked"}
	}
	lastOK, lastAt := o.metrics.lastSNOK.Load(), o.metrics.lastSNAt.Load()
	sn := check{OK: true}
	switch {
	case lastAt == 0:
		sn.Detail = "no request yet"
	case lastOK >= lastAt || time.Since(time.UnixMilli(lastOK)) < 5*time.Minute:
		sn.Detail = "last answered " + time.UnixMilli(lastOK).UTC().Format(time.RFC3339)
	default:
		sn = check{false, "no successful answer since " + time.UnixMilli(lastOK).UTC().Format(time.RFC3339)}
	}
	checks["servicenow"] = sn
	// Unready only if ServiceNow is failing AND work piles up: a short outage
	// is absorbed by the queue and must not take the intake out of rotation.
	if !sn.OK && !checks["queue"].OK {
		ready = false
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	api.WriteJSON(w, status, map[string]any{"ready": ready, "checks": checks})
}

func (o *ops) registerAdmin(mux *http.ServeMux) {
	guard := o.b.adminAuth
	mux.Handle("GET /admin/errors", guard(http.HandlerFunc(o.listErrors)))
	mux.Handle("POST /admin/errors/{id}/retry", guard(http.HandlerFunc(o.retryError)))
	mux.Handle("POST /admin/errors/retry", guard(http.HandlerFunc(o.retryMatching)))
	mux.Handle("GET /admin/calls", guard(http.HandlerFunc(o.listCalls)))
	mux.Handle("/console/", o.b.consoleHandler())
	mux.Handle("/console", o.b.consoleHandler())
}

// errorFilter reads the admin API's error-log filter (see
// lifecycle.ParseErrorFilter).
func errorFilter(r *http.Request) (lifecycle.ErrorFilter, error) {
	return lifecycle.ParseErrorFilter(r.URL.Query(), time.Now())
}

func (o *ops) listErrors(w http.ResponseWriter, r *http.Request) {
	f, err := errorFilter(r)
	if err != nil {
		api.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	entries, err := o.b.Errors.List(r.Context(), f)
	if err != nil {
		api.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "error log unavailable"})
		return
	}
	out := make([]ErrorView, len(entries))
	for i, e := range entries {
		out[i] = viewError(e)
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"errors": out})
}

func (o *ops) retryError(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		api.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "id must be a number"})
		return
	}
	n, err := o.b.Errors.Retry(r.Context(), id)
	if lifecycle.IsNoEntry(err) {
		api.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "no such error entry"})
		return
	}
	if err != nil {
		api.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "retry failed"})
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]int{"retried": n})
}

func (o *ops) retryMatching(w http.ResponseWriter, r *http.Request) {
	f, err := errorFilter(r)
	if err != nil {
		api.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	n, err := o.b.Errors.RetryMatching(r.Context(), f)
	if err != nil {
		api.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "retry failed"})
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]int{"retried": n})
}

func (o *ops) listCalls(w http.ResponseWriter, r *http.Request) {
	calls, err := o.b.Intake.Calls(r.Context(), lifecycle.CallFilter{Limit: 200})
	if err != nil {
		api.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "calls unavailable"})
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"calls": calls})
}

// ErrorView is an error-log entry as the admin API shows it.
type ErrorView struct {
	ID        int64     `json:"id"`
	Contact   string    `json:"masterContactId,omitempty"`
	Operation string    `json:"operation"`
	Severity  string    `json:"severity"`
	Status    int       `json:"status"`
	Message   string    `json:"message"`
	Detail    string    `json:"detail,omitempty"`
	Attempts  int       `json:"attempts"`
	FirstAt   time.Time `json:"firstAt"`
	LastAt    time.Time `json:"lastAt"`
	Open      bool      `json:"open"`
}

func viewError(e lifecycle.ErrorEntry) ErrorView {
	return ErrorView{ID: e.ID, Contact: e.MasterID, Operation: e.Operation, Severity: e.Severity, Status: e.Status,
		Message: e.Message, Detail: e.Detail, Attempts: e.Attempts, FirstAt: e.FirstAt, LastAt: e.LastAt, Open: e.Open()}
}
