package doctor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

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
	d := snowsim.DefaultDataset()
	role := snowsim.Role{}
	for table, ops := range snowsim.BuiltinRoles()["cti_integration"] {
		role[table] = ops
	}
	if missing != "" {
		table, op, _ := strings.Cut(missing, ":")
		role[table] = strings.ReplaceAll(role[table], op, "")
	}
	d.Roles = map[string]snowsim.Role{"probe": role}
	d.Users = append(d.Users, snowsim.User{UserName: "probe", Password: "probe-pass", Roles: []string{"probe"}})
	sim := snowsim.New(snowsim.Options{Data: d})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
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
		})
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
