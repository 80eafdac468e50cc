package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nsauth/nsauth/internal/authservice"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/server"
	"github.com/nsauth/nsauth/internal/telemetry"
	"github.com/nsauth/nsauth/internal/upstream"
	"github.com/nsauth/nsauth/pkg/authn"
)

// discoveryStartTimeout bounds the first discovery attempt at start; an
// external provider that is slower than this is retried in the
// background.
const discoveryStartTimeout = 5 * time.Second

// providerStart tunes how startProvider brings a provider up.
type providerStart struct {
	// now is the clock of the broker and of token verification.
	now func() time.Time
	// httpClient makes the broker's and the verifier's requests. Nil means
	// upstream.NewHTTPClient: over the network.
	httpClient *http.Client
	// tracing traces the requests of the default client (httpClient nil).
	tracing *telemetry.Tracing
	// metrics count provider latency and token-verification cache use.
	metrics *server.AuthMetrics
	// mustDiscover makes a failed first discovery an error rather than a
	// reason to retry in the background: for the built-in provider, which
	// is in this process and has no reason to be unreachable.
	mustDiscover bool
	// revocations, when set, is consulted by the JWT verifier for every
	// token it would accept: the built-in provider's revocation set. An
	// external provider publishes no revocations; there, the introspection
	// token mode is what honours them before expiry.
	revocations authn.RevocationChecker
}

// provider is a discovered provider as the AuthService uses it.
type provider struct {
	broker      *upstream.Provider
	interceptor *authn.Interceptor
}

// startProvider discovers the configured provider (once, briefly; then in
// the background until bg ends) and builds the token-checking interceptor.
// An issuer mismatch, or an http endpoint under an https issuer, is fatal;
// an unreachable provider is not, unless start.mustDiscover. The built-in
// provider goes through here too, over HTTP, exactly as an external one;
// only its transport differs.
func startProvider(ctx, bg context.Context, a config.Auth, start providerStart, logger *slog.Logger) (*provider, error) {
	if a.ClientSecret == "" {
		logger.Info("no client secret configured for the CLI client; acting as a public client (clients should use PKCE)", "client_id", a.ClientID)
	}
	httpClient := start.httpClient
	if httpClient == nil {
		httpClient = upstream.NewHTTPClientWith(start.tracing.Transport(upstream.NewTransport()))
	}
	broker, err := upstream.New(upstream.Config{
		BaseURL:        a.BaseURL,
		ExpectedIssuer: a.ExpectedIssuer,
		ClientID:       a.ClientID,
		ClientSecret:   a.ClientSecret,
		Audience:       a.CLIAudience,
		HTTPClient:     httpClient,
		Now:            start.now,
		Logger:         logger,
		ObserveLatency: start.metrics.ProviderRequest,
	})
	if err != nil {
		return nil, fmt.Errorf("configuring the provider: %w", err)
	}
	initCtx, cancel := context.WithTimeout(ctx, discoveryStartTimeout)
	err = broker.Init(initCtx)
	cancel()
	switch {
	case errors.Is(err, upstream.ErrIssuerMismatch):
		return nil, fmt.Errorf("invalid configuration: AUTH_EXPECTED_ISS / AUTH_BASEURL: %w", err)
	case errors.Is(err, upstream.ErrInsecureEndpoint):
		return nil, fmt.Errorf("the provider at AUTH_BASEURL is refused: %w", err)
	case err != nil && start.mustDiscover:
		return nil, fmt.Errorf("discovering the provider: %w", err)
	case err != nil:
		logger.Warn("provider not reachable yet; retrying in the background, and answering Unavailable meanwhile", "error", err)
	}
	go broker.Run(bg)

	verifier, err := newTokenVerifier(a, broker, broker.HTTPClient(), start, logger)
	if err != nil {
		return nil, err
	}
	interceptor := authn.NewInterceptorFromConfig(verifier, authn.InterceptorConfig{
		PublicProcedures: authservice.PublicProcedures,
		Logger:           logger,
		Now:              start.now,
	})
	return &provider{broker: broker, interceptor: interceptor}, nil
}

// newTokenVerifier builds what checks access tokens for the configured
// token mode: JWT verification against the provider's JWKS, RFC 7662
// introspection, or both (JWT-shaped tokens verified, others introspected).
func newTokenVerifier(a config.Auth, broker *upstream.Provider, httpClient *http.Client, start providerStart, logger *slog.Logger) (authn.TokenVerifier, error) {
	now := start.now
	var jwtVerifier, introspector authn.TokenVerifier
	if a.TokenMode != config.TokenModeIntrospection {
		keys, err := authn.NewRemoteKeySet(authn.RemoteKeySetConfig{URL: broker.JWKSURL, HTTPClient: httpClient, Logger: logger, Now: now})
		if err != nil {
			return nil, err
		}
		p, err := authn.NewProviderWithKeys(a.ExpectedIssuer, keys)
		if err != nil {
			return nil, fmt.Errorf("configuring token verification: %w", err)
		}
		v, err := p.Verifier(authn.Config{
			Audiences:              a.Audiences,
			Algorithms:             a.Algorithms,
			ClockSkew:              a.ClockSkew,
			Now:                    now,
			RequireAccessTokenType: a.RequireAccessTokenType,
			Revocations:            start.revocations,
			OnCacheLookup:          start.metrics.CacheLookup,
		})
		if err != nil {
			return nil, fmt.Errorf("configuring token verification: %w", err)
		}
		jwtVerifier = v
	}
	if a.TokenMode != config.TokenModeJWT {
		endpoint := broker.IntrospectionURL
		if a.IntrospectionURL != "" {
			endpoint = authn.StaticURL(a.IntrospectionURL)
		}
		cacheTTL := a.IntrospectionCacheTTL
		if cacheTTL == 0 {
			cacheTTL = -1 // "0s" means no reuse at all
		}
		in, err := authn.NewIntrospector(authn.IntrospectorConfig{
			URL:           endpoint,
			ClientID:      a.ClientID,
			ClientSecret:  a.ClientSecret,
			Issuer:        a.ExpectedIssuer,
			Audiences:     a.Audiences,
			HTTPClient:    httpClient,
			Now:           now,
			OnCacheLookup: start.metrics.CacheLookup,
			CacheTTL:      cacheTTL,
		})
		if err != nil {
			return nil, fmt.Errorf("configuring token introspection: %w", err)
		}
		introspector = in
	}
	switch a.TokenMode {
	case config.TokenModeIntrospection:
		return introspector, nil
	case config.TokenModeJWTOrIntrospection:
		return authn.ChainVerifier{JWT: jwtVerifier, Introspection: introspector}, nil
	default:
		return jwtVerifier, nil
	}
}
