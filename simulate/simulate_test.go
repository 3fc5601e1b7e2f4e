package simulate_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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

// TestSimulateSignsEvents: against a bridge that requires signed events, the
// generator signs every event with the secret it is given and every call
// syncs; without the secret, or with another one, every event is refused and
// the report says why, without showing the secret.
func TestSimulateSignsEvents(t *testing.T) {
	const hmacSecret = "sim-hmac-secret-0123456789"
	t.Setenv("CTIBRIDGE_HMAC_SECRET", "") // only the flag gives the secret here
	t.Setenv("CTIBRIDGE_HMAC_SECRET_FILE", "")
	sim, url := bridgetest.Simulator(t, snowsim.Options{})
	cfg := bridgetest.Config(t, url, map[string]string{"CTIBRIDGE_SN_REQUESTS_PER_HOUR": "-1", "CTIBRIDGE_HMAC_SECRET": hmacSecret})
	_, base := bridgetest.Serve(t, cfg)
	dir := t.TempDir()
	good, wrong := filepath.Join(dir, "hmac"), filepath.Join(dir, "wrong")
	os.WriteFile(good, []byte(hmacSecret+"\n"), 0o600)
	os.WriteFile(wrong, []byte("not-the-hmac-secret-0123"), 0o600)
	args := []string{"--bridge", base, "--key", bridgetest.Key, "--calls", "10", "--shuffle", "--dup", "0.3", "--concurrency", "4"}

	var out bytes.Buffer
	if err := simulate.Main(context.Background(), append(args, "--prefix", "signed-", "--wait", "60s", "--hmac-secret-file", good), &out, &out); err != nil {
		t.Fatalf("signed run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "10/10 calls in sync") || !strings.Contains(out.String(), " 0 failed") {
		t.Errorf("signed run:\n%s", out.String())
	}
	if n := len(sim.Records("interaction")); n != 10 {
		t.Errorf("%d interactions, want 10", n)
	}
	for name, extra := range map[string][]string{
		"unsigned":       {"--prefix", "unsigned-"},
		"another secret": {"--prefix", "wrong-", "--hmac-secret-file", wrong},
	} {
		out.Reset()
		err := simulate.Main(context.Background(), append(args, extra...), &out, &out)
		if err == nil || !strings.Contains(out.String(), "HTTP 401: X-Ctibridge-") || strings.Contains(out.String(), hmacSecret) {
			t.Errorf("%s: %v\n%s", name, err, out.String())
		}
	}
	if n := len(sim.Records("interaction")); n != 10 {
		t.Errorf("refused events made interactions: %d, want 10", n)
	}
	if err := simulate.Main(context.Background(), append(args, "--hmac-secret-file", filepath.Join(dir, "missing")), &out, &out); err == nil {
		t.Error("a missing secret file was accepted")
	}
}
