// Package demo runs ctibridge end to end on one machine with nothing to
// configure: the ServiceNow simulator, a bridge on a temporary SQLite file, and
// a scripted set of calls covering every path a call can take. It is what a
// newcomer runs first, and with --once it is a smoke test: the exit status says
// whether every interaction reached the state the script expected.
//
// It never contacts anything but its own loopback listeners.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/cxonesim"

	"github.com/ctibridge/ctibridge/bridge"
	"github.com/ctibridge/ctibridge/config"
	"github.com/ctibridge/ctibridge/lifecycle"
	"github.com/ctibridge/ctibridge/secret"
	"github.com/ctibridge/ctibridge/snowsim"
)

// Failed is returned by Main when an interaction did not end as scripted.
type Failed struct{ N int }

func (f Failed) Error() string {
	return fmt.Sprintf("%d call(s) did not reach the expected state", f.N)
}

// ExitCode implements the command's exit-status convention.
func (f Failed) ExitCode() int { return 1 }

// Main is the `ctibridge demo` command.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	once := fs.Bool("once", false, "exit after the calls have played, with status 0 only if every interaction is as expected")
	verbose := fs.Bool("v", false, "log every step of the bridge")
	keep := fs.String("dir", "", "keep the database in this directory instead of a temporary one")
	fromCXone := fs.Bool("cxone", false, "no Studio at all: calls play in the CXone simulator and ctibridge follows them from CXone's APIs (cxone.poll)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir := *keep
	if dir == "" {
		d, err := os.MkdirTemp("", "ctibridge-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	logLevel := slog.LevelWarn + 4 // quiet unless -v
	if *verbose {
		logLevel = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))

	// The simulator, on a free loopback port.
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	simURL := "http://" + simLn.Addr().String()
	sim := snowsim.New(snowsim.Options{BaseURL: simURL, Faults: snowsim.Faults{Latency: 40 * time.Millisecond, Jitter: 30 * time.Millisecond}})
	simSrv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go simSrv.Serve(simLn)
	defer simSrv.Close()

	// The CXone simulator: ctibridge asks it who an agent is, as it would ask
	// CXone, since Studio knows only the agent's id when the call is answered.
	cxLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cxURL := "http://" + cxLn.Addr().String()
	cx := cxonesim.New(cxonesim.Options{})
	cxSrv := &http.Server{Handler: cx, ReadHeaderTimeout: 5 * time.Second}
	go cxSrv.Serve(cxLn)
	defer cxSrv.Close()

	// The bridge, as `serve` would run it, on OAuth like a production instance.
	key := secret.Secret("demo-" + randomHex(12))
	consolePass := secret.Secret("demo-" + randomHex(6))
	cfg, err := config.Load("", func(k string) string {
		return map[string]string{
			"CTIBRIDGE_SN_INSTANCE": simURL, "CTIBRIDGE_SN_CLIENT_ID": "ctibridge", "CTIBRIDGE_SN_CLIENT_SECRET": "ctibridge-secret",
			"CTIBRIDGE_SN_USERNAME": "cti_integration", "CTIBRIDGE_SN_PASSWORD": "cti_integration",
			"CTIBRIDGE_API_KEYS": key.Reveal(), "CTIBRIDGE_DATABASE": filepath.Join(dir, "ctibridge.db"),
			"CTIBRIDGE_CONSOLE_PASSWORD":    consolePass.Reveal(),
			"CTIBRIDGE_CXONE_ACCESS_KEY_ID": "cxonesim", "CTIBRIDGE_CXONE_ACCESS_KEY_SECRET": "cxonesim-secret", "CTIBRIDGE_CXONE_API": cxURL,
			"CTIBRIDGE_CXONE_POLL": map[bool]string{true: "1s"}[*fromCXone],
		}[k]
	})
	if err != nil {
		return err
	}
	cfg.Lifecycle.MaxBackoff = 2 * time.Second
	cfg.Selected().RequestsPerHour = 360000
	b, err := bridge.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer b.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	bridgeURL := "http://" + ln.Addr().String()
	serveCtx, stopServe := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- b.Serve(serveCtx, ln, nil) }()
	defer func() { stopServe(); <-served }()

	fmt.Fprintf(stdout, "ServiceNow simulator  %s  (admin/admin, cti_integration/cti_integration)\n", simURL)
	fmt.Fprintf(stdout, "CXone simulator       %s  (agents 1001-1005, resolved by ctibridge through the CXone API)\n", cxURL)
	fmt.Fprintf(stdout, "ctibridge             %s  (Studio key %s)\n\n", bridgeURL, key.Reveal())

	p := &player{url: bridgeURL, key: key, out: stdout, sim: sim}
	var calls []call
	if *fromCXone {
		fmt.Fprintln(stdout, "No Studio: the calls play in the CXone simulator, ctibridge polls CXone every second.")
		if calls, err = playInCXone(cx, sim, stdout); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "\nWaiting for the calls to end and ServiceNow to reflect them...")
		p.waitStates(ctx, calls, 90*time.Second)
	} else {
		calls = script(sim)
		if err := p.play(ctx, calls); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "\nWaiting for ServiceNow to reflect every call...")
		p.waitAll(ctx, calls, 90*time.Second)
	}
	bad := p.report(calls)

	fmt.Fprintf(stdout, "\nOperator console      %s/console/  (user admin, password %s)\n", bridgeURL, consolePass.Reveal())
	fmt.Fprintf(stdout, "A call's status       curl -H 'Authorization: Bearer %s' %s/v1/contacts/%s\n", key.Reveal(), bridgeURL, calls[0].id)
	fmt.Fprintf(stdout, "Metrics               %s/metrics\n", bridgeURL)
	fmt.Fprintf(stdout, "Interactions          curl -u admin:admin '%s/api/now/table/interaction?sysparm_fields=number,state,caller_phone_number'\n", simURL)
	if *once {
		if bad > 0 {
			return Failed{bad}
		}
		return nil
	}
	fmt.Fprintln(stdout, "\nServing until Ctrl-C.")
	<-ctx.Done()
	return nil
}

