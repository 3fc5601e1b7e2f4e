package doctor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ctibridge/ctibridge/cxonesim"

	"github.com/ctibridge/ctibridge/config"
	"github.com/ctibridge/ctibridge/doctor"
	"github.com/ctibridge/ctibridge/snowsim"
)

func load(t *testing.T, vars map[string]string) (*config.Config, error) {
	t.Helper()
	base := map[string]string{"CTIBRIDGE_API_KEYS": "doctor-test-key-0123456789", "CTIBRIDGE_DATABASE": t.TempDir() + "/d.db"}
	for k, v := range vars {
		base[k] = v
	}
	return config.Load("", func(k string) string { return base[k] })
}

// simWith starts a simulator where the user "probe" has the integration
// user's rights minus one ("" = none missing).
func simWith(t *testing.T, missing string) (*snowsim.Server, string) {
	t.Helper()
	return newSim(t, setup{missing: missing})
}

// setup describes a simulator for one test.
type setup struct {
	missing string            // "table:op", a right the user "probe" lacks
	rows    map[string]string // table → encoded query of the rows "probe" may see
	opts    snowsim.Options   // other simulator options (Data is set by newSim)
	edit    func(*snowsim.Dataset)
	// wrap puts a handler in front of the simulator, for instance
	// behaviours the simulator does not have.
	wrap func(http.Handler) http.Handler
	// outsideACL leaves "probe" out of the field-level write ACLs the
	// integration role is in.
	outsideACL bool
}

