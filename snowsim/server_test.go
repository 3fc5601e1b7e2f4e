package snowsim_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/snowsim"
)

// sim is a simulator over real HTTP.
type sim struct {
	t   *testing.T
	s   *snowsim.Server
	url string
}

func start(t *testing.T, opts snowsim.Options) *sim {
	t.Helper()
	s := snowsim.New(opts)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return &sim{t: t, s: s, url: ts.URL}
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// do sends a request; auth is "user:pass" for basic, "Bearer x" for a token,
// "" for none.
func (s *sim) do(method, path, auth string, body any) resp {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = strings.NewReader(string(j))
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if u, p, ok := strings.Cut(auth, ":"); ok && !strings.HasPrefix(auth, "Bearer ") {
		req.SetBasicAuth(u, p)
	} else if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer r.Body.Close()
	raw, _ := io.ReadAll(r.Body)
	out := resp{status: r.StatusCode, header: r.Header, raw: string(raw)}
	json.Unmarshal(raw, &out.body)
	return out
}

const admin, cti = "admin:admin", "cti_integration:cti_integration"

func (r resp) result() map[string]any {
	m, _ := r.body["result"].(map[string]any)
	return m
}

func (r resp) results() []map[string]any {
	list, _ := r.body["result"].([]any)
	var out []map[string]any
	for _, x := range list {
		out = append(out, x.(map[string]any))
	}
	return out
}

func (r resp) errMessage() string {
	e, _ := r.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// expectError checks ServiceNow's error envelope.
func expectError(t *testing.T, r resp, status int, message string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if r.body["status"] != "failure" || !strings.Contains(r.errMessage(), message) {
		t.Fatalf("envelope %s, want status failure and message containing %q", r.raw, message)
	}
}

func TestTableCRUDOnEveryPrefix(t *testing.T) {
	s := start(t, lenient()) // the older wording of refusals
	for _, prefix := range []string{"/api/now/table/", "/api/now/v1/table/", "/api/now/v2/table/"} {
		t.Run(prefix, func(t *testing.T) {
			r := s.do("POST", prefix+"incident", admin, map[string]any{"short_description": "printer", "priority": 2, "active": true})
			if r.status != 201 {
				t.Fatalf("POST: %d %s", r.status, r.raw)
			}
			rec := r.result()
			id, _ := rec["sys_id"].(string)
			if len(id) != 32 || !strings.HasSuffix(r.header.Get("Location"), "/api/now/table/incident/"+id) {
				t.Fatalf("sys_id %q, Location %q", id, r.header.Get("Location"))
			}
			for k, v := range rec {
				if _, ok := v.(string); !ok && k != "caller_id" && k != "assigned_to" {
					t.Errorf("field %s = %#v, want a string", k, v)
				}
			}
			if rec["priority"] != "2" || rec["active"] != "true" || rec["sys_mod_count"] != "0" || rec["sys_created_by"] != "admin" ||
				!strings.HasPrefix(rec["number"].(string), "INC") || rec["sys_created_on"] == "" {
				t.Errorf("created record: %v", rec)
			}
			if g := s.do("GET", prefix+"incident/"+id, admin, nil); g.status != 200 || g.result()["short_description"] != "printer" {
				t.Errorf("GET: %d %s", g.status, g.raw)
			}
			p := s.do("PATCH", prefix+"incident/"+id, cti, map[string]any{"short_description": "no"})
			expectError(t, p, 403, "User Not Authorized") // cti_integration may only read incidents
			p = s.do("PATCH", prefix+"incident/"+id, admin, map[string]any{"short_description": "toner"})
			if p.status != 200 || p.result()["short_description"] != "toner" || p.result()["sys_mod_count"] != "1" {
				t.Errorf("PATCH: %d %s", p.status, p.raw)
			}
			u := s.do("PUT", prefix+"incident/"+id, admin, map[string]any{"priority": "1"})
			if u.status != 200 || u.result()["priority"] != "1" || u.result()["sys_mod_count"] != "2" || u.result()["short_description"] != "toner" {
				t.Errorf("PUT: %d %s", u.status, u.raw)
			}
			if d := s.do("DELETE", prefix+"incident/"+id, admin, nil); d.status != 204 || d.raw != "" {
				t.Errorf("DELETE: %d %q", d.status, d.raw)
			}
			expectError(t, s.do("GET", prefix+"incident/"+id, admin, nil), 404, "No Record found")
			expectError(t, s.do("DELETE", prefix+"incident/"+id, admin, nil), 404, "No Record found")
			expectError(t, s.do("PATCH", prefix+"incident/"+id, admin, map[string]any{"priority": "1"}), 404, "No Record found")
		})
	}
}

func TestBadRequests(t *testing.T) {
	s := start(t, snowsim.Options{})
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		message      string
	}{
		{"GET", "/api/now/table/no_such_table", nil, 400, "Invalid table no_such_table"},
		{"POST", "/api/now/table/no_such_table", map[string]any{}, 400, "Invalid table"},
		{"GET", "/api/now/other/x", nil, 400, "does not represent any resource"},
		{"GET", "/nothing", nil, 400, "does not represent any resource"},
		{"POST", "/api/now/table/incident", "{not json", 400, "Exception while reading request"},
		{"GET", "/api/now/table/incident?sysparm_display_value=maybe", nil, 400, "Invalid parameter"},
		{"GET", "/api/now/table/incident?sysparm_limit=-1", nil, 400, "Invalid parameter"},
		{"POST", "/api/now/table/incident/0123456789abcdef0123456789abcdef", map[string]any{}, 405, "Method not Supported"},
		{"DELETE", "/api/now/table/incident", nil, 405, "Method not Supported"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			expectError(t, s.do(tc.method, tc.path, admin, tc.body), tc.status, tc.message)
		})
	}
}

