// Package doctor checks a real configuration before go-live: that the
// configuration is valid, the instance reachable, the credentials accepted, and
// that the integration user holds every right ctibridge needs — checked for
// real, with the least intrusive requests that prove each one.
//
// To prove create and update on interaction it creates two interactions,
// labelled as doctor tests, and closes them; to prove create on
// interaction_related_record it links one of them. It says so in its output.
// It never deletes anything and never reads more than one record per table.
package doctor

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ctibridge/ctibridge/config"
	"github.com/ctibridge/ctibridge/servicenow"
)

// Check is one line of the checklist.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"`
	Skip   bool   `json:"skipped,omitempty"` // not run because an earlier check failed
}

// Report is the whole checklist.
type Report struct {
	Env      string  `json:"env"`
	Instance string  `json:"instance"`
	Auth     string  `json:"auth"`
	Checks   []Check `json:"checks"`
	OK       bool    `json:"ok"`
	Note     string  `json:"note"`
}

// Failed is returned when a check failed; the command exits with status 1.
type Failed struct{ N int }

func (f Failed) Error() string { return fmt.Sprintf("%d check(s) failed", f.N) }
func (f Failed) ExitCode() int { return 1 }
func (r *Report) add(c Check)  { r.Checks = append(r.Checks, c) }
func (r *Report) failed() int {
	n := 0
	for _, c := range r.Checks {
		if !c.OK {
			n++
		}
	}
	return n
}

// Note printed with every report: what the doctor wrote.
const writeNote = "To prove the create and update rights, doctor creates two interactions with short_description " +
	"\"ctibridge doctor test — safe to delete\" and closes them, and links one to an incident or case (or to itself). " +
	"It deletes nothing."

// Run performs the checks. cfgErr is the configuration's validation error, if any.
func Run(ctx context.Context, cfg *config.Config, cfgErr error, httpClient *http.Client) Report {
	r := Report{Note: writeNote}
	if cfgErr != nil {
		r.add(Check{Name: "configuration is valid", Detail: cfgErr.Error(), Fix: "correct the keys named above"})
		return r
	}
	env := cfg.Selected()
	r.Env, r.Instance, r.Auth = cfg.Env, env.Instance, env.Auth.Method()
	r.add(Check{Name: "configuration is valid", OK: true, Detail: fmt.Sprintf("environment %s, %s auth", cfg.Env, env.Auth.Method())})

	if !reachable(ctx, &r, env.Instance, httpClient) {
		r.skip(append([]string{"authentication"}, rightChecks...), "instance is not reachable")
		return r
	}
	sn, err := servicenow.New(clientConfig(env, httpClient))
	if err != nil {
		r.add(Check{Name: "ServiceNow client", Detail: err.Error()})
		return r
	}
	rights(ctx, &r, sn, cfg)
	r.OK = r.failed() == 0
	return r
}

// rightChecks are the checks that need an authenticated client.
var rightChecks = []string{"read sys_user", "read incident", "read sn_customerservice_case",
	"create interaction", "update interaction", "create interaction_related_record", "interaction fields and states"}

func (r *Report) skip(names []string, why string) {
	for _, n := range names {
		r.add(Check{Name: n, Skip: true, Detail: "not checked: " + why})
	}
}

func clientConfig(env *config.Environment, hc *http.Client) servicenow.Config {
	return servicenow.Config{Instance: env.Instance, Auth: env.Auth.Client(), Timeout: 15 * time.Second, HTTPClient: hc,
		MaxConcurrent: 2, Retry: servicenow.RetryPolicy{Attempts: 1}}
}

