// Package oidctest is an in-process OpenID provider for tests: discovery,
// JWKS, an authorize endpoint that approves at once, device authorization
// (RFC 8628) whose logins the test approves or denies, a token endpoint
// (authorization code with PKCE, rotating refresh tokens, device codes,
// client credentials for machine clients, token exchange of CI ID tokens), revocation,
// introspection and userinfo, on an httptest server. It signs real RS256
// and ES256 tokens, counts every request by endpoint, and can be told to
// fail in the ways real providers do.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/nsauth/nsauth/pkg/noredirect"
	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

// Endpoint paths.
const (
	PathDiscovery  = oidcdiscovery.WellKnownPath
	PathJWKS       = "/jwks"
	PathAuthorize  = "/authorize"
	PathToken      = "/token"
	PathRevoke     = "/revoke"
	PathIntrospect = "/introspect"
	PathUserinfo   = "/userinfo"
	PathDevice     = "/device_authorization"
)

// Failure is a way an endpoint can misbehave.
type Failure int

const (
	// Healthy answers normally.
	Healthy Failure = iota
	// Status500 answers HTTP 500 with a body containing Secret-looking text.
	Status500
	// Garbage answers HTTP 200 with a body that is not JSON.
	Garbage
	// Hang waits until the request's context ends.
	Hang
	// Drop closes the connection without answering.
	Drop
	// Slow waits half a second, then answers normally.
	Slow
)

// LeakBait is text the fake puts in error bodies; tests assert it never
// reaches a client or a log.
const LeakBait = "LEAKBAIT-provider-body-7f3a"

// Key is a signing key of the fake.
type Key struct {
	ID        string
	Algorithm string
	Private   crypto.Signer
}

// Public returns the key's public JWK.
func (k *Key) Public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Private.Public(), KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"}
}

// Provider is the fake. Its fields other than the mutex-guarded state may be
// read freely after New returns.
type Provider struct {
	// Server is the underlying test server.
	Server *httptest.Server
	// Issuer is the issuer URL (the server's URL unless overridden).
	Issuer string
	// ClientID and ClientSecret are the one registered client. An empty
	// secret makes it a public client.
	ClientID, ClientSecret string
	// Audience is put in access tokens' `aud`.
	Audience string
	// Subject is the user the authorize endpoint approves.
	Subject string

	mu             sync.Mutex
	now            func() time.Time
	keys           []*Key // keys[current] signs; all are published
	current        int
	codes          map[string]*grant
	refresh        map[string]*grant
	access         map[string]*grant // opaque access tokens, for introspection
	failures       map[string]Failure
	counts         map[string]int
	discoveryIss   string
	authMethods    []string
	accessTTL      time.Duration
	opaqueAccess   bool
	noRotate       bool
	authorizeError [2]string
	requests       []*http.Request
	stopped        chan struct{} // closed when the test ends, releasing hung handlers
	noRecord       bool
	tokenType      string
	forms          []url.Values       // token, revocation and introspection forms received
	profiles       map[string]profile // by subject; others are Test User
	noDevice       bool
	devices        map[string]*deviceGrant // by device code
	deviceInterval int64
	deviceTTL      time.Duration
	deviceAnswers  []string // scripted token-endpoint errors for device polls, first first
	machine        *machineState
}

// profile is what the ID token says about a user besides the subject.
type profile struct{ name, email string }

type grant struct {
	subject, scope, redirectURI, challenge, nonce string
	expires                                       time.Time
	used, revoked                                 bool
}

// deviceGrant is a device login (RFC 8628) in progress.
type deviceGrant struct {
	userCode, scope string
	expires         time.Time
	decision        string // "", "approved" or "denied"
	used            bool
}

// Option configures a Provider.
type Option func(*Provider)

// WithClock sets the provider's clock.
func WithClock(now func() time.Time) Option { return func(p *Provider) { p.now = now } }

// WithPublicClient registers the client without a secret.
func WithPublicClient() Option { return func(p *Provider) { p.ClientSecret = "" } }

