package storage

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/store"
)

// authRequest is an auth request as the library sees it: pending (sealed,
// its ID the sealed blob) or completed (stored, its ID the one sealed
// inside, which its code and tokens refer to).
type authRequest struct {
	store.AuthRequest
	issuance
	narrowing
	sealed string
}

var _ op.AuthRequest = (*authRequest)(nil)

func (a *authRequest) GetID() string {
	if a.sealed != "" {
		return a.sealed
	}
	return a.ID
}
func (a *authRequest) GetACR() string        { return "" }
func (a *authRequest) GetAMR() []string      { return a.AMR }
func (a *authRequest) GetAudience() []string { return []string{a.ClientID} }
func (a *authRequest) GetAuthTime() time.Time {
	return a.AuthTime
}
func (a *authRequest) GetClientID() string { return a.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.CodeChallenge, Method: oidc.CodeChallengeMethod(a.CodeChallengeMethod)}
}
func (a *authRequest) GetNonce() string                   { return a.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return oidc.ResponseType(a.ResponseType) }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return oidc.ResponseMode(a.ResponseMode) }
func (a *authRequest) GetScopes() []string                { return a.Scopes }
func (a *authRequest) GetState() string                   { return a.State }
func (a *authRequest) GetSubject() string                 { return a.UserID }
func (a *authRequest) GetResources() []string             { return a.resourcesOf(a.Resources) }
func (a *authRequest) Done() bool                         { return a.AuthRequest.Done() }

func (a *authRequest) grant() store.Grant {
	return store.Grant{ID: a.ID, UserID: a.UserID, ClientID: a.ClientID, Scopes: a.Scopes,
		Audience: a.GetAudience(), Resources: a.Resources, AuthTime: a.AuthTime, AMR: a.AMR}
}

// maxAgeSeconds bounds a request's max_age (a century), so that it fits
// a time.Duration.
const maxAgeSeconds = 100 * 365 * 24 * 3600

// refreshRequest is a valid, unused refresh token as the library sees it.
type refreshRequest struct {
	store.RefreshToken
	issuance
	narrowing
	scopes []string // narrowed by the refresh request, if it asked
}

var _ op.RefreshTokenRequest = (*refreshRequest)(nil)

func (r *refreshRequest) GetAMR() []string       { return r.AMR }
func (r *refreshRequest) GetAudience() []string  { return r.Audience }
func (r *refreshRequest) GetAuthTime() time.Time { return r.AuthTime }
func (r *refreshRequest) GetClientID() string    { return r.ClientID }
func (r *refreshRequest) GetScopes() []string {
	if r.scopes != nil {
		return r.scopes
	}
	return r.Scopes
}
func (r *refreshRequest) GetSubject() string               { return r.UserID }
func (r *refreshRequest) GetResources() []string           { return r.resourcesOf(r.Resources) }
func (r *refreshRequest) SetCurrentScopes(scopes []string) { r.scopes = scopes }

// grant keeps the family's original scopes: narrowing applies to the
// access token of one refresh, not to the refresh token (RFC 6749 §6).
func (r *refreshRequest) grant() store.Grant { return r.Grant }

// CreateAuthRequest seals a validated authorize request; nothing is
// stored until a user logs in for it. The issuer's authorize endpoint
// calls CreatePendingAuthRequest instead, with the resources it checked.
func (s *requests) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	return s.CreatePendingAuthRequest(ctx, req, nil)
}

// CreatePendingAuthRequest seals a validated authorize request with the
// resources its access tokens are for (checked by [Storage.Resources]) and
// its max_age.
func (s *requests) CreatePendingAuthRequest(_ context.Context, req *oidc.AuthRequest, resources []string) (op.AuthRequest, error) {
	ar := store.AuthRequest{
		ClientID:            req.ClientID,
		RedirectURI:         req.RedirectURI,
		Scopes:              req.Scopes,
		State:               req.State,
		Nonce:               req.Nonce,
		ResponseType:        string(req.ResponseType),
		ResponseMode:        string(req.ResponseMode),
		CodeChallenge:       req.CodeChallenge,
		CodeChallengeMethod: string(req.CodeChallengeMethod),
		Prompt:              req.Prompt,
		LoginHint:           req.LoginHint,
		Resources:           resources,
	}
	if req.MaxAge != nil {
		ar.HasMaxAge, ar.MaxAge = true, time.Duration(min(uint64(*req.MaxAge), maxAgeSeconds))*time.Second
	}
	sealed, err := s.sealer.Seal(&ar)
	if errors.Is(err, ErrRequestTooLarge) {
		return nil, oidc.ErrInvalidRequest().WithDescription("the request is too large")
	}
	if err != nil {
		return nil, InternalError("sealing the auth request", err)
	}
	return &authRequest{AuthRequest: ar, sealed: sealed}, nil
}

