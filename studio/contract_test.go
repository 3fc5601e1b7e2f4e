// Package studio_test checks the CXone Studio snippets against the API: the
// JSON each snippet sends is kept as a fixture beside it, the fixture must be
// what the snippet renders, and posting the fixtures in order to a bridge
// must produce the right interaction.
package studio_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/ctibridge/ctibridge"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/api"
	"github.com/ctibridge/ctibridge/bridge/bridgetest"
	"github.com/ctibridge/ctibridge/secret"
	"github.com/ctibridge/ctibridge/snowsim"
)

var events = []string{"queued", "answered", "transferred", "released"}

type fixture struct {
	Variables map[string]string `json:"variables"`
	Path      string            `json:"path"`
	Body      map[string]string `json:"body"`
}

// snippet is what the contract test reads from a snippet file.
type snippet struct {
	text     string
	url      string            // the ctiUrl template
	body     map[string]string // ctiBody field → template
	replyUse []string          // ctiReply.<key> the snippet reads
}

var (
	reURL   = regexp.MustCompile(`(?m)^ASSIGN ctiUrl = "\{ctibridgeUrl\}(.+)"$`)
	reField = regexp.MustCompile(`(?m)^ctiBody\.(\w+) = "(.*)"$`)
	reReply = regexp.MustCompile(`ctiReply\.(\w+)`)
	reVar   = regexp.MustCompile(`\{(\w+)\}`)
	reTime  = regexp.MustCompile(`(?m)^proxy\.ProxyTimeoutSeconds = (\d+)$`)
)

func readSnippet(t *testing.T, event string) snippet {
	t.Helper()
	b, err := os.ReadFile("ctibridge_" + event + ".snippet")
	if err != nil {
		t.Fatal(err)
	}
	s := snippet{text: string(b), body: map[string]string{}}
	m := reURL.FindStringSubmatch(s.text)
	if m == nil {
		t.Fatalf("%s: no ASSIGN ctiUrl line", event)
	}
	s.url = m[1]
	for _, f := range reField.FindAllStringSubmatch(s.text, -1) {
		s.body[f[1]] = f[2]
	}
	for _, r := range reReply.FindAllStringSubmatch(s.text, -1) {
		s.replyUse = append(s.replyUse, r[1])
	}
	return s
}

func render(t *testing.T, tmpl string, vars map[string]string) string {
	t.Helper()
	return reVar.ReplaceAllStringFunc(tmpl, func(v string) string {
		name := v[1 : len(v)-1]
		val, ok := vars[name]
		if !ok {
			t.Errorf("the fixture gives no value for Studio variable %s", name)
		}
		return val
	})
}

func readFixture(t *testing.T, event string) fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("fixtures", event+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("fixture %s: %v", event, err)
	}
	return f
}

// TestSnippetsFollowTheRules checks what every snippet must do in Studio.
func TestSnippetsFollowTheRules(t *testing.T) {
	for _, ev := range events {
		s := readSnippet(t, ev)
		for _, must := range []string{
			`ASSIGN proxy = GetRESTProxy()`,
			`proxy.ContentType = "application/json"`,
			`proxy.AddHeader("Authorization", "Bearer {ctibridgeKey}")`,
			`proxy.MakeRestRequest(ctiUrl, ctiPayload, 0, "POST")`,
			`ASSIGN ctiPayload = "{ctiBody.asjson()}"`,
			`ASSIGN ctiEvent = "` + ev + `"`,
			`ASSIGN ctiError = "{ctiStatus} {ctiReply.error}"`,
		} {
			if !strings.Contains(s.text, must) {
				t.Errorf("%s: missing %s", ev, must)
			}
		}
		m := reTime.FindStringSubmatch(s.text)
		if m == nil {
			t.Errorf("%s: ProxyTimeoutSeconds not set (Studio's default is 10 s)", ev)
		} else if n, _ := strconv.Atoi(m[1]); n < 1 || n > 2 {
			t.Errorf("%s: ProxyTimeoutSeconds %d, want at most 2", ev, n)
		}
		if strings.Contains(s.text, "WHILE") || strings.Contains(s.text, "WAIT") {
			t.Errorf("%s: a snippet in the call path must not loop or wait", ev)
		}
	}
	logErr, err := os.ReadFile("ctibridge_log_error.snippet")
	if err != nil || !strings.Contains(string(logErr), "GLOBAL:ctibridgeLastError") || !strings.Contains(string(logErr), "{ctiStatus}") {
		t.Errorf("error logger: %v", err)
	}
}

