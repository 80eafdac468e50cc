package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

// Metadata is a provider's discovery document as the broker uses it:
// oidcdiscovery's reading of it, and the authorization endpoint prepared
// for AuthorizeURL.
type Metadata struct {
	oidcdiscovery.ProviderMetadata

	// authorizeBase is the authorization endpoint without its query, and
	// authorizeExtra its own query parameters (encoded) minus the ones
	// AuthorizeURL sets: computed once per document, not per call.
	authorizeBase, authorizeExtra string
}

// authorizeParams are the parameters AuthorizeURL sets; an endpoint URL
// that already carries one of them loses it, so each appears once.
var authorizeParams = []string{"client_id", "response_type", "scope", "state", "redirect_uri", "audience", "code_challenge", "code_challenge_method"}

func (md *Metadata) prepareAuthorize() error {
	u, err := url.Parse(md.AuthorizationEndpoint)
	if err != nil {
		return err
	}
	q := u.Query()
	for _, k := range authorizeParams {
		q.Del(k)
	}
	md.authorizeExtra = q.Encode()
	u.RawQuery, u.ForceQuery = "", false
	md.authorizeBase = u.String()
	return nil
}

// DiscoveryURL returns the discovery document URL for an issuer base URL.
func DiscoveryURL(baseURL string) string { return oidcdiscovery.URL(baseURL) }

// fetchMetadata reads the document at baseURL with [oidcdiscovery.Discover],
// which refuses one naming another issuer than expectedIssuer or, under an
// https issuer, an http endpoint, and requires the endpoints the broker
// cannot work without. Those two refusals are configuration errors
// ([ErrIssuerMismatch], [ErrInsecureEndpoint]); every other failure is
// [ErrUnavailable], retried in the background, as a provider that is still
// starting may answer 404 or an empty page.
func fetchMetadata(ctx context.Context, client *http.Client, baseURL, expectedIssuer string) (*Metadata, error) {
	d, err := oidcdiscovery.Discover(ctx, expectedIssuer, oidcdiscovery.Options{
		HTTPClient: client,
		BaseURL:    baseURL,
		Require:    []string{oidcdiscovery.AuthorizationEndpoint, oidcdiscovery.TokenEndpoint, oidcdiscovery.JWKSURI},
	})
	var mismatch *oidcdiscovery.IssuerMismatchError
	switch {
	case errors.As(err, &mismatch):
		return nil, fmt.Errorf("%w: discovered %q, expected %q", ErrIssuerMismatch, mismatch.Named, expectedIssuer)
	case errors.Is(err, oidcdiscovery.ErrInsecureEndpoint):
		return nil, fmt.Errorf("discovery document: %w", err)
	case err != nil:
		return nil, unavailable("%v", err)
	}
	md := &Metadata{ProviderMetadata: *d}
	if err := md.prepareAuthorize(); err != nil {
		return nil, unavailable("discovery document: authorization_endpoint: %v", err)
	}
	return md, nil
}

// supportsBasicAuth reports whether the token endpoint takes client
// credentials in an Authorization header; per the OpenID Connect Discovery
// spec, an absent list means client_secret_basic.
func (md *Metadata) supportsBasicAuth() bool {
	return len(md.TokenEndpointAuthMethodsSupported) == 0 || slices.Contains(md.TokenEndpointAuthMethodsSupported, "client_secret_basic")
}

// redactURLError drops the URL from a *url.Error: URLs of token requests
// can carry nothing secret, but keeping the rule simple ("never print what
// came over the wire") is worth more than the detail.
func redactURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