// WithAuthMethods sets token_endpoint_auth_methods_supported.
func WithAuthMethods(m ...string) Option { return func(p *Provider) { p.authMethods = m } }

// WithOpaqueAccessTokens makes the token endpoint issue opaque access
// tokens, checkable only by introspection.
func WithOpaqueAccessTokens() Option { return func(p *Provider) { p.opaqueAccess = true } }

// WithoutRefreshRotation makes refresh grants return no new refresh token.
func WithoutRefreshRotation() Option { return func(p *Provider) { p.noRotate = true } }

// WithTokenType makes the token endpoint answer token_type tt (providers
// differ in case: Hydra says "bearer").
func WithTokenType(tt string) Option { return func(p *Provider) { p.tokenType = tt } }

// WithoutDeviceEndpoint makes the provider offer no device authorization:
// discovery names no device_authorization_endpoint.
func WithoutDeviceEndpoint() Option { return func(p *Provider) { p.noDevice = true } }

// WithDeviceInterval sets the polling interval, in seconds, that device
// authorization responses give (default 5).
func WithDeviceInterval(seconds int64) Option {
	return func(p *Provider) { p.deviceInterval = seconds }
}

// WithDeviceTTL sets how long device and user codes live (default 10 min).
func WithDeviceTTL(d time.Duration) Option { return func(p *Provider) { p.deviceTTL = d } }

// WithES256 makes the first signing key an ES256 key instead of RS256.
func WithES256() Option {
	return func(p *Provider) { p.keys = []*Key{NewKey("ES256")} }
}

// NewKey generates a signing key for alg (RS256 or ES256).
func NewKey(alg string) *Key {
	var signer crypto.Signer
	var err error
	switch alg {
	case "RS256":
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		panic("oidctest: unsupported algorithm " + alg)
	}
	if err != nil {
		panic(err)
	}
	return &Key{ID: alg + "-" + randomString(6), Algorithm: alg, Private: signer}
}

// New starts a fake provider, stopped when the test ends.
func New(tb testing.TB, opts ...Option) *Provider {
	tb.Helper()
	p, stop := Start(opts...)
	tb.Cleanup(stop)
	return p
}

// Start starts a fake provider outside a test (for load generators) and
// returns a function that stops it.
func Start(opts ...Option) (*Provider, func()) {
	p := &Provider{
		ClientID:       "nsauth-cli",
		ClientSecret:   "test-client-secret-" + randomString(8),
		Audience:       "https://api.example.test",
		Subject:        "user-123",
		now:            time.Now,
		codes:          map[string]*grant{},
		refresh:        map[string]*grant{},
		access:         map[string]*grant{},
		failures:       map[string]Failure{},
		counts:         map[string]int{},
		accessTTL:      15 * time.Minute,
		stopped:        make(chan struct{}),
		devices:        map[string]*deviceGrant{},
		deviceTTL:      10 * time.Minute,
		deviceInterval: 5,
	}
	for _, o := range opts {
		o(p)
	}
	if len(p.keys) == 0 {
		p.keys = []*Key{NewKey("RS256")}
	}
	mux := http.NewServeMux()
	mux.HandleFunc(PathDiscovery, p.wrap(PathDiscovery, p.discovery))
	mux.HandleFunc(PathJWKS, p.wrap(PathJWKS, p.jwks))
	mux.HandleFunc(PathAuthorize, p.wrap(PathAuthorize, p.authorize))
	mux.HandleFunc(PathToken, p.wrap(PathToken, p.token))
	mux.HandleFunc(PathRevoke, p.wrap(PathRevoke, p.revoke))
	mux.HandleFunc(PathIntrospect, p.wrap(PathIntrospect, p.introspect))
	mux.HandleFunc(PathUserinfo, p.wrap(PathUserinfo, p.userinfo))
	if !p.noDevice {
		mux.HandleFunc(PathDevice, p.wrap(PathDevice, p.deviceAuthorization))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.count(r.URL.Path, r)
		http.NotFound(w, r)
	})
	// Handlers read Issuer: set it before the server accepts anything.
	p.Server = httptest.NewUnstartedServer(mux)
	p.Issuer = "http://" + p.Server.Listener.Addr().String()
	p.Server.Start()
	// Release hung handlers before closing: Close waits for them.
	return p, func() {
		close(p.stopped)
		p.Server.Close()
	}
}