// TestFixturesAreWhatSnippetsSend: change a snippet's body and this fails
// until the fixture is changed with it.
func TestFixturesAreWhatSnippetsSend(t *testing.T) {
	for _, ev := range events {
		s, f := readSnippet(t, ev), readFixture(t, ev)
		got := map[string]string{}
		for field, tmpl := range s.body {
			got[field] = render(t, tmpl, f.Variables)
		}
		if !reflect.DeepEqual(got, f.Body) {
			t.Errorf("%s: the snippet sends %v, the fixture says %v", ev, got, f.Body)
		}
		if path := render(t, s.url, f.Variables); path != f.Path {
			t.Errorf("%s: the snippet posts to %s, the fixture says %s", ev, path, f.Path)
		}
	}
}

// TestFixturesDriveTheBridge posts the fixtures, as Studio would, to a
// bridge on the simulator and checks the interaction and the replies the
// snippets read; once as the snippets send them, and once signed (the
// configuration's security.hmacSecret) as the guide explains.
func TestFixturesDriveTheBridge(t *testing.T) {
	t.Run("unsigned", func(t *testing.T) { driveTheBridge(t, "") })
	t.Run("signed", func(t *testing.T) { driveTheBridge(t, "studio-hmac-secret-0123456789") })
}

func driveTheBridge(t *testing.T, hmacSecret secret.Secret) {
	sim, url := bridgetest.Simulator(t, snowsim.Options{})
	b, base := bridgetest.Serve(t, bridgetest.Config(t, url, map[string]string{"CTIBRIDGE_HMAC_SECRET": hmacSecret.Reveal()}))
	const key = bridgetest.Key

	var sysID string
	for _, ev := range events {
		s, f := readSnippet(t, ev), readFixture(t, ev)
		body, _ := json.Marshal(f.Body)
		req, _ := http.NewRequest("POST", base+f.Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		if !hmacSecret.IsZero() {
			api.SignRequest(req, hmacSecret, body, time.Now())
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var reply map[string]any
		json.NewDecoder(resp.Body).Decode(&reply)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", ev, resp.StatusCode, reply)
		}
		for _, k := range s.replyUse {
			if _, ok := reply[k]; !ok && k != "error" {
				t.Errorf("%s: the snippet reads ctiReply.%s, the reply has no such key: %v", ev, k, reply)
			}
		}
		sysID, _ = reply["interactionSysId"].(string)
		if ev == "queued" && !strings.Contains(reply["screenPopUrl"].(string), sysID) {
			t.Errorf("screen pop %v does not open interaction %s", reply["screenPopUrl"], sysID)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := b.Intake.Status(context.Background(), "630241195")
		if err == nil && st.InSync {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not in sync: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec, ok := sim.Record("interaction", sysID)
	if !ok || sysID != ctibridge.SysID("ctibridge", "630241195") {
		t.Fatalf("no interaction %s", sysID)
	}
	users := map[string]string{}
	for _, u := range sim.Records("sys_user") {
		users[u["sys_id"]] = u["user_name"]
	}
	if rec["state"] != "closed_complete" || users[rec["assigned_to"]] != "asmith" || users[rec["opened_for"]] != "alice.caller" ||
		rec["caller_phone_number"] != "+18013203420" {
		t.Errorf("interaction: state %s, agent %s, caller %s %s", rec["state"], users[rec["assigned_to"]], users[rec["opened_for"]], rec["caller_phone_number"])
	}
}
