package tokensource

import (
	"context"
	"net/http"
	"slices"

	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
	"golang.org/x/oauth2"
)

// ProviderMetadata is what [Discover] reads from a provider's discovery
// document (OpenID Connect Discovery 1.0 §3, RFC 8414 §2).
//
// Deprecated: use [oidcdiscovery.ProviderMetadata], and [AuthStyle] for its
// token_endpoint_auth_methods_supported.
type ProviderMetadata struct {
	// Issuer is the document's `issuer`, which Discover checked is exactly
	// the issuer URL it was given.
	Issuer string
	// TokenURL is the document's `token_endpoint`. Discover fails without
	// it.
	TokenURL string
	// TokenEndpointAuthMethods is the document's
	// `token_endpoint_auth_methods_supported`; empty when it names none,
	// which means client_secret_basic only (RFC 8414 §2).
	TokenEndpointAuthMethods []string
}

// AuthStyle is how a client secret should be sent to the token endpoint:
// see the function [AuthStyle].
func (md *ProviderMetadata) AuthStyle() oauth2.AuthStyle {
	return AuthStyle(md.TokenEndpointAuthMethods)
}

// AuthStyle is how a client secret should be sent to a token endpoint
// whose document names methods as its
// `token_endpoint_auth_methods_supported`: in the Authorization header
// (client_secret_basic, the default every provider must accept) unless
// methods names client_secret_post and not client_secret_basic.
func AuthStyle(methods []string) oauth2.AuthStyle {
	if slices.Contains(methods, "client_secret_post") && !slices.Contains(methods, "client_secret_basic") {
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleInHeader
}

// IssuerMismatchError is returned by [Discover] when the document found at
// an issuer URL names another issuer. Callers that were given the URL of a
// server rather than of a provider (`nsauth token` is given the API URL)
// may run Discover again on Named, which must then name itself. It is
// [oidcdiscovery.IssuerMismatchError].
type IssuerMismatchError = oidcdiscovery.IssuerMismatchError

// Discover fetches issuer + "/.well-known/openid-configuration" and returns
// where the provider's token endpoint is. The document must name exactly
// issuer as its `issuer` (a trailing slash counts), or the error is an
// [*IssuerMismatchError]: a document must not send credentials to another
// provider's endpoint. The token endpoint must be https when the issuer is.
//
// client makes the request; nil means [NewHTTPClient]. Redirects are not
// followed by that client (a redirected document is an error, not
// something to chase), and the answer is read up to 1 MiB.
//
// Deprecated: use [oidcdiscovery.Discover] with
// [oidcdiscovery.TokenEndpoint] required; this is that function, and its
// errors are that function's.
func Discover(ctx context.Context, issuer string, client *http.Client) (*ProviderMetadata, error) {
	md, err := discover(ctx, issuer, client)
	if err != nil {
		return nil, err
	}
	return &ProviderMetadata{Issuer: md.Issuer, TokenURL: md.TokenEndpoint, TokenEndpointAuthMethods: md.TokenEndpointAuthMethodsSupported}, nil
}

// discover runs [oidcdiscovery.Discover] with the token endpoint required
// and, for a nil client, [NewHTTPClient].
func discover(ctx context.Context, issuer string, client *http.Client) (*oidcdiscovery.ProviderMetadata, error) {
	if client == nil {
		client = NewHTTPClient()
	}
	return oidcdiscovery.Discover(ctx, issuer, oidcdiscovery.Options{HTTPClient: client, Require: []string{oidcdiscovery.TokenEndpoint}})
}
