// Package doctor checks a real configuration before go-live: that the
// configuration is valid, the instance reachable, the credentials accepted, and
// that the integration user holds every right ctibridge needs — checked for
// real, with the least intrusive requests that prove each one.
//
// To prove create and update on interaction it creates two interactions,
// labelled as doctor tests, and closes them. It proves the field-level rights
// by writing and reading back the fields the bridge writes: assigned_to and
// opened_for hold the integration user's own user record; contact, account
// and consumer a random sys_id that names no record, so no real customer is
// linked to a test. To prove create on interaction_related_record it links one
// test interaction to the other, never to a real incident or case. It says
// all this in its output. It never deletes anything and never reads a
// customer's record: from each table it reads one sys_id, or the sys_ids of
// up to 100 rows when the first is hidden by ACLs. One such read of sys_user,
// sent as a batch, tells whether the instance serves the Batch API.
package doctor

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/cxone"

	"github.com/ctibridge/ctibridge/callerid"
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
	// ScreenPop is the screen-pop URL of doctor's test interaction, built
	// with the configured workspace as the bridge builds it for Studio.
	ScreenPop string `json:"screenPopUrl,omitempty"`
	Note      string `json:"note"`
}

// Failed is returned when a check failed; the command exits with status 1.
type Failed struct{ N int }

func (f Failed) Error() string { return fmt.Sprintf("%d check(s) failed", f.N) }
func (f Failed) ExitCode() int { return 1 }
func (r *Report) add(c Check)  { r.Checks = append(r.Checks, c) }

// failed counts the checks that failed; the ones skipped because of them
// are not counted again.
func (r *Report) failed() int {
	n := 0
	for _, c := range r.Checks {
		if !c.OK && !c.Skip {
			n++
		}
	}
	return n
}

// passed reports whether every check ran and passed.
func (r *Report) passed() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// testLabel marks doctor's test interactions.
const testLabel = "ctibridge doctor test — safe to delete"

// Note printed with every report: what the doctor wrote.
const writeNote = "To prove the create and update rights, doctor creates two interactions with short_description " +
	"\"" + testLabel + "\", closes them, and links one to the other (never to a real incident or case). " +
	"assigned_to and opened_for are set to the integration user's own user record; contact, account and consumer " +
	"to a random sys_id that names no record, so no real customer is linked to a test. It deletes nothing."

// Run performs the checks. cfgErr is the configuration's validation error, if any.
func Run(ctx context.Context, cfg *config.Config, cfgErr error, httpClient *http.Client) Report {
	r := Report{Note: writeNote}
	if cfgErr == nil {
		cfgErr = callerid.CheckRegion(cfg.Callers.Region)
	}
	if cfgErr != nil {
		r.add(Check{Name: "configuration is valid", Detail: cfgErr.Error(), Fix: "correct the keys named above"})
		return r
	}
	env := cfg.Selected()
	r.Env, r.Instance, r.Auth = cfg.Env, env.Instance, env.Auth.Method()
	r.add(Check{Name: "configuration is valid", OK: true, Detail: fmt.Sprintf("environment %s, %s auth", cfg.Env, env.Auth.Method())})

	if !reachable(ctx, &r, env.Instance, httpClient) {
		r.skip(append([]string{"authentication"}, rightChecks(cfg)...), "instance is not reachable")
		return r
	}
	hc, totals := counting(httpClient)
	sn, err := servicenow.New(clientConfig(env, hc))
	if err != nil {
		r.add(Check{Name: "ServiceNow client", Detail: err.Error()})
		return r
	}
	d := &doctor{r: &r, sn: sn, cfg: cfg, env: env, totals: totals}
	d.rights(ctx)
	if cfg.CXone.AccessKeyID != "" {
		checkCXone(ctx, &r, cfg, httpClient)
	}
	r.OK = r.passed()
	return r
}

