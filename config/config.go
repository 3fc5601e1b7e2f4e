// Package config loads ctibridge's configuration: a YAML file (optional)
// overridden by CTIBRIDGE_* environment variables, checked against its own
// rules with messages that name the key at fault. It is plain data: it
// imports no service package, and the packages that use a section check
// what only they know (the API key hashes in api, the callers' region in
// callerid; bridge.CheckConfig runs those at start).
//
// Secrets may come from the file, from environment variables, or from files
// named by *File keys (for Kubernetes and systemd credentials); they are held
// as secret.Secret and never printed.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ctibridge/ctibridge"

	"go.yaml.in/yaml/v3"

	"github.com/ctibridge/ctibridge/secret"
)

// Config is the whole configuration.
type Config struct {
	Listen      string `yaml:"listen"`      // Studio API (and console unless adminListen is set)
	AdminListen string `yaml:"adminListen"` // optional separate listener for console and admin endpoints
	Database    string `yaml:"database"`    // SQLite file path or postgres:// URL
	Env         string `yaml:"env"`         // selected environment
	// ShutdownTimeout bounds how long serve takes to stop after SIGTERM
	// (default 20s): keep it below the supervisor's grace period (systemd
	// TimeoutStopSec, Kubernetes terminationGracePeriodSeconds).
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`

	Environments map[string]*Environment `yaml:"environments"`

	APIKeys []APIKey `yaml:"apiKeys"`
	// PlainAPIKeys come from CTIBRIDGE_API_KEYS only.
	PlainAPIKeys []secret.Secret `yaml:"-"`

	Lifecycle Lifecycle `yaml:"lifecycle"`
	Callers   Callers   `yaml:"callers"`
	Agents    Agents    `yaml:"agents"`
	CXone     CXone     `yaml:"cxone"`
	Console   Console   `yaml:"console"`
	Security  Security  `yaml:"security"`
	TLS       TLS       `yaml:"tls"`
	Log       Log       `yaml:"log"`
}

// Environment is one ServiceNow instance and how to reach it.
type Environment struct {
	Instance string `yaml:"instance"` // https://acme.service-now.com
	Auth     Auth   `yaml:"auth"`
	// Workspace picks the screen-pop URL: agent (Agent Workspace, default),
	// csm, sow, classic, or a template with {instance} and {sys_id}.
	Workspace       string        `yaml:"workspace"`
	RequestsPerHour int           `yaml:"requestsPerHour"` // budget under the instance's rate limit (default 36000; -1 = none)
	Burst           int           `yaml:"burst"`           // default 50
	MaxConcurrent   int           `yaml:"maxConcurrent"`   // the most requests in flight at once (default 64); the client adapts below it
	Timeout         time.Duration `yaml:"timeout"`         // per request, default 10s
	// Batch: auto (default) sends requests that go together (a caller's
	// lookups, a call's links) in one round trip through the Batch API,
	// one by one where the instance refuses it; off always one by one.
	Batch string `yaml:"batch"`
}

// APIKey is a Studio API key as configured: a name for the audit log and
// the SHA-256 of the key ('ctibridge keys new' prints both). The api package
// checks the hash when the bridge starts.
type APIKey struct {
	Name   string `yaml:"name"`
	SHA256 string `yaml:"sha256"`
}

// Auth holds ServiceNow credentials. With ClientID and Username: OAuth password
// grant; ClientID alone: OAuth client credentials; Username alone: basic auth.
type Auth struct {
	Username         string        `yaml:"username"`
	Password         secret.Secret `yaml:"password"`
	PasswordFile     string        `yaml:"passwordFile"`
	ClientID         string        `yaml:"clientId"`
	ClientSecret     secret.Secret `yaml:"clientSecret"`
	ClientSecretFile string        `yaml:"clientSecretFile"`
}

// Method names the authentication the credentials select.
func (a Auth) Method() string {
	switch {
	case a.ClientID != "" && a.Username != "":
		return "oauth-password"
	case a.ClientID != "":
		return "oauth-client-credentials"
	case a.Username != "":
		return "basic"
	}
	return ""
}

// Lifecycle tunes how calls become interactions.
type Lifecycle struct {
	Namespace  string            `yaml:"namespace"`  // sys_id namespace (default "ctibridge")
	KeepOpen   bool              `yaml:"keepOpen"`   // leave answered interactions open on release
	States     ctibridge.States  `yaml:"states"`     // state names (defaults: new, work_in_progress, closed_complete, closed_abandoned)
	FieldMap   map[string]string `yaml:"fieldMap"`   // call attribute → interaction field, e.g. skillName: u_skill
	Workers    int               `yaml:"workers"`    // default: the environment's maxConcurrent
	MaxBackoff time.Duration     `yaml:"maxBackoff"` // default 5m
	AlertAfter int               `yaml:"alertAfter"` // failed attempts before the error log (default 3)
	GiveUp     time.Duration     `yaml:"giveUpAfter"`
	Retention  time.Duration     `yaml:"retention"` // keep finished calls and resolved errors this long (default 720h; -1s = forever)
	// Lease is how long a worker owns a call; another bridge takes it over
	// when its owner dies (default 2m). JobTimeout bounds one attempt and
	// must be shorter (default 1m).
	Lease      time.Duration `yaml:"lease"`
	JobTimeout time.Duration `yaml:"jobTimeout"`
}

// Callers configures caller identification.
type Callers struct {
	Region   string        `yaml:"region"`   // default region for national numbers (default US)
	CacheTTL time.Duration `yaml:"cacheTTL"` // default 5m
	Policy   string        `yaml:"policy"`   // several matches: "none" (default, list candidates) or "latest"
	Related  int           `yaml:"related"`  // open incidents/cases linked, default 5, -1 none
	Sources  []Source      `yaml:"sources"`  // lookup order
	Disabled bool          `yaml:"disabled"` // no caller lookup at all

	// UnknownTTL is how long a number no source matches is remembered as
	// unknown (default 1m, at most cacheTTL; negative: not remembered).
	UnknownTTL time.Duration `yaml:"unknownTTL"`
}

// Source is one table searched for the caller's number.
type Source struct {
	Table  string   `yaml:"table"`
	Fields []string `yaml:"fields"`
}

// Agents configures agent mapping.
type Agents struct {
	Strategies []string      `yaml:"strategies"` // order of: map, cxone, user_name, email (default all; cxone with cxone.accessKeyId)
	MapFile    string        `yaml:"mapFile"`    // CSV or YAML: CXone agent id → sys_id or user_name
	CacheTTL   time.Duration `yaml:"cacheTTL"`   // default 10m
}

// CXone reaches the CXone APIs, to read an agent's user name and e-mail
// when Studio sends only the agent id; off without an access key.
type CXone struct {
	AccessKeyID         string        `yaml:"accessKeyId"`
	AccessKeySecret     secret.Secret `yaml:"accessKeySecret"`
	AccessKeySecretFile string        `yaml:"accessKeySecretFile"`
	TenantID            string        `yaml:"tenantId"` // for API discovery; default: the token's
	APIBase             string        `yaml:"apiBase"`  // instead of discovery, e.g. https://api-na1.niceincontact.com
	// Poll, when set (e.g. 2s), follows calls from CXone's Real-Time Data
	// and Reporting APIs, with or without Studio events.
	Poll time.Duration `yaml:"poll"`
}

// Console configures the operator console.
type Console struct {
	Username string        `yaml:"username"` // default admin
	Password secret.Secret `yaml:"password"` // console disabled when empty (and no CTIBRIDGE_CONSOLE_PASSWORD)
}

// Security hardens the Studio API.
type Security struct {
	RatePerKey     float64       `yaml:"ratePerKey"` // requests a second per API key (default 200; -1 = no limit)
	Burst          int           `yaml:"burst"`      // default 400
	HMACSecret     secret.Secret `yaml:"hmacSecret"` // when set, events must be signed
	HMACSecretFile string        `yaml:"hmacSecretFile"`
}

// TLS makes serve terminate TLS itself; the files are re-read when they change.
type TLS struct {
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// Load reads the file at path (may be "") and applies the environment.
func Load(path string, getenv func(string) string) (*Config, error) {
	c := &Config{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := c.applyEnv(getenv); err != nil {
		return nil, err
	}
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) applyEnv(getenv func(string) string) error {
	set := func(dst *string, name string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	set(&c.Listen, "CTIBRIDGE_LISTEN")
	set(&c.AdminListen, "CTIBRIDGE_ADMIN_LISTEN")
	set(&c.Database, "CTIBRIDGE_DATABASE")
	set(&c.Env, "CTIBRIDGE_ENV")
	if c.Env == "" {
		c.Env = "default"
		if len(c.Environments) == 1 {
			for name := range c.Environments {
				c.Env = name
			}
		}
	}
	if c.Environments == nil {
		c.Environments = map[string]*Environment{}
	}
	e := c.Environments[c.Env]
	snVars := []string{"CTIBRIDGE_SN_INSTANCE", "CTIBRIDGE_SN_USERNAME", "CTIBRIDGE_SN_PASSWORD", "CTIBRIDGE_SN_PASSWORD_FILE",
		"CTIBRIDGE_SN_CLIENT_ID", "CTIBRIDGE_SN_CLIENT_SECRET", "CTIBRIDGE_SN_CLIENT_SECRET_FILE", "CTIBRIDGE_SN_WORKSPACE", "CTIBRIDGE_SN_BATCH"}
	if e == nil && slices.ContainsFunc(snVars, func(n string) bool { return getenv(n) != "" }) {
		e = &Environment{}
		c.Environments[c.Env] = e
	}
	if e != nil {
		set(&e.Instance, "CTIBRIDGE_SN_INSTANCE")
		set(&e.Workspace, "CTIBRIDGE_SN_WORKSPACE")
		set(&e.Batch, "CTIBRIDGE_SN_BATCH")
		set(&e.Auth.Username, "CTIBRIDGE_SN_USERNAME")
		set(&e.Auth.PasswordFile, "CTIBRIDGE_SN_PASSWORD_FILE")
		set(&e.Auth.ClientID, "CTIBRIDGE_SN_CLIENT_ID")
		set(&e.Auth.ClientSecretFile, "CTIBRIDGE_SN_CLIENT_SECRET_FILE")
		if v := getenv("CTIBRIDGE_SN_PASSWORD"); v != "" {
			e.Auth.Password = secret.Secret(v)
		}
		if v := getenv("CTIBRIDGE_SN_CLIENT_SECRET"); v != "" {
			e.Auth.ClientSecret = secret.Secret(v)
		}
		if err := readSecretFile(&e.Auth.Password, e.Auth.PasswordFile, "auth.passwordFile"); err != nil {
			return err
		}
		if err := readSecretFile(&e.Auth.ClientSecret, e.Auth.ClientSecretFile, "auth.clientSecretFile"); err != nil {
			return err
		}
	}
	if v := getenv("CTIBRIDGE_API_KEYS"); v != "" {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				c.PlainAPIKeys = append(c.PlainAPIKeys, secret.Secret(k))
			}
		}
	}
	set(&c.CXone.AccessKeyID, "CTIBRIDGE_CXONE_ACCESS_KEY_ID")
	set(&c.CXone.AccessKeySecretFile, "CTIBRIDGE_CXONE_ACCESS_KEY_SECRET_FILE")
	set(&c.CXone.TenantID, "CTIBRIDGE_CXONE_TENANT_ID")
	set(&c.CXone.APIBase, "CTIBRIDGE_CXONE_API")
	if v := getenv("CTIBRIDGE_CXONE_POLL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("CTIBRIDGE_CXONE_POLL: %q is not a duration like 2s", v)
		}
		c.CXone.Poll = d
	}
	if v := getenv("CTIBRIDGE_CXONE_ACCESS_KEY_SECRET"); v != "" {
		c.CXone.AccessKeySecret = secret.Secret(v)
	}
	if err := readSecretFile(&c.CXone.AccessKeySecret, c.CXone.AccessKeySecretFile, "cxone.accessKeySecretFile"); err != nil {
		return err
	}
	if v := getenv("CTIBRIDGE_CONSOLE_PASSWORD"); v != "" {
		c.Console.Password = secret.Secret(v)
	}
	if v := getenv("CTIBRIDGE_LOG_LEVEL"); v != "" {
		c.Log.Level = v
	}
	set(&c.TLS.CertFile, "CTIBRIDGE_TLS_CERT")
	set(&c.TLS.KeyFile, "CTIBRIDGE_TLS_KEY")
	set(&c.Security.HMACSecretFile, "CTIBRIDGE_HMAC_SECRET_FILE")
	if v := getenv("CTIBRIDGE_HMAC_SECRET"); v != "" {
		c.Security.HMACSecret = secret.Secret(v)
	}
	if err := readSecretFile(&c.Security.HMACSecret, c.Security.HMACSecretFile, "security.hmacSecretFile"); err != nil {
		return err
	}
	if v := getenv("CTIBRIDGE_RATE_PER_KEY"); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("config: CTIBRIDGE_RATE_PER_KEY=%q is not a number", v)
		}
		c.Security.RatePerKey = n
	}
	if v := getenv("CTIBRIDGE_SN_REQUESTS_PER_HOUR"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("config: CTIBRIDGE_SN_REQUESTS_PER_HOUR=%q is not a number", v)
		}
		for _, e := range c.Environments {
			e.RequestsPerHour = n
		}
	}
	if v := getenv("CTIBRIDGE_WORKERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("config: CTIBRIDGE_WORKERS=%q is not a number", v)
		}
		c.Lifecycle.Workers = n
	}
	return nil
}

func readSecretFile(dst *secret.Secret, path, key string) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %s: %w", key, err)
	}
	*dst = secret.Secret(strings.TrimSpace(string(b)))
	return nil
}

func (c *Config) defaults() {
	if c.Security.RatePerKey == 0 {
		c.Security.RatePerKey = 200
	}
	if c.Security.Burst == 0 {
		c.Security.Burst = 400
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Database == "" {
		c.Database = "ctibridge.db"
	}
	if c.Lifecycle.Namespace == "" {
		c.Lifecycle.Namespace = "ctibridge"
	}
	if c.Lifecycle.Lease == 0 {
		c.Lifecycle.Lease = 2 * time.Minute
	}
	if c.Lifecycle.JobTimeout == 0 {
		c.Lifecycle.JobTimeout = time.Minute
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	if c.Console.Username == "" {
		c.Console.Username = "admin"
	}
	if c.Callers.Region == "" {
		c.Callers.Region = "US"
	}
	for _, e := range c.Environments {
		if e.Workspace == "" {
			e.Workspace = ctibridge.DefaultWorkspace
		}
		if e.RequestsPerHour == 0 {
			e.RequestsPerHour = 36000
		}
		if e.Burst == 0 {
			e.Burst = 50
		}
		if e.MaxConcurrent == 0 {
			e.MaxConcurrent = 64
		}
		if e.Timeout == 0 {
			e.Timeout = 10 * time.Second
		}
		if e.Batch == "" {
			e.Batch = "auto"
		}
	}
}

// Selected returns the environment chosen by env / CTIBRIDGE_ENV.
func (c *Config) Selected() *Environment { return c.Environments[c.Env] }

// Validate checks the configuration; the error names every key at fault.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("config: "+format, a...)) }
	e := c.Selected()
	if e == nil {
		names := make([]string, 0, len(c.Environments))
		for n := range c.Environments {
			names = append(names, n)
		}
		slices.Sort(names)
		if len(names) == 0 {
			bad("no ServiceNow instance configured; set environments.<name>.instance or CTIBRIDGE_SN_INSTANCE")
		} else {
			bad("env %q is not among environments (%s); set env or CTIBRIDGE_ENV", c.Env, strings.Join(names, ", "))
		}
	} else {
		p := "environments." + c.Env
		if e.Instance == "" {
			bad("%s.instance is empty; set it or CTIBRIDGE_SN_INSTANCE", p)
		} else if u, err := url.Parse(e.Instance); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("%s.instance %q is not an http(s) URL like https://acme.service-now.com", p, e.Instance)
		} else if u.User != nil {
			bad("%s.instance must not carry credentials; use auth", p)
		}
		switch e.Auth.Method() {
		case "":
			bad("%s.auth: set username (basic), clientId (OAuth client credentials), or both (OAuth password grant); or CTIBRIDGE_SN_USERNAME / CTIBRIDGE_SN_CLIENT_ID", p)
		case "basic", "oauth-password":
			if e.Auth.Password.IsZero() {
				bad("%s.auth.password is empty; set it, auth.passwordFile, or CTIBRIDGE_SN_PASSWORD", p)
			}
		}
		if e.Auth.ClientID != "" && e.Auth.ClientSecret.IsZero() {
			bad("%s.auth.clientSecret is empty; set it, auth.clientSecretFile, or CTIBRIDGE_SN_CLIENT_SECRET", p)
		}
		if _, err := ctibridge.NewScreenPop(e.Instance, e.Workspace); err != nil {
			bad("%s.workspace: %v", p, err)
		}
		if e.RequestsPerHour < -1 || e.Burst < 0 || e.MaxConcurrent < 0 || e.Timeout < 0 {
			bad("%s: burst, maxConcurrent and timeout must not be negative; requestsPerHour is -1 (no budget) or more", p)
		}
		if e.Batch != "" && e.Batch != "auto" && e.Batch != "off" {
			bad("%s.batch %q: want auto or off (CTIBRIDGE_SN_BATCH)", p, e.Batch)
		}
	}
	if l := c.Lifecycle; l.Lease < 0 || l.JobTimeout < 0 || l.JobTimeout >= l.Lease {
		bad("lifecycle.jobTimeout (%s) must be less than lifecycle.lease (%s): a lease that ends before its attempt lets a second bridge work on the same call", l.JobTimeout, l.Lease)
	}
	if c.ShutdownTimeout < time.Second {
		bad("shutdownTimeout (%s): at least 1s, and below the supervisor's grace period (30s in the shipped systemd unit and Kubernetes manifest)", c.ShutdownTimeout)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls: certFile and keyFile go together (CTIBRIDGE_TLS_CERT, CTIBRIDGE_TLS_KEY)")
	}
	if c.Security.RatePerKey < 0 && c.Security.RatePerKey != -1 {
		bad("security.ratePerKey: want a number of requests a second, or -1 for no limit")
	}
	if !c.Security.HMACSecret.IsZero() && len(c.Security.HMACSecret.Reveal()) < 16 {
		bad("security.hmacSecret: at least 16 characters")
	}
	if len(c.APIKeys)+len(c.PlainAPIKeys) == 0 {
		bad("no API key for Studio; set apiKeys (see 'ctibridge keys new') or CTIBRIDGE_API_KEYS")
	}
	switch c.Callers.Policy {
	case "", "none", "latest":
	default:
		bad("callers.policy %q: want none or latest", c.Callers.Policy)
	}
	for i, s := range c.Callers.Sources {
		if s.Table == "" || len(s.Fields) == 0 {
			bad("callers.sources[%d]: table and fields are required", i)
		}
	}
	for _, s := range c.Agents.Strategies {
		if s != "map" && s != "cxone" && s != "user_name" && s != "email" {
			bad("agents.strategies: %q is not one of map, cxone, user_name, email", s)
		}
		if s == "cxone" && c.CXone.AccessKeyID == "" {
			bad("agents.strategies: cxone needs cxone.accessKeyId (or CTIBRIDGE_CXONE_ACCESS_KEY_ID)")
		}
	}
	if x := c.CXone; x.AccessKeyID != "" && x.AccessKeySecret.IsZero() {
		bad("cxone.accessKeySecret is empty; set it, cxone.accessKeySecretFile, or CTIBRIDGE_CXONE_ACCESS_KEY_SECRET")
	} else if x.AccessKeyID == "" && (!x.AccessKeySecret.IsZero() || x.TenantID != "" || x.APIBase != "") {
		bad("cxone.accessKeyId is empty; set it or CTIBRIDGE_CXONE_ACCESS_KEY_ID, or leave the cxone keys out")
	}
	if p := c.CXone.Poll; p != 0 && (p < time.Second || p > time.Minute) {
		bad("cxone.poll %s: want from 1s to 1m (or leave it out to not poll CXone)", p)
	} else if p != 0 && c.CXone.AccessKeyID == "" {
		bad("cxone.poll needs cxone.accessKeyId (or CTIBRIDGE_CXONE_ACCESS_KEY_ID)")
	}
	if u, err := url.Parse(c.CXone.APIBase); c.CXone.APIBase != "" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil) {
		bad("cxone.apiBase %q is not an http(s) URL like https://api-na1.niceincontact.com", c.CXone.APIBase)
	}
	switch strings.ToLower(c.Log.Level) {
	case "", "debug", "info", "warn", "error":
	default:
		bad("log.level %q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		bad("log.format %q: want text or json", c.Log.Format)
	}
	if c.Lifecycle.Workers < 0 {
		bad("lifecycle.workers must not be negative")
	}
	return errors.Join(errs...)
}