func newSim(t *testing.T, s setup) (*snowsim.Server, string) {
	t.Helper()
	d := snowsim.DefaultDataset()
	role := snowsim.Role{}
	for table, ops := range snowsim.BuiltinRoles()["cti_integration"] {
		role[table] = ops
	}
	if s.missing != "" {
		table, op, _ := strings.Cut(s.missing, ":")
		role[table] = strings.ReplaceAll(role[table], op, "")
	}
	for table, q := range s.rows {
		role[table+":rows"] = q
	}
	d.Roles = map[string]snowsim.Role{"probe": role}
	d.Users = append(d.Users, snowsim.User{UserName: "probe", Password: "probe-pass", Roles: []string{"probe"}})
	if !s.outsideACL {
		for i, acl := range d.FieldACLs {
			if slices.Contains(acl.Write, "cti_integration") {
				d.FieldACLs[i].Write = append(slices.Clone(acl.Write), "probe")
			}
		}
	}
	if s.edit != nil {
		s.edit(d)
	}
	opts := s.opts
	if opts.Hardening == nil {
		// The default hardened instance, whose admin enabled the client
		// credentials grant (the tests of auth methods use it).
		h := snowsim.DefaultHardening()
		h.RefuseClientCredentials = false
		opts.Hardening = &h
	}
	opts.Data = d
	sim := snowsim.New(opts)
	var h http.Handler = sim
	if s.wrap != nil {
		h = s.wrap(sim)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

// probeVars configures basic auth as "probe" against url.
func probeVars(url string) map[string]string {
	return map[string]string{"CTIBRIDGE_SN_INSTANCE": url, "CTIBRIDGE_SN_USERNAME": "probe", "CTIBRIDGE_SN_PASSWORD": "probe-pass"}
}

// printed is the checklist as an admin reads it.
func printed(r doctor.Report) string {
	var b bytes.Buffer
	r.Print(&b)
	return b.String()
}

// onlyFailure checks that the report failed on the named check alone and
// returns it.
func onlyFailure(t *testing.T, rep doctor.Report, name string) doctor.Check {
	t.Helper()
	if rep.OK {
		t.Fatalf("doctor passed, want %q to fail:\n%s", name, printed(rep))
	}
	c, ok := checks(rep)[name]
	if !ok || c.OK || c.Skip {
		t.Fatalf("check %q: %+v, want a failure:\n%s", name, c, printed(rep))
	}
	for _, o := range rep.Checks {
		if o.Name != name && !o.OK {
			t.Errorf("%s did not pass either: %+v", o.Name, o)
		}
	}
	if c.Fix == "" {
		t.Errorf("%s: no fix line", name)
	}
	return c
}

// userID returns the sys_id of a sys_user by user name.
func userID(t *testing.T, sim *snowsim.Server, name string) string {
	t.Helper()
	for _, u := range sim.Records("sys_user") {
		if u["user_name"] == name {
			return u["sys_id"]
		}
	}
	t.Fatalf("no user %s", name)
	return ""
}

// testInteractions returns doctor's test interactions: the main one and
// the link target.
func testInteractions(t *testing.T, sim *snowsim.Server) (main, target map[string]string) {
	t.Helper()
	for _, rec := range sim.Records("interaction") {
		switch rec["short_description"] {
		case "ctibridge doctor test — safe to delete":
			main = rec
		case "ctibridge doctor test — safe to delete (link target)":
			target = rec
		}
	}
	if main == nil || target == nil {
		t.Fatalf("doctor's test interactions not found: %v", sim.Records("interaction"))
	}
	return main, target
}

func checks(r doctor.Report) map[string]doctor.Check {
	out := map[string]doctor.Check{}
	for _, c := range r.Checks {
		out[c.Name] = c
	}
	return out
}

func TestAllRightsPass(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"basic":          {"CTIBRIDGE_SN_USERNAME": "probe", "CTIBRIDGE_SN_PASSWORD": "probe-pass"},
		"oauth password": {"CTIBRIDGE_SN_USERNAME": "cti_integration", "CTIBRIDGE_SN_PASSWORD": "cti_integration", "CTIBRIDGE_SN_CLIENT_ID": "ctibridge", "CTIBRIDGE_SN_CLIENT_SECRET": "ctibridge-secret"},
		// The integration user is then the client's OAuth Application
		// User (cti_integration): doctor learns it from its first record.
		"oauth client credentials": {"CTIBRIDGE_SN_CLIENT_ID": "ctibridge", "CTIBRIDGE_SN_CLIENT_SECRET": "ctibridge-secret"},
	} {
		t.Run(name, func(t *testing.T) {
			sim, url := simWith(t, "")
			vars["CTIBRIDGE_SN_INSTANCE"] = url
			cfg, err := load(t, vars)
			rep := doctor.Run(context.Background(), cfg, err, nil)
			if !rep.OK {
				var b bytes.Buffer
				rep.Print(&b)
				t.Fatalf("doctor failed:\n%s", b.String())
			}
			if len(rep.Checks) < 10 {
				t.Errorf("only %d checks", len(rep.Checks))
			}
			var labelled int
			for _, rec := range sim.Records("interaction") {
				if strings.Contains(rec["short_description"], "ctibridge doctor test") {
					labelled++
					if rec["state"] == "new" || rec["state"] == "work_in_progress" {
						t.Errorf("a test interaction was left open: %v", rec["state"])
					}
				}
			}
			if labelled != 2 || len(sim.Records("interaction")) != 2 {
				t.Errorf("%d labelled test interactions of %d, want 2 of 2", labelled, len(sim.Records("interaction")))
			}
			// assigned_to and opened_for were proved with the user doctor
			// runs as, whatever the authentication.
			user := vars["CTIBRIDGE_SN_USERNAME"]
			if user == "" {
				user = "cti_integration"
			}
			main, target := testInteractions(t, sim)
			if main["state"] != "closed_complete" || target["state"] != "closed_abandoned" {
				t.Errorf("test interactions in states %q and %q, want closed_complete and closed_abandoned", main["state"], target["state"])
			}
			if id := userID(t, sim, user); main["assigned_to"] != id || main["opened_for"] != id {
				t.Errorf("assigned_to %q, opened_for %q, want %s's sys_id %s", main["assigned_to"], main["opened_for"], user, id)
			}
		})
	}
}

// TestTouchesNoRealCustomerRecord: doctor links its test interaction to its
// other test interaction, not to an incident or case; its user references
// name the integration user alone and its customer references no record at
// all; incidents and cases are left as they were.
func TestTouchesNoRealCustomerRecord(t *testing.T) {
	sim, base := simWith(t, "")
	before := map[string][]map[string]string{}
	for _, table := range []string{"incident", "sn_customerservice_case", "customer_contact", "customer_account", "csm_consumer", "sys_user"} {
		before[table] = sim.Records(table)
	}
	cfg, err := load(t, probeVars(base))
	rep := doctor.Run(context.Background(), cfg, err, nil)
	if !rep.OK {
		t.Fatalf("doctor failed:\n%s", printed(rep))
	}
	main, target := testInteractions(t, sim)
	links := sim.Records("interaction_related_record")
	if len(links) != 1 {
		t.Fatalf("%d related records, want 1: %v", len(links), links)
	}
	l := links[0]
	if l["interaction"] != main["sys_id"] || l["document_table"] != "interaction" || l["document_id"] != target["sys_id"] {
		t.Errorf("link %v, want test interaction %s linked to test interaction %s", l, main["number"], target["number"])
	}
	c := checks(rep)["create interaction_related_record"]
	for _, want := range []string{main["number"], target["number"], "not to a real incident or case"} {
		if !strings.Contains(c.Detail, want) {
			t.Errorf("the check does not say which records it linked (%q): %q", want, c.Detail)
		}
	}
	probe := userID(t, sim, "probe")
	if main["opened_for"] != probe || main["assigned_to"] != probe {
		t.Errorf("opened_for %q, assigned_to %q, want the integration user %s", main["opened_for"], main["assigned_to"], probe)
	}
	for field, table := range map[string]string{"contact": "customer_contact", "account": "customer_account", "consumer": "csm_consumer"} {
		v := main[field]
		if v == "" {
			t.Errorf("%s was not written, so its right was not proved", field)
		}
		if _, real := sim.Record(table, v); real {
			t.Errorf("%s points at a real %s record %s", field, table, v)
		}
		if c := checks(rep)["write interaction."+field]; !c.OK || !strings.Contains(c.Detail, "names no "+table) {
			t.Errorf("write interaction.%s: %+v, want it passed, saying the value names no %s", field, c, table)
		}
	}
	for table, rows := range before {
		if after := sim.Records(table); !reflect.DeepEqual(after, rows) {
			t.Errorf("%s changed", table)
		}
	}
	if !strings.Contains(rep.Note, "never to a real incident or case") {
		t.Errorf("note %q does not say what was linked", rep.Note)
	}
}

// TestEachMissingRightFails takes away one right at a time: that check, and
// only that one, fails with a fix naming the table and the operation.
func TestEachMissingRightFails(t *testing.T) {
	for _, tc := range []struct{ missing, check, fix string }{
		{"sys_user:r", "read sys_user", "read access to sys_user"},
		{"incident:r", "read incident", "read access to incident"},
		{"sn_customerservice_case:r", "read sn_customerservice_case", "read access to sn_customerservice_case"},
		{"interaction:c", "create interaction", "create access to interaction"},
		{"interaction:w", "update interaction", "write access to interaction"},
		{"interaction_related_record:c", "create interaction_related_record", "create access to interaction_related_record"},
	} {
		t.Run(tc.missing, func(t *testing.T) {
			_, url := simWith(t, tc.missing)
			cfg, err := load(t, map[string]string{"CTIBRIDGE_SN_INSTANCE": url, "CTIBRIDGE_SN_USERNAME": "probe", "CTIBRIDGE_SN_PASSWORD": "probe-pass"})
			rep := doctor.Run(context.Background(), cfg, err, nil)
			if rep.OK {
				t.Fatal("doctor passed without the right")
			}
			for name, c := range checks(rep) {
				switch {
				case name == tc.check:
					if c.OK || !strings.Contains(c.Fix, tc.fix) || !strings.Contains(c.Detail, "403") {
						t.Errorf("%s: %+v, want a failure with fix %q", name, c, tc.fix)
					}
				case !c.OK && !c.Skip:
					t.Errorf("%s failed too: %+v", name, c)
				}
			}
		})
	}
}

func TestDoctorFailures(t *testing.T) {
	_, url := simWith(t, "")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name  string
		vars  map[string]string
		check string
	}{
		{"wrong password", map[string]string{"CTIBRIDGE_SN_INSTANCE": url, "CTIBRIDGE_SN_USERNAME": "probe", "CTIBRIDGE_SN_PASSWORD": "nope"}, "authentication"},
		{"wrong client secret", map[string]string{"CTIBRIDGE_SN_INSTANCE": url, "CTIBRIDGE_SN_CLIENT_ID": "ctibridge", "CTIBRIDGE_SN_CLIENT_SECRET": "nope"}, "authentication"},
		{"nothing listening", map[string]string{"CTIBRIDGE_SN_INSTANCE": closed, "CTIBRIDGE_SN_USERNAME": "probe", "CTIBRIDGE_SN_PASSWORD": "probe-pass"}, "Table API answers (HTTP)"},
		{"no instance", map[string]string{"CTIBRIDGE_SN_USERNAME": "probe"}, "configuration is valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := load(t, tc.vars)
			if cfg == nil {
				cfg = &config.Config{}
			}
			rep := doctor.Run(context.Background(), cfg, err, nil)
			c, ok := checks(rep)[tc.check]
			if rep.OK || !ok || c.OK || c.Fix == "" {
				t.Fatalf("check %q: %+v (report ok %v)", tc.check, c, rep.OK)
			}
			for _, c := range rep.Checks {
				if strings.Contains(c.Detail, "nope") || strings.Contains(c.Detail, "probe-pass") {
					t.Errorf("a secret in the report: %+v", c)
				}
			}
		})
	}
}