// userID finds a sys_user by user_name through the API.
func (s *sim) userID(name string) string {
	s.t.Helper()
	r := s.do("GET", "/api/now/table/sys_user?sysparm_query=user_name="+name+"&sysparm_fields=sys_id", admin, nil)
	if len(r.results()) != 1 {
		s.t.Fatalf("user %s: %s", name, r.raw)
	}
	return r.results()[0]["sys_id"].(string)
}

func TestReferencesAndDisplayValues(t *testing.T) {
	s := start(t, snowsim.Options{})
	jdoe := s.userID("jdoe")
	id := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"type": "phone", "assigned_to": jdoe, "state": "new"}).result()["sys_id"].(string)
	base := "/api/now/table/interaction/" + id
	link := s.url + "/api/now/table/sys_user/" + jdoe
	for _, tc := range []struct {
		query string
		want  any
	}{
		{"", map[string]any{"link": link, "value": jdoe}},
		{"?sysparm_exclude_reference_link=true", jdoe},
		{"?sysparm_display_value=false", map[string]any{"link": link, "value": jdoe}},
		{"?sysparm_display_value=true", map[string]any{"link": link, "display_value": "John Doe"}},
		{"?sysparm_display_value=true&sysparm_exclude_reference_link=true", "John Doe"},
		{"?sysparm_display_value=all", map[string]any{"link": link, "value": jdoe, "display_value": "John Doe"}},
		{"?sysparm_display_value=all&sysparm_exclude_reference_link=true", map[string]any{"value": jdoe, "display_value": "John Doe"}},
	} {
		got := s.do("GET", base+tc.query, cti, nil).result()["assigned_to"]
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: assigned_to = %#v, want %#v", tc.query, got, tc.want)
		}
	}
	// An empty reference is "", and display_value=all gives plain fields both forms.
	r := s.do("GET", base+"?sysparm_display_value=all", cti, nil).result()
	if !reflect.DeepEqual(r["opened_for"], map[string]any{"display_value": "", "value": ""}) ||
		!reflect.DeepEqual(r["type"], map[string]any{"display_value": "phone", "value": "phone"}) {
		t.Errorf("display all: opened_for %#v, type %#v", r["opened_for"], r["type"])
	}
	if got := s.do("GET", base, cti, nil).result()["opened_for"]; got != "" {
		t.Errorf("empty reference = %#v, want \"\"", got)
	}
}

