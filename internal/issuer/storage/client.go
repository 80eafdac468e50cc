package storage

import (
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/redirect"
	"github.com/nsauth/nsauth/internal/store"
)

// Client is the library's view of an app (a stored client): confidential
// (a secret, client_secret_basic or _post) or public (none, PKCE
// required), using the code flow, and refreshing or the device flow when
// its grant types say so.
//
// The broker's own client (Config.ClientID, nsauth-cli) keeps the rules it
// always had: any loopback redirect URI (any port and path) and the
// server-wide AllowedRedirectURIs. Every other app's redirect URIs are its
// own, matched exactly, a native app's loopback URIs on any port
// (redirect.MatchApp).
type Client struct {
	stored *store.Client
	// broker marks the broker's own client.
	broker bool
	// serverRedirects are the server-wide AllowedRedirectURIs (a set, and
	// in their order), which only the broker's client may use.
	serverRedirects    map[string]bool
	serverRedirectList []string
	accessTTL          time.Duration
	refreshTTL         time.Duration
	allowedScopes      map[string]bool
	loginURL           string
	// requestedRedirect is the redirect URI of the current authorize
	// request when it passed AllowRedirect: the library then finds it
	// registered.
	requestedRedirect string
}

var _ op.Client = (*Client)(nil)

// Stored is the app as stored.
func (c *Client) Stored() *store.Client { return c.stored }

func (c *Client) GetID() string { return c.stored.ID }

func (c *Client) RedirectURIs() []string {
	uris := c.stored.RedirectURIs
	if c.broker {
		uris = append(slices.Clone(uris), c.serverRedirectList...)
	}
	if c.requestedRedirect != "" && !slices.Contains(uris, c.requestedRedirect) {
		return append(slices.Clone(uris), c.requestedRedirect)
	}
	return uris
}

func (c *Client) PostLogoutRedirectURIs() []string { return c.stored.PostLogoutRedirectURIs }

// ApplicationType is native for every app: the library then accepts the
// https and loopback redirect URIs registered; which ones an authorize
// request may use is decided first, by AllowRedirect.
func (c *Client) ApplicationType() op.ApplicationType { return op.ApplicationTypeNative }

// AuthMethod is none for a public app (it proves itself with PKCE), basic
// otherwise (the library accepts the secret in the form too).
func (c *Client) AuthMethod() oidc.AuthMethod {
	if c.stored.Public {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

func (c *Client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *Client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// IDTokenLifetime is the app's access token lifetime, as for the server.
func (c *Client) IDTokenLifetime() time.Duration       { return c.accessTTL }
func (c *Client) DevMode() bool                        { return false }
func (c *Client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *Client) ClockSkew() time.Duration             { return 0 }

// GrantTypes are the app's; a row without any (which the store does not
// write) has store.DefaultAppGrantTypes, or for the broker's client
// store.BrokerGrantTypes.
func (c *Client) GrantTypes() []oidc.GrantType {
	stored := c.stored.GrantTypes
	switch {
	case len(stored) > 0:
	case c.broker:
		stored = store.BrokerGrantTypes
	default:
		stored = store.DefaultAppGrantTypes
	}
	out := make([]oidc.GrantType, len(stored))
	for i, g := range stored {
		out[i] = oidc.GrantType(g)
	}
	return out
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

// IsScopeAllowed admits non-standard scopes only when the server allows
// them and the app's scopes (if it lists any) include them; the library
// always admits the standard OpenID scopes, which PermitsScope narrows.
func (c *Client) IsScopeAllowed(scope string) bool {
	return (c.allowedScopes[scope] || scope == ScopeGroups) && (len(c.stored.Scopes) == 0 || slices.Contains(c.stored.Scopes, scope))
}

// PermitsScope reports whether the app may be granted scope: openid
// always; any other scope the server supports when the app lists none,
// else only those it lists.
func (c *Client) PermitsScope(scope string) bool {
	switch {
	case scope == oidc.ScopeOpenID:
		return true
	case len(c.stored.Scopes) > 0:
		return slices.Contains(c.stored.Scopes, scope) && (standardScope(scope) || c.allowedScopes[scope])
	}
	return standardScope(scope) || c.allowedScopes[scope]
}

func standardScope(s string) bool {
	switch s {
	case oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopePhone, oidc.ScopeAddress, oidc.ScopeOfflineAccess, ScopeGroups:
		return true
	}
	return false
}

// AllowRedirect reports whether the current authorize request may use
// uri, and if so lets it (the library then finds it registered). The
// broker's client may use what the AuthService itself accepts (a loopback
// URI on any port and path, or a server-wide allowed one); any other app
// only its own redirect URIs (redirect.MatchApp).
func (c *Client) AllowRedirect(uri string) bool {
	ok := redirect.MatchApp(uri, c.stored.RedirectURIs, c.stored.Native)
	if c.broker && !ok {
		ok = redirect.ValidateURI(uri, c.serverRedirects) == nil
	}
	if ok {
		c.requestedRedirect = uri
	}
	return ok
}

// Audiences are the audiences (RFC 8707 resources) the app may ask its
// access tokens to be issued for, besides the server's own.
func (c *Client) Audiences() []string { return c.stored.Audiences }

// lifetimes are the app's token lifetimes.
func (c *Client) lifetimes() (access, refresh time.Duration) { return c.accessTTL, c.refreshTTL }