// AuthRequestByID opens a sealed auth request, and returns its completed
// form once a user has logged in for it.
func (s *requests) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	pending, err := s.sealer.Open(id)
	if err != nil {
		return nil, oidc.ErrInvalidRequest().WithDescription("unknown or expired login request")
	}
	done, err := s.store.AuthRequestByID(ctx, pending.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &authRequest{AuthRequest: *pending, sealed: id}, nil
	case err != nil:
		return nil, InternalError("reading the auth request", err)
	}
	return &authRequest{AuthRequest: *done}, nil
}

// AuthRequestByCode redeems a code: it can be called once per code. A
// replay revokes everything the code produced.
func (s *requests) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	return s.redeemCode(ctx, code, "")
}

// redeemCode is AuthRequestByCode for clientID, which the audit event of a
// replay names.
func (s *requests) redeemCode(ctx context.Context, code, clientID string) (*authRequest, error) {
	ar, err := s.store.RedeemCode(ctx, code)
	switch {
	case errors.Is(err, store.ErrReused):
		if err := s.events.Record(ctx, audit.Event{Type: audit.CodeReplayed, Outcome: audit.Failure, ClientID: clientID,
			Reason: "code_reused", Refs: s.events.Refs(audit.RefCode, code)}); err != nil {
			return nil, ErrAuditUnavailable(err)
		}
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid code")
	case errors.Is(err, store.ErrNotFound):
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid code")
	case err != nil:
		return nil, InternalError("redeeming the code", err)
	}
	return &authRequest{AuthRequest: *ar}, nil
}

// SaveAuthCode stores the code of a completed auth request.
func (s *requests) SaveAuthCode(ctx context.Context, id, code string) error {
	if err := s.store.SaveCode(ctx, code, id, s.cfg.Now().Add(CodeTTL)); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			return oidc.ErrInvalidRequest().WithDescription("the login request was already used or has expired")
		}
		return InternalError("storing the code", err)
	}
	return nil
}

// DeleteAuthRequest forgets an auth request once its code was redeemed.
func (s *requests) DeleteAuthRequest(ctx context.Context, id string) error {
	if err := s.store.DeleteAuthRequest(ctx, id); err != nil {
		return InternalError("deleting the auth request", err)
	}
	return nil
}

// CreateAccessToken records an access token for req and returns its id and
// expiry; the token itself is signed by the caller. (The library's
// interface: our grants go through TokenResponse.)
func (s *tokens) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	tr, ok := req.(tokenRequest)
	if !ok {
		return "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	is, err := s.prepare(ctx, tr, false)
	if err != nil {
		return "", time.Time{}, err
	}
	if _, err := s.record(ctx, tr, is, "", nil); err != nil {
		return "", time.Time{}, err
	}
	return is.access.ID, is.access.ExpiresAt, nil
}

// CreateAccessAndRefreshTokens records an access token and issues a refresh
// token: the first of a family for an auth request, or the successor of
// currentRefreshToken. (The library's interface: our grants go through
// TokenResponse.)
func (s *tokens) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	tr, ok := req.(tokenRequest)
	if !ok {
		return "", "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	is, err := s.prepare(ctx, tr, true)
	if err != nil {
		return "", "", time.Time{}, err
	}
	refresh, err := s.record(ctx, tr, is, currentRefreshToken, nil)
	if err != nil {
		return "", "", time.Time{}, err
	}
	return is.access.ID, refresh, is.access.ExpiresAt, nil
}

