package authn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

// ProviderMetadata is what [Discover] reads from a provider's discovery
// document (OpenID Connect Discovery 1.0 §3, RFC 8414 §2): where to find
// its keys and its introspection endpoint.
//
// Deprecated: use [oidcdiscovery.ProviderMetadata], which [Provider.Metadata]
// returns.
type ProviderMetadata struct {
	// Issuer is the document's `issuer`, which Discover checked is exactly
	// the issuer URL it was given.
	Issuer string
	// JWKSURL is the document's `jwks_uri`. Discover fails without it.
	JWKSURL string
	// IntrospectionURL is the document's `introspection_endpoint` (RFC 7662,
	// RFC 8414); empty when the provider announces none.
	IntrospectionURL string
	// SigningAlgorithms are the document's
	// `id_token_signing_alg_values_supported` that a [Verifier] may use (see
	// [SupportedAlgorithms]), in the document's order; others, such as
	// "none" and the HMAC family, are left out. Empty when none is left.
	SigningAlgorithms []string
}

// Discover fetches issuer + "/.well-known/openid-configuration" and returns
// what it says about keys and introspection. issuer must be an absolute
// http(s) URL without query or fragment, spelled exactly as the provider
// spells its `issuer` (a trailing slash counts): a document naming another
// issuer is refused, so that a provider cannot vouch for tokens of another.
// When issuer is https, the announced endpoints must be https too.
//
// client makes the request; nil means a client with a 10 s timeout that
// does not follow redirects (a redirected discovery document is an error).
// The answer is read up to 1 MiB. Errors from a provider that cannot be
// reached or answers HTTP 5xx or 429 match [ErrUnavailable], so a caller
// starting up may retry; other errors (wrong URL, not JSON, issuer
// mismatch) are configuration errors that retrying does not fix.
//
// Deprecated: use [oidcdiscovery.Discover], whose [oidcdiscovery.ProviderMetadata]
// names every endpoint, or [NewProvider]. Discover is that function with
// jwks_uri required; its errors also match those of package oidcdiscovery.
func Discover(ctx context.Context, issuer string, client *http.Client) (*ProviderMetadata, error) {
	md, err := discover(ctx, issuer, client)
	if err != nil {
		return nil, err
	}
	return &ProviderMetadata{
		Issuer:            md.Issuer,
		JWKSURL:           md.JWKSURI,
		IntrospectionURL:  md.IntrospectionEndpoint,
		SigningAlgorithms: verifierAlgorithms(md.IDTokenSigningAlgValuesSupported),
	}, nil
}

// discover runs [oidcdiscovery.Discover] with jwks_uri required and the
// package's default client, and makes its unavailable errors match
// [ErrUnavailable] too.
func discover(ctx context.Context, issuer string, client *http.Client) (*oidcdiscovery.ProviderMetadata, error) {
	if client == nil {
		client = newHTTPClient()
	}
	md, err := oidcdiscovery.Discover(ctx, issuer, oidcdiscovery.Options{HTTPClient: client, Require: []string{oidcdiscovery.JWKSURI}})
	switch {
	case err == nil:
		return md, nil
	case errors.Is(err, oidcdiscovery.ErrUnavailable):
		return nil, &unavailableError{fmt.Errorf("authn: %w", err)}
	default:
		return nil, fmt.Errorf("authn: %w", err)
	}
}

// verifierAlgorithms keeps the algorithms a [Verifier] accepts (see
// [SupportedAlgorithms]), in the document's order, once each; "none" and
// the HMAC family are left out.
func verifierAlgorithms(announced []string) []string {
	var algs []string
	for _, a := range announced {
		if slices.Contains(asymmetricAlgorithms, a) && !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	return algs
}

// unavailableError matches [ErrUnavailable] and keeps its cause's text and
// chain (so it also matches [oidcdiscovery.ErrUnavailable]).
type unavailableError struct{ err error }

func (e *unavailableError) Error() string        { return e.err.Error() }
func (e *unavailableError) Unwrap() error        { return e.err }
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

// NewFromIssuer returns a [Verifier] for the access tokens of the provider
// whose issuer URL is issuer. It runs [Discover] (with cfg.HTTPClient, so
// without following redirects by default), then builds a [RemoteKeySet] on
// the announced jwks_uri, with cfg.HTTPClient and cfg.Now. The JWKS is
// fetched at the first verification, not here, and the discovery document
// is not read again: restart (or use Discover and [NewRemoteKeySet] with a
// URL function of your own) if the provider moves its keys.
//
// cfg is as for [NewVerifier], except that:
//   - cfg.Issuer may be left empty; when set it must equal issuer.
//   - cfg.KeySet must be left nil.
//   - cfg.Algorithms defaults to the document's
//     [ProviderMetadata.SigningAlgorithms], and to RS256 when it names
//     none that a Verifier accepts.
//
// Errors are those of Discover (matching [ErrUnavailable] when the provider
// cannot be reached) and of NewVerifier.
//
// Deprecated: use [NewProvider] and [Provider.Verifier]: NewFromIssuer is
// those two, with cfg split into [ProviderConfig] and [Config].
func NewFromIssuer(ctx context.Context, issuer string, cfg VerifierConfig) (*Verifier, error) {
	if cfg.Issuer != "" && cfg.Issuer != issuer {
		return nil, fmt.Errorf("authn: VerifierConfig.Issuer %q differs from the issuer URL %q", cfg.Issuer, issuer)
	}
	if cfg.KeySet != nil {
		return nil, errors.New("authn: NewFromIssuer builds the key set from discovery; leave VerifierConfig.KeySet nil (or use NewVerifier)")
	}
	// Check what discovery cannot fix before making a request.
	if len(cfg.Audiences) == 0 {
		return nil, errors.New("authn: at least one audience is required")
	}
	if err := checkAlgorithms(cfg.Algorithms); err != nil {
		return nil, err
	}
	p, err := NewProviderFromConfig(ctx, issuer, ProviderConfig{HTTPClient: cfg.HTTPClient, Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	return p.Verifier(Config{
		Audiences:              cfg.Audiences,
		Algorithms:             cfg.Algorithms,
		ClockSkew:              cfg.ClockSkew,
		Now:                    cfg.Now,
		MaxTokenBytes:          cfg.MaxTokenBytes,
		RequireAccessTokenType: cfg.RequireAccessTokenType,
		CacheEntries:           cfg.CacheEntries,
		OnCacheLookup:          cfg.OnCacheLookup,
		Revocations:            cfg.Revocations,
	})
}
