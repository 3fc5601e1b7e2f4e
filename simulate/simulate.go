// Package simulate generates calls against a running bridge the way CXone
// Studio would: queued, answered, sometimes transferred, released, with
// Studio's retries (duplicates) and, on request, shuffled order. It measures
// the intake's latency and, with --wait, how long ServiceNow takes to reflect
// every call. It is the load and soak tool, and the acceptance check customers
// run before go-live.
//
// It only ever sends to the bridge URL it is given.
package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
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
	Shuffle     bool          // send each call's events in random order
	Wait        time.Duration // wait this long for every call to be in sync (0 = don't)
	Prefix      string        // master contact id prefix (distinct per run)
	Seed        uint64
	// Report, with Progress, prints a progress line at this interval (soak runs).
	Report   time.Duration
	Progress io.Writer
}

// Result summarises a run.
type Result struct {
	Calls, Events, Failed int
	Elapsed               time.Duration
	P50, P95, P99, Max    time.Duration // intake latency
	Synced                int
	SyncTime              time.Duration // from the first event to the last call in sync
	FirstErrors           []string      // the first few failures, to see what went wrong
}

func (r Result) String() string {
	s := fmt.Sprintf("%d calls, %d events in %s (%.0f events/s), %d failed\nintake latency p50 %s  p95 %s  p99 %s  max %s",
		r.Calls, r.Events, r.Elapsed.Round(time.Millisecond), float64(r.Events)/r.Elapsed.Seconds(), r.Failed,
		r.P50, r.P95, r.P99, r.Max)
	for _, e := range r.FirstErrors {
		s += "\nfailed: " + e
	}
	if r.SyncTime > 0 || r.Synced > 0 {
		s += fmt.Sprintf("\n%d/%d calls in sync with ServiceNow after %s", r.Synced, r.Calls, r.SyncTime.Round(time.Millisecond))
	}
	return s
}

type event struct {
	id, kind string
	body     map[string]any
}

// calls builds each call's events: a quarter abandoned, the rest answered,
// a third of those transferred; agents from a small pool.
func (o Options) calls(rng *rand.Rand) [][]event {
	agents := []string{"jdoe", "asmith", "bwayne", "ckent", "dprince"}
	out := make([][]event, o.Calls)
	base := time.Now().UTC()
	for i := range out {
		id := fmt.Sprintf("%s%06d", o.Prefix, i)
		t := base.Add(time.Duration(i) * time.Second)
		stamp := func(s int) string { return t.Add(time.Duration(s) * time.Second).Format(time.RFC3339Nano) }
		evs := []event{{id, "queued", map[string]any{"contactId": fmt.Sprint(1000000 + i), "ani": fmt.Sprintf("801555%04d", rng.IntN(10000)),
			"dnis": "8005550100", "skill": "42", "skillName": "Support", "occurredAt": stamp(0)}}}
		if rng.Float64() >= 0.25 {
			evs = append(evs, event{id, "answered", map[string]any{"agentUserName": agents[rng.IntN(len(agents))], "agentId": "1", "occurredAt": stamp(20)}})
			if rng.Float64() < 0.33 {
				evs = append(evs, event{id, "transferred", map[string]any{"agentUserName": agents[rng.IntN(len(agents))], "agentId": "2", "occurredAt": stamp(60)}})
			}
		}
		evs = append(evs, event{id, "released", map[string]any{"reason": "hang up", "occurredAt": stamp(120)}})
		if o.Shuffle {
			rng.Shuffle(len(evs), func(a, b int) { evs[a], evs[b] = evs[b], evs[a] })
		}
		for _, e := range slices.Clone(evs) {
			if rng.Float64() < o.DupRate {
				evs = append(evs, e)
			}
		}
		out[i] = evs
	}
	return out
}

