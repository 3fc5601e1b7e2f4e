package bridge_test

import (
	"bytes"
	"context"
	"github.com/ctibridge/ctibridge"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/bridge/bridgetest"
	"github.com/ctibridge/ctibridge/snowsim"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestSecretsNeverLeak runs a bridge on OAuth with every kind of secret set,
// logs at debug level, provokes failures, and looks for the secrets in the
// logs, the API's answers, the metrics and the console.
func TestSecretsNeverLeak(t *testing.T) {
	const (
		snPassword   = "Sn-Pa55word-4f8a"
		clientSecret = "Client-5ecret-9b2c"
		studioKey    = "Studio-Key-7d1e-0123456789"
		consolePass  = "Console-Pa55-3c6f"
		hmacSecret   = "Hmac-5ecret-0123456789"
	)
	d := snowsim.DefaultDataset()
	d.Users = append(d.Users, snowsim.User{UserName: "cti2", Password: snPassword, Roles: []string{"cti_integration"}})
	d.OAuthClients = append(d.OAuthClients, snowsim.OAuthClient{ID: "client2", Secret: clientSecret})
	sim, simURL := bridgetest.Simulator(t, snowsim.Options{Data: d})
	cfg := bridgetest.Config(t, simURL, map[string]string{"CTIBRIDGE_SN_USERNAME": "cti2", "CTIBRIDGE_SN_PASSWORD": snPassword,
		"CTIBRIDGE_SN_CLIENT_ID": "client2", "CTIBRIDGE_SN_CLIENT_SECRET": clientSecret, "CTIBRIDGE_API_KEYS": studioKey,
		"CTIBRIDGE_CONSOLE_PASSWORD": consolePass, "CTIBRIDGE_HMAC_SECRET": hmacSecret})
	cfg.Lifecycle.MaxBackoff = 200 * time.Millisecond
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log.Debug("configuration", "config", cfg) // even a careless dump of the whole config
	b, base := bridgetest.Serve(t, cfg, bridgetest.WithLogger(log))
	ctx := context.Background()

	var seen strings.Builder
	get := func(path string, set func(*http.Request)) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if set != nil {
			set(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		seen.WriteString(body.String())
	}
	// Failures of every kind: a wrong key, an unsigned event, an instance
	// failing and refusing the token, a wrong console password.
	get("/v1/contacts/1", func(r *http.Request) { r.Header.Set("Authorization", "Bearer wrong-"+studioKey) })
	req, _ := http.NewRequest("POST", base+"/v1/contacts/1/queued", strings.NewReader(`{"ani":"8013203420"}`))
	req.Header.Set("Authorization", "Bearer "+studioKey)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	sim.SetFaults(snowsim.Faults{ErrorRate: 1})
	b.Intake.Accept(ctx, "2", mustEvent(t))
	attempted := func(id string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if s, err := b.Intake.Status(ctx, id); err == nil && (s.InSync || s.LastError != "") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("call %s was never tried", id)
			}
		}
	}
	attempted("2")
	sim.SetFaults(snowsim.Faults{})
	sim.RevokeAccessTokens()
	sim.RevokeRefreshTokens()
	b.Intake.Accept(ctx, "3", mustEvent(t))
	attempted("3")
	http.PostForm(base+"/console/login", url.Values{"username": {"admin"}, "password": {"wrong-" + consolePass}})
	get("/metrics", nil)
	get("/readyz", nil)
	get("/admin/errors?open=false", func(r *http.Request) { r.SetBasicAuth("admin", consolePass) })
	get("/admin/calls", func(r *http.Request) { r.SetBasicAuth("admin", consolePass) })

	all := logs.String() + seen.String()
	if !strings.Contains(logs.String(), "reconciler") || !strings.Contains(all, "503") {
		t.Fatalf("the test provoked too little to be meaningful:\n%.2000s", all)
	}
	for _, s := range []string{snPassword, clientSecret, studioKey, consolePass, hmacSecret} {
		if strings.Contains(all, s) {
			t.Errorf("secret %q leaked:\n%.3000s", s, all)
		}
	}
}

func mustEvent(t *testing.T) ctibridge.Event {
	t.Helper()
	ev, err := ctibridge.DecodeEvent(ctibridge.Queued, []byte(`{"ani":"+1 312 555 0100"}`))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}
