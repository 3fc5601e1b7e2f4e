package snowsim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ctibridge/ctibridge/encquery"
)

const timeFormat = "2006-01-02 15:04:05"

// Options configure a simulator.
type Options struct {
	Data            *Dataset         // nil = DefaultDataset()
	TokenTTL        time.Duration    // OAuth access-token lifetime, default 1800s
	RefreshTokenTTL time.Duration    // refresh-token lifetime, default 100 days
	Faults          Faults           // initial faults
	Now             func() time.Time // nil = time.Now
	Logger          *slog.Logger     // nil = discard
	BaseURL         string           // used in links and Location; "" = from the request
	// InvalidQueryReturnsNoRows mirrors the system property
	// glide.invalid_query.returns_no_rows (default false: conditions on
	// unknown fields are ignored and the rest of the query applies).
	InvalidQueryReturnsNoRows bool
	// IgnoreClientSysID makes creates ignore a sys_id the client supplies,
	// as a business rule (or an old release) on some instances does.
	IgnoreClientSysID bool
	// Hardening picks the behaviours of a hardened production instance the
	// simulator copies; nil = DefaultHardening() with the dataset's
	// "hardening" keys applied. Hardened() sets every one.
	Hardening *Hardening
	// WrapUpDuration is how long an interaction stays in wrap_up before
	// the simulator closes it (with Hardening.WrapUp); default 60s.
	WrapUpDuration time.Duration
	// SessionTimeout is how long an idle session stays valid (with
	// Hardening.Sessions); default 30 minutes, as glide.ui.session_timeout.
	SessionTimeout time.Duration
	// Capacity makes the simulator an instance of bounded capacity, as an
	// instance's API_INT semaphores make it: at most Capacity Table API and
	// Batch API requests are served at once, up to Capacity more wait
	// their turn (their latency includes the wait), and any beyond that
	// are answered 429 with Retry-After. 0 = no bound.
	Capacity int
	// NoBatchAPI turns the Batch API (POST /api/now/v1/batch) off, as an
	// instance that restricts it: it answers like a path that does not
	// exist.
	NoBatchAPI bool
}

// Faults are injected failures, changeable at run time (PUT /sim/faults).
type Faults struct {
	Latency          time.Duration `json:"-"`
	Jitter           time.Duration `json:"-"`
	ErrorRate        float64       `json:"errorRate"`
	DropReplyRate    float64       `json:"dropReplyRate"`
	RateLimitPerHour int           `json:"rateLimitPerHour"`
	Down             bool          `json:"down"`
	FailNext         *FailNext     `json:"failNext,omitempty"`
}

// FailNext scripts the next Count matching requests to fail.
type FailNext struct {
	Count      int    `json:"count"`
	Status     int    `json:"status"`
	RetryAfter int    `json:"retryAfter"` // seconds; 0 = no header
	Table      string `json:"table"`      // "" = any
	Method     string `json:"method"`     // "" = any
	Drop       bool   `json:"drop"`       // commit the write, then drop the connection
}

// Stats counts Table API requests and the sessions they opened. A Batch
// API request counts once in Batches, and each of its sub-requests counts
// as a Table API request in Total and ByTable (as the rate limit counts
// them). HTTPRequests counts the HTTP requests to /api/ paths, refused ones
// included: round trips, where a batch is one.
type Stats struct {
	Total           int64                       `json:"total"`
	ByTable         map[string]map[string]int64 `json:"byTable"`
	SessionsCreated int64                       `json:"sessionsCreated"`
	Batches         int64                       `json:"batches"`
	HTTPRequests    int64                       `json:"httpRequests"`
	// PeakConcurrent is the most Table API and Batch API requests served
	// at once (with or without Options.Capacity); Rejected counts those
	// answered 429 because Options.Capacity was reached and its queue was
	// full. Both include requests counted in Total and Batches.
	PeakConcurrent int64 `json:"peakConcurrent"`
	Rejected       int64 `json:"rejected"`
}

// JournalEntry is one entry of a journal field (work_notes, comments).
type JournalEntry struct {
	Value     string
	CreatedBy string
	CreatedOn time.Time
}

