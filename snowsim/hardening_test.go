package snowsim_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/snowsim"
)

// with returns Options whose hardening is exactly the switches set by fn.
func with(fn func(h *snowsim.Hardening)) snowsim.Options {
	var h snowsim.Hardening
	fn(&h)
	return snowsim.Options{Hardening: &h}
}

// lenient is Options with every switch off, whatever the default.
func lenient() snowsim.Options { return snowsim.Options{Hardening: &snowsim.Hardening{}} }

func (r resp) errDetail() string {
	e, _ := r.body["error"].(map[string]any)
	d, _ := e["detail"].(string)
	return d
}

func TestHardenedTurnsEverySwitchOn(t *testing.T) {
	h := *snowsim.Hardened().Hardening
	v := reflect.ValueOf(h)
	for i := range v.NumField() {
		if !v.Field(i).Bool() {
			t.Errorf("Hardened() leaves %s off", v.Type().Field(i).Name)
		}
	}
	if snowsim.AllHardened() != h {
		t.Error("Hardened() and AllHardened() differ")
	}
}

func TestDuplicateCreate(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name   string
		opts   snowsim.Options
		detail string
	}{
		{"hardened", with(func(h *snowsim.Hardening) { h.GenericDuplicate = true }), "Error during insert of interaction (IMS0000001)"},
		{"lenient", lenient(), "Error during insert of interaction (Unique Key violation detected by database (Duplicate entry '" + id + "' for key 'PRIMARY'))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.opts)
			if r := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"sys_id": id, "type": "phone"}); r.status != 201 {
				t.Fatalf("first create: %d %s", r.status, r.raw)
			}
			r := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"sys_id": id, "type": "phone"})
			want := map[string]any{"error": map[string]any{"message": "Operation Failed", "detail": tc.detail}, "status": "failure"}
			if r.status != 403 || !reflect.DeepEqual(r.body, want) {
				t.Errorf("duplicate: %d %s, want 403 %v", r.status, r.raw, want)
			}
			if n := len(s.s.Records("interaction")); n != 1 {
				t.Errorf("%d interactions after a refused duplicate", n)
			}
		})
	}
}

