package bridge

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"github.com/ctibridge/ctibridge/api"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/ctibridge/ctibridge/loginlimit"
)

// The surfaces where an operator's password is checked.
const (
	surfaceConsole = "console"
	surfaceAdmin   = "admin"
)

// logins throttles password guesses on the console and the admin API (see
// package loginlimit for the limits and why). Both surfaces check the same
// password, so they share the limits: guesses cannot be split between them
// to go faster. Every failure is counted and logged with the client address
// and the user name; a refusal is counted, and logged when an address (or
// everyone) starts being refused.
type logins struct {
	lim *loginlimit.Limiter
	log *slog.Logger
	m   *metrics
}

// check runs match for a login attempt by user from r unless the limits
// refuse it; then it returns the wait and match is not called.
func (l *logins) check(r *http.Request, surface, user string, match func() bool) (ok bool, wait time.Duration) {
	res := l.lim.Try(r.RemoteAddr, match)
	remote := r.RemoteAddr
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	if res.Refused != "" {
		l.m.throttled.WithLabelValues(surface, string(res.Refused)).Inc()
		if res.FirstRefusal {
			l.log.Warn("login: too many failures, refusing attempts", "surface", surface, "remote", remote,
				"limit", string(res.Refused), "retryAfter", res.Wait.Round(time.Second))
		}
		return false, res.Wait
	}
	if !res.OK {
		l.m.logins.WithLabelValues(surface).Inc()
		l.log.Warn("login: wrong user name or password", "surface", surface, "remote", remote, "user", clip(user, 64))
	}
	return res.OK, 0
}

// clip keeps a client-chosen string short in the log.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// retryAfter is the Retry-After value for a wait: whole seconds, at least 1.
func retryAfter(wait time.Duration) int { return max(1, int(math.Ceil(wait.Seconds()))) }

// adminAuth guards the admin API with the console credentials (HTTP basic),
// throttled like console logins. Studio keys do not open it. Without a
// console password it is closed.
func (b *Bridge) adminAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok {
			good, wait := b.logins.check(r, surfaceAdmin, u, func() bool { return b.adminCredentialsMatch(u, p) })
			if wait > 0 {
				secs := retryAfter(wait)
				w.Header().Set("Retry-After", strconv.Itoa(secs))
				api.WriteJSON(w, http.StatusTooManyRequests, map[string]string{"error": fmt.Sprintf("too many failed logins: retry after %d s", secs)})
				return
			}
			if good {
				h.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="ctibridge admin"`)
		api.WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": "admin credentials required"})
	})
}

// consoleLogin checks a console login, throttled.
func (b *Bridge) consoleLogin(r *http.Request, user, pass string) (bool, time.Duration) {
	return b.logins.check(r, surfaceConsole, user, func() bool { return b.adminCredentialsMatch(user, pass) })
}

// adminCredentialsMatch compares in constant time; an unset password never matches.
func (b *Bridge) adminCredentialsMatch(user, pass string) bool {
	want := b.cfg.Console.Password.Reveal()
	if want == "" {
		return false
	}
	hu, wu := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(b.cfg.Console.Username))
	hp, wp := sha256.Sum256([]byte(pass)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(hu[:], wu[:])&subtle.ConstantTimeCompare(hp[:], wp[:]) == 1
}
