// Package console is the operator console: server-rendered pages that show, at
// a glance, whether calls reach ServiceNow, which failed and why, and let an
// operator retry them. Pages are html/template with embedded assets; there is
// no JavaScript build and nothing is loaded from outside.
//
// It never shows a credential, and every state-changing request needs a
// logged-in session and its CSRF token.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/lifecycle"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Source is what the console shows and acts on; the bridge provides it.
type Source interface {
	Calls(ctx context.Context, f lifecycle.CallFilter) ([]lifecycle.Status, error)
	Errors(ctx context.Context, f lifecycle.ErrorFilter) ([]lifecycle.ErrorEntry, error)
	RetryError(ctx context.Context, id int64) (int, error)
	RetryMatching(ctx context.Context, f lifecycle.ErrorFilter) (int, error)
	Chart(now time.Time, minutes int) []Point
	Budget() Budget
	Queue(ctx context.Context) (lifecycle.QueueCounts, error)
	RecordURL(sysID string) string // opens the interaction in ServiceNow
}

// Point is one minute of the activity chart.
type Point struct {
	Minute   time.Time
	Calls    int
	Requests int
	Errors   int
	Latency  time.Duration // mean ServiceNow latency in that minute
}

// Budget is the ServiceNow request budget as the console shows it.
type Budget struct {
	LimitPerHour     int
	UsedLastHour     int
	InFlight         int
	ConcurrencyLimit int // requests allowed in flight now (adaptive)
	MaxConcurrent    int // the most the limit may reach
	Throttled429     int64
	BackoffUntil     time.Time
}

// LoginFunc checks the credentials of a login request. When the client may
// not try now (too many failures) it returns wait > 0 without checking them.
type LoginFunc func(r *http.Request, user, pass string) (ok bool, wait time.Duration)

// Console serves the pages under /console/.
type Console struct {
	src        Source
	checkLogin LoginFunc
	tmpl       map[string]*template.Template
	mux        *http.ServeMux
	mu         sync.Mutex
	sessions   map[string]session
	now        func() time.Time
}

type session struct {
	user    string
	csrf    string
	expires time.Time
}

const (
	cookieName = "ctibridge_session"
	sessionTTL = 8 * time.Hour
)

// New builds the console. login validates (and throttles) logins.
func New(src Source, login LoginFunc) *Console {
	c := &Console{src: src, checkLogin: login, sessions: map[string]session{}, now: time.Now, mux: http.NewServeMux()}
	c.tmpl = parseTemplates()
	assets, _ := fs.Sub(assetFS, "assets")
	c.mux.Handle("GET /console/assets/", http.StripPrefix("/console/assets/", http.FileServerFS(assets)))
	c.mux.HandleFunc("GET /console/login", c.loginPage)
	c.mux.HandleFunc("POST /console/login", c.login)
	c.mux.HandleFunc("POST /console/logout", c.authed(c.logout))
	c.mux.HandleFunc("GET /console/{$}", c.authed(c.overview))
	c.mux.HandleFunc("GET /console/calls/{id}", c.authed(c.callPage))
	c.mux.HandleFunc("GET /console/errors", c.authed(c.errorsPage))
	c.mux.HandleFunc("POST /console/errors/{id}/retry", c.authed(c.retryOne))
	c.mux.HandleFunc("POST /console/errors/retry", c.authed(c.retryAll))
	c.mux.HandleFunc("GET /console/lookups", c.authed(c.lookupsPage))
	c.mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
	})
	return c
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.mux.ServeHTTP(w, r)
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func secureRequest(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

func (c *Console) session(r *http.Request) (string, session, bool) {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return "", session{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[ck.Value]
	if !ok || c.now().After(s.expires) {
		delete(c.sessions, ck.Value)
		return "", session{}, false
	}
	return ck.Value, s, true
}

type ctxSession struct{}

// authed requires a session; POSTs also need the session's CSRF token.
func (c *Console) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, s, ok := c.session(r)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/console/login?next="+template.URLQueryEscaper(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "login required", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			tok := r.PostFormValue("csrf")
			if subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) != 1 {
				http.Error(w, "invalid or missing CSRF token; reload the page", http.StatusForbidden)
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxSession{}, s)))
	}
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, "login", map[string]any{"Next": safeNext(r.URL.Query().Get("next")), "Failed": r.URL.Query().Get("failed") != ""})
}