func TestFieldsAndDotWalk(t *testing.T) {
	s := start(t, snowsim.Options{})
	jdoe := s.userID("jdoe")
	s.do("POST", "/api/now/table/interaction", admin, map[string]any{"type": "phone", "opened_for": jdoe})
	r := s.do("GET", "/api/now/table/interaction?sysparm_fields=number,opened_for.name,opened_for.email,no_such_field", admin, nil)
	got := r.results()
	want := []map[string]any{{"number": "IMS0000001", "opened_for.name": "John Doe", "opened_for.email": "jdoe@example.com"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestPagination(t *testing.T) {
	s := start(t, snowsim.Options{})
	for i := range 5 {
		s.do("POST", "/api/now/table/interaction", admin, map[string]any{"short_description": fmt.Sprint("p", i)})
	}
	r := s.do("GET", "/api/now/table/interaction?sysparm_limit=2&sysparm_offset=2&sysparm_query=ORDERBYnumber", admin, nil)
	if n := len(r.results()); n != 2 || r.results()[0]["number"] != "IMS0000003" {
		t.Fatalf("page: %s", r.raw)
	}
	if r.header.Get("X-Total-Count") != "5" {
		t.Errorf("X-Total-Count = %q, want 5", r.header.Get("X-Total-Count"))
	}
	links := map[string]string{}
	for _, part := range strings.Split(r.header.Get("Link"), ",") {
		target, rel, _ := strings.Cut(part, ";")
		u, err := url.Parse(strings.Trim(target, "<>"))
		if err != nil {
			t.Fatal(err)
		}
		links[strings.Trim(strings.TrimPrefix(rel, "rel="), `"`)] = u.Query().Get("sysparm_offset")
	}
	if want := map[string]string{"first": "0", "prev": "0", "next": "4", "last": "4"}; !reflect.DeepEqual(links, want) {
		t.Errorf("Link offsets %v, want %v (header %q)", links, want, r.header.Get("Link"))
	}
	r = s.do("GET", "/api/now/table/interaction?sysparm_limit=2&sysparm_no_count=true&sysparm_suppress_pagination_header=true", admin, nil)
	if r.header.Get("X-Total-Count") != "" || r.header.Get("Link") != "" || len(r.results()) != 2 {
		t.Errorf("no_count/suppress: headers %v, %d results", r.header, len(r.results()))
	}
}

func TestEncodedQueries(t *testing.T) {
	s := start(t, snowsim.Options{Data: &snowsim.Dataset{Tables: map[string][]map[string]string{
		"incident": {
			{"short_description": "alpha printer", "priority": "1", "state": "1"},
			{"short_description": "beta printer", "priority": "2", "state": "2"},
			{"short_description": "gamma^caret", "priority": "3", "state": ""},
			{"short_description": "delta mail", "priority": "4", "state": "7"},
		}}}})
	for _, tc := range []struct {
		q    string
		want []string // short descriptions in answer order
	}{
		{"priority=1", []string{"alpha printer"}},
		{"priority!=1^ORDERBYpriority", []string{"beta printer", "gamma^caret", "delta mail"}},
		{"short_descriptionLIKEprinter^priority=2", []string{"beta printer"}},
		{"short_descriptionNOT LIKEprinter^ORDERBYpriority", []string{"gamma^caret", "delta mail"}},
		{"short_descriptionSTARTSWITHal", []string{"alpha printer"}},
		{"short_descriptionENDSWITHmail", []string{"delta mail"}},
		{"priorityIN1,4^ORDERBYDESCpriority", []string{"delta mail", "alpha printer"}},
		{"priorityNOT IN1,4^ORDERBYpriority", []string{"beta printer", "gamma^caret"}},
		{"stateISEMPTY", []string{"gamma^caret"}},
		{"stateISNOTEMPTY^priority>2", []string{"delta mail"}},
		{"priority<2", []string{"alpha printer"}},
		{"priority<=2^ORDERBYpriority", []string{"alpha printer", "beta printer"}},
		{"priority>=4", []string{"delta mail"}},
		{"priority=1^ORpriority=3^ORDERBYpriority", []string{"alpha printer", "gamma^caret"}},
		{"priority=1^NQpriority=4^ORDERBYpriority", []string{"alpha printer", "delta mail"}},
		{"short_description=gamma^^caret", []string{"gamma^caret"}},
		// A condition on a field the table does not have is ignored.
		{"no_such_field=x^priority=2", []string{"beta printer"}},
	} {
		r := s.do("GET", "/api/now/table/incident?sysparm_query="+url.QueryEscape(tc.q)+"&sysparm_fields=short_description", admin, nil)
		var got []string
		for _, rec := range r.results() {
			got = append(got, rec["short_description"].(string))
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.q, got, tc.want)
		}
	}
	strict := start(t, snowsim.Options{InvalidQueryReturnsNoRows: true})
	if r := strict.do("GET", "/api/now/table/incident?sysparm_query=no_such_field=x", admin, nil); r.status != 200 || len(r.results()) != 0 {
		t.Errorf("glide.invalid_query.returns_no_rows: %d results", len(r.results()))
	}
}

func TestSysIDNumbersAndJournal(t *testing.T) {
	s := start(t, snowsim.Options{})
	id := "0123456789abcdef0123456789abcdef"
	r := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"sys_id": id, "type": "phone", "work_notes": "first note"})
	if r.status != 201 || r.result()["sys_id"] != id || r.result()["number"] != "IMS0000001" {
		t.Fatalf("create with sys_id: %d %s", r.status, r.raw)
	}
	if r.result()["work_notes"] != "" {
		t.Errorf("work_notes read back %q, want empty (a journal)", r.result()["work_notes"])
	}
	expectError(t, s.do("POST", "/api/now/table/interaction", cti, map[string]any{"sys_id": id}), 403, "Operation Failed")
	if n := s.do("POST", "/api/now/table/interaction", cti, map[string]any{}).result()["number"]; n != "IMS0000002" {
		t.Errorf("second number %v", n)
	}
	if n := s.do("POST", "/api/now/table/sn_customerservice_case", admin, map[string]any{}).result()["number"]; !strings.HasPrefix(n.(string), "CS") {
		t.Errorf("case number %v", n)
	}
	s.do("PATCH", "/api/now/table/interaction/"+id, cti, map[string]any{"work_notes": "second note"})
	j := s.do("GET", "/sim/journal/interaction/"+id, admin, nil)
	var notes []string
	for _, e := range j.body["result"].([]any) {
		notes = append(notes, e.(map[string]any)["value"].(string))
	}
	if !reflect.DeepEqual(notes, []string{"first note", "second note"}) {
		t.Errorf("journal %v", notes)
	}
	jf := s.do("GET", "/api/now/table/sys_journal_field?sysparm_query=element_id="+id+"^element=work_notes^ORDERBYsys_created_on", admin, nil)
	if len(jf.results()) != 2 || jf.results()[0]["sys_created_by"] != "cti_integration" {
		t.Errorf("sys_journal_field: %s", jf.raw)
	}
}

