// Package issuer wires nsauth's built-in OpenID provider: its
// configuration, and one route table over the protocol endpoints
// (discovery, JWKS, authorize, token, userinfo, revocation,
// introspection, end-session, served by github.com/zitadel/oidc's op
// package) and the pages people log in on.
//
// Each job is a package of its own, which this one builds and routes to:
// storage (the op.Storage adapter), grants (client credentials, token
// exchange), endsession (the logout rule), backchannel (logout tokens
// sent to apps), authflow (a browser login, step by step), connectorflow
// (sign-ins through OpenID Connect, GitHub and LDAP connectors), mfa
// and passkey (the second factors' checks), attempts (failed-login
// limits), devicepages, web (pages, CSRF, headers, the one form guard) and
// events (one event per happening).
//
// What it adds to the library, and why:
//   - Access tokens are JWTs per RFC 9068 (`typ: at+jwt`, with client_id
//     and scope), signed by this package; the library would type them as
//     plain JWTs, which a resource server cannot tell from ID tokens.
//   - Authorization codes are random, single use and live 60 s; a replayed
//     code revokes what it produced. Refresh tokens rotate on every use, and
//     a used one presented again revokes its whole family, except as the
//     retry of a refresh whose answer was lost: within a short grace, by
//     the same client, it gets the same new token again. No refresh token
//     outlives the login by more than a maximum lifetime.
//   - Signing keys are generated at first start and rotated on a schedule;
//     a new key is published before it signs and the old one stays in the
//     JWKS until every token it signed has expired. Replicas sharing a
//     PostgreSQL database agree on keys through a row lock.
//   - Pending auth requests are not stored: the authorize endpoint seals
//     the validated request (AES-256-GCM, under a key shared by replicas
//     through the store) into the login page's authRequestID, and the
//     login page opens it. Only a successful login writes the request,
//     once: a flood of authorize requests costs no storage. The endpoint
//     is also rate-limited per client address.
//   - Apps (`nsauth apps`) are clients of their own: confidential or
//     public (PKCE, no secret), each with its redirect URIs (matched
//     exactly; a native app's loopback ones on any port), scopes, grant
//     types and token lifetimes. An authorize request may name the
//     resources (`resource`, `audience`) its access tokens are for, among
//     the app's audiences; every authorization response carries `iss`
//     (RFC 9207).
//   - Machine clients (programs, CI jobs) get access tokens for
//     themselves with the client-credentials grant, without refresh
//     tokens, rate-limited per client and per address (package grants).
//   - The device authorization grant (RFC 8628) is served with pages of
//     ours for entering the code and approving, after the login page
//     (packages storage and devicepages).
//   - The login page is plain server-rendered HTML with CSRF protection, a
//     strict Content-Security-Policy, and failed-login limits per account
//     and per client address; the login's steps after the password (second
//     factor, passkeys, enrolment links) are package authflow's.
//   - End-session ends the browser session of the grant the ID token
//     hint names in `sid` (keeping other apps' offline grants), at once
//     for an unexpired hint and after the user confirms on a page of ours
//     otherwise, and tells the session's other apps by back-channel
//     logout (packages endsession, backchannel). The library would revoke
//     everything the user holds at the client on an expired hint, unasked.
//
// The issuer URL is static configuration: Host and X-Forwarded-* headers
// never change it.
package issuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/issuer/accountflow"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/authflow"
	"github.com/nsauth/nsauth/internal/issuer/backchannel"
	"github.com/nsauth/nsauth/internal/issuer/browsersession"
	"github.com/nsauth/nsauth/internal/issuer/connectorflow"
	"github.com/nsauth/nsauth/internal/issuer/devicepages"
	"github.com/nsauth/nsauth/internal/issuer/endsession"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/issuer/grants"
	"github.com/nsauth/nsauth/internal/issuer/linkflow"
	"github.com/nsauth/nsauth/internal/issuer/passkey"
	"github.com/nsauth/nsauth/internal/issuer/storage"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/ratelimit"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/stringset"
	"github.com/nsauth/nsauth/pkg/authn"
	"github.com/nsauth/nsauth/pkg/issuerurl"
)