func TestMainJSONAndExitStatus(t *testing.T) {
	_, url := simWith(t, "interaction:w")
	t.Setenv("CTIBRIDGE_SN_INSTANCE", url)
	t.Setenv("CTIBRIDGE_SN_USERNAME", "probe")
	t.Setenv("CTIBRIDGE_SN_PASSWORD", "probe-pass")
	t.Setenv("CTIBRIDGE_API_KEYS", "doctor-test-key-0123456789")
	t.Setenv("CTIBRIDGE_DATABASE", t.TempDir()+"/d.db")
	var out, errs bytes.Buffer
	err := doctor.Main(context.Background(), []string{"--json"}, &out, &errs)
	var f doctor.Failed
	if !errors.As(err, &f) || f.ExitCode() != 1 || f.N != 1 {
		t.Fatalf("err = %v, want one failed check and exit 1", err)
	}
	var rep doctor.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.OK || rep.Instance != url {
		t.Fatalf("JSON report: %v %+v", err, rep)
	}
	out.Reset()
	doctor.Main(context.Background(), nil, &out, &errs)
	if !strings.Contains(out.String(), "[FAIL] update interaction") || !strings.Contains(out.String(), "fix: grant") ||
		!strings.Contains(out.String(), "safe to delete") {
		t.Errorf("checklist:\n%s", out.String())
	}
}

