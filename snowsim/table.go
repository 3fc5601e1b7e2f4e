package snowsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/ctibridge/ctibridge/servicenow"

	"github.com/ctibridge/ctibridge/encquery"
)

// serveTable answers /api/now/[v1/|v2/]table/{table}[/{sys_id}].
func (s *Server) serveTable(w http.ResponseWriter, r *http.Request) {
	tableName, sysID, ok := tablePath(r.URL.Path)
	if !ok {
		writeError(w, http.StatusBadRequest, "Requested URI does not represent any resource", r.URL.Path)
		return
	}
	release, ok := s.admit(w, r, func() { s.count(tableName, r.Method) })
	if !ok {
		return
	}
	defer release()
	if s.tableRequest(w, r, tableName, sysID, "") {
		dropConnection(w)
	}
}

// tablePath splits a Table API path into table and sys_id.
func tablePath(path string) (tableName, sysID string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/api/now/")
	if !ok {
		return "", "", false
	}
	rest = strings.TrimPrefix(strings.TrimPrefix(rest, "v1/"), "v2/")
	parts := strings.Split(strings.TrimPrefix(rest, "table/"), "/")
	if !strings.HasPrefix(rest, "table/") || len(parts) > 2 || parts[0] == "" {
		return "", "", false
	}
	if len(parts) == 2 {
		sysID = parts[1]
	}
	return parts[0], sysID, true
}

// tableRequest serves one Table API request with everything an instance
// does around it: latency, faults, authentication, sessions, the rate
// limit. batchUser, when set, is the user a Batch API request authenticated
// as; its sub-requests act as that user. It reports whether the reply must
// be dropped (the write, if any, is done): the caller drops the connection.
func (s *Server) tableRequest(w http.ResponseWriter, r *http.Request, tableName, sysID, batchUser string) (drop bool) {
	f := s.Faults()
	s.sleep(f)
	s.count(tableName, r.Method)
	if f.Down {
		writeError(w, http.StatusServiceUnavailable, "Service Unavailable", "The instance is not available")
		return false
	}
	user := batchUser
	if user == "" {
		user = s.user(r)
		if s.hard.Sessions {
			user = s.useSession(w, r, user)
		}
	}
	if user == "" {
		writeError(w, http.StatusUnauthorized, "User Not Authenticated", "Required to provide Auth information")
		return false
	}
	if !s.withinRateLimit(w, user, f) {
		return false
	}
	if fn := s.takeFailNext(tableName, r.Method); fn != nil {
		if fn.Drop {
			drop = true
		} else {
			if fn.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(fn.RetryAfter))
			}
			writeError(w, fn.Status, http.StatusText(fn.Status), "injected failure")
			return false
		}
	}
	if s.chance(f.ErrorRate) {
		status := http.StatusInternalServerError
		if s.chance(0.5) {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, http.StatusText(status), "injected failure")
		return false
	}
	if s.schema[tableName] == nil {
		writeError(w, http.StatusBadRequest, "Invalid table "+tableName, "")
		return false
	}
	if s.hard.WrapUp {
		s.mu.Lock()
		s.endWrapUps()
		s.mu.Unlock()
	}
	isWrite := r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch || r.Method == http.MethodDelete
	if isWrite && !drop && s.chance(f.DropReplyRate) {
		drop = true
	}
	if drop && isWrite {
		s.handle(discard{h: http.Header{}}, r, user, tableName, sysID)
		return true
	}
	s.handle(w, r, user, tableName, sysID)
	return false
}

// withinRateLimit counts a request against the user's hourly limit and sets
// the rate-limit headers; over the limit, it answers 429 and reports false.
func (s *Server) withinRateLimit(w http.ResponseWriter, user string, f Faults) bool {
	reset, over := s.rateLimited(user, f.RateLimitPerHour)
	if over || (f.RateLimitPerHour > 0 && s.hard.RateLimitHeaders) {
		h := w.Header()
		h.Set("X-RateLimit-Limit", strconv.Itoa(f.RateLimitPerHour))
		h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		if s.hard.RateLimitHeaders {
			h.Set("X-RateLimit-Rule", rateLimitRuleID)
		}
	}
	if !over {
		return true
	}
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(reset.Sub(s.now()).Seconds()+0.999))))
	detail := fmt.Sprintf("User %s exceeded the rate limit of %d requests per hour", user, f.RateLimitPerHour)
	if s.hard.RateLimitHeaders {
		detail = fmt.Sprintf("Rate limit of %d requests per hour for Table API exceeded", f.RateLimitPerHour)
	}
	writeError(w, http.StatusTooManyRequests, "Rate limit exceeded", detail)
	return false
}

