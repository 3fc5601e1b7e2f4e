package bridge_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/bridge/bridgetest"
	"github.com/ctibridge/ctibridge/cxonesim"
	"github.com/ctibridge/ctibridge/snowsim"
)

// withCXone starts the ServiceNow and CXone simulators and a bridge that
// uses both; poll, if not empty, is its cxone.poll.
func withCXone(tb testing.TB, poll string) (*snowsim.Server, *cxonesim.Server, string) {
	sn, snURL := bridgetest.Simulator(tb, snowsim.Options{})
	cx := cxonesim.New(cxonesim.Options{})
	cxSrv := httptest.NewServer(cx)
	tb.Cleanup(cxSrv.Close)
	vars := map[string]string{"CTIBRIDGE_SN_REQUESTS_PER_HOUR": "-1",
		"CTIBRIDGE_CXONE_ACCESS_KEY_ID": cxonesim.DefaultAccessKeyID, "CTIBRIDGE_CXONE_ACCESS_KEY_SECRET": cxonesim.DefaultAccessKeySecret,
		"CTIBRIDGE_CXONE_API": cxSrv.URL}
	if poll != "" {
		vars["CTIBRIDGE_CXONE_POLL"] = poll
	}
	_, base := bridgetest.Serve(tb, bridgetest.Config(tb, snURL, vars))
	return sn, cx, base
}

// TestAgentFromCXone: with CTIBRIDGE_CXONE_* pointing at a CXone tenant, an
// answered event that carries only the CXone agent id assigns the
// interaction to the ServiceNow user whose e-mail is the CXone agent's.
func TestAgentFromCXone(t *testing.T) {
	t.Parallel()
	sn, cx, base := withCXone(t, "")

	post := func(kind string, body string) map[string]string {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/v1/contacts/630241195/"+kind, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+bridgetest.Key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]string
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s: %d %v", kind, resp.StatusCode, out)
		}
		return out
	}
	sysID := post("queued", `{"ani":"8013203420","contactId":"630241195"}`)["interactionSysId"]
	post("answered", `{"agentId":"1004","contactId":"630241195"}`)

	var ckent string
	for _, u := range sn.Records("sys_user") {
		if u["user_name"] == "ckent" {
			ckent = u["sys_id"]
		}
	}
	var rec map[string]string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if rec, _ = sn.Record("interaction", sysID); rec["assigned_to"] == ckent && rec["state"] == "work_in_progress" {
			break
		}
	}
	if rec["assigned_to"] != ckent || ckent == "" {
		t.Fatalf("interaction after an answer by CXone agent 1004: state %q assigned_to %q, want ckent (%s)", rec["state"], rec["assigned_to"], ckent)
	}
	if got := cx.Stats().ByOp["agent"]; got != 1 {
		t.Errorf("%d CXone agent requests, want 1", got)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(m), `ctibridge_cxone_request_duration_seconds_count{op="agent",status="200"} 1`) {
		t.Errorf("no CXone request in /metrics")
	}
}
