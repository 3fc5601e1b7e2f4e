package bridge

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
)

// adminAuth guards the admin API with the console credentials (HTTP basic).
// Studio keys do not open it. Without a console password it is closed.
func (b *Bridge) adminAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b.checkAdmin(r) {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="ctibridge admin"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "admin credentials required"})
	})
}

func (b *Bridge) checkAdmin(r *http.Request) bool {
	if c := r.Context().Value(sessionUser{}); c != nil {
		return true
	}
	u, p, ok := r.BasicAuth()
	return ok && b.adminCredentialsMatch(u, p)
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

type sessionUser struct{}
