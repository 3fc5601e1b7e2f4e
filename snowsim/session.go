package snowsim

import (
	"net/http"
	"strings"
	"time"
)

// Sessions (Hardening.Sessions): an instance opens a session for every
// authenticated request that does not bring one, and answers with its
// cookies; a client without a cookie jar therefore opens a session per
// request, which real instances count against the node. A request carrying
// a live session cookie reuses the session, and the cookie alone
// authenticates it.

type session struct {
	user string
	last time.Time
}

// maxSessions bounds the sessions kept at once.
const maxSessions = 100000

// rateLimitRuleID is the sys_id of the simulator's one rate-limit rule, sent
// as X-RateLimit-Rule.
var rateLimitRuleID = deterministicID("sys_rate_limit_rules", 1)

// useSession finds the request's session or opens one, and returns the
// user the request acts as: user (from its credentials) when it has any,
// else the session's.
func (s *Server) useSession(w http.ResponseWriter, r *http.Request, user string) string {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, err := r.Cookie("JSESSIONID"); err == nil {
		if sess, ok := s.sessions[c.Value]; ok && now.Sub(sess.last) < s.opts.SessionTimeout && (user == "" || user == sess.user) && s.active(sess.user) {
			sess.last = now
			s.sessions[c.Value] = sess
			return sess.user
		}
	}
	if user == "" {
		return ""
	}
	if now.Sub(s.sessionSweep) >= time.Minute {
		s.sessionSweep = now
		for id, sess := range s.sessions {
			if now.Sub(sess.last) >= s.opts.SessionTimeout {
				delete(s.sessions, id)
			}
		}
	}
	for id := range s.sessions {
		if len(s.sessions) < maxSessions {
			break
		}
		delete(s.sessions, id) // bounded memory under a client that never keeps cookies
	}
	id := strings.ToUpper(newSysID())
	s.sessions[id] = session{user: user, last: now}
	s.stats.SessionsCreated++
	secure := r.TLS != nil
	http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: id, Path: "/", HttpOnly: true, Secure: secure})
	http.SetCookie(w, &http.Cookie{Name: "glide_user_route", Value: "glide." + newSysID(), Path: "/", HttpOnly: true, Secure: secure,
		MaxAge: int((365 * 24 * time.Hour).Seconds())})
	return user
}
