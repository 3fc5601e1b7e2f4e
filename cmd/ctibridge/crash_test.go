package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ctibridge/ctibridge"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/lifecycle"
	"github.com/ctibridge/ctibridge/snowsim"
)

// The crash suite: bridges run as child processes (`serve`) and are killed
// with SIGKILL while Studio's events flow; afterwards every call must be in
// ServiceNow exactly once, in its final state, with the last agent and each
// work note once. The calls, their event order and the kill points come from
// a seeded generator: a failure prints the seed, and CTIBRIDGE_CRASH_SEED
// replays the same calls and kill points (the timing differs).

// crashSeed returns the seed of the run, from CTIBRIDGE_CRASH_SEED when set.
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CTIBRIDGE_CRASH_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CTIBRIDGE_CRASH_SEED=%q is not an unsigned integer", v)
		}
		seed = n
	}
	t.Logf("seed %d (replay the calls and kill points with CTIBRIDGE_CRASH_SEED=%d)", seed, seed)
	return seed
}

// crashAgent is an agent of the simulator's default dataset.
type crashAgent struct{ user, id, name string }

var crashAgents = []crashAgent{
	{"jdoe", "1001", "John Doe"}, {"asmith", "1002", "Anna Smith"}, {"bwayne", "1003", "Bruce Wayne"},
	{"ckent", "1004", "Clark Kent"}, {"dprince", "1005", "Diana Prince"},
}

// label is how a work note names the agent.
func (a crashAgent) label() string { return a.name + " (CXone agent " + a.id + ")" }

// aliceANI is a caller of the default dataset with two open incidents.
const aliceANI = "(801) 320-3420"

type studioEvent struct {
	kind string
	body []byte
}

// plannedCall is one generated call and what ServiceNow must end up holding.
type plannedCall struct {
	id        string // master contact id
	contactID string // CXone contact id of the first leg
	ani       string
	agents    []crashAgent // who had the call, in order: answered, then transfers
	stamped   bool         // events carry occurredAt
	release   [3]string    // reason, disposition, notes
	events    []studioEvent
	send      []studioEvent // events doubled and shuffled, as sent
}

func (c *plannedCall) answered() bool { return len(c.agents) > 0 }

func (c *plannedCall) wantState() string {
	if c.answered() {
		return "closed_complete"
	}
	return "closed_abandoned"
}

// noteSlot is one work note the interaction must carry exactly once: a
// transfer to an agent, or the end of the call.
type noteSlot struct {
	want string // the text once every event is known
	// early are the texts the bridge writes when it writes the note before
	// a late event arrives (a transfer before the answer or an earlier
	// transfer, a release before the answer): the same note, describing
	// the call as it knew it then.
	early []string
}

// noteSlots are the work notes the call's interaction must carry, each once.
func (c *plannedCall) noteSlots() []noteSlot {
	var out []noteSlot
	for i := 1; i < len(c.agents); i++ {
		to := " to " + c.agents[i].label() + "."
		slot := noteSlot{want: "ctibridge: call transferred from " + c.agents[i-1].label() + to,
			early: []string{"ctibridge: call transferred from the queue" + to}}
		for _, a := range c.agents[:i-1] {
			slot.early = append(slot.early, "ctibridge: call transferred from "+a.label()+to)
		}
		out = append(out, slot)
	}
	tail := fmt.Sprintf(" reason: %s; disposition: %s; notes: %s", c.release[0], c.release[1], c.release[2])
	hungUp := "ctibridge: caller hung up before an agent answered." + tail
	if !c.answered() {
		return append(out, noteSlot{want: hungUp})
	}
	return append(out, noteSlot{want: "ctibridge: call ended." + tail, early: []string{hungUp}})
}