// discard is a ResponseWriter for writes whose reply is dropped.
type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}

func (s *Server) count(tableName, method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Total++
	m := s.stats.ByTable[tableName]
	if m == nil {
		m = map[string]int64{}
		s.stats.ByTable[tableName] = m
	}
	m[method]++
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, user, tableName, sysID string) {
	switch {
	case r.Method == http.MethodGet && sysID == "":
		s.list(w, r, user, tableName)
	case r.Method == http.MethodGet:
		s.get(w, r, user, tableName, sysID)
	case r.Method == http.MethodPost && sysID == "":
		s.create(w, r, user, tableName)
	case (r.Method == http.MethodPut || r.Method == http.MethodPatch) && sysID != "":
		s.update(w, r, user, tableName, sysID)
	case r.Method == http.MethodDelete && sysID != "":
		s.remove(w, r, user, tableName, sysID)
	default:
		writeError(w, http.StatusMethodNotAllowed, "Method not Supported", fmt.Sprintf("%s is not supported on this resource", r.Method))
	}
}

func notAuthorized(w http.ResponseWriter, tableName, op string) {
	writeError(w, http.StatusForbidden, "User Not Authorized",
		fmt.Sprintf("ACL Exception %s Failed due to security constraints: no %s access to %s", strings.ToUpper(op[:1])+op[1:], op, tableName))
}

// renderOpts are the sysparm_* parameters that shape a returned record.
type renderOpts struct {
	fields      []string
	display     string // "false", "true", "all"
	excludeLink bool
	base        string
}

func (s *Server) renderOptions(r *http.Request) (renderOpts, error) {
	return s.renderOptionsOf(r, r.URL.Query())
}

// renderOptionsOf is renderOptions with the request's query already parsed.
func (s *Server) renderOptionsOf(r *http.Request, q url.Values) (renderOpts, error) {
	o := renderOpts{display: strings.ToLower(q.Get("sysparm_display_value")), excludeLink: q.Get("sysparm_exclude_reference_link") == "true"}
	switch o.display {
	case "":
		o.display = "false"
	case "true", "false", "all":
	default:
		return o, fmt.Errorf("sysparm_display_value must be true, false or all")
	}
	if v := q.Get("sysparm_fields"); v != "" {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				o.fields = append(o.fields, f)
			}
		}
	}
	o.base = s.opts.BaseURL
	if o.base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		o.base = scheme + "://" + r.Host
	}
	return o, nil
}

// render turns a stored row into the Table API's JSON object. Caller holds mu.
func (s *Server) render(tableName string, row map[string]string, o renderOpts) map[string]any {
	def := s.schema[tableName]
	out := map[string]any{}
	names := o.fields
	if len(names) == 0 {
		for k := range def.fields {
			if k != "user_password" {
				names = append(names, k)
			}
		}
	}
	for _, name := range names {
		if head, tail, ok := strings.Cut(name, "."); ok {
			fd, known := def.fields[head]
			if !known || fd.kind != kRef {
				continue
			}
			target := s.row(fd.ref, row[head])
			if target == nil {
				out[name] = ""
				continue
			}
			out[name] = s.value(fd.ref, target, tail, o)
			continue
		}
		if _, known := def.fields[name]; !known || name == "user_password" {
			continue // unknown fields are left out, as on an instance
		}
		out[name] = s.value(tableName, row, name, o)
	}
	return out
}

