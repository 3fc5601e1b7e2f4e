package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/ctibridge/ctibridge"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/bridge"
	"github.com/ctibridge/ctibridge/config"
	"github.com/ctibridge/ctibridge/lifecycle"
	"github.com/ctibridge/ctibridge/snowsim"
)

const apiKey = "test-key-0123456789abcdef"

// env is a simulator and a bridge wired together over real HTTP.
type env struct {
	t      *testing.T
	sim    *snowsim.Server
	simURL string
	cfg    *config.Config
	url    string // the bridge
	stop   func() // stops the bridge (graceful, like SIGTERM)
}

type option func(*config.Config)

func setup(t *testing.T, opts ...option) *env {
	t.Helper()
	return setupWith(t, snowsim.New(snowsim.Options{}), opts...)
}

// setupWith wires a bridge to a given simulator.
func setupWith(t *testing.T, sim *snowsim.Server, opts ...option) *env {
	t.Helper()
	return setupServing(t, sim, sim, opts...)
}

// setupServing wires a bridge to a simulator served through h (which may
// watch or hold the requests before passing them on).
func setupServing(t *testing.T, sim *snowsim.Server, h http.Handler, opts ...option) *env {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	cfg, err := config.Load("", func(k string) string {
		return map[string]string{
			"CTIBRIDGE_SN_INSTANCE": ts.URL, "CTIBRIDGE_SN_USERNAME": "cti_integration", "CTIBRIDGE_SN_PASSWORD": "cti_integration",
			"CTIBRIDGE_API_KEYS": apiKey, "CTIBRIDGE_DATABASE": filepath.Join(t.TempDir(), "bridge.db"),
			"CTIBRIDGE_CONSOLE_PASSWORD": "console-pass",
		}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Lifecycle.MaxBackoff = 300 * time.Millisecond
	cfg.Selected().RequestsPerHour = -1 // the simulator is not rate limited unless a test says so
	cfg.Security.RatePerKey = -1        // nor is the Studio key
	for _, o := range opts {
		o(cfg)
	}
	e := &env{t: t, sim: sim, simURL: ts.URL, cfg: cfg}
	e.start()
	return e
}

// start runs a bridge on cfg; stop shuts it down as SIGTERM would.
func (e *env) start() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := bridge.New(ctx, e.cfg, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.url = "http://" + ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := b.Serve(ctx, ln, nil); err != nil {
			e.t.Errorf("serve: %v", err)
		}
		b.Close()
	}()
	var once sync.Once
	e.stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(e.stop)
}

type reply struct {
	Status           string `json:"status"`
	InteractionSysID string `json:"interactionSysId"`
	ScreenPopURL     string `json:"screenPopUrl"`
	Number           string `json:"number"`
	Error            string `json:"error"`
	Field            string `json:"field"`
}

func (e *env) do(method, path, key string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (e *env) post(id, kind string, body any) reply {
	e.t.Helper()
	code, out := e.do("POST", "/v1/contacts/"+id+"/"+kind, apiKey, body)
	var r reply
	json.Unmarshal(out, &r)
	if code != 200 {
		e.t.Fatalf("POST %s %s: %d %s", id, kind, code, out)
	}
	return r
}

func (e *env) status(id string) lifecycle.Status {
	e.t.Helper()
	code, out := e.do("GET", "/v1/contacts/"+id, apiKey, nil)
	if code != 200 {
		e.t.Fatalf("GET %s: %d %s", id, code, out)
	}
	var s lifecycle.Status
	if err := json.Unmarshal(out, &s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// waitSynced waits until ServiceNow reflects every event of the calls.
func (e *env) waitSynced(timeout time.Duration, ids ...string) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for _, id := range ids {
		for {
			s := e.status(id)
			if s.InSync {
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("call %s not in sync after %s: %+v", id, timeout, s)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (e *env) interaction(sysID string) map[string]string {
	e.t.Helper()
	rec, ok := e.sim.Record("interaction", sysID)
	if !ok {
		e.t.Fatalf("interaction %s not in ServiceNow", sysID)
	}
	return rec
}

func (e *env) userID(userName string) string {
	e.t.Helper()
	for _, u := range e.sim.Records("sys_user") {
		if u["user_name"] == userName {
			return u["sys_id"]
		}
	}
	e.t.Fatalf("no sys_user %s in the simulator", userName)
	return ""
}

func (e *env) notes(sysID string) string {
	var all []string
	for _, j := range e.sim.Journal("interaction", sysID, "work_notes") {
		all = append(all, j.Value)
	}
	return strings.Join(all, "\n---\n")
}

func TestQueuedCreatesInteraction(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.post("5001", "queued", map[string]any{"contactId": 7001, "ani": "(801) 555-0142", "dnis": "8005550100", "skill": "42", "skillName": "Billing"})
	if r.Status != "accepted" || len(r.InteractionSysID) != 32 {
		t.Fatalf("reply = %+v", r)
	}
	if want := e.simURL + "/now/cwf/agent/record/interaction/" + r.InteractionSysID; r.ScreenPopURL != want {
		t.Errorf("screen pop = %q, want %q", r.ScreenPopURL, want)
	}
	if r.InteractionSysID != ctibridge.SysID("ctibridge", "5001") {
		t.Errorf("sys_id is not derived from namespace and master contact id")
	}
	e.waitSynced(10*time.Second, "5001")
	rec := e.interaction(r.InteractionSysID)
	for k, want := range map[string]string{"state": "new", "type": "phone", "direction": "inbound", "caller_phone_number": "+18015550142"} {
		if rec[k] != want {
			t.Errorf("interaction.%s = %q, want %q", k, rec[k], want)
		}
	}
	for _, want := range []string{"+18015550142", "Billing", "7001"} {
		if !strings.Contains(rec["short_description"], want) {
			t.Errorf("short_description %q does not mention %s", rec["short_description"], want)
		}
	}
	if !strings.HasPrefix(rec["number"], "IMS") || e.status("5001").Number != rec["number"] {
		t.Errorf("number %q not reported back (status %q)", rec["number"], e.status("5001").Number)
	}
}

func TestWaitReturnsNumber(t *testing.T) {
	t.Parallel()
	e := setup(t)
	code, out := e.do("POST", "/v1/contacts/5002/queued?wait=3s", apiKey, `{"ani":"8015550143"}`)
	var r reply
	json.Unmarshal(out, &r)
	if code != 200 || !strings.HasPrefix(r.Number, "IMS") {
		t.Fatalf("wait: %d %s; want a number", code, out)
	}
}

func TestAnsweredTransferredReleased(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.post("6001", "queued", map[string]any{"ani": "8015550150", "contactId": "1"})
	e.post("6001", "answered", map[string]any{"agentId": "11", "agentUserName": "jdoe", "contactId": "1"})
	e.waitSynced(10*time.Second, "6001")
	rec := e.interaction(r.InteractionSysID)
	if rec["state"] != "work_in_progress" || rec["assigned_to"] != e.userID("jdoe") {
		t.Fatalf("after answer: state %q assigned_to %q", rec["state"], rec["assigned_to"])
	}
	e.post("6001", "transferred", map[string]any{"agentId": "12", "agentUserName": "asmith", "contactId": "2"})
	e.waitSynced(10*time.Second, "6001")
	rec = e.interaction(r.InteractionSysID)
	if rec["assigned_to"] != e.userID("asmith") {
		t.Errorf("after transfer: assigned_to %q, want asmith", rec["assigned_to"])
	}
	if n := e.notes(r.InteractionSysID); !strings.Contains(n, "transferred from John Doe") || !strings.Contains(n, "to Anna Smith") {
		t.Errorf("no hand-off work note: %q", n)
	}
	e.post("6001", "released", map[string]any{"reason": "agent hung up", "disposition": "resolved"})
	e.waitSynced(10*time.Second, "6001")
	if rec = e.interaction(r.InteractionSysID); rec["state"] != "closed_complete" {
		t.Errorf("after release: state %q, want closed_complete", rec["state"])
	}
	if n := e.notes(r.InteractionSysID); !strings.Contains(n, "disposition: resolved") {
		t.Errorf("release note missing: %q", n)
	}
	if s := e.status("6001"); s.ConfirmedState != "closed_complete" || s.DesiredState != "closed_complete" || len(s.ContactIDs) != 2 {
		t.Errorf("status: %+v", s)
	}
}

func TestAbandonedAndKeepOpen(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ab := e.post("7001", "queued", `{"ani":"8015550160"}`)
	e.post("7001", "released", `{"reason":"caller hung up"}`)
	e.waitSynced(10*time.Second, "7001")
	if st := e.interaction(ab.InteractionSysID)["state"]; st != "closed_abandoned" {
		t.Errorf("unanswered call: state %q, want closed_abandoned", st)
	}

	k := setup(t, func(c *config.Config) { c.Lifecycle.KeepOpen = true })
	r := k.post("7002", "queued", `{"ani":"8015550161"}`)
	k.post("7002", "answered", `{"agentUserName":"jdoe"}`)
	k.post("7002", "released", `{}`)
	k.waitSynced(10*time.Second, "7002")
	if st := k.interaction(r.InteractionSysID)["state"]; st != "work_in_progress" {
		t.Errorf("keepOpen: state %q, want work_in_progress", st)
	}
}

func TestReleasedBeforeQueued(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.post("8001", "released", `{"reason":"caller hung up"}`)
	e.post("8001", "queued", `{"ani":"+44 20 7946 0958","skillName":"UK"}`)
	e.waitSynced(10*time.Second, "8001")
	rec := e.interaction(r.InteractionSysID)
	if rec["state"] != "closed_abandoned" || rec["caller_phone_number"] != "+442079460958" {
		t.Errorf("state %q caller %q; want closed_abandoned +442079460958", rec["state"], rec["caller_phone_number"])
	}
	if n := countInteractions(e.sim, r.InteractionSysID); n != 1 {
		t.Errorf("%d interactions with this sys_id, want 1", n)
	}
}

func countInteractions(sim *snowsim.Server, sysID string) int {
	n := 0
	for _, rec := range sim.Records("interaction") {
		if rec["sys_id"] == sysID {
			n++
		}
	}
	return n
}

func TestDuplicateEventsChangeNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	first := e.post("9001", "queued", `{"ani":"8015550170","contactId":"5"}`)
	e.waitSynced(10*time.Second, "9001")
	before := e.sim.Stats().Total
	for range 3 {
		if r := e.post("9001", "queued", `{"ani":"8015550170","contactId":"5"}`); r.Status != "duplicate" || r.InteractionSysID != first.InteractionSysID {
			t.Fatalf("duplicate answered %+v", r)
		}
	}
	// A duplicate does not change the call, so there is nothing to do.
	if s := e.status("9001"); !s.InSync || s.Events != 1 {
		t.Errorf("after duplicates: %d events, in sync %v; want the one event, in sync", s.Events, s.InSync)
	}
	if after := e.sim.Stats().Total; after != before {
		t.Errorf("duplicates caused %d ServiceNow requests", after-before)
	}
}

func TestStudioAPIRefusals(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tests := []struct {
		name, method, path, key, body string
		code                          int
		field                         string
	}{
		{"no key", "POST", "/v1/contacts/1/queued", "", `{}`, 401, "Authorization"},
		{"wrong key", "POST", "/v1/contacts/1/queued", "wrong-key-0123456789", `{}`, 401, "Authorization"},
		{"unknown event", "POST", "/v1/contacts/1/hold", apiKey, `{}`, 404, "event"},
		{"bad id", "POST", "/v1/contacts/a%20b/queued", apiKey, `{}`, 400, "masterContactId"},
		{"malformed json", "POST", "/v1/contacts/1/queued", apiKey, `{"ani":`, 400, "body"},
		{"object value", "POST", "/v1/contacts/1/queued", apiKey, `{"ani":{"x":1}}`, 400, "ani"},
		{"long ani", "POST", "/v1/contacts/1/queued", apiKey, `{"ani":"` + strings.Repeat("1", 300) + `"}`, 400, "ani"},
		{"bad direction", "POST", "/v1/contacts/1/queued", apiKey, `{"direction":"sideways"}`, 400, "direction"},
		{"bad wait", "POST", "/v1/contacts/1/queued?wait=1h", apiKey, `{}`, 400, "wait"},
		{"bad time", "POST", "/v1/contacts/1/answered", apiKey, `{"occurredAt":"yesterday"}`, 400, "occurredAt"},
		{"unknown contact", "GET", "/v1/contacts/404404", apiKey, "", 404, "masterContactId"},
		{"huge body", "POST", "/v1/contacts/1/queued", apiKey, `{"x":"` + strings.Repeat("a", 70000) + `"}`, 413, "body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := e.do(tt.method, tt.path, tt.key, tt.body)
			var p reply
			json.Unmarshal(out, &p)
			if code != tt.code || p.Field != tt.field || p.Error == "" {
				t.Errorf("got %d %s; want %d naming %q", code, out, tt.code, tt.field)
			}
		})
	}
}

// TestThousandShuffledCalls sends 1,000 calls' events in random order with
// duplicates, and checks that exactly 1,000 interactions end in the right state.
func TestThousandShuffledCalls(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *config.Config) { c.Lifecycle.Workers = 8 })
	const calls = 1000
	type sent struct{ id, kind, body string }
	var events []sent
	want := map[string]string{}
	base := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range calls {
		id := fmt.Sprintf("%d", 100000+i)
		at := func(s int) string {
			return base.Add(time.Duration(i)*time.Minute + time.Duration(s)*time.Second).Format(time.RFC3339)
		}
		events = append(events, sent{id, "queued", fmt.Sprintf(`{"ani":"801555%04d","occurredAt":%q}`, i%10000, at(0))})
		switch i % 4 {
		case 0: // abandoned
			events = append(events, sent{id, "released", fmt.Sprintf(`{"occurredAt":%q}`, at(30))})
			want[id] = "closed_abandoned|"
		case 1: // answered, still talking
			events = append(events, sent{id, "answered", fmt.Sprintf(`{"agentUserName":"jdoe","occurredAt":%q}`, at(10))})
			want[id] = "work_in_progress|jdoe"
		case 2: // answered, transferred, released
			events = append(events,
				sent{id, "answered", fmt.Sprintf(`{"agentUserName":"jdoe","contactId":"a","occurredAt":%q}`, at(10))},
				sent{id, "transferred", fmt.Sprintf(`{"agentUserName":"asmith","contactId":"b","occurredAt":%q}`, at(20))},
				sent{id, "released", fmt.Sprintf(`{"occurredAt":%q}`, at(40))})
			want[id] = "closed_complete|asmith"
		case 3: // answered and released
			events = append(events,
				sent{id, "answered", fmt.Sprintf(`{"agentUserName":"bwayne","occurredAt":%q}`, at(10))},
				sent{id, "released", fmt.Sprintf(`{"occurredAt":%q}`, at(50))})
			want[id] = "closed_complete|bwayne"
		}
	}
	// Every tenth event is sent twice (a Studio retry).
	for i := 0; i < len(events); i += 10 {
		events = append(events, events[i])
	}
	rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })

	var wg sync.WaitGroup
	ch := make(chan sent)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range ch {
				code, out := e.do("POST", "/v1/contacts/"+ev.id+"/"+ev.kind, apiKey, ev.body)
				if code != 200 {
					t.Errorf("%s %s: %d %s", ev.id, ev.kind, code, out)
				}
			}
		}()
	}
	for _, ev := range events {
		ch <- ev
	}
	close(ch)
	wg.Wait()

	ids := make([]string, 0, calls)
	for id := range want {
		ids = append(ids, id)
	}
	e.waitSynced(3*time.Minute, ids...)
	users := map[string]string{}
	for _, u := range e.sim.Records("sys_user") {
		users[u["sys_id"]] = u["user_name"]
	}
	got := e.sim.Records("interaction")
	if len(got) != calls {
		t.Fatalf("%d interactions in ServiceNow, want %d", len(got), calls)
	}
	bySys := map[string]map[string]string{}
	for _, rec := range got {
		bySys[rec["sys_id"]] = rec
	}
	wrong := 0
	for id, w := range want {
		rec := bySys[ctibridge.SysID("ctibridge", id)]
		if g := rec["state"] + "|" + users[rec["assigned_to"]]; g != w {
			if wrong++; wrong <= 5 {
				t.Errorf("call %s: state|agent = %q, want %q", id, g, w)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d calls in the wrong final state", wrong, calls)
	}
}

func TestServiceNowDownThenBack(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.sim.SetFaults(snowsim.Faults{Down: true})
	var ids []string
	for i := range 20 {
		id := fmt.Sprintf("%d", 30000+i)
		ids = append(ids, id)
		e.post(id, "queued", fmt.Sprintf(`{"ani":"80155501%02d"}`, i))
		e.post(id, "released", `{}`)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s := e.status(ids[0])
		if s.InSync {
			t.Fatalf("in sync while ServiceNow is down: %+v", s)
		}
		if s.Attempts > 0 && s.LastError != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("while ServiceNow is down: %+v; want attempts and an error", s)
		}
	}
	e.sim.SetFaults(snowsim.Faults{})
	e.waitSynced(time.Minute, ids...)
	if n := len(e.sim.Records("interaction")); n != 20 {
		t.Errorf("%d interactions after the outage, want 20", n)
	}
	for _, id := range ids {
		if st := e.interaction(ctibridge.SysID("ctibridge", id))["state"]; st != "closed_abandoned" {
			t.Errorf("call %s: state %q", id, st)
		}
	}
}

func TestRestartLosesAndDoublesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.sim.SetFaults(snowsim.Faults{Latency: 30 * time.Millisecond})
	var ids []string
	for i := range 60 {
		id := fmt.Sprintf("%d", 40000+i)
		ids = append(ids, id)
		e.post(id, "queued", fmt.Sprintf(`{"ani":"80155502%02d"}`, i))
		e.post(id, "answered", `{"agentUserName":"jdoe"}`)
	}
	e.stop() // mid-run: most calls are not in ServiceNow yet
	if n := len(e.sim.Records("interaction")); n >= 60 {
		t.Logf("all interactions were written before the stop; the restart path is still checked")
	}
	e.start() // same database file
	for _, id := range ids {
		e.post(id, "released", `{}`)
	}
	e.waitSynced(time.Minute, ids...)
	if n := len(e.sim.Records("interaction")); n != 60 {
		t.Errorf("%d interactions after restart, want 60", n)
	}
	for _, id := range ids {
		if st := e.interaction(ctibridge.SysID("ctibridge", id))["state"]; st != "closed_complete" {
			t.Errorf("call %s: state %q", id, st)
		}
	}
}

// TestNotesOnceWhenRepliesAreLost: ServiceNow applies half of the writes
// without answering (the reply is lost after the commit). Every call still
// gets one interaction, and each work note is in its journal exactly once.
func TestNotesOnceWhenRepliesAreLost(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.sim.SetFaults(snowsim.Faults{DropReplyRate: 0.5})
	var ids []string
	for i := range 12 {
		ids = append(ids, fmt.Sprintf("%d", 52000+i))
	}
	// One moment at a time, so that creates, assignments, the transfer and
	// the release are separate writes, each of which may lose its reply.
	steps := []struct{ kind, body string }{
		{"queued", `{"ani":"8015550199"}`},
		{"answered", `{"agentUserName":"jdoe"}`},
		{"transferred", `{"agentUserName":"nobody-here"}`}, // unmapped: a note of its own
		{"transferred", `{"agentUserName":"asmith"}`},
		{"released", `{"reason":"caller hung up"}`},
	}
	for _, st := range steps {
		for _, id := range ids {
			e.post(id, st.kind, st.body)
		}
		e.waitSynced(time.Minute, ids...)
	}
	// Abandoned calls whose events arrive together: create, then the note.
	var abandoned []string
	for i := range 6 {
		id := fmt.Sprintf("%d", 53000+i)
		abandoned = append(abandoned, id)
		e.post(id, "queued", `{"ani":"8015550198"}`)
		e.post(id, "released", `{}`)
	}
	e.waitSynced(time.Minute, abandoned...)
	e.sim.SetFaults(snowsim.Faults{})

	if n := len(e.sim.Records("interaction")); n != len(ids)+len(abandoned) {
		t.Errorf("%d interactions, want %d", n, len(ids)+len(abandoned))
	}
	count := func(sysID, text string) int {
		n := 0
		for _, j := range e.sim.Journal("interaction", sysID, "work_notes") {
			n += strings.Count(j.Value, text)
		}
		return n
	}
	for _, id := range ids {
		sysID := ctibridge.SysID("ctibridge", id)
		for _, text := range []string{"has no ServiceNow user", "transferred from John Doe to nobody-here", "from nobody-here to Anna Smith", "ctibridge: call ended."} {
			if n := count(sysID, text); n != 1 {
				t.Errorf("call %s: note %q written %d times, want once; journal:\n%s", id, text, n, e.notes(sysID))
			}
		}
		rec := e.interaction(sysID)
		if rec["state"] != "closed_complete" || rec["assigned_to"] != e.userID("asmith") {
			t.Errorf("call %s: state %q assigned to %q, want closed_complete and asmith", id, rec["state"], rec["assigned_to"])
		}
	}
	for _, id := range abandoned {
		sysID := ctibridge.SysID("ctibridge", id)
		if n := count(sysID, "caller hung up before an agent answered"); n != 1 {
			t.Errorf("abandoned call %s: release note written %d times, want once; journal:\n%s", id, n, e.notes(sysID))
		}
	}
}

