package bridge_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge"

	"github.com/ctibridge/ctibridge/config"
	"github.com/ctibridge/ctibridge/snowsim"
)

func (e *env) adminErrors(query string) []map[string]any {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+"/admin/errors?"+query, nil)
	req.SetBasicAuth("admin", "console-pass")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Errors []map[string]any }
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil {
		e.t.Fatalf("GET /admin/errors: %d", resp.StatusCode)
	}
	return out.Errors
}

func (e *env) related(sysID string) []string {
	var out []string
	for _, r := range e.sim.Records("interaction_related_record") {
		if r["interaction"] == sysID {
			out = append(out, r["document_table"]+":"+r["document_id"]+":"+r["type"])
		}
	}
	sort.Strings(out)
	return out
}

func TestCallerOnTheFirstWriteWithRelatedRecords(t *testing.T) {
	e := setup(t)
	r := e.post("7001", "queued", map[string]any{"ani": "801.320.3420", "skillName": "Support"})
	e.waitSynced(10*time.Second, "7001")
	rec := e.interaction(r.InteractionSysID)
	alice := e.userID("alice.caller")
	if rec["opened_for"] != alice || rec["caller_phone_number"] != "+18013203420" {
		t.Errorf("opened_for %q number %q, want Alice and E.164", rec["opened_for"], rec["caller_phone_number"])
	}
	if rec["sys_mod_count"] != "0" {
		t.Errorf("sys_mod_count %s: the caller must be on the create, not patched in later", rec["sys_mod_count"])
	}
	rel := e.related(r.InteractionSysID)
	if len(rel) != 2 || !strings.HasPrefix(rel[0], "incident:") || !strings.HasSuffix(rel[0], ":task") {
		t.Errorf("related records %v, want Alice's 2 open incidents as tasks", rel)
	}
	if s := e.status("7001"); s.CallerName != "Alice Caller" || s.CallerMatch != "user" {
		t.Errorf("status caller %q match %q", s.CallerName, s.CallerMatch)
	}
}

func TestRelatedRecordsOnceUnderRetries(t *testing.T) {
	e := setup(t)
	// The first link is created but its reply is lost; then the instance
	// fails a while, more than the client's own retries absorb.
	e.sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 1, Drop: true, Table: "interaction_related_record", Method: "POST"}})
	r := e.post("7002", "queued", map[string]any{"ani": "8013203420"})
	for deadline := time.Now().Add(30 * time.Second); e.sim.Faults().FailNext != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first link was never attempted")
		}
	}
	e.sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 4, Status: 503, Table: "interaction_related_record"}})
	e.post("7002", "answered", map[string]any{"agentUserName": "jdoe"})
	e.waitSynced(20*time.Second, "7002")
	if rel := e.related(r.InteractionSysID); len(rel) != 2 || rel[0] == rel[1] {
		t.Errorf("related records %v, want exactly Alice's 2 open incidents once each", rel)
	}
}

func TestUnmappedAgentWarnsOncePerAgent(t *testing.T) {
	e := setup(t)
	var ids []string
	for i := range 3 {
		id := fmt.Sprint(7100 + i)
		ids = append(ids, id)
		e.post(id, "queued", map[string]any{"ani": "+1 312 555 0100"})
		e.post(id, "answered", map[string]any{"agentId": "4242", "agentUserName": "temp.agent"})
	}
	e.waitSynced(10*time.Second, ids...)
	for _, id := range ids {
		s := e.status(id)
		rec := e.interaction(s.InteractionSysID)
		if rec["state"] != "work_in_progress" || rec["assigned_to"] != "" {
			t.Errorf("%s: state %q assigned_to %q, want work_in_progress, unassigned", id, rec["state"], rec["assigned_to"])
		}
		if n := e.notes(s.InteractionSysID); !strings.Contains(n, "temp.agent") || !strings.Contains(n, "no ServiceNow user") {
			t.Errorf("%s: work notes %q should name the unmapped agent", id, n)
		}
	}
	warns := e.adminErrors("severity=warning")
	if len(warns) != 1 || !strings.Contains(warns[0]["message"].(string), "temp.agent") {
		t.Errorf("warnings %v, want exactly one naming the agent", warns)
	}
}