func TestTableHierarchy(t *testing.T) {
	carla := func(s *sim, table string) resp {
		return s.do("GET", "/api/now/table/"+table+"?sysparm_query=name=Carla%20Contact", admin, nil)
	}
	t.Run("hardened", func(t *testing.T) {
		s := start(t, with(func(h *snowsim.Hardening) { h.TableHierarchy = true }))
		users := carla(s, "sys_user").results()
		if len(users) != 1 || users[0]["sys_class_name"] != "customer_contact" || users[0]["account"] != nil {
			t.Fatalf("sys_user query for a contact: %v, want her with sys_class_name customer_contact and no account", users)
		}
		contacts := carla(s, "customer_contact").results()
		if len(contacts) != 1 || contacts[0]["sys_id"] != users[0]["sys_id"] || contacts[0]["account"] == "" {
			t.Fatalf("customer_contact query: %v", contacts)
		}
		all := s.do("GET", "/api/now/table/customer_contact?sysparm_fields=sys_class_name", admin, nil).results()
		for _, c := range all {
			if c["sys_class_name"] != "customer_contact" {
				t.Fatalf("customer_contact query returned a %v", c["sys_class_name"])
			}
		}
		if len(all) < 50 {
			t.Errorf("%d contacts, want the dataset's generated ones too", len(all))
		}
		alice := s.do("GET", "/api/now/table/sys_user?sysparm_query=user_name=alice.caller", admin, nil).results()
		if len(alice) != 1 || alice[0]["sys_class_name"] != "sys_user" {
			t.Fatalf("plain user: %v", alice)
		}
		expectError(t, s.do("GET", "/api/now/table/customer_contact/"+alice[0]["sys_id"].(string), admin, nil), 404, "No Record found")
		if r := s.do("GET", "/api/now/table/sys_user/"+contacts[0]["sys_id"].(string), admin, nil); r.status != 200 {
			t.Errorf("a contact read as a sys_user: %d", r.status)
		}
		paula := s.do("GET", "/api/now/table/csm_consumer_user?sysparm_query=user_name=paula.portal", admin, nil).results()
		if len(paula) != 1 || paula[0]["sys_class_name"] != "csm_consumer_user" {
			t.Errorf("csm_consumer_user: %v", paula)
		}
		if n := len(s.do("GET", "/api/now/table/sys_user?sysparm_query=name=Connor%20Consumer", admin, nil).results()); n != 0 {
			t.Errorf("a csm_consumer came back from sys_user (%d rows); csm_consumer is its own table", n)
		}
		// References made before the hierarchy still resolve.
		cs := s.do("GET", "/api/now/table/sn_customerservice_case?sysparm_query=contact.name=Carla%20Contact&sysparm_fields=number,contact.name", admin, nil).results()
		if len(cs) != 2 || cs[0]["contact.name"] != "Carla Contact" {
			t.Errorf("cases of Carla by dot-walk: %v", cs)
		}
		// A contact created through the API is a sys_user too.
		r := s.do("POST", "/api/now/table/customer_contact", admin, map[string]any{"name": "New Contact", "phone": "555-0101"})
		if r.status != 201 || r.result()["sys_class_name"] != "customer_contact" {
			t.Fatalf("create contact: %d %s", r.status, r.raw)
		}
		if len(s.do("GET", "/api/now/table/sys_user?sysparm_query=phone=555-0101", admin, nil).results()) != 1 {
			t.Error("a new contact is not found in sys_user")
		}
	})
	t.Run("lenient", func(t *testing.T) {
		s := start(t, lenient())
		if n := len(carla(s, "sys_user").results()); n != 0 {
			t.Errorf("sys_user query returned %d contacts", n)
		}
		contacts := carla(s, "customer_contact").results()
		if len(contacts) != 1 || contacts[0]["sys_class_name"] != nil {
			t.Errorf("customer_contact: %v", contacts)
		}
		expectError(t, s.do("GET", "/api/now/table/csm_consumer_user", admin, nil), 400, "Invalid table")
		if n := len(s.do("GET", "/api/now/table/sys_user?sysparm_query=user_name=paula.portal", admin, nil).results()); n != 1 {
			t.Errorf("the consumer user is not a plain sys_user (%d rows)", n)
		}
	})
}

func TestChoiceLists(t *testing.T) {
	d := snowsim.DefaultDataset()
	d.Choices = map[string]snowsim.Choice{"incident.priority": {Values: []string{"1", "2", "3", "4", "5"}, Default: "4"}}
	hard := with(func(h *snowsim.Hardening) { h.ChoiceLists = true })
	hard.Data = d
	s := start(t, hard)
	r := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"state": "closed", "direction": "sideways"})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	got := r.result()
	if got["state"] != "new" || got["direction"] != "inbound" || got["type"] != "chat" || got["active"] != "true" || got["closed_at"] != "" {
		t.Errorf("unknown values: state %v direction %v type %v active %v closed_at %v; want the defaults new, inbound, chat and an open record",
			got["state"], got["direction"], got["type"], got["active"], got["closed_at"])
	}
	id := got["sys_id"].(string)
	for _, tc := range []struct{ sent, stored string }{{"work_in_progress", "work_in_progress"}, {"wip", "new"}, {"wrap_up", "new"}, {"", ""}, {"closed_complete", "closed_complete"}} {
		p := s.do("PATCH", "/api/now/table/interaction/"+id, cti, map[string]any{"state": tc.sent})
		if p.status != 200 || p.result()["state"] != tc.stored {
			t.Errorf("state %q: %d, stored %v, want %q", tc.sent, p.status, p.result()["state"], tc.stored)
		}
	}
	if r := s.do("POST", "/api/now/table/incident", admin, map[string]any{"priority": "9"}); r.status != 201 || r.result()["priority"] != "4" {
		t.Errorf("dataset choice list: priority 9 stored as %v", r.result()["priority"])
	}

	l := start(t, lenient())
	r = l.do("POST", "/api/now/table/interaction", cti, map[string]any{"state": "closed", "direction": "sideways"})
	if got := r.result(); got["state"] != "closed" || got["direction"] != "sideways" || got["type"] != "" || got["active"] != "false" {
		t.Errorf("lenient: %v, want values stored as sent and a closed* state closing the record", got)
	}
}

