package snowsim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Main is the `ctibridge snowsim` command: it serves a simulator until ctx ends.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("snowsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	data := fs.String("data", "", "dataset file (JSON or YAML) instead of the built-in one")
	var o Options
	fs.DurationVar(&o.Faults.Latency, "latency", 0, "added latency per request, e.g. 80ms")
	fs.DurationVar(&o.Faults.Jitter, "jitter", 0, "random ± jitter on the latency")
	fs.Float64Var(&o.Faults.ErrorRate, "error-rate", 0, "fraction of requests answered 500/503 (0..1)")
	fs.IntVar(&o.Faults.RateLimitPerHour, "rate-limit", 0, "requests per user per hour before 429 (0 = none)")
	fs.DurationVar(&o.TokenTTL, "token-ttl", 1800*time.Second, "OAuth access-token lifetime")
	fs.BoolVar(&o.IgnoreClientSysID, "ignore-sys-id", false, "ignore client-chosen sys_ids on create, as some instances do")
	fs.BoolVar(&o.InvalidQueryReturnsNoRows, "invalid-query-no-rows", false, "a query on an unknown field returns no rows (glide.invalid_query.returns_no_rows)")
	fs.DurationVar(&o.WrapUpDuration, "wrap-up-duration", time.Minute, "how long an interaction stays in wrap_up (with --wrap-up)")
	fs.IntVar(&o.Capacity, "capacity", 0, "serve at most N Table API requests at once, queue N more, answer 429 beyond (0 = no bound)")
	fs.BoolVar(&o.NoBatchAPI, "no-batch-api", false, "turn the Batch API (POST /api/now/v1/batch) off, as instances that restrict it")
	hardened := fs.Bool("hardened", false, "behave like a hardened production instance: every switch below on")
	var flagged Hardening // the values of the per-behaviour flags
	for _, sw := range flagged.switches() {
		fs.BoolVar(sw.on, sw.flag, false, sw.usage)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Faults.ErrorRate < 0 || o.Faults.ErrorRate > 1 {
		return errors.New("snowsim: --error-rate must be between 0 and 1")
	}
	if o.Faults.Latency < 0 || o.Faults.Jitter < 0 || o.Faults.RateLimitPerHour < 0 {
		return errors.New("snowsim: --latency, --jitter and --rate-limit must not be negative")
	}
	if o.Capacity < 0 {
		return errors.New("snowsim: --capacity must not be negative (0 = no bound)")
	}
	if o.WrapUpDuration <= 0 {
		return errors.New("snowsim: --wrap-up-duration must be positive")
	}
	if *data != "" {
		d, err := LoadDataset(*data)
		if err != nil {
			return err
		}
		o.Data = d
	}
	// Precedence: the default, then the dataset's hardening keys, then
	// --hardened, then each behaviour's own flag when given.
	h := DefaultHardening()
	if o.Data != nil {
		h.apply(o.Data.Hardening) // LoadDataset has checked the keys
	}
	if *hardened {
		h = AllHardened()
	}
	byFlag := map[string]bool{}
	for _, sw := range flagged.switches() {
		byFlag[sw.flag] = *sw.on
	}
	chosen := h.switches()
	fs.Visit(func(fl *flag.Flag) {
		for _, sw := range chosen {
			if sw.flag == fl.Name {
				*sw.on = byFlag[fl.Name]
			}
		}
	})
	o.Hardening = &h
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("snowsim: --addr %s: %w", *addr, err)
	}
	o.BaseURL = "http://" + ln.Addr().String()
	srv := &http.Server{Handler: New(o), ReadHeaderTimeout: 10 * time.Second}
	limits := ""
	if o.Capacity > 0 {
		limits += fmt.Sprintf("; capacity %d requests at once, %d queued", o.Capacity, o.Capacity)
	}
	if o.NoBatchAPI {
		limits += "; Batch API off"
	}
	fmt.Fprintf(stdout, "ServiceNow simulator on %s — users admin/admin, cti_integration/cti_integration; OAuth client ctibridge/ctibridge-secret; %s%s\n", o.BaseURL, h.summary(), limits)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}