// Server is the simulator; it is an http.Handler and safe for concurrent use.
type Server struct {
	opts   Options
	now    func() time.Time
	log    *slog.Logger
	hard   Hardening
	schema map[string]*tableDef
	data   *Dataset // the declarations it was loaded with (rules, policies...)

	mu           sync.RWMutex
	tables       map[string]*table
	roles        map[string]Role
	password     map[string]string // user_name → password
	userIDs      map[string]string // user_name → sys_user sys_id
	clients      map[string]OAuthClient
	tokens       map[string]token
	refresh      map[string]token
	counters     map[string]int
	faults       Faults
	stats        Stats
	windows      map[string]*window // rate limit per user
	rng          *mrand.Rand
	sessions     map[string]session   // JSESSIONID → session (Hardening.Sessions)
	sessionSweep time.Time            // when expired sessions were last dropped
	wrapUps      map[string]time.Time // interaction sys_id → when its wrap-up ends
	slots        chan struct{}        // Options.Capacity slots; nil = no bound
	waiting      int                  // requests waiting for a slot
	serving      atomic.Int64         // requests holding a slot (or served, without a bound)
	peak         atomic.Int64         // the most served at once since the statistics were reset
	conditions   sync.Map             // encoded query → encquery.Query, for the dataset's conditions (condition)
}

type table struct {
	rows  map[string]map[string]string
	order []string                       // insertion order of sys_ids (deleted ones skipped)
	seq   map[string]int                 // sys_id → position in order
	index map[string]map[string][]string // field → lower-cased value → sys_ids (index.go)
}

type token struct {
	user    string
	expires time.Time
}

type window struct {
	start time.Time
	count int
}

