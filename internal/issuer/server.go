package issuer

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/issuer/endsession"
	"github.com/nsauth/nsauth/internal/issuer/grants"
	"github.com/nsauth/nsauth/internal/issuer/storage"
	"github.com/nsauth/nsauth/internal/redirect"
	"github.com/nsauth/nsauth/pkg/authn"
)

// server is the library's LegacyServer with the methods we do differently:
// stricter authorize requests, each app's own redirect URIs (the broker's
// client, loopback ones with any port and path, as the AuthService
// accepts them), requested resources (RFC 8707), `iss` on authorization
// responses (RFC 9207), and token responses whose access tokens we sign
// ourselves (RFC 9068: package storage issues them, package
// grants those of machine clients). End-session is served by package
// endsession, which the library's Server interface cannot: that endpoint
// may have to answer with a page rather than a redirect.
type server struct {
	*op.LegacyServer
	storage *storage.Storage
	// accessTokens checks the provider's own access tokens for
	// introspection (Introspect).
	accessTokens *authn.Verifier
	grants       *grants.Handler
	requirePKCE  bool
	// endSessionURL is advertised by discovery.
	endSessionURL string
}

// Bounds on authorize request fields: far above what honest clients send.
// The state and redirect URI bounds are the AuthService's too.
const (
	maxStateLen     = redirect.MaxStateLen
	maxNonceLen     = 512
	maxLoginHintLen = 256
	maxScopes       = storage.MaxScopes
	maxScopeLen     = storage.MaxScopeLen
	maxRedirectLen  = redirect.MaxURILen
	maxChallengeLen = 128
	maxIDTokenHint  = endsession.MaxIDTokenHint
	maxClientIDLen  = storage.MaxClientIDLen
)

// VerifyAuthRequest finds the client and checks the redirect URI by our
// rule (storage.Client.AllowRedirect: the broker's client, any loopback
// URI or a server-wide allowed one; any other app, its own), which the
// library's check then never widens. A redirect URI the rule refuses is
// answered here, never redirected to.
func (s *server) VerifyAuthRequest(ctx context.Context, r *op.Request[oidc.AuthRequest]) (*op.ClientRequest[oidc.AuthRequest], error) {
	if len(r.Data.ClientID) > maxClientIDLen || len(r.Data.RedirectURI) > maxRedirectLen || len(r.Data.IDTokenHint) > maxIDTokenHint {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("the request is too large")
	}
	cr, err := s.LegacyServer.VerifyAuthRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	if c, ok := cr.Client.(*storage.Client); ok && r.Data.RedirectURI != "" && !c.AllowRedirect(r.Data.RedirectURI) {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("the redirect_uri is not registered for this client")
	}
	return cr, nil
}

// Authorize refuses what we do not support before the request is stored:
// anything but the code flow with query responses, PKCE methods other than
// S256, no PKCE from a public client (or from any client when
// Config.RequirePKCE is set) and oversized values. Its errors reach the
// client's redirect URI. prompt=none is the login page's to answer, from
// the browser session (package authflow).
func (s *server) Authorize(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	d := r.Data
	switch {
	case d.ResponseType != oidc.ResponseTypeCode:
		return nil, &oidc.Error{ErrorType: "unsupported_response_type", Description: "only response_type=code is supported"}
	case d.ResponseMode != "" && d.ResponseMode != oidc.ResponseModeQuery:
		return nil, oidc.ErrInvalidRequest().WithDescription("only response_mode=query is supported")
	case d.CodeChallenge != "" && d.CodeChallengeMethod != oidc.CodeChallengeMethodS256:
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	case d.CodeChallenge == "" && r.Client.AuthMethod() == oidc.AuthMethodNone:
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE is required for public clients")
	case d.CodeChallenge == "" && s.requirePKCE:
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE is required: send a code_challenge with code_challenge_method=S256")
	case len(d.State) > maxStateLen, len(d.Nonce) > maxNonceLen, len(d.LoginHint) > maxLoginHintLen,
		len(d.CodeChallenge) > maxChallengeLen, len(d.Scopes) > maxScopes:
		return nil, oidc.ErrInvalidRequest().WithDescription("a request parameter is too long")
	case !utf8.ValidString(d.State + d.Nonce + d.LoginHint):
		return nil, oidc.ErrInvalidRequest().WithDescription("request parameters must be UTF-8")
	}
	for _, sc := range d.Scopes {
		if len(sc) > maxScopeLen {
			return nil, oidc.ErrInvalidScope().WithDescription("a scope is too long")
		}
	}
	if !slices.Contains(d.Scopes, oidc.ScopeOpenID) {
		return nil, oidc.ErrInvalidScope().WithDescription("the openid scope is required")
	}
	if !op.ValidateGrantType(r.Client, oidc.GrantTypeCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("the client may not use the authorization code flow")
	}
	if c, ok := r.Client.(*storage.Client); ok {
		d.Scopes = slices.DeleteFunc(d.Scopes, func(sc string) bool { return !c.PermitsScope(sc) })
	}
	resources, err := s.storage.Resources(r.Client, requestedResources(r.Form))
	if err != nil {
		return nil, err
	}
	// The library's Authorize, with the resources: the hint is checked
	// (an invalid one is login_required), and the request sealed.
	if _, err := op.ValidateAuthReqIDTokenHint(ctx, d.IDTokenHint, s.Provider().IDTokenHintVerifier(ctx)); err != nil {
		return nil, err
	}
	if d.RequestParam != "" {
		return nil, oidc.ErrRequestNotSupported()
	}
	req, err := s.storage.CreatePendingAuthRequest(ctx, d, resources)
	if err != nil {
		return nil, oidc.DefaultToServerError(err, "unable to save auth request")
	}
	return op.NewRedirect(r.Client.LoginURL(req.GetID())), nil
}

