// Package authservice implements mgmt.v1alpha1.AuthService: the five RPCs
// Neosync clients call, plus nsauth's RevokeCli and device login
// (StartDeviceLogin, PollDeviceLogin). It is the only place where
// errors become Connect codes for this service.
package authservice

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/redirect"
	"github.com/nsauth/nsauth/internal/stringset"
	"github.com/nsauth/nsauth/internal/upstream"
	"github.com/nsauth/nsauth/pkg/authn"
)

// Broker is the provider the service talks to. *upstream.Provider
// implements it.
type Broker interface {
	AuthorizeURL(upstream.AuthorizeRequest) (string, error)
	Exchange(ctx context.Context, code, redirectURI, verifier string) (*upstream.Token, error)
	Refresh(ctx context.Context, refreshToken string) (*upstream.Token, error)
	Revoke(ctx context.Context, refreshToken string) (bool, error)
}

// PublicProcedures are the procedures callable without an access token.
var PublicProcedures = []string{
	mgmtv1alpha1connect.AuthServiceGetAuthStatusProcedure,
	mgmtv1alpha1connect.AuthServiceGetAuthorizeUrlProcedure,
	mgmtv1alpha1connect.AuthServiceLoginCliProcedure,
	mgmtv1alpha1connect.AuthServiceRefreshCliProcedure,
	mgmtv1alpha1connect.AuthServiceRevokeCliProcedure,
	mgmtv1alpha1connect.AuthServiceStartDeviceLoginProcedure,
	mgmtv1alpha1connect.AuthServicePollDeviceLoginProcedure,
}

// Config configures a [Service].
type Config struct {
	// Enabled tells clients to send tokens, and makes CheckToken report the
	// verified token. When false, the OAuth RPCs answer FailedPrecondition.
	Enabled bool
	// Broker is the provider. Required when Enabled.
	Broker Broker
	// AllowedRedirectURIs are accepted as redirect_uri in addition to
	// loopback URIs, compared exactly.
	AllowedRedirectURIs []string
	// AllowedScopes, when not empty, is the set of scopes clients may ask
	// for; any other scope is InvalidArgument.
	AllowedScopes []string
	// RequirePKCE refuses GetAuthorizeUrl without an S256 code challenge and
	// LoginCli without a code verifier, both InvalidArgument. The second
	// check matters when the provider does not enforce PKCE itself: a code
	// issued without a challenge is then redeemable by whoever holds it.
	// Default false: Neosync's own CLI sends no PKCE.
	RequirePKCE bool
	// Logger receives one line per failed call. Defaults to discarding.
	Logger *slog.Logger
	// Now is the clock of the device-poll interval. Defaults to time.Now.
	Now func() time.Time
	// MaxDeviceLogins bounds how many device logins are remembered to
	// enforce their polling interval. Defaults to
	// [DefaultMaxDeviceLogins].
	MaxDeviceLogins int
	// Audit records the events of the RPCs (logout, revocation, device
	// approval). Defaults to audit.Nop.
	Audit audit.Recorder
}

// Service implements mgmtv1alpha1connect.AuthServiceHandler.
type Service struct {
	cfg       Config
	redirects map[string]bool
	scopes    map[string]bool
	logger    *slog.Logger
	polls     *pollGate
}

var _ mgmtv1alpha1connect.AuthServiceHandler = (*Service)(nil)

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Enabled && cfg.Broker == nil {
		return nil, errors.New("authservice: a broker is required when auth is enabled")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.Nop
	}
	s := &Service{cfg: cfg, redirects: stringset.Of(cfg.AllowedRedirectURIs), scopes: stringset.Of(cfg.AllowedScopes), logger: cfg.Logger,
		polls: newPollGate(cfg.Now, cfg.MaxDeviceLogins)}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// GetAuthStatus reports whether authentication is enabled.
func (s *Service) GetAuthStatus(context.Context, *connect.Request[mgmtv1alpha1.GetAuthStatusRequest]) (*connect.Response[mgmtv1alpha1.GetAuthStatusResponse], error) {
	return connect.NewResponse(&mgmtv1alpha1.GetAuthStatusResponse{IsEnabled: s.cfg.Enabled}), nil
}