// TestFieldMapFieldsMustExist: a fieldMap target the instance does not have
// is reported (an instance drops unknown fields without an error).
func TestFieldMapFieldsMustExist(t *testing.T) {
	_, url := simWith(t, "")
	for name, tc := range map[string]struct {
		field string
		ok    bool
	}{"existing custom field": {"u_skill", true}, "missing custom field": {"u_customer_tier", false}} {
		t.Run(name, func(t *testing.T) {
			cfg, err := load(t, map[string]string{"CTIBRIDGE_SN_INSTANCE": url, "CTIBRIDGE_SN_USERNAME": "probe", "CTIBRIDGE_SN_PASSWORD": "probe-pass"})
			cfg.Lifecycle.FieldMap = map[string]string{"skillName": tc.field}
			rep := doctor.Run(context.Background(), cfg, err, nil)
			c := checks(rep)["interaction fields and states"]
			if c.OK != tc.ok || rep.OK != tc.ok {
				t.Fatalf("%+v", c)
			}
			if !tc.ok && (!strings.Contains(c.Detail, "u_customer_tier does not exist") || !strings.Contains(c.Fix, "fieldMap")) {
				t.Errorf("check %+v should name the field and the fix", c)
			}
		})
	}
}

// editBody changes the JSON body of the requests that match before the
// simulator sees them.
func editBody(match func(*http.Request) bool, edit func(map[string]any)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if match(r) {
				var body map[string]any
				raw, _ := io.ReadAll(r.Body)
				if json.Unmarshal(raw, &body) == nil {
					edit(body)
					raw, _ = json.Marshal(body)
				}
				r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
			}
			next.ServeHTTP(w, r)
		})
	}
}

// editReply changes each result record of the replies that match.
func editReply(match func(*http.Request) bool, edit func(map[string]any)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !match(r) {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			var one struct {
				Result map[string]any `json:"result"`
			}
			var many struct {
				Result []map[string]any `json:"result"`
			}
			switch {
			case json.Unmarshal(body, &one) == nil && one.Result != nil:
				edit(one.Result)
				body, _ = json.Marshal(one)
			case json.Unmarshal(body, &many) == nil && many.Result != nil:
				for _, m := range many.Result {
					edit(m)
				}
				body, _ = json.Marshal(many)
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	}
}

// chain applies wrappers, the first outermost.
func chain(wraps ...func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		for i := len(wraps) - 1; i >= 0; i-- {
			h = wraps[i](h)
		}
		return h
	}
}

// TestFieldLevelRights: a value the instance drops or rewrites while
// answering 2xx (a field-level write ACL, a business rule) fails the check
// of that field, naming the value written and the value stored, with the
// ACL to grant; every other check still passes.
func TestFieldLevelRights(t *testing.T) {
	rules := &snowsim.Hardening{FieldRules: true}
	const someoneElse = "5137153cc611227c000bbd1bd8cd2005" // a business rule's idea of who opened it
	for _, tc := range []struct {
		name, check string
		edit        func(*snowsim.Dataset)
		stored      string // what the record holds, as the detail says it
		fix         string
	}{{
		name:  "assigned_to dropped by a field-level write ACL",
		check: "write interaction.assigned_to",
		edit: func(d *snowsim.Dataset) {
			d.FieldACLs = []snowsim.FieldACL{{Table: "interaction", Field: "assigned_to", Write: []string{"itil"}}}
		},
		stored: "holds nothing (the value was dropped)",
		fix:    "field-level ACL interaction.assigned_to for write",
	}, {
		name:  "opened_for rewritten by a business rule",
		check: "write interaction.opened_for",
		edit: func(d *snowsim.Dataset) {
			d.FieldACLs = nil
			d.Rules = []snowsim.Rule{{Name: "Opened for the service desk", Table: "interaction", When: "opened_forISNOTEMPTY",
				Set: map[string]string{"opened_for": someoneElse}}}
		},
		stored: `holds "` + someoneElse + `"`,
		fix:    "field-level ACL interaction.opened_for for create",
	}, {
		name:  "contact dropped on create",
		check: "write interaction.contact",
		edit: func(d *snowsim.Dataset) {
			d.FieldACLs = []snowsim.FieldACL{{Table: "interaction", Field: "contact", Write: []string{"itil"}}}
		},
		stored: "holds nothing (the value was dropped)",
		fix:    "field-level ACL interaction.contact for create",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			sim, base := newSim(t, setup{opts: snowsim.Options{Hardening: rules}, edit: tc.edit})
			cfg, err := load(t, probeVars(base))
			rep := doctor.Run(context.Background(), cfg, err, nil)
			c := onlyFailure(t, rep, tc.check)
			field := strings.TrimPrefix(tc.check, "write interaction.")
			main, _ := testInteractions(t, sim)
			written := userID(t, sim, "probe")
			if field == "contact" {
				written = "" // a random sys_id: read it from the detail
				if _, v, ok := strings.Cut(c.Detail, `contact = "`); ok {
					written, _, _ = strings.Cut(v, `"`)
				}
				if len(written) != 32 || main["contact"] != "" {
					t.Fatalf("detail %q should name the sys_id written; the record holds %q", c.Detail, main["contact"])
				}
			}
			for _, want := range []string{field + ` = "` + written + `"`, tc.stored} {
				if !strings.Contains(c.Detail, want) {
					t.Errorf("detail %q does not say %q", c.Detail, want)
				}
			}
			if !strings.Contains(c.Fix, tc.fix) {
				t.Errorf("fix %q does not name the ACL (%q)", c.Fix, tc.fix)
			}
		})
	}
}