// safeNext keeps redirects after login on the console.
func safeNext(next string) string {
	if len(next) > 1 && next[0] == '/' && next[1] != '/' && next[1] != '\\' {
		return next
	}
	return "/console/"
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	user, pass := r.PostFormValue("username"), r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	ok, wait := c.checkLogin(r, user, pass)
	if wait > 0 {
		secs := max(1, int(math.Ceil(wait.Seconds())))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		c.renderStatus(w, r, http.StatusTooManyRequests, "login", map[string]any{"Next": next, "RetryAfter": secs})
		return
	}
	if !ok {
		http.Redirect(w, r, "/console/login?failed=1&next="+template.URLQueryEscaper(next), http.StatusSeeOther)
		return
	}
	id := randomToken()
	c.mu.Lock()
	now := c.now()
	for k, s := range c.sessions {
		if now.After(s.expires) {
			delete(c.sessions, k)
		}
	}
	c.sessions[id] = session{user: user, csrf: randomToken(), expires: now.Add(sessionTTL)}
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: id, Path: "/console", HttpOnly: true, Secure: secureRequest(r),
		SameSite: http.SameSiteStrictMode, MaxAge: int(sessionTTL.Seconds()),
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if id, _, ok := c.session(r); ok {
		c.mu.Lock()
		delete(c.sessions, id)
		c.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/console", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, page string, data map[string]any) {
	c.renderStatus(w, r, http.StatusOK, page, data)
}

func (c *Console) renderStatus(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any) {
	if s, ok := r.Context().Value(ctxSession{}).(session); ok {
		data["CSRF"] = s.csrf
		data["User"] = s.user
	}
	data["Page"] = page
	data["Now"] = c.now()
	var buf bytes.Buffer
	if err := c.tmpl[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		http.Error(w, "page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	buf.WriteTo(w)
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	calls, err := c.src.Calls(r.Context(), lifecycle.CallFilter{Limit: 100})
	if err != nil {
		http.Error(w, "calls unavailable", http.StatusInternalServerError)
		return
	}
	q, _ := c.src.Queue(r.Context())
	open, _ := c.src.Errors(r.Context(), lifecycle.ErrorFilter{OpenOnly: true, Severity: lifecycle.SeverityError, Limit: 1000})
	pts := c.src.Chart(c.now(), 180)
	c.render(w, r, "overview", map[string]any{
		"Calls": calls, "Queue": q, "OpenErrors": len(open), "Budget": c.src.Budget(), "Chart": chart(pts),
		"Src": c.src,
	})
}

func (c *Console) callPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	calls, err := c.src.Calls(r.Context(), lifecycle.CallFilter{Limit: 1, MasterID: id})
	if err != nil || len(calls) == 0 {
		http.NotFound(w, r)
		return
	}
	errs, _ := c.src.Errors(r.Context(), lifecycle.ErrorFilter{MasterID: id, Limit: 50})
	c.render(w, r, "call", map[string]any{"Call": calls[0], "Entries": errs, "Src": c.src})
}

// filterError names the filter field whose value was refused.
type filterError struct{ field, want string }

func (e *filterError) Error() string { return e.field + ": " + e.want }

// filterLabels name the filter's parameters as the errors page labels them.
var filterLabels = map[string]string{"status": "HTTP status", "since": "Seen within", "open": "include resolved",
	"operation": "Operation", "severity": "Severity", "limit": "limit", "contact": "contact"}

// errorFilter reads the filter of the errors page and of "Retry all
// matching" the way the admin API and the command line do
// (lifecycle.ParseErrorFilter), and the values to show in the form again.
// The page shows up to 200 entries.
func errorFilter(r *http.Request, now time.Time) (lifecycle.ErrorFilter, map[string]string, error) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		q = r.PostForm
	}
	form := map[string]string{}
	for _, k := range []string{"operation", "status", "since", "severity", "open"} {
		form[k] = q.Get(k)
	}
	f, err := lifecycle.ParseErrorFilter(q, now)
	if fe, ok := err.(*lifecycle.FilterError); ok {
		return f, form, &filterError{filterLabels[fe.Param], fe.Want}
	}
	if f.Limit == 0 {
		f.Limit = 200
	}
	return f, form, err
}

func (c *Console) errorsPage(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{"Retried": r.URL.Query().Get("retried"),
		"Operations": ctibridge.Steps()}
	f, form, err := errorFilter(r, c.now())
	data["Filter"] = form
	if err != nil {
		data["FilterError"] = err.Error()
		c.renderStatus(w, r, http.StatusBadRequest, "errors", data)
		return
	}
	entries, err := c.src.Errors(r.Context(), f)
	if err != nil {
		http.Error(w, "error log unavailable", http.StatusInternalServerError)
		return
	}
	data["Entries"] = entries
	c.render(w, r, "errors", data)
}

func (c *Console) retryOne(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "bad id", http.StatusBadRequest)
		return
	}
	n, err := c.src.RetryError(r.Context(), id)
	if err != nil {
		http.Error(w, "retry failed", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, "/console/errors?retried="+strconv.Itoa(n), http.StatusSeeOther)
}

func (c *Console) retryAll(w http.ResponseWriter, r *http.Request) {
	f, _, err := errorFilter(r, c.now())
	if err != nil {
		http.Error(w, "Nothing retried: "+err.Error()+".", http.StatusBadRequest)
		return
	}
	n, err := c.src.RetryMatching(r.Context(), f)
	if err != nil {
		http.Error(w, "retry failed", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, "/console/errors?retried="+strconv.Itoa(n), http.StatusSeeOther)
}

func (c *Console) lookupsPage(w http.ResponseWriter, r *http.Request) {
	day := c.now().Add(-24 * time.Hour)
	agents, _ := c.src.Errors(r.Context(), lifecycle.ErrorFilter{Severity: lifecycle.SeverityWarning, Operation: string(ctibridge.StepMapAgent), Since: day, Limit: 500})
	calls, _ := c.src.Calls(r.Context(), lifecycle.CallFilter{Since: day, Limit: 2000})
	var unmatched []lifecycle.Status
	for _, s := range calls {
		if s.CallerMatch == "none" || s.CallerMatch == "ambiguous" || s.CallerMatch == "withheld" {
			unmatched = append(unmatched, s)
		}
	}
	c.render(w, r, "lookups", map[string]any{"Agents": agents, "Callers": unmatched})
}
