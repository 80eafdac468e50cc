package storage

import (
	"context"
	"errors"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
)

// The token responses of the grants whose state the storage keeps: a
// code, a refresh token (and a device code, device.go). Each records its
// event; none is counted or logged anywhere else.

// CodeExchange redeems an authorization code (single use: a replay revokes
// what the code produced) and answers with our tokens.
func (s *tokens) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	ar, err := s.all.redeemCode(ctx, r.Data.Code, r.Client.GetID())
	if err != nil {
		return nil, err
	}
	// The verifier is checked whenever the request carried a challenge, for
	// confidential clients too, so PKCE cannot be stripped off.
	if err := op.AuthorizeCodeChallenge(r.Data.CodeVerifier, ar.GetCodeChallenge()); err != nil {
		return nil, err
	}
	if s.cfg.RequirePKCE && ar.CodeChallenge == "" {
		// Issued before PKCE was required, or by a replica that does not
		// require it: whoever holds it proves nothing more than that.
		return nil, oidc.ErrInvalidGrant().WithDescription("PKCE is required: the code was issued without a code_challenge")
	}
	if r.Client.GetID() != ar.ClientID || r.Data.RedirectURI != ar.RedirectURI {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code was issued to another client or redirect URI")
	}
	if err := s.narrow(&ar.narrowing, r.Form, ar.Resources); err != nil {
		return nil, err
	}
	resp, err := s.TokenResponse(ctx, ar, r.Client, r.Data.Code, "", func(resp *oidc.AccessTokenResponse) audit.Event {
		return audit.Event{Type: audit.CodeExchanged, Subject: ar.UserID, Username: ar.username, ClientID: ar.ClientID,
			Refs: s.events.Refs(audit.RefCode, r.Data.Code, audit.RefGrant, ar.ID, audit.RefToken, resp.AccessToken, audit.RefRefresh, resp.RefreshToken)}
	})
	if err != nil {
		return nil, err
	}
	if err := s.all.DeleteAuthRequest(ctx, ar.ID); err != nil {
		s.log.WarnContext(ctx, "deleting a redeemed auth request failed", "error", err)
	}
	return op.NewResponse(resp), nil
}

// RefreshExchange rotates a refresh token: the presented one is used up, a new
// one is returned, and presenting a used one again revokes the family
// (unless it is the same client's retry within the reuse grace). The
// token is looked up knowing the authenticated client, which the
// library's lookup does not pass on.
func (s *tokens) RefreshExchange(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	if len(r.Data.RefreshToken) > maxRefreshLength {
		return nil, oidc.ErrInvalidGrant()
	}
	rr, err := s.refreshRequest(ctx, r.Data.RefreshToken, r.Client.GetID())
	if err != nil {
		return nil, err
	}
	if r.Client.GetID() != rr.ClientID {
		return nil, oidc.ErrInvalidGrant()
	}
	if err := op.ValidateRefreshTokenScopes(r.Data.Scopes, rr); err != nil {
		return nil, err
	}
	if err := s.checkUpstream(ctx, rr.UserID); err != nil {
		return nil, err
	}
	if err := s.narrow(&rr.narrowing, r.Form, rr.Resources); err != nil {
		return nil, err
	}
	resp, err := s.TokenResponse(ctx, rr, r.Client, "", r.Data.RefreshToken, func(resp *oidc.AccessTokenResponse) audit.Event {
		e := audit.Event{Type: audit.RefreshRotated, Subject: rr.UserID, Username: rr.username, ClientID: rr.ClientID,
			Refs: s.events.Refs(audit.RefRefresh, r.Data.RefreshToken, refSuccessor, resp.RefreshToken, audit.RefGrant, rr.Grant.ID, audit.RefToken, resp.AccessToken)}
		if rr.retried {
			e.Reason = "retry_within_grace"
		}
		return e
	})
	if err != nil {
		return nil, err
	}
	return op.NewResponse(resp), nil
}

// checkUpstream refuses a refresh for a user an upstream directory no
// longer lets sign in, and fails (never passes) when it cannot say.
func (s *tokens) checkUpstream(ctx context.Context, userID string) error {
	if s.cfg.Upstream == nil {
		return nil
	}
	ok, err := s.cfg.Upstream.MayRefresh(ctx, userID)
	if err != nil {
		s.log.WarnContext(ctx, "refresh refused: the upstream directory could not be asked", "error", err)
		return oidc.ErrServerError().WithDescription("the user's directory is unreachable; try again later")
	}
	if !ok {
		return oidc.ErrInvalidGrant().WithDescription("the user can no longer sign in upstream")
	}
	return nil
}

