// Package oidctest is an in-process OpenID provider for tests: discovery,
// JWKS, an authorize endpoint that approves at once, device authorization
// (RFC 8628) whose logins the test approves or denies, a token endpoint
// (authorization code with PKCE, rotating refresh tokens, device codes,
// client credentials for machine clients, token exchange of CI ID tokens), revocation,
// introspection and userinfo, on an httptest server. It signs real RS256
// and ES256 tokens, counts every request by endpoint, and can be told to
// fail in the ways real providers do.
//
// The Provider is the test's handle; each endpoint group is a small type
// it holds, one file each: discovery.go, keys.go (JWKS and signing),
// authorize.go, token.go (code and refresh grants, revocation,
// introspection, userinfo), device.go, machine.go, and traffic.go (request
// counts, recorded requests and injected failures); attacks.go is the
// battery of hostile tokens.
package oidctest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

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
	// Keys are the signing keys: the current one signs, all are published.
	Keys *KeySet

	// mu guards Subject once the server runs and the endpoints' tables
	// (codes, tokens, device logins, machine clients) and knobs.
	mu        sync.Mutex
	now       func() time.Time
	traffic   *traffic
	discovery discoveryEndpoint
	authorize authorizeEndpoint
	tokens    tokenEndpoint
	device    deviceEndpoint
	machine   machineGrants
}

// Option configures a Provider.
type Option func(*Provider)

// WithClock sets the provider's clock.
func WithClock(now func() time.Time) Option { return func(p *Provider) { p.now = now } }

// WithPublicClient registers the client without a secret.
func WithPublicClient() Option { return func(p *Provider) { p.ClientSecret = "" } }

// WithAuthMethods sets token_endpoint_auth_methods_supported.
func WithAuthMethods(m ...string) Option { return func(p *Provider) { p.discovery.authMethods = m } }

// WithOpaqueAccessTokens makes the token endpoint issue opaque access
// tokens, checkable only by introspection.
func WithOpaqueAccessTokens() Option { return func(p *Provider) { p.tokens.opaque = true } }

// WithoutRefreshRotation makes refresh grants return no new refresh token.
func WithoutRefreshRotation() Option { return func(p *Provider) { p.tokens.noRotate = true } }

// WithTokenType makes the token endpoint answer token_type tt (providers
// differ in case: Hydra says "bearer").
func WithTokenType(tt string) Option { return func(p *Provider) { p.tokens.tokenType = tt } }

// WithoutDeviceEndpoint makes the provider offer no device authorization:
// discovery names no device_authorization_endpoint.
func WithoutDeviceEndpoint() Option { return func(p *Provider) { p.device.off = true } }

// WithDeviceInterval sets the polling interval, in seconds, that device
// authorization responses give (default 5).
func WithDeviceInterval(seconds int64) Option {
	return func(p *Provider) { p.device.interval = seconds }
}

// WithDeviceTTL sets how long device and user codes live (default 10 min).
func WithDeviceTTL(d time.Duration) Option { return func(p *Provider) { p.device.ttl = d } }

// WithVerificationURI makes device authorization answers send users to u
// (and u?user_code=… to approve) instead of the provider's own /device,
// which is loopback like every httptest server.
func WithVerificationURI(u string) Option { return func(p *Provider) { p.device.verify = u } }