// Run plays the calls and returns the figures.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Calls <= 0 {
		return Result{}, errors.New("simulate: calls must be positive")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Prefix == "" {
		o.Prefix = fmt.Sprintf("sim%d-", time.Now().Unix()%100000)
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x5eed))
	calls := o.calls(rng)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency}}

	var (
		mu        sync.Mutex
		latencies []time.Duration
		firstErrs []string
		failed    atomic.Int64
		events    atomic.Int64
	)
	work := make(chan []event)
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for evs := range work {
				for _, e := range evs {
					start := time.Now()
					err := post(ctx, client, o, e)
					d := time.Since(start)
					events.Add(1)
					if err != nil {
						failed.Add(1)
						mu.Lock()
						if len(firstErrs) < 5 {
							firstErrs = append(firstErrs, err.Error())
						}
						mu.Unlock()
						continue
					}
					mu.Lock()
					latencies = append(latencies, d)
					mu.Unlock()
				}
			}
		}()
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
					fmt.Fprintf(o.Progress, "%6s  %d events (%.0f/s), %d failed\n", el.Round(time.Second), events.Load(),
						float64(events.Load())/el.Seconds(), failed.Load())
				}
			}
		}()
	}
	var tick *time.Ticker
	if o.Rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
		defer tick.Stop()
	}
feed:
	for _, evs := range calls {
		if tick != nil {
			select {
			case <-ctx.Done():
				break feed
			case <-tick.C:
			}
		}
		select {
		case <-ctx.Done():
			break feed
		case work <- evs:
		}
	}
	close(work)
	wg.Wait()
	res := Result{Calls: len(calls), Events: int(events.Load()), Failed: int(failed.Load()), Elapsed: time.Since(start), FirstErrors: firstErrs}
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		q := func(p float64) time.Duration { return latencies[min(n-1, int(p*float64(n)))] }
		res.P50, res.P95, res.P99, res.Max = q(.50), q(.95), q(.99), latencies[n-1]
	}
	if o.Wait > 0 {
		res.Synced = waitSynced(ctx, client, o, calls)
		res.SyncTime = time.Since(start)
	}
	return res, ctx.Err()
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
		var problem api.Problem
		json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&problem)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			return nil
		}
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
func waitSynced(ctx context.Context, c *http.Client, o Options, calls [][]event) int {
	deadline := time.Now().Add(o.Wait)
	pending := make([]string, 0, len(calls))
	for _, evs := range calls {
		pending = append(pending, evs[0].id)
	}
	for len(pending) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		var still []string
		for _, id := range pending {
			if !inSync(ctx, c, o, id) {
				still = append(still, id)
			}
		}
		pending = still
		if len(pending) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	return len(calls) - len(pending)
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
	fs.Float64Var(&o.Rate, "rate", 0, "calls started per second (0 = as fast as possible)")
	fs.IntVar(&o.Concurrency, "concurrency", 16, "requests in flight")
	fs.Float64Var(&o.DupRate, "dup", 0.1, "fraction of events sent twice, as Studio retries do")
	fs.BoolVar(&o.Shuffle, "shuffle", false, "send each call's events in random order")
	fs.DurationVar(&o.Wait, "wait", 0, "after the last event, wait up to this long for ServiceNow to reflect every call")
	fs.StringVar(&o.Prefix, "prefix", "", "master contact id prefix (default: derived from the time)")
	fs.Uint64Var(&o.Seed, "seed", 1, "random seed")
	fs.DurationVar(&o.Report, "report", 0, "print progress at this interval, e.g. 10s (soak runs)")
	hmacFile := fs.String("hmac-secret-file", "", "sign every event with the secret in this file, as the bridge's security.hmacSecret requires (or CTIBRIDGE_HMAC_SECRET, CTIBRIDGE_HMAC_SECRET_FILE)")
	if err := fs.Parse(args); err != nil {
		return err
	}
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
	o.Bridge = strings.TrimRight(o.Bridge, "/")
	o.Progress = stdout
	res, err := Run(ctx, o)
	fmt.Fprintln(stdout, res)
	if err != nil {
		return err
	}
	if res.Failed > 0 || (o.Wait > 0 && res.Synced < res.Calls) {
		return fmt.Errorf("simulate: %d events failed, %d/%d calls in sync", res.Failed, res.Synced, res.Calls)
	}
	return nil
}