func TestAuthentication(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	opts := lenient() // OAuth errors and the client_credentials grant as before hardening
	opts.Now, opts.TokenTTL = clock, time.Minute
	s := start(t, opts)

	for _, auth := range []string{"", "cti_integration:wrong", "nobody:x", "Bearer not-a-token"} {
		r := s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", auth, nil)
		expectError(t, r, 401, "User Not Authenticated")
		if r.header.Get("WWW-Authenticate") != `BASIC realm="Service-now"` {
			t.Errorf("%q: WWW-Authenticate %q", auth, r.header.Get("WWW-Authenticate"))
		}
	}
	token := func(form url.Values) (int, map[string]any) {
		r, err := http.PostForm(s.url+"/oauth_token.do", form)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var out map[string]any
		json.NewDecoder(r.Body).Decode(&out)
		return r.StatusCode, out
	}
	client := url.Values{"client_id": {"ctibridge"}, "client_secret": {"ctibridge-secret"}}
	with := func(kv ...string) url.Values {
		v := url.Values{}
		for k, vs := range client {
			v[k] = vs
		}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	code, tok := token(with("grant_type", "password", "username", "cti_integration", "password", "cti_integration"))
	if code != 200 || tok["access_token"] == "" || tok["refresh_token"] == "" || tok["expires_in"] != float64(60) || tok["token_type"] != "Bearer" {
		t.Fatalf("password grant: %d %v", code, tok)
	}
	bearer := "Bearer " + tok["access_token"].(string)
	if r := s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", bearer, nil); r.status != 200 {
		t.Fatalf("bearer: %d %s", r.status, r.raw)
	}
	advance(61 * time.Second)
	expectError(t, s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", bearer, nil), 401, "User Not Authenticated")
	code, ref := token(with("grant_type", "refresh_token", "refresh_token", tok["refresh_token"].(string)))
	if code != 200 || ref["access_token"] == tok["access_token"] {
		t.Fatalf("refresh: %d %v", code, ref)
	}
	if r := s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", "Bearer "+ref["access_token"].(string), nil); r.status != 200 {
		t.Errorf("refreshed token: %d", r.status)
	}
	code, cc := token(with("grant_type", "client_credentials"))
	if code != 200 || cc["refresh_token"] != nil {
		t.Fatalf("client credentials: %d %v", code, cc)
	}
	// Client credentials run as cti_integration: it may not delete.
	expectError(t, s.do("DELETE", "/api/now/table/interaction/0123456789abcdef0123456789abcdef", "Bearer "+cc["access_token"].(string), nil), 403, "User Not Authorized")

	for name, form := range map[string]url.Values{
		"bad secret":    {"client_id": {"ctibridge"}, "client_secret": {"x"}, "grant_type": {"client_credentials"}},
		"bad password":  with("grant_type", "password", "username", "cti_integration", "password", "x"),
		"bad refresh":   with("grant_type", "refresh_token", "refresh_token", "nope"),
		"unknown grant": with("grant_type", "implicit"),
	} {
		if code, out := token(form); code < 400 || out["error"] == nil {
			t.Errorf("%s: %d %v, want an OAuth error", name, code, out)
		}
	}
	s.s.RevokeRefreshTokens()
	if code, _ := token(with("grant_type", "refresh_token", "refresh_token", tok["refresh_token"].(string))); code != 401 {
		t.Errorf("revoked refresh token: %d, want 401", code)
	}
}

