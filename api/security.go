package api

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ctibridge/ctibridge/secret"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI serves the OpenAPI 3 document of the API.
func OpenAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
}

// limiters gives each API key its own token bucket, so one misbehaving
// script (or a leaked key) cannot starve the others.
type limiters struct {
	perSecond float64
	burst     int
	mu        sync.Mutex
	m         map[string]*rate.Limiter
}

func newLimiters(perSecond float64, burst int) *limiters {
	if perSecond <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = int(math.Max(1, perSecond*2))
	}
	return &limiters{perSecond: perSecond, burst: burst, m: map[string]*rate.Limiter{}}
}

// allow takes a token for key; when there is none it returns how long to
// wait.
func (l *limiters) allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	lim := l.m[key]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(l.perSecond), l.burst)
		l.m[key] = lim
	}
	l.mu.Unlock()
	now := time.Now()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Signature headers for optional HMAC request signing.
const (
	HeaderTimestamp = "X-Ctibridge-Timestamp"
	HeaderSignature = "X-Ctibridge-Signature"
	// SignatureWindow is how far a signed request's timestamp may be from
	// the bridge's clock. Within it, a replayed request is a duplicate event
	// and changes nothing; outside it, it is refused.
	SignatureWindow = 5 * time.Minute
)

// signingScheme describes the signature in refusals, so a sender still on
// an older scheme sees what is expected.
const signingScheme = `hex HMAC-SHA256 of timestamp + "\n" + method + "\n" + path + "\n" + hex SHA-256 of the body (signing v2)`

// Sign returns the signature of a request (signing v2):
//
//	hex(HMAC-SHA256(key, ts + "\n" + method + "\n" + path + "\n" + hex(SHA-256(body))))
//
// ts is the X-Ctibridge-Timestamp header (Unix seconds), method the HTTP
// method as sent ("POST"), and path the request path exactly as sent, still
// escaped, without the query string ("/v1/contacts/630241195/released").
// Binding the method and path means a signed event cannot be replayed to
// another contact or as another event.
func Sign(key secret.Secret, ts, method, path string, body []byte) string {
	return hex.EncodeToString(mac(key, ts, method, path, body))
}

func mac(key secret.Secret, ts, method, path string, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, []byte(key.Reveal()))
	m.Write([]byte(ts + "\n" + method + "\n" + path + "\n" + hex.EncodeToString(sum[:])))
	return m.Sum(nil)
}

// SignRequest signs r, whose body is body, at time now: it sets
// X-Ctibridge-Timestamp and X-Ctibridge-Signature (see Sign). Senders written
// in Go (the simulator, tests) use it; r's body must be body.
func SignRequest(r *http.Request, key secret.Secret, body []byte, now time.Time) {
	ts := strconv.FormatInt(now.Unix(), 10)
	path, _, _ := strings.Cut(r.URL.RequestURI(), "?") // what the client will send
	r.Header.Set(HeaderTimestamp, ts)
	r.Header.Set(HeaderSignature, Sign(key, ts, r.Method, path, body))
}

// requestPath is the path of r exactly as the client sent it, without the
// query string: what the client signed.
func requestPath(r *http.Request) string {
	p := r.RequestURI
	if !strings.HasPrefix(p, "/") { // absolute form: "http://host/path?query"
		if u, err := url.ParseRequestURI(p); err == nil {
			return u.EscapedPath()
		}
		return r.URL.EscapedPath()
	}
	p, _, _ = strings.Cut(p, "?")
	return p
}

// isV1 reports whether sig is the retired body-only signature
// hex(HMAC-SHA256(key, ts + "." + body)), so its sender can be told why it
// is refused.
func isV1(key secret.Secret, ts string, body, sig []byte) bool {
	m := hmac.New(sha256.New, []byte(key.Reveal()))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return hmac.Equal(m.Sum(nil), sig)
}

// verify checks a signed request and gives the body back to the handler.
// It returns the status, the header at fault and why, or status 0 when the
// request is good.
func (s *Server) verify(r *http.Request) (status int, field, why string) {
	if s.hmacKey.IsZero() {
		return 0, "", ""
	}
	ts, sig := r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature)
	switch {
	case ts == "" && sig == "":
		return http.StatusUnauthorized, HeaderSignature, fmt.Sprintf("request signing is on: send %s and %s", HeaderTimestamp, HeaderSignature)
	case ts == "":
		return http.StatusUnauthorized, HeaderTimestamp, fmt.Sprintf("is missing: request signing is on, send the Unix time in seconds that %s signs", HeaderSignature)
	case sig == "":
		return http.StatusUnauthorized, HeaderSignature, "is missing: request signing is on, send the " + signingScheme
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return http.StatusUnauthorized, HeaderTimestamp, "must be Unix seconds, like 1767225600"
	}
	if d := time.Since(time.Unix(sec, 0)); d > SignatureWindow || d < -SignatureWindow {
		return http.StatusUnauthorized, HeaderTimestamp, fmt.Sprintf("is %s from the bridge's clock; at most %s is allowed (a stale or replayed request, or a clock out of sync)",
			d.Abs().Round(time.Second), SignatureWindow)
	}
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return http.StatusUnauthorized, HeaderSignature, "must be 64 hex characters: the " + signingScheme
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, "body", fmt.Sprintf("is larger than %d bytes", MaxBody)
		}
		return http.StatusBadRequest, "body", "could not be read"
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if hmac.Equal(mac(s.hmacKey, ts, r.Method, requestPath(r), body), got) {
		return 0, "", ""
	}
	if isV1(s.hmacKey, ts, body, got) {
		return http.StatusUnauthorized, HeaderSignature, "is a body-only (v1) signature, which is no longer accepted because it can be replayed to another call: send the " + signingScheme
	}
	return http.StatusUnauthorized, HeaderSignature, "does not match this request (timestamp, method, path and body): want the " + signingScheme
}
