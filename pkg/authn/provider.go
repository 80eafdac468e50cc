package authn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

// ProviderConfig is how a [Provider] reaches the provider: plumbing, never
// policy (which tokens to accept is [Config]'s). The zero value is ready to
// use.
type ProviderConfig struct {
	// HTTPClient fetches the discovery document and the JWKS. Defaults to
	// a client with a 10 s timeout that does not follow redirects; a
	// client given here is used as it is (see package noredirect).
	HTTPClient *http.Client
	// Now is the key set's clock, which decides when the JWKS is fetched
	// again. Defaults to time.Now.
	Now func() time.Time
	// Logger receives JWKS fetch failures. Defaults to discarding them.
	Logger *slog.Logger
}

// Provider is an OpenID provider as a service that verifies its tokens
// sees it: an issuer and the key set that signs its tokens. Build one with
// [NewProvider] (from discovery) or [NewProviderWithKeys], then a
// [Verifier] with [Provider.Verifier]. It is safe for concurrent use, and
// every Verifier built from it shares its key set.
type Provider struct {
	issuer string
	keys   KeySet
	md     *oidcdiscovery.ProviderMetadata // nil without discovery
}

// NewProvider reads, with the defaults of [ProviderConfig], the discovery document of the provider whose issuer
// URL is issuer (with [oidcdiscovery.Discover], jwks_uri required) and
// returns the Provider, with a [RemoteKeySet] on the announced jwks_uri.
// The JWKS is fetched at the first verification, not here, and the
// document is not read again: restart (or build a RemoteKeySet with a URL
// function of your own and use [NewProviderWithKeys]) if the provider
// moves its keys.
//
// issuer must be spelled exactly as the provider spells its `issuer` (a
// trailing slash counts). Errors are those of oidcdiscovery.Discover;
// those of a provider that cannot answer now also match [ErrUnavailable],
// so a caller starting up may retry.
func NewProvider(ctx context.Context, issuer string) (*Provider, error) {
	return NewProviderFromConfig(ctx, issuer, ProviderConfig{})
}

// NewProviderFromConfig is [NewProvider] reaching the provider as cfg
// says: its HTTP client, clock and logger.
func NewProviderFromConfig(ctx context.Context, issuer string, cfg ProviderConfig) (*Provider, error) {
	md, err := discover(ctx, issuer, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	keys, err := NewRemoteKeySet(RemoteKeySetConfig{URL: StaticURL(md.JWKSURI), HTTPClient: cfg.HTTPClient, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return &Provider{issuer: md.Issuer, keys: keys, md: md}, nil
}

// NewProviderWithKeys returns the Provider whose tokens name issuer as
// their `iss` and are signed by keys, without discovery: for keys whose
// location is known otherwise (a broker that keeps the discovery document
// current, a fixed set in tests). Its [Provider.Verifier] defaults to
// [DefaultAlgorithm]. It returns an error when issuer is empty or keys nil.
func NewProviderWithKeys(issuer string, keys KeySet) (*Provider, error) {
	if issuer == "" {
		return nil, errors.New("authn: an issuer is required")
	}
	if keys == nil {
		return nil, errors.New("authn: a key set is required")
	}
	return &Provider{issuer: issuer, keys: keys}, nil
}

// Issuer returns the issuer URL the provider's tokens must name.
func (p *Provider) Issuer() string { return p.issuer }

// KeySet returns the provider's key set.
func (p *Provider) KeySet() KeySet { return p.keys }

// Metadata returns a copy of the discovery document [NewProvider] read,
// and false for a Provider built without discovery.
func (p *Provider) Metadata() (oidcdiscovery.ProviderMetadata, bool) {
	if p.md == nil {
		return oidcdiscovery.ProviderMetadata{}, false
	}
	md := *p.md
	md.TokenEndpointAuthMethodsSupported = slices.Clone(md.TokenEndpointAuthMethodsSupported)
	md.CodeChallengeMethodsSupported = slices.Clone(md.CodeChallengeMethodsSupported)
	md.IDTokenSigningAlgValuesSupported = slices.Clone(md.IDTokenSigningAlgValuesSupported)
	return md, true
}

// Config is the policy of a [Verifier]: which tokens of its [Provider] it
// accepts. Only Audiences is required.
type Config struct {
	// Audiences are the accepted `aud` values; a token must name at least
	// one of them. Required.
	Audiences []string
	// Algorithms is the allowlist of signature algorithms; only asymmetric
	// ones are allowed (see [SupportedAlgorithms]). Defaults to those the
	// discovery document announces that a Verifier accepts, and to
	// [DefaultAlgorithm] when it announces none or there was no discovery.
	Algorithms []string
	// ClockSkew is the tolerance applied to `exp`, `nbf` and `iat`.
	// Defaults to [DefaultClockSkew]; negative values mean none.
	ClockSkew time.Duration
	// Now is the clock tokens are judged by. Defaults to time.Now.
	Now func() time.Time
	// MaxTokenBytes rejects longer tokens before any parsing. Defaults to
	// [DefaultMaxTokenBytes].
	MaxTokenBytes int
	// RequireAccessTokenType accepts only tokens whose `typ` header is
	// `at+jwt` (RFC 9068), which tells access tokens from ID tokens. Leave
	// it off for providers that do not set it.
	RequireAccessTokenType bool
	// IDTokens makes the Verifier one of OpenID Connect ID tokens (OpenID
	// Connect Core 1.0 §3.1.3.7), for a relying party that signs people in
	// with the provider, instead of access tokens: a token typed at+jwt
	// (an access token, RFC 9068) is refused, and RequireAccessTokenType
	// must be off. The rest is checked as for access tokens: an asymmetric
	// algorithm of the allowlist, the signature, iss, sub, aud (Audiences
	// is then the relying party's client id), exp and iat. What only the
	// relying party knows stays its own to check on the returned Claims
	// (with [Claims.Decode]): the nonce it sent, azp when aud names
	// several audiences, auth_time against a max_age it asked for.
	IDTokens bool
	// CacheEntries bounds the cache of verification results; see
	// [VerifierConfig].CacheEntries. Defaults to [DefaultCacheEntries];
	// negative disables caching.
	CacheEntries int
	// OnCacheLookup, when set, is told of each lookup in the result cache;
	// see [VerifierConfig].OnCacheLookup.
	OnCacheLookup func(hit bool)
	// Revocations, when set, is asked about every token the verifier would
	// accept; a token it reports revoked is refused. Nil means tokens are
	// good until they expire.
	Revocations RevocationChecker
}

// Verifier returns a Verifier of the provider's tokens under the policy
// cfg. Its errors are configuration errors: no audience, or an algorithm
// outside [SupportedAlgorithms].
func (p *Provider) Verifier(cfg Config) (*Verifier, error) {
	algs := cfg.Algorithms
	if len(algs) == 0 && p.md != nil {
		algs = verifierAlgorithms(p.md.IDTokenSigningAlgValuesSupported)
	}
	return newVerifier(VerifierConfig{
		Issuer:                 p.issuer,
		Audiences:              cfg.Audiences,
		Algorithms:             algs,
		KeySet:                 p.keys,
		ClockSkew:              cfg.ClockSkew,
		Now:                    cfg.Now,
		MaxTokenBytes:          cfg.MaxTokenBytes,
		RequireAccessTokenType: cfg.RequireAccessTokenType,
		IDTokens:               cfg.IDTokens,
		CacheEntries:           cfg.CacheEntries,
		OnCacheLookup:          cfg.OnCacheLookup,
		Revocations:            cfg.Revocations,
	})
}