// checkCXone proves the CXone access key and the Admin API's agent lookup
// the cxone agent strategy needs: it looks up one agent, the probe agent id
// (CXone agent ids are numbers; one that does not exist answers 404, which
// proves as much as one that does).
func checkCXone(ctx context.Context, r *Report, cfg *config.Config, hc *http.Client) {
	x := cfg.CXone
	c, err := cxone.New(cxone.Config{AccessKeyID: x.AccessKeyID, AccessKeySecret: x.AccessKeySecret, TenantID: x.TenantID,
		APIBase: x.APIBase, HTTPClient: hc, UserAgent: "ctibridge-doctor"})
	if err != nil {
		r.add(Check{Name: "CXone agent lookup", Detail: err.Error(), Fix: "set cxone.accessKeyId and its secret (CTIBRIDGE_CXONE_ACCESS_KEY_ID, CTIBRIDGE_CXONE_ACCESS_KEY_SECRET)"})
		return
	}
	a, err := c.Agent(ctx, probeAgentID)
	defer func() {
		if x.Poll > 0 {
			checkCXonePolling(ctx, r, c)
		}
	}()
	var ce *cxone.Error
	switch {
	case err == nil:
		r.add(Check{Name: "CXone agent lookup", OK: true, Detail: fmt.Sprintf("access key accepted; agent %s is %s (%s)", probeAgentID, a.UserName, a.EmailAddress)})
	case cxone.IsNotFound(err):
		r.add(Check{Name: "CXone agent lookup", OK: true, Detail: fmt.Sprintf("access key accepted; the Admin API answers agent lookups (no agent %s)", probeAgentID)})
	case errors.As(err, &ce) && (ce.Status == http.StatusUnauthorized || ce.Op == "token"):
		r.add(Check{Name: "CXone agent lookup", Detail: err.Error(),
			Fix: "check the access key id and secret (CXone: Admin > Employees > the API user > Access Keys) and cxone.tenantId / cxone.apiBase"})
	case errors.As(err, &ce) && ce.Status == http.StatusForbidden:
		r.add(Check{Name: "CXone agent lookup", Detail: err.Error(),
			Fix: "give the access key's user a security profile that may view agents (Admin: Employees, View)"})
	default:
		r.add(Check{Name: "CXone agent lookup", Detail: err.Error(), Fix: "check that the CXone API is reachable from here (cxone.apiBase, proxies, firewalls)"})
	}
}

// checkCXonePolling proves the rights the CXone source (cxone.poll) needs:
// the Real-Time Data API's active contacts and the Reporting API's
// completed contacts, each read once for the last few minutes.
func checkCXonePolling(ctx context.Context, r *Report, c *cxone.Client) {
	since := time.Now().Add(-5 * time.Minute)
	for _, api := range []struct {
		name, fix string
		read      func() error
	}{
		{"CXone real-time contacts", "give the access key's user a security profile with Real-Time Data (Reporting > Real-Time) view rights",
			func() error { _, err := c.ActiveContacts(ctx, since); return err }},
		{"CXone completed contacts", "give the access key's user a security profile with Reporting (Contact History / Completed Contacts) view rights",
			func() error { _, err := c.CompletedContacts(ctx, since); return err }},
	} {
		if err := api.read(); err != nil {
			r.add(Check{Name: api.name, Detail: err.Error(), Fix: api.fix})
			continue
		}
		r.add(Check{Name: api.name, OK: true, Detail: "readable (cxone.poll can follow calls)"})
	}
}

// probeAgentID is the CXone agent doctor looks up.
const probeAgentID = "1001"

// rightChecks are the checks that need an authenticated client, in order.
func rightChecks(cfg *config.Config) []string {
	names := []string{"Batch API", "read sys_user", "read incident", "read sn_customerservice_case",
		"create interaction", "screen pop", "update interaction",
		"write interaction.opened_for", "write interaction.assigned_to"}
	for _, f := range csmFields(cfg) {
		names = append(names, "write interaction."+f.field)
	}
	return append(names, "create interaction_related_record", "interaction fields and states")
}

func (r *Report) skip(names []string, why string) {
	for _, n := range names {
		r.add(Check{Name: n, Skip: true, Detail: "not checked: " + why})
	}
}

// skipFrom skips the checks from name on.
func (r *Report) skipFrom(cfg *config.Config, name, why string) {
	all := rightChecks(cfg)
	if i := slices.Index(all, name); i >= 0 {
		r.skip(all[i:], why)
	}
}

func clientConfig(env *config.Environment, hc *http.Client) servicenow.Config {
	// Two attempts: a create carries a sys_id chosen here, so one whose
	// reply was lost is found by reading it back, not made twice.
	return servicenow.Config{Instance: env.Instance, Auth: servicenow.NewAuth(env.Auth.Method(), env.Auth.Username, env.Auth.Password, env.Auth.ClientID, env.Auth.ClientSecret), Timeout: 15 * time.Second, HTTPClient: hc,
		MaxConcurrent: 2, Retry: servicenow.RetryPolicy{Attempts: 2}}
}

