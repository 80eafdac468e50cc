// Package connectortest holds fake upstreams for tests of the connectors
// (issue 28): an OpenID Connect provider (OIDC) and GitHub (GitHub), each
// on an httptest server stopped when the test ends. Both approve at once:
// the authorization endpoint redirects the browser straight back to the
// callback with a code for the user the test configured, so a test (or a
// headless browser) goes through a whole sign-in without a page to fill.
// Both can be told to misbehave in the ways a hostile or broken upstream
// does, and the user (claims, teams, orgs) can change while the test runs.
//
// It is imported by tests only: nothing shipped depends on it.
package connectortest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/connector"
	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

// Paths of the fake OpenID provider's endpoints.
const (
	OIDCPathDiscovery = oidcdiscovery.WellKnownPath
	OIDCPathJWKS      = "/jwks"
	OIDCPathAuthorize = "/authorize"
	OIDCPathToken     = "/token"
	OIDCPathUserinfo  = "/userinfo"
)

// User is who the fake OpenID provider signs in: the claims of its ID
// tokens (and of its userinfo answer).
type User struct {
	Subject           string
	PreferredUsername string
	Name              string
	Email             string
	EmailVerified     bool
	// Groups go in the "groups" claim (omitted when nil).
	Groups []string
	// AMR goes in the "amr" claim (omitted when nil).
	AMR []string
	// Extra claims, added last (they may override the ones above).
	Extra map[string]any
}

// Misbehaviour makes the fake OpenID provider answer wrongly. The zero
// value behaves.
type Misbehaviour struct {
	// Issuer is the ID token's iss instead of the provider's issuer.
	Issuer string
	// Audience is the ID token's aud instead of the client id.
	Audience string
	// ExtraAudience adds a second audience (and, with AZP, an azp claim).
	ExtraAudience string
	// AZP is the ID token's azp claim (omitted when empty).
	AZP string
	// Nonce is the ID token's nonce instead of the one asked for;
	// OmitNonce leaves it out.
	Nonce     string
	OmitNonce bool
	// Alg signs the ID token with "none" (no signature) or "HS256" (keyed
	// with the client secret) instead of the provider's key.
	Alg string
	// ForeignKey signs the ID token with a key the JWKS does not publish
	// (under the kid of a published one).
	ForeignKey bool
	// Expired makes the ID token expired an hour ago; IssuedInFuture
	// issues it an hour from now.
	Expired        bool
	IssuedInFuture bool
	// AccessTokenType types the ID token at+jwt (an access token's type).
	AccessTokenType bool
	// OmitIDToken answers the token request without an id_token.
	OmitIDToken bool
	// IssParam is the callback's RFC 9207 iss parameter instead of the
	// issuer; OmitIssParam leaves it out (while discovery still says it
	// is sent).
	IssParam     string
	OmitIssParam bool
	// Error makes the authorization endpoint redirect back with
	// error=Error instead of a code.
	Error string
	// TokenError makes the token endpoint answer 400 {"error": TokenError}.
	TokenError string
	// TokenStatus makes the token endpoint answer this HTTP status (a 5xx
	// plays an upstream that is down).
	TokenStatus int
	// ClaimsInUserinfo leaves everything but sub out of the ID token: the
	// user's claims are only in the userinfo answer (as some providers do
	// by default).
	ClaimsInUserinfo bool
	// UserinfoSubject is the userinfo answer's sub instead of the user's.
	UserinfoSubject string
}

// OIDC is a fake OpenID provider. Its exported fields may be read freely
// once NewOIDC returns; change the user and the misbehaviour with the
// methods.
type OIDC struct {
	Server *httptest.Server
	// Issuer is the provider's issuer URL (the server's URL).
	Issuer string
	// ClientID and ClientSecret are the one registered client.
	ClientID, ClientSecret string
	// Keys sign the ID tokens (RS256 unless WithOIDCES256); all are
	// published at the JWKS endpoint.
	Keys *oidctest.KeySet

	mu          sync.Mutex
	now         func() time.Time
	user        User
	bad         Misbehaviour
	redirects   []string // registered redirect URIs; empty accepts any
	noIssParam  bool     // discovery does not offer RFC 9207 and the callback has no iss
	requirePKCE bool
	codes       map[string]*oidcGrant
	access      map[string]*oidcGrant
	counts      map[string]int
}

