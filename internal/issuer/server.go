package issuer

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/redirect"
	"github.com/nsauth/nsauth/internal/store"
)

// server is the library's LegacyServer with the methods we do differently:
// stricter authorize requests, loopback redirect URIs with any port and
// path (as the AuthService accepts them), and token responses whose access
// tokens we sign ourselves (RFC 9068). It also serves end-session
// (endsession.go), which the library's Server interface cannot: that
// endpoint may have to answer with a page rather than a redirect.
type server struct {
	*op.LegacyServer
	iss *Issuer
}

// Bounds on authorize request fields: far above what honest clients send.
// The state and redirect URI bounds are the AuthService's too.
const (
	maxStateLen      = redirect.MaxStateLen
	maxNonceLen      = 512
	maxLoginHintLen  = 256
	maxScopes        = 32
	maxScopeLen      = 128
	maxRedirectLen   = redirect.MaxURILen
	maxChallengeLen  = 128
	maxIDTokenHint   = 16 << 10
	maxClientIDLen   = 128
	maxRefreshLength = 512
)

// VerifyAuthRequest finds the client and, when the redirect URI is one the
// AuthService itself would accept (a loopback URI on any port, or an
// allowed one), lets the client use it for this request.
func (s *server) VerifyAuthRequest(ctx context.Context, r *op.Request[oidc.AuthRequest]) (*op.ClientRequest[oidc.AuthRequest], error) {
	if len(r.Data.ClientID) > maxClientIDLen || len(r.Data.RedirectURI) > maxRedirectLen || len(r.Data.IDTokenHint) > maxIDTokenHint {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("the request is too large")
	}
	cr, err := s.LegacyServer.VerifyAuthRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	if c, ok := cr.Client.(*client); ok && r.Data.RedirectURI != "" {
		if redirect.ValidateURI(r.Data.RedirectURI, s.iss.allowedRedirects) == nil {
			c.requestedRedirect = r.Data.RedirectURI
		}
	}
	return cr, nil
}

// Authorize refuses what we do not support before the request is stored:
// anything but the code flow with query responses, PKCE methods other than
// S256, no PKCE from a public client (or from any client when
// Config.RequirePKCE is set), prompt=none (there are no browser sessions
// to answer it from) and oversized values. Its errors reach the client's
// redirect URI.
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
	case d.CodeChallenge == "" && s.iss.cfg.RequirePKCE:
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE is required: send a code_challenge with code_challenge_method=S256")
	case slices.Contains(d.Prompt, oidc.PromptNone):
		return nil, oidc.ErrLoginRequired().WithDescription("there is no session; the user must log in")
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
	return s.LegacyServer.Authorize(ctx, r)
}

// VerifyClient authenticates the client. A failed authentication answers
// 401, as RFC 6749 §5.2 requires (the library would answer 400). A client
// id that names no client is recorded here, where the library looked it up
// (a wrong secret is recorded by AuthorizeClientIDSecret).
func (s *server) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	c, err := s.LegacyServer.VerifyClient(ctx, r)
	if errors.Is(err, errUnknownClient) {
		err = s.iss.refuseClient(ctx, "", err)
	}
	var oe *oidc.Error
	if errors.As(err, &oe) && oe.ErrorType == oidc.InvalidClient {
		return nil, op.NewStatusError(oe, http.StatusUnauthorized)
	}
	return c, err
}

// CodeExchange redeems an authorization code (single use: a replay revokes
// what the code produced) and answers with our tokens.
func (s *server) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	ar, err := s.iss.storage.redeemCode(ctx, r.Data.Code, r.Client.GetID())
	if err != nil {
		return nil, err
	}
	// The verifier is checked whenever the request carried a challenge, for
	// confidential clients too, so PKCE cannot be stripped off.
	if err := op.AuthorizeCodeChallenge(r.Data.CodeVerifier, ar.GetCodeChallenge()); err != nil {
		return nil, err
	}
	if s.iss.cfg.RequirePKCE && ar.CodeChallenge == "" {
		// Issued before PKCE was required, or by a replica that does not
		// require it: whoever holds it proves nothing more than that.
		return nil, oidc.ErrInvalidGrant().WithDescription("PKCE is required: the code was issued without a code_challenge")
	}
	if r.Client.GetID() != ar.ClientID || r.Data.RedirectURI != ar.RedirectURI {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code was issued to another client or redirect URI")
	}
	resp, err := s.iss.tokenResponse(ctx, ar, r.Client, r.Data.Code, "")
	if err != nil {
		return nil, err
	}
	if err := s.iss.events.Record(ctx, audit.Event{Type: audit.CodeExchanged, Subject: ar.UserID, Username: ar.username, ClientID: ar.ClientID,
		Refs: s.iss.events.Refs(audit.RefCode, r.Data.Code, audit.RefGrant, ar.ID, audit.RefToken, resp.AccessToken, audit.RefRefresh, resp.RefreshToken)}); err != nil {
		return nil, errAuditUnavailable(err)
	}
	if err := s.iss.storage.DeleteAuthRequest(ctx, ar.ID); err != nil {
		s.iss.log.WarnContext(ctx, "deleting a redeemed auth request failed", "error", err)
	}
	return op.NewResponse(resp), nil
}

