// Package studio_test checks the CXone Studio snippets: each follows the rules
// that make it work in real Studio (outcome in global variables, status set
// before the call, any 2xx a success, the Error branch wired, type 2 where the
// reply is not read), each sends exactly the JSON kept as a fixture beside it,
// and run in a model of Studio against a bridge on the ServiceNow simulator
// they produce the interaction a call should have, and record every failure
// on the contact.
package studio_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/api"
	"github.com/ctibridge/ctibridge/bridge/bridgetest"
	"github.com/ctibridge/ctibridge/snowsim"
)

// The event snippets, and the fixtures each must produce.
var (
	eventSnippets = []string{"ctibridge_queued", "ctibridge_answered", "ctibridge_released"}
	fixtureNames  = []string{"queued", "answered", "answered_with_user_name", "transferred", "released"}
)

type fixture struct {
	Snippet   string            `json:"snippet"`
	Uncomment []string          `json:"uncomment"`
	Variables map[string]string `json:"variables"`
	Path      string            `json:"path"`
	Body      map[string]string `json:"body"`
}

func readFixture(t *testing.T, name string) fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("fixtures", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return f
}

var (
	reRequestLine = regexp.MustCompile(`(?m)^ASSIGN ctiReply = proxy\.MakeRestRequest\(ctiUrl, ctiPayload, (\d), "POST"\)$`)
	reTimeout     = regexp.MustCompile(`(?m)^proxy\.ProxyTimeoutSeconds = (\d+)$`)
	reStatusRead  = regexp.MustCompile(`(?m)^ASSIGN (\w+) = proxy\.StatusCode$`)
	reLocalOut    = regexp.MustCompile(`(?m)^\s*ASSIGN (ctiEvent|ctiStatus|ctiError|screenpopurl|ctibridge\w+) =`)
	reReplyRead   = regexp.MustCompile(`ctiReply\.\w+`)
)