// call is one scripted call: the events Studio sends, and what ServiceNow
// should show at the end.
type call struct {
	id        string
	story     string
	events    []step
	wantState string
	wantAgent string // user_name, "" for none
	wantUser  string // caller's sys_user sys_id, "" for none
	wantNote  string // a work note must contain this
}

type step struct {
	kind string
	body map[string]any
}

type player struct {
	url string
	key secret.Secret
	out io.Writer
	sim *snowsim.Server
}

func (p *player) post(ctx context.Context, id string, s step) (map[string]any, error) {
	body, _ := json.Marshal(s.body)
	req, err := http.NewRequestWithContext(ctx, "POST", p.url+"/v1/contacts/"+id+"/"+s.kind, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+p.key.Reveal())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 {
		return out, fmt.Errorf("%s %s: HTTP %d %v", id, s.kind, resp.StatusCode, out)
	}
	return out, nil
}

func (p *player) play(ctx context.Context, calls []call) error {
	for _, c := range calls {
		fmt.Fprintf(p.out, "call %-6s %-48s", c.id, c.story)
		var kinds []string
		for _, s := range c.events {
			r, err := p.post(ctx, c.id, s)
			if err != nil {
				fmt.Fprintln(p.out)
				return err
			}
			k := s.kind
			if r["status"] == "duplicate" {
				k += "(dup)"
			}
			kinds = append(kinds, k)
		}
		fmt.Fprintln(p.out, strings.Join(kinds, " → "))
		time.Sleep(30 * time.Millisecond)
	}
	return nil
}

