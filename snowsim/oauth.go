package snowsim

import (
	"encoding/json"
	"net/http"
)

// serveOAuth implements POST /oauth_token.do: grant types password,
// refresh_token and client_credentials, form-encoded with the client
// credentials in the body, as ServiceNow expects.
func (s *Server) serveOAuth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "Method not Supported", "use POST")
		return
	}
	if f := s.Faults(); f.Down {
		writeError(w, http.StatusServiceUnavailable, "Service Unavailable", "The instance is not available")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	form := r.PostForm
	id, sec := form.Get("client_id"), form.Get("client_secret")
	if id == "" {
		id, sec, _ = r.BasicAuth()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	client, ok := s.clients[id]
	if !ok || client.Secret != sec {
		s.oauthError(w, http.StatusUnauthorized, "access_denied")
		return
	}
	var user string
	withRefresh := true
	switch form.Get("grant_type") {
	case "password":
		u, p := form.Get("username"), form.Get("password")
		if want, known := s.password[u]; !known || want != p || !s.active(u) {
			s.oauthError(w, http.StatusUnauthorized, "access_denied")
			return
		}
		user = u
	case "refresh_token":
		rt, ok := s.refresh[form.Get("refresh_token")]
		if !ok || s.now().After(rt.expires) || !s.active(rt.user) {
			s.oauthError(w, http.StatusUnauthorized, "access_denied")
			return
		}
		user, withRefresh = rt.user, false
	case "client_credentials":
		if s.hard.RefuseClientCredentials || client.RunAs == "" || !s.active(client.RunAs) {
			s.oauthError(w, http.StatusUnauthorized, "access_denied")
			return
		}
		user, withRefresh = client.RunAs, false
	default:
		s.oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	access := newSysID() + newSysID()
	s.tokens[access] = token{user: user, expires: s.now().Add(s.opts.TokenTTL)}
	reply := map[string]any{"access_token": access, "scope": "useraccount", "token_type": "Bearer",
		"expires_in": int(s.opts.TokenTTL.Seconds())}
	if withRefresh {
		refresh := newSysID() + newSysID()
		s.refresh[refresh] = token{user: user, expires: s.now().Add(s.opts.RefreshTokenTTL)}
		reply["refresh_token"] = refresh
	} else if form.Get("grant_type") == "refresh_token" {
		reply["refresh_token"] = form.Get("refresh_token") // ServiceNow returns the same refresh token
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(reply)
}

// oauthError answers a failed token request. With Hardening.OAuthErrors it
// gives what instances give whatever the cause: 401 server_error /
// access_denied, so a client cannot tell a wrong secret from a disabled
// grant.
func (s *Server) oauthError(w http.ResponseWriter, status int, code string) {
	if s.hard.OAuthErrors {
		status, code = http.StatusUnauthorized, "server_error"
	}
	desc := code
	if s.hard.OAuthErrors {
		desc = "access_denied"
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}