// GetAuthorizeUrl builds the provider's authorize URL for a CLI login.
func (s *Service) GetAuthorizeUrl(ctx context.Context, req *connect.Request[mgmtv1alpha1.GetAuthorizeUrlRequest]) (*connect.Response[mgmtv1alpha1.GetAuthorizeUrlResponse], error) {
	if err := s.requireEnabled(); err != nil {
		return nil, err
	}
	m := req.Msg
	if err := redirect.RequireText("state", m.GetState(), redirect.MaxStateLen); err != nil {
		return nil, invalidArgument(err)
	}
	if err := redirect.ValidateURI(m.GetRedirectUri(), s.redirects); err != nil {
		return nil, invalidArgument(err)
	}
	scope, err := normalizeScope(m.GetScope(), s.scopes)
	if err != nil {
		return nil, invalidArgument(err)
	}
	challenge, method, err := validatePKCEChallenge(m.CodeChallenge, m.CodeChallengeMethod, s.cfg.RequirePKCE)
	if err != nil {
		return nil, invalidArgument(err)
	}
	u, err := s.cfg.Broker.AuthorizeURL(upstream.AuthorizeRequest{
		State:               m.GetState(),
		RedirectURI:         m.GetRedirectUri(),
		Scope:               scope,
		CodeChallenge:       challenge,
		CodeChallengeMethod: method,
	})
	if err != nil {
		return nil, s.providerError(ctx, "GetAuthorizeUrl", err)
	}
	return connect.NewResponse(&mgmtv1alpha1.GetAuthorizeUrlResponse{Url: u}), nil
}

// LoginCli exchanges an authorization code for tokens.
func (s *Service) LoginCli(ctx context.Context, req *connect.Request[mgmtv1alpha1.LoginCliRequest]) (*connect.Response[mgmtv1alpha1.LoginCliResponse], error) {
	if err := s.requireEnabled(); err != nil {
		return nil, err
	}
	m := req.Msg
	if err := requireVisibleASCII("code", m.GetCode(), maxCodeLen); err != nil {
		return nil, invalidArgument(err)
	}
	if err := redirect.ValidateURI(m.GetRedirectUri(), s.redirects); err != nil {
		return nil, invalidArgument(err)
	}
	if err := requirePKCEVerifier(m.CodeVerifier, s.cfg.RequirePKCE); err != nil {
		return nil, invalidArgument(err)
	}
	verifier, err := validatePKCEVerifier(m.CodeVerifier)
	if err != nil {
		// A verifier is a proof of possession, like the code itself: one
		// that cannot be right fails authentication (RFC 7636 §4.6), and the
		// provider is not asked.
		return nil, connect.NewError(connect.CodeUnauthenticated, err)
	}
	tok, err := s.cfg.Broker.Exchange(ctx, m.GetCode(), m.GetRedirectUri(), verifier)
	if err != nil {
		return nil, s.providerError(ctx, "LoginCli", err)
	}
	return connect.NewResponse(&mgmtv1alpha1.LoginCliResponse{AccessToken: toProto(tok)}), nil
}

// RefreshCli runs the refresh-token grant.
func (s *Service) RefreshCli(ctx context.Context, req *connect.Request[mgmtv1alpha1.RefreshCliRequest]) (*connect.Response[mgmtv1alpha1.RefreshCliResponse], error) {
	if err := s.requireEnabled(); err != nil {
		return nil, err
	}
	if err := requireVisibleASCII("refresh_token", req.Msg.GetRefreshToken(), maxRefreshTokenLen); err != nil {
		return nil, invalidArgument(err)
	}
	tok, err := s.cfg.Broker.Refresh(ctx, req.Msg.GetRefreshToken())
	if err != nil {
		return nil, s.providerError(ctx, "RefreshCli", err)
	}
	return connect.NewResponse(&mgmtv1alpha1.RefreshCliResponse{AccessToken: toProto(tok)}), nil
}