// value renders one field in the requested display mode.
func (s *Server) value(tableName string, row map[string]string, name string, o renderOpts) any {
	fd := s.refDef(tableName).fields[name]
	v := row[name]
	if fd.kind == kJournal {
		v = "" // journal fields read back empty through the Table API
	}
	if fd.kind != kRef {
		if o.display == "all" {
			return map[string]string{"display_value": v, "value": v}
		}
		return v
	}
	if v == "" {
		if o.display == "all" {
			return map[string]string{"display_value": "", "value": ""}
		}
		return ""
	}
	link := o.base + "/api/now/table/" + fd.ref + "/" + v
	disp := ""
	if target := s.row(fd.ref, v); target != nil {
		disp = target[s.refDef(fd.ref).display]
	}
	switch {
	case o.display == "all" && o.excludeLink:
		return map[string]string{"display_value": disp, "value": v}
	case o.display == "all":
		return map[string]string{"display_value": disp, "value": v, "link": link}
	case o.display == "true" && o.excludeLink:
		return disp
	case o.display == "true":
		return map[string]string{"display_value": disp, "link": link}
	case o.excludeLink:
		return v
	}
	return map[string]string{"link": link, "value": v}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, user, tableName string) {
	q := r.URL.Query()
	o, err := s.renderOptionsOf(r, q)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Invalid parameter", err.Error())
		return
	}
	limit, offset := 10000, 0
	if v := q.Get("sysparm_limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			writeError(w, http.StatusBadRequest, "Invalid parameter", "sysparm_limit must be a non-negative number")
			return
		}
	}
	if v := q.Get("sysparm_offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			writeError(w, http.StatusBadRequest, "Invalid parameter", "sysparm_offset must be a non-negative number")
			return
		}
	}
	query, _ := encquery.ParseLenient(q.Get("sysparm_query"))
	def := s.schema[tableName]
	known := func(field string) bool {
		head, tail, dotted := strings.Cut(field, ".")
		fd, ok := def.fields[head]
		if !ok || !dotted {
			return ok
		}
		if fd.kind != kRef {
			return false
		}
		_, ok = s.refDef(fd.ref).fields[tail]
		return ok
	}
	invalid := false
	for _, cl := range query.Clauses {
		for _, term := range cl.Terms {
			for _, c := range term.Any {
				invalid = invalid || !known(c.Field)
			}
		}
	}
	if invalid { // conditions on unknown fields are dropped
		query = query.Filter(func(c encquery.Cond) bool { return known(c.Field) })
	}

	t := s.tab(tableName)
	s.mu.RLock()
	if missing := t.missingIndexes(query); len(missing) > 0 {
		s.mu.RUnlock()
		s.mu.Lock()
		for _, f := range missing {
			t.buildIndex(f)
		}
		s.mu.Unlock()
		s.mu.RLock()
	}
	defer s.mu.RUnlock()
	if !s.mayRead(user, tableName) {
		s.refuse(w, tableName, "read")
		return
	}
	var matched []map[string]string
	if !(invalid && s.opts.InvalidQueryReturnsNoRows) {
		ids, ok := t.candidates(query)
		if !ok {
			ids = t.order
		}
		for _, id := range ids {
			row, ok := t.rows[id]
			if !ok || !s.member(tableName, row) {
				continue
			}
			if query.Match(func(field string) string { return s.fieldValue(tableName, row, field) }) {
				matched = append(matched, row)
			}
		}
	}
	if len(query.OrderBy) > 0 {
		sort.SliceStable(matched, func(i, j int) bool {
			for _, ord := range query.OrderBy {
				if !known(ord.Field) {
					continue
				}
				c := encquery.Compare(s.fieldValue(tableName, matched[i], ord.Field), s.fieldValue(tableName, matched[j], ord.Field))
				if c != 0 {
					return (c < 0) != ord.Desc
				}
			}
			return false
		})
	}
	total := len(matched)
	page := matched[min(offset, total):min(offset+limit, total)]
	result := make([]map[string]any, 0, len(page))
	for _, row := range page {
		if s.visible(user, tableName, row) {
			result = append(result, s.render(tableName, row, o))
		}
	}
	if q.Get("sysparm_no_count") != "true" {
		w.Header().Set("X-Total-Count", strconv.Itoa(total))
	}
	if q.Get("sysparm_suppress_pagination_header") != "true" && limit > 0 {
		w.Header().Set("Link", linkHeader(o.base+r.URL.Path, q, limit, offset, total))
	}
	writeResult(w, http.StatusOK, result)
}

// fieldValue reads a field for query evaluation, following one dot-walk.
func (s *Server) fieldValue(tableName string, row map[string]string, field string) string {
	head, tail, dotted := strings.Cut(field, ".")
	if !dotted {
		return row[field]
	}
	fd := s.schema[tableName].fields[head]
	if target := s.row(fd.ref, row[head]); target != nil {
		return target[tail]
	}
	return ""
}

