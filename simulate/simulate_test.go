package simulate_test

import (
	"bytes"
	"context"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctibridge/ctibridge/bridge"
	"github.com/ctibridge/ctibridge/config"
	"github.com/ctibridge/ctibridge/simulate"
	"github.com/ctibridge/ctibridge/snowsim"
)

// TestSimulateDrivesABridge: shuffled, duplicated events for 40 calls end
// with 40 interactions, and the command reports it.
func TestSimulateDrivesABridge(t *testing.T) {
	sim := snowsim.New(snowsim.Options{})
	ts := httptest.NewServer(sim)
	defer ts.Close()
	const key = "simulate-test-key-0123456789"
	cfg, err := config.Load("", func(k string) string {
		return map[string]string{"CTIBRIDGE_SN_INSTANCE": ts.URL, "CTIBRIDGE_SN_USERNAME": "cti_integration",
			"CTIBRIDGE_SN_PASSWORD": "cti_integration", "CTIBRIDGE_API_KEYS": key,
			"CTIBRIDGE_DATABASE": filepath.Join(t.TempDir(), "b.db"), "CTIBRIDGE_SN_REQUESTS_PER_HOUR": "-1"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Security.RatePerKey, cfg.Security.Burst = 100, 10 // the generator must cope with 429s, as Studio does
	ctx, cancel := context.WithCancel(context.Background())
	b, err := bridge.New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan struct{})
	go func() { b.Serve(ctx, ln, nil); b.Close(); close(done) }()
	defer func() { cancel(); <-done }()

	var out bytes.Buffer
	err = simulate.Main(context.Background(), []string{"--bridge", "http://" + ln.Addr().String(), "--key", key,
		"--calls", "40", "--shuffle", "--dup", "0.3", "--wait", "60s", "--concurrency", "4"}, &out, &out)
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "40/40 calls in sync") || !strings.Contains(out.String(), "0 failed") {
		t.Errorf("report:\n%s", out.String())
	}
	if n := len(sim.Records("interaction")); n != 40 {
		t.Errorf("%d interactions, want 40", n)
	}
	if _, err := simulate.Run(context.Background(), simulate.Options{Calls: 0}); err == nil {
		t.Error("zero calls accepted")
	}
}