func (p *Provider) wrap(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p.count(name, r)
		p.mu.Lock()
		f := p.failures[name]
		p.mu.Unlock()
		switch f {
		case Status500:
			http.Error(w, "internal error "+LeakBait, http.StatusInternalServerError)
			return
		case Garbage:
			_, _ = w.Write([]byte("<html>" + LeakBait + "</html>"))
			return
		case Hang:
			// The server notices a client hanging up only once the body
			// has been read.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-p.stopped:
			}
			return
		case Slow:
			time.Sleep(500 * time.Millisecond)
		case Drop:
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		h(w, r)
	}
}

func (p *Provider) count(name string, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[name]++
	if !p.noRecord {
		p.requests = append(p.requests, r.Clone(r.Context()))
	}
}

// Count returns how many requests an endpoint (one of the Path constants,
// or any other path) has received.
func (p *Provider) Count(endpoint string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[endpoint]
}

// TotalRequests returns the number of requests received on any path.
func (p *Provider) TotalRequests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.counts {
		n += c
	}
	return n
}

// SetFailure makes an endpoint misbehave (or recover, with Healthy).
func (p *Provider) SetFailure(endpoint string, f Failure) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures[endpoint] = f
}

// SetDiscoveredIssuer makes the discovery document name another issuer.
func (p *Provider) SetDiscoveredIssuer(iss string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.discoveryIss = iss
}

// SetAuthorizeError makes the authorize endpoint redirect with an OAuth
// error instead of a code; empty code restores approval.
func (p *Provider) SetAuthorizeError(code, description string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.authorizeError = [2]string{code, description}
}

// SetAccessTokenTTL sets the lifetime of issued access tokens.
func (p *Provider) SetAccessTokenTTL(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.accessTTL = d
}

// RotateKey adds a new signing key for alg and signs with it from now on.
// The old keys stay published.
func (p *Provider) RotateKey(alg string) *Key {
	k := NewKey(alg)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append(p.keys, k)
	p.current = len(p.keys) - 1
	return k
}

// AddKey publishes a new key for alg without signing with it.
func (p *Provider) AddKey(alg string) *Key {
	k := NewKey(alg)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append(p.keys, k)
	return k
}

// PublishedKey returns a published key for alg, or nil.
func (p *Provider) PublishedKey(alg string) *Key {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.keys {
		if k.Algorithm == alg {
			return k
		}
	}
	return nil
}

// RemoveKey unpublishes a key.
func (p *Provider) RemoveKey(kid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.keys[p.current]
	p.keys = slices.DeleteFunc(p.keys, func(k *Key) bool { return k.ID == kid })
	p.current = max(0, slices.Index(p.keys, cur))
}

// SigningKey returns the current signing key.
func (p *Provider) SigningKey() *Key {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[p.current]
}

func (p *Provider) discovery(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	iss := p.Issuer
	if p.discoveryIss != "" {
		iss = p.discoveryIss
	}
	methods := p.authMethods
	p.mu.Unlock()
	base := p.Server.URL
	doc := map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                base + PathAuthorize,
		"token_endpoint":                        base + PathToken,
		"jwks_uri":                              base + PathJWKS,
		"revocation_endpoint":                   base + PathRevoke,
		"introspection_endpoint":                base + PathIntrospect,
		"userinfo_endpoint":                     base + PathUserinfo,
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		"code_challenge_methods_supported":      []string{"S256"},
	}
	if methods != nil {
		doc["token_endpoint_auth_methods_supported"] = methods
	}
	if !p.noDevice {
		doc["device_authorization_endpoint"] = base + PathDevice
	}
	writeJSON(w, http.StatusOK, doc)
}

