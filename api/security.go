package api

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
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

// Sign returns the signature of body at timestamp ts (Unix seconds):
// hex(HMAC-SHA256(key, ts + "." + body)).
func Sign(key secret.Secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key.Reveal()))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// verify checks a signed request and gives the body back to the handler.
// It returns the header at fault and why, or "" when the request is good.
func (s *Server) verify(r *http.Request) (field, why string) {
	if s.hmacKey.IsZero() {
		return "", ""
	}
	ts, sig := r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature)
	if ts == "" || sig == "" {
		return HeaderSignature, fmt.Sprintf("request signing is on: send %s and %s", HeaderTimestamp, HeaderSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return HeaderTimestamp, "must be Unix seconds"
	}
	if d := time.Since(time.Unix(sec, 0)); d > SignatureWindow || d < -SignatureWindow {
		return HeaderTimestamp, fmt.Sprintf("is more than %s from the bridge's clock", SignatureWindow)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBody))
	if err != nil {
		return "body", fmt.Sprintf("is larger than %d bytes", MaxBody)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	want := Sign(s.hmacKey, ts, body)
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return HeaderSignature, "does not match the body and timestamp"
	}
	return "", ""
}
