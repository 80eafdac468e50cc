package tokensource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/oauth2"
)

// ProviderMetadata is what [Discover] reads from a provider's discovery
// document (OpenID Connect Discovery 1.0 §3, RFC 8414 §2).
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
// in the Authorization header (client_secret_basic, the default every
// provider must accept) unless the document names client_secret_post and
// not client_secret_basic.
func (md *ProviderMetadata) AuthStyle() oauth2.AuthStyle {
	if slices.Contains(md.TokenEndpointAuthMethods, "client_secret_post") && !slices.Contains(md.TokenEndpointAuthMethods, "client_secret_basic") {
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleInHeader
}

// IssuerMismatchError is returned by [Discover] when the document found at
// an issuer URL names another issuer. Callers that were given the URL of a
// server rather than of a provider (`nsauth token` is given the API URL)
// may run Discover again on Named, which must then name itself.
type IssuerMismatchError struct {
	// URL is the issuer URL Discover was given, and Named is the `issuer`
	// its document names instead.
	URL, Named string
}

func (e *IssuerMismatchError) Error() string {
	return fmt.Sprintf("the discovery document at %s names the issuer %q, not %q; the issuer URL must be given exactly as the provider spells it",
		discoveryURL(e.URL), e.Named, e.URL)
}

// maxDiscoveryBytes bounds the discovery document; real ones are a few KiB.
const maxDiscoveryBytes = 1 << 20

// Discover fetches issuer + "/.well-known/openid-configuration" and returns
// where the provider's token endpoint is. The document must name exactly
// issuer as its `issuer` (a trailing slash counts), or the error is an
// [*IssuerMismatchError]: a document must not send credentials to another
// provider's endpoint. The token endpoint must be https when the issuer is.
//
// client makes the request; nil means [NewHTTPClient]. Redirects are not
// followed by that client (a redirected document is an error, not
// something to chase), and the answer is read up to 1 MiB.
func Discover(ctx context.Context, issuer string, client *http.Client) (*ProviderMetadata, error) {
	if err := checkEndpointURL(issuer, ""); err != nil {
		return nil, fmt.Errorf("issuer %w", err)
	}
	if strings.Contains(issuer, "?") {
		return nil, fmt.Errorf("issuer %q must not contain a query", issuer)
	}
	if client == nil {
		client = NewHTTPClient()
	}
	docURL := discoveryURL(issuer)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return nil, fmt.Errorf("discovery at %s: %w", docURL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err) // *url.Error names the URL
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, fmt.Errorf("discovery at %s: HTTP %d, a redirect, which is not followed", docURL, resp.StatusCode)
	default:
		return nil, fmt.Errorf("discovery at %s: HTTP %d", docURL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("discovery at %s: reading the answer: %w", docURL, err)
	}
	if len(body) > maxDiscoveryBytes {
		return nil, fmt.Errorf("discovery at %s: the answer is larger than %d bytes", docURL, maxDiscoveryBytes)
	}
	var doc struct {
		Issuer      *string  `json:"issuer"`
		TokenURL    *string  `json:"token_endpoint"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	}
	// The body is never quoted: it is the server's text, maybe a web page.
	if err := json.Unmarshal(body, &doc); err != nil || doc.Issuer == nil {
		return nil, fmt.Errorf("discovery at %s: the answer is not a discovery document", docURL)
	}
	if *doc.Issuer != issuer {
		return nil, &IssuerMismatchError{URL: issuer, Named: *doc.Issuer}
	}
	md := &ProviderMetadata{Issuer: issuer, TokenEndpointAuthMethods: doc.AuthMethods}
	if doc.TokenURL != nil {
		md.TokenURL = *doc.TokenURL
	}
	scheme := ""
	if strings.HasPrefix(issuer, "https:") {
		scheme = "https"
	}
	if err := checkEndpointURL(md.TokenURL, scheme); err != nil {
		return nil, fmt.Errorf("discovery at %s: token_endpoint %w", docURL, err)
	}
	return md, nil
}

func discoveryURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
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