// accessToken is the record of a new access token for tr, not yet stored.
func (s *tokens) accessToken(ctx context.Context, tr tokenRequest) (*store.AccessToken, error) {
	g := tr.grant()
	if g.UserID == g.ClientID {
		// sub = client_id marks a machine client's token (RFC 9068 §2.2,
		// pkg/authn's Claims.Machine): a user's never looks like one.
		return nil, InternalError("issuing an access token", errors.New("the user id equals the client id"))
	}
	if err := s.checkUser(ctx, tr); err != nil {
		return nil, err
	}
	ttl := tr.issued().accessTTL
	if ttl <= 0 {
		ttl = s.cfg.AccessTokenTTL
	}
	return &store.AccessToken{ID: store.NewID(), GrantID: g.ID, UserID: g.UserID, ClientID: g.ClientID,
		Scopes: tr.GetScopes(), AMR: g.AMR, Resources: tr.GetResources(), ExpiresAt: s.cfg.Now().Add(ttl)}, nil
}

// issue is what a token response stores, drawn before its access token is
// signed: the access token's record and, when one is issued, the refresh
// token's value and expiry.
type issue struct {
	access     *store.AccessToken
	refresh    string
	refreshExp time.Time
}

// prepare draws the records of tr's tokens: an access token's and, when
// withRefresh, a refresh token's, refused once the session has reached its
// maximum lifetime. Nothing is stored yet.
func (s *tokens) prepare(ctx context.Context, tr tokenRequest, withRefresh bool) (issue, error) {
	at, err := s.accessToken(ctx, tr)
	if err != nil {
		return issue{}, err
	}
	is := issue{access: at}
	if !withRefresh {
		return is, nil
	}
	now, end := s.cfg.Now(), s.sessionEnd(tr.grant().AuthTime)
	if !now.Before(end) {
		return issue{}, errSessionMaxLifetime()
	}
	ttl := tr.issued().refreshTTL
	if ttl <= 0 {
		ttl = s.cfg.RefreshTokenTTL
	}
	is.refresh, is.refreshExp = store.RandomToken(32), now.Add(ttl)
	if end.Before(is.refreshExp) {
		is.refreshExp = end
	}
	return is, nil
}

// record stores is in one write transaction, with the audit event event
// returns (nil, or a nil event: none): the access token's record alone,
// or with the refresh token, the first of a family for an auth request or
// the successor of currentRefresh, which is used up atomically with the
// access token recorded (so that a reuse revoking the family at the same
// moment revokes that access token too). It returns the refresh token to
// answer with: is.refresh, or the successor a retried rotation answered
// with before (event is told which, to name it).
func (s *tokens) record(ctx context.Context, tr tokenRequest, is issue, currentRefresh string, event func(store.Rotated) *audit.Event) (string, error) {
	if event == nil {
		event = func(store.Rotated) *audit.Event { return nil }
	}
	if is.refresh == "" {
		if err := s.store.RecordAccessTokenWithEvent(ctx, is.access, event(store.Rotated{})); err != nil {
			return "", InternalError("recording the access token", err)
		}
		return "", nil
	}
	rr, isRefresh := tr.(*refreshRequest)
	if !isRefresh {
		if _, err := s.store.CreateRefreshTokenWithAccess(ctx, is.refresh, tr.grant(), is.refreshExp, is.access, event(store.Rotated{Value: is.refresh})); err != nil {
			return "", InternalError("storing the refresh and access tokens", err)
		}
		return is.refresh, nil
	}
	if currentRefresh == "" {
		return "", oidc.ErrInvalidGrant()
	}
	rot, err := s.store.RotateRefreshTokenWithGrace(ctx, store.Rotation{OldID: rr.ID, OldValue: currentRefresh,
		NewValue: is.refresh, ExpiresAt: is.refreshExp, Grace: s.grace(ctx, rr.ClientID), Access: is.access,
		Event: func(rot store.Rotated) *audit.Event {
			rr.retried = rot.Retried
			return event(rot)
		}})
	if err != nil {
		return "", s.refreshError(ctx, err, currentRefresh, rr.ClientID)
	}
	if rot.Retried {
		s.log.InfoContext(ctx, "refresh retried within the reuse grace; answered with the same new refresh token", "client_id", rr.ClientID)
	}
	rr.retried = rot.Retried
	return rot.Value, nil
}

