// Package simulate generates calls against a running bridge the way CXone
// Studio would: queued, answered, sometimes transferred, released, with
// Studio's retries (duplicates) and, on request, shuffled order. Calls may
// last as real ones do (--answer-after, --talk), so that thousands are in
// flight at once. It measures the intake's latency and, with --wait, how
// long ServiceNow takes to reflect every call; with --verify it checks each
// call's interaction in the ServiceNow simulator. It is the load and soak
// tool, and the acceptance check customers run before go-live.
//
// It sends events only to the bridge URL it is given, and reads (never
// writes) the simulator named by --verify.
package simulate

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ctibridge/ctibridge/api"
	"github.com/ctibridge/ctibridge/secret"
)

// Options configure a run.
type Options struct {
	Bridge      string        // base URL of the bridge
	Key         string        // Studio API key
	HMACSecret  secret.Secret // when set, every event is signed (api.SignRequest)
	Calls       int           // number of calls
	Rate        float64       // calls started per second (0 = as fast as possible)
	Concurrency int           // requests in flight
	DupRate     float64       // fraction of events sent twice
	Abandon     float64       // fraction of calls abandoned (released unanswered)
	Shuffle     bool          // send each call's events in random order
	// AnswerAfter is the queue wait: an answered call's agent answers, an
	// abandoned call's caller hangs up, this long after it was queued.
	// Talk is how long an answered call lasts; a transfer comes midway.
	// Both zero: each call's events are sent back to back.
	AnswerAfter, Talk Spread
	Wait              time.Duration // wait this long for every call to be in sync (0 = don't)
	Prefix            string        // master contact id prefix (distinct per run)
	Seed              uint64
	// Report, with Progress, prints a progress line at this interval (soak runs).
	Report   time.Duration
	Progress io.Writer
	// Verify is the base URL of the ServiceNow simulator the bridge writes
	// to; Verify (the function) checks every call's interaction there, as
	// VerifyUser (an admin). Namespace is the bridge's lifecycle.namespace,
	// from which interaction sys_ids are derived.
	Verify         string
	VerifyUser     string
	VerifyPassword secret.Secret
	Namespace      string
}

// Result summarises a run.
type Result struct {
	Calls, Events, Failed int
	Elapsed               time.Duration // from the first event sent to the last answered
	P50, P95, P99, Max    time.Duration // intake latency
	MaxLag                time.Duration // the most an event was sent after it was due
	PeakInFlight          int           // the most calls started and not yet released at once
	Synced                int
	SyncTime              time.Duration // from the first event to the last call in sync
	FirstErrors           []string      // the first few failures, to see what went wrong

	// Filled by Verify.
	Verified                bool
	Lost, Duplicated, Wrong int
	FirstWrong              []string // the first few calls found lost, duplicated or wrong, and how
	SNRequests              int64    // Table API requests the simulator served during the run (each item of a batch)
	SNRoundTrips            int64    // HTTP requests it served (a batch is one)

	calls    []*call
	tag      string
	snBefore snCounts
}

func (r Result) String() string {
	s := fmt.Sprintf("%d calls, %d events in %s (%.0f events/s), %d failed\nintake latency p50 %s  p95 %s  p99 %s  max %s",
		r.Calls, r.Events, r.Elapsed.Round(time.Millisecond), r.eventsPerSecond(), r.Failed, r.P50, r.P95, r.P99, r.Max)
	if r.PeakInFlight > 0 {
		s += fmt.Sprintf("\nup to %d calls in progress at once", r.PeakInFlight)
	}
	if r.MaxLag > time.Second {
		s += fmt.Sprintf("; events sent up to %s late (raise --concurrency)", r.MaxLag.Round(time.Millisecond))
	}
	for _, e := range r.FirstErrors {
		s += "\nfailed: " + e
	}
	if r.SyncTime > 0 || r.Synced > 0 {
		s += fmt.Sprintf("\n%d/%d calls in sync with ServiceNow after %s", r.Synced, r.Calls, r.SyncTime.Round(time.Millisecond))
	}
	if r.Verified {
		s += fmt.Sprintf("\nverified in ServiceNow: %d lost, %d duplicated, %d wrong; %d ServiceNow requests (%.1f a call) in %d round trips (%.1f a call)",
			r.Lost, r.Duplicated, r.Wrong, r.SNRequests, float64(r.SNRequests)/float64(max(1, r.Calls)),
			r.SNRoundTrips, float64(r.SNRoundTrips)/float64(max(1, r.Calls)))
		for _, w := range r.FirstWrong {
			s += "\n" + w
		}
	}
	return s
}

