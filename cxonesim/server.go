package cxonesim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Defaults of a simulator built with zero Options.
const (
	DefaultAccessKeyID     = "cxonesim"
	DefaultAccessKeySecret = "cxonesim-secret"
	DefaultTenantID        = "11ee0000-c0de-4000-8000-00000000c1b0"
	DefaultBusinessUnitID  = 4600001
)

// Options configure a simulator.
type Options struct {
	AccessKeyID     string        // default DefaultAccessKeyID
	AccessKeySecret string        // default DefaultAccessKeySecret
	TenantID        string        // default DefaultTenantID
	BusinessUnitID  int64         // default DefaultBusinessUnitID
	TokenTTL        time.Duration // access-token lifetime; default 1h, as CXone's
	Agents          []Agent       // nil = DefaultAgents()
	Faults          Faults        // initial faults
	// EndedVisibleFor is how long an ended contact stays in contacts/active
	// deltas; default 60s.
	EndedVisibleFor time.Duration
	// ReportingDelay is how long after its end a contact appears in
	// contacts/completed; default 0.
	ReportingDelay time.Duration
	Now            func() time.Time // nil = time.Now
	Logger         *slog.Logger     // nil = discard
	BaseURL        string           // what discovery names; "" = from the request
}

// Faults are injected failures, changeable at run time (PUT /sim/faults).
type Faults struct {
	Latency            time.Duration `json:"-"`
	Jitter             time.Duration `json:"-"`
	ErrorRate          float64       `json:"errorRate"`          // fraction of API requests answered 503
	RateLimitPerMinute int           `json:"rateLimitPerMinute"` // API requests a minute before 429; 0 = none
	Down               bool          `json:"down"`               // every request: 503 from the load balancer
	FailNext           *FailNext     `json:"failNext,omitempty"`
}

// FailNext scripts the next Count matching requests to fail with Status.
type FailNext struct {
	Count  int    `json:"count"`
	Status int    `json:"status"`
	Path   string `json:"path"` // a part of the path the request must contain; "" = any
}

// Stats counts requests by operation (token, discovery, agent,
// active-contacts, completed-contacts, contact-states) and what they met.
type Stats struct {
	Total        int64            `json:"total"`
	ByOp         map[string]int64 `json:"byOp"`
	TokensIssued int64            `json:"tokensIssued"`
	Unauthorized int64            `json:"unauthorized"` // API requests refused for their token
	RateLimited  int64            `json:"rateLimited"`
	MaxInFlight  int64            `json:"maxInFlight"`
}

// Server is the simulator; it is an http.Handler and safe for concurrent use.
type Server struct {
	opts Options
	now  func() time.Time
	log  *slog.Logger

	mu       sync.Mutex
	agents   map[int64]Agent
	calls    []*call
	byMaster map[int64]*call
	nextID   int64
	skills   map[string]int64
	pocs     map[string]int64
	tokens   map[string]time.Time // access token → expiry
	faults   Faults
	rng      *mrand.Rand
	window   time.Time // start of the rate-limit minute
	inWindow int
	stats    Stats
	inFlight int64
}

