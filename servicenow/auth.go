package servicenow

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/ctibridge/ctibridge/secret"
)

// AuthMethod selects how the client authenticates.
type AuthMethod int

// Authentication methods.
const (
	AuthBasic                  AuthMethod = iota + 1 // user name and password on every request
	AuthOAuthPassword                                // OAuth password grant (client id+secret, user name+password)
	AuthOAuthClientCredentials                       // OAuth client credentials (client id+secret)
)

func (m AuthMethod) String() string {
	switch m {
	case AuthBasic:
		return "basic"
	case AuthOAuthPassword:
		return "oauth-password"
	case AuthOAuthClientCredentials:
		return "oauth-client-credentials"
	}
	return "none"
}

// NewAuth builds credentials for the method named as AuthMethod.String
// names it ("basic", "oauth-password", "oauth-client-credentials").
func NewAuth(method, username string, password secret.Secret, clientID string, clientSecret secret.Secret) Auth {
	a := Auth{Username: username, Password: password, ClientID: clientID, ClientSecret: clientSecret}
	for _, m := range []AuthMethod{AuthBasic, AuthOAuthPassword, AuthOAuthClientCredentials} {
		if m.String() == method {
			a.Method = m
		}
	}
	return a
}

// Auth holds credentials. Secrets are secret.Secret and never print.
type Auth struct {
	Method       AuthMethod
	Username     string
	Password     secret.Secret
	ClientID     string
	ClientSecret secret.Secret
}

func (a Auth) check() error {
	switch a.Method {
	case AuthBasic:
		if a.Username == "" || a.Password.IsZero() {
			return errors.New("basic auth needs a user name and a password")
		}
	case AuthOAuthPassword:
		if a.ClientID == "" || a.ClientSecret.IsZero() || a.Username == "" || a.Password.IsZero() {
			return errors.New("the OAuth password grant needs a client id, a client secret, a user name and a password")
		}
	case AuthOAuthClientCredentials:
		if a.ClientID == "" || a.ClientSecret.IsZero() {
			return errors.New("OAuth client credentials need a client id and a client secret")
		}
	default:
		return errors.New("no authentication method chosen")
	}
	return nil
}

// tokens caches an OAuth access token and renews it: before expiry, with the
// refresh token when there is one, and by a full login when the refresh
// token is refused.
type tokens struct {
	c     *Client
	conf  *oauth2.Config
	mu    sync.Mutex
	tok   *oauth2.Token
	gen   int           // counts tokens obtained
	early time.Duration // renew this long before expiry
}

func newTokens(c *Client, tokenURL string) *tokens {
	a := c.cfg.Auth
	return &tokens{c: c, early: 60 * time.Second, conf: &oauth2.Config{
		ClientID: a.ClientID, ClientSecret: a.ClientSecret.Reveal(),
		Endpoint: oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}}
}

// header returns the Authorization header value and the token's generation;
// stale > 0 forces a new token if generation stale is still current (after a
// 401 with it).
func (t *tokens) header(ctx context.Context, stale int) (string, int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil && t.gen != stale && time.Now().Before(t.tok.Expiry) {
		return "Bearer " + t.tok.AccessToken, t.gen, nil
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, t.c.hc)
	if t.tok != nil && t.tok.RefreshToken != "" {
		nt, err := t.fetch(ctx, "refresh_token", func(ctx context.Context) (*oauth2.Token, error) {
			return t.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: t.tok.RefreshToken}).Token()
		})
		if err == nil {
			t.keep(nt)
			return "Bearer " + nt.AccessToken, t.gen, nil
		}
		t.c.log.Info("servicenow: refresh token refused, logging in again", "error", err)
	}
	nt, err := t.fetch(ctx, "login", t.login)
	if err != nil {
		t.tok = nil
		return "", 0, err
	}
	t.keep(nt)
	return "Bearer " + nt.AccessToken, t.gen, nil
}

func (t *tokens) login(ctx context.Context) (*oauth2.Token, error) {
	a := t.c.cfg.Auth
	if a.Method == AuthOAuthClientCredentials {
		cc := clientcredentials.Config{ClientID: t.conf.ClientID, ClientSecret: t.conf.ClientSecret,
			TokenURL: t.conf.Endpoint.TokenURL, AuthStyle: oauth2.AuthStyleInParams}
		return cc.Token(ctx)
	}
	return t.conf.PasswordCredentialsToken(ctx, a.Username, a.Password.Reveal())
}

// keep stores a token, set to expire early so it is renewed before the
// instance refuses it.
func (t *tokens) keep(nt *oauth2.Token) {
	if !nt.Expiry.IsZero() {
		life := time.Until(nt.Expiry)
		nt.Expiry = nt.Expiry.Add(-min(t.early, life/10))
	} else {
		nt.Expiry = time.Now().Add(30 * time.Minute)
	}
	if nt.RefreshToken == "" && t.tok != nil {
		nt.RefreshToken = t.tok.RefreshToken
	}
	t.tok = nt
	t.gen++
}

func (t *tokens) fetch(ctx context.Context, kind string, f func(context.Context) (*oauth2.Token, error)) (*oauth2.Token, error) {
	start := time.Now()
	tok, err := f(ctx)
	ri := RequestInfo{Op: "oauth", Method: http.MethodPost, Table: kind, Duration: time.Since(start), Status: http.StatusOK}
	if err != nil {
		var re *oauth2.RetrieveError
		e := &Error{Op: "oauth", Table: kind}
		if errors.As(err, &re) && re.Response != nil {
			e.Status, e.Message = re.Response.StatusCode, re.ErrorCode
			if e.Message == "" {
				e.Message = "token request refused"
			}
		} else {
			e.Err = errors.Unwrap(err)
			if e.Err == nil {
				e.Err = err
			}
		}
		ri.Status, ri.Err = e.Status, e
		err = e
	}
	t.c.observe(ri)
	return tok, err
}

func basicToken(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}