func TestFieldACLsAndValueRules(t *testing.T) {
	data := func() *snowsim.Dataset {
		d := snowsim.DefaultDataset()
		d.Rules = []snowsim.Rule{{Name: "outbound description", Table: "interaction", When: "direction=outbound",
			Set: map[string]string{"short_description": "Outbound call"}}}
		return d
	}
	jdoe := "jdoe:jdoe" // an agent: the default dataset's field ACL keeps agents off assigned_to
	run := func(opts snowsim.Options) (assigned any, desc any) {
		opts.Data = data()
		s := start(t, opts)
		asmith := s.userID("asmith")
		id := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"type": "phone", "direction": "outbound", "short_description": "Call"}).result()["sys_id"].(string)
		desc = s.do("GET", "/api/now/table/interaction/"+id, cti, nil).result()["short_description"]
		r := s.do("PATCH", "/api/now/table/interaction/"+id+"?sysparm_exclude_reference_link=true", jdoe, map[string]any{"assigned_to": asmith, "state": "work_in_progress"})
		if r.status != 200 || r.result()["state"] != "work_in_progress" {
			t.Fatalf("agent's write: %d %s", r.status, r.raw)
		}
		rec, _ := s.s.Record("interaction", id)
		if r.result()["assigned_to"] != rec["assigned_to"] {
			t.Errorf("reply shows assigned_to %v, stored %q", r.result()["assigned_to"], rec["assigned_to"])
		}
		// The integration user is allowed.
		r = s.do("PATCH", "/api/now/table/interaction/"+id+"?sysparm_exclude_reference_link=true", cti, map[string]any{"assigned_to": asmith})
		if r.result()["assigned_to"] != asmith {
			t.Errorf("cti_integration may write assigned_to: got %v", r.result()["assigned_to"])
		}
		return rec["assigned_to"], desc
	}
	if assigned, desc := run(with(func(h *snowsim.Hardening) { h.FieldRules = true })); assigned != "" || desc != "Outbound call" {
		t.Errorf("hardened: agent set assigned_to to %q (want it left empty); description %q, want the rule's", assigned, desc)
	}
	if assigned, desc := run(lenient()); assigned == "" || desc != "Call" {
		t.Errorf("lenient: assigned_to %q, description %q; want the agent's write and the sent description", assigned, desc)
	}
}

func TestHiddenRows(t *testing.T) {
	d := snowsim.DefaultDataset()
	d.Roles = map[string]snowsim.Role{"auditor": {}}
	d.Users = append(d.Users, snowsim.User{UserName: "audit", Password: "pw", Roles: []string{"auditor"}})
	d.HiddenRows = map[string][]string{"agent": {"sn_customerservice_case"}, "auditor": {"incident"}}
	hard := with(func(h *snowsim.Hardening) { h.HiddenRows = true })
	hard.Data = d
	s := start(t, hard)
	caseID := s.s.Records("sn_customerservice_case")[0]["sys_id"]
	for _, tc := range []struct{ who, table string }{{"jdoe:jdoe", "sn_customerservice_case"}, {"audit:pw", "incident"}} {
		r := s.do("GET", "/api/now/table/"+tc.table+"?sysparm_limit=5", tc.who, nil)
		if r.status != 200 || r.raw != "{\"result\":[]}\n" || r.header.Get("X-Total-Count") == "0" || r.header.Get("X-Total-Count") == "" {
			t.Errorf("%s on %s: %d %q X-Total-Count %q, want 200, no rows, a count above 0", tc.who, tc.table, r.status, r.raw, r.header.Get("X-Total-Count"))
		}
	}
	expectError(t, s.do("GET", "/api/now/table/sn_customerservice_case/"+caseID, "jdoe:jdoe", nil), 404, "No Record found")
	if r := s.do("GET", "/api/now/table/sn_customerservice_case?sysparm_limit=5", cti, nil); len(r.results()) == 0 {
		t.Error("a role not listed lost its rows")
	}

	lenientOpts := lenient()
	lenientOpts.Data = d
	l := start(t, lenientOpts)
	if r := l.do("GET", "/api/now/table/sn_customerservice_case?sysparm_limit=5", "jdoe:jdoe", nil); len(r.results()) == 0 {
		t.Errorf("lenient: agent sees no cases: %s", r.raw)
	}
	expectError(t, l.do("GET", "/api/now/table/incident", "audit:pw", nil), 403, "User Not Authorized")
}