func TestACLs(t *testing.T) {
	s := start(t, lenient()) // the older wording of refusals
	anyID := "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		method, path string
		body         any
		allowed      bool
	}{
		{"GET", "/api/now/table/sys_user?sysparm_limit=1", nil, true},
		{"GET", "/api/now/table/incident?sysparm_limit=1", nil, true},
		{"GET", "/api/now/table/sn_customerservice_case?sysparm_limit=1", nil, true},
		{"GET", "/api/now/table/customer_contact?sysparm_limit=1", nil, true},
		{"GET", "/api/now/table/csm_consumer?sysparm_limit=1", nil, true},
		{"GET", "/api/now/table/interaction?sysparm_limit=1", nil, true},
		{"POST", "/api/now/table/interaction", map[string]any{"type": "phone"}, true},
		{"POST", "/api/now/table/interaction_related_record", map[string]any{"document_table": "incident"}, true},
		{"POST", "/api/now/table/incident", map[string]any{}, false},
		{"POST", "/api/now/table/sys_user", map[string]any{"user_name": "evil"}, false},
		{"PATCH", "/api/now/table/sys_user/" + anyID, map[string]any{"name": "x"}, false},
		{"DELETE", "/api/now/table/interaction/" + anyID, nil, false},
		{"GET", "/api/now/table/interaction_related_record", nil, false},
		{"GET", "/api/now/table/sys_user_has_role", nil, false},
	} {
		r := s.do(tc.method, tc.path, cti, tc.body)
		if tc.allowed && r.status >= 300 {
			t.Errorf("%s %s: %d %s, want allowed", tc.method, tc.path, r.status, r.raw)
		}
		if !tc.allowed && (r.status != 403 || r.errMessage() != "User Not Authorized") {
			t.Errorf("%s %s: %d %s, want 403 User Not Authorized", tc.method, tc.path, r.status, r.raw)
		}
	}
}

func TestNewUserGetsRightsFromRoles(t *testing.T) {
	s := start(t, snowsim.Options{})
	r := s.do("POST", "/api/now/table/sys_user", admin, map[string]any{"user_name": "newbie", "user_password": "Pa55word!", "name": "New Bie"})
	if r.status != 201 || r.result()["user_password"] != nil {
		t.Fatalf("create user: %d %s", r.status, r.raw)
	}
	expectError(t, s.do("GET", "/api/now/table/incident?sysparm_limit=1", "newbie:Pa55word!", nil), 403, "User Not Authorized")
	role := s.do("GET", "/api/now/table/sys_user_role?sysparm_query=name=itil", admin, nil).results()[0]["sys_id"].(string)
	if r := s.do("POST", "/api/now/table/sys_user_has_role", admin, map[string]any{"user": r.result()["sys_id"], "role": role}); r.status != 201 {
		t.Fatalf("grant role: %d %s", r.status, r.raw)
	}
	if r := s.do("GET", "/api/now/table/incident?sysparm_limit=1", "newbie:Pa55word!", nil); r.status != 200 {
		t.Errorf("after itil: %d %s", r.status, r.raw)
	}
	expectError(t, s.do("GET", "/api/now/table/csm_consumer?sysparm_limit=1", "newbie:Pa55word!", nil), 403, "User Not Authorized")
}