// TestHardenedInstance runs doctor against a simulator with every behaviour
// of a hardened production instance: the integration user's role passes
// everything (an active wrap-up is said, not failed); a user outside the
// assigned_to write ACL fails that field, and closing is then refused by
// the data policy that wants an agent on closed interactions, which the
// update check explains.
func TestHardenedInstance(t *testing.T) {
	hard := snowsim.AllHardened()
	hard.WrapUp = false
	t.Run("wrap-up", func(t *testing.T) {
		hard := snowsim.AllHardened()
		sim, base := newSim(t, setup{opts: snowsim.Options{Hardening: &hard}})
		cfg, err := load(t, map[string]string{"CTIBRIDGE_SN_INSTANCE": base, "CTIBRIDGE_SN_USERNAME": "cti_integration", "CTIBRIDGE_SN_PASSWORD": "cti_integration"})
		rep := doctor.Run(context.Background(), cfg, err, nil)
		if !rep.OK {
			t.Fatalf("doctor failed:\n%s", printed(rep))
		}
		if main, _ := testInteractions(t, sim); main["state"] != "wrap_up" {
			t.Fatalf("test interaction in state %q, want wrap_up (is wrap-up on?)", main["state"])
		}
		if c := checks(rep)["interaction fields and states"]; !strings.Contains(c.Detail, "wrap-up configuration is active") {
			t.Errorf("interaction fields and states: %q does not say closing went through wrap-up", c.Detail)
		}
	})
	t.Run("integration user", func(t *testing.T) {
		sim, base := newSim(t, setup{opts: snowsim.Options{Hardening: &hard}})
		cfg, err := load(t, map[string]string{"CTIBRIDGE_SN_INSTANCE": base, "CTIBRIDGE_SN_USERNAME": "cti_integration", "CTIBRIDGE_SN_PASSWORD": "cti_integration"})
		rep := doctor.Run(context.Background(), cfg, err, nil)
		if !rep.OK {
			t.Fatalf("doctor failed:\n%s", printed(rep))
		}
		main, _ := testInteractions(t, sim)
		if me := userID(t, sim, "cti_integration"); main["assigned_to"] != me || main["state"] != "closed_complete" {
			t.Errorf("test interaction assigned to %q in state %q, want %s and closed_complete", main["assigned_to"], main["state"], me)
		}
	})
	t.Run("user outside the assigned_to ACL", func(t *testing.T) {
		withPolicy := func(d *snowsim.Dataset) { d.DataPolicies = append(d.DataPolicies, snowsim.ClosedNeedsAgentPolicy()) }
		_, base := newSim(t, setup{opts: snowsim.Options{Hardening: &hard}, outsideACL: true, edit: withPolicy})
		cfg, err := load(t, probeVars(base))
		rep := doctor.Run(context.Background(), cfg, err, nil)
		if rep.OK {
			t.Fatalf("doctor passed:\n%s", printed(rep))
		}
		var failed []string
		for _, c := range rep.Checks {
			if !c.OK {
				failed = append(failed, c.Name)
			}
		}
		if want := []string{"update interaction", "write interaction.assigned_to"}; !slices.Equal(failed, want) {
			t.Fatalf("failed %v, want %v:\n%s", failed, want, printed(rep))
		}
		c := checks(rep)["update interaction"]
		if !strings.Contains(c.Detail, "Data Policy Exception") || !strings.Contains(c.Fix, "data policy") || strings.Contains(c.Fix, "grant the integration user a role with write access") {
			t.Errorf("update interaction: %+v, want the refusal and a fix that points at data policies, not at the write right it has", c)
		}
	})
}