// TestShutdownCancelsAttemptsInTime: ServiceNow takes far longer than the
// shutdown timeout to answer a create. The bridge stops within the timeout
// anyway (cancelling the attempt, as a supervisor's grace period demands),
// and the next start finishes the call: the create that ServiceNow applied
// after the bridge gave up on it is found, not made twice.
func TestShutdownCancelsAttemptsInTime(t *testing.T) {
	t.Parallel()
	sim := snowsim.New(snowsim.Options{})
	arrived := make(chan struct{})
	var slow sync.Once
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/interaction") {
			slow.Do(func() {
				close(arrived)
				time.Sleep(4 * time.Second) // the instance is slow; it applies the create all the same
			})
		}
		sim.ServeHTTP(w, r)
	})
	e := setupServing(t, sim, h, func(c *config.Config) { c.ShutdownTimeout = time.Second })
	e.post("61000", "queued", `{"ani":"8015550142"}`)
	<-arrived // the create is in flight
	e.stop()
	if n := len(e.sim.Records("interaction")); n != 0 {
		t.Fatalf("%d interactions already: the stop waited for ServiceNow instead of cancelling at the shutdown timeout", n)
	}
	e.start()
	e.waitSynced(time.Minute, "61000")
	if n := len(e.sim.Records("interaction")); n != 1 {
		t.Errorf("%d interactions after the restart, want 1", n)
	}
}

// TestScreenPopRedirect: an agent desktop that never saw Studio's reply
// opens /v1/pop/{id} and lands on the call's interaction; no key needed.
func TestScreenPopRedirect(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.post("62000", "queued", `{"ani":"8015550142"}`)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(e.url + "/v1/pop/62000")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != r.ScreenPopURL {
		t.Errorf("pop: %d to %q, want 302 to %q", resp.StatusCode, resp.Header.Get("Location"), r.ScreenPopURL)
	}
	if code, body := e.do("GET", "/v1/pop/a%20b", "", nil); code != http.StatusBadRequest || !strings.Contains(string(body), "masterContactId") {
		t.Errorf("bad id: %d %s, want 400 naming masterContactId", code, body)
	}
}
