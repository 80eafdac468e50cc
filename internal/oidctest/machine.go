package oidctest

import (
	"net/http"
	"net/url"
	"time"
)

// Grant types of machine clients.
const (
	clientCredentialsGrantType = "client_credentials"
	// TokenExchangeGrantType is RFC 8693's grant_type.
	TokenExchangeGrantType = "urn:ietf:params:oauth:grant-type:token-exchange"
	// IDTokenType is RFC 8693's subject_token_type for an ID token.
	IDTokenType = "urn:ietf:params:oauth:token-type:id_token"
	// AccessTokenType is RFC 8693's issued_token_type for an access token.
	AccessTokenType = "urn:ietf:params:oauth:token-type:access_token"
)

// machineState is what the fake knows of machine clients: their secrets,
// the subject tokens it trusts for them, and scripted answers.
type machineState struct {
	secrets  map[string]string          // client ID → secret
	subjects map[string]*subjectGrant   // subject token → what it stands for
	answers  map[string][]scriptedError // by grant type, first first
	grants   map[string]int             // requests by grant type
}

// subjectGrant is a subject token the token-exchange grant accepts.
type subjectGrant struct {
	clientID string
	expires  time.Time
}

type scriptedError struct {
	status int
	code   string
}

func (p *Provider) machineLocked() *machineState {
	if p.machine == nil {
		p.machine = &machineState{
			secrets:  map[string]string{},
			subjects: map[string]*subjectGrant{},
			answers:  map[string][]scriptedError{},
			grants:   map[string]int{},
		}
	}
	return p.machine
}

// AddMachineClient registers a confidential client that may use the
// client credentials grant.
func (p *Provider) AddMachineClient(id, secret string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.machineLocked().secrets[id] = secret
}

// MintSubjectToken returns a subject token, as a CI system gives a job, that
// the token-exchange grant accepts for the machine client clientID until
// ttl has passed on the provider's clock. It is a signed JWT whose issuer
// is a CI system, not the provider.
func (p *Provider) MintSubjectToken(clientID string, ttl time.Duration) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	tok := p.signLocked(map[string]any{
		"iss": "https://ci.example.test", "sub": "repo:example/app:ref:refs/heads/main", "aud": p.Issuer,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": randomString(12),
	}, nil)
	p.machineLocked().subjects[tok] = &subjectGrant{clientID: clientID, expires: now.Add(ttl)}
	return tok
}

// FailNextGrant makes the next request of grantType ("client_credentials",
// or TokenExchangeGrantType) answer an OAuth error with status and code,
// whatever it asks; each call scripts one more answer.
func (p *Provider) FailNextGrant(grantType string, status int, code string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.machineLocked()
	m.answers[grantType] = append(m.answers[grantType], scriptedError{status, code})
}

// GrantCount returns how many token requests of grantType arrived.
func (p *Provider) GrantCount(grantType string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.machineLocked().grants[grantType]
}

// machineToken answers the client credentials and token-exchange grants;
// handled is false for other grants. The form is parsed.
func (p *Provider) machineToken(w http.ResponseWriter, r *http.Request) (handled bool) {
	gt := r.PostForm.Get("grant_type")
	if gt != clientCredentialsGrantType && gt != TokenExchangeGrantType {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.machineLocked()
	m.grants[gt]++
	if answers := m.answers[gt]; len(answers) > 0 {
		m.answers[gt] = answers[1:]
		oauthError(w, answers[0].status, answers[0].code)
		return true
	}
	var clientID, scope string
	switch gt {
	case clientCredentialsGrantType:
		id, secret, basic := r.BasicAuth()
		if basic { // RFC 6749 §2.3.1: form-encoded before Basic
			id, _ = url.QueryUnescape(id)
			secret, _ = url.QueryUnescape(secret)
		} else {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		want, ok := m.secrets[id]
		if !ok || secret != want || secret == "" {
			oauthError(w, http.StatusUnauthorized, "invalid_client")
			return true
		}
		clientID, scope = id, r.PostForm.Get("scope")
	case TokenExchangeGrantType:
		// No client authentication: the subject token is the credential.
		if r.PostForm.Get("subject_token_type") != IDTokenType {
			oauthError(w, http.StatusBadRequest, "invalid_request")
			return true
		}
		g := m.subjects[r.PostForm.Get("subject_token")]
		if g == nil || !p.now().Before(g.expires) {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return true
		}
		clientID, scope = g.clientID, r.PostForm.Get("scope")
	}
	now := p.now()
	at := p.signLocked(map[string]any{
		"iss": p.Issuer, "sub": clientID, "aud": p.Audience, "client_id": clientID,
		"iat": now.Unix(), "exp": now.Add(p.accessTTL).Unix(), "jti": randomString(12), "scope": scope,
	}, map[string]any{"typ": "at+jwt"})
	resp := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int64(p.accessTTL / time.Second)}
	if scope != "" {
		resp["scope"] = scope
	}
	if gt == TokenExchangeGrantType {
		resp["issued_token_type"] = AccessTokenType
	}
	writeJSON(w, http.StatusOK, resp)
	return true
}