// Defaults for [Config]: the server's settings' defaults, from their one
// table in package config.
const (
	DefaultAccessTokenTTL  = config.DefaultAccessTokenTTL
	DefaultRefreshTokenTTL = config.DefaultRefreshTokenTTL
	DefaultKeyRotation     = config.DefaultKeyRotation
	DefaultLoginAttempts   = config.DefaultLoginAttempts
	// DefaultAuthorizePerMinute is the default of Config.AuthorizePerMinute.
	DefaultAuthorizePerMinute = config.DefaultAuthorizePerMinute
	// DefaultMachineTokensPerMinute is the default of
	// Config.MachineTokensPerMinute.
	DefaultMachineTokensPerMinute = config.DefaultMachineTokensPerMinute
	// DefaultMachineTokensPerAddressPerMinute is the default of
	// Config.MachineTokensPerAddressPerMinute.
	DefaultMachineTokensPerAddressPerMinute = config.DefaultMachineTokensPerAddressPerMinute
	// DefaultRefreshTokenMaxLifetime is the default of
	// Config.RefreshTokenMaxLifetime.
	DefaultRefreshTokenMaxLifetime = config.DefaultRefreshTokenMaxLifetime
	// DefaultRefreshReuseGrace is the default of Config.RefreshReuseGrace.
	DefaultRefreshReuseGrace = config.DefaultRefreshReuseGrace
	// AuthRequestTTL is how long a login may take, from the authorize
	// redirect to the password being accepted.
	AuthRequestTTL = 10 * time.Minute
	// CodeTTL is the lifetime of an authorization code.
	CodeTTL = storage.CodeTTL
	// LoginWindow is the window failed logins are counted in.
	LoginWindow = time.Minute
)