// TestRowsHiddenByACLs: a table the integration user may read but whose
// rows are all hidden answers 200, X-Total-Count > 0 and no rows. Doctor
// reports that as a failure naming the table, not as an empty table; an
// empty table and a table whose first rows only are hidden pass.
func TestRowsHiddenByACLs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		s      setup
		check  string
		ok     bool
		detail string
	}{
		{"every incident hidden", setup{opts: snowsim.Options{Hardening: &snowsim.Hardening{HiddenRows: true}},
			edit: func(d *snowsim.Dataset) { d.HiddenRows = map[string][]string{"probe": {"incident"}} }}, "read incident", false,
			"incident is readable but every row hidden by ACLs: the instance counts 25 rows (X-Total-Count) and returns none"},
		{"every case hidden by a row-level ACL", setup{rows: map[string]string{"sn_customerservice_case": "active=maybe"}}, "read sn_customerservice_case", false,
			"sn_customerservice_case is readable but every row hidden by ACLs: the instance counts 23 rows"},
		{"every user hidden but the integration user's own", setup{rows: map[string]string{"sys_user": "user_name=probe"}}, "read sys_user", true,
			"readable; 1 of the first 100 rows visible"},
		{"only the first incidents hidden", setup{rows: map[string]string{"incident": "numberNOT ININC0010001,INC0010002"}}, "read incident", true,
			"readable; 23 of the first 25 rows visible"},
		{"no cases at all", setup{edit: func(d *snowsim.Dataset) { delete(d.Tables, "sn_customerservice_case") }}, "read sn_customerservice_case", true,
			"the table is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, base := newSim(t, tc.s)
			cfg, err := load(t, probeVars(base))
			rep := doctor.Run(context.Background(), cfg, err, nil)
			var c doctor.Check
			if tc.ok {
				if !rep.OK {
					t.Fatalf("doctor failed:\n%s", printed(rep))
				}
				c = checks(rep)[tc.check]
			} else {
				c = onlyFailure(t, rep, tc.check)
				if !strings.Contains(c.Fix, "row-level read ACL on "+strings.TrimPrefix(tc.check, "read ")) {
					t.Errorf("fix %q does not name the row-level ACL of the table", c.Fix)
				}
			}
			if !strings.Contains(c.Detail, tc.detail) {
				t.Errorf("%s: detail %q, want %q", tc.check, c.Detail, tc.detail)
			}
			if strings.Contains(c.Detail, "empty") != strings.Contains(tc.detail, "empty") {
				t.Errorf("%s: detail %q calls the table empty", tc.check, c.Detail)
			}
		})
	}
}

// TestClientCredentialsRefused: the fix for a refused client_credentials
// grant names the system property that enables it and the OAuth
// Application User, and the secret appears nowhere.
func TestClientCredentialsRefused(t *testing.T) {
	_, base := newSim(t, setup{opts: snowsim.Options{Hardening: &snowsim.Hardening{RefuseClientCredentials: true, OAuthErrors: true}}})
	cfg, err := load(t, map[string]string{"CTIBRIDGE_SN_INSTANCE": base,
		"CTIBRIDGE_SN_CLIENT_ID": "ctibridge", "CTIBRIDGE_SN_CLIENT_SECRET": "ctibridge-secret"})
	rep := doctor.Run(context.Background(), cfg, err, nil)
	c := checks(rep)["authentication"]
	if rep.OK || c.OK || c.Skip || !strings.Contains(c.Detail, "401") {
		t.Fatalf("authentication: %+v, want a failure with the 401", c)
	}
	for _, want := range []string{"glide.oauth.inbound.client.credential.grant_type.enabled", "OAuth Application User", "Application Registry"} {
		if !strings.Contains(c.Fix, want) {
			t.Errorf("fix %q does not name %s", c.Fix, want)
		}
	}
	out := printed(rep)
	if strings.Contains(out, "ctibridge-secret") {
		t.Errorf("the client secret is in the report:\n%s", out)
	}
	if c := checks(rep)["create interaction"]; !c.Skip {
		t.Errorf("create interaction: %+v, want skipped after the authentication failure", c)
	}
}