// requestedResources are the resources an authorize request names: each
// `resource` (RFC 8707), and each space-separated value of each
// `audience`.
func requestedResources(form url.Values) []string {
	out := slices.Clone(form["resource"])
	for _, a := range form["audience"] {
		out = append(out, strings.Fields(a)...)
	}
	return out
}

// authorizationResponses adds the issuer's identifier (RFC 9207 `iss`) to
// every authorization response h sends to a client's redirect URI: the
// library's error redirects, and ours. A redirect to the login page
// (loginURL) is not a response, and is left alone.
func authorizationResponses(issuer, loginURL string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&issWriter{ResponseWriter: w, issuer: issuer, loginURL: loginURL}, r)
	})
}

// issWriter rewrites the Location of a redirect as it is written.
type issWriter struct {
	http.ResponseWriter
	issuer, loginURL string
	wrote            bool
}

func (w *issWriter) WriteHeader(code int) {
	if !w.wrote && code >= 300 && code < 400 {
		if loc := w.Header().Get("Location"); loc != "" && !strings.HasPrefix(loc, w.loginURL+"?") {
			w.Header().Set("Location", redirect.AddIssuer(loc, w.issuer))
		}
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *issWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *issWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// VerifyClient authenticates the client. A failed authentication answers
// 401, as RFC 6749 §5.2 requires (the library would answer 400). A client
// id that names no client is recorded here, where the library looked it up
// (a wrong secret is recorded by AuthorizeClientIDSecret).
func (s *server) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	c, err := s.LegacyServer.VerifyClient(ctx, r)
	if errors.Is(err, storage.ErrUnknownClient) {
		err = s.storage.RefuseClient(ctx, "", err)
	}
	var oe *oidc.Error
	if errors.As(err, &oe) && oe.ErrorType == oidc.InvalidClient {
		return nil, op.NewStatusError(oe, http.StatusUnauthorized)
	}
	return c, err
}

// Introspect answers RFC 7662 introspection as the library does (the
// resource client authenticated by its secret, the token checked, then
// described by the storage when it is active for that client), with the
// token checked by pkg/authn: decoded once and verified with the key's RSA
// modulus prepared, where the library's verifier decodes it twice and
// rebuilds the modulus on every call. The check is the library's: the
// issuer, an allowed algorithm, the signature by a published key, and
// expiry with no tolerance; and it also wants an access token's typ and
// this provider's audience, which every access token it signs has (an ID
// token, refused here, was refused by the storage before). A resource
// client that does not authenticate is answered 401 invalid_client, as
// RFC 7662 §2.3 asks. A client assertion is left to the library.
func (s *server) Introspect(ctx context.Context, r *op.Request[op.IntrospectionRequest]) (*op.Response, error) {
	cc := r.Data.ClientCredentials
	if cc.ClientAssertion != "" {
		return s.LegacyServer.Introspect(ctx, r)
	}
	if err := s.storage.AuthorizeClientIDSecret(ctx, cc.ClientID, cc.ClientSecret); err != nil {
		var oe *oidc.Error
		if errors.As(err, &oe) && oe.ErrorType == oidc.ServerError {
			return nil, oidc.ErrServerError().WithParent(err)
		}
		// RFC 7662 §2.3 and RFC 6749 §5.2: 401 invalid_client (the
		// library answers 400 unauthorized_client).
		return nil, op.NewStatusError(oidc.ErrInvalidClient().WithDescription("client authentication failed").WithParent(err), http.StatusUnauthorized)
	}
	resp := new(oidc.IntrospectionResponse)
	claims, err := s.accessTokens.Verify(ctx, r.Data.Token)
	if err != nil {
		return op.NewResponse(resp), nil
	}
	if err := s.storage.SetIntrospectionFromToken(ctx, resp, claims.ID, claims.Subject, cc.ClientID); err != nil {
		return op.NewResponse(resp), nil
	}
	resp.Active = true
	return op.NewResponse(resp), nil
}

// UserInfo answers the userinfo endpoint as the library does, with the
// access token checked as Introspect checks it (pkg/authn, the keys the
// provider publishes): a token that does not verify is 401, one that is
// no longer active for its user 403.
func (s *server) UserInfo(ctx context.Context, r *op.Request[oidc.UserInfoRequest]) (*op.Response, error) {
	claims, err := s.accessTokens.Verify(ctx, r.Data.AccessToken)
	if err != nil {
		return nil, op.NewStatusError(oidc.ErrAccessDenied().WithDescription("access token invalid"), http.StatusUnauthorized)
	}
	info := new(oidc.UserInfo)
	if err := s.storage.SetUserinfoFromToken(ctx, info, claims.ID, claims.Subject, r.Header.Get("origin")); err != nil {
		return nil, op.NewStatusError(err, http.StatusForbidden)
	}
	return op.NewResponse(info), nil
}

// CodeExchange redeems an authorization code (single use: a replay revokes
// what the code produced) and answers with our tokens.
func (s *server) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	return s.storage.CodeExchange(ctx, r)
}

