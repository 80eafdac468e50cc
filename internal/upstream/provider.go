package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/nsauth/nsauth/pkg/noredirect"
)

// Config configures a [Provider].
type Config struct {
	// BaseURL is where the discovery document is fetched from
	// (BaseURL + "/.well-known/openid-configuration"). Required.
	BaseURL string
	// ExpectedIssuer is the `issuer` the discovery document must name.
	// Defaults to BaseURL.
	ExpectedIssuer string
	// ClientID is the OAuth client the broker acts as. Required.
	ClientID string
	// ClientSecret authenticates ClientID at the token endpoint. Empty means
	// a public client, which should use PKCE.
	ClientSecret string
	// Audience, when set, is added to authorize URLs as the `audience`
	// parameter (Auth0 style).
	Audience string
	// HTTPClient makes every outbound call. It must have a timeout.
	// Defaults to [NewHTTPClient].
	HTTPClient *http.Client
	// RefreshInterval is how often the discovery document is refetched in
	// the background. Defaults to 1 h.
	RefreshInterval time.Duration
	// RetryMin and RetryMax bound the exponential backoff used while the
	// discovery document cannot be fetched. Default 1 s and 1 min.
	RetryMin, RetryMax time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger receives discovery progress and failures. Defaults to
	// discarding them.
	Logger *slog.Logger
	// ObserveLatency, when set, is told the duration of every request made
	// through [Provider.HTTPClient], with the endpoint it went to (one of
	// the Endpoint* names, taken from the discovery document; in process
	// or over the network alike). Nil times nothing.
	ObserveLatency func(endpoint string, d time.Duration)
}

// Provider is an OpenID provider as seen by the broker. It is safe for
// concurrent use.
type Provider struct {
	cfg Config

	mu      sync.RWMutex
	md      *Metadata
	lastErr error
	updated chan struct{} // closed and replaced whenever md changes
}

// NewHTTPClient returns the HTTP client used for provider calls by default:
// [NewHTTPClientWith] over [NewTransport].
func NewHTTPClient() *http.Client {
	return NewHTTPClientWith(NewTransport())
}

// NewTransport returns the transport of [NewHTTPClient]: pooled keep-alive
// connections and a 5 s dial timeout.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 128
	t.IdleConnTimeout = 90 * time.Second
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return t
}

// NewHTTPClientWith returns a provider client over rt: a 10 s overall
// timeout and no redirects (a token endpoint that redirects is
// misconfigured, and following it could leak credentials).
func NewHTTPClientWith(rt http.RoundTripper) *http.Client {
	return noredirect.NewClient(rt, 10*time.Second)
}

// New validates cfg and returns a Provider. It makes no network call; use
// [Provider.Init] and [Provider.Run].
func New(cfg Config) (*Provider, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("base URL %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("a client id is required")
	}
	if cfg.ExpectedIssuer == "" {
		cfg.ExpectedIssuer = cfg.BaseURL
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = NewHTTPClient()
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = time.Hour
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(time.Minute, cfg.RetryMin)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Provider{cfg: cfg, lastErr: ErrNotReady, updated: make(chan struct{})}
	if cfg.ObserveLatency != nil {
		timed := *cfg.HTTPClient
		next := timed.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		timed.Transport = latencyTransport{next: next, p: p, observe: cfg.ObserveLatency}
		p.cfg.HTTPClient = &timed
	}
	return p, nil
}

// Metadata returns the current discovery document, or an error wrapping
// [ErrNotReady] (and the last failure) before the first successful fetch.
func (p *Provider) Metadata() (*Metadata, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.md == nil {
		if errors.Is(p.lastErr, ErrNotReady) {
			return nil, p.lastErr
		}
		return nil, fmt.Errorf("%w: %w", ErrNotReady, p.lastErr)
	}
	return p.md, nil
}

// Ready reports whether a discovery document has been fetched.
func (p *Provider) Ready() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.md != nil
}

// JWKSURL returns the provider's jwks_uri, for an authn.RemoteKeySet.
func (p *Provider) JWKSURL(context.Context) (string, error) {
	md, err := p.Metadata()
	if err != nil {
		return "", err
	}
	return md.JWKSURI, nil
}

// IntrospectionURL returns the provider's introspection_endpoint
// (RFC 7662), for an authn.Introspector; an error when it advertises none.
func (p *Provider) IntrospectionURL(context.Context) (string, error) {
	md, err := p.Metadata()
	if err != nil {
		return "", err
	}
	if md.IntrospectionEndpoint == "" {
		return "", errors.New("the discovery document names no introspection_endpoint; set NSAUTH_INTROSPECTION_URL")
	}
	return md.IntrospectionEndpoint, nil
}

// Init makes the first discovery attempt, bounded by ctx. It returns an
// error wrapping [ErrIssuerMismatch] when the provider names another issuer,
// or [ErrInsecureEndpoint] when an https provider names an http endpoint,
// which callers should treat as fatal; any other failure is returned too but
// is expected (the provider may start later) and [Provider.Run] retries.
func (p *Provider) Init(ctx context.Context) error {
	return p.refresh(ctx)
}

// Run keeps the discovery document current until ctx ends: it retries with
// exponential backoff and jitter until a fetch succeeds, then refetches
// every RefreshInterval. A failed refetch keeps the previous document.
func (p *Provider) Run(ctx context.Context) {
	backoff := p.cfg.RetryMin
	for {
		var wait time.Duration
		if p.Ready() && p.lastFailure() == nil {
			wait = p.cfg.RefreshInterval
			backoff = p.cfg.RetryMin
		} else {
			wait = backoff + rand.N(backoff/2+1)
			backoff = min(backoff*2, p.cfg.RetryMax)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		_ = p.refresh(ctx)
	}
}

func (p *Provider) lastFailure() error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.lastErr
}

func (p *Provider) refresh(ctx context.Context) error {
	md, err := fetchMetadata(ctx, p.cfg.HTTPClient, p.cfg.BaseURL, p.cfg.ExpectedIssuer)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.lastErr = err
		level := slog.LevelWarn
		if errors.Is(err, ErrIssuerMismatch) || errors.Is(err, ErrInsecureEndpoint) {
			level = slog.LevelError
		}
		p.cfg.Logger.Log(ctx, level, "provider discovery failed", "discovery_url", DiscoveryURL(p.cfg.BaseURL), "error", err, "using_previous", p.md != nil)
		return err
	}
	if p.md == nil {
		p.cfg.Logger.Info("provider discovered", "issuer", md.Issuer)
	}
	p.md = md
	p.lastErr = nil
	close(p.updated)
	p.updated = make(chan struct{})
	return nil
}

// WaitReady blocks until a discovery document is available or ctx ends.
func (p *Provider) WaitReady(ctx context.Context) error {
	for {
		p.mu.RLock()
		ready, ch := p.md != nil, p.updated
		p.mu.RUnlock()
		if ready {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
