package simulate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/bridge/bridgetest"
	"github.com/ctibridge/ctibridge/simulate"
	"github.com/ctibridge/ctibridge/snowsim"
)

// TestSimulateDrivesABridge: shuffled, duplicated events for 40 calls end
// with 40 interactions, and the command reports it.
func TestSimulateDrivesABridge(t *testing.T) {
	sim, url := bridgetest.Simulator(t, snowsim.Options{})
	cfg := bridgetest.Config(t, url, map[string]string{"CTIBRIDGE_SN_REQUESTS_PER_HOUR": "-1"})
	cfg.Security.RatePerKey, cfg.Security.Burst = 100, 10 // the generator must cope with 429s, as Studio does
	_, base := bridgetest.Serve(t, cfg)
	const key = bridgetest.Key

	var out bytes.Buffer
	err := simulate.Main(context.Background(), []string{"--bridge", base, "--key", key,
		"--calls", "40", "--shuffle", "--dup", "0.3", "--wait", "60s", "--concurrency", "4", "--rate", "40", "--report", "200ms"}, &out, &out)
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "40/40 calls in sync") || !strings.Contains(out.String(), "0 failed") || !strings.Contains(out.String(), "events (") {
		t.Errorf("report:\n%s", out.String())
	}
	if n := len(sim.Records("interaction")); n != 40 {
		t.Errorf("%d interactions, want 40", n)
	}
	if _, err := simulate.Run(context.Background(), simulate.Options{Calls: 0}); err == nil {
		t.Error("zero calls accepted")
	}
	// A wrong key: every event fails, and the report says why.
	out.Reset()
	err = simulate.Main(context.Background(), []string{"--bridge", base, "--key", "wrong-key-0123456789", "--calls", "2", "--dup", "0"}, &out, &out)
	if err == nil || !strings.Contains(out.String(), "failed: ") || !strings.Contains(out.String(), "HTTP 401") {
		t.Errorf("wrong key: %v\n%s", err, out.String())
	}
}