func (r Result) eventsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Events) / r.Elapsed.Seconds()
}

// JSON is the run's figures as one JSON object. Figures a run did not
// measure (sync without --wait, ServiceNow without --verify) are null.
func (r Result) JSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }
	out := map[string]any{
		"calls": r.Calls, "events": r.Events, "failed": r.Failed, "elapsed_s": round(r.Elapsed.Seconds(), 3),
		"intake_events_per_s": round(r.eventsPerSecond(), 1),
		"intake_p50_ms":       ms(r.P50), "intake_p95_ms": ms(r.P95), "intake_p99_ms": ms(r.P99), "intake_max_ms": ms(r.Max),
		"send_lag_max_ms": ms(r.MaxLag), "peak_calls_in_progress": r.PeakInFlight,
		"synced": nil, "sync_s": nil, "lifecycles_per_s": nil,
		"sn_requests": nil, "sn_requests_per_call": nil, "sn_round_trips": nil, "sn_round_trips_per_call": nil, "lost": nil, "duplicated": nil, "wrong": nil,
	}
	if r.SyncTime > 0 {
		out["synced"], out["sync_s"] = r.Synced, round(r.SyncTime.Seconds(), 3)
		out["lifecycles_per_s"] = round(float64(r.Synced)/r.SyncTime.Seconds(), 2)
	}
	if r.Verified {
		out["sn_requests"], out["sn_requests_per_call"] = r.SNRequests, round(float64(r.SNRequests)/float64(max(1, r.Calls)), 2)
		out["sn_round_trips"], out["sn_round_trips_per_call"] = r.SNRoundTrips, round(float64(r.SNRoundTrips)/float64(max(1, r.Calls)), 2)
		out["lost"], out["duplicated"], out["wrong"] = r.Lost, r.Duplicated, r.Wrong
	}
	return json.Marshal(out)
}

func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}

// dueQueue orders calls by when their next event is due.
type dueQueue []*call

func (q dueQueue) Len() int           { return len(q) }
func (q dueQueue) Less(i, j int) bool { return q[i].due().Before(q[j].due()) }
func (q dueQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *dueQueue) Push(x any)        { *q = append(*q, x.(*call)) }
func (q *dueQueue) Pop() any {
	old := *q
	c := old[len(old)-1]
	*q = old[:len(old)-1]
	return c
}

func (c *call) due() time.Time { return c.play.start.Add(c.play.at[c.play.next]) }

// Run plays the calls and returns the figures. Each call's events are sent
// one after another, each when it is due; calls waiting for their next
// event hold no connection, so far more calls may be in progress than
// requests in flight.
func Run(ctx context.Context, o Options) (Result, error) {
	if err := o.check(); err != nil {
		return Result{}, err
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Prefix == "" {
		o.Prefix = fmt.Sprintf("sim%d-", time.Now().Unix()%100000)
	}
	res := Result{Calls: o.Calls, tag: runTag(o.Prefix)}
	if o.Verify != "" {
		n, err := o.verifier().requests(ctx)
		if err != nil {
			return res, err
		}
		res.snBefore = n
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x5eed))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency}}

	var (
		mu                  sync.Mutex
		latencies           []time.Duration
		firstErrs           []string
		failed, events      atomic.Int64
		inProgress          atomic.Int64
		firstSent, lastDone time.Time
	)
	work, done := make(chan *call), make(chan *call)
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Go(func() {
			for c := range work {
				e := c.play.events[c.play.next]
				start := time.Now()
				err := post(ctx, client, o, e)
				d := time.Since(start)
				events.Add(1)
				mu.Lock()
				if firstSent.IsZero() || start.Before(firstSent) {
					firstSent = start
				}
				lastDone = start.Add(d)
				res.MaxLag = max(res.MaxLag, start.Sub(c.due()))
				if err != nil {
					failed.Add(1)
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, err.Error())
					}
				} else {
					latencies = append(latencies, d)
				}
				mu.Unlock()
				c.play.next++
				done <- c
			}
		})
	}
	start := time.Now()
	if o.Report > 0 && o.Progress != nil {
		stop, stopped := make(chan struct{}), make(chan struct{})
		defer func() { close(stop); <-stopped }() // no progress line after Run returns
		go func() {
			defer close(stopped)
			t := time.NewTicker(o.Report)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					el := time.Since(start)
					fmt.Fprintf(o.Progress, "%6s  %d events (%.0f/s), %d failed, %d calls in progress\n", el.Round(time.Second), events.Load(),
						float64(events.Load())/el.Seconds(), failed.Load(), inProgress.Load())
				}
			}
		}()
	}

	// The dispatcher: it starts calls at --rate, hands each call's next
	// event to a worker when it is due, and keeps the rest waiting.
	var (
		waiting  dueQueue // calls whose next event is not due yet
		ready    []*call  // calls whose next event is due, oldest first
		sending  int      // calls a worker holds
		started  int
		timer    = time.NewTimer(time.Hour)
		interval time.Duration
	)
	timer.Stop()
	if o.Rate > 0 {
		interval = time.Duration(float64(time.Second) / o.Rate)
	}
	res.calls = make([]*call, 0, o.Calls)
	schedule := func(c *call, now time.Time) {
		if c.due().After(now) {
			heap.Push(&waiting, c)
		} else {
			ready = append(ready, c)
		}
	}
