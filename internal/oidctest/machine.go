package oidctest

import (
	"net/http"
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

// machineGrants answers the grants of machine clients (client credentials
// and token exchange) and knows their secrets, the subject tokens it
// trusts for them, and scripted answers. Its state is guarded by p.mu.
type machineGrants struct {
	p        *Provider
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

// AddMachineClient registers a confidential client that may use the
// client credentials grant.
func (p *Provider) AddMachineClient(id, secret string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.machine.secrets[id] = secret
}

// MintSubjectToken returns a subject token, as a CI system gives a job, that
// the token-exchange grant accepts for the machine client clientID until
// ttl has passed on the provider's clock. It is a signed JWT whose issuer
// is a CI system, not the provider.
func (p *Provider) MintSubjectToken(clientID string, ttl time.Duration) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	tok := p.Keys.Sign(map[string]any{
		"iss": "https://ci.example.test", "sub": "repo:example/app:ref:refs/heads/main", "aud": p.Issuer,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": randomString(12),
	}, nil)
	p.machine.subjects[tok] = &subjectGrant{clientID: clientID, expires: now.Add(ttl)}
	return tok
}

// FailNextGrant makes the next request of grantType ("client_credentials",
// or TokenExchangeGrantType) answer an OAuth error with status and code,
// whatever it asks; each call scripts one more answer.
func (p *Provider) FailNextGrant(grantType string, status int, code string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.machine
	m.answers[grantType] = append(m.answers[grantType], scriptedError{status, code})
}

// GrantCount returns how many token requests of grantType arrived.
func (p *Provider) GrantCount(grantType string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.machine.grants[grantType]
}

// serve answers the client credentials and token-exchange grants at the
// token endpoint; handled is false for other grants. The form is parsed.
func (m *machineGrants) serve(w http.ResponseWriter, r *http.Request) (handled bool) {
	p := m.p
	gt := r.PostForm.Get("grant_type")
	if gt != clientCredentialsGrantType && gt != TokenExchangeGrantType {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m.grants[gt]++
	if answers := m.answers[gt]; len(answers) > 0 {
		m.answers[gt] = answers[1:]
		oauthError(w, answers[0].status, answers[0].code)
		return true
	}
	var clientID, scope string
	switch gt {
	case clientCredentialsGrantType:
		id, secret := clientCredentials(r)
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
	ttl := p.tokens.accessTTL
	at := p.Keys.Sign(map[string]any{
		"iss": p.Issuer, "sub": clientID, "aud": p.Audience, "client_id": clientID,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": randomString(12), "scope": scope,
	}, map[string]any{"typ": "at+jwt"})
	resp := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int64(ttl / time.Second)}
	if scope != "" {
		resp["scope"] = scope
	}
	if gt == TokenExchangeGrantType {
		resp["issued_token_type"] = AccessTokenType
	}
	writeJSON(w, http.StatusOK, resp)
	return true
}