// planCalls generates n calls. About a fifth are abandoned (queued and
// released only). A quarter carry occurredAt stamps; those that are answered
// are transferred twice, and the stamps decide who has the call. Unstamped
// calls are transferred at most once: without stamps the intake orders an
// answer before a transfer, but two transfers only by arrival.
func planCalls(rng *rand.Rand, prefix string, n int) []*plannedCall {
	calls := make([]*plannedCall, n)
	base := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	for i := range calls {
		leg := 7_000_000 + 10*i
		c := &plannedCall{id: fmt.Sprintf("%s%04d", prefix, i), contactID: strconv.Itoa(leg), stamped: rng.IntN(4) == 0,
			ani: fmt.Sprintf("+1 312 555 %04d", i)}
		if i%10 == 3 {
			c.ani = aliceANI
		}
		if rng.IntN(5) != 0 {
			transfers := 0
			switch {
			case c.stamped:
				transfers = 2
			case rng.IntN(5) < 2:
				transfers = 1
			}
			c.agents = []crashAgent{crashAgents[rng.IntN(len(crashAgents))]}
			for range transfers {
				prev := c.agents[len(c.agents)-1]
				next := prev
				for next == prev {
					next = crashAgents[rng.IntN(len(crashAgents))]
				}
				c.agents = append(c.agents, next)
			}
		}
		c.release = [3]string{"caller hung up", []string{"resolved", "callback", "escalated"}[rng.IntN(3)], "call " + c.id + " asked about order " + strconv.Itoa(rng.IntN(100000))}
		if !c.answered() {
			c.release[0] = "abandoned in queue"
		}
		t0 := base.Add(time.Duration(i) * time.Minute)
		event := func(kind string, at time.Duration, fields map[string]string) {
			if c.stamped {
				fields["occurredAt"] = t0.Add(at).Format(time.RFC3339)
			}
			body, _ := json.Marshal(fields)
			c.events = append(c.events, studioEvent{kind, body})
		}
		event("queued", 0, map[string]string{"contactId": c.contactID, "ani": c.ani, "dnis": "8005550100", "skill": "42", "skillName": "Support"})
		for k, a := range c.agents {
			kind := "answered"
			if k > 0 {
				kind = "transferred"
			}
			event(kind, time.Duration(10+30*k)*time.Second, map[string]string{"contactId": strconv.Itoa(leg + k), "agentId": a.id, "agentUserName": a.user})
		}
		event("released", 5*time.Minute, map[string]string{"contactId": strconv.Itoa(leg + max(0, len(c.agents)-1)),
			"reason": c.release[0], "disposition": c.release[1], "notes": c.release[2]})
		c.send = append(append([]studioEvent{}, c.events...), c.events...)
		rng.Shuffle(len(c.send), func(a, b int) { c.send[a], c.send[b] = c.send[b], c.send[a] })
		calls[i] = c
	}
	return calls
}

func eventsToSend(calls []*plannedCall) int64 {
	var n int64
	for _, c := range calls {
		n += int64(len(c.send))
	}
	return n
}

// studio posts events the way Studio does, retrying each until a 2xx: a
// refused connection or a 5xx (a bridge being killed or restarted, a store
// that is down) is retried, on the next bridge when there are several, as
// a load balancer would.
type studio struct {
	client   *http.Client
	bridges  []string // base URLs
	deadline time.Duration

	aborted     atomic.Bool  // set when the test has failed: stop retrying
	acked       atomic.Int64 // 2xx answers
	refused     atomic.Int64 // no answer: connection refused or broken
	unavailable atomic.Int64 // 5xx answers
	// observe, when set, sees every answer: when the request was sent, when
	// it was answered, and the status (0 for no answer).
	observe func(sent, answered time.Time, status int)
}