// WithES256 makes the first signing key an ES256 key instead of RS256.
func WithES256() Option {
	return func(p *Provider) { p.Keys.keys = []*Key{NewKey("ES256")} }
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
		ClientID:     "nsauth-cli",
		ClientSecret: "test-client-secret-" + randomString(8),
		Audience:     "https://api.example.test",
		Subject:      "user-123",
		Keys:         &KeySet{},
		now:          time.Now,
		traffic:      newTraffic(),
	}
	p.discovery = discoveryEndpoint{p: p}
	p.authorize = authorizeEndpoint{p: p, codes: map[string]*grant{}}
	p.tokens = tokenEndpoint{p: p, refresh: map[string]*grant{}, access: map[string]*grant{}, profiles: map[string]profile{}, accessTTL: 15 * time.Minute}
	p.device = deviceEndpoint{p: p, logins: map[string]*deviceLogin{}, interval: 5, ttl: 10 * time.Minute}
	p.machine = machineGrants{p: p, secrets: map[string]string{}, subjects: map[string]*subjectGrant{}, answers: map[string][]scriptedError{}, grants: map[string]int{}}
	for _, o := range opts {
		o(p)
	}
	if len(p.Keys.keys) == 0 {
		p.Keys.keys = []*Key{NewKey("RS256")}
	}
	t := p.traffic
	mux := http.NewServeMux()
	mux.HandleFunc(PathDiscovery, t.wrap(PathDiscovery, p.discovery.serve))
	mux.HandleFunc(PathJWKS, t.wrap(PathJWKS, p.Keys.serveJWKS))
	mux.HandleFunc(PathAuthorize, t.wrap(PathAuthorize, p.authorize.serve))
	mux.HandleFunc(PathToken, t.wrap(PathToken, p.tokens.serve))
	mux.HandleFunc(PathRevoke, t.wrap(PathRevoke, p.tokens.serveRevoke))
	mux.HandleFunc(PathIntrospect, t.wrap(PathIntrospect, p.tokens.serveIntrospect))
	mux.HandleFunc(PathUserinfo, t.wrap(PathUserinfo, p.tokens.serveUserinfo))
	if !p.device.off {
		mux.HandleFunc(PathDevice, t.wrap(PathDevice, p.device.serve))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.record(r.URL.Path, r)
		http.NotFound(w, r)
	})
	// Handlers read Issuer: set it before the server accepts anything.
	p.Server = httptest.NewUnstartedServer(mux)
	p.Issuer = "http://" + p.Server.Listener.Addr().String()
	p.Server.Start()
	// Release hung handlers before closing: Close waits for them.
	return p, func() {
		close(t.stopped)
		p.Server.Close()
	}
}

// Count returns how many requests an endpoint (one of the Path constants,
// or any other path) has received.
func (p *Provider) Count(endpoint string) int { return p.traffic.count(endpoint) }

// TotalRequests returns the number of requests received on any path.
func (p *Provider) TotalRequests() int { return p.traffic.total() }

// SetFailure makes an endpoint misbehave (or recover, with Healthy).
func (p *Provider) SetFailure(endpoint string, f Failure) { p.traffic.setFailure(endpoint, f) }

// SetRecordRequests turns the copy of every request (see Requests) on or
// off; load generators turn it off to keep memory flat. It is on by
// default.
func (p *Provider) SetRecordRequests(on bool) { p.traffic.setRecording(on) }

// Forms returns the form values of every token-endpoint request received
// (codes, verifiers, refresh tokens): the secrets tests look for in logs.
func (p *Provider) Forms() []url.Values { return p.traffic.formsReceived() }

// Requests returns copies of every request the provider has received.
func (p *Provider) Requests() []*http.Request { return p.traffic.requestsReceived() }

// SetDiscoveredIssuer makes the discovery document name another issuer.
func (p *Provider) SetDiscoveredIssuer(iss string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.discovery.issuer = iss
}

// SetAuthorizeError makes the authorize endpoint redirect with an OAuth
// error instead of a code; empty code restores approval.
func (p *Provider) SetAuthorizeError(code, description string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.authorize.refusal = [2]string{code, description}
}

// SetAccessTokenTTL sets the lifetime of issued access tokens.
func (p *Provider) SetAccessTokenTTL(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokens.accessTTL = d
}

// SetUser makes the authorize endpoint approve subject from now on, with
// name and email in its ID tokens (other subjects keep "Test User" and
// "user@example.test"): a second person logging in.
func (p *Provider) SetUser(subject, name, email string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Subject = subject
	p.tokens.profiles[subject] = profile{name, email}
}

// Revoked reports whether a refresh token has been revoked.
func (p *Provider) Revoked(refreshToken string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.tokens.refresh[refreshToken]
	return g != nil && g.revoked
}

// Sign signs claims with the current key. extraHeaders are added to (or
// override) the protected header; they may override "alg" or "kid".
func (p *Provider) Sign(claims map[string]any, extraHeaders map[string]any) string {
	return p.Keys.Sign(claims, extraHeaders)
}

// AccessClaims returns the claims of a valid access token for sub, to be
// altered by tests and passed to Sign.
func (p *Provider) AccessClaims(sub string) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tokens.accessClaimsLocked(sub, "openid profile")
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
	p.authorize.codes[code] = &grant{subject: p.Subject, scope: scope, redirectURI: redirectURI, challenge: challenge, expires: p.now().Add(time.Hour)}
	return code
}

// MintRefreshToken creates a refresh token as a login would.
func (p *Provider) MintRefreshToken(scope string) string {
	rt := "rt-" + randomString(24)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokens.refresh[rt] = &grant{subject: p.Subject, scope: scope}
	return rt
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