func TestDataPolicies(t *testing.T) {
	o := with(func(h *snowsim.Hardening) { h.DataPolicies = true })
	withAgentPolicy(&o)
	s := start(t, o)
	id := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"type": "phone", "state": "work_in_progress"}).result()["sys_id"].(string)
	r := s.do("PATCH", "/api/now/table/interaction/"+id, cti, map[string]any{"state": "closed_complete"})
	want := map[string]any{"error": map[string]any{"message": "Operation Failed", "detail": "Data Policy Exception: The following fields are mandatory: Assigned to"}, "status": "failure"}
	if r.status != 403 || !reflect.DeepEqual(r.body, want) {
		t.Errorf("closing without an agent: %d %s", r.status, r.raw)
	}
	if rec, _ := s.s.Record("interaction", id); rec["state"] != "work_in_progress" || rec["active"] != "true" {
		t.Errorf("refused write changed the record: %v", rec)
	}
	if r := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"state": "closed_complete"}); r.status != 403 {
		t.Errorf("create closed without an agent: %d", r.status)
	}
	if r := s.do("PATCH", "/api/now/table/interaction/"+id, cti, map[string]any{"state": "closed_complete", "assigned_to": s.userID("jdoe")}); r.status != 200 {
		t.Errorf("closing with an agent: %d %s", r.status, r.raw)
	}
	if r := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"state": "closed_abandoned"}); r.status != 201 {
		t.Errorf("abandoned without an agent: %d %s", r.status, r.raw)
	}

	l := start(t, lenient())
	id = l.do("POST", "/api/now/table/interaction", cti, map[string]any{"state": "work_in_progress"}).result()["sys_id"].(string)
	if r := l.do("PATCH", "/api/now/table/interaction/"+id, cti, map[string]any{"state": "closed_complete"}); r.status != 200 {
		t.Errorf("lenient close: %d %s", r.status, r.raw)
	}
}

func TestE164CallerNumbers(t *testing.T) {
	s := start(t, with(func(h *snowsim.Hardening) { h.E164 = true }))
	for sent, stored := range map[string]string{
		"8013203420": "+18013203420", "(801) 320-3420": "+18013203420", "1-801-320-3420": "+18013203420",
		"+44 20 7946 0958": "+442079460958", "+18013203420": "+18013203420", "": "",
	} {
		r := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"caller_phone_number": sent})
		if r.status != 201 || r.result()["caller_phone_number"] != stored {
			t.Errorf("%q: %d, stored %v, want %q", sent, r.status, r.result()["caller_phone_number"], stored)
		}
	}
	before := len(s.s.Records("interaction"))
	for _, bad := range []string{"Anonymous", "Restricted", "12345", "+0 123 456 789", "801-320-342x", "+1234567890123456"} {
		r := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"caller_phone_number": bad, "type": "phone"})
		expectError(t, r, 400, "Invalid phone number")
		if !strings.Contains(r.errDetail(), "caller_phone_number") {
			t.Errorf("%q: detail %q does not name the field", bad, r.errDetail())
		}
	}
	if after := len(s.s.Records("interaction")); after != before {
		t.Errorf("refused creates stored %d records", after-before)
	}
	id := s.s.Records("interaction")[0]["sys_id"]
	expectError(t, s.do("PATCH", "/api/now/table/interaction/"+id, cti, map[string]any{"caller_phone_number": "Anonymous"}), 400, "Invalid phone number")

	l := start(t, lenient())
	if r := l.do("POST", "/api/now/table/interaction", cti, map[string]any{"caller_phone_number": "Anonymous"}); r.status != 201 || r.result()["caller_phone_number"] != "Anonymous" {
		t.Errorf("lenient: %d %s", r.status, r.raw)
	}
}

