package issuer

import (
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/store"
)

// DefaultClientID is the id of the client the broker acts as.
const DefaultClientID = "nsauth-cli"

// client is the library's view of a stored client: a native application
// (so loopback redirect URIs are judged by RFC 8252 rules) that
// authenticates with a secret, uses the code flow or the device flow, and
// may refresh.
type client struct {
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

var _ op.Client = (*client)(nil)

func (c *client) GetID() string { return c.stored.ID }

func (c *client) RedirectURIs() []string {
	if c.requestedRedirect != "" && !slices.Contains(c.redirectURIs, c.requestedRedirect) {
		return append(slices.Clone(c.redirectURIs), c.requestedRedirect)
	}
	return c.redirectURIs
}

func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeNative }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration       { return c.idTokenLifetime }
func (c *client) DevMode() bool                        { return false }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }

func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeDeviceCode}
}

func (c *client) LoginURL(authRequestID string) string {
	return c.loginURL + "?" + url.Values{"authRequestID": {authRequestID}}.Encode()
}

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}

// IsScopeAllowed admits non-standard scopes only when configured; the
// library always admits the standard OpenID scopes.
func (c *client) IsScopeAllowed(scope string) bool { return c.allowedScopes[scope] }