// checkUser refuses to issue tokens to a user who was disabled or deleted
// since the login, and notes the username for the audit event of the
// issuance.
func (s *tokens) checkUser(ctx context.Context, tr tokenRequest) error {
	u, err := s.store.UserByID(ctx, tr.grant().UserID)
	if errors.Is(err, store.ErrNotFound) {
		return oidc.ErrInvalidGrant().WithDescription("the user no longer exists")
	}
	if err != nil {
		return InternalError("reading the user", err)
	}
	if u.Disabled() {
		return oidc.ErrInvalidGrant().WithDescription("the user is disabled")
	}
	tr.issued().username = u.Username
	return nil
}

// refreshError maps the store's refusal of refresh token value, presented
// by clientID ("" when the library does not say), to the client's error.
// A reuse revoked the family: that is recorded here, the one place both
// the lookup and the rotation report it.
func (s *tokens) refreshError(ctx context.Context, err error, value, clientID string) error {
	switch {
	case errors.Is(err, store.ErrReused):
		if err := s.events.Record(ctx, audit.Event{Type: audit.RefreshReuseDetected, Outcome: audit.Failure, ClientID: clientID,
			Reason: "family_revoked", Refs: s.events.Refs(audit.RefRefresh, value)}); err != nil {
			return ErrAuditUnavailable(err)
		}
		return oidc.ErrInvalidGrant().WithDescription("invalid refresh token")
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevoked):
		return oidc.ErrInvalidGrant().WithDescription("invalid refresh token")
	}
	return InternalError("using the refresh token", err)
}

// TokenRequestByRefreshToken returns the grant of a usable refresh token.
// A token that was already rotated revokes its family: the library's
// callers do not say which client presents it, so there is no grace.
func (s *tokens) TokenRequestByRefreshToken(ctx context.Context, value string) (op.RefreshTokenRequest, error) {
	return s.refreshRequest(ctx, value, "")
}

// refreshRequest returns the grant of a refresh token clientID presents
// for a refresh: a usable one, or one rotated within the reuse grace
// (whether that rotation is answered again is decided when rotating, see
// CreateAccessAndRefreshTokens). Any other used token revokes its family.
func (s *tokens) refreshRequest(ctx context.Context, value, clientID string) (*refreshRequest, error) {
	t, err := s.store.RefreshTokenByValueWithGrace(ctx, value, s.grace(ctx, clientID))
	var expired *store.ExpiredError
	if errors.As(err, &expired) && expired.ExpiresAt.UnixMilli() >= s.sessionEnd(expired.AuthTime).UnixMilli() {
		return nil, errSessionMaxLifetime()
	}
	if err != nil {
		return nil, s.refreshError(ctx, err, value, clientID)
	}
	if !s.cfg.Now().Before(s.sessionEnd(t.AuthTime)) {
		return nil, errSessionMaxLifetime()
	}
	return &refreshRequest{RefreshToken: *t}, nil
}

// grace is the rotation grace of a refresh presented by clientID from the
// client address of the request in ctx: the address the audit trail
// records (events.ClientFrom), which for the broker's in-process requests on
// behalf of an RPC (RefreshCli) is the RPC caller's, proxies resolved by
// NSAUTH_TRUSTED_PROXIES. A retry is answered only from the same address
// key (an IPv4 address, an IPv6 /64); an unknown address gets no grace.
func (s *tokens) grace(ctx context.Context, clientID string) store.Grace {
	var from netip.Addr
	if c, ok := events.ClientFrom(ctx); ok {
		from, _ = netip.ParseAddr(c.Addr)
	}
	return store.Grace{Window: s.cfg.RefreshReuseGrace, ClientID: clientID, From: clientaddr.Key(from)}
}

// sessionEnd is when the refresh tokens of a grant whose login was at
// authTime stop, however often they are used.
func (s *tokens) sessionEnd(authTime time.Time) time.Time {
	return authTime.Add(s.cfg.RefreshTokenMaxLifetime)
}

func errSessionMaxLifetime() *oidc.Error {
	return oidc.ErrInvalidGrant().WithDescription("the session reached its maximum lifetime; log in again")
}