dispatch:
	for {
		now := time.Now()
		for started < o.Calls {
			at := start.Add(time.Duration(started) * interval)
			if interval > 0 && at.After(now) || interval == 0 && len(ready)+sending >= o.Concurrency {
				break
			}
			if interval == 0 {
				at = now
			}
			c := o.newCall(rng, res.tag, started, at)
			res.calls = append(res.calls, c)
			started++
			res.PeakInFlight = max(res.PeakInFlight, int(inProgress.Add(1)))
			schedule(c, now)
		}
		for waiting.Len() > 0 && !waiting[0].due().After(now) {
			ready = append(ready, heap.Pop(&waiting).(*call))
		}
		if started == o.Calls && waiting.Len() == 0 && len(ready) == 0 && sending == 0 {
			break
		}
		wake := time.Time{}
		if waiting.Len() > 0 {
			wake = waiting[0].due()
		}
		if interval > 0 && started < o.Calls {
			if at := start.Add(time.Duration(started) * interval); wake.IsZero() || at.Before(wake) {
				wake = at
			}
		}
		var timerC <-chan time.Time
		if !wake.IsZero() {
			timer.Reset(time.Until(wake))
			timerC = timer.C
		}
		var send chan<- *call
		var head *call
		if len(ready) > 0 {
			send, head = work, ready[0]
		}
		select {
		case send <- head:
			ready[0] = nil
			ready = ready[1:]
			sending++
		case c := <-done:
			sending--
			if c.play.next < len(c.play.events) {
				schedule(c, time.Now())
			} else {
				c.play = nil // keep only what --verify needs
				inProgress.Add(-1)
			}
		case <-timerC:
		case <-ctx.Done():
			break dispatch
		}
		timer.Stop()
	}
	close(work)
	go func() { // workers still posting hand their calls back
		for range done {
		}
	}()
	wg.Wait()
	close(done)

	res.Events, res.Failed, res.FirstErrors = int(events.Load()), int(failed.Load()), firstErrs
	if !firstSent.IsZero() {
		res.Elapsed = lastDone.Sub(firstSent)
	}
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		q := func(p float64) time.Duration { return latencies[min(n-1, int(p*float64(n)))] }
		res.P50, res.P95, res.P99, res.Max = q(.50), q(.95), q(.99), latencies[n-1]
	}
	if o.Wait > 0 && ctx.Err() == nil {
		res.Synced = waitSynced(ctx, client, o, res.calls)
		res.SyncTime = time.Since(start)
	}
	return res, ctx.Err()
}

