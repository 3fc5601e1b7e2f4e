package cxone

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// tokens holds the access token and renews it: before it expires, and after
// a 401 that shows it was revoked. Concurrent callers share one renewal.
type tokens struct {
	c   *Client
	url string

	mu      sync.Mutex
	tok     string
	gen     int       // counts tokens obtained
	renewAt time.Time // a little before the token expires
	tenant  string    // the token's tenantId claim, if any
	group   singleflight.Group
}

// tokenReply is the access-key endpoint's answer.
type tokenReply struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	IDToken     string `json:"id_token"`
}

// get returns a token that is not about to expire and its generation.
// stale > 0 forces a new token if generation stale is still current (a 401
// came back with it).
func (t *tokens) get(ctx context.Context, stale int) (string, int, error) {
	if tok, gen, ok := t.current(stale); ok {
		return tok, gen, nil
	}
	ch := t.group.DoChan("token", func() (any, error) {
		if _, _, ok := t.current(stale); ok {
			return nil, nil // renewed meanwhile
		}
		// The renewal serves every caller waiting on it: it must not end
		// because the first one's context does.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.c.cfg.Timeout)
		defer cancel()
		return nil, t.fetch(fctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", 0, r.Err
		}
	case <-ctx.Done():
		return "", 0, &Error{Op: "token", Err: ctx.Err()}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tok, t.gen, nil
}

func (t *tokens) current(stale int) (string, int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ok := t.tok != "" && t.gen != stale && time.Now().Before(t.renewAt)
	return t.tok, t.gen, ok
}

func (t *tokens) fetch(ctx context.Context) error {
	body, _ := json.Marshal(map[string]string{
		"accessKeyId":     t.c.cfg.AccessKeyID,
		"accessKeySecret": t.c.cfg.AccessKeySecret.Reveal(),
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return &Error{Op: "token", Err: errConfig}
	}
	req.Header.Set("Content-Type", "application/json")
	status, raw, e := t.c.send("token", req)
	if e != nil {
		if e.Status == http.StatusUnauthorized || e.Status == http.StatusBadRequest {
			e.Message = strings.TrimSpace(e.Message + "; check the access key id and secret")
		}
		return e
	}
	var r tokenReply
	if err := json.Unmarshal(raw, &r); err != nil || r.AccessToken == "" {
		return &Error{Op: "token", Status: status, Message: "no access_token in the reply", Err: errUnreadable}
	}
	life := time.Duration(r.ExpiresIn) * time.Second
	if life <= 0 {
		life = time.Hour // NICE documents an hour
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tok = r.AccessToken
	t.gen++
	t.renewAt = time.Now().Add(life - min(5*time.Minute, life/10))
	t.tenant = tenantClaim(r.AccessToken)
	if t.tenant == "" {
		t.tenant = tenantClaim(r.IDToken)
	}
	t.c.log.Debug("cxone: new access token", "expires_in", life)
	return nil
}

// tenantClaim reads the tenantId claim of a JWT without checking its
// signature: it only chooses where to look for the API, and CXone checks
// the token on every call.
func tenantClaim(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var claims struct {
		TenantID string `json:"tenantId"`
	}
	json.Unmarshal(b, &claims)
	return claims.TenantID
}

// discovery finds and keeps the tenant's API base from NICE's discovery
// document.
type discovery struct {
	c    *Client
	base *url.URL

	mu  sync.Mutex
	api *url.URL
}

// apiBase is the configured API base, or the discovered one.
func (c *Client) apiBase(ctx context.Context) (*url.URL, error) {
	if c.override != nil {
		return c.override, nil
	}
	return c.disc.find(ctx)
}

func (d *discovery) find(ctx context.Context) (*url.URL, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.api != nil {
		return d.api, nil
	}
	tenant := d.c.cfg.TenantID
	if tenant == "" {
		d.c.tokens.mu.Lock()
		tenant = d.c.tokens.tenant
		d.c.tokens.mu.Unlock()
	}
	if tenant == "" {
		return nil, &Error{Op: "discovery", Message: "no tenant id: set it (cxone.tenantId), or the API base (cxone.apiBase)", Err: errConfig}
	}
	u := d.base.JoinPath(".well-known/cxone-configuration")
	u.RawQuery = url.Values{"tenantId": {tenant}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, &Error{Op: "discovery", Err: errConfig}
	}
	status, raw, e := d.c.send("discovery", req)
	if e != nil {
		if e.Status == http.StatusNotFound || e.Status == http.StatusBadRequest {
			e.Message = strings.TrimSpace(fmt.Sprintf("%s; is tenant %q right?", e.Message, tenant))
		}
		return nil, e
	}
	var doc struct {
		APIEndpoint string `json:"api_endpoint"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || doc.APIEndpoint == "" {
		return nil, &Error{Op: "discovery", Status: status, Message: "no api_endpoint in the discovery document", Err: errUnreadable}
	}
	api, err := baseURL(doc.APIEndpoint)
	if err != nil {
		return nil, &Error{Op: "discovery", Status: status, Message: fmt.Sprintf("api_endpoint %q", doc.APIEndpoint), Err: errors.Join(errUnreadable, err)}
	}
	d.api = api
	d.c.log.Info("cxone: API base discovered", "tenant", tenant, "api", api.String())
	return api, nil
}