// TestSnippetsFollowTheRules checks, line by line, what makes the snippets
// work in real Studio, so that a later edit cannot quietly undo it.
func TestSnippetsFollowTheRules(t *testing.T) {
	for _, name := range eventSnippets {
		t.Run(name, func(t *testing.T) {
			src := snippetText(t, name)
			call := reRequestLine.FindStringSubmatchIndex(src)
			if call == nil {
				t.Fatal(`no "ASSIGN ctiReply = proxy.MakeRestRequest(ctiUrl, ctiPayload, N, "POST")" line`)
			}
			before := src[:call[0]]
			for _, must := range []string{
				// The outcome goes to globals, initialised before the call, so
				// the main script and ctibridge_log_error see it even when the
				// snippet stops half-way.
				"ASSIGN global:ctiEvent = ",
				"ASSIGN global:ctiStatus = -1\n",
				"ASSIGN global:ctiError = \"not sent\"\n",
				"ASSIGN proxy = GetRESTProxy()\n",
				"proxy.ContentType = \"application/json\"\n",
				"proxy.AddHeader(\"Authorization\", \"Bearer {ctibridgeKey}\")\n",
				"ASSIGN ctiPayload = \"{ctiBody.asjson()}\"\n",
			} {
				if !strings.Contains(before, must) {
					t.Errorf("missing before the request: %s", strings.TrimSpace(must))
				}
			}
			// Type 0 (reply parsed as JSON) only where the reply is read; 2
			// (JSON, reply ignored) elsewhere, so an odd reply cannot stop it.
			typ := src[call[2]:call[3]]
			reads := reReplyRead.FindAllString(src, -1)
			if len(reads) > 0 && typ != "0" {
				t.Errorf("reads %v but sends type %s; want 0", reads, typ)
			}
			if len(reads) == 0 && typ != "2" {
				t.Errorf("does not read the reply but sends type %s; want 2", typ)
			}
			// Any 2xx is success, judged on the status read right after the call.
			st := reStatusRead.FindStringSubmatch(src)
			if st == nil {
				t.Fatal("never reads proxy.StatusCode")
			}
			for _, must := range []string{
				"ASSIGN global:ctiStatus = " + st[1] + "\n",
				"IF " + st[1] + " >= 200 & " + st[1] + " < 300\n",
				"ASSIGN global:ctiError = \"\"\n",
				"ASSIGN global:ctiError = \"HTTP {" + st[1] + "} {proxy.StatusDescription}\"\n",
			} {
				if !strings.Contains(src[call[1]:], must) {
					t.Errorf("missing after the request: %s", strings.TrimSpace(must))
				}
			}
			if m := reTimeout.FindStringSubmatch(src); m == nil {
				t.Error("ProxyTimeoutSeconds not set (Studio's default is 10 s)")
			} else if n, _ := strconv.Atoi(m[1]); n < 1 || n > 2 {
				t.Errorf("ProxyTimeoutSeconds %d, want at most 2", n)
			}
			if m := reLocalOut.FindString(src); m != "" {
				t.Errorf("%q: outcome and ctibridge variables must be written as global:, or RUNSUB loses them", strings.TrimSpace(m))
			}
			for _, banned := range []string{"TRACE", "WAIT", "WHILE", "RUNSUB", "RUNSCRIPT", "ReleaseReason", "Disposition", "GETAGENTINFO"} {
				if strings.Contains(strings.ToUpper(code(src)), strings.ToUpper(banned)) {
					t.Errorf("uses %s", banned)
				}
			}
		})
	}

	answered := snippetText(t, "ctibridge_answered")
	if !strings.Contains(answered, "IF ContactID != MasterID\n{\n  ASSIGN ctiKind = \"transferred\"\n}") {
		t.Error("ctibridge_answered: a ContactID other than the MasterID must be sent as a transfer")
	}
	for _, f := range []string{"agentUserName", "agentEmail"} {
		if !strings.Contains(answered, "\n// ctiBody."+f+" = ") || strings.Contains(code(answered), "ctiBody."+f) {
			t.Errorf("ctibridge_answered: %s must be an optional, commented line (OnAnswer does not provide it)", f)
		}
	}
	if !strings.Contains(snippetText(t, "ctibridge_released"), "ctiBody.reason = \"{p1}\"\n") {
		t.Error("ctibridge_released: the cause code (OnRelease's p1) must be sent as reason")
	}

	onErr := code(snippetText(t, "ctibridge_on_error"))
	if onErr != "ASSIGN global:ctiError = \"Studio error: {_ERR}\"" {
		t.Errorf("ctibridge_on_error must put _ERR into global:ctiError, non-empty; it is %q", onErr)
	}
	logErr := snippetText(t, "ctibridge_log_error")
	for _, must := range []string{"IF ctiError != \"\"\n", "ASSIGN global:ctibridgeErrors = ctibridgeErrors + 1\n",
		"ASSIGN global:ctibridgeLastError = \"ctibridge {ctiEvent} failed for master {MasterID} contact {ContactID}: {ctiError}\"\n"} {
		if !strings.Contains(logErr, must) {
			t.Errorf("ctibridge_log_error: missing %s", strings.TrimSpace(must))
		}
	}
	if strings.Contains(code(logErr), "TRACE") {
		t.Error("ctibridge_log_error: TRACE is ignored in deployed scripts; keep the error in global variables")
	}
	setup := snippetText(t, "ctibridge_setup")
	for _, must := range []string{"ASSIGN global:ctibridgeUrl = ", "ASSIGN global:ctibridgeKey = ", "ASSIGN global:ctibridgeErrors = 0\n"} {
		if !strings.Contains(setup, must) {
			t.Errorf("ctibridge_setup: missing %s", strings.TrimSpace(must))
		}
	}

	// The guide names every piece and says where it goes.
	guide, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range append(append([]string{}, eventSnippets...), "ctibridge_setup", "ctibridge_on_error", "ctibridge_log_error",
		"Error branch", "OnRelease", "OnAnswer", "Reqagent", "ContactID != MasterID", "global:ctiError", "TRACE") {
		if !strings.Contains(string(guide), must) {
			t.Errorf("the guide does not mention %s", must)
		}
	}
}