func TestRelatedRecordTaskAndKnowledge(t *testing.T) {
	s := start(t, with(func(h *snowsim.Hardening) { h.RelatedRecordFields = true }))
	inc := s.s.Records("incident")[0]
	kb := s.do("POST", "/api/now/table/kb_knowledge", admin, map[string]any{"short_description": "Reset a VPN token"}).result()
	ia := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"type": "phone"}).result()["sys_id"].(string)
	r := s.do("POST", "/api/now/table/interaction_related_record", cti, map[string]any{"interaction": ia, "document_table": "incident",
		"document_id": inc["sys_id"], "type": "task", "task": inc["sys_id"], "knowledge_article": kb["sys_id"]})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	want := map[string]any{"link": s.url + "/api/now/table/task/" + inc["sys_id"], "value": inc["sys_id"]}
	if !reflect.DeepEqual(r.result()["task"], want) {
		t.Errorf("task = %v, want %v", r.result()["task"], want)
	}
	if ka, _ := r.result()["knowledge_article"].(map[string]any); ka["value"] != kb["sys_id"] {
		t.Errorf("knowledge_article = %v", r.result()["knowledge_article"])
	}
	got := s.do("GET", "/api/now/table/interaction_related_record?sysparm_fields=task.number,knowledge_article.number&sysparm_display_value=true", admin, nil).results()
	if len(got) != 1 || got[0]["task.number"] != inc["number"] || !strings.HasPrefix(got[0]["knowledge_article.number"].(string), "KB") {
		t.Errorf("dot-walk: %v", got)
	}

	l := start(t, lenient())
	r = l.do("POST", "/api/now/table/interaction_related_record", cti, map[string]any{"document_table": "incident", "task": inc["sys_id"]})
	if _, has := r.result()["task"]; r.status != 201 || has {
		t.Errorf("lenient: %d %s, want task silently dropped", r.status, r.raw)
	}
}