// check reports the first option that cannot work, naming its flag.
func (o Options) check() error {
	switch {
	case o.Calls <= 0:
		return errors.New("simulate: --calls must be positive")
	case o.Rate < 0:
		return errors.New("simulate: --rate must not be negative (0 = as fast as possible)")
	case o.DupRate < 0 || o.DupRate > 1:
		return errors.New("simulate: --dup must be a fraction from 0 to 1")
	case o.Abandon < 0 || o.Abandon > 1:
		return errors.New("simulate: --abandon must be a fraction from 0 to 1")
	case o.Verify != "" && o.Wait <= 0:
		return errors.New("simulate: --verify needs --wait (how long to wait for ServiceNow to reflect every call before checking it)")
	}
	if o.Verify != "" {
		u, err := url.Parse(o.Verify)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("simulate: --verify %q: want the simulator's base URL, like http://127.0.0.1:8090", o.Verify)
		}
	}
	return nil
}

// post sends one event; like Studio's REST action it retries a 429 or 503
// (after Retry-After when given) a few times.
func post(ctx context.Context, c *http.Client, o Options, e event) error {
	b, _ := json.Marshal(e.body)
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, "POST", o.Bridge+"/v1/contacts/"+e.id+"/"+e.kind, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+o.Key)
		req.Header.Set("Content-Type", "application/json")
		if !o.HMACSecret.IsZero() {
			api.SignRequest(req, o.HMACSecret, b, time.Now()) // each attempt afresh, as Studio would
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode == 200 { // what it says is not needed
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		var problem api.Problem
		json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&problem)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) || attempt == 5 {
			why := ""
			if problem.Error != "" {
				why = ": " + strings.TrimSpace(problem.Field+" "+problem.Error)
			}
			return fmt.Errorf("%s %s: HTTP %d%s", e.id, e.kind, resp.StatusCode, why)
		}
		wait := 100 * time.Millisecond
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			wait = time.Duration(s) * time.Second
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// waitSynced waits up to o.Wait after the last event for every call to be in
// sync, and returns how many are.
func waitSynced(ctx context.Context, c *http.Client, o Options, calls []*call) int {
	deadline := time.Now().Add(o.Wait)
	pending := make([]string, 0, len(calls))
	for _, call := range calls {
		pending = append(pending, o.masterID(call.n))
	}
	for len(pending) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		// Asking after every call costs the bridge a read each: while its
		// queue holds work, watch the queue instead, so that the wait does
		// not slow down what it measures.
		if queued(ctx, c, o) > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		synced := make([]bool, len(pending))
		ids := make(chan int)
		var wg sync.WaitGroup
		for range min(o.Concurrency, len(pending)) {
			wg.Go(func() {
				for i := range ids {
					synced[i] = inSync(ctx, c, o, pending[i])
				}
			})
		}
		for i := range pending {
			ids <- i
		}
		close(ids)
		wg.Wait()
		var still []string
		for i, id := range pending {
			if !synced[i] {
				still = append(still, id)
			}
		}
		pending = still
		if len(pending) > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return len(calls) - len(pending)
}

// queued is the number of calls in the bridge's queue (pending, running or
// retrying: parked calls wait for an operator, not for time) from its
// /metrics, or -1 if that cannot be read.
func queued(ctx context.Context, c *http.Client, o Options) int {
	req, _ := http.NewRequestWithContext(ctx, "GET", o.Bridge+"/metrics", nil)
	req.Header.Set("Accept-Encoding", "identity") // compressing it would cost the bridge more than sending it
	resp, err := c.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -1
	}
	n, found := 0, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, `ctibridge_jobs{state="`) || strings.Contains(name, `"parked"`) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return -1
		}
		n += int(v)
		found = true
	}
	if !found {
		return -1
	}
	return n
}

func inSync(ctx context.Context, c *http.Client, o Options, id string) bool {
	req, _ := http.NewRequestWithContext(ctx, "GET", o.Bridge+"/v1/contacts/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+o.Key)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var s struct {
		InSync bool `json:"inSync"`
	}
	json.NewDecoder(resp.Body).Decode(&s)
	return s.InSync
}