// tokenRequest is what a token response is built from: a redeemed auth
// request or a refresh-token request.
type tokenRequest interface {
	op.IDTokenRequest
	// GetResources are the access token's audiences besides the server's.
	GetResources() []string
	grant() store.Grant
	issued() *issuance
}

// TokenResponse issues the tokens of req to c. The access token is signed
// first; then its record, the refresh token's creation or rotation (when
// the scopes and the client's grant types call for one, or a refresh
// token is presented) and the audit event of the issue (event's, told the
// answer; nil: none) are committed in one write transaction; the ID token
// (for openid) is signed last. code is the redeemed code, currentRefresh
// the presented refresh token.
func (s *tokens) TokenResponse(ctx context.Context, req tokenRequest, c op.Client, code, currentRefresh string, event func(*oidc.AccessTokenResponse) audit.Event) (*oidc.AccessTokenResponse, error) {
	scopes := req.GetScopes()
	if app, ok := c.(*Client); ok {
		x := req.issued()
		x.accessTTL, x.refreshTTL = app.lifetimes()
	}
	wantRefresh := currentRefresh != "" ||
		(slices.Contains(scopes, oidc.ScopeOfflineAccess) && slices.Contains(c.GrantTypes(), oidc.GrantTypeRefreshToken))
	is, err := s.prepare(ctx, req, wantRefresh)
	if err != nil {
		return nil, err
	}
	access, err := s.SignAccessToken(ctx, req, c.GetID(), is.access.ID, is.access.ExpiresAt)
	if err != nil {
		return nil, err
	}
	resp := &oidc.AccessTokenResponse{
		AccessToken:  access,
		TokenType:    oidc.BearerToken,
		RefreshToken: is.refresh,
		ExpiresIn:    uint64(max(0, is.access.ExpiresAt.Sub(s.cfg.Now()).Seconds())),
		Scope:        scopes,
	}
	if event == nil {
		if resp.RefreshToken, err = s.record(ctx, req, is, currentRefresh, nil); err != nil {
			return nil, err
		}
	} else {
		var recordErr error
		err = s.events.RecordWith(ctx, event(resp), func(ctx context.Context, row *audit.Event) error {
			resp.RefreshToken, recordErr = s.record(ctx, req, is, currentRefresh, func(rot store.Rotated) *audit.Event {
				if row != nil && rot.Retried {
					// The event names the successor answered again, and why.
					again := *resp
					again.RefreshToken = rot.Value
					e := event(&again)
					row.Reason, row.Refs = e.Reason, e.Refs
				}
				return row
			})
			return recordErr
		})
		switch {
		case recordErr != nil:
			return nil, recordErr
		case err != nil:
			return nil, ErrAuditUnavailable(err)
		}
	}
	if slices.Contains(scopes, oidc.ScopeOpenID) {
		resp.IDToken, err = op.CreateIDToken(ctx, s.cfg.Issuer, req, c.IDTokenLifetime(), access, code, s.all, c)
		if err != nil {
			return nil, InternalError("signing the ID token", err)
		}
	}
	return resp, nil
}

// InternalError hides err from the client (it is logged by the library
// through the error's parent) behind a generic server_error.
func InternalError(what string, err error) *oidc.Error {
	return oidc.ErrServerError().WithDescription("internal error").WithParent(errors.Join(errors.New(what), err))
}

// ErrAuditUnavailable is the token endpoint's answer when a required event
// could not be recorded: nothing is issued. All a client learns is
// MsgAuditUnavailable.
func ErrAuditUnavailable(err error) *oidc.Error {
	return oidc.ErrServerError().WithDescription(MsgAuditUnavailable).WithParent(err)
}

// MsgAuditUnavailable is all a client learns when an event that
// NSAUTH_AUDIT_REQUIRED makes mandatory could not be recorded.
const MsgAuditUnavailable = "audit unavailable"

// refSuccessor names the HMAC of the refresh token a rotation issued, next
// to the presented one's (audit.RefRefresh).
const refSuccessor = "successor_hmac"