// New builds a simulator.
func New(opts Options) *Server {
	if opts.AccessKeyID == "" {
		opts.AccessKeyID = DefaultAccessKeyID
	}
	if opts.AccessKeySecret == "" {
		opts.AccessKeySecret = DefaultAccessKeySecret
	}
	if opts.TenantID == "" {
		opts.TenantID = DefaultTenantID
	}
	if opts.BusinessUnitID == 0 {
		opts.BusinessUnitID = DefaultBusinessUnitID
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.EndedVisibleFor <= 0 {
		opts.EndedVisibleFor = time.Minute
	}
	if opts.Agents == nil {
		opts.Agents = DefaultAgents()
	}
	s := &Server{opts: opts, now: opts.Now, log: opts.Logger,
		agents: map[int64]Agent{}, byMaster: map[int64]*call{}, nextID: firstContactID,
		skills: map[string]int64{}, pocs: map[string]int64{}, tokens: map[string]time.Time{},
		faults: opts.Faults, rng: mrand.New(mrand.NewPCG(1, 2)), stats: Stats{ByOp: map[string]int64{}}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.faults.FailNext = s.faults.FailNext.clone()
	for _, a := range opts.Agents {
		s.putAgent(a)
	}
	return s
}

var apiPath = regexp.MustCompile(`(?i)^/incontactapi/services/v\d+\.0/(.+)$`)

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/sim/") {
		s.serveControl(w, r)
		return
	}
	op, route := s.route(r)
	s.begin(op)
	defer s.end()
	f, status := s.fault(op, r.URL.Path)
	s.sleep(f)
	if status != 0 {
		writeFault(w, status)
		return
	}
	switch op {
	case "token":
		s.serveToken(w, r)
	case "discovery":
		s.serveDiscovery(w, r)
	case "":
		writeError(w, http.StatusNotFound, "not_found", "no resource at "+r.URL.Path)
	default:
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not supported here; the simulator serves GET")
			return
		}
		if !s.authorized(r) {
			s.mu.Lock()
			s.stats.Unauthorized++
			s.mu.Unlock()
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid_token", "the access token is missing, unknown, expired or revoked")
			return
		}
		if s.rateLimited() {
			writeError(w, http.StatusTooManyRequests, "too_many_requests", "the request rate limit for this tenant was exceeded")
			return
		}
		switch op {
		case "agent":
			s.serveAgent(w, r, route)
		case "active-contacts":
			s.serveActive(w, r)
		case "completed-contacts":
			s.serveCompleted(w, r)
		case "contact-states":
			s.serveStates(w)
		}
	}
}

// route names the operation a request asks for ("" = none) and the rest of
// its API path.
func (s *Server) route(r *http.Request) (op, rest string) {
	switch {
	case r.URL.Path == "/authentication/v1/token/access-key":
		return "token", ""
	case r.URL.Path == "/.well-known/cxone-configuration":
		return "discovery", ""
	}
	m := apiPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return "", ""
	}
	rest = strings.ToLower(strings.TrimSuffix(m[1], "/"))
	switch {
	case strings.HasPrefix(rest, "agents/") && strings.Count(rest, "/") == 1:
		return "agent", strings.TrimPrefix(rest, "agents/")
	case rest == "contacts/active":
		return "active-contacts", ""
	case rest == "contacts/completed":
		return "completed-contacts", ""
	case rest == "contact-state-descriptions":
		return "contact-states", ""
	}
	return "", ""
}

func (s *Server) begin(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Total++
	if op != "" {
		s.stats.ByOp[op]++
	}
	s.inFlight++
	s.stats.MaxInFlight = max(s.stats.MaxInFlight, s.inFlight)
}

func (s *Server) end() {
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
}

// statusDown stands for the load balancer's page while the service is down.
const statusDown = -1

// fault returns the faults in force and the status a request must fail
// with (0 = none), consuming a scripted failure.
func (s *Server) fault(op, path string) (Faults, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	if f.Down {
		return f, statusDown
	}
	if fn := s.faults.FailNext; fn != nil && fn.Count > 0 && (fn.Path == "" || strings.Contains(strings.ToLower(path), strings.ToLower(fn.Path))) {
		fn.Count--
		if fn.Count == 0 {
			s.faults.FailNext = nil
		}
		return f, fn.Status
	}
	if op != "" && op != "token" && op != "discovery" && f.ErrorRate > 0 && s.rng.Float64() < f.ErrorRate {
		return f, http.StatusServiceUnavailable
	}
	return f, 0
}

func writeFault(w http.ResponseWriter, status int) {
	switch {
	case status == statusDown:
		// A load balancer in front of a service that is down answers
		// with its own page, not the API's envelope.
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>")
	case status == http.StatusTooManyRequests:
		writeError(w, status, "too_many_requests", "the request rate limit for this tenant was exceeded")
	case status >= 500:
		writeError(w, status, "server_error", "the service could not complete the request")
	default:
		writeError(w, status, "error", http.StatusText(status))
	}
}