type oidcGrant struct {
	redirectURI, challenge, nonce string
	user                          User
	bad                           Misbehaviour
	expires                       time.Time
}

// OIDCOption configures a fake OpenID provider.
type OIDCOption func(*OIDC)

// WithRedirectURI registers the exact callback URLs the provider accepts
// (any http(s) URL when none is registered).
func WithRedirectURI(uris ...string) OIDCOption {
	return func(o *OIDC) { o.redirects = append(o.redirects, uris...) }
}

// WithOIDCClient sets the registered client's id and secret.
func WithOIDCClient(id, secret string) OIDCOption {
	return func(o *OIDC) { o.ClientID, o.ClientSecret = id, secret }
}

// WithOIDCClock sets the provider's clock (ID token iat and exp).
func WithOIDCClock(now func() time.Time) OIDCOption { return func(o *OIDC) { o.now = now } }

// WithOIDCES256 signs with an ES256 key instead of RS256.
func WithOIDCES256() OIDCOption {
	return func(o *OIDC) { o.Keys = &oidctest.KeySet{}; o.Keys.Rotate("ES256") }
}

// WithoutIssParameter makes the provider one that knows nothing of RFC
// 9207: discovery does not announce the iss parameter and the callback
// carries none.
func WithoutIssParameter() OIDCOption { return func(o *OIDC) { o.noIssParam = true } }

// WithoutPKCE lets authorization requests without a PKCE challenge through
// (by default the fake refuses them).
func WithoutPKCE() OIDCOption { return func(o *OIDC) { o.requirePKCE = false } }

// NewOIDC starts a fake OpenID provider that signs in DefaultUser,
// stopped when the test ends.
func NewOIDC(tb testing.TB, opts ...OIDCOption) *OIDC {
	tb.Helper()
	o := &OIDC{
		ClientID:     "nsauth-connector",
		ClientSecret: "oidc-secret-" + randomString(8),
		Keys:         &oidctest.KeySet{},
		now:          time.Now,
		user:         DefaultUser(),
		requirePKCE:  true,
		codes:        map[string]*oidcGrant{},
		access:       map[string]*oidcGrant{},
		counts:       map[string]int{},
	}
	o.Keys.Rotate("RS256")
	for _, opt := range opts {
		opt(o)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(OIDCPathDiscovery, o.count(OIDCPathDiscovery, o.serveDiscovery))
	mux.HandleFunc(OIDCPathJWKS, o.count(OIDCPathJWKS, o.serveJWKS))
	mux.HandleFunc(OIDCPathAuthorize, o.count(OIDCPathAuthorize, o.serveAuthorize))
	mux.HandleFunc(OIDCPathToken, o.count(OIDCPathToken, o.serveToken))
	mux.HandleFunc(OIDCPathUserinfo, o.count(OIDCPathUserinfo, o.serveUserinfo))
	o.Server = httptest.NewServer(mux)
	o.Issuer = o.Server.URL
	tb.Cleanup(o.Server.Close)
	return o
}

// DefaultUser is the user a new fake OpenID provider signs in.
func DefaultUser() User {
	return User{
		Subject:           "upstream-subject-1",
		PreferredUsername: "alice",
		Name:              "Alice Example",
		Email:             "alice@example.com",
		EmailVerified:     true,
	}
}

// Settings returns connector settings for this provider.
func (o *OIDC) Settings() connector.OIDCSettings {
	return connector.OIDCSettings{Issuer: o.Issuer, ClientID: o.ClientID}
}

// SetUser changes who the provider signs in from the next authorization.
func (o *OIDC) SetUser(u User) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.user = u
}

// User returns who the provider signs in.
func (o *OIDC) User() User {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.user
}

// Misbehave sets how the provider misbehaves from the next authorization
// (the zero Misbehaviour makes it behave again). Codes already issued
// keep the misbehaviour of their authorization.
func (o *OIDC) Misbehave(m Misbehaviour) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.bad = m
}