// TerminateSession is the library's end-session hook, which ends every
// session a user has at a client. It is never called: end-session is
// served by package endsession, which revokes only the session the request
// proves. It refuses, so that a library path reaching it fails instead of
// revoking more.
func (s *tokens) TerminateSession(context.Context, string, string) error {
	return InternalError("terminating sessions", errors.New("end-session is served by the issuer, not by the library"))
}

// refreshIDPrefix marks refresh token ids handed to the library by
// GetRefreshTokenInfo, so RevokeToken can tell them from access token ids.
const refreshIDPrefix = "rt:"

// GetRefreshTokenInfo identifies a refresh token presented for revocation.
func (s *tokens) GetRefreshTokenInfo(ctx context.Context, clientID, value string) (string, string, error) {
	if len(value) > maxRefreshLength {
		return "", "", op.ErrInvalidRefreshToken
	}
	t, err := s.store.RefreshTokenByValue(ctx, value)
	if err != nil || t.ClientID != clientID {
		// Reused, revoked, unknown or someone else's: nothing to revoke for
		// this client (RFC 7009 §2.2 answers 200 either way).
		return "", "", op.ErrInvalidRefreshToken
	}
	// The id handed to the library carries the refs of the token and its
	// grant, for the audit event of the revocation: RevokeToken sees only
	// what this returns.
	return t.UserID, refreshIDPrefix + t.ID + "." + s.events.Audit().Ref(value) + "." + s.events.Audit().Ref(t.Grant.ID), nil
}

// RevokeToken revokes a refresh token (and its family) or an access token.
// Unknown tokens are not an error (RFC 7009 §2.2).
func (s *tokens) RevokeToken(ctx context.Context, tokenOrID, userID string, clientID string) *oidc.Error {
	if rest, ok := cutPrefix(tokenOrID, refreshIDPrefix); ok {
		id, refs := refreshRevocation(rest)
		err := s.store.RevokeRefreshToken(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return InternalError("revoking the refresh token", err)
		}
		return s.recordRevocation(ctx, audit.Event{Subject: userID, ClientID: clientID, Target: "refresh_token", Refs: refs})
	}
	at, err := s.store.ActiveAccessToken(ctx, tokenOrID)
	if err != nil || at.ClientID != clientID {
		return nil
	}
	if err := s.store.RevokeAccessToken(ctx, at.ID); err != nil {
		return InternalError("revoking the access token", err)
	}
	return s.recordRevocation(ctx, audit.Event{Subject: at.UserID, ClientID: clientID, Target: "access_token",
		Refs: s.events.Refs(audit.RefGrant, at.GrantID)})
}

// recordRevocation records e as the audit.TokenRevoked event of a
// revocation request.
func (s *tokens) recordRevocation(ctx context.Context, e audit.Event) *oidc.Error {
	e.Type = audit.TokenRevoked
	if err := s.events.Record(ctx, e); err != nil {
		return ErrAuditUnavailable(err)
	}
	return nil
}

// refreshRevocation splits what GetRefreshTokenInfo handed the library
// (after the prefix) into the refresh token's id and the refs of the token
// and its grant. Refs that are not hex HMACs are dropped: the string may
// have come from the network.
func refreshRevocation(s string) (string, map[string]string) {
	parts := strings.Split(s, ".")
	refs := map[string]string{}
	if len(parts) == 3 {
		for name, v := range map[string]string{audit.RefRefresh: parts[1], audit.RefGrant: parts[2]} {
			if len(v) == 32 && strings.Trim(v, "0123456789abcdef") == "" {
				refs[name] = v
			}
		}
	}
	if len(refs) == 0 {
		refs = nil
	}
	return parts[0], refs
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return s, false
}

// SigningKey returns the key that signs now.
func (s *keySet) SigningKey(ctx context.Context) (op.SigningKey, error) {
	k, err := s.keys.signing(ctx)
	if err != nil {
		return nil, InternalError("loading the signing key", err)
	}
	return k, nil
}

// SignatureAlgorithms lists the algorithms of the published keys, the
// signing key's first (discovery's id_token_signing_alg_values_supported).
func (s *keySet) SignatureAlgorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	algs, err := s.keys.algorithms(ctx)
	if err != nil {
		return nil, InternalError("loading the key set", err)
	}
	return algs, nil
}