// TestScreenPop: doctor prints the screen-pop URL of its test interaction,
// built with the configured workspace as the bridge builds it for Studio,
// and fails when the instance does not keep the sys_id chosen before the
// create (the URL handed to Studio would then open nothing).
func TestScreenPop(t *testing.T) {
	for _, tc := range []struct {
		name, workspace, path string
	}{
		{"default (CSM Configurable Workspace)", "", "/now/cwf/agent/record/interaction/"},
		{"Service Operations Workspace", "sow", "/now/sow/record/interaction/"},
		{"a template", "{instance}/now/nav/ui/classic/params/target/interaction.do%3Fsys_id%3D{sys_id}", "/now/nav/ui/classic/params/target/interaction.do%3Fsys_id%3D"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, base := simWith(t, "")
			vars := probeVars(base)
			vars["CTIBRIDGE_SN_WORKSPACE"] = tc.workspace
			cfg, err := load(t, vars)
			rep := doctor.Run(context.Background(), cfg, err, nil)
			if !rep.OK {
				t.Fatalf("doctor failed:\n%s", printed(rep))
			}
			main, _ := testInteractions(t, sim)
			want := base + tc.path + main["sys_id"]
			if rep.ScreenPop != want {
				t.Errorf("screen pop %q, want %q", rep.ScreenPop, want)
			}
			if out := printed(rep); !strings.Contains(out, want) || !strings.Contains(out, main["number"]) {
				t.Errorf("the checklist does not show the screen pop %s of %s:\n%s", want, main["number"], out)
			}
		})
	}
	t.Run("sys_id not kept", func(t *testing.T) {
		sim, base := newSim(t, setup{opts: snowsim.Options{IgnoreClientSysID: true}})
		cfg, err := load(t, probeVars(base))
		rep := doctor.Run(context.Background(), cfg, err, nil)
		c := onlyFailure(t, rep, "screen pop")
		main, _ := testInteractions(t, sim)
		if !strings.Contains(c.Detail, "instead of") || !strings.Contains(c.Detail, main["sys_id"]) || !strings.Contains(c.Detail, "would open nothing") {
			t.Errorf("detail %q should say the instance replaced the sys_id (%s) and what that breaks", c.Detail, main["sys_id"])
		}
	})
}

// refusals counts the creates the simulator refused, and fails the test if
// one was worded with the database's text.
func refusals(t *testing.T, n *atomic.Int32) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r) // a dropped reply panics through here, and stays dropped
			if rec.Code == http.StatusForbidden && r.Method == http.MethodPost {
				n.Add(1)
				if bytes.Contains(rec.Body.Bytes(), []byte("Unique Key")) {
					t.Errorf("the simulator answered with the database's text: %s", rec.Body.String())
				}
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
		})
	}
}

// TestDuplicateAnsweredGenerically: the reply to doctor's first create is
// lost, the retry is refused as a duplicate with the generic text of a
// hardened instance, and doctor still finds its record (by reading the
// sys_id back), makes no second one, and passes.
func TestDuplicateAnsweredGenerically(t *testing.T) {
	var refused atomic.Int32
	sim, base := newSim(t, setup{opts: snowsim.Options{Hardening: &snowsim.Hardening{GenericDuplicate: true}}, wrap: refusals(t, &refused)})
	sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 1, Table: "interaction", Method: http.MethodPost, Drop: true}})
	cfg, err := load(t, probeVars(base))
	rep := doctor.Run(context.Background(), cfg, err, nil)
	if !rep.OK {
		t.Fatalf("doctor failed:\n%s", printed(rep))
	}
	if refused.Load() != 1 {
		t.Fatalf("%d creates refused as duplicates, want the one retried after its lost reply", refused.Load())
	}
	if n := len(sim.Records("interaction")); n != 2 {
		t.Errorf("%d interactions, want doctor's 2", n)
	}
}

// withoutCSM makes interaction lack contact, account and consumer, as on an
// instance without Customer Service Management: writes to them are ignored
// and replies do not have them.
func withoutCSM() func(http.Handler) http.Handler {
	csm := func(m map[string]any) {
		for _, f := range []string{"contact", "account", "consumer"} {
			delete(m, f)
		}
	}
	onInteraction := func(r *http.Request) bool {
		return strings.HasPrefix(r.URL.Path, "/api/now/table/interaction") && !strings.HasPrefix(r.URL.Path, "/api/now/table/interaction_")
	}
	return chain(editBody(onInteraction, csm), editReply(onInteraction, csm))
}