func TestFieldMapping(t *testing.T) {
	e := setup(t, func(c *config.Config) {
		c.Lifecycle.FieldMap = map[string]string{"skillName": "u_skill", "customerTier": "u_dnis"}
	})
	r := e.post("7201", "queued", map[string]any{"ani": "+1 312 555 0100", "skillName": "Billing", "customerTier": "gold"})
	e.waitSynced(10*time.Second, "7201")
	rec := e.interaction(r.InteractionSysID)
	if rec["u_skill"] != "Billing" || rec["u_dnis"] != "gold" {
		t.Errorf("mapped fields u_skill %q u_dnis %q", rec["u_skill"], rec["u_dnis"])
	}
	e.post("7201", "answered", map[string]any{"agentUserName": "jdoe", "skillName": "Billing-2"})
	e.waitSynced(10*time.Second, "7201")
	if rec := e.interaction(r.InteractionSysID); rec["u_skill"] != "Billing-2" {
		t.Errorf("mapping on update: u_skill %q", rec["u_skill"])
	}
}

func TestCaseTableForbiddenDegrades(t *testing.T) {
	e := setup(t)
	role := snowsim.BuiltinRoles()["cti_integration"]
	delete(role, "sn_customerservice_case")
	e.sim.PutRole("cti_integration", role)
	var ids []string
	for i, ani := range []string{"8015550123", "+18015550177", "801.555.0123"} {
		id := fmt.Sprint(7300 + i)
		ids = append(ids, id)
		e.post(id, "queued", map[string]any{"ani": ani})
	}
	e.waitSynced(10*time.Second, ids...)
	carla := e.interaction(e.status("7300").InteractionSysID)
	if carla["contact"] == "" || carla["account"] == "" {
		t.Errorf("Carla not identified: %v", carla)
	}
	if rel := e.related(carla["sys_id"]); len(rel) != 0 {
		t.Errorf("related %v from an unreadable table", rel)
	}
	warns := e.adminErrors("severity=warning")
	if len(warns) != 1 || !strings.Contains(warns[0]["message"].(string), "sn_customerservice_case") {
		t.Errorf("warnings %v, want one about the case table", warns)
	}
	if errs := e.adminErrors("severity=error"); len(errs) != 0 {
		t.Errorf("errors %v: a missing right on cases must not fail calls", errs)
	}
}

// TestRequestsPerCall measures, per call on each path, the HTTP round trips
// to ServiceNow and the requests ServiceNow counts (a batch counts each
// request it carries), with the Batch API and on an instance that refuses
// it.
func TestRequestsPerCall(t *testing.T) {
	type cost struct{ trips, requests int64 }
	paths := []struct {
		name   string
		ani    string
		events []string
		// batched, then without the Batch API. Caller lookups stop at the
		// first source that matches only without it; with it, the three
		// sources go in one batch, as do the two links. Agents are cached,
		// the create carries caller and state, each later event costs one
		// PATCH, and a number no one has is remembered.
		batched, single cost
	}{
		{"known caller (user), 2 open incidents, answered, released", "8013203420", []string{"answered", "released"}, cost{7, 10}, cost{8, 8}},
		{"same caller again (cache hit)", "(801) 320-3420", []string{"answered", "released"}, cost{4, 5}, cost{5, 5}},
		{"unknown caller, answered, released", "+1 312 555 0199", []string{"answered", "released"}, cost{4, 6}, cost{6, 6}},
		{"same unknown caller again (remembered as unknown)", "312-555-0199", []string{"answered", "released"}, cost{3, 3}, cost{3, 3}},
		{"withheld number, abandoned", "anonymous", []string{"released"}, cost{2, 2}, cost{2, 2}},
	}
	for _, mode := range []struct {
		name string
		sim  snowsim.Options
	}{{"Batch API", snowsim.Options{}}, {"no Batch API", snowsim.Options{NoBatchAPI: true}}} {
		t.Run(mode.name, func(t *testing.T) {
			e := setupWith(t, snowsim.New(mode.sim))
			report := []string{fmt.Sprintf("%-60s %11s %8s", "path", "round trips", "requests")}
			for i, p := range paths {
				before := e.sim.Stats()
				id := fmt.Sprint(7400 + i)
				e.post(id, "queued", map[string]any{"ani": p.ani})
				e.waitSynced(10*time.Second, id)
				for _, k := range p.events {
					body := map[string]any{}
					if k == "answered" {
						body["agentUserName"] = "jdoe"
					}
					e.post(id, k, body)
					e.waitSynced(10*time.Second, id)
				}
				after := e.sim.Stats()
				got := cost{after.HTTPRequests - before.HTTPRequests, after.Total - before.Total}
				report = append(report, fmt.Sprintf("%-60s %11d %8d", p.name, got.trips, got.requests))
				want := p.batched
				if mode.sim.NoBatchAPI {
					want = p.single
					if i == 0 {
						want.trips++ // the batch the instance refused; tried again an hour later
					}
				}
				if got != want {
					t.Errorf("%s: %d round trips, %d requests; want %d, %d", p.name, got.trips, got.requests, want.trips, want.requests)
				}
			}
			t.Logf("ServiceNow per call, %s:\n%s", mode.name, strings.Join(report, "\n"))
			var batchWarnings []string
			for _, w := range e.adminErrors("severity=warning") {
				if msg, _ := w["message"].(string); strings.Contains(msg, "Batch API") {
					batchWarnings = append(batchWarnings, msg)
				}
			}
			_, metrics := e.do("GET", "/metrics", "", nil)
			batches := strings.Contains(string(metrics), `ctibridge_servicenow_request_duration_seconds_count{method="POST",status="200",table="batch"}`)
			if mode.sim.NoBatchAPI && (len(batchWarnings) != 1 || batches) {
				t.Errorf("without the Batch API: warnings %q, batches in the metrics %v; want one warning, no batch", batchWarnings, batches)
			}
			if !mode.sim.NoBatchAPI && (len(batchWarnings) != 0 || !batches) {
				t.Errorf("with the Batch API: warnings %q, batches in the metrics %v; want no warning, batches", batchWarnings, batches)
			}
		})
	}
}