// reachable checks DNS, TLS and HTTP in turn, each with its own fix.
func reachable(ctx context.Context, r *Report, instance string, hc *http.Client) bool {
	u, _ := url.Parse(instance)
	host := u.Hostname()
	if ip := net.ParseIP(host); ip == nil {
		if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
			r.add(Check{Name: "instance name resolves (DNS)", Detail: err.Error(), Fix: "check the instance URL and this machine's DNS"})
			return false
		}
	}
	r.add(Check{Name: "instance name resolves (DNS)", OK: true, Detail: host})
	if u.Scheme == "https" {
		port := u.Port()
		if port == "" {
			port = "443"
		}
		d := tls.Dialer{Config: &tls.Config{ServerName: host}, NetDialer: &net.Dialer{Timeout: 10 * time.Second}}
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
		if err != nil {
			r.add(Check{Name: "TLS connection", Detail: err.Error(), Fix: "check firewalls and proxies between this machine and the instance, and that the certificate is trusted"})
			return false
		}
		conn.Close()
		r.add(Check{Name: "TLS connection", OK: true})
	}
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(instance, "/")+"/api/now/table/sys_user?sysparm_limit=1", nil)
	resp, err := hc.Do(req)
	if err != nil {
		r.add(Check{Name: "Table API answers (HTTP)", Detail: err.Error(), Fix: "check the instance URL, proxies and firewalls"})
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusOK {
		r.add(Check{Name: "Table API answers (HTTP)", Detail: fmt.Sprintf("unauthenticated probe got HTTP %d, want 401", resp.StatusCode),
			Fix: "the URL may point at something other than a ServiceNow instance, or the instance is down or hibernating"})
		return false
	}
	r.add(Check{Name: "Table API answers (HTTP)", OK: true, Detail: fmt.Sprintf("HTTP %d without credentials, as expected", resp.StatusCode)})
	return true
}

