package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

const key = "0123456789abcdef0123"

func TestEnvOnlySelectsAuth(t *testing.T) {
	t.Parallel()
	base := map[string]string{"CTIBRIDGE_SN_INSTANCE": "https://acme.service-now.com", "CTIBRIDGE_API_KEYS": key}
	tests := []struct {
		name string
		vars map[string]string
		want string
	}{
		{"basic", map[string]string{"CTIBRIDGE_SN_USERNAME": "u", "CTIBRIDGE_SN_PASSWORD": "p"}, "basic"},
		{"password grant", map[string]string{"CTIBRIDGE_SN_USERNAME": "u", "CTIBRIDGE_SN_PASSWORD": "p", "CTIBRIDGE_SN_CLIENT_ID": "c", "CTIBRIDGE_SN_CLIENT_SECRET": "s"}, "oauth-password"},
		{"client credentials", map[string]string{"CTIBRIDGE_SN_CLIENT_ID": "c", "CTIBRIDGE_SN_CLIENT_SECRET": "s"}, "oauth-client-credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{}
			for k, v := range base {
				vars[k] = v
			}
			for k, v := range tt.vars {
				vars[k] = v
			}
			c, err := Load("", env(vars))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Selected().Auth.Method(); got != tt.want {
				t.Errorf("auth method = %q, want %q", got, tt.want)
			}
			if c.Listen != "127.0.0.1:8080" || c.Database != "ctibridge.db" || len(c.PlainAPIKeys) != 1 || c.Selected().Batch != "auto" {
				t.Errorf("defaults: listen %q database %q keys %d batch %q", c.Listen, c.Database, len(c.PlainAPIKeys), c.Selected().Batch)
			}
		})
	}
}

func TestValidationNamesTheKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		vars map[string]string
		want []string
	}{
		{"nothing", nil, []string{"CTIBRIDGE_SN_INSTANCE", "CTIBRIDGE_API_KEYS"}},
		{"no password", map[string]string{"CTIBRIDGE_SN_INSTANCE": "https://x.service-now.com", "CTIBRIDGE_SN_USERNAME": "u", "CTIBRIDGE_API_KEYS": key},
			[]string{"environments.default.auth.password is empty", "CTIBRIDGE_SN_PASSWORD"}},
		{"bad url", map[string]string{"CTIBRIDGE_SN_INSTANCE": "acme", "CTIBRIDGE_SN_USERNAME": "u", "CTIBRIDGE_SN_PASSWORD": "p", "CTIBRIDGE_API_KEYS": key},
			[]string{"environments.default.instance \"acme\" is not an http(s) URL"}},
		{"unknown env", map[string]string{"CTIBRIDGE_ENV": "qa"}, []string{"CTIBRIDGE_SN_INSTANCE"}},
		{"batch", map[string]string{"CTIBRIDGE_SN_INSTANCE": "https://x.service-now.com", "CTIBRIDGE_SN_USERNAME": "u", "CTIBRIDGE_SN_PASSWORD": "p",
			"CTIBRIDGE_API_KEYS": key, "CTIBRIDGE_SN_BATCH": "sometimes"}, []string{`environments.default.batch "sometimes": want auto or off`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load("", env(tt.vars))
			if err == nil {
				t.Fatal("invalid configuration accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestFileEnvironmentsAndOverrides(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("s3cret-from-file\n"), 0o600)
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`
env: test
environments:
  test:
    instance: https://acme-test.service-now.com
    auth: {username: cti, passwordFile: %s}
    workspace: csm
  prod:
    instance: https://acme.service-now.com
    auth: {clientId: abc, clientSecret: xyz}
apiKeys:
  - {name: studio, sha256: %s}
`, pw, strings.Repeat("ab", 32))), 0o600)

	c, err := Load(path, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Env != "test" || c.Selected().Auth.Password.Reveal() != "s3cret-from-file" || c.Selected().Workspace != "csm" {
		t.Errorf("test env: %+v", c.Selected())
	}
	c, err = Load(path, env(map[string]string{"CTIBRIDGE_ENV": "prod", "CTIBRIDGE_SN_INSTANCE": "https://other.service-now.com"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Selected().Instance != "https://other.service-now.com" || c.Selected().Auth.Method() != "oauth-client-credentials" {
		t.Errorf("prod env with override: %+v", c.Selected())
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("listne: 127.0.0.1:9\n"), 0o600)
	_, err := Load(path, env(nil))
	if err == nil || !strings.Contains(err.Error(), "listne") {
		t.Fatalf("typo in key: err = %v, want it named", err)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The example names secret files; provide them.
	b, err := os.ReadFile("../ctibridge.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "/run/secrets/", dir+"/")
	for _, f := range []string{"sn-dev-password", "sn-client-secret", "sn-password"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600)
	}
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(text), 0o600)
	c, err := Load(path, env(nil))
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if c.Env != "prod" || c.Selected().Auth.Method() != "oauth-password" {
		t.Errorf("example: env %q auth %q", c.Env, c.Selected().Auth.Method())
	}
}

func TestSecretsDoNotPrint(t *testing.T) {
	t.Parallel()
	c, err := Load("", env(map[string]string{"CTIBRIDGE_SN_INSTANCE": "https://x.service-now.com", "CTIBRIDGE_SN_CLIENT_ID": "id",
		"CTIBRIDGE_SN_CLIENT_SECRET": "topsecret-client", "CTIBRIDGE_API_KEYS": "topsecret-apikey-123"}))
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("%+v %+v %v", *c, *c.Selected(), c.PlainAPIKeys)
	if strings.Contains(out, "topsecret") {
		t.Errorf("secret printed: %s", out)
	}
}

func TestFileValidationNamesEachKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(`
environments:
  default:
    instance: https://acme.service-now.com
    auth: {username: u, password: p}
apiKeys: [{name: studio, sha256: "0000000000000000000000000000000000000000000000000000000000000000"}]
callers: {region: XX, policy: random}
security: {ratePerKey: -5, hmacSecret: short}
tls: {certFile: /etc/cert.pem}
lifecycle: {lease: 30s, jobTimeout: 1m}
shutdownTimeout: 100ms
`), 0o600)
	_, err := Load(path, env(nil))
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, w := range []string{"callers.policy \"random\"", "security.ratePerKey", "security.hmacSecret", "tls: certFile and keyFile",
		"lifecycle.jobTimeout (1m0s) must be less than lifecycle.lease (30s)", "shutdownTimeout (100ms)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "short") {
		t.Errorf("the HMAC secret's value is in the error: %q", err)
	}
}

// TestCXone: the CXone keys come from the file or the environment, the
// secret also from a file; what is missing or malformed is named.
func TestCXone(t *testing.T) {
	t.Parallel()
	secretFile := filepath.Join(t.TempDir(), "cxone-secret")
	os.WriteFile(secretFile, []byte("from-a-file\n"), 0o600)
	base := map[string]string{"CTIBRIDGE_SN_INSTANCE": "https://acme.service-now.com", "CTIBRIDGE_SN_USERNAME": "u",
		"CTIBRIDGE_SN_PASSWORD": "p", "CTIBRIDGE_API_KEYS": key}
	load := func(vars map[string]string) (*Config, error) {
		all := map[string]string{}
		for k, v := range base {
			all[k] = v
		}
		for k, v := range vars {
			all[k] = v
		}
		return Load("", env(all))
	}
	c, err := load(map[string]string{"CTIBRIDGE_CXONE_ACCESS_KEY_ID": "AKID", "CTIBRIDGE_CXONE_ACCESS_KEY_SECRET_FILE": secretFile,
		"CTIBRIDGE_CXONE_TENANT_ID": "t-1", "CTIBRIDGE_CXONE_API": "https://api-na1.niceincontact.com"})
	if err != nil {
		t.Fatal(err)
	}
	if x := c.CXone; x.AccessKeyID != "AKID" || x.AccessKeySecret.Reveal() != "from-a-file" || x.TenantID != "t-1" || x.APIBase != "https://api-na1.niceincontact.com" {
		t.Errorf("cxone from the environment: %+v", x)
	}
	if c, err := load(map[string]string{"CTIBRIDGE_CXONE_ACCESS_KEY_ID": "AKID", "CTIBRIDGE_CXONE_ACCESS_KEY_SECRET": "plain"}); err != nil || c.CXone.AccessKeySecret.Reveal() != "plain" {
		t.Errorf("secret in the variable: %v", err)
	}
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"CTIBRIDGE_CXONE_ACCESS_KEY_ID": "AKID"}, "cxone.accessKeySecret is empty"},
		{map[string]string{"CTIBRIDGE_CXONE_ACCESS_KEY_SECRET": "s"}, "cxone.accessKeyId is empty"},
		{map[string]string{"CTIBRIDGE_CXONE_ACCESS_KEY_ID": "AKID", "CTIBRIDGE_CXONE_ACCESS_KEY_SECRET": "s", "CTIBRIDGE_CXONE_API": "api-na1"}, "cxone.apiBase"},
		{map[string]string{"CTIBRIDGE_CXONE_ACCESS_KEY_ID": "AKID", "CTIBRIDGE_CXONE_ACCESS_KEY_SECRET_FILE": "/nonexistent/cxone"}, "cxone.accessKeySecretFile"},
	} {
		if _, err := load(tc.vars); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %q", tc.vars, err, tc.want)
		}
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("agents:\n  strategies: [map, cxone, email]\n"), 0o600)
	if _, err := Load(path, env(base)); err == nil || !strings.Contains(err.Error(), "cxone needs cxone.accessKeyId") {
		t.Errorf("cxone strategy without a key: %v", err)
	}
}
