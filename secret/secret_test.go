package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	s := Secret("hunter2")
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("login", "password", s)
	js, err := json.Marshal(struct{ P Secret }{s})
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %s %q %#v %+v", s, s, s, s, struct{ P Secret }{s}),
		logs.String(), string(js),
		fmt.Errorf("auth failed for %v", s).Error(),
	}
	for _, out := range outputs {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret leaked: %s", out)
		}
	}
	if s.Reveal() != "hunter2" {
		t.Errorf("Reveal() = %q, want the credential", s.Reveal())
	}
	var back struct{ P Secret }
	if err := json.Unmarshal([]byte(`{"P":"abc"}`), &back); err != nil || back.P.Reveal() != "abc" {
		t.Errorf("unmarshal: %v %q", err, back.P.Reveal())
	}
}