func status(err error) int {
	var se *servicenow.Error
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

func rightFix(table, op string) string {
	return fmt.Sprintf("grant the integration user a role with %s access to %s (an ACL on %s.None for %s)", op, table, table, op)
}

// rights proves each right the integration guide lists.
func rights(ctx context.Context, r *Report, sn *servicenow.Client, cfg *config.Config) {
	_, err := sn.List(ctx, "sys_user", servicenow.ListOptions{Fields: []string{"sys_id"}, Limit: 1, NoCount: true})
	switch st := status(err); {
	case err == nil || st == http.StatusForbidden:
		r.add(Check{Name: "authentication", OK: true, Detail: r.Auth + " accepted"})
	default:
		fix := "check the user name and password"
		if strings.HasPrefix(r.Auth, "oauth") {
			fix = "check the OAuth client id and secret in System OAuth > Application Registry, and the user's password"
		}
		r.add(Check{Name: "authentication", Detail: err.Error(), Fix: fix})
		r.skip(rightChecks, "authentication failed")
		return
	}
	readCheck := func(table string, required bool) string {
		recs, err := sn.List(ctx, table, servicenow.ListOptions{Fields: []string{"sys_id"}, Limit: 1, NoCount: true})
		name := "read " + table
		if err != nil {
			c := Check{Name: name, Detail: err.Error(), Fix: rightFix(table, "read")}
			if !required {
				c.Detail += " (ctibridge degrades: related records from this table are not linked)"
			}
			r.add(c)
			return ""
		}
		r.add(Check{Name: name, OK: true})
		if len(recs) > 0 {
			return recs[0].SysID()
		}
		return ""
	}
	readCheck("sys_user", true)
	incident := readCheck("incident", false)
	caseID := readCheck("sn_customerservice_case", false)

	st := cfg.Lifecycle.States
	fields := map[string]string{"type": "phone", "direction": "inbound", "state": st.New,
		"caller_phone_number": "+18005550100", "short_description": "ctibridge doctor test — safe to delete"}
	// The fields lifecycle.fieldMap writes must exist too: an instance
	// silently drops a field it does not have.
	for attr, field := range cfg.Lifecycle.FieldMap {
		if _, std := fields[field]; !std {
			fields[field] = "doctor-" + attr
		}
	}
	rec, err := sn.Insert(ctx, "interaction", fields, servicenow.InsertOptions{})
	if err != nil {
		r.add(Check{Name: "create interaction", Detail: err.Error(), Fix: rightFix("interaction", "create")})
		r.skip(rightChecks[4:], "no test interaction")
		return
	}
	id := rec.SysID()
	r.add(Check{Name: "create interaction", OK: true, Detail: "test interaction " + rec.Get("number")})
	var problems []string
	for k, v := range fields {
		if got := rec.Get(k); got != v {
			if _, present := rec[k]; !present {
				problems = append(problems, fmt.Sprintf("field %s does not exist on interaction", k))
				continue
			}
			problems = append(problems, fmt.Sprintf("%s written %q, read back %q", k, v, got))
		}
	}
	slices.Sort(problems)
	updated := true
	for _, state := range []string{st.WorkInProgress, st.ClosedComplete} {
		back, err := sn.Patch(ctx, "interaction", id, map[string]string{"state": state, "work_notes": "ctibridge doctor: checking state " + state})
		if err != nil {
			r.add(Check{Name: "update interaction", Detail: err.Error(), Fix: rightFix("interaction", "write")})
			updated = false
			break
		}
		if got := back.Get("state"); got != state {
			problems = append(problems, fmt.Sprintf("state %q not accepted (read back %q)", state, got))
		}
	}
	if updated {
		r.add(Check{Name: "update interaction", OK: true, Detail: "test interaction closed"})
		if rec2, err := sn.Insert(ctx, "interaction", map[string]string{"type": "phone", "state": st.ClosedAbandoned,
			"short_description": "ctibridge doctor test — safe to delete"}, servicenow.InsertOptions{}); err == nil {
			if got := rec2.Get("state"); got != st.ClosedAbandoned {
				problems = append(problems, fmt.Sprintf("state %q not accepted (read back %q)", st.ClosedAbandoned, got))
			}
		}
	}
	docTable, docID := "incident", incident
	if docID == "" {
		docTable, docID = "sn_customerservice_case", caseID
	}
	if docID == "" {
		docTable, docID = "interaction", id
	}
	if _, err := sn.Insert(ctx, "interaction_related_record", map[string]string{"interaction": id, "document_table": docTable,
		"document_id": docID, "type": "task"}, servicenow.InsertOptions{}); err != nil {
		r.add(Check{Name: "create interaction_related_record", Detail: err.Error(), Fix: rightFix("interaction_related_record", "create")})
	} else {
		r.add(Check{Name: "create interaction_related_record", OK: true})
	}
	if len(problems) > 0 {
		r.add(Check{Name: "interaction fields and states", Detail: strings.Join(problems, "; "),
			Fix: "set lifecycle.states to this instance's interaction state values; create the missing fields on interaction or correct lifecycle.fieldMap; the interaction table comes with plugin com.glide.interaction"})
	} else {
		r.add(Check{Name: "interaction fields and states", OK: true, Detail: "every field and state written was read back"})
	}
}

// Print writes the checklist for people.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "ctibridge doctor — environment %s, instance %s, %s auth\n\n", r.Env, r.Instance, r.Auth)
	for _, c := range r.Checks {
		mark := "ok  "
		switch {
		case c.Skip:
			mark = "--  "
		case !c.OK:
			mark = "FAIL"
		}
		fmt.Fprintf(w, "[%s] %s", mark, c.Name)
		if c.Detail != "" {
			fmt.Fprintf(w, ": %s", c.Detail)
		}
		fmt.Fprintln(w)
		if !c.OK && !c.Skip && c.Fix != "" {
			fmt.Fprintf(w, "       fix: %s\n", c.Fix)
		}
	}
	fmt.Fprintf(w, "\n%s\n", r.Note)
	if r.OK {
		fmt.Fprintln(w, "\nAll checks passed.")
	}
}

// Main is the `ctibridge doctor` command.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", os.Getenv("CTIBRIDGE_CONFIG"), "YAML configuration file (or CTIBRIDGE_CONFIG)")
	envName := fs.String("env", "", "environment to check (overrides env / CTIBRIDGE_ENV)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	getenv := func(k string) string {
		if k == "CTIBRIDGE_ENV" && *envName != "" {
			return *envName
		}
		return os.Getenv(k)
	}
	cfg, cfgErr := config.Load(*path, getenv)
	if cfgErr != nil && cfg == nil {
		cfg = &config.Config{}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rep := Run(ctx, cfg, cfgErr, nil)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		rep.Print(stdout)
	}
	if !rep.OK {
		return Failed{rep.failed()}
	}
	return nil
}