// Config configures an [Issuer].
type Config struct {
	// Issuer is the provider's issuer URL: https, or http on a loopback
	// host, with no path, query or fragment. Required.
	Issuer string
	// Store holds all state. Required.
	Store *store.Store
	// ClientID is the client the broker uses, registered by [Bootstrap].
	// Defaults to [DefaultClientID].
	ClientID string
	// Audience is the `aud` of access tokens: the resource they are for.
	// Defaults to the issuer URL (nsauth's API is served at the same
	// origin).
	Audience string
	// AccessTokenTTL is the access (and ID) token lifetime. Default 15 min.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is how long a refresh token stays usable. Every use
	// issues a new one with a fresh lifetime, up to RefreshTokenMaxLifetime.
	// Default 30 days.
	RefreshTokenTTL time.Duration
	// RefreshTokenMaxLifetime caps a grant's refresh tokens: none is valid
	// past the login it came from (its auth_time) plus this, however often
	// they are used; then the user must log in again. Default 90 days. New
	// refuses a value shorter than RefreshTokenTTL.
	RefreshTokenMaxLifetime time.Duration
	// RefreshReuseGrace is how long after a rotation the rotated refresh
	// token, presented again by the same client from the same address key
	// (as Clients resolves it; for the broker's in-process requests, the
	// RPC caller's, see WithClientInfo), is answered with the same
	// new refresh token (and a fresh access token of the same grant)
	// instead of revoking the family, while that new refresh token is
	// unused: a client that lost the answer to a refresh stays logged in
	// (see store/refreshgrace.go). Zero means [DefaultRefreshReuseGrace];
	// a negative value disables grace, so that every reuse revokes.
	RefreshReuseGrace time.Duration
	// KeyRotation is how often a new signing key is introduced. Default 30
	// days.
	KeyRotation time.Duration
	// SigningAlgorithm is what new signing keys are: "RS256" (the
	// default), "ES256" or "EdDSA" (storage.SigningAlgorithms). When the
	// newest key is of another one, a key of this one is published at
	// once and signs after the prepublication delay; the older keys stay
	// published until their tokens expire.
	SigningAlgorithm string
	// SessionIdleTimeout ends a browser session unused for that long;
	// default 12 h. SessionLifetime ends it that long after its sign-in;
	// default 7 days (package browsersession).
	SessionIdleTimeout time.Duration
	SessionLifetime    time.Duration
	// AllowedRedirectURIs are accepted for the broker's client (ClientID)
	// besides loopback redirect URIs, compared exactly. Every other app
	// has only its own redirect URIs (`nsauth apps`).
	AllowedRedirectURIs []string
	// AllowedScopes, when set, are the scopes clients may ask for besides
	// the standard OpenID ones.
	AllowedScopes []string
	// LoginAttempts is how many login attempts may be made per minute on
	// each counter: an account from browsers that never logged in to it, a
	// client address, and each browser that did (its device cookie). It is
	// also how many device user codes one client address may enter a
	// minute (a right code gives its place back). Default 5.
	LoginAttempts int
	// HashConcurrency is how many passwords are checked at once. Default
	// GOMAXPROCS, at least 2.
	HashConcurrency int
	// HashQueue is how many attempts may wait for a password check; more
	// are refused at once (HTTP 429). Default 4 × HashConcurrency.
	HashQueue int
	// RequirePKCE refuses authorization requests without an S256
	// code_challenge from every client. Public clients must send one
	// whatever this says; without it, a confidential client (the broker)
	// may leave PKCE out, as Neosync's own CLI does. Default false.
	RequirePKCE bool
	// DevicePollInterval is the least time a device client must wait
	// between polls of the token endpoint (RFC 8628); polling sooner is
	// answered slow_down. Default 5 s.
	DevicePollInterval time.Duration
	// AuthorizePerMinute is how many authorize requests (GET or POST
	// /authorize) one client address, grouped by [clientaddr.Key], may make
	// a minute, in bursts of as many. Over it the endpoint answers 429 with
	// Retry-After before doing any other work. Zero means
	// [DefaultAuthorizePerMinute]; a negative value disables the limit.
	// Counted in memory, per process.
	AuthorizePerMinute float64
	// MachineTokensPerMinute is how many client-credentials token requests
	// one client id may make a minute, in bursts of as many, whether they
	// succeed or not; over it the token endpoint answers 429 with
	// Retry-After. Zero means [DefaultMachineTokensPerMinute]; a negative
	// value disables the limit. Counted in memory, per process.
	MachineTokensPerMinute float64
	// MachineTokensPerAddressPerMinute is the same budget per client
	// address, grouped by [clientaddr.Key]. Zero means
	// [DefaultMachineTokensPerAddressPerMinute]; a negative value disables
	// the limit.
	MachineTokensPerAddressPerMinute float64
	// ExchangePerMinute is how many token-exchange requests (keyless CI,
	// package grants) one client address, grouped by [clientaddr.Key], may
	// make a minute, in bursts of as many; over it the token endpoint
	// answers 429 before verifying anything. Zero means
	// [DefaultExchangePerMinute]; negative disables the limit. Counted in
	// memory, per process.
	ExchangePerMinute float64
	// ExchangePerPolicyMinute is how many tokens one federation policy may
	// yield a minute, whatever the addresses asking. Zero means
	// [DefaultExchangePerPolicyMinute]; negative disables the limit.
	ExchangePerPolicyMinute float64
	// RateLimitKeys bounds how many keys (addresses, client ids, policies)
	// each of the limits above tracks in memory. A key is forgotten only
	// once its budget is whole again; past the bound, newcomers share one
	// budget (package ratelimit). Zero means [ratelimit.DefaultMaxClients].
	RateLimitKeys int
	// FederationHTTPClient fetches the discovery documents and key sets of
	// the issuers federation policies name. Nil means a client with a 10 s
	// timeout that does not follow redirects.
	FederationHTTPClient *http.Client
	// InsecureAllowHTTP accepts an http:// issuer on a non-loopback host.
	// Passwords and tokens then cross the network unencrypted: only for
	// trusted networks or a TLS-terminating proxy that rewrites nothing.
	InsecureAllowHTTP bool
	// Clients finds a request's client address for the per-address
	// limits (behind trusted proxies, from X-Forwarded-For). Nil means the
	// TCP peer.
	Clients *clientaddr.Resolver
	// RequireSecondFactor makes a second factor compulsory: a user who has
	// none cannot finish a login until they enrol through an enrolment
	// link, since a password alone never adds a factor (package authflow)
	// (NSAUTH_MFA=required). Default false: users
	// with a second factor are asked for it, others log in with their
	// password alone.
	RequireSecondFactor bool
	// NoPasswordLogin: the login page takes no nsauth password, only the
	// connectors' sign-ins (NSAUTH_PASSWORD_LOGIN=false). Default false.
	NoPasswordLogin bool
	// ConnectorHTTPClient reaches the connectors' upstreams (OpenID
	// providers, GitHub); nil means the connectors' default client.
	ConnectorHTTPClient *http.Client
	// BuildConnector makes a connector of a stored one; nil means
	// connector.Build (tests put fakes behind it).
	BuildConnector connectorflow.Builder
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger receives operational messages. Defaults to discarding.
	Logger *slog.Logger
	// Audit records the provider's events (logins, codes, refresh tokens,
	// machine grants, key rotation). Defaults to audit.Nop.
	Audit audit.Recorder
	// Observer is told of logins, lockouts and replays, for metrics. Nil
	// tells nothing.
	Observer *Observer
	// BackchannelHTTPClient delivers back-channel logout tokens to apps.
	// Nil means a client that follows no redirect and times out after
	// [backchannel.DefaultTimeout].
	BackchannelHTTPClient *http.Client
	// BackchannelBackoff is the wait after a failed back-channel logout
	// delivery, doubled after each later one (5 tries). Zero means
	// [backchannel.DefaultBackoff] (4 s: about a minute in all).
	BackchannelBackoff time.Duration
}