func (p *player) status(ctx context.Context, id string) (lifecycle.Status, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", p.url+"/v1/contacts/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+p.key.Reveal())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return lifecycle.Status{}, err
	}
	defer resp.Body.Close()
	var s lifecycle.Status
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// waitAll waits until every call is in sync with ServiceNow, as the
// bridge reports it.
func (p *player) waitAll(ctx context.Context, calls []call, limit time.Duration) {
	p.waitCalls(ctx, calls, limit, "in sync", func(c call) bool {
		s, err := p.status(ctx, c.id)
		return err == nil && s.InSync
	})
}

// waitStates waits until every call's interaction is in the state the
// script wants (calls followed from CXone end in their own time).
func (p *player) waitStates(ctx context.Context, calls []call, limit time.Duration) {
	p.waitCalls(ctx, calls, limit, "as scripted", func(c call) bool {
		rec, ok := p.sim.Record("interaction", ctibridge.SysID("ctibridge", c.id))
		return ok && rec["state"] == c.wantState
	})
}

// waitCalls shows how many calls are done, until all are or limit passes.
func (p *player) waitCalls(ctx context.Context, calls []call, limit time.Duration, what string, done func(call) bool) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		n := 0
		for _, c := range calls {
			if done(c) {
				n++
			}
		}
		fmt.Fprintf(p.out, "\r  %d/%d calls %s", n, len(calls), what)
		if n == len(calls) {
			fmt.Fprintln(p.out)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	fmt.Fprintln(p.out)
}

// report prints the resulting interactions and returns how many differ from
// the script.
func (p *player) report(calls []call) int {
	users := map[string]map[string]string{}
	names := map[string]string{} // contacts and consumers
	for _, u := range p.sim.Records("sys_user") {
		users[u["sys_id"]] = u
	}
	for _, t := range []string{"customer_contact", "csm_consumer"} {
		for _, r := range p.sim.Records(t) {
			names[r["sys_id"]] = r["name"]
		}
	}
	tw := tabwriter.NewWriter(p.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nCALL\tNUMBER\tCALLER\tAGENT\tSTATE\tCHECK")
	bad := 0
	for _, c := range calls {
		rec, ok := p.sim.Record("interaction", ctibridge.SysID("ctibridge", c.id))
		var problems []string
		if !ok {
			problems = append(problems, "no interaction")
			rec = map[string]string{}
		}
		agent := users[rec["assigned_to"]]["user_name"]
		caller := rec["caller_phone_number"]
		if u, ok := users[rec["opened_for"]]; ok {
			caller = u["name"] + " " + caller
		} else if n := names[rec["contact"]] + names[rec["consumer"]]; n != "" {
			caller = n + " " + caller
		} else if caller == "" {
			caller = "(withheld)"
		}
		if ok && rec["state"] != c.wantState {
			problems = append(problems, "state "+rec["state"]+", want "+c.wantState)
		}
		if ok && agent != c.wantAgent {
			problems = append(problems, fmt.Sprintf("agent %q, want %q", agent, c.wantAgent))
		}
		if ok && rec["opened_for"] != c.wantUser {
			problems = append(problems, "caller not identified as expected")
		}
		if ok && c.wantNote != "" && !p.hasNote(rec["sys_id"], c.wantNote) {
			problems = append(problems, "missing work note "+c.wantNote)
		}
		check := "ok"
		if len(problems) > 0 {
			check = "FAIL: " + strings.Join(problems, "; ")
			bad++
		}
		if agent == "" {
			agent = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.id, rec["number"], caller, agent, rec["state"], check)
	}
	tw.Flush()
	if bad == 0 {
		fmt.Fprintf(p.out, "\nAll %d interactions are as the script expected.\n", len(calls))
	}
	return bad
}

func (p *player) hasNote(sysID, text string) bool {
	for _, j := range p.sim.Journal("interaction", sysID, "work_notes") {
		if strings.Contains(j.Value, text) {
			return true
		}
	}
	return false
}

var errNoData = errors.New("demo: the simulator's dataset lacks a caller the script needs")
