package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// ProviderMetadata is what [Discover] reads from a provider's discovery
// document (OpenID Connect Discovery 1.0 §3, RFC 8414 §2): where to find
// its keys and its introspection endpoint.
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

// maxDiscoveryBytes bounds the discovery document; real ones are a few KiB.
const maxDiscoveryBytes = 1 << 20

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
func Discover(ctx context.Context, issuer string, client *http.Client) (*ProviderMetadata, error) {
	if err := checkEndpointURL(issuer, ""); err != nil {
		return nil, fmt.Errorf("authn: issuer %w", err)
	}
	if strings.Contains(issuer, "?") {
		return nil, fmt.Errorf("authn: issuer %q must not contain a query", issuer)
	}
	if client == nil {
		client = newHTTPClient()
	}
	docURL := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return nil, fmt.Errorf("authn: discovery at %s: building the request: %w", docURL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: discovery at %s: %v", ErrUnavailable, docURL, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, fmt.Errorf("%w: discovery at %s: HTTP %d", ErrUnavailable, docURL, resp.StatusCode)
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, fmt.Errorf("authn: discovery at %s: HTTP %d, a redirect, which is not followed; give the issuer URL the provider names itself with", docURL, resp.StatusCode)
	default:
		return nil, fmt.Errorf("authn: discovery at %s: HTTP %d; is %s the issuer URL?", docURL, resp.StatusCode, issuer)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: discovery at %s: reading the answer: %v", ErrUnavailable, docURL, err)
	}
	if len(body) > maxDiscoveryBytes {
		return nil, fmt.Errorf("authn: discovery at %s: the answer is larger than %d bytes", docURL, maxDiscoveryBytes)
	}
	md, err := parseDiscovery(body)
	if err != nil {
		// The body is not quoted: it may be an unrelated page, and it is
		// the provider's text, not ours.
		mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		return nil, fmt.Errorf("authn: discovery at %s: %w (Content-Type %q)", docURL, err, mediaType)
	}
	if md.Issuer != issuer {
		return nil, fmt.Errorf("authn: discovery at %s names the issuer %q, not %q; the issuer URL must be given exactly as the provider spells it", docURL, md.Issuer, issuer)
	}
	scheme := ""
	if strings.HasPrefix(issuer, "https:") {
		scheme = "https"
	}
	if err := checkEndpointURL(md.JWKSURL, scheme); err != nil {
		return nil, fmt.Errorf("authn: discovery at %s: jwks_uri %w", docURL, err)
	}
	if md.IntrospectionURL != "" {
		if err := checkEndpointURL(md.IntrospectionURL, scheme); err != nil {
			return nil, fmt.Errorf("authn: discovery at %s: introspection_endpoint %w", docURL, err)
		}
	}
	return md, nil
}

// parseDiscovery decodes the members Discover uses, as strictly as token
// payloads: one JSON object, no repeated member names.
func parseDiscovery(body []byte) (*ProviderMetadata, error) {
	members, err := decodeObject(body)
	if err != nil {
		return nil, errors.New("the answer is not a JSON object")
	}
	var md ProviderMetadata
	for name, dst := range map[string]*string{"issuer": &md.Issuer, "jwks_uri": &md.JWKSURL, "introspection_endpoint": &md.IntrospectionURL} {
		if *dst, err = stringClaim(members, name); err != nil {
			return nil, fmt.Errorf("member %q is not a string", name)
		}
	}
	if raw, ok := members["id_token_signing_alg_values_supported"]; ok {
		var algs []string
		if err := json.Unmarshal(raw, &algs); err != nil {
			return nil, errors.New(`member "id_token_signing_alg_values_supported" is not a list of strings`)
		}
		for _, a := range algs {
			if slices.Contains(asymmetricAlgorithms, a) && !slices.Contains(md.SigningAlgorithms, a) {
				md.SigningAlgorithms = append(md.SigningAlgorithms, a)
			}
		}
	}
	return &md, nil
}

// checkEndpointURL returns an error (to follow the URL's name) unless raw
// is an absolute http(s) URL without user info or fragment, with the given
// scheme when one is given.
func checkEndpointURL(raw, scheme string) error {
	if raw == "" {
		return errors.New("is missing")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.User != nil || strings.Contains(raw, "#") {
		return fmt.Errorf("%q must not contain user info or a fragment", raw)
	}
	if scheme != "" && u.Scheme != scheme {
		return fmt.Errorf("%q is not %s, as the issuer is", raw, scheme)
	}
	return nil
}

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
	if _, err := parseAlgorithms(cfg.Algorithms); err != nil {
		return nil, err
	}
	md, err := Discover(ctx, issuer, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	keys, err := NewRemoteKeySet(RemoteKeySetConfig{URL: StaticURL(md.JWKSURL), HTTPClient: cfg.HTTPClient, Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	cfg.Issuer, cfg.KeySet = md.Issuer, keys
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = md.SigningAlgorithms
	}
	return NewVerifier(cfg)
}