// Issuer is the built-in OpenID provider. Its methods are safe for
// concurrent use.
type Issuer struct {
	cfg     Config
	origin  string // scheme://host of the issuer
	secure  bool   // the issuer is https: cookies get Secure and __Host-
	st      *store.Store
	keys    *storage.Keys
	storage *storage.Storage
	// grants serves client credentials and token exchange.
	grants *grants.Handler
	sealer *requestSealer
	guard  *attempts.Guard
	// passkeys is the WebAuthn relying party; nil when the issuer's host
	// cannot be one (package passkey).
	passkeys *webauthn.WebAuthn
	// allowedRedirects and allowedScopes are the configured allowlists as
	// sets; read-only once New returns.
	allowedRedirects map[string]bool
	allowedScopes    map[string]bool
	refusals         *attempts.RefusalLog
	// authorizeLimit limits authorize requests per client address; nil
	// when disabled.
	authorizeLimit *ratelimit.Limiter
	handler        http.Handler
	log            *slog.Logger
	// pages renders the pages; csrf is their CSRF cookie; forms is the
	// guard every form post goes through (package web).
	pages web.Renderer
	csrf  web.CSRF
	forms *web.Guard
	// routes is the mux's table (routes.table).
	routes []route
	// device serves the device flow's pages.
	device *devicepages.Pages
	// events emits the provider's events: audit row, metric, log line.
	events *events.Recorder
	// flow serves the login's pages (package authflow).
	flow *authflow.Flow
	// sessions keeps the browser sessions (package browsersession).
	sessions *browsersession.Manager
	// connectors serves the connectors' sign-ins (package connectorflow).
	connectors *connectorflow.Flow
	// links serves one-time account links (package linkflow).
	links *linkflow.Flow
	// account serves the account page (package accountflow).
	account *accountflow.Flow
}