// TestCSMFields: contact, account and consumer are checked where a caller
// source fills them or the fields exist; a source configured for an
// instance without the fields fails, naming the field.
func TestCSMFields(t *testing.T) {
	csmChecks := []string{"write interaction.contact", "write interaction.account", "write interaction.consumer"}
	t.Run("fields exist, no CSM source configured", func(t *testing.T) {
		_, base := simWith(t, "")
		cfg, err := load(t, probeVars(base))
		cfg.Callers.Sources = []config.Source{{Table: "sys_user", Fields: []string{"phone"}}}
		rep := doctor.Run(context.Background(), cfg, err, nil)
		for _, name := range csmChecks {
			if c, ok := checks(rep)[name]; !ok || !c.OK {
				t.Errorf("%s: %+v, want it checked and passed", name, c)
			}
		}
	})
	t.Run("no CSM, no CSM source", func(t *testing.T) {
		_, base := newSim(t, setup{wrap: withoutCSM()})
		cfg, err := load(t, probeVars(base))
		cfg.Callers.Sources = []config.Source{{Table: "sys_user", Fields: []string{"phone"}}}
		rep := doctor.Run(context.Background(), cfg, err, nil)
		if !rep.OK {
			t.Fatalf("doctor failed:\n%s", printed(rep))
		}
		for _, name := range csmChecks {
			if c, ok := checks(rep)[name]; ok {
				t.Errorf("%s reported although nothing writes it: %+v", name, c)
			}
		}
	})
	t.Run("no CSM, customer_contact source", func(t *testing.T) {
		_, base := newSim(t, setup{wrap: withoutCSM()})
		cfg, err := load(t, probeVars(base))
		cfg.Callers.Sources = []config.Source{{Table: "customer_contact", Fields: []string{"phone"}}}
		rep := doctor.Run(context.Background(), cfg, err, nil)
		for _, field := range []string{"contact", "account"} {
			c := checks(rep)["write interaction."+field]
			if c.OK || c.Skip || !strings.Contains(c.Detail, "field "+field+" does not exist on interaction") || !strings.Contains(c.Fix, "callers.sources") {
				t.Errorf("write interaction.%s: %+v, want a failure saying the field does not exist", field, c)
			}
		}
		if c, ok := checks(rep)["write interaction.consumer"]; ok {
			t.Errorf("consumer reported although nothing writes it: %+v", c)
		}
		if n := len(slices.DeleteFunc(slices.Clone(rep.Checks), func(c doctor.Check) bool { return c.OK })); n != 2 {
			t.Errorf("%d checks not passed, want the 2 fields:\n%s", n, printed(rep))
		}
	})
}

// TestCXoneCredentials: with CXone configured, doctor proves the access key
// and the agent lookup the cxone agent strategy needs, and names the fix
// when the key is wrong.
func TestCXoneCredentials(t *testing.T) {
	_, snURL := simWith(t, "")
	cx := httptest.NewServer(cxonesim.New(cxonesim.Options{}))
	t.Cleanup(cx.Close)
	for _, tc := range []struct {
		secret string
		ok     bool
		says   string
	}{
		{"cxonesim-secret", true, "agent 1001 is"},
		{"wrong-secret", false, "access key id and secret"},
	} {
		vars := probeVars(snURL)
		vars["CTIBRIDGE_CXONE_ACCESS_KEY_ID"], vars["CTIBRIDGE_CXONE_ACCESS_KEY_SECRET"], vars["CTIBRIDGE_CXONE_API"] = "cxonesim", tc.secret, cx.URL
		vars["CTIBRIDGE_CXONE_POLL"] = "2s"
		cfg, err := load(t, vars)
		rep := doctor.Run(context.Background(), cfg, err, nil)
		c, found := checks(rep)["CXone agent lookup"]
		if !found || c.OK != tc.ok || !strings.Contains(c.Detail+" "+c.Fix, tc.says) || rep.OK != tc.ok {
			t.Errorf("secret %s: %+v (report ok %v), want ok=%v saying %q", tc.secret, c, rep.OK, tc.ok, tc.says)
		}
		for _, name := range []string{"CXone real-time contacts", "CXone completed contacts"} {
			if c, found := checks(rep)[name]; !found || c.OK != tc.ok {
				t.Errorf("secret %s: %s %+v, want checked and ok=%v (cxone.poll is set)", tc.secret, name, c, tc.ok)
			}
		}
		if strings.Contains(printed(rep), tc.secret) {
			t.Errorf("the CXone secret is in doctor's output")
		}
	}
}

// TestBatchAPI: doctor says whether the instance serves the Batch API with
// a batch of one harmless read: available; not available, with the
// instance's answer and what the fallback costs, which fails nothing; or
// not used, when turned off.
func TestBatchAPI(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts snowsim.Options
		vars map[string]string
		want []string
	}{
		{"available", snowsim.Options{}, nil, []string{"available"}},
		{"refused", snowsim.Options{NoBatchAPI: true}, nil,
			[]string{"not available", "Requested URI does not represent any resource", "single requests", "up to 3 round trips instead of 1", "environments.default.batch: off"}},
		{"off", snowsim.Options{}, map[string]string{"CTIBRIDGE_SN_BATCH": "off"}, []string{"not used (environments.default.batch: off)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, url := newSim(t, setup{opts: tc.opts})
			vars := probeVars(url)
			for k, v := range tc.vars {
				vars[k] = v
			}
			cfg, err := load(t, vars)
			rep := doctor.Run(context.Background(), cfg, err, nil)
			c := checks(rep)["Batch API"]
			if !rep.OK || !c.OK {
				t.Fatalf("doctor failed:\n%s", printed(rep))
			}
			for _, w := range tc.want {
				if !strings.Contains(c.Detail, w) {
					t.Errorf("Batch API: %q does not say %q", c.Detail, w)
				}
			}
			if st := sim.Stats(); (st.Batches == 1) != (tc.name == "available") || st.ByTable["sys_user"]["GET"] == 0 {
				t.Errorf("%d batches; want one only where the instance serves them", st.Batches)
			}
		})
	}
}
