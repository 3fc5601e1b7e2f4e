// Package bridgetest runs a bridge against a ServiceNow simulator for tests
// of the packages around it (Studio contract, call generator, ...).
package bridgetest

import (
	"context"
	"net"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/ctibridge/ctibridge/bridge"
	"github.com/ctibridge/ctibridge/config"
	"github.com/ctibridge/ctibridge/snowsim"
)

// Key is the Studio API key of bridges made by Config.
const Key = "bridgetest-key-0123456789abcdef"

// Config is the configuration of a bridge on the instance at url, from
// environment variables as an operator would set them; vars add or
// override any.
func Config(t testing.TB, url string, vars map[string]string) *config.Config {
	t.Helper()
	env := map[string]string{"CTIBRIDGE_SN_INSTANCE": url, "CTIBRIDGE_SN_USERNAME": "cti_integration",
		"CTIBRIDGE_SN_PASSWORD": "cti_integration", "CTIBRIDGE_API_KEYS": Key,
		"CTIBRIDGE_DATABASE": filepath.Join(t.TempDir(), "bridge.db")}
	for k, v := range vars {
		env[k] = v
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Simulator starts a ServiceNow simulator on a loopback port.
func Simulator(t testing.TB, opts snowsim.Options) (*snowsim.Server, string) {
	t.Helper()
	sim := snowsim.New(opts)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	return sim, ts.URL
}

// Serve runs a bridge on cfg on a loopback port (and an admin listener when
// admin is true) until the test ends, and returns it with its base URL.
func Serve(t testing.TB, cfg *config.Config, opts ...Option) (*bridge.Bridge, string) {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b, err := bridge.New(ctx, cfg, o.log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var admin net.Listener
	if o.admin != nil {
		if admin, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		*o.admin = admin.Addr().String()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := b.Serve(ctx, ln, admin); err != nil {
			t.Errorf("serve: %v", err)
		}
		b.Close()
	}()
	t.Cleanup(func() { cancel(); <-done })
	return b, "http://" + ln.Addr().String()
}