func linkHeader(base string, q url.Values, limit, offset, total int) string {
	// The links are the request's parameters as url.Values.Encode writes
	// them (sorted by name) with sysparm_limit and sysparm_offset set: the
	// other parameters are encoded once, around the two that change.
	before, between, after := encodeExcept(q, func(k string) bool { return k < "sysparm_limit" }),
		encodeExcept(q, func(k string) bool { return k > "sysparm_limit" && k < "sysparm_offset" }),
		encodeExcept(q, func(k string) bool { return k > "sysparm_offset" })
	lim := strconv.Itoa(limit)
	var b strings.Builder
	link := func(off int, rel string) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString("<" + base + "?")
		sep := false
		for _, part := range [...]string{before, "sysparm_limit=" + lim, between, "sysparm_offset=" + strconv.Itoa(off), after} {
			if part == "" {
				continue
			}
			if sep {
				b.WriteByte('&')
			}
			b.WriteString(part)
			sep = true
		}
		b.WriteString(">;rel=" + strconv.Quote(rel))
	}
	last := 0
	if total > 0 {
		last = (total - 1) / limit * limit
	}
	link(0, "first")
	if offset > 0 {
		link(max(0, offset-limit), "prev")
	}
	if offset+limit < total {
		link(offset+limit, "next")
	}
	link(last, "last")
	return b.String()
}

// encodeExcept encodes the parameters whose names keep accepts as
// url.Values.Encode does.
func encodeExcept(q url.Values, keep func(string) bool) string {
	var keys []string
	for k := range q {
		if keep(k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	sub := make(url.Values, len(keys))
	for _, k := range keys {
		sub[k] = q[k]
	}
	return sub.Encode()
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, user, tableName, sysID string) {
	o, err := s.renderOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Invalid parameter", err.Error())
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.mayRead(user, tableName) {
		s.refuse(w, tableName, "read")
		return
	}
	row := s.row(tableName, sysID)
	if row == nil || !s.visible(user, tableName, row) {
		writeError(w, http.StatusNotFound, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
		return
	}
	writeResult(w, http.StatusOK, s.render(tableName, row, o))
}

// decodeValues reads a JSON object body; values become strings (ServiceNow
// accepts numbers and booleans and stores their text).
func decodeValues(r *http.Request) (map[string]string, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		// Instances also take strings in single quotes, as the Table API's
		// own cURL examples send them: {'short_description':'...'}.
		if alt, ok := doubleQuoted(b); !ok || json.Unmarshal(alt, &raw) != nil {
			return nil, fmt.Errorf("Exception while reading request: %v", err)
		}
	}
	out := map[string]string{}
	for k, v := range raw {
		switch x := v.(type) {
		case nil:
			out[k] = ""
		case string:
			out[k] = x
		case bool:
			out[k] = strconv.FormatBool(x)
		case float64:
			out[k] = strconv.FormatFloat(x, 'f', -1, 64)
		case map[string]any: // {"value": "..."} as some clients send references
			if s, ok := x["value"].(string); ok {
				out[k] = s
			}
		default:
			b, _ := json.Marshal(x)
			out[k] = string(b)
		}
	}
	return out, nil
}

// doubleQuoted rewrites a JSON text whose strings are in single quotes as
// standard JSON; it reports false when there is no single-quoted string.
func doubleQuoted(b []byte) ([]byte, bool) {
	out := make([]byte, 0, len(b)+8)
	var quote byte // the quote of the string being read, 0 outside strings
	changed := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case quote == 0 && (c == '"' || c == '\''):
			quote, changed = c, changed || c == '\''
			out = append(out, '"')
		case quote != 0 && c == '\\' && i+1 < len(b):
			i++
			if b[i] == '\'' && quote == '\'' {
				out = append(out, '\'') // \' needs no escape in JSON
			} else {
				out = append(out, c, b[i])
			}
		case quote != 0 && c == quote:
			quote = 0
			out = append(out, '"')
		case quote == '\'' && c == '"':
			out = append(out, '\\', '"')
		default:
			out = append(out, c)
		}
	}
	return out, changed
}