// KeySet returns the published public keys.
func (s *keySet) KeySet(ctx context.Context) ([]op.Key, error) {
	keys, err := s.keys.published(ctx)
	if err != nil {
		return nil, InternalError("loading the key set", err)
	}
	return keys, nil
}

// GetClientByClientID loads an app. A fresh value is returned on every
// call: the server attaches per-request state to it. A disabled app is
// an unknown client.
func (s *clients) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	if len(id) > MaxClientIDLen {
		return nil, errNoSuchClient()
	}
	c, err := s.store.ClientByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSuchClient()
	}
	if err != nil {
		return nil, oidc.ErrServerError().WithDescription("internal error").WithParent(err)
	}
	if c.Disabled() {
		return nil, errNoSuchClient()
	}
	access, refresh := s.cfg.AccessTokenTTL, s.cfg.RefreshTokenTTL
	if c.AccessTokenTTL > 0 {
		access = c.AccessTokenTTL
	}
	if c.RefreshTokenTTL > 0 {
		refresh = c.RefreshTokenTTL
	}
	return &Client{
		stored:             c,
		broker:             c.ID == s.cfg.ClientID,
		serverRedirects:    s.serverRedirects,
		serverRedirectList: s.cfg.AllowedRedirectURIs,
		accessTTL:          access,
		refreshTTL:         refresh,
		allowedScopes:      s.allowedScopes,
		loginURL:           s.cfg.LoginURL,
	}, nil
}

// ErrUnknownClient is the cause of errNoSuchClient, by which a refusal
// of a client id that names no client is told from the others.
var ErrUnknownClient = errors.New("unknown client")

// errNoSuchClient is the answer to a client id that names no client.
func errNoSuchClient() *oidc.Error {
	return oidc.ErrInvalidClient().WithDescription("unknown client").WithParent(ErrUnknownClient)
}

// AuthorizeClientIDSecret checks a client's secret in constant time, and
// records a client that did not authenticate.
func (s *clients) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := s.GetClientByClientID(ctx, id)
	if errors.Is(err, ErrUnknownClient) {
		// Without ErrUnknownClient, so that VerifyClient does not record
		// it again.
		return s.RefuseClient(ctx, "", oidc.ErrInvalidClient().WithDescription("unknown client"))
	}
	if err != nil {
		return err
	}
	if !c.(*Client).stored.CheckSecret(secret) {
		return s.RefuseClient(ctx, id, errors.New("wrong client secret"))
	}
	return nil
}

// RefuseClient records the refusal of a client that did not authenticate
// at the token, revocation or introspection endpoint (a refusal,
// aggregated), and returns refusal, or the server error when the event
// was required and not recorded. clientID is empty when no client has the
// id given: what is typed there may be a secret.
func (s *clients) RefuseClient(ctx context.Context, clientID string, refusal error) error {
	reason := "bad_secret"
	if clientID == "" {
		reason = "unknown_client"
	}
	if err := s.events.Refusal(ctx, audit.Event{Type: audit.ClientAuthFailed, Outcome: audit.Failure, ClientID: clientID, Reason: reason}); err != nil {
		return ErrAuditUnavailable(err)
	}
	return refusal
}

// SetUserinfoFromScopes is the library's deprecated hook; the claims are
// set by SetUserinfoFromRequest, as the library's documentation asks.
func (s *userinfo) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest sets the ID token's profile claims, and its `sid`:
// the id of the grant the token was issued from, which end-session revokes
// (see package endsession). The library builds ID tokens without a session id
// and calls only this hook with the request, so the claim is added here;
// the userinfo endpoint goes through SetUserinfoFromToken and never shows
// it.
func (s *userinfo) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.fillUserinfo(ctx, info, req.GetSubject(), scopes); err != nil {
		return err
	}
	if tr, ok := req.(tokenRequest); ok {
		info.AppendClaims(SessionIDClaim, tr.grant().ID)
	}
	return nil
}

