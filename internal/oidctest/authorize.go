package oidctest

import (
	"net/http"
	"net/url"
	"time"
)

// authorizeEndpoint approves every well-formed authorization request at
// once for the provider's Subject, unless a test set a refusal, and keeps
// the codes it issued for the token endpoint to redeem.
type authorizeEndpoint struct {
	p       *Provider
	codes   map[string]*grant // guarded by p.mu
	refusal [2]string         // OAuth error code and description; empty code approves
}

func (a *authorizeEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	p := a.p
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || q.Get("redirect_uri") == "" || q.Get("client_id") != p.ClientID || q.Get("response_type") != "code" {
		http.Error(w, "bad authorize request", http.StatusBadRequest)
		return
	}
	if m := q.Get("code_challenge_method"); q.Get("code_challenge") != "" && m != "S256" {
		http.Error(w, "only S256", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	authErr := a.refusal
	code := "code-" + randomString(16)
	if authErr[0] == "" {
		a.codes[code] = &grant{
			subject:     p.Subject,
			scope:       q.Get("scope"),
			redirectURI: q.Get("redirect_uri"),
			challenge:   q.Get("code_challenge"),
			nonce:       q.Get("nonce"),
			expires:     p.now().Add(time.Minute),
		}
	}
	p.mu.Unlock()
	rq := redirect.Query()
	if authErr[0] != "" {
		rq.Set("error", authErr[0])
		rq.Set("error_description", authErr[1])
	} else {
		rq.Set("code", code)
	}
	rq.Set("state", q.Get("state"))
	redirect.RawQuery = rq.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// redeemLocked judges an authorization_code grant (with PKCE) and returns
// the grant to issue tokens for, or nil after writing the error.
func (a *authorizeEndpoint) redeemLocked(w http.ResponseWriter, form url.Values) *grant {
	g := a.codes[form.Get("code")]
	if g == nil || g.used || a.p.now().After(g.expires) || g.redirectURI != form.Get("redirect_uri") {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return nil
	}
	g.used = true
	verifier := form.Get("code_verifier")
	if (g.challenge == "") != (verifier == "") || (g.challenge != "" && s256(verifier) != g.challenge) {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return nil
	}
	return g
}
