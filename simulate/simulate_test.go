package simulate_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

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