// code is a snippet without its comment lines.
func code(src string) string {
	var out []string
	for _, ln := range strings.Split(src, "\n") {
		if s := strings.TrimSpace(ln); s != "" && !strings.HasPrefix(s, "//") {
			out = append(out, ln)
		}
	}
	return strings.Join(out, "\n")
}

// TestFixturesAreWhatSnippetsSend runs each snippet in the model of Studio
// with its fixture's variables and compares what it sends with the fixture:
// change a snippet and this fails until the fixture says the same thing.
func TestFixturesAreWhatSnippetsSend(t *testing.T) {
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"accepted","interactionSysId":"0123456789abcdef0123456789abcdef","screenPopUrl":"https://acme.service-now.com/x"}`)
	}))
	defer rec.Close()
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			f := readFixture(t, name)
			s := newStudio(t)
			s.setup(rec.URL, "ctb_fixture_key")
			s.contact(f.Variables)
			if f.Snippet == "ctibridge_released" {
				s.inline(f.Snippet, f.Uncomment...)
			} else {
				s.runsub(f.Snippet, f.Uncomment...)
			}
			if len(s.sent) != 1 {
				t.Fatalf("sent %d requests, want 1", len(s.sent))
			}
			req := s.sent[0]
			var body map[string]string
			if err := json.Unmarshal(req.body, &body); err != nil {
				t.Fatalf("sent %s: %v", req.body, err)
			}
			if req.method != "POST" || req.path != f.Path || !reflect.DeepEqual(body, f.Body) {
				t.Errorf("the snippet sends %s %s %v\nthe fixture says POST %s %v", req.method, req.path, body, f.Path, f.Body)
			}
			if got := req.header.Get("Authorization"); got != "Bearer ctb_fixture_key" {
				t.Errorf("Authorization %q", got)
			}
			if got := req.header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			if s.global("ctiError") != "" || s.global("ctibridgeErrors") != "0" {
				t.Errorf("accepted, yet ctiError %q, ctibridgeErrors %s", s.global("ctiError"), s.global("ctibridgeErrors"))
			}
		})
	}
}

// agentMap is the bridge's agents.mapFile for the tests: CXone agent id →
// ServiceNow user_name.
const agentMap = "agent,user\n11,jdoe\n12,asmith\n"

// serveBridge runs a bridge on the simulator with the agent map; vars add
// configuration.
func serveBridge(t *testing.T, vars map[string]string) (*snowsim.Server, string) {
	t.Helper()
	sim, url := bridgetest.Simulator(t, snowsim.Options{})
	cfg := bridgetest.Config(t, url, vars)
	cfg.Agents.MapFile = filepath.Join(t.TempDir(), "agents.csv")
	if err := os.WriteFile(cfg.Agents.MapFile, []byte(agentMap), 0o600); err != nil {
		t.Fatal(err)
	}
	_, base := bridgetest.Serve(t, cfg)
	return sim, base
}

// callStatus is what GET /v1/contacts/{id} tells Studio's admin.
type callStatus struct {
	InteractionSysID string `json:"interactionSysId"`
	InSync           bool   `json:"inSync"`
	Parked           bool   `json:"parked"`
	LastError        string `json:"lastError"`
	DesiredState     string `json:"desiredState"`
}

// waitInSync polls the bridge until ServiceNow holds everything it received
// for the call.
func waitInSync(t *testing.T, base, master string) callStatus {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequest("GET", base+"/v1/contacts/"+master, nil)
		req.Header.Set("Authorization", "Bearer "+bridgetest.Key)
		var st callStatus
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		switch {
		case err == nil && st.Parked:
			t.Fatalf("call %s parked: %s", master, st.LastError)
		case err == nil && st.InSync:
			return st
		case time.Now().After(deadline):
			t.Fatalf("call %s not in sync: %+v %v", master, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func userNames(sim *snowsim.Server) map[string]string {
	users := map[string]string{}
	for _, u := range sim.Records("sys_user") {
		users[u["sys_id"]] = u["user_name"]
	}
	return users
}

func notes(sim *snowsim.Server, sysID string) string {
	var all []string
	for _, e := range sim.Journal("interaction", sysID, "work_notes") {
		all = append(all, e.Value)
	}
	return strings.Join(all, "\n")
}

// TestSnippetsDriveTheBridge runs a whole call through the snippets, wired as
// the guide says, against a bridge on the simulator, and checks the
// interaction after each moment of the call.
func TestSnippetsDriveTheBridge(t *testing.T) {
	sim, base := serveBridge(t, nil)
	s := newStudio(t)
	s.setup(base, bridgetest.Key)
	master := "630241195"
	ok := func(event string) {
		t.Helper()
		if s.global("ctiEvent") != event || s.global("ctiStatus") != "200" || s.global("ctiError") != "" || s.global("ctibridgeErrors") != "0" {
			t.Fatalf("after %s: ctiEvent %q ctiStatus %q ctiError %q ctibridgeErrors %q", event,
				s.global("ctiEvent"), s.global("ctiStatus"), s.global("ctiError"), s.global("ctibridgeErrors"))
		}
	}

	s.contact(readFixture(t, "queued").Variables)
	s.runsub("ctibridge_queued")
	ok("queued")
	st := waitInSync(t, base, master)
	sysID := st.InteractionSysID
	if sysID != ctibridge.SysID("ctibridge", master) {
		t.Errorf("interaction %s, want the sys_id derived from the master contact id", sysID)
	}
	if s.global("ctibridgeSysId") != sysID || !strings.HasSuffix(s.global("screenpopurl"), "/"+sysID) {
		t.Errorf("screen pop %q, sys_id %q: want the interaction %s", s.global("screenpopurl"), s.global("ctibridgeSysId"), sysID)
	}
	users := userNames(sim)
	rec, _ := sim.Record("interaction", sysID)
	if rec["state"] != "new" || users[rec["opened_for"]] != "alice.caller" || rec["caller_phone_number"] != "+18013203420" {
		t.Errorf("queued: state %s, caller %s %s", rec["state"], users[rec["opened_for"]], rec["caller_phone_number"])
	}

	// answered with agentId only: the agent map names the ServiceNow user.
	s.contact(readFixture(t, "answered").Variables)
	s.runsub("ctibridge_answered")
	ok("answered")
	waitInSync(t, base, master)
	rec, _ = sim.Record("interaction", sysID)
	if rec["state"] != "work_in_progress" || users[rec["assigned_to"]] != "jdoe" {
		t.Errorf("answered: state %s, agent %q; want work_in_progress, jdoe (agent 11 in the map)", rec["state"], users[rec["assigned_to"]])
	}

	// The same subscript, on the next agent's OnAnswer after a transfer.
	s.contact(readFixture(t, "transferred").Variables)
	s.runsub("ctibridge_answered")
	ok("transferred")
	waitInSync(t, base, master)
	rec, _ = sim.Record("interaction", sysID)
	if users[rec["assigned_to"]] != "asmith" || !strings.Contains(notes(sim, sysID), "transferred from") {
		t.Errorf("transferred: agent %q, notes %q", users[rec["assigned_to"]], notes(sim, sysID))
	}

	// Released inline after OnRelease, with the carrier's cause code.
	s.contact(readFixture(t, "released").Variables)
	s.inline("ctibridge_released")
	ok("released")
	waitInSync(t, base, master)
	rec, _ = sim.Record("interaction", sysID)
	if rec["state"] != "closed_complete" || users[rec["assigned_to"]] != "asmith" || !strings.Contains(notes(sim, sysID), "reason: 16") {
		t.Errorf("released: state %s, agent %q, notes %q", rec["state"], users[rec["assigned_to"]], notes(sim, sysID))
	}
	if n := len(s.sent); n != 4 {
		t.Errorf("%d requests for one call, want 4", n)
	}
}

// TestAbandonedAndNamedAgentCalls: a call released before any answer closes
// as abandoned; the optional user-name line finds an agent the map lacks.
func TestAbandonedAndNamedAgentCalls(t *testing.T) {
	sim, base := serveBridge(t, nil)
	users := userNames(sim)

	t.Run("abandoned", func(t *testing.T) {
		s := newStudio(t)
		s.setup(base, bridgetest.Key)
		call := map[string]string{"MasterID": "630241300", "ContactID": "630241300"}
		s.contact(readFixture(t, "queued").Variables)
		s.contact(call)
		s.runsub("ctibridge_queued")
		s.contact(readFixture(t, "released").Variables)
		s.contact(call)
		s.contact(map[string]string{"p1": ""}) // no cause code, as on many hang-ups
		s.inline("ctibridge_released")
		if s.global("ctibridgeErrors") != "0" {
			t.Fatalf("errors: %s", s.global("ctibridgeLastError"))
		}
		st := waitInSync(t, base, "630241300")
		rec, _ := sim.Record("interaction", st.InteractionSysID)
		if rec["state"] != "closed_abandoned" || rec["assigned_to"] != "" {
			t.Errorf("abandoned call: state %s, agent %q", rec["state"], users[rec["assigned_to"]])
		}
	})

	t.Run("user name uncommented", func(t *testing.T) {
		s := newStudio(t)
		s.setup(base, bridgetest.Key)
		f := readFixture(t, "answered_with_user_name")
		s.contact(readFixture(t, "queued").Variables)
		s.contact(f.Variables)
		s.runsub("ctibridge_queued")
		s.runsub(f.Snippet, f.Uncomment...)
		if s.global("ctiEvent") != "answered" || s.global("ctibridgeErrors") != "0" {
			t.Fatalf("ctiEvent %s, errors: %s", s.global("ctiEvent"), s.global("ctibridgeLastError"))
		}
		st := waitInSync(t, base, f.Variables["MasterID"])
		rec, _ := sim.Record("interaction", st.InteractionSysID)
		if users[rec["assigned_to"]] != "dprince" {
			t.Errorf("agent 15 (not in the map) with user name dprince: assigned to %q", users[rec["assigned_to"]])
		}
	})
}

// TestFixturesSignedDriveTheBridge posts the fixtures signed as the guide's
// signing section explains (the snippets themselves do not sign) to a bridge
// that requires signatures.
func TestFixturesSignedDriveTheBridge(t *testing.T) {
	const hmacSecret = "studio-hmac-secret-0123456789"
	sim, base := serveBridge(t, map[string]string{"CTIBRIDGE_HMAC_SECRET": hmacSecret})
	for _, name := range []string{"queued", "answered", "transferred", "released"} {
		f := readFixture(t, name)
		body, _ := json.Marshal(f.Body)
		req, _ := http.NewRequest("POST", base+f.Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+bridgetest.Key)
		api.SignRequest(req, hmacSecret, body, time.Now())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", name, resp.StatusCode)
		}
	}
	st := waitInSync(t, base, "630241195")
	rec, _ := sim.Record("interaction", st.InteractionSysID)
	if rec["state"] != "closed_complete" || userNames(sim)[rec["assigned_to"]] != "asmith" {
		t.Errorf("signed: state %s, agent %s", rec["state"], userNames(sim)[rec["assigned_to"]])
	}
}

// TestFailuresAreRecordedOnTheContact: whatever goes wrong with a request,
// the call goes on and the failure is counted and described in the globals
// the guide tells the admin to inspect, never with the key in it.
func TestFailuresAreRecordedOnTheContact(t *testing.T) {
	queued := readFixture(t, "queued").Variables

	t.Run("wrong key", func(t *testing.T) {
		_, base := serveBridge(t, nil)
		s := newStudio(t)
		const wrong = "ctb_not_the_right_key_0123456789"
		s.setup(base, wrong)
		s.contact(queued)
		s.runsub("ctibridge_queued")
		want := "ctibridge queued failed for master 630241195 contact 630241195: HTTP 401 Unauthorized"
		if s.global("ctiStatus") != "401" || s.global("ctibridgeErrors") != "1" || s.global("ctibridgeLastError") != want {
			t.Errorf("ctiStatus %s, ctibridgeErrors %s, ctibridgeLastError %q; want 401, 1, %q",
				s.global("ctiStatus"), s.global("ctibridgeErrors"), s.global("ctibridgeLastError"), want)
		}
		if _, set := s.globals["screenpopurl"]; set {
			t.Error("a refused request set the screen pop")
		}
		s.contact(readFixture(t, "released").Variables)
		s.inline("ctibridge_released")
		if s.global("ctibridgeErrors") != "2" || !strings.HasPrefix(s.global("ctibridgeLastError"), "ctibridge released failed") {
			t.Errorf("after the release: %s errors, last %q", s.global("ctibridgeErrors"), s.global("ctibridgeLastError"))
		}
		for name, v := range s.globals {
			if name != "ctibridgeKey" && strings.Contains(text(v), wrong) {
				t.Errorf("global %s shows the key: %q", name, text(v))
			}
		}
	})

	// A bridge nobody answers for: a closed port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name    string
		failure failureMode
		unwired bool
		want    string // ctiError's beginning
	}{
		{"no reply raises, Error branch wired", failRaises, false, "Studio error: the request failed"},
		{"no reply returns -1", failMinusOne, false, "HTTP -1 no reply"},
		{"no reply raises, Error branch not wired", failRaises, true, "not sent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, ev := range []string{"ctibridge_queued", "ctibridge_answered", "ctibridge_released"} {
				s := newStudio(t)
				s.failure, s.unwired = tc.failure, tc.unwired
				s.setup(down, bridgetest.Key)
				s.contact(queued)
				s.contact(map[string]string{"AgentId": "11", "p1": "16"})
				if ev == "ctibridge_released" {
					s.inline(ev)
				} else {
					s.runsub(ev)
				}
				if s.global("ctiStatus") != "-1" || !strings.HasPrefix(s.global("ctiError"), tc.want) || s.global("ctibridgeErrors") != "1" ||
					!strings.HasSuffix(s.global("ctibridgeLastError"), ": "+s.global("ctiError")) {
					t.Errorf("%s: ctiStatus %s, ctiError %q, ctibridgeErrors %s, ctibridgeLastError %q; want -1, %q…, 1",
						ev, s.global("ctiStatus"), s.global("ctiError"), s.global("ctibridgeErrors"), s.global("ctibridgeLastError"), tc.want)
				}
			}
		})
	}

	// Any 2xx is success; anything else is recorded with its status.
	t.Run("status codes", func(t *testing.T) {
		var status atomic.Int64
		stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			code := int(status.Load())
			if code == http.StatusMovedPermanently {
				w.Header().Set("Location", "/elsewhere")
			}
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(code)
			if code != http.StatusNoContent {
				fmt.Fprint(w, "<html>not JSON</html>")
			}
		}))
		defer stub.Close()
		for _, c := range []int{200, 201, 202, 204, 301, 400, 401, 404, 429, 500, 503} {
			status.Store(int64(c))
			for _, ev := range []string{"ctibridge_answered", "ctibridge_released"} {
				s := newStudio(t)
				s.setup(stub.URL, bridgetest.Key)
				s.contact(queued)
				s.contact(map[string]string{"AgentId": "11", "p1": "16"})
				if ev == "ctibridge_released" {
					s.inline(ev)
				} else {
					s.runsub(ev)
				}
				want, errs := "", "0"
				if c < 200 || c >= 300 {
					want, errs = fmt.Sprintf("HTTP %d %s", c, http.StatusText(c)), "1"
				}
				if s.global("ctiStatus") != strconv.Itoa(c) || s.global("ctiError") != want || s.global("ctibridgeErrors") != errs {
					t.Errorf("%s, reply %d: ctiStatus %s, ctiError %q, ctibridgeErrors %s; want %d, %q, %s",
						ev, c, s.global("ctiStatus"), s.global("ctiError"), s.global("ctibridgeErrors"), c, want, errs)
				}
			}
		}
		// queued reads the reply: a 2xx that is not ctibridge's JSON stops
		// the snippet, and the Error branch records it.
		status.Store(http.StatusOK)
		s := newStudio(t)
		s.setup(stub.URL, bridgetest.Key)
		s.contact(queued)
		s.runsub("ctibridge_queued")
		if !strings.HasPrefix(s.global("ctiError"), "Studio error: the reply is not JSON") || s.global("ctibridgeErrors") != "1" {
			t.Errorf("queued, HTML 200: ctiError %q, ctibridgeErrors %s", s.global("ctiError"), s.global("ctibridgeErrors"))
		}
	})
}