// TestSimulateSignsEvents: against a bridge that requires signed events, the
// generator signs every event with the secret it is given and every call
// syncs; without the secret, or with another one, every event is refused and
// the report says why, without showing the secret.
func TestSimulateSignsEvents(t *testing.T) {
	const hmacSecret = "sim-hmac-secret-0123456789"
	t.Setenv("CTIBRIDGE_HMAC_SECRET", "") // only the flag gives the secret here
	t.Setenv("CTIBRIDGE_HMAC_SECRET_FILE", "")
	sim, url := bridgetest.Simulator(t, snowsim.Options{})
	cfg := bridgetest.Config(t, url, map[string]string{"CTIBRIDGE_SN_REQUESTS_PER_HOUR": "-1", "CTIBRIDGE_HMAC_SECRET": hmacSecret})
	_, base := bridgetest.Serve(t, cfg)
	dir := t.TempDir()
	good, wrong := filepath.Join(dir, "hmac"), filepath.Join(dir, "wrong")
	os.WriteFile(good, []byte(hmacSecret+"\n"), 0o600)
	os.WriteFile(wrong, []byte("not-the-hmac-secret-0123"), 0o600)
	args := []string{"--bridge", base, "--key", bridgetest.Key, "--calls", "10", "--shuffle", "--dup", "0.3", "--concurrency", "4"}

	var out bytes.Buffer
	if err := simulate.Main(context.Background(), append(args, "--prefix", "signed-", "--wait", "60s", "--hmac-secret-file", good), &out, &out); err != nil {
		t.Fatalf("signed run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "10/10 calls in sync") || !strings.Contains(out.String(), " 0 failed") {
		t.Errorf("signed run:\n%s", out.String())
	}
	if n := len(sim.Records("interaction")); n != 10 {
		t.Errorf("%d interactions, want 10", n)
	}
	for name, extra := range map[string][]string{
		"unsigned":       {"--prefix", "unsigned-"},
		"another secret": {"--prefix", "wrong-", "--hmac-secret-file", wrong},
	} {
		out.Reset()
		err := simulate.Main(context.Background(), append(args, extra...), &out, &out)
		if err == nil || !strings.Contains(out.String(), "HTTP 401: X-Ctibridge-") || strings.Contains(out.String(), hmacSecret) {
			t.Errorf("%s: %v\n%s", name, err, out.String())
		}
	}
	if n := len(sim.Records("interaction")); n != 10 {
		t.Errorf("refused events made interactions: %d, want 10", n)
	}
	if err := simulate.Main(context.Background(), append(args, "--hmac-secret-file", filepath.Join(dir, "missing")), &out, &out); err == nil {
		t.Error("a missing secret file was accepted")
	}
}

// TestSimulateRealCallsVerified: calls that last (a queue wait and a talk of
// a few hundred milliseconds) overlap far beyond the requests in flight;
// every one ends in ServiceNow exactly once and as it should, and --json
// prints the figures, with the simulator's request count.
func TestSimulateRealCallsVerified(t *testing.T) {
	sim, url := bridgetest.Simulator(t, snowsim.Options{})
	cfg := bridgetest.Config(t, url, map[string]string{"CTIBRIDGE_SN_REQUESTS_PER_HOUR": "-1"})
	_, base := bridgetest.Serve(t, cfg)
	var out, errOut bytes.Buffer
	err := simulate.Main(context.Background(), []string{"--bridge", base, "--key", bridgetest.Key, "--calls", "60", "--rate", "100",
		"--answer-after", "300ms±200ms", "--talk", "400ms±200ms", "--concurrency", "4", "--dup", "0.2",
		"--wait", "60s", "--verify", url, "--json"}, &out, &errOut)
	if err != nil {
		t.Fatalf("simulate: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out.String())
	}
	num := func(k string) float64 {
		v, ok := got[k].(float64)
		if !ok {
			t.Errorf("%s = %v, want a number", k, got[k])
		}
		return v
	}
	if num("calls") != 60 || num("events") < 120 || num("intake_events_per_s") <= 0 || num("intake_p50_ms") <= 0 ||
		num("intake_p99_ms") < num("intake_p50_ms") || num("synced") != 60 || num("sync_s") <= 0 || num("lifecycles_per_s") <= 0 {
		t.Errorf("figures: %s", out.String())
	}
	if num("lost") != 0 || num("duplicated") != 0 || num("wrong") != 0 {
		t.Errorf("verification: %s\n%s", out.String(), errOut.String())
	}
	// Each call takes at least a create and a close; the simulator served
	// the run, the bridge's start and the verification's reads.
	if n := num("sn_requests"); n < 120 || n > float64(sim.Stats().Total) || num("sn_requests_per_call") != math.Round(n/60*100)/100 {
		t.Errorf("sn_requests %v, per call %v; the simulator served %d", got["sn_requests"], got["sn_requests_per_call"], sim.Stats().Total)
	}
	// Round trips: a batch is one, however many requests it carries.
	if rt := num("sn_round_trips"); rt < 120 || rt > num("sn_requests") || rt > float64(sim.Stats().HTTPRequests) ||
		num("sn_round_trips_per_call") != math.Round(rt/60*100)/100 {
		t.Errorf("sn_round_trips %v, per call %v, with %v requests; the simulator served %d round trips",
			got["sn_round_trips"], got["sn_round_trips_per_call"], got["sn_requests"], sim.Stats().HTTPRequests)
	}
	if n := num("peak_calls_in_progress"); n <= 8 {
		t.Errorf("at most %v calls in progress at once with 4 requests in flight: calls do not last", n)
	}
	if n := len(sim.Records("interaction")); n != 60 {
		t.Errorf("%d interactions, want 60", n)
	}
	if !strings.Contains(errOut.String(), "verified in ServiceNow: 0 lost, 0 duplicated, 0 wrong") {
		t.Errorf("report on stderr:\n%s", errOut.String())
	}
}

// TestSimulateCountsWrongInteractions: against an instance whose business
// rule undoes every close (the release never shows), each call is counted
// wrong, with the first few named, and the command fails.
func TestSimulateCountsWrongInteractions(t *testing.T) {
	d := snowsim.DefaultDataset()
	d.Rules = append(d.Rules, snowsim.Rule{Name: "Undo the close", Table: "interaction", When: "stateSTARTSWITHclosed",
		Set: map[string]string{"state": "work_in_progress"}})
	_, url := bridgetest.Simulator(t, snowsim.Options{Data: d})
	cfg := bridgetest.Config(t, url, map[string]string{"CTIBRIDGE_SN_REQUESTS_PER_HOUR": "-1"})
	_, base := bridgetest.Serve(t, cfg)
	var out, errOut bytes.Buffer
	err := simulate.Main(context.Background(), []string{"--bridge", base, "--key", bridgetest.Key, "--calls", "12",
		"--answer-after", "100ms", "--talk", "100ms", "--wait", "60s", "--verify", url, "--json"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "12 wrong") {
		t.Fatalf("simulate: %v, want a failure counting 12 wrong\n%s\n%s", err, out.String(), errOut.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("stdout: %v\n%s", err, out.String())
	}
	if got["wrong"] != float64(12) || got["lost"] != float64(0) || got["duplicated"] != float64(0) {
		t.Errorf("JSON %s", out.String())
	}
	if !strings.Contains(errOut.String(), `wrong: `) || !strings.Contains(errOut.String(), `state "work_in_progress", want "closed_`) {
		t.Errorf("report:\n%s", errOut.String())
	}
}

// TestVerifyCountsLostAndDuplicated: after a clean run, an interaction
// deleted, another made twice and a third assigned to someone else are
// counted lost, duplicated and wrong, each named.
func TestVerifyCountsLostAndDuplicated(t *testing.T) {
	sim, url := bridgetest.Simulator(t, snowsim.Options{})
	cfg := bridgetest.Config(t, url, map[string]string{"CTIBRIDGE_SN_REQUESTS_PER_HOUR": "-1"})
	_, base := bridgetest.Serve(t, cfg)
	o := simulate.Options{Bridge: base, Key: bridgetest.Key, Calls: 10, Prefix: "v-", Wait: time.Minute, Abandon: 0.25,
		Verify: url, VerifyUser: "admin", VerifyPassword: "admin"}
	res, err := simulate.Run(context.Background(), o)
	if err != nil || res.Synced != 10 {
		t.Fatalf("run: %v\n%s", err, res)
	}
	if err := simulate.Verify(context.Background(), o, &res); err != nil || res.Lost+res.Duplicated+res.Wrong != 0 {
		t.Fatalf("clean run: %v\n%s", err, res)
	}
	id := func(n int) string { return ctibridge.SysID("ctibridge", fmt.Sprintf("v-%06d", n)) }
	admin := func(method, path string, body any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, url+path, bytes.NewReader(b))
		req.SetBasicAuth("admin", "admin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %v %v", method, path, resp, err)
		}
		resp.Body.Close()
	}
	admin("DELETE", "/api/now/table/interaction/"+id(0), nil)
	second, _ := sim.Record("interaction", id(1))
	admin("POST", "/api/now/table/interaction", map[string]string{"short_description": second["short_description"], "type": "phone"})
	admin("PATCH", "/api/now/table/interaction/"+id(2), map[string]string{"caller_phone_number": "+15550000000"})
	// A busy simulator is asked again after its Retry-After.
	sim.SetFaults(snowsim.Faults{FailNext: &snowsim.FailNext{Count: 1, Status: 429, RetryAfter: 1, Table: "sys_user"}})
	if err := simulate.Verify(context.Background(), o, &res); err != nil {
		t.Fatal(err)
	}
	if f := sim.Faults(); f.FailNext != nil {
		t.Errorf("the scripted 429 was not met: %+v", f.FailNext)
	}
	if res.Lost != 1 || res.Duplicated != 1 || res.Wrong != 1 {
		t.Fatalf("lost %d, duplicated %d, wrong %d; want 1 each\n%s", res.Lost, res.Duplicated, res.Wrong, res)
	}
	report := res.String()
	for _, want := range []string{"lost: v-000000", "duplicated: v-000001 (CXone contact", "wrong: v-000002", `caller_phone_number "+15550000000"`} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// TestSimulateRefusesBadFlags: each mistake is named.
func TestSimulateRefusesBadFlags(t *testing.T) {
	for args, want := range map[string]string{
		"--talk 10s±20s":                       "below zero",
		"--answer-after soon":                  "answer-after",
		"--verify http://127.0.0.1:1":          "--verify needs --wait",
		"--verify 127.0.0.1:8090 --wait 1s":    "simulator's base URL",
		"--calls 0":                            "--calls must be positive",
		"--dup 2":                              "--dup",
		"--verify http://127.0.0.1:1 --wait 1": "--verify",
	} {
		var out bytes.Buffer
		err := simulate.Main(context.Background(), append([]string{"--key", "k"}, strings.Fields(args)...), &out, &out)
		if err == nil || !strings.Contains(err.Error()+out.String(), want) {
			t.Errorf("%s: %v %s, want %q", args, err, out.String(), want)
		}
	}
}

// TestSimulateVerifyNeedsTheSimulatorAdmin: wrong credentials for --verify
// stop the run before any event is sent, saying which flags to check and
// never showing the password.
func TestSimulateVerifyNeedsTheSimulatorAdmin(t *testing.T) {
	sim, url := bridgetest.Simulator(t, snowsim.Options{})
	var out bytes.Buffer
	err := simulate.Main(context.Background(), []string{"--bridge", "http://127.0.0.1:1", "--key", "k", "--calls", "1",
		"--wait", "1s", "--verify", url, "--verify-password", "sesame-wrong"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "--verify-password") || strings.Contains(err.Error()+out.String(), "sesame-wrong") {
		t.Errorf("%v\n%s", err, out.String())
	}
	if n := sim.Stats().Total; n != 0 {
		t.Errorf("%d Table API requests", n)
	}
	err = simulate.Main(context.Background(), []string{"--bridge", "http://127.0.0.1:1", "--key", "k", "--calls", "1",
		"--wait", "1s", "--verify", url + "/nothing-here"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "no ServiceNow simulator there") {
		t.Errorf("not a simulator: %v", err)
	}
}

// TestWaitWatchesTheQueue: while the bridge's queue holds work, the wait
// for sync reads the queue from /metrics instead of asking after every
// call (which would cost the bridge a read per call per round and slow
// down what is measured); once the queue is empty, each call is checked
// once.
func TestWaitWatchesTheQueue(t *testing.T) {
	var mu sync.Mutex
	scrapes, statuses, queued := 0, 0, 5
	bridge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == "POST":
			fmt.Fprint(w, `{}`)
		case r.URL.Path == "/metrics":
			scrapes++
			fmt.Fprintf(w, "# HELP ctibridge_jobs Calls by queue state.\nctibridge_jobs{state=\"parked\"} 7\nctibridge_jobs{state=\"pending\"} %d\nctibridge_jobs{state=\"running\"} 0\n", queued)
			queued = max(queued-1, 0)
		default:
			statuses++
			fmt.Fprint(w, `{"inSync":true}`)
		}
	}))
	defer bridge.Close()
	var out bytes.Buffer
	err := simulate.Main(context.Background(), []string{"--bridge", bridge.URL, "--key", "k-0123456789abcdef",
		"--calls", "10", "--dup", "0", "--wait", "30s"}, &out, &out)
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, out.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(out.String(), "10/10 calls in sync") {
		t.Errorf("report:\n%s", out.String())
	}
	if scrapes < 6 || statuses != 10 {
		t.Errorf("%d scrapes of /metrics and %d status requests for 10 calls; want the queue watched until empty (6 scrapes), then one status request per call", scrapes, statuses)
	}
}