// Main is the `ctibridge simulate` command.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.StringVar(&o.Bridge, "bridge", "http://127.0.0.1:8080", "bridge base URL")
	fs.StringVar(&o.Key, "key", "", "Studio API key (or CTIBRIDGE_SIMULATE_KEY; the first of CTIBRIDGE_API_KEYS)")
	fs.IntVar(&o.Calls, "calls", 100, "number of calls")
	fs.Float64Var(&o.Rate, "rate", 0, "new calls per second (0 = as fast as possible)")
	fs.IntVar(&o.Concurrency, "concurrency", 16, "requests in flight")
	fs.Float64Var(&o.DupRate, "dup", 0.1, "fraction of events sent twice, as Studio retries do")
	fs.Float64Var(&o.Abandon, "abandon", 0.25, "fraction of calls the caller hangs up on before an agent answers")
	fs.BoolVar(&o.Shuffle, "shuffle", false, "send each call's events in random order")
	fs.Var(&o.AnswerAfter, "answer-after", "queue wait before an agent answers (or an abandoned call hangs up): 30s, or 30s±20s drawn uniformly")
	fs.Var(&o.Talk, "talk", "how long an answered call lasts (a transfer comes midway): 3m, or 3m±2m drawn uniformly")
	fs.DurationVar(&o.Wait, "wait", 0, "after the last event, wait up to this long for ServiceNow to reflect every call")
	fs.StringVar(&o.Prefix, "prefix", "", "master contact id prefix (default: derived from the time)")
	fs.Uint64Var(&o.Seed, "seed", 1, "random seed")
	fs.DurationVar(&o.Report, "report", 0, "print progress at this interval, e.g. 10s (soak runs)")
	fs.StringVar(&o.Verify, "verify", "", "the ServiceNow simulator's URL: check every call's interaction there after --wait")
	fs.StringVar(&o.VerifyUser, "verify-user", "admin", "simulator admin user for --verify")
	verifyPassword := fs.String("verify-password", "admin", "its password")
	fs.StringVar(&o.Namespace, "namespace", "ctibridge", "the bridge's lifecycle.namespace (interaction sys_ids derive from it)")
	asJSON := fs.Bool("json", false, "print the figures as one JSON object on stdout at the end (the report goes to stderr)")
	hmacFile := fs.String("hmac-secret-file", "", "sign every event with the secret in this file, as the bridge's security.hmacSecret requires (or CTIBRIDGE_HMAC_SECRET, CTIBRIDGE_HMAC_SECRET_FILE)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("simulate: unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	o.VerifyPassword = secret.Secret(*verifyPassword)
	if *hmacFile == "" {
		*hmacFile = os.Getenv("CTIBRIDGE_HMAC_SECRET_FILE")
	}
	o.HMACSecret = secret.Secret(os.Getenv("CTIBRIDGE_HMAC_SECRET"))
	if *hmacFile != "" {
		b, err := os.ReadFile(*hmacFile)
		if err != nil {
			return fmt.Errorf("simulate: the HMAC secret file: %w", err)
		}
		o.HMACSecret = secret.Secret(strings.TrimSpace(string(b)))
		if o.HMACSecret.IsZero() {
			return fmt.Errorf("simulate: the HMAC secret file %s is empty", *hmacFile)
		}
	}
	if o.Key == "" {
		o.Key = os.Getenv("CTIBRIDGE_SIMULATE_KEY")
	}
	if o.Key == "" {
		o.Key, _, _ = strings.Cut(os.Getenv("CTIBRIDGE_API_KEYS"), ",")
	}
	if o.Key == "" {
		return errors.New("simulate: --key is required (or CTIBRIDGE_SIMULATE_KEY)")
	}
	if err := o.check(); err != nil {
		return err
	}
	o.Bridge = strings.TrimRight(o.Bridge, "/")
	o.Verify = strings.TrimRight(o.Verify, "/")
	report := stdout
	if *asJSON {
		report = stderr
	}
	o.Progress = report
	res, err := Run(ctx, o)
	if err == nil && o.Verify != "" {
		err = Verify(ctx, o, &res)
	}
	fmt.Fprintln(report, res)
	if *asJSON {
		b, jerr := res.JSON()
		if jerr != nil {
			return jerr
		}
		fmt.Fprintf(stdout, "%s\n", b)
	}
	if err != nil {
		return err
	}
	if res.Failed > 0 || (o.Wait > 0 && res.Synced < res.Calls) || res.Lost+res.Duplicated+res.Wrong > 0 {
		msg := fmt.Sprintf("simulate: %d events failed, %d/%d calls in sync", res.Failed, res.Synced, res.Calls)
		if res.Verified {
			msg += fmt.Sprintf("; %d lost, %d duplicated, %d wrong in ServiceNow", res.Lost, res.Duplicated, res.Wrong)
		}
		return errors.New(msg)
	}
	return nil
}