func TestRateLimit(t *testing.T) {
	s := start(t, snowsim.Options{Faults: snowsim.Faults{RateLimitPerHour: 3}})
	for range 3 {
		if r := s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", cti, nil); r.status != 200 {
			t.Fatalf("under the limit: %d", r.status)
		}
	}
	r := s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", cti, nil)
	expectError(t, r, 429, "Rate limit exceeded")
	if r.header.Get("Retry-After") == "" || r.header.Get("X-RateLimit-Limit") != "3" || r.header.Get("X-RateLimit-Reset") == "" {
		t.Errorf("429 headers: %v", r.header)
	}
	// The limit is per user.
	if r := s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", admin, nil); r.status != 200 {
		t.Errorf("another user: %d", r.status)
	}
}

func TestControlEndpoint(t *testing.T) {
	s := start(t, snowsim.Options{})
	for _, auth := range []string{"", cti, "admin:wrong"} {
		expectError(t, s.do("GET", "/sim/faults", auth, nil), 401, "User Not Authenticated")
	}
	for _, bad := range []string{`{"errorRate":2}`, `{"latency":"soon"}`, `{"nope":1}`, `not json`} {
		expectError(t, s.do("PUT", "/sim/faults", admin, bad), 400, "Invalid faults")
	}
	put := func(body string) {
		t.Helper()
		if r := s.do("PUT", "/sim/faults", admin, body); r.status != 204 {
			t.Fatalf("PUT %s: %d %s", body, r.status, r.raw)
		}
	}
	put(`{"down":true}`)
	expectError(t, s.do("GET", "/api/now/table/sys_user", cti, nil), 503, "Service Unavailable")
	put(`{"down":false,"errorRate":1}`)
	if r := s.do("GET", "/api/now/table/sys_user", cti, nil); r.status != 500 && r.status != 503 {
		t.Errorf("errorRate 1: %d", r.status)
	}
	put(`{"errorRate":0,"latency":"30ms"}`)
	if f := s.do("GET", "/sim/faults", admin, nil); f.body["latency"] != "30ms" || f.body["errorRate"] != float64(0) || f.body["down"] != false {
		t.Errorf("GET faults: %s", f.raw)
	}
	start := time.Now()
	s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", cti, nil)
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("latency 30ms: answered in %v", d)
	}
	put(`{"latency":"0s","failNext":{"count":1,"status":429,"retryAfter":2}}`)
	r := s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", cti, nil)
	if r.status != 429 || r.header.Get("Retry-After") != "2" {
		t.Errorf("failNext: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	if r := s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", cti, nil); r.status != 200 {
		t.Errorf("after failNext: %d", r.status)
	}

	// dropReplyRate: the write is committed, the client gets no answer.
	before := len(s.s.Records("interaction"))
	put(`{"dropReplyRate":1}`)
	req, _ := http.NewRequest("POST", s.url+"/api/now/table/interaction", strings.NewReader(`{"type":"phone"}`))
	req.SetBasicAuth("cti_integration", "cti_integration")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("dropped reply: got status %d, want a broken connection", resp.StatusCode)
	}
	if after := len(s.s.Records("interaction")); after != before+1 {
		t.Errorf("dropped reply: %d interactions, want %d (committed)", after, before+1)
	}
	put(`{"dropReplyRate":0}`)

	st := s.do("GET", "/sim/stats", admin, nil)
	byTable := st.body["byTable"].(map[string]any)
	if byTable["interaction"].(map[string]any)["POST"] != float64(1) || st.body["total"].(float64) < 6 {
		t.Errorf("stats: %s", st.raw)
	}
}