// CheckToken confirms the caller's access token, which the authn
// interceptor has already verified, and describes it.
func (s *Service) CheckToken(ctx context.Context, _ *connect.Request[mgmtv1alpha1.CheckTokenRequest]) (*connect.Response[mgmtv1alpha1.CheckTokenResponse], error) {
	if !s.cfg.Enabled {
		return connect.NewResponse(&mgmtv1alpha1.CheckTokenResponse{}), nil
	}
	claims, ok := authn.ClaimsFromContext(ctx)
	if !ok {
		// Only a wiring mistake gets here: never answer "valid" for a token
		// nobody checked.
		s.logger.ErrorContext(ctx, "CheckToken reached without verified claims; is the authn interceptor installed?")
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New(authn.UnauthenticatedMessage))
	}
	exp := claims.ExpiresAt.Unix()
	machine := claims.Machine()
	resp := &mgmtv1alpha1.CheckTokenResponse{
		Subject:   &claims.Subject,
		Scopes:    claims.Scopes,
		ExpiresAt: &exp,
		Issuer:    &claims.Issuer,
		Machine:   &machine,
		Amr:       claims.AMR,
		Groups:    claims.Groups(),
	}
	if claims.ClientID != "" {
		resp.ClientId = &claims.ClientID
	}
	return connect.NewResponse(resp), nil
}

// RevokeCli revokes a refresh token at the provider.
func (s *Service) RevokeCli(ctx context.Context, req *connect.Request[mgmtv1alpha1.RevokeCliRequest]) (*connect.Response[mgmtv1alpha1.RevokeCliResponse], error) {
	if err := s.requireEnabled(); err != nil {
		return nil, err
	}
	if err := requireVisibleASCII("refresh_token", req.Msg.GetRefreshToken(), maxRefreshTokenLen); err != nil {
		return nil, invalidArgument(err)
	}
	revoked, err := s.cfg.Broker.Revoke(ctx, req.Msg.GetRefreshToken())
	if err != nil {
		return nil, s.providerError(ctx, "RevokeCli", err)
	}
	return connect.NewResponse(&mgmtv1alpha1.RevokeCliResponse{Revoked: revoked}), nil
}

func (s *Service) requireEnabled() error {
	if !s.cfg.Enabled {
		return connect.NewError(connect.CodeFailedPrecondition, errors.New("authentication is not enabled on this server"))
	}
	return nil
}

func invalidArgument(err error) error {
	return connect.NewError(connect.CodeInvalidArgument, err)
}

// providerError maps a broker error to the one Connect error clients see.
// Messages are fixed strings: the underlying error (already free of secrets
// and provider bodies) goes only to the log.
func (s *Service) providerError(ctx context.Context, method string, err error) error {
	var code connect.Code
	var msg string
	switch {
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("request canceled"))
	case errors.Is(err, context.DeadlineExceeded):
		code, msg = connect.CodeDeadlineExceeded, "the identity provider did not answer in time"
	case errors.Is(err, upstream.ErrRejected):
		code, msg = connect.CodeUnauthenticated, rejectedMessage(method)
	case errors.Is(err, upstream.ErrNotReady), errors.Is(err, upstream.ErrUnavailable):
		code, msg = connect.CodeUnavailable, "the identity provider is unavailable; try again later"
	default:
		code, msg = connect.CodeInternal, "internal error"
	}
	s.logger.WarnContext(ctx, "provider call failed", "method", method, "code", code.String(), "error", err)
	return connect.NewError(code, errors.New(msg))
}

func rejectedMessage(method string) string {
	switch method {
	case "LoginCli":
		return "the authorization code was rejected"
	case "RefreshCli":
		return "the refresh token was rejected; log in again"
	case "PollDeviceLogin":
		return "the device code was rejected; start a new device login"
	default:
		return "the identity provider rejected the request"
	}
}

func toProto(t *upstream.Token) *mgmtv1alpha1.AccessToken {
	at := &mgmtv1alpha1.AccessToken{
		AccessToken: t.AccessToken,
		ExpiresIn:   t.ExpiresIn,
		Scope:       t.Scope,
		TokenType:   t.TokenType,
	}
	if t.RefreshToken != "" {
		at.RefreshToken = &t.RefreshToken
	}
	if t.IDToken != "" {
		at.IdToken = &t.IDToken
	}
	return at
}