// RefreshToken rotates a refresh token: the presented one is used up, a new
// one is returned, and presenting a used one again revokes the family
// (unless it is the same client's retry within the reuse grace). The
// token is looked up knowing the authenticated client, which the
// library's lookup does not pass on.
func (s *server) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	if len(r.Data.RefreshToken) > maxRefreshLength {
		return nil, oidc.ErrInvalidGrant()
	}
	rr, err := s.iss.storage.refreshRequest(ctx, r.Data.RefreshToken, r.Client.GetID())
	if err != nil {
		return nil, err
	}
	if r.Client.GetID() != rr.ClientID {
		return nil, oidc.ErrInvalidGrant()
	}
	if err := op.ValidateRefreshTokenScopes(r.Data.Scopes, rr); err != nil {
		return nil, err
	}
	resp, err := s.iss.tokenResponse(ctx, rr, r.Client, "", r.Data.RefreshToken)
	if err != nil {
		return nil, err
	}
	e := audit.Event{Type: audit.RefreshRotated, Subject: rr.UserID, Username: rr.username, ClientID: rr.ClientID,
		Refs: s.iss.events.Refs(audit.RefRefresh, r.Data.RefreshToken, refSuccessor, resp.RefreshToken, audit.RefGrant, rr.Grant.ID, audit.RefToken, resp.AccessToken)}
	if rr.retried {
		e.Reason = "retry_within_grace"
	}
	if err := s.iss.events.Record(ctx, e); err != nil {
		return nil, errAuditUnavailable(err)
	}
	return op.NewResponse(resp), nil
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
		d.TokenEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost}
		d.TokenEndpointAuthSigningAlgValuesSupported = nil
		d.IntrospectionEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost}
		d.IntrospectionEndpointAuthSigningAlgValuesSupported = nil
		d.RevocationEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost}
		d.RevocationEndpointAuthSigningAlgValuesSupported = nil
		d.ClaimsSupported = []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "amr", "at_hash", "c_hash",
			"azp", "client_id", "scope", "jti", "name", "preferred_username", "email", sessionIDClaim}
		d.EndSessionEndpoint = s.iss.cfg.Issuer + endSessionPath
		d.RequestParameterSupported = false
		d.RequestURIParameterSupported = false
	}
	return resp, nil
}

// tokenRequest is what a token response is built from: a redeemed auth
// request or a refresh-token request.
type tokenRequest interface {
	op.IDTokenRequest
	grant() store.Grant
	issued() *issuance
}

// tokenResponse issues an access token (and, when the grant includes
// offline_access, a rotated or first refresh token, and with openid an ID
// token) for req.
func (i *Issuer) tokenResponse(ctx context.Context, req tokenRequest, c op.Client, code, currentRefresh string) (*oidc.AccessTokenResponse, error) {
	scopes := req.GetScopes()
	var (
		jti, refresh string
		exp          time.Time
		err          error
	)
	wantRefresh := currentRefresh != "" ||
		(slices.Contains(scopes, oidc.ScopeOfflineAccess) && slices.Contains(c.GrantTypes(), oidc.GrantTypeRefreshToken))
	if wantRefresh {
		jti, refresh, exp, err = i.storage.CreateAccessAndRefreshTokens(ctx, req, currentRefresh)
	} else {
		jti, exp, err = i.storage.CreateAccessToken(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	access, err := i.signAccessToken(ctx, req, c.GetID(), jti, exp)
	if err != nil {
		return nil, err
	}
	resp := &oidc.AccessTokenResponse{
		AccessToken:  access,
		TokenType:    oidc.BearerToken,
		RefreshToken: refresh,
		ExpiresIn:    uint64(max(0, exp.Sub(i.cfg.Now()).Seconds())),
		Scope:        scopes,
	}
	if slices.Contains(scopes, oidc.ScopeOpenID) {
		resp.IDToken, err = op.CreateIDToken(ctx, i.cfg.Issuer, req, c.IDTokenLifetime(), access, code, i.storage, c)
		if err != nil {
			return nil, internalError("signing the ID token", err)
		}
	}
	return resp, nil
}

// internalError hides err from the client (it is logged by the library
// through the error's parent) behind a generic server_error.
func internalError(what string, err error) *oidc.Error {
	return oidc.ErrServerError().WithDescription("internal error").WithParent(errors.Join(errors.New(what), err))
}