// writeRequest reads what a POST, PUT or PATCH needs: the render options
// and the body's values. It answers the error itself and reports false.
func (s *Server) writeRequest(w http.ResponseWriter, r *http.Request) (renderOpts, map[string]string, bool) {
	o, err := s.renderOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Invalid parameter", err.Error())
		return o, nil, false
	}
	vals, err := decodeValues(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Exception while reading request", err.Error())
		return o, nil, false
	}
	return o, vals, true
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, user, tableName string) {
	o, vals, ok := s.writeRequest(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.allowed(user, tableName, 'c') {
		s.refuse(w, tableName, "create")
		return
	}
	if s.opts.IgnoreClientSysID {
		delete(vals, "sys_id")
	}
	if id := vals["sys_id"]; id != "" {
		if !servicenow.IsSysID(id) {
			delete(vals, "sys_id") // an instance generates its own for a malformed one
		} else if existing := s.tab(tableName).rows[id]; existing != nil {
			detail := fmt.Sprintf("Error during insert of %s (Unique Key violation detected by database (Duplicate entry '%s' for key 'PRIMARY'))", tableName, id)
			if s.hard.GenericDuplicate {
				// glide.db.loguser=false: the database's text stays in the log.
				detail = fmt.Sprintf("Error during insert of %s (%s)", tableName, existing[s.schema[tableName].display])
			}
			writeError(w, http.StatusForbidden, "Operation Failed", detail)
			return
		}
	}
	for _, k := range []string{"sys_created_on", "sys_created_by", "sys_updated_on", "sys_updated_by", "sys_mod_count", "number"} {
		delete(vals, k) // system-maintained
	}
	if tableName == "sys_user_has_role" {
		if _, ok := s.tables["sys_user_role"].rows[vals["role"]]; !ok {
			writeError(w, http.StatusBadRequest, "Invalid role", "role must be the sys_id of a sys_user_role")
			return
		}
	}
	if err := s.adjustWrite(user, tableName, nil, vals); err != nil {
		err.write(w)
		return
	}
	row := s.insertRow(tableName, vals, user)
	if tableName == "interaction" {
		s.noteWrapUp(row)
	}
	w.Header().Set("Location", o.base+"/api/now/table/"+tableName+"/"+row["sys_id"])
	writeResult(w, http.StatusCreated, s.render(tableName, row, o))
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, user, tableName, sysID string) {
	o, vals, ok := s.writeRequest(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.allowed(user, tableName, 'w') {
		s.refuse(w, tableName, "write")
		return
	}
	t := s.tab(tableName)
	row := s.row(tableName, sysID)
	if row == nil {
		writeError(w, http.StatusNotFound, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
		return
	}
	def := s.schema[tableName]
	changes := map[string]string{}
	for k, v := range vals {
		fd, known := def.fields[k]
		_, system := sysFields[k]
		if !known || fd.kind == kJournal || system || k == "number" || k == "sys_class_name" {
			continue
		}
		changes[k] = v
	}
	if err := s.adjustWrite(user, tableName, row, changes); err != nil {
		err.write(w)
		return
	}
	for k, v := range changes {
		if k == "user_password" {
			s.password[row["user_name"]] = v
			continue
		}
		t.set(row, k, v)
	}
	now := s.now().UTC().Format(timeFormat)
	if tableName == "interaction" {
		closeInteraction(row, now, t.set)
		s.noteWrapUp(row)
	}
	if (tableName == "sys_user" || def.storage == "sys_user") && row["user_name"] != "" {
		s.userIDs[row["user_name"]] = sysID
	}
	n, _ := strconv.Atoi(row["sys_mod_count"])
	t.set(row, "sys_mod_count", strconv.Itoa(n+1))
	t.set(row, "sys_updated_on", now)
	t.set(row, "sys_updated_by", user)
	s.journal(tableName, sysID, vals, user)
	writeResult(w, http.StatusOK, s.render(tableName, row, o))
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request, user, tableName, sysID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.allowed(user, tableName, 'd') {
		s.refuse(w, tableName, "delete")
		return
	}
	if s.row(tableName, sysID) == nil {
		writeError(w, http.StatusNotFound, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
		return
	}
	s.tab(tableName).remove(sysID)
	w.WriteHeader(http.StatusNoContent)
}