// New validates cfg and returns an Issuer. It generates the first signing
// key when the store has none.
func New(ctx context.Context, cfg Config) (*Issuer, error) {
	if cfg.Store == nil {
		return nil, errors.New("issuer: a store is required")
	}
	u, err := issuerurl.Check(cfg.Issuer, issuerurl.Options{InsecureAllowHTTP: cfg.InsecureAllowHTTP})
	if err != nil {
		return nil, err
	}
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.Nop
	}
	if cfg.Audience == "" {
		cfg.Audience = cfg.Issuer
	}
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if cfg.RefreshTokenTTL <= 0 {
		cfg.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if cfg.RefreshTokenMaxLifetime <= 0 {
		cfg.RefreshTokenMaxLifetime = DefaultRefreshTokenMaxLifetime
	}
	if cfg.RefreshTokenMaxLifetime < cfg.RefreshTokenTTL {
		return nil, fmt.Errorf("issuer: the refresh token maximum lifetime (%s) is shorter than the refresh token lifetime (%s)",
			cfg.RefreshTokenMaxLifetime, cfg.RefreshTokenTTL)
	}
	switch {
	case cfg.RefreshReuseGrace == 0:
		cfg.RefreshReuseGrace = DefaultRefreshReuseGrace
	case cfg.RefreshReuseGrace < 0:
		cfg.RefreshReuseGrace = 0
	}
	if cfg.KeyRotation <= 0 {
		cfg.KeyRotation = DefaultKeyRotation
	}
	if cfg.LoginAttempts <= 0 {
		cfg.LoginAttempts = DefaultLoginAttempts
	}
	if cfg.DevicePollInterval <= 0 {
		cfg.DevicePollInterval = DefaultDevicePollInterval
	}
	if cfg.AuthorizePerMinute == 0 {
		cfg.AuthorizePerMinute = DefaultAuthorizePerMinute
	}
	if cfg.MachineTokensPerMinute == 0 {
		cfg.MachineTokensPerMinute = DefaultMachineTokensPerMinute
	}
	if cfg.MachineTokensPerAddressPerMinute == 0 {
		cfg.MachineTokensPerAddressPerMinute = DefaultMachineTokensPerAddressPerMinute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	iss := &Issuer{
		cfg:    cfg,
		origin: u.Scheme + "://" + u.Host,
		secure: u.Scheme == "https",
		st:     cfg.Store,
		log:    cfg.Logger,
		events: events.New(cfg.Audit, (*events.Observer)(cfg.Observer), cfg.Logger),
	}
	if cfg.SigningAlgorithm == "" {
		cfg.SigningAlgorithm = string(storage.SigningAlgorithms[0])
	}
	if iss.keys, err = storage.NewKeys(cfg.Store, jose.SignatureAlgorithm(cfg.SigningAlgorithm), cfg.Now, cfg.KeyRotation, cfg.AccessTokenTTL, cfg.Logger, iss.events); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	if err := iss.keys.Refresh(ctx, true); err != nil {
		return nil, fmt.Errorf("issuer: preparing signing keys: %w", err)
	}
	key, err := authRequestKey(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("issuer: loading the auth request key: %w", err)
	}
	if iss.sealer, err = newRequestSealer(key, cfg.Now); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	iss.authorizeLimit = ratelimit.New(ratelimit.Config{PerMinute: cfg.AuthorizePerMinute, MaxClients: cfg.RateLimitKeys, Now: cfg.Now})
	if cfg.ExchangePerMinute == 0 {
		cfg.ExchangePerMinute = DefaultExchangePerMinute
	}
	if cfg.ExchangePerPolicyMinute == 0 {
		cfg.ExchangePerPolicyMinute = DefaultExchangePerPolicyMinute
	}
	iss.cfg = cfg
	iss.allowedRedirects = stringset.Of(cfg.AllowedRedirectURIs)
	iss.allowedScopes = stringset.Of(cfg.AllowedScopes)
	iss.pages = web.Renderer{Log: cfg.Logger}
	iss.csrf = web.CSRF{Secure: iss.secure, MaxAge: AuthRequestTTL}
	iss.connectors = connectorflow.New(connectorflow.Config{Store: cfg.Store, Issuer: cfg.Issuer, Events: iss.events, Pages: iss.pages, CSRF: iss.csrf,
		HTTPClient: cfg.ConnectorHTTPClient, Build: cfg.BuildConnector, Now: cfg.Now, Log: cfg.Logger})
	iss.storage = storage.New(storage.Config{
		Store: cfg.Store, Now: cfg.Now,
		Issuer: cfg.Issuer, Audience: cfg.Audience, ClientID: cfg.ClientID,
		LoginURL: cfg.Issuer + loginPath, DeviceURI: cfg.Issuer + devicePath,
		AccessTokenTTL: cfg.AccessTokenTTL, RefreshTokenTTL: cfg.RefreshTokenTTL, RefreshTokenMaxLifetime: cfg.RefreshTokenMaxLifetime,
		RefreshReuseGrace: cfg.RefreshReuseGrace, DevicePollInterval: cfg.DevicePollInterval, RequirePKCE: cfg.RequirePKCE,
		AllowedRedirectURIs: cfg.AllowedRedirectURIs, AllowedScopes: iss.allowedScopes,
		Sealer: iss.sealer, Keys: iss.keys, Events: iss.events, Upstream: iss.connectors, Log: cfg.Logger,
	})
	if iss.grants, err = grants.New(grants.Config{
		Store: cfg.Store, Now: cfg.Now, Issuer: cfg.Issuer, Audience: cfg.Audience, AccessTokenTTL: cfg.AccessTokenTTL,
		TokenPath: endpoints().Token.Relative(), Tokens: iss.storage, Events: iss.events, Clients: cfg.Clients,
		MachineTokensPerMinute: cfg.MachineTokensPerMinute, MachineTokensPerAddressPerMinute: cfg.MachineTokensPerAddressPerMinute,
		ExchangePerMinute: cfg.ExchangePerMinute, ExchangePerPolicyMinute: cfg.ExchangePerPolicyMinute, RateLimitKeys: cfg.RateLimitKeys,
		FederationHTTPClient: cfg.FederationHTTPClient, Log: cfg.Logger,
	}); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	macKey, err := cfg.Store.EnsureSecret(ctx, deviceKeyName, store.RandomToken(32))
	if err != nil {
		return nil, fmt.Errorf("issuer: loading the device cookie key: %w", err)
	}
	slots := cfg.HashConcurrency
	if slots <= 0 {
		slots = max(2, runtime.GOMAXPROCS(0))
	}
	queue := cfg.HashQueue
	if queue <= 0 {
		queue = 4 * slots
	}
	iss.guard = attempts.New(attempts.Config{Store: cfg.Store, Max: cfg.LoginAttempts, Window: LoginWindow, Now: cfg.Now, Secure: iss.secure,
		MACKey: []byte(macKey), Hash: attempts.NewHashGate(slots, queue)})
	if iss.passkeys, err = passkey.NewRelyingParty(u, iss.origin); err != nil {
		// An issuer such as http://127.0.0.1:PORT, given with --issuer: not
		// a fault, but worth one line.
		cfg.Logger.Info("passkeys are unavailable", "reason", err.Error())
	}
	iss.refusals = attempts.NewRefusalLog()
	iss.forms = web.NewGuard(iss.origin, iss.csrf, iss.pages, iss.formRefused)
	iss.device = devicepages.New(devicepages.Config{Store: cfg.Store, Sealer: deviceSealer{iss.sealer}, Guard: iss.guard, Events: iss.events,
		Pages: iss.pages, CSRF: iss.csrf, Clients: cfg.Clients, Refusals: iss.refusals, Now: cfg.Now, Log: cfg.Logger, LoginPath: loginPath,
		NormalizeUserCode: normalizeUserCode, MaxTyped: 4 * userCodeLen})
	iss.sessions = browsersession.New(browsersession.Config{Store: cfg.Store, Devices: iss.guard, Secure: iss.secure,
		IdleTimeout: cfg.SessionIdleTimeout, Lifetime: cfg.SessionLifetime, Now: cfg.Now})
	iss.flow = authflow.New(authflow.Config{Store: cfg.Store, Requests: iss.sealer, Codes: iss.storage, Device: iss.device,
		Events: iss.events, Pages: iss.pages, CSRF: iss.csrf, Guard: iss.guard, Refusals: iss.refusals, Passkeys: iss.passkeys,
		Clients: cfg.Clients, Sessions: iss.sessions, Issuer: cfg.Issuer, BrokerClientID: cfg.ClientID,
		Origin: iss.origin, Secure: iss.secure, RequireSecondFactor: cfg.RequireSecondFactor,
		Connectors: iss.connectors, NoPasswordLogin: cfg.NoPasswordLogin,
		CodeTTL: CodeTTL, Now: cfg.Now, Log: cfg.Logger})
	iss.connectors.Attach(iss.flow)
	iss.links = linkflow.New(linkflow.Config{Store: cfg.Store, Events: iss.events, Pages: iss.pages, CSRF: iss.csrf, Guard: iss.guard,
		Sessions: iss.sessions, Passkeys: iss.passkeys, Clients: cfg.Clients, Issuer: cfg.Issuer, Secure: iss.secure,
		RequireSecondFactor: cfg.RequireSecondFactor, Now: cfg.Now, Log: cfg.Logger})
	h, err := iss.newHandler()
	if err != nil {
		return nil, err
	}
	iss.handler = h
	return iss, nil
}

// Handler returns the provider's HTTP handler: the OpenID endpoints at the
// root of the issuer, the login page and its assets. Mount it at "/".
func (i *Issuer) Handler() http.Handler { return i.handler }

// Issuer returns the issuer URL.
func (i *Issuer) Issuer() string { return i.cfg.Issuer }

// DeviceURL returns the device flow's verification URI, where people
// enter the code a device login shows.
func (i *Issuer) DeviceURL() string { return i.cfg.Issuer + devicePath }

// Audience returns the `aud` of access tokens.
func (i *Issuer) Audience() string { return i.cfg.Audience }

// ClientID returns the broker's client id.
func (i *Issuer) ClientID() string { return i.cfg.ClientID }

// maintenanceInterval is how often Run checks keys and deletes expired
// records.
const maintenanceInterval = time.Minute

// refusalFlusher is an audit recorder that holds the aggregated rows of
// refusals for its stream until their minute is over (audit.Auditor).
type refusalFlusher interface {
	FlushRefusals(ctx context.Context, all bool)
}

// Run does background maintenance until ctx ends: it checks whether a
// signing key is due (so idle replicas publish a new key in time), deletes
// expired records, and has the audit trail stream the rows of refusals
// whose minute is over.
func (i *Issuer) Run(ctx context.Context) {
	t := time.NewTicker(maintenanceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if f, ok := i.cfg.Audit.(refusalFlusher); ok {
			f.FlushRefusals(ctx, false)
		}
		if err := i.keys.Refresh(ctx, true); err != nil {
			i.log.WarnContext(ctx, "checking signing keys failed", "error", err)
		}
		if n, err := i.st.DeleteExpired(ctx); err != nil {
			i.log.WarnContext(ctx, "deleting expired records failed", "error", err)
		} else if n > 0 {
			i.log.DebugContext(ctx, "deleted expired records", "count", n)
		}
		if _, err := i.st.DropExpiredGrace(ctx, i.cfg.RefreshReuseGrace); err != nil {
			i.log.WarnContext(ctx, "dropping refresh tokens kept for retries failed", "error", err)
		}
	}
}

// endpoints are the library's routes we serve: no session iframe, and no
// end-session, which we serve ourselves (package endsession).
func endpoints() op.Endpoints {
	return op.Endpoints{
		Authorization:       op.NewEndpoint("authorize"),
		DeviceAuthorization: op.NewEndpoint("oauth/device_authorization"),
		Token:               op.NewEndpoint("oauth/token"),
		Introspection:       op.NewEndpoint("oauth/introspect"),
		Userinfo:            op.NewEndpoint("userinfo"),
		Revocation:          op.NewEndpoint("oauth/revoke"),
		JwksURI:             op.NewEndpoint("keys"),
	}
}

// Paths of our own endpoint and pages.
const (
	endSessionPath = "/oauth/end_session"
	logoutPath     = "/logout"
	loginPath      = authflow.LoginPath
	loggedOutPath  = "/logged-out"
	// devicePath is the verification URI of the device flow: where users
	// enter the code their device shows.
	devicePath = "/device"
	// deviceDecisionPath takes the approval page's answer.
	deviceDecisionPath = "/device/decision"
)

// accessTokenVerifier checks the provider's own access tokens with the
// keys it publishes, read in process, as the introspection endpoint
// checks them (server.Introspect): no result cache (each call verifies)
// and no clock tolerance.
func (i *Issuer) accessTokenVerifier() (*authn.Verifier, error) {
	p, err := authn.NewProviderWithKeys(i.cfg.Issuer, i.keys)
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	v, err := p.Verifier(authn.Config{Audiences: []string{i.cfg.Audience}, Algorithms: config.BuiltinSigningAlgorithms, ClockSkew: -1, Now: i.cfg.Now,
		RequireAccessTokenType: true, CacheEntries: -1})
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	return v, nil
}

func (i *Issuer) newHandler() (http.Handler, error) {
	// The library's own verifiers (of an id_token_hint, of an access token
	// at userinfo) accept the algorithms of every key the provider may
	// publish; their default leaves EdDSA out.
	algs := config.BuiltinSigningAlgorithms
	opts := []op.Option{op.WithCrypto(storage.NoOpaqueTokens{}), op.WithCORSOptions(nil),
		op.WithIDTokenHintVerifierOpts(op.WithSupportedIDTokenHintSigningAlgorithms(algs...)),
		op.WithAccessTokenVerifierOpts(op.WithSupportedAccessTokenSigningAlgorithms(algs...))}
	if u, _ := url.Parse(i.cfg.Issuer); u.Scheme == "http" {
		opts = append(opts, op.WithAllowInsecure())
	}
	provider, err := op.NewProvider(&op.Config{
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
		DefaultLogoutRedirectURI: i.cfg.Issuer + loggedOutPath,
		SupportedScopes:          supportedScopes(i.cfg.AllowedScopes),
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     DeviceCodeTTL,
			PollInterval: i.cfg.DevicePollInterval,
			UserFormPath: devicePath,
			UserCode:     storage.UserCodeFormat,
		},
	}, i.storage, op.StaticIssuer(i.cfg.Issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("issuer: creating the provider: %w", err)
	}
	accessTokens, err := i.accessTokenVerifier()
	if err != nil {
		return nil, err
	}
	srv := &server{LegacyServer: op.NewLegacyServer(provider, endpoints()), storage: i.storage, accessTokens: accessTokens,
		grants: i.grants, requirePKCE: i.cfg.RequirePKCE, endSessionURL: i.cfg.Issuer + endSessionPath}
	logouts, err := backchannel.New(backchannel.Config{Issuer: i.cfg.Issuer, Keys: i.storage, Events: i.events,
		HTTPClient: i.cfg.BackchannelHTTPClient, Now: i.cfg.Now, Backoff: i.cfg.BackchannelBackoff, Log: i.log})
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	i.account = accountflow.New(accountflow.Config{Store: i.st, Sessions: i.sessions, Events: i.events, Pages: i.pages,
		CSRF: i.csrf, Guard: i.guard, Refusals: i.refusals, Passkeys: i.passkeys, Clients: i.cfg.Clients, Issuer: i.cfg.Issuer,
		AuthorizePath: endpoints().Authorization.Relative(), Secure: i.secure, Backchannel: logouts, Now: i.cfg.Now, Log: i.log})
	endSession := endsession.New(endsession.Config{Issuer: i.cfg.Issuer, Now: i.cfg.Now, Store: i.st, Provider: provider,
		Sessions: i.sessions, Backchannel: logouts,
		Events: i.events, Pages: endSessionPages{pages: i.pages, csrf: i.csrf}, Log: i.log})
	// The library's login callback (/authorize/callback) is not used: the
	// login page issues the code itself, so the route answers 404.
	oidcHandler := op.RegisterLegacyServer(srv, http.NotFound, op.WithServerCORSOptions(nil))

	rt := &routes{mux: http.NewServeMux(), guard: i.forms}
	rt.handle(endpoints().Authorization.Relative(), i.limitAuthorize(authorizationResponses(i.cfg.Issuer, i.cfg.Issuer+loginPath, oidcHandler)))
	for _, fr := range slices.Concat(i.flow.Routes(), i.connectors.Routes(), i.links.Routes(), i.account.Routes()) {
		switch {
		case fr.Form == nil && fr.Limited:
			rt.handle(fr.Pattern, i.limitAuthorize(fr.Handler))
		case fr.Form == nil:
			rt.handle(fr.Pattern, fr.Handler)
		case fr.Limited:
			// The authorize limit comes first: a refused post costs no more than it.
			rt.handle(fr.Pattern, i.limitAuthorize(rt.guarded(fr.Pattern, *fr.Form, fr.Handler)))
		default:
			rt.form(fr.Pattern, *fr.Form, fr.Handler)
		}
	}
	// End-session itself is the client's site sending the browser here,
	// across origins by design: not a form of ours, not guarded.
	rt.handle(endSessionPath, http.HandlerFunc(endSession.EndSession))
	rt.form("POST "+logoutPath, web.Form{Limit: endsession.MaxFormBytes, Title: endsession.TitleSignOut, Forged: endsession.MsgSignOutForged},
		http.HandlerFunc(endSession.ConfirmLogout))
	rt.handle("GET "+devicePath, http.HandlerFunc(i.device.ShowEntry))
	rt.form("POST "+devicePath, web.Form{Limit: devicepages.MaxFormBytes, Title: "Connect a device"}, http.HandlerFunc(i.device.SubmitEntry))
	rt.form("POST "+deviceDecisionPath, web.Form{Limit: devicepages.MaxFormBytes, Title: "Approve device login"},
		http.HandlerFunc(i.device.SubmitDecision))
	rt.handle("GET "+loggedOutPath, http.HandlerFunc(i.showLoggedOut))
	rt.handle("GET "+web.AssetsPath, web.Assets())
	rt.handle(endpoints().Token.Relative(), postOnly(i.grants.RouteTokenExchange(i.grants.LimitMachineTokens(oidcHandler)), endpoints()))
	rt.handle("/", postOnly(oidcHandler, endpoints()))
	i.routes = rt.table
	return web.SecurityHeaders(i.withRequestInfo(i.unavailableAs503(rt.mux))), nil
}

// route is one pattern of the provider's mux, and whether the form guard
// (web.Guard) wraps it.
type route struct {
	pattern string
	guarded bool
}

// routes registers the provider's routes and keeps their table, so that a
// test can walk every form post and prove the guard wraps it.
type routes struct {
	mux   *http.ServeMux
	guard *web.Guard
	table []route
}

func (rt *routes) handle(pattern string, h http.Handler) {
	rt.mux.Handle(pattern, h)
	for j := range rt.table {
		if rt.table[j].pattern == pattern {
			return // guarded() listed it
		}
	}
	rt.table = append(rt.table, route{pattern: pattern})
}

// guarded returns h behind the form guard, and lists pattern as guarded.
func (rt *routes) guarded(pattern string, f web.Form, h http.Handler) http.Handler {
	rt.table = append(rt.table, route{pattern: pattern, guarded: true})
	return rt.guard.Wrap(f, h)
}

// form registers a form post of ours behind the guard.
func (rt *routes) form(pattern string, f web.Form, h http.Handler) {
	rt.handle(pattern, rt.guarded(pattern, f, h))
}

// supportedScopes is what discovery advertises.
func supportedScopes(extra []string) []string {
	out := []string{"openid", "profile", "email", "offline_access", storage.ScopeGroups}
	for _, s := range extra {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