// New builds a simulator loaded with opts.Data.
func New(opts Options) *Server {
	if opts.Data == nil {
		opts.Data = DefaultDataset()
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 1800 * time.Second
	}
	if opts.RefreshTokenTTL <= 0 {
		opts.RefreshTokenTTL = 100 * 24 * time.Hour
	}
	if opts.WrapUpDuration <= 0 {
		opts.WrapUpDuration = time.Minute
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = 30 * time.Minute
	}
	h := DefaultHardening()
	if opts.Hardening != nil {
		h = *opts.Hardening
	} else {
		h.apply(opts.Data.Hardening) // LoadDataset has checked the keys
	}
	s := &Server{
		opts: opts, now: opts.Now, log: opts.Logger, hard: h, schema: schemaFor(h, opts.Data), data: opts.Data,
		tables: map[string]*table{}, roles: opts.Data.roles(),
		password: map[string]string{}, userIDs: map[string]string{}, clients: map[string]OAuthClient{}, tokens: map[string]token{}, refresh: map[string]token{},
		counters: map[string]int{}, faults: opts.Faults, windows: map[string]*window{}, rng: mrand.New(mrand.NewPCG(1, 2)),
		stats: Stats{ByTable: map[string]map[string]int64{}}, sessions: map[string]session{}, wrapUps: map[string]time.Time{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.Capacity > 0 {
		s.slots = make(chan struct{}, opts.Capacity)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for name, def := range s.schema {
		if def.storage == "" || def.storage == name {
			s.tables[name] = newTable()
		}
	}
	s.tables["sys_user_has_role"].buildIndex("user") // a user's roles, on every request (appendRoleNames)
	s.clients["ctibridge"] = OAuthClient{ID: "ctibridge", Secret: "ctibridge-secret", RunAs: "cti_integration"}
	for _, c := range opts.Data.OAuthClients {
		s.clients[c.ID] = c
	}
	for name := range s.roles {
		s.insertRow("sys_user_role", map[string]string{"sys_id": deterministicID("role:"+name, 0), "name": name}, "system")
	}
	defined := map[string]bool{}
	for _, u := range opts.Data.Users {
		s.putUser(u)
		defined[u.UserName] = true
	}
	for _, u := range BuiltinUsers() {
		if !defined[u.UserName] {
			s.putUser(u)
		}
	}
	// In a stable order, so numbers and indexes come out the same each run.
	names := make([]string, 0, len(opts.Data.Tables))
	for t := range opts.Data.Tables {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		into := t
		if s.schema[t] == nil && t == "csm_consumer_user" {
			into = "sys_user" // without the hierarchy a consumer user is a plain user
		}
		if s.schema[into] == nil {
			continue // a table only a hardened simulator has
		}
		for _, r := range opts.Data.Tables[t] {
			s.insertRow(into, r, "system")
		}
	}
	return s
}

func newSysID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// insertRow stores a row (values already strings). Caller holds mu or is New.
func (s *Server) insertRow(tableName string, in map[string]string, by string) map[string]string {
	def := s.schema[tableName]
	t := s.tab(tableName)
	now := s.now().UTC().Format(timeFormat)
	row := map[string]string{}
	for k, v := range in {
		if fd, ok := def.fields[k]; ok && fd.kind != kJournal {
			row[k] = v
		}
	}
	if row["sys_id"] == "" {
		row["sys_id"] = newSysID()
	}
	for k, v := range map[string]string{"sys_created_on": now, "sys_updated_on": now, "sys_created_by": by, "sys_updated_by": by} {
		if row[k] == "" {
			row[k] = v
		}
	}
	row["sys_mod_count"] = "0"
	if def.class != "" {
		row["sys_class_name"] = def.class
	}
	if def.prefix != "" {
		if row["number"] == "" {
			s.counters[tableName]++
			row["number"] = fmt.Sprintf("%s%0*d", def.prefix, def.digits, def.start-1+s.counters[tableName])
		} else if n, err := strconv.Atoi(strings.TrimPrefix(row["number"], def.prefix)); err == nil && n-def.start+1 > s.counters[tableName] {
			s.counters[tableName] = n - def.start + 1
		}
	}
	if _, ok := def.fields["active"]; ok && row["active"] == "" {
		row["active"] = "true"
	}
	if tableName == "interaction" {
		if row["opened_at"] == "" {
			row["opened_at"] = now
		}
		closeInteraction(row, now, func(r map[string]string, k, v string) { r[k] = v })
	}
	if def.storage == "sys_user" || tableName == "sys_user" {
		if row["user_name"] != "" {
			s.userIDs[row["user_name"]] = row["sys_id"]
		}
	}
	if (def.storage == "sys_user" || tableName == "sys_user") && in["user_password"] != "" {
		s.password[row["user_name"]] = in["user_password"]
	}
	delete(row, "user_password") // stored apart; never returned
	t.insert(row)
	s.journal(tableName, row["sys_id"], in, by)
	return row
}

// closeInteraction mimics the interaction table's business rules: a closed
// state makes the record inactive and stamps closed_at.
func closeInteraction(row map[string]string, now string, set func(row map[string]string, field, value string)) {
	if strings.HasPrefix(row["state"], "closed") {
		set(row, "active", "false")
		if row["closed_at"] == "" {
			set(row, "closed_at", now)
		}
	} else if row["state"] != "" {
		set(row, "active", "true")
	}
}

// journal appends journal-field writes to sys_journal_field.
func (s *Server) journal(tableName, sysID string, in map[string]string, by string) {
	def := s.schema[tableName]
	for k, v := range in {
		if fd, ok := def.fields[k]; ok && fd.kind == kJournal && v != "" {
			s.insertRow("sys_journal_field", map[string]string{"element_id": sysID, "name": tableName, "element": k, "value": v}, by)
		}
	}
}

func (s *Server) putUser(u User) error {
	if u.UserName == "" {
		return fmt.Errorf("snowsim: user without user_name")
	}
	row := map[string]string{}
	for k, v := range u.Fields {
		row[k] = v
	}
	row["user_name"] = u.UserName
	row["active"] = "true"
	if v, ok := u.Fields["active"]; ok {
		row["active"] = v
	}
	if u.SysID == "" {
		u.SysID = deterministicID("user:"+u.UserName, 0)
	}
	row["sys_id"] = u.SysID
	if users := s.tab("sys_user"); users.rows[u.SysID] != nil {
		old := users.rows[u.SysID]
		for k, v := range row {
			users.set(old, k, v)
		}
	} else {
		s.insertRow("sys_user", row, "system")
	}
	s.password[u.UserName] = u.Password
	// Replace role links.
	links := s.tables["sys_user_has_role"]
	for id, r := range links.rows {
		if r["user"] == u.SysID {
			links.remove(id)
		}
	}
	for _, role := range u.Roles {
		s.insertRow("sys_user_has_role", map[string]string{"user": u.SysID, "role": deterministicID("role:"+role, 0)}, "system")
	}
	return nil
}

// PutUser adds or replaces a user and its roles (for tests: a user lacking one
// right, a user with a new role).
func (s *Server) PutUser(u User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range u.Roles {
		if _, ok := s.roles[r]; !ok {
			return fmt.Errorf("snowsim: unknown role %q", r)
		}
	}
	return s.putUser(u)
}

// PutRole defines or replaces a role.
func (s *Server) PutRole(name string, r Role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.roles[name]; !ok {
		s.insertRow("sys_user_role", map[string]string{"sys_id": deterministicID("role:"+name, 0), "name": name}, "system")
	}
	s.roles[name] = r
}

// appendRoleNames appends the names of the roles granted to user to dst,
// in no particular order: the user's sys_user_has_role links, found by
// the index on their user field (built by New), name sys_user_role rows.
// Caller holds mu.
func (s *Server) appendRoleNames(dst []string, user string) []string {
	sysID := s.userIDs[user]
	links, roles := s.tables["sys_user_has_role"], s.tables["sys_user_role"]
	for _, id := range links.index["user"][strings.ToLower(sysID)] {
		if link := links.rows[id]; link != nil && link["user"] == sysID {
			dst = append(dst, roles.rows[link["role"]]["name"])
		}
	}
	return dst
}

func (r Role) grants(tableName string, op byte) bool {
	return strings.IndexByte(r[tableName], op) >= 0 || strings.IndexByte(r["*"], op) >= 0
}

// allowed reports whether user may do op (r, c, w, d) on tableName.
// Caller holds mu.
func (s *Server) allowed(user, tableName string, op byte) bool {
	var buf [8]string
	for _, name := range s.appendRoleNames(buf[:0], user) {
		if s.roles[name].grants(tableName, op) {
			return true
		}
	}
	return false
}

// visible reports whether user may see row, given the row-level read ACLs
// of the roles that grant reading tableName. Caller holds mu.
func (s *Server) visible(user, tableName string, row map[string]string) bool {
	var buf [8]string
	for _, name := range s.appendRoleNames(buf[:0], user) {
		role := s.roles[name]
		if !role.grants(tableName, 'r') || s.hides(name, tableName) {
			continue
		}
		cond, limited := role[tableName+":rows"]
		if !limited {
			return true
		}
		q := s.condition(cond)
		if q.Match(func(f string) string { return s.fieldValue(tableName, row, f) }) {
			return true
		}
	}
	return false
}

// condition parses an encoded query of the dataset or a role (a row ACL, a
// rule's or a data policy's condition), once.
func (s *Server) condition(cond string) encquery.Query {
	if q, ok := s.conditions.Load(cond); ok {
		return q.(encquery.Query)
	}
	q, _ := encquery.ParseLenient(cond)
	s.conditions.Store(cond, q)
	return q
}

// SetFaults replaces the injected faults. The simulator keeps its own copy
// of f.FailNext: requests count it down, the caller's value stays as it was.
func (s *Server) SetFaults(f Faults) {
	f.FailNext = f.FailNext.clone()
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Faults returns a copy of the injected faults, FailNext included, so it
// can be read (or encoded) while requests consume scripted failures.
func (s *Server) Faults() Faults {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f := s.faults
	f.FailNext = f.FailNext.clone()
	return f
}

// updateFaults changes the faults in place under the lock, so concurrent
// changes and scripted failures consumed meanwhile are not lost. change must
// not keep the pointer it is given.
func (s *Server) updateFaults(change func(*Faults)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	change(&s.faults)
	s.faults.FailNext = s.faults.FailNext.clone()
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
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := s.stats
	out.PeakConcurrent = s.peak.Load()
	out.ByTable = map[string]map[string]int64{}
	for t, m := range s.stats.ByTable {
		out.ByTable[t] = map[string]int64{}
		for k, v := range m {
			out.ByTable[t][k] = v
		}
	}
	return out
}

// ResetStats zeroes the request counts.
func (s *Server) ResetStats() {
	s.mu.Lock()
	s.stats = Stats{ByTable: map[string]map[string]int64{}}
	s.peak.Store(s.serving.Load())
	s.mu.Unlock()
}

// Records returns copies of a table's rows (references as sys_ids), in
// insertion order.
func (s *Server) Records(tableName string) []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endWrapUps()
	t := s.tab(tableName)
	if t == nil {
		return nil
	}
	var out []map[string]string
	for _, id := range t.order {
		if r, ok := t.rows[id]; ok && s.member(tableName, r) {
			out = append(out, copyRow(r))
		}
	}
	return out
}

// Record returns one row.
func (s *Server) Record(tableName, sysID string) (map[string]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endWrapUps()
	r := s.row(tableName, sysID)
	return copyRow(r), r != nil
}

// Journal returns a record's journal entries for a field, oldest first.
func (s *Server) Journal(tableName, sysID, field string) []JournalEntry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.tab("sys_journal_field")
	var out []JournalEntry
	for _, id := range t.order {
		r, ok := t.rows[id]
		if ok && r["element_id"] == sysID && r["name"] == tableName && r["element"] == field {
			on, _ := time.Parse(timeFormat, r["sys_created_on"])
			out = append(out, JournalEntry{Value: r["value"], CreatedBy: r["sys_created_by"], CreatedOn: on})
		}
	}
	return out
}

// RevokeRefreshTokens makes every issued refresh token invalid.
func (s *Server) RevokeRefreshTokens() { s.mu.Lock(); s.refresh = map[string]token{}; s.mu.Unlock() }

// RevokeAccessTokens makes every issued access token invalid.
func (s *Server) RevokeAccessTokens() { s.mu.Lock(); s.tokens = map[string]token{}; s.mu.Unlock() }

func copyRow(r map[string]string) map[string]string {
	if r == nil {
		return nil
	}
	out := make(map[string]string, len(r))
	for k, v := range r {
		out[k] = v
	}
	return out
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		s.mu.Lock()
		s.stats.HTTPRequests++
		s.mu.Unlock()
	}
	switch {
	case r.URL.Path == "/oauth_token.do":
		s.serveOAuth(w, r)
	case strings.HasPrefix(r.URL.Path, "/sim/"):
		s.serveControl(w, r)
	case r.URL.Path == "/api/now/v1/batch":
		s.serveBatch(w, r)
	case strings.HasPrefix(r.URL.Path, "/api/now/"):
		s.serveTable(w, r)
	default:
		writeError(w, http.StatusBadRequest, "Requested URI does not represent any resource", r.URL.Path)
	}
}

// writeError writes ServiceNow's error envelope.
func writeError(w http.ResponseWriter, status int, message, detail string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `BASIC realm="Service-now"`)
	}
	w.WriteHeader(status)
	var d any = detail
	if detail == "" {
		d = nil
	}
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": message, "detail": d}, "status": "failure"})
}