// get sends a request with cookies and returns the reply's cookies by name.
func (s *sim) withCookies(auth string, cookies ...*http.Cookie) (int, map[string]string) {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/api/now/table/sys_user?sysparm_limit=1", nil)
	if u, p, ok := strings.Cut(auth, ":"); ok {
		req.SetBasicAuth(u, p)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	r.Body.Close()
	out := map[string]string{}
	for _, c := range r.Cookies() {
		out[c.Name] = c.Value
	}
	return r.StatusCode, out
}

func (s *sim) sessionsCreated() float64 {
	s.t.Helper()
	return s.do("GET", "/sim/stats", admin, nil).body["sessionsCreated"].(float64)
}

func TestSessions(t *testing.T) {
	s := start(t, with(func(h *snowsim.Hardening) { h.Sessions = true }))
	_, first := s.withCookies(cti)
	_, second := s.withCookies(cti)
	if first["JSESSIONID"] == "" || first["glide_user_route"] == "" || first["JSESSIONID"] == second["JSESSIONID"] {
		t.Fatalf("cookie-less requests: cookies %v then %v, want a new session each", first, second)
	}
	if n := s.sessionsCreated(); n != 2 {
		t.Errorf("sessionsCreated = %v, want 2", n)
	}
	jar := &http.Cookie{Name: "JSESSIONID", Value: first["JSESSIONID"]}
	if code, c := s.withCookies(cti, jar); code != 200 || c["JSESSIONID"] != "" {
		t.Errorf("request with the session cookie: %d, new cookies %v", code, c)
	}
	if code, _ := s.withCookies("", jar); code != 200 {
		t.Errorf("the session cookie alone: %d, want it to authenticate", code)
	}
	if code, c := s.withCookies(cti, &http.Cookie{Name: "JSESSIONID", Value: "NOT-A-SESSION"}); code != 200 || c["JSESSIONID"] == "" {
		t.Errorf("unknown session cookie: %d %v, want a new session", code, c)
	}
	if code, _ := s.withCookies("", &http.Cookie{Name: "JSESSIONID", Value: "NOT-A-SESSION"}); code != 401 {
		t.Errorf("unknown session cookie alone: %d, want 401", code)
	}
	if n := s.sessionsCreated(); n != 3 {
		t.Errorf("sessionsCreated = %v, want 3", n)
	}

	l := start(t, lenient())
	if _, c := l.withCookies(cti); len(c) != 0 {
		t.Errorf("lenient: cookies %v", c)
	}
	if n := l.sessionsCreated(); n != 0 {
		t.Errorf("lenient: sessionsCreated = %v", n)
	}
}

// TestSessionsExpire: an idle session is not reused after the timeout.
func TestSessionsExpire(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	opts := with(func(h *snowsim.Hardening) { h.Sessions = true })
	opts.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := start(t, opts)
	_, c := s.withCookies(cti)
	mu.Lock()
	now = now.Add(31 * time.Minute)
	mu.Unlock()
	if code, again := s.withCookies(cti, &http.Cookie{Name: "JSESSIONID", Value: c["JSESSIONID"]}); code != 200 || again["JSESSIONID"] == "" {
		t.Errorf("expired session: %d %v, want a new one", code, again)
	}
}

func TestOAuthAsInstances(t *testing.T) {
	token := func(s *sim, form url.Values) (int, map[string]any) {
		r, err := http.PostForm(s.url+"/oauth_token.do", form)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var out map[string]any
		json.NewDecoder(r.Body).Decode(&out)
		return r.StatusCode, out
	}
	cc := url.Values{"client_id": {"ctibridge"}, "client_secret": {"ctibridge-secret"}, "grant_type": {"client_credentials"}}
	failures := map[string]url.Values{
		"bad secret":         {"client_id": {"ctibridge"}, "client_secret": {"x"}, "grant_type": {"password"}, "username": {"cti_integration"}, "password": {"cti_integration"}},
		"bad password":       {"client_id": {"ctibridge"}, "client_secret": {"ctibridge-secret"}, "grant_type": {"password"}, "username": {"cti_integration"}, "password": {"x"}},
		"unknown grant":      {"client_id": {"ctibridge"}, "client_secret": {"ctibridge-secret"}, "grant_type": {"implicit"}},
		"client credentials": cc,
	}
	s := start(t, with(func(h *snowsim.Hardening) { h.OAuthErrors, h.RefuseClientCredentials = true, true }))
	want := map[string]any{"error": "server_error", "error_description": "access_denied"}
	for name, form := range failures {
		if code, out := token(s, form); code != 401 || !reflect.DeepEqual(out, want) {
			t.Errorf("%s: %d %v, want 401 %v", name, code, out, want)
		}
	}
	// The property enabled: the grant works, failures still look alike.
	enabled := start(t, with(func(h *snowsim.Hardening) { h.OAuthErrors = true }))
	if code, out := token(enabled, cc); code != 200 || out["access_token"] == nil {
		t.Errorf("client credentials enabled: %d %v", code, out)
	}

	l := start(t, lenient())
	if code, out := token(l, failures["unknown grant"]); code != 400 || out["error"] != "unsupported_grant_type" {
		t.Errorf("lenient unknown grant: %d %v", code, out)
	}
	if code, _ := token(l, cc); code != 200 {
		t.Errorf("lenient client credentials: %d", code)
	}
}

func TestRateLimitHeadersOnEveryReply(t *testing.T) {
	opts := with(func(h *snowsim.Hardening) { h.RateLimitHeaders = true })
	opts.Faults.RateLimitPerHour = 2
	s := start(t, opts)
	for i := range 3 {
		r := s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", cti, nil)
		h := r.header
		if h.Get("X-RateLimit-Limit") != "2" || h.Get("X-RateLimit-Reset") == "" || len(h.Get("X-RateLimit-Rule")) != 32 {
			t.Errorf("reply %d (%d): headers %v, want X-RateLimit-Limit, -Reset and -Rule", i+1, r.status, h)
		}
		if i == 2 {
			expectError(t, r, 429, "Rate limit exceeded")
			if r.errDetail() != "Rate limit of 2 requests per hour for Table API exceeded" || h.Get("Retry-After") == "" {
				t.Errorf("429: detail %q, Retry-After %q", r.errDetail(), h.Get("Retry-After"))
			}
		}
	}
	lo := lenient()
	lo.Faults.RateLimitPerHour = 2
	l := start(t, lo)
	if r := l.do("GET", "/api/now/table/sys_user?sysparm_limit=1", cti, nil); r.header.Get("X-RateLimit-Limit") != "" {
		t.Errorf("lenient: rate-limit headers on a 200: %v", r.header)
	}
}

func TestWrapUp(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	opts := with(func(h *snowsim.Hardening) { h.WrapUp, h.ChoiceLists = true, true })
	opts.Now, opts.WrapUpDuration = clock, 2*time.Minute
	s := start(t, opts)
	create := func() string {
		return s.do("POST", "/api/now/table/interaction", cti, map[string]any{"type": "phone", "state": "work_in_progress"}).result()["sys_id"].(string)
	}
	id := create()
	r := s.do("PATCH", "/api/now/table/interaction/"+id, cti, map[string]any{"state": "closed_complete"})
	if r.status != 200 || r.result()["state"] != "wrap_up" || r.result()["active"] != "true" {
		t.Fatalf("closing a call in progress: %d state %v active %v, want wrap_up, still active", r.status, r.result()["state"], r.result()["active"])
	}
	advance(time.Minute)
	if got := s.do("GET", "/api/now/table/interaction/"+id, cti, nil).result()["state"]; got != "wrap_up" {
		t.Errorf("a minute into a 2-minute wrap-up: %v", got)
	}
	advance(time.Minute + time.Second)
	got := s.do("GET", "/api/now/table/interaction/"+id, cti, nil).result()
	if got["state"] != "closed_complete" || got["active"] != "false" || got["closed_at"] != "2026-01-01 12:02:01" {
		t.Errorf("after the wrap-up: state %v active %v closed_at %v", got["state"], got["active"], got["closed_at"])
	}
	// Closing again during wrap-up ends it at once.
	id = create()
	s.do("PATCH", "/api/now/table/interaction/"+id, cti, map[string]any{"state": "closed_complete"})
	if r := s.do("PATCH", "/api/now/table/interaction/"+id, cti, map[string]any{"state": "closed_complete"}); r.result()["state"] != "closed_complete" {
		t.Errorf("second close: %v", r.result()["state"])
	}
	// Abandoned calls skip wrap-up.
	id = create()
	if r := s.do("PATCH", "/api/now/table/interaction/"+id, cti, map[string]any{"state": "closed_abandoned"}); r.result()["state"] != "closed_abandoned" {
		t.Errorf("abandon: %v", r.result()["state"])
	}

	without := with(func(h *snowsim.Hardening) { h.ChoiceLists = true })
	l := start(t, without)
	id = l.do("POST", "/api/now/table/interaction", cti, map[string]any{"state": "work_in_progress"}).result()["sys_id"].(string)
	if r := l.do("PATCH", "/api/now/table/interaction/"+id, cti, map[string]any{"state": "closed_complete"}); r.result()["state"] != "closed_complete" {
		t.Errorf("without wrap-up: %v", r.result()["state"])
	}
	if r := l.do("PATCH", "/api/now/table/interaction/"+id, cti, map[string]any{"state": "wrap_up"}); r.result()["state"] != "new" {
		t.Errorf("wrap_up without a wrap-up configuration: stored %v, want the default", r.result()["state"])
	}
}

func TestACLErrorText(t *testing.T) {
	anyID := "0123456789abcdef0123456789abcdef"
	s := start(t, with(func(h *snowsim.Hardening) { h.ACLErrorText = true }))
	for _, tc := range []struct{ method, path, detail string }{
		{"POST", "/api/now/table/incident", "ACL Exception Insert Failed due to security constraints"},
		{"PATCH", "/api/now/table/sys_user/" + anyID, "ACL Exception Update Failed due to security constraints"},
		{"DELETE", "/api/now/table/interaction/" + anyID, "ACL Exception Delete Failed due to security constraints"},
	} {
		r := s.do(tc.method, tc.path, cti, map[string]any{})
		if r.status != 403 || r.errMessage() != "Operation Failed" || r.errDetail() != tc.detail {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, r.status, r.raw)
		}
	}
	r := s.do("GET", "/api/now/table/sys_user_has_role", cti, nil)
	if r.status != 403 || r.errMessage() != "User Not Authorized" || r.errDetail() != "User is unauthorized to access table: sys_user_has_role" {
		t.Errorf("read refused: %d %s", r.status, r.raw)
	}
	l := start(t, lenient())
	expectError(t, l.do("POST", "/api/now/table/incident", cti, map[string]any{}), 403, "User Not Authorized")
}

