package bridge_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctibridge/ctibridge/bridge"
	"github.com/ctibridge/ctibridge/config"
)

// TestStartRefusesWhatOwnersRefuse: the API key hashes and the callers'
// region are checked by the packages that use them; the bridge refuses to
// start with an error naming each key at fault.
func TestStartRefusesWhatOwnersRefuse(t *testing.T) {
	cfg, err := config.Load("", func(k string) string {
		return map[string]string{"CTIBRIDGE_SN_INSTANCE": "https://acme.service-now.com", "CTIBRIDGE_SN_USERNAME": "u",
			"CTIBRIDGE_SN_PASSWORD": "p", "CTIBRIDGE_API_KEYS": apiKey, "CTIBRIDGE_DATABASE": filepath.Join(t.TempDir(), "b.db")}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.APIKeys = append(cfg.APIKeys, config.APIKey{Name: "studio", SHA256: "not-hex"})
	cfg.Callers.Region = "XX"
	_, err = bridge.New(context.Background(), cfg, nil)
	for _, want := range []string{"apiKeys[0] (studio): sha256 must be 64 hex characters", `callers.region "XX"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("start: %v, want it to name %s", err, want)
		}
	}
}