func writeResult(w http.ResponseWriter, status int, result any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"result": result})
}

// user authenticates a request: basic auth or a bearer token. "" = none.
func (s *Server) user(r *http.Request) string {
	if u, p, ok := r.BasicAuth(); ok {
		s.mu.RLock()
		defer s.mu.RUnlock()
		want, known := s.password[u]
		if known && want == p && s.active(u) {
			return u
		}
		return ""
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		s.mu.RLock()
		defer s.mu.RUnlock()
		t, ok := s.tokens[tok]
		if ok && s.now().Before(t.expires) && s.active(t.user) {
			return t.user
		}
	}
	return ""
}

func (s *Server) active(user string) bool {
	r, ok := s.tab("sys_user").rows[s.userIDs[user]]
	return ok && r["user_name"] == user && r["active"] != "false" && r["locked_out"] != "true"
}

// rateLimited counts a request against the user's hourly window; it returns
// the window's reset time when the user is over the limit.
func (s *Server) rateLimited(user string, limit int) (time.Time, bool) {
	if limit <= 0 {
		return time.Time{}, false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	win := s.windows[user]
	if win == nil || now.Sub(win.start) >= time.Hour {
		win = &window{start: now.Truncate(time.Hour)}
		s.windows[user] = win
	}
	win.count++
	reset := win.start.Add(time.Hour)
	return reset, win.count > limit
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

func (s *Server) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < p
}

// takeFailNext consumes one scripted failure matching the request.
func (s *Server) takeFailNext(tableName, method string) *FailNext {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn := s.faults.FailNext
	if fn == nil || fn.Count <= 0 || (fn.Table != "" && fn.Table != tableName) || (fn.Method != "" && !strings.EqualFold(fn.Method, method)) {
		return nil
	}
	fn.Count--
	cp := *fn
	if fn.Count == 0 {
		s.faults.FailNext = nil
	}
	return &cp
}

// dropConnection closes the connection without a reply.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func readBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, 10<<20))
}
