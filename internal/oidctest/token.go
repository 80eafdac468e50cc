package oidctest

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// grant is what a code or a token stands for.
type grant struct {
	subject, scope, redirectURI, challenge, nonce string
	expires                                       time.Time
	used, revoked                                 bool
}

// profile is what the ID token says about a user besides the subject.
type profile struct{ name, email string }

// tokenEndpoint issues tokens for the registered client's grants
// (authorization code, refresh token, device code; the machine clients'
// grants are machineGrants'), keeps the refresh tokens and opaque access
// tokens it issued, and takes them back at the revocation, introspection
// and userinfo endpoints. Its tables are guarded by p.mu.
type tokenEndpoint struct {
	p         *Provider
	refresh   map[string]*grant
	access    map[string]*grant  // opaque access tokens, for introspection
	profiles  map[string]profile // by subject; others are Test User
	accessTTL time.Duration
	opaque    bool   // issue opaque access tokens instead of JWTs
	noRotate  bool   // refresh grants return no new refresh token
	tokenType string // token_type to answer; empty means "Bearer"
}

func (t *tokenEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	p := t.p
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	p.traffic.recordForm(r)
	if p.machine.serve(w, r) {
		return
	}
	if !authenticated(r, p.ClientID, p.ClientSecret) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var g *grant
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		if g = p.authorize.redeemLocked(w, r.PostForm); g == nil {
			return
		}
	case deviceGrantType:
		if g = p.device.pollLocked(w, r.PostForm.Get("device_code")); g == nil {
			return
		}
	case "refresh_token":
		g = t.refresh[r.PostForm.Get("refresh_token")]
		if g == nil || g.revoked || (g.used && !t.noRotate) {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		g.used = true
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	writeJSON(w, http.StatusOK, t.issueLocked(g, r.PostForm.Get("grant_type")))
}

// issueLocked returns the token response for g, reached by grantType.
func (t *tokenEndpoint) issueLocked(g *grant, grantType string) map[string]any {
	p := t.p
	tokenType := t.tokenType
	if tokenType == "" {
		tokenType = "Bearer"
	}
	resp := map[string]any{
		"token_type": tokenType,
		"expires_in": int64(t.accessTTL / time.Second),
		"scope":      g.scope,
	}
	if t.opaque {
		at := "opaque-" + randomString(24)
		t.access[at] = &grant{subject: g.subject, scope: g.scope, expires: p.now().Add(t.accessTTL)}
		resp["access_token"] = at
	} else {
		resp["access_token"] = p.Keys.Sign(t.accessClaimsLocked(g.subject, g.scope), map[string]any{"typ": "at+jwt"})
	}
	if slices.Contains(strings.Fields(g.scope), "openid") {
		who, ok := t.profiles[g.subject]
		if !ok {
			who = profile{"Test User", "user@example.test"}
		}
		idc := map[string]any{"iss": p.Issuer, "sub": g.subject, "aud": p.ClientID, "iat": p.now().Unix(), "exp": p.now().Add(t.accessTTL).Unix(), "name": who.name, "email": who.email}
		if g.nonce != "" {
			idc["nonce"] = g.nonce
		}
		resp["id_token"] = p.Keys.Sign(idc, nil)
	}
	if slices.Contains(strings.Fields(g.scope), "offline_access") && !(t.noRotate && grantType == "refresh_token") {
		rt := "rt-" + randomString(24)
		t.refresh[rt] = &grant{subject: g.subject, scope: g.scope}
		resp["refresh_token"] = rt
	}
	return resp
}

// accessClaimsLocked returns the claims of an access token for sub.
func (t *tokenEndpoint) accessClaimsLocked(sub, scope string) map[string]any {
	p := t.p
	now := p.now()
	return map[string]any{
		"iss": p.Issuer, "sub": sub, "aud": p.Audience, "client_id": p.ClientID,
		"iat": now.Unix(), "exp": now.Add(t.accessTTL).Unix(), "jti": randomString(12), "scope": scope,
	}
}

func (t *tokenEndpoint) serveRevoke(w http.ResponseWriter, r *http.Request) {
	p := t.p
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if !authenticated(r, p.ClientID, p.ClientSecret) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	p.mu.Lock()
	if g := t.refresh[r.PostForm.Get("token")]; g != nil {
		g.revoked = true
	}
	p.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (t *tokenEndpoint) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	p := t.p
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if !authenticated(r, p.ClientID, p.ClientSecret) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	p.mu.Lock()
	g := t.access[r.PostForm.Get("token")]
	active := g != nil && !g.revoked && p.now().Before(g.expires)
	resp := map[string]any{"active": active}
	if active {
		maps.Copy(resp, map[string]any{
			"sub": g.subject, "scope": g.scope, "client_id": p.ClientID, "iss": p.Issuer,
			"aud": p.Audience, "exp": g.expires.Unix(), "token_type": "Bearer",
		})
	}
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func (t *tokenEndpoint) serveUserinfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"sub": t.p.Subject, "name": "Test User", "email": "user@example.test"})
}

// clientCredentials returns the client ID and secret a request presents:
// HTTP Basic (each part form-encoded first, RFC 6749 §2.3.1), else the form.
// The form must be parsed.
func clientCredentials(r *http.Request) (id, secret string) {
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		return id, secret
	}
	return r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
}

// authenticated reports whether r presents the client clientID with secret.
func authenticated(r *http.Request, clientID, secret string) bool {
	id, s := clientCredentials(r)
	return id == clientID && s == secret
}

// oauthError writes an RFC 6749 §5.2 error with bait in the description.
func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": "refused " + LeakBait})
}