func newStudio(bridges ...string) *studio {
	return &studio{bridges: bridges, deadline: 2 * time.Minute,
		client: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
}

func (s *studio) post(c *plannedCall, ev studioEvent, first int) error {
	give := time.Now().Add(s.deadline)
	var last string
	for attempt := 0; ; attempt++ {
		if s.aborted.Load() {
			return fmt.Errorf("%s %s: sending stopped, the test failed", c.id, ev.kind)
		}
		if time.Now().After(give) {
			return fmt.Errorf("%s %s was never accepted in %s; last answer: %s", c.id, ev.kind, s.deadline, last)
		}
		if attempt > 0 {
			// Studio's retry delay, not a wait for something to happen.
			time.Sleep(time.Duration(min(attempt, 10)) * 10 * time.Millisecond)
		}
		req, err := http.NewRequest(http.MethodPost, s.bridges[(first+attempt)%len(s.bridges)]+"/v1/contacts/"+c.id+"/"+ev.kind, bytes.NewReader(ev.body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+childKey)
		req.Header.Set("Content-Type", "application/json")
		sent := time.Now()
		resp, err := s.client.Do(req)
		if err != nil {
			s.refused.Add(1)
			if s.observe != nil {
				s.observe(sent, time.Now(), 0)
			}
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if s.observe != nil {
			s.observe(sent, time.Now(), resp.StatusCode)
		}
		switch {
		case resp.StatusCode/100 == 2:
			s.acked.Add(1)
			return nil
		case resp.StatusCode >= 500:
			s.unavailable.Add(1)
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		default:
			return fmt.Errorf("%s %s refused: %d %s", c.id, ev.kind, resp.StatusCode, body)
		}
	}
}

// play sends every call's events, each call's in its shuffled order, from
// several goroutines; the events of one call go to the bridges in turn.
func (s *studio) play(calls []*plannedCall, goroutines int) error {
	work := make(chan int, len(calls))
	for i := range calls {
		work <- i
	}
	close(work)
	errc := make(chan error, goroutines)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c := calls[i]
				for j, ev := range c.send {
					if err := s.post(c, ev, i+j); err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// status asks any bridge (the first that answers) what it knows of a call.
func (s *studio) status(id string) (lifecycle.Status, error) {
	var last error
	for _, b := range s.bridges {
		req, _ := http.NewRequest(http.MethodGet, b+"/v1/contacts/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+childKey)
		resp, err := s.client.Do(req)
		if err != nil {
			last = err
			continue
		}
		var st lifecycle.Status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			last = fmt.Errorf("status of %s from %s: %d %v", id, b, resp.StatusCode, err)
			continue
		}
		return st, nil
	}
	return lifecycle.Status{}, last
}

// waitSynced polls the bridges until every call is in sync with ServiceNow,
// and returns their statuses; on timeout it says which calls are behind. It
// is called once every event was acknowledged, so a parked call (one that
// waits for an operator) fails it at once.
func (s *studio) waitSynced(calls []*plannedCall, timeout time.Duration) (map[string]lifecycle.Status, error) {
	deadline := time.Now().Add(timeout)
	out := map[string]lifecycle.Status{}
	for {
		var behind, parked []string
		for _, c := range calls {
			if _, ok := out[c.id]; ok {
				continue
			}
			st, err := s.status(c.id)
			switch {
			case err != nil:
				behind = append(behind, fmt.Sprintf("%s: %v", c.id, err))
			case st.InSync:
				out[c.id] = st
			default:
				line := fmt.Sprintf("%s: %d events, desired %s, confirmed %q, attempts %d, parked %v, last error %q",
					c.id, st.Events, st.DesiredState, st.ConfirmedState, st.Attempts, st.Parked, st.LastError)
				behind = append(behind, line)
				if st.Parked {
					parked = append(parked, line)
				}
			}
		}
		if len(behind) == 0 {
			return out, nil
		}
		if len(parked) > 0 {
			return out, fmt.Errorf("%d of %d calls parked (they wait for an operator), e.g.:\n  %s", len(parked), len(calls),
				strings.Join(parked[:min(len(parked), 10)], "\n  "))
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("%d of %d calls not in sync after %s, e.g.:\n  %s", len(behind), len(calls), timeout,
				strings.Join(behind[:min(len(behind), 10)], "\n  "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var contactInDescription = regexp.MustCompile(`CXone contact (\S+)$`)

// verifyCalls checks ServiceNow against the plan: exactly one interaction
// per call (by derived sys_id and by CXone contact id), its final state, the
// last agent assigned, each work note exactly once and no other, Alice's two
// incidents linked once each; and that the store kept every distinct event
// Studio was told it had accepted.
func verifyCalls(t *testing.T, sim *snowsim.Server, calls []*plannedCall, statuses map[string]lifecycle.Status) {
	t.Helper()
	problems := map[string][]string{}
	problem := func(kind, format string, a ...any) {
		problems[kind] = append(problems[kind], fmt.Sprintf(format, a...))
	}

	recs := sim.Records("interaction")
	perContact := map[string]int{}
	for _, r := range recs {
		if m := contactInDescription.FindStringSubmatch(r["short_description"]); m != nil {
			perContact[m[1]]++
		} else {
			problem("interaction without a CXone contact", "%s: short_description %q", r["number"], r["short_description"])
		}
	}
	if len(recs) != len(calls) {
		problem("interaction count", "%d interactions for %d calls", len(recs), len(calls))
	}
	users := map[string]string{}
	for _, u := range sim.Records("sys_user") {
		users[u["user_name"]] = u["sys_id"]
	}
	var stale []string
	notesSeen := 0
	related := map[string]int{}
	for _, r := range sim.Records("interaction_related_record") {
		related[r["interaction"]]++
	}
	for _, c := range calls {
		if n := perContact[c.contactID]; n != 1 {
			problem("interactions per contact", "%s (contact %s): %d interactions", c.id, c.contactID, n)
		}
		sysID := ctibridge.SysID("ctibridge", c.id)
		rec, ok := sim.Record("interaction", sysID)
		if !ok {
			problem("missing interaction", "%s: no interaction %s", c.id, sysID)
			continue
		}
		if rec["state"] != c.wantState() {
			problem("state", "%s: state %s, want %s", c.id, rec["state"], c.wantState())
		}
		want := ""
		if c.answered() {
			want = users[c.agents[len(c.agents)-1].user]
		}
		if rec["assigned_to"] != want {
			problem("assigned_to", "%s (stamped %v, agents %v): assigned_to %q, want %q", c.id, c.stamped, c.agentNames(), rec["assigned_to"], want)
		}
		// Each journal entry holds the notes of one write, separated by a
		// blank line.
		slots := c.noteSlots()
		count := make([]int, len(slots))
		for _, j := range sim.Journal("interaction", sysID, "work_notes") {
		notes:
			for _, n := range strings.Split(j.Value, "\n\n") {
				notesSeen++
				for k, slot := range slots {
					if n == slot.want || slices.Contains(slot.early, n) {
						count[k]++
						if n != slot.want {
							stale = append(stale, fmt.Sprintf("%s (stamped %v, agents %v): %q, now %q", c.id, c.stamped, c.agentNames(), n, slot.want))
						}
						continue notes
					}
				}
				problem("unexpected work note", "%s (stamped %v, agents %v): %q", c.id, c.stamped, c.agentNames(), n)
			}
		}
		for k, slot := range slots {
			if count[k] != 1 {
				problem("work note count", "%s (stamped %v, agents %v): %q written %d times, want once", c.id, c.stamped, c.agentNames(), slot.want, count[k])
			}
		}
		if c.ani == aliceANI && related[sysID] != 2 {
			problem("related records", "%s: %d related records, want Alice's 2 open incidents", c.id, related[sysID])
		}
		if st := statuses[c.id]; st.Events != len(c.events) {
			problem("events stored", "%s: the store holds %d distinct events, want %d", c.id, st.Events, len(c.events))
		}
	}
	// A note written before a late event arrived describes the call as the
	// bridge knew it; a journal entry cannot be taken back. Counted, not
	// failed: the bridge cannot know an event is still to come.
	if len(stale) > 0 {
		t.Logf("%d of %d work notes were written before a late event arrived and describe the call as it was known then, e.g.:\n  %s",
			len(stale), notesSeen, strings.Join(stale[:min(len(stale), 5)], "\n  "))
	}
	kinds := make([]string, 0, len(problems))
	for k := range problems {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		ps := problems[k]
		t.Errorf("%s: %d problem(s), e.g.:\n  %s", k, len(ps), strings.Join(ps[:min(len(ps), 8)], "\n  "))
	}
}

func (c *plannedCall) agentNames() []string {
	out := make([]string, len(c.agents))
	for i, a := range c.agents {
		out[i] = a.user
	}
	return out
}

// crashSimulator starts a ServiceNow simulator with a little latency, so
// that kills find ServiceNow writes in flight.
func crashSimulator(t *testing.T, latency time.Duration) (*snowsim.Server, string) {
	sim := snowsim.New(snowsim.Options{Faults: snowsim.Faults{Latency: latency, Jitter: latency / 2}})
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	return sim, ts.URL
}

// serveChild is `ctibridge serve` in a child process, on a port of its own
// that it keeps across restarts.
type serveChild struct {
	t    *testing.T
	name string
	addr string
	env  []string
	log  *tailBuffer

	cmd    *exec.Cmd
	exited chan error
}

func newServeChild(t *testing.T, name string, vars map[string]string) *serveChild {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := append(os.Environ(), "CTIBRIDGE_TEST_CHILD=serve", "CTIBRIDGE_LISTEN="+addr,
		"CTIBRIDGE_SN_USERNAME=cti_integration", "CTIBRIDGE_SN_PASSWORD=cti_integration", "CTIBRIDGE_API_KEYS="+childKey,
		"CTIBRIDGE_RATE_PER_KEY=-1", "CTIBRIDGE_SN_REQUESTS_PER_HOUR=-1", "CTIBRIDGE_LOG_LEVEL=warn")
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	c := &serveChild{t: t, name: name, addr: addr, env: env, log: &tailBuffer{max: 256 << 10}}
	t.Cleanup(func() {
		if c.running() {
			c.kill()
		}
		if t.Failed() {
			t.Logf("%s's log (the end):\n%s", name, c.log.String())
		}
	})
	return c
}

func (c *serveChild) url() string   { return "http://" + c.addr }
func (c *serveChild) running() bool { return c.cmd != nil }

// start runs serve and waits until it answers /healthz.
func (c *serveChild) start() error {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = c.log, c.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c.cmd, c.exited = cmd, exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(c.url() + "/healthz")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-exited:
			c.cmd = nil
			return fmt.Errorf("%s exited before serving: %v\n%s", c.name, err, c.log.String())
		default:
		}
		if time.Now().After(deadline) {
			c.kill()
			return fmt.Errorf("%s did not answer /healthz within 30s: %v", c.name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *serveChild) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
	c.cmd = nil
}

// stop sends SIGTERM and returns how the process ended (nil: exit status 0).
func (c *serveChild) stop() error {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		c.cmd = nil
		return err
	case <-time.After(30 * time.Second):
		c.kill()
		return errors.New(c.name + " did not exit within 30s of SIGTERM")
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > w.max {
		w.b = w.b[len(w.b)-w.max:]
	}
	return len(p), nil
}

func (w *tailBuffer) String() string { w.mu.Lock(); defer w.mu.Unlock(); return string(w.b) }

// waitFor polls cond every few milliseconds until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// TestCrashLoopSQLite: one bridge on a SQLite file, killed with SIGKILL at
// random moments at least 20 times while Studio's shuffled, doubled events
// for 400 calls flow and while its workers write to ServiceNow, restarted
// each time. Every acknowledged event counts, and ServiceNow ends with
// exactly one correct interaction per call.
func TestCrashLoopSQLite(t *testing.T) {
	start := time.Now()
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	sim, simURL := crashSimulator(t, 15*time.Millisecond)
	child := newServeChild(t, "serve", map[string]string{
		"CTIBRIDGE_DATABASE": filepath.Join(t.TempDir(), "bridge.db"), "CTIBRIDGE_SN_INSTANCE": simURL})
	if err := child.start(); err != nil {
		t.Fatal(err)
	}

	const calls, sendKills, drainKills = 400, 22, 4
	plan := planCalls(rng, "crash", calls)
	st := newStudio(child.url())
	total := eventsToSend(plan)
	// Kill points while events flow: at random numbers of acknowledged
	// events, and each after a random number of events the restarted
	// bridge has acknowledged.
	points := make([]int64, sendKills)
	for i := range points {
		points[i] = total/50 + rng.Int64N(total*9/10)
	}
	slices.Sort(points)
	after := make([]int64, sendKills)
	for i := range after {
		after[i] = 1 + rng.Int64N(40)
	}
	// Kill points while the workers drain what is left: after a random
	// number of ServiceNow requests since the restart.
	drainAfter := make([]int64, drainKills)
	for i := range drainAfter {
		drainAfter[i] = 3 + rng.Int64N(60)
	}

	var kills atomic.Int64
	var restartTime time.Duration
	restart := func() error {
		child.kill()
		kills.Add(1)
		t0 := time.Now()
		err := child.start()
		restartTime += time.Since(t0)
		return err
	}
	sent := make(chan struct{})
	killerDone := make(chan error, 1)
	go func() {
		// For the last fifth of the events ServiceNow slows down, so that
		// work is left for the workers when Studio is done.
		slowed := false
		slowDown := func() {
			if !slowed && st.acked.Load() >= total*4/5 {
				sim.SetFaults(snowsim.Faults{Latency: 60 * time.Millisecond, Jitter: 30 * time.Millisecond})
				slowed = true
			}
		}
		acked0 := st.acked.Load()
		for i, p := range points {
			ok := func() bool { slowDown(); return st.acked.Load() >= min(total, max(p, acked0+after[i])) }
			for !ok() {
				select {
				case <-sent:
					killerDone <- nil // every event acknowledged: the rest are drain kills
					return
				case <-time.After(time.Millisecond):
				}
			}
			if err := restart(); err != nil {
				st.aborted.Store(true)
				killerDone <- err
				return
			}
			acked0 = st.acked.Load()
		}
		killerDone <- nil
	}()
	playErr := st.play(plan, 8)
	close(sent)
	if err := <-killerDone; err != nil {
		t.Fatal(err)
	}
	if playErr != nil {
		t.Fatal(playErr)
	}
	sendKilled := kills.Load()
	sendDone := time.Since(start)
	for _, n := range drainAfter {
		base := sim.Stats().Total
		if !waitFor(5*time.Second, func() bool { return sim.Stats().Total >= base+n }) {
			break // ServiceNow is quiet: the workers are done
		}
		if err := restart(); err != nil {
			t.Fatal(err)
		}
	}
	if k := kills.Load(); k < 20 {
		t.Errorf("killed %d times, want at least 20", k)
	}
	statuses, err := st.waitSynced(plan, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	synced := time.Since(start)
	if err := child.stop(); err != nil {
		t.Errorf("serve after SIGTERM: %v, want exit status 0", err)
	}
	verifyCalls(t, sim, plan, statuses)
	t.Logf("%d calls, %d events sent (%d acknowledged, %d refused connections, %d 5xx); killed %d times while sending, %d more while syncing; "+
		"restarts took %s in all; all sent after %s, all in sync after %s; %d ServiceNow requests",
		calls, total, st.acked.Load(), st.refused.Load(), st.unavailable.Load(), sendKilled, kills.Load()-sendKilled,
		restartTime.Round(time.Millisecond), sendDone.Round(time.Millisecond), synced.Round(time.Millisecond), sim.Stats().Total)
}
