package cxonesim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Main is the `ctibridge cxonesim` command: it serves a simulator until ctx
// ends.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cxonesim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8091", "listen address")
	var o Options
	fs.StringVar(&o.AccessKeyID, "access-key-id", DefaultAccessKeyID, "the access key id the token endpoint accepts (its secret is "+DefaultAccessKeySecret+")")
	fs.StringVar(&o.TenantID, "tenant-id", DefaultTenantID, "the tenant id the discovery document answers for")
	fs.DurationVar(&o.TokenTTL, "token-ttl", time.Hour, "access-token lifetime")
	fs.DurationVar(&o.Faults.Latency, "latency", 0, "added latency per request, e.g. 80ms")
	fs.DurationVar(&o.Faults.Jitter, "jitter", 0, "random ± jitter on the latency")
	fs.Float64Var(&o.Faults.ErrorRate, "error-rate", 0, "fraction of API requests answered 503 (0..1)")
	fs.IntVar(&o.Faults.RateLimitPerMinute, "rate-limit", 0, "API requests a minute before 429 (0 = none)")
	fs.DurationVar(&o.EndedVisibleFor, "ended-visible-for", time.Minute, "how long an ended contact stays in contacts/active deltas")
	fs.DurationVar(&o.ReportingDelay, "reporting-delay", 0, "how long after its end a contact appears in contacts/completed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("cxonesim: unexpected argument %q", fs.Arg(0))
	}
	switch {
	case o.Faults.ErrorRate < 0 || o.Faults.ErrorRate > 1:
		return errors.New("cxonesim: --error-rate must be between 0 and 1")
	case o.Faults.Latency < 0 || o.Faults.Jitter < 0 || o.Faults.RateLimitPerMinute < 0 || o.ReportingDelay < 0:
		return errors.New("cxonesim: --latency, --jitter, --rate-limit and --reporting-delay must not be negative")
	case o.TokenTTL <= 0 || o.EndedVisibleFor <= 0:
		return errors.New("cxonesim: --token-ttl and --ended-visible-for must be positive")
	case strings.TrimSpace(o.AccessKeyID) == "" || strings.TrimSpace(o.TenantID) == "":
		return errors.New("cxonesim: --access-key-id and --tenant-id must not be empty")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("cxonesim: --addr %s: %w", *addr, err)
	}
	o.BaseURL = "http://" + ln.Addr().String()
	sim := New(o)
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	var agents []string
	for _, a := range sim.Agents() {
		agents = append(agents, fmt.Sprintf("%d %s", a.AgentID, a.UserName))
	}
	fmt.Fprintf(stdout, "CXone simulator on %s — access key %s/%s, tenant %s; agents %s\n",
		o.BaseURL, o.AccessKeyID, DefaultAccessKeySecret, o.TenantID, strings.Join(agents, ", "))
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