func TestDatasets(t *testing.T) {
	d := snowsim.DefaultDataset()
	s := start(t, snowsim.Options{Data: d})
	r := s.do("GET", "/api/now/table/sys_user?sysparm_query=phone="+url.QueryEscape("(801) 320-3420"), admin, nil)
	if len(r.results()) != 1 || r.results()[0]["name"] != "Alice Caller" {
		t.Errorf("Alice by her stored number: %s", r.raw)
	}
	if n := len(s.s.Records("sys_user")); n < 150 {
		t.Errorf("default dataset has %d users, want a few hundred callers", n)
	}

	dir := t.TempDir()
	files := map[string]string{
		"d.json": `{"users":[{"user_name":"ann","password":"pw","roles":["itil"],"fields":{"name":"Ann","phone":"+1 555 0100"}}],
			"tables":{"incident":[{"short_description":"from json"}]}}`,
		"d.yaml": "users:\n  - user_name: ann\n    password: pw\n    roles: [itil]\n    fields: {name: Ann}\ntables:\n  incident:\n    - short_description: from yaml\n",
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(content), 0o600)
		d, err := snowsim.LoadDataset(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s := start(t, snowsim.Options{Data: d})
		r := s.do("GET", "/api/now/table/incident", "ann:pw", nil)
		if r.status != 200 || len(r.results()) != 1 || !strings.HasPrefix(r.results()[0]["short_description"].(string), "from ") {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	for content, want := range map[string]string{
		`{"users":[{"user_name":"x","roles":["nope"]}]}`: `unknown role "nope"`,
		`{"users":[{"password":"x"}]}`:                   "users[0] has no user_name",
		`{"roles":{"r":{"no_table":"r"}}}`:               `unknown table "no_table"`,
		`{"roles":{"r":{"incident":"rx"}}}`:              "rights are letters from rcwd",
		`{"tables":{"nope":[]}}`:                         `unknown table "nope"`,
		`{"oauthClients":[{"id":"c"}]}`:                  "needs an id and a secret",
	} {
		path := filepath.Join(dir, "bad.json")
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := snowsim.LoadDataset(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", content, err, want)
		}
	}
	bad := filepath.Join(dir, "d.txt")
	os.WriteFile(bad, []byte("x"), 0o600)
	if _, err := snowsim.LoadDataset(bad); err == nil || !strings.Contains(err.Error(), ".json") {
		t.Errorf("bad extension: %v", err)
	}
	broken := filepath.Join(dir, "broken.json")
	os.WriteFile(broken, []byte("{"), 0o600)
	if _, err := snowsim.LoadDataset(broken); err == nil || !strings.Contains(err.Error(), "broken.json") {
		t.Errorf("broken file: %v", err)
	}

	a, b := snowsim.GenerateDataset(2000, 7), snowsim.GenerateDataset(2000, 7)
	if !reflect.DeepEqual(a, b) {
		t.Error("GenerateDataset is not deterministic")
	}
	total := 0
	for _, tab := range []string{"sys_user", "customer_contact", "csm_consumer"} {
		total += len(a.Tables[tab])
	}
	if total < 2000 {
		t.Errorf("GenerateDataset(2000) made %d callers", total)
	}
}

func TestConcurrentCreatesGetDistinctNumbers(t *testing.T) {
	s := start(t, snowsim.Options{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	numbers := map[string]bool{}
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", s.url+"/api/now/table/interaction", strings.NewReader(`{"type":"phone"}`))
			req.SetBasicAuth("cti_integration", "cti_integration")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var out struct{ Result map[string]string }
			json.NewDecoder(resp.Body).Decode(&out)
			mu.Lock()
			numbers[out.Result["number"]] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	keys := make([]string, 0, len(numbers))
	for k := range numbers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) != 50 || keys[0] != "IMS0000001" || keys[49] != "IMS0000050" {
		t.Errorf("%d distinct numbers, %v..", len(keys), keys[:min(3, len(keys))])
	}
}

// Queries answered from an index must see every write: a changed value is
// found under its new spelling and no longer under the old, a deleted record
// is gone, and case does not matter.
func TestIndexedQueriesFollowWrites(t *testing.T) {
	s := start(t, snowsim.Options{})
	find := func(q string) int {
		return len(s.do("GET", "/api/now/table/sys_user?sysparm_query="+url.QueryEscape(q), admin, nil).results())
	}
	if find("phone=555-0001") != 0 {
		t.Fatal("unexpected match before the write")
	}
	id := s.do("POST", "/api/now/table/sys_user", admin, map[string]any{"user_name": "idx", "phone": "555-0001"}).result()["sys_id"].(string)
	if find("phone=555-0001") != 1 || find("user_name=IDX") != 1 {
		t.Fatal("new record not found by index")
	}
	s.do("PATCH", "/api/now/table/sys_user/"+id, admin, map[string]any{"phone": "555-0002"})
	if find("phone=555-0001") != 0 || find("phoneIN555-0002,x") != 1 {
		t.Error("index did not follow the update")
	}
	s.do("DELETE", "/api/now/table/sys_user/"+id, admin, nil)
	if find("phone=555-0002") != 0 {
		t.Error("deleted record still found")
	}
}

// TestRowLevelACL: a role limited to some rows sees a short page, the total
// still counts the hidden rows, and a hidden record answers 404.
func TestRowLevelACL(t *testing.T) {
	d := &snowsim.Dataset{
		Roles: map[string]snowsim.Role{"own": {"incident": "r", "incident:rows": "priority=1"}},
		Users: []snowsim.User{{UserName: "limited", Password: "pw", Roles: []string{"own"}}},
		Tables: map[string][]map[string]string{"incident": {
			{"sys_id": "00000000000000000000000000000001", "priority": "1"},
			{"sys_id": "00000000000000000000000000000002", "priority": "2"},
			{"sys_id": "00000000000000000000000000000003", "priority": "1"},
		}},
	}
	s := start(t, snowsim.Options{Data: d})
	r := s.do("GET", "/api/now/table/incident?sysparm_limit=2", "limited:pw", nil)
	if r.status != 200 || len(r.results()) != 1 || r.header.Get("X-Total-Count") != "3" {
		t.Errorf("page of 2 with one hidden row: %d, %d results, total %q", r.status, len(r.results()), r.header.Get("X-Total-Count"))
	}
	expectError(t, s.do("GET", "/api/now/table/incident/00000000000000000000000000000002", "limited:pw", nil), 404, "No Record found")
	if r := s.do("GET", "/api/now/table/incident/00000000000000000000000000000003", "limited:pw", nil); r.status != 200 {
		t.Errorf("visible record: %d", r.status)
	}
	if r := s.do("GET", "/api/now/table/incident", admin, nil); len(r.results()) != 3 {
		t.Errorf("admin sees %d rows, want 3", len(r.results()))
	}
}

// TestSingleQuotedJSON: the Table API reference's own cURL example sends its
// body with single-quoted strings, and instances take it; so does the
// simulator, quotes and backslashes inside the strings included. Text that is
// JSON in neither quoting is still refused.
func TestSingleQuotedJSON(t *testing.T) {
	s := start(t, snowsim.Options{})
	r := s.do("POST", "/api/now/table/incident", admin,
		`{'short_description':'Unable to connect to office wifi','assignment_group':'287ebd7da9fe198100f92cc8d1d2154e','urgency':'2','impact':'2'}`)
	if r.status != 201 || r.result()["short_description"] != "Unable to connect to office wifi" {
		t.Errorf("documented example: %d %s", r.status, r.raw)
	}
	r = s.do("POST", "/api/now/table/incident", admin, `{'short_description':'the "VPN" isn\'t up', "priority":'2'}`)
	if r.status != 201 || r.result()["short_description"] != `the "VPN" isn't up` || r.result()["priority"] != "2" {
		t.Errorf("quotes inside: %d %s", r.status, r.raw)
	}
	expectError(t, s.do("POST", "/api/now/table/incident", admin, `{short_description:'x'}`), 400, "Exception while reading request")
}

// TestKnownCallers: every record a known caller names is in the default
// dataset and in a generated one, and the caller's first record holds the
// number CXone presents, in one of its spellings.
func TestKnownCallers(t *testing.T) {
	digits := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, s)
	}
	for name, data := range map[string]*snowsim.Dataset{"default": snowsim.DefaultDataset(), "generated": snowsim.GenerateDataset(2000, 7)} {
		s := snowsim.New(snowsim.Options{Data: data})
		for _, k := range snowsim.KnownCallers() {
			for i, ref := range k.Refs {
				rec, ok := s.Record(ref.Table, ref.SysID)
				if !ok {
					t.Errorf("%s: %s: no %s %s", name, k.Name, ref.Table, ref.SysID)
					continue
				}
				if i > 0 {
					continue
				}
				held := false
				for _, f := range []string{"phone", "mobile_phone", "home_phone", "business_phone"} {
					national := digits(k.ANI)[len(digits(k.ANI))-10:]
					held = held || strings.HasSuffix(digits(rec[f]), national)
				}
				if !held || rec["name"] != k.Name {
					t.Errorf("%s: %s: record %v does not hold %s", name, k.Name, rec, k.ANI)
				}
			}
		}
	}
}