// totals remembers the X-Total-Count of the last list of each table. The
// count ignores ACLs, so a list that comes back empty while the count is
// positive means the rows exist and the user may not see them.
type totals struct {
	base http.RoundTripper
	mu   sync.Mutex
	last map[string]int
}

func (t *totals) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	table, list := strings.CutPrefix(req.URL.Path, "/api/now/table/")
	if err != nil || req.Method != http.MethodGet || !list || strings.Contains(table, "/") {
		return resp, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n, err := strconv.Atoi(resp.Header.Get("X-Total-Count")); err == nil {
		t.last[table] = n
	} else {
		delete(t.last, table)
	}
	return resp, nil
}

// total returns the X-Total-Count of the table's last list, if it had one.
func (t *totals) total(table string) (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.last[table]
	return n, ok
}

// counting returns a client for the ServiceNow client that keeps the
// instance's session cookie and records list totals.
func counting(hc *http.Client) (*http.Client, *totals) {
	c := &http.Client{}
	base := http.DefaultTransport
	if hc != nil {
		*c = *hc
		if hc.Transport != nil {
			base = hc.Transport
		}
	}
	t := &totals{base: base, last: map[string]int{}}
	c.Transport = t
	if c.Jar == nil {
		c.Jar, _ = cookiejar.New(nil)
	}
	return c, t
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

// authFix says what to look at when the instance refuses the credentials.
// Instances answer every OAuth failure alike (401, access_denied), so the
// fix names every cause.
func authFix(method string) string {
	switch method {
	case "oauth-client-credentials":
		return "check the OAuth client id and secret in System OAuth > Application Registry. The client_credentials grant is off " +
			"unless the system property glide.oauth.inbound.client.credential.grant_type.enabled is true, and it needs an " +
			"OAuth Application User set on the application registry entry (the user ctibridge then acts as: give it the " +
			"integration user's roles). ServiceNow answers each of these failures the same way (401 access_denied)"
	case "oauth-password":
		return "check the OAuth client id and secret in System OAuth > Application Registry, and the user's password"
	}
	return "check the user name and password"
}

// doctor holds one run's state.
type doctor struct {
	r      *Report
	sn     *servicenow.Client
	cfg    *config.Config
	env    *config.Environment
	totals *totals
}

// rights proves each right the integration guide lists.
func (d *doctor) rights(ctx context.Context) {
	r := d.r
	_, err := d.sn.List(ctx, "sys_user", servicenow.ListOptions{Fields: []string{"sys_id"}, Limit: 1, NoCount: true})
	switch st := status(err); {
	case err == nil || st == http.StatusForbidden:
		r.add(Check{Name: "authentication", OK: true, Detail: r.Auth + " accepted"})
	default:
		r.add(Check{Name: "authentication", Detail: err.Error(), Fix: authFix(r.Auth)})
		r.skip(rightChecks(d.cfg), "authentication failed")
		return
	}
	d.batch(ctx)
	d.read(ctx, "sys_user", "callers and agents cannot be found")
	d.read(ctx, "incident", "")
	d.read(ctx, "sn_customerservice_case", "")
	d.interactions(ctx)
}

// batch finds out whether the instance serves the Batch API, with a batch
// of one read of one sys_id of sys_user. Without it the bridge works, with
// more round trips: that is said, not failed.
func (d *doctor) batch(ctx context.Context) {
	key := "environments." + d.cfg.Env + ".batch"
	if d.env.Batch == "off" {
		d.r.add(Check{Name: "Batch API", OK: true, Detail: fmt.Sprintf("not used (%s: off): every request goes on its own", key)})
		return
	}
	more := fmt.Sprintf("a caller lookup takes up to %d round trips instead of 1 (one per caller source), and a call's related-record links one each instead of 1 for all",
		max(1, len(sources(d.cfg))))
	err := d.sn.CheckBatch(ctx)
	switch {
	case err == nil:
		d.r.add(Check{Name: "Batch API", OK: true, Detail: "available: requests that go together (a caller's lookups, a call's links) take one round trip"})
	case errors.Is(err, servicenow.ErrNoBatchAPI):
		why := err.Error()
		var se *servicenow.Error
		if errors.As(err, &se) {
			why = strings.TrimSpace(fmt.Sprintf("the instance answered %d %s", se.Status, se.Message))
		}
		d.r.add(Check{Name: "Batch API", OK: true, Detail: fmt.Sprintf(
			"not available (%s to POST /api/now/v1/batch): ctibridge falls back to single requests, so %s; it tries the Batch API again every hour. "+
				"Allow the integration user to use the Batch API for fewer round trips, or set %s: off", why, more, key)})
	default:
		d.r.add(Check{Name: "Batch API", Detail: fmt.Sprintf("could not tell whether the instance serves it: %v", err),
			Fix: "check that the instance is up and answering; without the Batch API the bridge works with more round trips (" + more + ")"})
	}
}

// read proves that the integration user can read table and see its rows.
// A table whose rows are all hidden by ACLs answers 200 with a positive
// X-Total-Count and no rows: that is a failure, not an empty table.
func (d *doctor) read(ctx context.Context, table, consequence string) {
	name := "read " + table
	if consequence == "" {
		consequence = "ctibridge degrades: related records from this table are not linked"
	}
	// A page that comes back empty while the instance counts rows is
	// ErrRowsHidden: here, no rows seen.
	list := func(limit int) ([]servicenow.Record, error) {
		recs, err := d.sn.List(ctx, table, servicenow.ListOptions{Fields: []string{"sys_id"}, Limit: limit})
		if errors.Is(err, servicenow.ErrRowsHidden) {
			return nil, nil
		}
		return recs, err
	}
	recs, err := list(1)
	if err != nil {
		c := Check{Name: name, Detail: err.Error(), Fix: rightFix(table, "read")}
		if table != "sys_user" {
			c.Detail += " (" + consequence + ")"
		}
		d.r.add(c)
		return
	}
	total, counted := d.totals.total(table)
	switch {
	case len(recs) > 0:
		d.r.add(Check{Name: name, OK: true})
		return
	case !counted:
		d.r.add(Check{Name: name, OK: true, Detail: "readable, no rows returned; the instance sent no X-Total-Count, " +
			"so an empty table cannot be told from one whose rows are all hidden by ACLs"})
		return
	case total == 0:
		d.r.add(Check{Name: name, OK: true, Detail: "readable; the table is empty"})
		return
	}
	// The first row is hidden: look further before saying all are.
	n := min(total, 100)
	if recs, err = list(n); err == nil && len(recs) > 0 {
		d.r.add(Check{Name: name, OK: true, Detail: fmt.Sprintf("readable; %d of the first %d rows visible, the others hidden by ACLs", len(recs), n)})
		return
	}
	detail := fmt.Sprintf("%s is readable but every row hidden by ACLs: the instance counts %d rows (X-Total-Count) and returns none to the integration user", table, total)
	if total > n {
		detail = fmt.Sprintf("%s is readable but every row hidden by ACLs: the instance counts %d rows (X-Total-Count) and none of the first %d is returned to the integration user", table, total, n)
	}
	d.r.add(Check{Name: name, Detail: detail + " (" + consequence + ")",
		Fix: fmt.Sprintf("a row-level read ACL on %s (one with a condition or script), or a query business rule, hides every row from the integration user: "+
			"grant its role an ACL on %s for read that lets it see the rows ctibridge needs", table, table)})
}

// newSysID returns a random sys_id.
func newSysID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// csmField is a CSM field of interaction that ctibridge writes when a caller
// source finds a customer there.
type csmField struct{ field, table, source string }

// csmFields lists the CSM fields the configured caller sources fill.
func csmFields(cfg *config.Config) []csmField {
	if cfg.Callers.Disabled {
		return nil
	}
	var out []csmField
	for _, f := range allCSMFields {
		for _, s := range sources(cfg) {
			if s == f.source {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

var allCSMFields = []csmField{
	{"contact", "customer_contact", "customer_contact"},
	{"account", "customer_account", "customer_contact"},
	{"consumer", "csm_consumer", "csm_consumer"},
}

func sources(cfg *config.Config) []string {
	var out []string
	for _, s := range cfg.Callers.Sources {
		out = append(out, s.Table)
	}
	if len(out) == 0 {
		for _, s := range callerid.DefaultSources() {
			out = append(out, s.Table)
		}
	}
	return out
}

// fieldWrite is one field-level right under test.
type fieldWrite struct {
	field, value, what string
	op                 string // create or write: the ACL operation
	replied            string // the value in the write's reply
	notWritten         string // why it was not written, if it was not
	missing            string // the field does not exist although configuration needs it
}

// workspaces names the screen-pop targets for people.
var workspaces = map[string]string{
	"csm": "CSM Configurable Workspace", "sow": "Service Operations Workspace",
	"agent": "Agent Workspace", "classic": "the classic UI",
}

// interactions proves create and update on interaction, the field-level
// rights, the screen pop, and create on interaction_related_record, with
// records doctor makes itself.
func (d *doctor) interactions(ctx context.Context) {
	r, st := d.r, d.cfg.Lifecycle.States
	if st == (ctibridge.States{}) {
		st = ctibridge.DefaultStates() // as the bridge does
	}
	var problems []string
	var wrapUp bool
	stateRead := func(state, got string) {
		// An active wrap-up configuration moves an answered interaction
		// closed as closed_complete to wrap_up; the instance closes it
		// when wrap-up ends. The close was accepted.
		if state == st.ClosedComplete && got == "wrap_up" {
			wrapUp = true
			return
		}
		if got != state {
			problems = append(problems, fmt.Sprintf("state %q not accepted (read back %q)", state, got))
		}
	}
	create := func(fields map[string]string) (servicenow.Record, string, error) {
		want := newSysID()
		// The whole record: which fields it has tells what the instance offers.
		rec, err := d.sn.Insert(ctx, "interaction", fields, servicenow.InsertOptions{SysID: want, WholeRecord: true})
		if errors.Is(err, servicenow.ErrSysIDIgnored) {
			err = nil
		}
		return rec, want, err
	}

	// The link target, created closed. Its creator tells who the
	// integration user is, whatever the authentication.
	target, _, err := create(map[string]string{"type": "phone", "direction": "inbound", "state": st.ClosedAbandoned,
		"short_description": testLabel + " (link target)"})
	if err != nil {
		r.add(Check{Name: "create interaction", Detail: err.Error(), Fix: rightFix("interaction", "create")})
		r.skipFrom(d.cfg, "screen pop", "no test interaction")
		return
	}
	stateRead(st.ClosedAbandoned, target.Get("state"))
	userName := target.Get("sys_created_by")
	if userName == "" {
		userName = d.env.Auth.Username
	}
	me, why := d.ownUser(ctx, userName)

	fields := map[string]string{"type": "phone", "direction": "inbound", "state": st.New,
		"caller_phone_number": "+18005550100", "short_description": testLabel}
	// The fields lifecycle.fieldMap writes must exist too: an instance
	// silently drops a field it does not have.
	for attr, field := range d.cfg.Lifecycle.FieldMap {
		if _, std := fields[field]; !std {
			fields[field] = "doctor-" + attr
		}
	}
	var writes []*fieldWrite
	own := "the integration user's own sys_user record, " + userName
	opened := &fieldWrite{field: "opened_for", value: me, what: own, op: "create", notWritten: why}
	writes = append(writes, opened)
	if me != "" {
		fields["opened_for"] = me
	}
	configured := csmFields(d.cfg)
	for _, f := range allCSMFields {
		_, exists := target[f.field]
		needed := slices.Contains(configured, f)
		switch {
		case exists:
			w := &fieldWrite{field: f.field, value: newSysID(), op: "create",
				what: "a random sys_id that names no " + f.table + ": no real customer is linked to a test"}
			fields[f.field] = w.value
			writes = append(writes, w)
		case needed:
			writes = append(writes, &fieldWrite{field: f.field, missing: fmt.Sprintf(
				"field %s does not exist on interaction: callers found in %s cannot be recorded", f.field, f.source)})
		}
	}
	rec, want, err := create(fields)
	if err != nil {
		r.add(Check{Name: "create interaction", Detail: err.Error(), Fix: rightFix("interaction", "create")})
		r.skipFrom(d.cfg, "screen pop", "no test interaction")
		return
	}
	id := rec.SysID()
	r.add(Check{Name: "create interaction", OK: true, Detail: fmt.Sprintf("test interactions %s and %s", rec.Get("number"), target.Get("number"))})
	for k, v := range fields {
		if slices.ContainsFunc(writes, func(w *fieldWrite) bool { return w.field == k }) {
			continue // reported on its own below
		}
		if got := rec.Get(k); got != v {
			if _, present := rec[k]; !present {
				problems = append(problems, fmt.Sprintf("field %s does not exist on interaction", k))
				continue
			}
			problems = append(problems, fmt.Sprintf("%s written %q, read back %q", k, v, got))
		}
	}
	for _, w := range writes {
		if w.notWritten == "" && w.missing == "" {
			w.replied = rec.Get(w.field)
		}
	}
	d.screenPop(rec, want)

	assigned := &fieldWrite{field: "assigned_to", value: me, what: own, op: "write", notWritten: why}
	writes = slices.Insert(writes, 1, assigned)
	updated := true
	for i, state := range []string{st.WorkInProgress, st.ClosedComplete} {
		patch := map[string]string{"state": state, "work_notes": "ctibridge doctor: checking state " + state}
		if i == 0 && me != "" {
			patch["assigned_to"] = me // as when an agent answers
		}
		back, err := d.sn.PatchOnce(ctx, "interaction", id, patch)
		if err != nil && i > 0 {
			// The first update passed, so the right is there: something
			// else refuses to close the interaction.
			r.add(Check{Name: "update interaction", Detail: fmt.Sprintf(
				"moving test interaction %s to %s passed, closing it as %s was refused: %v", rec.Get("number"), st.WorkInProgress, state, err),
				Fix: "the integration user may update interactions, so a data policy (fields mandatory on closed interactions, such as assigned_to) " +
					"or a business rule refuses the close: give ctibridge what it needs (see the field checks) or exempt its writes"})
			updated = false
			break
		}
		if err != nil {
			r.add(Check{Name: "update interaction", Detail: err.Error(), Fix: rightFix("interaction", "write")})
			updated = false
			if i == 0 && assigned.notWritten == "" {
				assigned.notWritten = "the update was refused"
			}
			break
		}
		stateRead(state, back.Get("state"))
		if i == 0 && me != "" {
			assigned.replied = back.Get("assigned_to")
		}
	}
	if updated {
		r.add(Check{Name: "update interaction", OK: true, Detail: "test interaction " + rec.Get("number") + " worked and closed"})
	}
	d.fieldRights(ctx, id, writes)

	link := map[string]string{"interaction": id, "document_table": "interaction", "document_id": target.SysID(),
		"task": target.SysID(), "type": "task"}
	_, err = d.sn.Insert(ctx, "interaction_related_record", link, servicenow.InsertOptions{SysID: newSysID()})
	switch {
	case err == nil || errors.Is(err, servicenow.ErrUnconfirmed) || errors.Is(err, servicenow.ErrSysIDIgnored):
		r.add(Check{Name: "create interaction_related_record", OK: true, Detail: fmt.Sprintf(
			"linked test interaction %s to the other test interaction %s (document_table interaction), not to a real incident or case",
			rec.Get("number"), target.Get("number"))})
	default:
		r.add(Check{Name: "create interaction_related_record", Detail: err.Error(), Fix: rightFix("interaction_related_record", "create")})
	}
	slices.Sort(problems)
	if len(problems) > 0 {
		r.add(Check{Name: "interaction fields and states", Detail: strings.Join(problems, "; "),
			Fix: "set lifecycle.states to this instance's interaction state values; create the missing fields on interaction or correct lifecycle.fieldMap; the interaction table comes with plugin com.glide.interaction"})
	} else {
		c := Check{Name: "interaction fields and states", OK: true, Detail: "every field and state written was read back"}
		if wrapUp {
			c.Detail = fmt.Sprintf("every field and state written was read back, but closing as %s moved the test interaction to wrap_up: "+
				"a wrap-up configuration is active, and the instance closes answered interactions when wrap-up ends", st.ClosedComplete)
		}
		r.add(c)
	}
}

// ownUser finds the integration user's sys_user record, the one value doctor
// writes into user references: it points at no one else.
func (d *doctor) ownUser(ctx context.Context, userName string) (sysID, why string) {
	if userName == "" {
		return "", "doctor could not tell which user it runs as"
	}
	q, err := servicenow.Query().Eq("user_name", userName).Encode()
	if err != nil {
		return "", err.Error()
	}
	recs, err := d.sn.List(ctx, "sys_user", servicenow.ListOptions{Query: q, Fields: []string{"sys_id"}, Limit: 1, NoCount: true})
	switch {
	case err != nil:
		return "", fmt.Sprintf("the integration user's own sys_user record (%s) could not be read (%v), and doctor writes no other user into its test records", userName, err)
	case len(recs) == 0 || recs[0].SysID() == "":
		return "", fmt.Sprintf("the integration user's own sys_user record (%s) is not visible to it, and doctor writes no other user into its test records", userName)
	}
	return recs[0].SysID(), ""
}

// screenPop reports the URL an agent's browser would open for the test
// interaction, and whether the instance kept the sys_id chosen before the
// create: the bridge hands Studio the URL before ServiceNow is called.
func (d *doctor) screenPop(rec servicenow.Record, want string) {
	pop, err := ctibridge.NewScreenPop(d.env.Instance, d.env.Workspace)
	if err != nil {
		d.r.add(Check{Name: "screen pop", Detail: err.Error(), Fix: "correct the workspace of this environment"})
		return
	}
	id := rec.SysID()
	d.r.ScreenPop = pop.URL(id)
	ws := d.env.Workspace
	if ws == "" {
		ws = ctibridge.DefaultWorkspace
	}
	where := workspaces[ws]
	if where == "" {
		where = "the configured workspace template"
	}
	if id != want {
		d.r.add(Check{Name: "screen pop", Detail: fmt.Sprintf(
			"the instance gave the test interaction sys_id %s instead of %s, the one ctibridge chose: the screen-pop URL ctibridge hands Studio "+
				"before the interaction exists would open nothing (the test interaction itself is at %s)", id, want, d.r.ScreenPop),
			Fix: "find what assigns its own sys_id to new interactions (a business rule on interaction, or an import or before-insert script) " +
				"and let inserts from the integration user keep the sys_id they send"})
		return
	}
	d.r.add(Check{Name: "screen pop", OK: true, Detail: fmt.Sprintf(
		"open %s: test interaction %s should open in %s (workspace %s), as agents' screen pops will", d.r.ScreenPop, rec.Get("number"), where, ws)})
}

// fieldRights reads the test interaction back and reports each field-level
// right: a value the instance dropped or rewrote while answering 2xx (a
// field-level ACL or a business rule) is a failure naming what was written
// and what was stored.
func (d *doctor) fieldRights(ctx context.Context, id string, writes []*fieldWrite) {
	back, err := d.sn.Get(ctx, "interaction", id)
	if err != nil {
		back = nil // judged by the writes' replies alone
	}
	for _, w := range writes {
		name := "write interaction." + w.field
		switch {
		case w.missing != "":
			d.r.add(Check{Name: name, Detail: w.missing,
				Fix: "activate Customer Service Management on the instance (it adds contact, account and consumer to interaction), or remove the source from callers.sources"})
			continue
		case w.notWritten != "":
			d.r.add(Check{Name: name, Skip: true, Detail: "not checked: " + w.notWritten})
			continue
		}
		got, source := w.replied, "the write's reply"
		if back != nil {
			got, source = back.Get(w.field), "the record"
		}
		if got == w.value && w.replied == w.value {
			d.r.add(Check{Name: name, OK: true, Detail: fmt.Sprintf("wrote %s (%s) %s and read it back", w.field, w.what, when(w.op))})
			continue
		}
		held := fmt.Sprintf("%s holds %q", source, got)
		if got == "" {
			held = source + " holds nothing (the value was dropped)"
		}
		detail := fmt.Sprintf("wrote %s = %q (%s) %s; the instance answered 2xx, but %s", w.field, w.value, w.what, when(w.op), held)
		if back != nil && w.replied != got {
			detail += fmt.Sprintf("; the write's reply showed %q", w.replied)
		}
		if strings.HasPrefix(w.what, "a random sys_id") {
			detail += "; if no ACL or business rule explains it, the instance may refuse references to records that do not exist: set the field once by hand on a test record to confirm"
		}
		d.r.add(Check{Name: name, Detail: detail, Fix: fmt.Sprintf(
			"grant the integration user's role the field-level ACL interaction.%s for %s (System Security > Access Control (ACL), "+
				"type record, operation %s, name Interaction . %s); if an ACL already allows it, a business rule on interaction changes %s: "+
				"let it leave ctibridge's value alone", w.field, w.op, w.op, w.field, w.field)})
	}
}

// when says when a field was written, by its ACL operation.
func when(op string) string {
	if op == "create" {
		return "when creating the test interaction"
	}
	return "in an update"
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
		return Failed{max(1, rep.failed())}
	}
	return nil
}