// RefreshToken rotates a refresh token (storage's RefreshExchange).
func (s *server) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	return s.storage.RefreshExchange(ctx, r)
}

// DeviceAuthorization starts a device authorization (storage's
// StartDeviceAuthorization).
func (s *server) DeviceAuthorization(ctx context.Context, r *op.ClientRequest[oidc.DeviceAuthorizationRequest]) (*op.Response, error) {
	return s.storage.StartDeviceAuthorization(ctx, r)
}

// DeviceToken answers a device's poll (storage's DeviceToken).
func (s *server) DeviceToken(ctx context.Context, r *op.ClientRequest[oidc.DeviceAccessTokenRequest]) (*op.Response, error) {
	return s.storage.DeviceToken(ctx, r)
}

// ClientCredentialsExchange issues a machine client's access token
// (package grants).
func (s *server) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	return s.grants.ClientCredentials(ctx, r)
}

// JWTProfile is not offered: clients authenticate with secrets, not keys.
func (s *server) JWTProfile(context.Context, *op.Request[oidc.JWTProfileGrantRequest]) (*op.Response, error) {
	return nil, op.NewStatusError(oidc.ErrUnsupportedGrantType().WithDescription("the jwt-bearer grant is not supported"), http.StatusBadRequest)
}

// Discovery advertises what we really support, which is less than the
// library's defaults.
func (s *server) Discovery(ctx context.Context, r *op.Request[struct{}]) (*op.Response, error) {
	resp, err := s.LegacyServer.Discovery(ctx, r)
	if err != nil {
		return nil, err
	}
	if d, ok := resp.Data.(*oidc.DiscoveryConfiguration); ok {
		d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
		d.ResponseModesSupported = []string{string(oidc.ResponseModeQuery)}
		d.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeDeviceCode, oidc.GrantTypeClientCredentials, oidc.GrantTypeTokenExchange}
		d.TokenEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodNone}
		d.TokenEndpointAuthSigningAlgValuesSupported = nil
		d.IntrospectionEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost}
		d.IntrospectionEndpointAuthSigningAlgValuesSupported = nil
		d.RevocationEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost}
		d.RevocationEndpointAuthSigningAlgValuesSupported = nil
		d.ClaimsSupported = []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "amr", "at_hash", "c_hash",
			"azp", "client_id", "scope", "jti", "name", "preferred_username", "email", storage.SessionIDClaim}
		d.EndSessionEndpoint = s.endSessionURL
		d.RequestParameterSupported = false
		d.RequestURIParameterSupported = false
		d.BackChannelLogoutSupported = true
		d.BackChannelLogoutSessionSupported = true
		resp.Data = discovery{DiscoveryConfiguration: d, AuthorizationResponseISSParameterSupported: true}
	}
	return resp, nil
}

// discovery is the library's discovery document with what it lacks.
type discovery struct {
	*oidc.DiscoveryConfiguration
	// AuthorizationResponseISSParameterSupported: every authorization
	// response carries `iss` (RFC 9207 §3).
	AuthorizationResponseISSParameterSupported bool `json:"authorization_response_iss_parameter_supported"`
}
