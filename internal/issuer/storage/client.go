package storage

import (
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/store"
)

// Client is the library's view of a stored client: a native application
// (so loopback redirect URIs are judged by RFC 8252 rules) that
// authenticates with a secret, uses the code flow or the device flow, and
// may refresh.
type Client struct {
	stored          *store.Client
	redirectURIs    []string
	idTokenLifetime time.Duration
	allowedScopes   map[string]bool
	loginURL        string
	// requestedRedirect is the redirect URI of the current authorize
	// request when it passed the AuthService's own redirect URI check
	// (loopback, any port and path; or allowed exactly). The library then
	// finds it registered.
	requestedRedirect string
}

var _ op.Client = (*Client)(nil)

func (c *Client) GetID() string { return c.stored.ID }

func (c *Client) RedirectURIs() []string {
	if c.requestedRedirect != "" && !slices.Contains(c.redirectURIs, c.requestedRedirect) {
		return append(slices.Clone(c.redirectURIs), c.requestedRedirect)
	}
	return c.redirectURIs
}

func (c *Client) PostLogoutRedirectURIs() []string    { return nil }
func (c *Client) ApplicationType() op.ApplicationType { return op.ApplicationTypeNative }
func (c *Client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *Client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *Client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c *Client) IDTokenLifetime() time.Duration       { return c.idTokenLifetime }
func (c *Client) DevMode() bool                        { return false }
func (c *Client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *Client) ClockSkew() time.Duration             { return 0 }

func (c *Client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeDeviceCode}
}

func (c *Client) LoginURL(authRequestID string) string {
	return c.loginURL + "?" + url.Values{"authRequestID": {authRequestID}}.Encode()
}

func (c *Client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}

func (c *Client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}

// IsScopeAllowed admits non-standard scopes only when configured; the
// library always admits the standard OpenID scopes.
func (c *Client) IsScopeAllowed(scope string) bool { return c.allowedScopes[scope] }

// AllowRedirect lets the current authorize request use uri, which passed
// the AuthService's own redirect URI check (loopback, any port and path;
// or allowed exactly): the library then finds it registered.
func (c *Client) AllowRedirect(uri string) { c.requestedRedirect = uri }