// Count returns how many requests reached path.
func (o *OIDC) Count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[path]
}

func (o *OIDC) count(path string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.counts[path]++
		o.mu.Unlock()
		h(w, r)
	}
}

func (o *OIDC) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	base := o.Server.URL
	algs := []string{o.Keys.Current().Algorithm}
	doc := map[string]any{
		"issuer":                                o.Issuer,
		"authorization_endpoint":                base + OIDCPathAuthorize,
		"token_endpoint":                        base + OIDCPathToken,
		"jwks_uri":                              base + OIDCPathJWKS,
		"userinfo_endpoint":                     base + OIDCPathUserinfo,
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": algs,
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                      []string{"openid", "profile", "email", "groups"},
	}
	if !o.noIssParam {
		doc["authorization_response_iss_parameter_supported"] = true
	}
	writeJSON(w, http.StatusOK, doc)
}

func (o *OIDC) serveJWKS(w http.ResponseWriter, r *http.Request) {
	type jwks struct {
		Keys []any `json:"keys"`
	}
	var set jwks
	seen := map[string]bool{}
	for _, k := range []*oidctest.Key{o.Keys.Current(), o.Keys.Published("RS256"), o.Keys.Published("ES256")} {
		if k != nil && !seen[k.ID] {
			seen[k.ID] = true
			set.Keys = append(set.Keys, k.Public())
		}
	}
	writeJSON(w, http.StatusOK, set)
}

func (o *OIDC) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect := q.Get("redirect_uri")
	ru, err := url.Parse(redirect)
	o.mu.Lock()
	registered := len(o.redirects) == 0 || slices.Contains(o.redirects, redirect)
	requirePKCE := o.requirePKCE
	o.mu.Unlock()
	switch {
	case err != nil || redirect == "" || (ru.Scheme != "http" && ru.Scheme != "https") || !registered:
		http.Error(w, "redirect_uri is not registered", http.StatusBadRequest)
		return
	case q.Get("client_id") != o.ClientID:
		http.Error(w, "unknown client", http.StatusBadRequest)
		return
	}
	back := ru.Query()
	if s := q.Get("state"); s != "" {
		back.Set("state", s)
	}
	o.mu.Lock()
	user, bad := o.user, o.bad
	o.mu.Unlock()
	if !o.noIssParam && !bad.OmitIssParam {
		iss := o.Issuer
		if bad.IssParam != "" {
			iss = bad.IssParam
		}
		back.Set("iss", iss)
	}
	fail := func(code string) {
		back.Set("error", code)
		ru.RawQuery = back.Encode()
		http.Redirect(w, r, ru.String(), http.StatusSeeOther)
	}
	scopes := strings.Fields(q.Get("scope"))
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type")
		return
	case !slices.Contains(scopes, "openid"):
		fail("invalid_scope")
		return
	case q.Get("code_challenge") == "" && requirePKCE,
		q.Get("code_challenge") != "" && q.Get("code_challenge_method") != "S256":
		fail("invalid_request")
		return
	case bad.Error != "":
		fail(bad.Error)
		return
	}
	code := randomString(16)
	o.mu.Lock()
	o.codes[code] = &oidcGrant{redirectURI: redirect, challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), user: user, bad: bad, expires: o.now().Add(time.Minute)}
	o.mu.Unlock()
	back.Set("code", code)
	ru.RawQuery = back.Encode()
	http.Redirect(w, r, ru.String(), http.StatusSeeOther)
}

func (o *OIDC) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != o.ClientID || !hmac.Equal([]byte(secret), []byte(o.ClientSecret)) {
		tokenError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	o.mu.Lock()
	code := r.PostForm.Get("code")
	g := o.codes[code]
	delete(o.codes, code) // single use, even when refused below
	now := o.now()
	o.mu.Unlock()
	switch {
	case g == nil || now.After(g.expires) || r.PostForm.Get("redirect_uri") != g.redirectURI:
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	case g.challenge != "" && s256(r.PostForm.Get("code_verifier")) != g.challenge,
		g.challenge == "" && r.PostForm.Get("code_verifier") != "":
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	case g.bad.TokenStatus != 0:
		tokenError(w, g.bad.TokenStatus, "temporarily_unavailable")
		return
	case g.bad.TokenError != "":
		tokenError(w, http.StatusBadRequest, g.bad.TokenError)
		return
	}
	access := randomString(16)
	o.mu.Lock()
	o.access[access] = g
	o.mu.Unlock()
	answer := map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 3600}
	if !g.bad.OmitIDToken {
		answer["id_token"] = o.idToken(g, now)
	}
	writeJSON(w, http.StatusOK, answer)
}

