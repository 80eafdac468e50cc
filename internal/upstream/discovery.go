package upstream

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
)

// Metadata is the subset of an OpenID Provider's discovery document
// (OpenID Connect Discovery 1.0 §3, RFC 8414) that the broker uses.
type Metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint,omitempty"`
	RevocationEndpoint                string   `json:"revocation_endpoint,omitempty"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint,omitempty"`
	EndSessionEndpoint                string   `json:"end_session_endpoint,omitempty"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint,omitempty"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported,omitempty"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported,omitempty"`

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

// maxDiscoveryBytes bounds the discovery document; real ones are a few KiB.
const maxDiscoveryBytes = 1 << 20

// DiscoveryURL returns the discovery document URL for an issuer base URL.
func DiscoveryURL(baseURL string) string {
	return strings.TrimSuffix(baseURL, "/") + "/.well-known/openid-configuration"
}

func fetchMetadata(ctx context.Context, client *http.Client, baseURL, expectedIssuer string) (*Metadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, DiscoveryURL(baseURL), nil)
	if err != nil {
		return nil, fmt.Errorf("building discovery request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, unavailable("fetching discovery document: %v", redactURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, unavailable("fetching discovery document: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBytes+1))
	if err != nil {
		return nil, unavailable("reading discovery document: %v", err)
	}
	if len(body) > maxDiscoveryBytes {
		return nil, unavailable("discovery document is larger than %d bytes", maxDiscoveryBytes)
	}
	var md Metadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, unavailable("discovery document is not valid JSON")
	}
	if md.Issuer != expectedIssuer {
		return nil, fmt.Errorf("%w: discovered %q, expected %q", ErrIssuerMismatch, md.Issuer, expectedIssuer)
	}
	if err := md.checkEndpoints(); err != nil {
		return nil, err
	}
	if err := md.prepareAuthorize(); err != nil {
		return nil, unavailable("discovery document: authorization_endpoint: %v", err)
	}
	return &md, nil
}

// checkEndpoints checks every endpoint the broker calls or sends users to.
// The required ones must be absolute http(s) URLs; an unusable optional
// one is treated as absent. Under an https issuer each must be https too,
// as pkg/authn and pkg/tokensource require of theirs: the broker posts its
// client secret, codes and refresh tokens to these URLs and sends browsers
// to the authorization endpoint, and an http one would hand them to anyone
// on the path. Such a document is refused whole ([ErrInsecureEndpoint]),
// naming the field, rather than used without the endpoint: it is the
// provider's configuration that is wrong.
func (md *Metadata) checkEndpoints() error {
	httpsOnly := md.httpsOnly()
	for _, ep := range []struct {
		name     string
		value    *string
		required bool
	}{
		{"authorization_endpoint", &md.AuthorizationEndpoint, true},
		{"token_endpoint", &md.TokenEndpoint, true},
		{"jwks_uri", &md.JWKSURI, true},
		{"userinfo_endpoint", &md.UserinfoEndpoint, false},
		{"revocation_endpoint", &md.RevocationEndpoint, false},
		{"introspection_endpoint", &md.IntrospectionEndpoint, false},
		{"end_session_endpoint", &md.EndSessionEndpoint, false},
		{"device_authorization_endpoint", &md.DeviceAuthorizationEndpoint, false},
	} {
		if !ep.required && *ep.value == "" {
			continue
		}
		err := checkEndpoint(*ep.value, httpsOnly)
		switch {
		case errors.Is(err, ErrInsecureEndpoint):
			return fmt.Errorf("discovery document: %s %q: %w", ep.name, *ep.value, err)
		case err != nil && ep.required:
			return unavailable("discovery document: %s: %v", ep.name, err)
		case err != nil:
			*ep.value = "" // an unusable optional endpoint is treated as absent
		}
	}
	return nil
}

// httpsOnly reports whether the provider's URLs must be https: when its
// issuer is.
func (md *Metadata) httpsOnly() bool {
	return strings.HasPrefix(md.Issuer, "https:")
}

// checkEndpoint accepts an absolute http(s) URL without user info or
// fragment, and, when httpsOnly, only an https one (the error then wraps
// [ErrInsecureEndpoint]).
func checkEndpoint(raw string, httpsOnly bool) error {
	if raw == "" {
		return fmt.Errorf("missing")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("not an absolute http(s) URL")
	}
	if httpsOnly && u.Scheme != "https" {
		return ErrInsecureEndpoint
	}
	return nil
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