// TestOperationalEndpoints: /healthz, /readyz and /metrics answer without a
// key, reveal no call data or secret, and the metrics the deploy files use
// exist.
func TestOperationalEndpoints(t *testing.T) {
	e := setup(t)
	e.post("7501", "queued", map[string]any{"ani": "8013203420"})
	e.waitSynced(10*time.Second, "7501")
	code, out := e.do("GET", "/healthz", "", nil)
	if code != 200 {
		t.Errorf("healthz %d", code)
	}
	code, out = e.do("GET", "/readyz", "", nil)
	var ready struct {
		Ready  bool
		Checks map[string]struct {
			OK     bool
			Detail string
		}
	}
	if code != 200 || json.Unmarshal(out, &ready) != nil || !ready.Ready || !ready.Checks["store"].OK || !ready.Checks["servicenow"].OK {
		t.Errorf("readyz %d %s", code, out)
	}
	code, out = e.do("GET", "/metrics", "", nil)
	metrics := string(out)
	if code != 200 {
		t.Fatalf("metrics %d", code)
	}
	for _, leak := range []string{"7501", apiKey, "console-pass", "8013203420", "Alice"} {
		if strings.Contains(metrics, leak) {
			t.Errorf("/metrics reveals %q", leak)
		}
	}
	names := regexp.MustCompile(`ctibridge_[a-z_0-9]+`)
	for _, f := range []string{"../deploy/alerts.yaml", "../deploy/grafana-dashboard.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names.FindAllString(string(b), -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count")
			if !strings.Contains(metrics, "# TYPE "+base+" ") {
				t.Errorf("%s uses %s, which the bridge does not export", f, n)
			}
		}
	}
	for _, want := range []string{`ctibridge_intake_request_duration_seconds_count{endpoint="queued",status="200"} 1`,
		`ctibridge_servicenow_request_duration_seconds_count{method="POST",status="201",table="interaction"} 1`,
		`ctibridge_jobs{state="pending"} 0`, `ctibridge_events_total{kind="queued",result="accepted"} 1`, `ctibridge_cache_lookups_total{cache="callers",result="miss"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The event's commit, at least, is timed.
	if m := regexp.MustCompile(`(?m)^ctibridge_store_commit_duration_seconds_count (\d+)$`).FindStringSubmatch(metrics); m == nil || m[1] == "0" {
		t.Errorf("/metrics times no commit of the store: %q", m)
	}
}

// TestInstanceIgnoringSysID: the interaction is still created and followed
// under the instance's own sys_id, and the operator is warned once.
func TestInstanceIgnoringSysID(t *testing.T) {
	sim := snowsim.New(snowsim.Options{IgnoreClientSysID: true})
	e := setupWith(t, sim)
	for _, id := range []string{"7601", "7602"} {
		e.post(id, "queued", map[string]any{"ani": "+1 312 555 0100"})
		e.post(id, "answered", map[string]any{"agentUserName": "jdoe"})
	}
	e.waitSynced(10*time.Second, "7601", "7602")
	st := e.status("7601")
	rec := e.interaction(st.InteractionSysID)
	if rec["state"] != "work_in_progress" || st.InteractionSysID == ctibridge.SysID("ctibridge", "7601") {
		t.Errorf("status %+v, record %v", st, rec)
	}
	if n := len(e.sim.Records("interaction")); n != 2 {
		t.Errorf("%d interactions, want 2", n)
	}
	warns := e.adminErrors("severity=warning")
	if len(warns) != 1 || !strings.Contains(warns[0]["message"].(string), "sys_id of its own") {
		t.Errorf("warnings %v, want one about the ignored sys_id", warns)
	}
}

// TestThrottledByServiceNow: a run of 429s with Retry-After makes the whole
// bridge back off, then every call gets through.
func TestThrottledByServiceNow(t *testing.T) {
	e := setup(t)
	e.sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 6, Status: 429, RetryAfter: 1}})
	var ids []string
	for i := range 5 {
		id := fmt.Sprint(7700 + i)
		ids = append(ids, id)
		e.post(id, "queued", map[string]any{"ani": "+1 312 555 0100"})
	}
	e.waitSynced(30*time.Second, ids...)
	if n := len(e.sim.Records("interaction")); n != 5 {
		t.Errorf("%d interactions, want 5", n)
	}
	_, out := e.do("GET", "/metrics", "", nil)
	if !regexp.MustCompile(`ctibridge_servicenow_throttled_total [1-9]`).Match(out) {
		t.Errorf("429s not counted in /metrics")
	}
}

// TestRetention: finished calls older than the retention leave the store
// (ServiceNow keeps its records); unfinished ones stay.
func TestRetention(t *testing.T) {
	e := setup(t)
	e.post("7801", "queued", map[string]any{"ani": "+1 312 555 0100"})
	e.waitSynced(10*time.Second, "7801")
	e.sim.SetFaults(snowsim.Faults{Down: true})
	e.post("7802", "queued", map[string]any{"ani": "+1 312 555 0101"})
	time.Sleep(10 * time.Millisecond)
	e.stop()
	e.cfg.Lifecycle.Retention = time.Millisecond
	e.start() // purges at start, in the background
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := e.do("GET", "/v1/contacts/7801", apiKey, nil)
		if code == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("finished call after the retention: %d, want 404 (purged)", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := e.do("GET", "/v1/contacts/7802", apiKey, nil); code != 200 {
		t.Errorf("unfinished call: %d, want it kept", code)
	}
	e.sim.SetFaults(snowsim.Faults{})
	e.waitSynced(10*time.Second, "7802")
	if n := len(e.sim.Records("interaction")); n != 2 {
		t.Errorf("%d interactions in ServiceNow, want 2", n)
	}
}

// TestCreateFirst: the caller lookup hangs and incident answers 500. The
// screen pop Studio already holds must open a record all the same: the
// interaction is created with what the call says, and the caller and their
// open incidents follow once ServiceNow answers again.
func TestCreateFirst(t *testing.T) {
	t.Parallel()
	sim := snowsim.New(snowsim.Options{})
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lookup := r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/sys_user") && strings.Contains(r.URL.RawQuery, "phone")
		if r.URL.Path == "/api/now/v1/batch" { // the caller lookup may go in a batch
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			lookup = strings.Contains(string(body), "/api/now/table/sys_user?") && strings.Contains(string(body), "phone")
		}
		if lookup {
			<-release // the caller lookup hangs
		}
		sim.ServeHTTP(w, r)
	})
	e := setupServing(t, sim, h)
	sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 1 << 20, Status: 500, Table: "incident"}})
	r := e.post("7901", "queued", map[string]any{"ani": "8013203420"})
	var rec map[string]string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var ok bool
		if rec, ok = sim.Record("interaction", r.InteractionSysID); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no interaction while the caller lookup hangs: the create waited for it")
		}
	}
	if rec["state"] != "new" || rec["caller_phone_number"] != "+18013203420" || rec["opened_for"] != "" {
		t.Errorf("created as %v; want state new, the number, and no caller yet", rec)
	}
	if s := e.status("7901"); s.InSync {
		t.Errorf("in sync before the caller is known: %+v", s)
	}

	unblock() // the lookup answers; incident still fails
	alice := e.userID("alice.caller")
	for deadline := time.Now().Add(30 * time.Second); e.interaction(r.InteractionSysID)["opened_for"] != alice; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("caller never added: %v", e.interaction(r.InteractionSysID))
		}
	}
	if rel := e.related(r.InteractionSysID); len(rel) != 0 {
		t.Errorf("links %v while incident fails", rel)
	}

	sim.SetFaults(snowsim.Faults{}) // incident answers again
	e.waitSynced(time.Minute, "7901")
	if rel := e.related(r.InteractionSysID); len(rel) != 2 {
		t.Errorf("links %v after recovery, want Alice's 2 open incidents", rel)
	}
}
