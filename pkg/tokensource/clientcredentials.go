package tokensource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// ClientCredentialsConfig configures [NewClientCredentials].
type ClientCredentialsConfig struct {
	// Issuer is the provider's issuer URL, exactly as the provider spells
	// it. The token endpoint is found by [Discover] at the first token
	// request. Give Issuer or TokenURL, not both.
	Issuer string
	// TokenURL is the provider's token endpoint, used as given.
	TokenURL string
	// ClientID and ClientSecret are the machine client's credentials.
	// Both are required. Read the secret from the environment or a file,
	// never from a command line, which other users of the machine can
	// see.
	ClientID, ClientSecret string
	// Scopes are requested with each token; none means the provider's
	// default for the client.
	Scopes []string
	// AuthStyle is how the secret is sent. Zero means: as the discovery
	// document asks ([ProviderMetadata.AuthStyle]) with an Issuer, in the
	// Authorization header (client_secret_basic) with a TokenURL. The
	// source never guesses (golang.org/x/oauth2's auto-detection resends a
	// refused request the other way, doubling every failure).
	AuthStyle oauth2.AuthStyle
	// HTTPClient makes the requests. It must have a timeout and MUST NOT
	// follow redirects, which could carry the secret elsewhere. Defaults
	// to [NewHTTPClient].
	HTTPClient *http.Client
	// Margin is how much life a token must have left to be reused.
	// Defaults to DefaultMargin; negative means 0.
	Margin time.Duration
	// InsecureAllowHTTP permits plain-HTTP endpoints on hosts other than
	// this machine. The secret then crosses the network in the clear; it
	// MUST NOT be set outside of trusted networks.
	InsecureAllowHTTP bool
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// ClientCredentials gets a machine client's access tokens from the
// provider's token endpoint with the client credentials grant (RFC 6749
// §4.4), and reuses each until it has less than the margin of life left.
// It is safe for concurrent use: callers asking at once share one token
// request. Nothing is written to disk.
type ClientCredentials struct {
	endpoint *endpoint
	conf     clientcredentials.Config
	style    oauth2.AuthStyle // as configured; zero follows the endpoint
	now      func() time.Time
	cache    *cache
}

var _ oauth2.TokenSource = (*ClientCredentials)(nil)

// NewClientCredentials returns a ClientCredentials source. It makes no
// network call until a token is asked for.
func NewClientCredentials(cfg ClientCredentialsConfig) (*ClientCredentials, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("tokensource: a ClientID is required")
	}
	if cfg.ClientSecret == "" {
		return nil, errors.New("tokensource: a ClientSecret is required")
	}
	ep, err := newEndpoint(cfg.Issuer, cfg.TokenURL, cfg.InsecureAllowHTTP, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	s := &ClientCredentials{
		endpoint: ep,
		conf:     clientcredentials.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Scopes: cfg.Scopes},
		style:    cfg.AuthStyle,
		now:      cfg.Now,
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.cache = newCache(cfg.Margin, s.now, s.fetch)
	return s, nil
}

// Token implements oauth2.TokenSource. It is TokenContext without a
// deadline of the caller's; the HTTP client's timeout still bounds it.
func (s *ClientCredentials) Token() (*oauth2.Token, error) {
	return s.TokenContext(context.Background())
}

// TokenContext returns a token with more than the margin of life left,
// asking the provider for a new one if needed. A provider's refusal is a
// [*TokenEndpointError]; ErrorCode "invalid_client" means the client ID or
// secret is wrong. Errors never contain the secret or a token.
func (s *ClientCredentials) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	return s.cache.token(ctx)
}

// fetch runs under the cache's lock, which also guards the endpoint and
// conf.TokenURL.
func (s *ClientCredentials) fetch(ctx context.Context) (*oauth2.Token, error) {
	tokenURL, err := s.endpoint.resolve(ctx)
	if err != nil {
		return nil, err
	}
	s.conf.TokenURL, s.conf.AuthStyle = tokenURL, s.style
	if s.style == oauth2.AuthStyleAutoDetect {
		s.conf.AuthStyle = s.endpoint.authStyle
	}
	start := s.now()
	tok, err := s.conf.Token(withClient(ctx, s.endpoint.client))
	if err != nil {
		return nil, fmt.Errorf("getting a token for client %q: %w", s.conf.ClientID, retrieveError(err))
	}
	return fromResponse(tok, start), nil
}

// retrieveError turns golang.org/x/oauth2's errors into ours: its
// RetrieveError's text quotes the provider's answer, and its parse errors
// quote the body.
func retrieveError(err error) error {
	var re *oauth2.RetrieveError
	var ue *url.Error
	switch {
	case errors.As(err, &re):
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return &TokenEndpointError{StatusCode: status, ErrorCode: errorCode(re.ErrorCode)}
	case errors.As(err, &ue):
		return ue // the URL and what went wrong on the way: no secrets
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return errors.New("the token endpoint's answer is not a token response")
}

// fromResponse keeps of a token response what callers need, its expiry
// reckoned from start (when the request was sent) on the source's clock.
func fromResponse(t *oauth2.Token, start time.Time) *oauth2.Token {
	out := &oauth2.Token{AccessToken: t.AccessToken, TokenType: t.Type()}
	if d, ok := expiresIn(t.Extra("expires_in")); ok {
		out.Expiry = start.Add(d)
		out.ExpiresIn = int64(d / time.Second)
	}
	if s, ok := t.Extra("scope").(string); ok && s != "" {
		out = out.WithExtra(map[string]any{"scope": s})
	}
	return out
}