// sleep applies the configured latency with jitter.
func (s *Server) sleep(f Faults) {
	d := f.Latency
	if f.Jitter > 0 {
		s.mu.Lock()
		d += time.Duration(s.rng.Int64N(int64(2*f.Jitter))) - f.Jitter
		s.mu.Unlock()
	}
	if d > 0 {
		time.Sleep(d)
	}
}

// rateLimited counts an API request against the minute's allowance.
func (s *Server) rateLimited() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := s.faults.RateLimitPerMinute
	if limit <= 0 {
		return false
	}
	now := s.now()
	if now.Sub(s.window) >= time.Minute {
		s.window, s.inWindow = now, 0
	}
	s.inWindow++
	if s.inWindow > limit {
		s.stats.RateLimited++
		return true
	}
	return false
}

// serveToken exchanges an access key for an access token.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	var in struct {
		AccessKeyID     string `json:"accessKeyId"`
		AccessKeySecret string `json:"accessKeySecret"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "the body must be JSON with accessKeyId and accessKeySecret")
		return
	}
	if in.AccessKeyID == "" || in.AccessKeySecret == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "accessKeyId and accessKeySecret are required")
		return
	}
	if in.AccessKeyID != s.opts.AccessKeyID || in.AccessKeySecret != s.opts.AccessKeySecret {
		writeError(w, http.StatusUnauthorized, "invalid_client", "the access key is unknown, inactive or its secret does not match")
		return
	}
	now := s.now()
	exp := now.Add(s.opts.TokenTTL)
	claims := map[string]any{"iss": s.base(r), "sub": "user:" + s.opts.AccessKeyID, "tenantId": s.opts.TenantID,
		"icBUId": s.opts.BusinessUnitID, "iat": now.Unix(), "exp": exp.Unix()}
	tok := jwt(claims)
	s.mu.Lock()
	s.tokens[tok] = exp
	s.stats.TokensIssued++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer",
		"expires_in": int(s.opts.TokenTTL / time.Second), "refresh_token": randomHex(24), "id_token": jwt(claims),
		"issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})
}

// serveDiscovery answers NICE's discovery document for the tenant.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	tenant := r.URL.Query().Get("tenantId")
	switch {
	case tenant == "":
		writeError(w, http.StatusBadRequest, "invalid_request", "tenantId is required")
	case tenant != s.opts.TenantID:
		writeError(w, http.StatusNotFound, "not_found", "no tenant "+tenant)
	default:
		base := s.base(r)
		writeJSON(w, http.StatusOK, map[string]any{"private_ip_range": []string{}, "api_endpoint": base,
			"auth_endpoint": base, "ui_endpoint": base, "area": "sim1"})
	}
}

func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(r.Header.Get("Authorization"), "bearer ")
	}
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, known := s.tokens[tok]
	return known && s.now().Before(exp)
}

// base is the URL the simulator is reached at.
func (s *Server) base(r *http.Request) string {
	if s.opts.BaseURL != "" {
		return strings.TrimRight(s.opts.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// RevokeTokens makes every issued access token invalid.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	s.tokens = map[string]time.Time{}
	s.mu.Unlock()
}

// SetFaults replaces the injected faults.
func (s *Server) SetFaults(f Faults) {
	f.FailNext = f.FailNext.clone()
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Faults returns a copy of the injected faults.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	f.FailNext = f.FailNext.clone()
	return f
}

func (fn *FailNext) clone() *FailNext {
	if fn == nil {
		return nil
	}
	cp := *fn
	return &cp
}

// Stats returns request counts.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.stats
	out.ByOp = map[string]int64{}
	for k, v := range s.stats.ByOp {
		out.ByOp[k] = v
	}
	return out
}

// ResetStats zeroes the request counts.
func (s *Server) ResetStats() {
	s.mu.Lock()
	s.stats = Stats{ByOp: map[string]int64{}}
	s.mu.Unlock()
}

// writeError writes the error envelope.
func writeError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func jwt(claims map[string]any) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	sig := make([]byte, 32)
	rand.Read(sig)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "." + enc.EncodeToString(sig)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