func (p *Provider) jwks(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	set := jose.JSONWebKeySet{}
	for _, k := range p.keys {
		set.Keys = append(set.Keys, k.Public())
	}
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, set)
}

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
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
	authErr := p.authorizeError
	code := "code-" + randomString(16)
	if authErr[0] == "" {
		p.codes[code] = &grant{
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

// SetUser makes the authorize endpoint approve subject from now on, with
// name and email in its ID tokens (other subjects keep "Test User" and
// "user@example.test"): a second person logging in.
func (p *Provider) SetUser(subject, name, email string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.profiles == nil {
		p.profiles = map[string]profile{}
	}
	p.Subject = subject
	p.profiles[subject] = profile{name, email}
}

// oauthError writes an RFC 6749 §5.2 error with bait in the description.
func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": "refused " + LeakBait})
}

func (p *Provider) authenticateClient(r *http.Request) bool {
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == p.ClientID && secret == p.ClientSecret
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	p.recordForm(r)
	if p.machineToken(w, r) {
		return
	}
	if !p.authenticateClient(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var g *grant
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		g = p.codes[r.PostForm.Get("code")]
		if g == nil || g.used || p.now().After(g.expires) || g.redirectURI != r.PostForm.Get("redirect_uri") {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		g.used = true
		verifier := r.PostForm.Get("code_verifier")
		if (g.challenge == "") != (verifier == "") || (g.challenge != "" && s256(verifier) != g.challenge) {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
	case deviceGrantType:
		if g = p.deviceTokenLocked(w, r.PostForm.Get("device_code")); g == nil {
			return
		}
	case "refresh_token":
		g = p.refresh[r.PostForm.Get("refresh_token")]
		if g == nil || g.revoked || (g.used && !p.noRotate) {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		g.used = true
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	tokenType := p.tokenType
	if tokenType == "" {
		tokenType = "Bearer"
	}
	resp := map[string]any{
		"token_type": tokenType,
		"expires_in": int64(p.accessTTL / time.Second),
		"scope":      g.scope,
	}
	if p.opaqueAccess {
		at := "opaque-" + randomString(24)
		p.access[at] = &grant{subject: g.subject, scope: g.scope, expires: p.now().Add(p.accessTTL)}
		resp["access_token"] = at
	} else {
		resp["access_token"] = p.signLocked(p.accessClaimsLocked(g.subject, g.scope), map[string]any{"typ": "at+jwt"})
	}
	if slices.Contains(strings.Fields(g.scope), "openid") {
		who, ok := p.profiles[g.subject]
		if !ok {
			who = profile{"Test User", "user@example.test"}
		}
		idc := map[string]any{"iss": p.Issuer, "sub": g.subject, "aud": p.ClientID, "iat": p.now().Unix(), "exp": p.now().Add(p.accessTTL).Unix(), "name": who.name, "email": who.email}
		if g.nonce != "" {
			idc["nonce"] = g.nonce
		}
		resp["id_token"] = p.signLocked(idc, nil)
	}
	if slices.Contains(strings.Fields(g.scope), "offline_access") && !(p.noRotate && r.PostForm.Get("grant_type") == "refresh_token") {
		rt := "rt-" + randomString(24)
		p.refresh[rt] = &grant{subject: g.subject, scope: g.scope}
		resp["refresh_token"] = rt
	}
	writeJSON(w, http.StatusOK, resp)
}

func (p *Provider) accessClaimsLocked(sub, scope string) map[string]any {
	now := p.now()
	return map[string]any{
		"iss": p.Issuer, "sub": sub, "aud": p.Audience, "client_id": p.ClientID,
		"iat": now.Unix(), "exp": now.Add(p.accessTTL).Unix(), "jti": randomString(12), "scope": scope,
	}
}

func (p *Provider) revoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if !p.authenticateClient(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	p.mu.Lock()
	if g := p.refresh[r.PostForm.Get("token")]; g != nil {
		g.revoked = true
	}
	p.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// Revoked reports whether a refresh token has been revoked.
func (p *Provider) Revoked(refreshToken string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.refresh[refreshToken]
	return g != nil && g.revoked
}

func (p *Provider) introspect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if !p.authenticateClient(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	p.mu.Lock()
	g := p.access[r.PostForm.Get("token")]
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

func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"sub": p.Subject, "name": "Test User", "email": "user@example.test"})
}

// Sign signs claims with the current key. extraHeaders are added to (or
// override) the protected header; they may override "alg" or "kid".
func (p *Provider) Sign(claims map[string]any, extraHeaders map[string]any) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.signLocked(claims, extraHeaders)
}

func (p *Provider) signLocked(claims map[string]any, extraHeaders map[string]any) string {
	return SignWith(p.keys[p.current], claims, extraHeaders)
}

// SignRaw signs exactly the given header and payload bytes (which need not
// be valid JSON) with k, for tokens no JSON encoder would produce. k must be
// RS256 or ES256.
func SignRaw(k *Key, header, payload []byte) string {
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch key := k.Private.(type) {
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:]); err != nil {
			panic(err)
		}
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
		if err != nil {
			panic(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	default:
		panic("oidctest: SignRaw supports RSA and ECDSA keys")
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// SignWith signs claims with key k.
func SignWith(k *Key, claims map[string]any, extraHeaders map[string]any) string {
	opts := (&jose.SignerOptions{}).WithHeader("kid", k.ID)
	for name, v := range extraHeaders {
		opts = opts.WithHeader(jose.HeaderKey(name), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Algorithm), Key: k.Private}, opts)
	if err != nil {
		panic(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return s
}

// AccessClaims returns the claims of a valid access token for sub, to be
// altered by tests and passed to Sign.
func (p *Provider) AccessClaims(sub string) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accessClaimsLocked(sub, "openid profile")
}

// AccessToken returns a valid signed access token.
func (p *Provider) AccessToken() string {
	return p.Sign(p.AccessClaims(p.Subject), map[string]any{"typ": "at+jwt"})
}

// Authorize performs the authorize step as a browser would and returns the
// code and state from the redirect (or the error parameters).
func (p *Provider) Authorize(tb testing.TB, authorizeURL string) url.Values {
	tb.Helper()
	client := &http.Client{CheckRedirect: noredirect.CheckRedirect}
	resp, err := client.Get(authorizeURL)
	if err != nil {
		tb.Fatalf("authorize: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		tb.Fatalf("authorize: status %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		tb.Fatalf("authorize: bad redirect: %v", err)
	}
	return loc.Query()
}

// MintCode creates an authorization code as the authorize endpoint would,
// without a browser; for load generators that need one code per call.
func (p *Provider) MintCode(redirectURI, scope, challenge string) string {
	code := "code-" + randomString(16)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.codes[code] = &grant{subject: p.Subject, scope: scope, redirectURI: redirectURI, challenge: challenge, expires: p.now().Add(time.Hour)}
	return code
}

// MintRefreshToken creates a refresh token as a login would.
func (p *Provider) MintRefreshToken(scope string) string {
	rt := "rt-" + randomString(24)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refresh[rt] = &grant{subject: p.Subject, scope: scope}
	return rt
}

// SetRecordRequests turns the copy of every request (see Requests) on or
// off; load generators turn it off to keep memory flat. It is on by
// default.
func (p *Provider) SetRecordRequests(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.noRecord = !on
}

func (p *Provider) recordForm(r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.noRecord {
		p.forms = append(p.forms, maps.Clone(r.PostForm))
	}
}

// Forms returns the form values of every token-endpoint request received
// (codes, verifiers, refresh tokens): the secrets tests look for in logs.
func (p *Provider) Forms() []url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.forms)
}

// Requests returns copies of every request the provider has received.
func (p *Provider) Requests() []*http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests)
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
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