func (s *userinfo) fillUserinfo(ctx context.Context, info *oidc.UserInfo, userID string, scopes []string) error {
	u, err := s.store.UserByID(ctx, userID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return oidc.ErrAccessDenied().WithDescription("the user no longer exists")
		}
		return InternalError("reading the user", err)
	}
	if u.Disabled() {
		return oidc.ErrAccessDenied().WithDescription("the user is disabled")
	}
	info.Subject = u.ID
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeProfile:
			info.PreferredUsername = u.Username
			info.Name = u.Name
			info.UpdatedAt = oidc.FromTime(u.UpdatedAt)
		case oidc.ScopeEmail:
			// Addresses are entered by administrators and never verified,
			// so email_verified is left out.
			info.Email = u.Email
		case ScopeGroups:
			groups, err := s.store.UserGroups(ctx, u.ID)
			if err != nil {
				return InternalError("reading the user's groups", err)
			}
			info.AppendClaims(ScopeGroups, groups)
		}
	}
	return nil
}

// SetUserinfoFromToken answers the userinfo endpoint for a verified access
// token that is still active.
func (s *userinfo) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	at, err := s.store.ActiveAccessToken(ctx, tokenID)
	if err != nil || at.UserID != subject {
		return oidc.ErrAccessDenied().WithDescription("the access token is not active")
	}
	return s.fillUserinfo(ctx, info, at.UserID, at.Scopes)
}

// SetIntrospectionFromToken describes an active access token. Only the
// client it was issued to may introspect a user's token; a machine
// client's token is introspected by the broker's client (Config.ClientID),
// which is the resource server in front of this provider (machine clients
// cannot authenticate at the introspection endpoint).
func (s *userinfo) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	at, err := s.store.ActiveAccessToken(ctx, tokenID)
	if err == nil && at.UserID == "" {
		return s.machineIntrospection(ctx, resp, at, subject, clientID)
	}
	if err != nil || at.UserID != subject || at.ClientID != clientID {
		return errors.New("token not active for this client")
	}
	u, err := s.store.UserByID(ctx, at.UserID)
	if err != nil || u.Disabled() {
		return errors.New("user not active")
	}
	s.describeActive(resp, at, at.UserID)
	resp.Username = u.Username
	if slices.Contains(at.Scopes, ScopeGroups) {
		// The user's groups as they are now; the access token's own
		// claim holds them as they were when it was issued.
		groups, err := s.store.UserGroups(ctx, u.ID)
		if err != nil {
			return InternalError("reading the user's groups", err)
		}
		if len(groups) > 0 {
			if resp.Claims == nil {
				resp.Claims = make(map[string]any)
			}
			resp.Claims[ScopeGroups] = groups
		}
	}
	return nil
}

// describeActive fills resp for the active access token at, whose subject
// is subject: a user's id, or a machine client's.
func (s *userinfo) describeActive(resp *oidc.IntrospectionResponse, at *store.AccessToken, subject string) {
	resp.Scope = at.Scopes
	resp.ClientID = at.ClientID
	resp.TokenType = oidc.BearerToken
	resp.Expiration = oidc.FromTime(at.ExpiresAt)
	resp.IssuedAt = oidc.FromTime(at.CreatedAt)
	resp.Subject = subject
	resp.Audience = oidc.Audience(s.tokenAudience(at.Resources))
	resp.Issuer = s.cfg.Issuer
	resp.JWTID = at.ID
	resp.AuthenticationMethodsReferences = at.AMR
}

// GetPrivateClaimsFromScopes adds no private claims.
func (s *userinfo) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetKeyByIDAndClientID serves the JWT profile grant and private_key_jwt
// client authentication, neither of which is offered.
func (s *clients) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, oidc.ErrInvalidClient().WithDescription("client keys are not supported")
}

// ValidateJWTProfileScopes serves the JWT profile grant, which is not
// offered.
func (s *clients) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, oidc.ErrUnsupportedGrantType()
}

// Health reports whether the database answers.
func (s *Storage) Health(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// issuance is what issuing tokens for a request learned that its audit
// event records, without reading anything again: the username (checkUser
// reads the user anyway) and whether a refresh was the retry of one whose
// answer was lost; and the client's token lifetimes, which the token
// response sets from the client it answers.
type issuance struct {
	username string
	retried  bool
	// accessTTL and refreshTTL are the lifetimes of the client's tokens;
	// zero means the server's.
	accessTTL, refreshTTL time.Duration
}

func (x *issuance) issued() *issuance { return x }