// userClaims are the claims of u, without sub.
func userClaims(u User) map[string]any {
	c := map[string]any{}
	set := func(name, v string) {
		if v != "" {
			c[name] = v
		}
	}
	set("preferred_username", u.PreferredUsername)
	set("name", u.Name)
	if u.Email != "" {
		c["email"] = u.Email
		c["email_verified"] = u.EmailVerified
	}
	if u.Groups != nil {
		c["groups"] = u.Groups
	}
	if u.AMR != nil {
		c["amr"] = u.AMR
	}
	for k, v := range u.Extra {
		c[k] = v
	}
	return c
}

func (o *OIDC) idToken(g *oidcGrant, now time.Time) string {
	bad := g.bad
	claims := map[string]any{}
	if !bad.ClaimsInUserinfo {
		claims = userClaims(g.user)
	}
	claims["sub"] = g.user.Subject
	claims["iss"] = o.Issuer
	if bad.Issuer != "" {
		claims["iss"] = bad.Issuer
	}
	aud := o.ClientID
	if bad.Audience != "" {
		aud = bad.Audience
	}
	if bad.ExtraAudience != "" {
		claims["aud"] = []string{aud, bad.ExtraAudience}
	} else {
		claims["aud"] = aud
	}
	if bad.AZP != "" {
		claims["azp"] = bad.AZP
	}
	iat, exp := now, now.Add(time.Hour)
	if bad.Expired {
		iat, exp = now.Add(-2*time.Hour), now.Add(-time.Hour)
	}
	if bad.IssuedInFuture {
		iat, exp = now.Add(time.Hour), now.Add(2*time.Hour)
	}
	claims["iat"], claims["exp"] = iat.Unix(), exp.Unix()
	switch {
	case bad.OmitNonce:
	case bad.Nonce != "":
		claims["nonce"] = bad.Nonce
	case g.nonce != "":
		claims["nonce"] = g.nonce
	}
	headers := map[string]any{}
	if bad.AccessTokenType {
		headers["typ"] = "at+jwt"
	}
	key := o.Keys.Current()
	switch {
	case bad.Alg == "none":
		return unsigned(claims, key.ID)
	case bad.Alg == "HS256":
		return hmacSigned(claims, key.ID, o.ClientSecret)
	case bad.Alg != "":
		panic("connectortest: unknown Misbehaviour.Alg " + bad.Alg)
	case bad.ForeignKey:
		foreign := oidctest.NewKey(key.Algorithm)
		foreign.ID = key.ID
		return oidctest.SignWith(foreign, claims, headers)
	}
	return oidctest.SignWith(key, claims, headers)
}

func (o *OIDC) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	o.mu.Lock()
	g := o.access[token]
	o.mu.Unlock()
	if !ok || g == nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	c := userClaims(g.user)
	c["sub"] = g.user.Subject
	if g.bad.UserinfoSubject != "" {
		c["sub"] = g.bad.UserinfoSubject
	}
	writeJSON(w, http.StatusOK, c)
}

func unsigned(claims map[string]any, kid string) string {
	h, _ := json.Marshal(map[string]any{"alg": "none", "kid": kid})
	p, _ := json.Marshal(claims)
	return b64(h) + "." + b64(p) + "."
}

func hmacSigned(claims map[string]any, kid, secret string) string {
	h, _ := json.Marshal(map[string]any{"alg": "HS256", "kid": kid})
	p, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(p)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(input))
	return input + "." + b64(m.Sum(nil))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return b64(sum[:])
}

func tokenError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}