func TestDatasetHardeningKeys(t *testing.T) {
	d := snowsim.DefaultDataset()
	d.Hardening = map[string]bool{"e164": true}
	s := start(t, snowsim.Options{Data: d})
	expectError(t, s.do("POST", "/api/now/table/interaction", cti, map[string]any{"caller_phone_number": "Anonymous"}), 400, "Invalid phone number")
	// Options.Hardening, when given, wins.
	o := lenient()
	o.Data = d
	if r := start(t, o).do("POST", "/api/now/table/interaction", cti, map[string]any{"caller_phone_number": "Anonymous"}); r.status != 201 {
		t.Errorf("explicit options: %d", r.status)
	}
}

// TestDatasetFileDeclarations: a --data file declares hardening, choice
// lists, field ACLs, rules, data policies, hidden rows and rows of the
// sys_user hierarchy; mistakes are refused with the key named.
func TestDatasetFileDeclarations(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.yaml")
	os.WriteFile(path, []byte(`
hardening: {tableHierarchy: true, choiceLists: true, dataPolicies: true}
choices:
  interaction.type: {values: [phone, chat], default: phone}
dataPolicies:
  - {name: needs a description, table: interaction, when: "state=closed_complete", mandatory: [short_description]}
tables:
  customer_contact:
    - {sys_id: 00000000000000000000000000000c01, name: File Contact, phone: "555-0142"}
  csm_consumer_user:
    - {sys_id: 00000000000000000000000000000c02, name: File Consumer, phone: "555-0143"}
`), 0o600)
	d, err := snowsim.LoadDataset(path)
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, snowsim.Options{Data: d})
	users := s.do("GET", "/api/now/table/sys_user?sysparm_query=phoneSTARTSWITH555-014^ORDERBYsys_id&sysparm_fields=sys_id,sys_class_name", admin, nil).results()
	want := []map[string]any{{"sys_id": "00000000000000000000000000000c01", "sys_class_name": "customer_contact"},
		{"sys_id": "00000000000000000000000000000c02", "sys_class_name": "csm_consumer_user"}}
	if !reflect.DeepEqual(users, want) {
		t.Errorf("sys_user rows from the file: %v, want %v", users, want)
	}
	r := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"type": "walk-up"})
	if r.result()["type"] != "phone" {
		t.Errorf("file's choice list: type %v, want its default phone", r.result()["type"])
	}
	expectError(t, s.do("PATCH", "/api/now/table/interaction/"+r.result()["sys_id"].(string), cti, map[string]any{"state": "closed_complete"}), 403, "Operation Failed")

	for content, want := range map[string]string{
		`{"hardening":{"e165":true}}`:                                                    `hardening: unknown key "e165"`,
		`{"choices":{"interaction":{"values":["a"],"default":"a"}}}`:                     "must be table.field",
		`{"choices":{"interaction.nope":{"values":["a"],"default":"a"}}}`:                `table interaction has no field "nope"`,
		`{"choices":{"interaction.state":{"values":["a"],"default":"b"}}}`:               `choices.interaction.state: the default "b"`,
		`{"fieldACLs":[{"table":"interaction","field":"assigned_to","write":["nope"]}]}`: `fieldACLs[0]: unknown role "nope"`,
		`{"rules":[{"table":"interaction","when":"state=new","set":{}}]}`:                "rules[0]: set names no field",
		`{"rules":[{"table":"incident","when":"^^^bad","set":{"state":"1"}}]}`:           "rules[0]: when:",
		`{"dataPolicies":[{"table":"nope","mandatory":["x"]}]}`:                          `dataPolicies[0].mandatory: unknown table "nope"`,
		`{"hiddenRows":{"nope":["incident"]}}`:                                           `hiddenRows: unknown role "nope"`,
		`{"hiddenRows":{"agent":["nope"]}}`:                                              `hiddenRows.agent: unknown table "nope"`,
	} {
		bad := filepath.Join(dir, "bad.json")
		os.WriteFile(bad, []byte(content), 0o600)
		if _, err := snowsim.LoadDataset(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", content, err, want)
		}
	}
}
