package adminservice

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/authflow"
	"github.com/nsauth/nsauth/internal/store"
)

// A user's second factors, as `nsauth users mfa-reset`, `users totp
// remove` and `users passkeys` administer them, and enrolment links
// (`nsauth users enrol-link`): an administrator's one-time permission for
// a user to add a second factor in the browser, where the password alone
// never adds one (SECURITY.md). Setting up an authenticator app for a
// user (`users totp enroll`) stays offline: it needs the server's secret
// key and a code from the app.

// DefaultEnrolLinkTTL is how long an enrolment link stays valid when the
// request names no lifetime: long enough to reach a person the same day,
// short enough that a forgotten link does not lie around.
const DefaultEnrolLinkTTL = 12 * time.Hour

// ResetUserFactors removes every second factor of a user who lost their
// device (authenticator app, recovery codes, passkeys) and the logins
// waiting for one.
func (s *factorsRPC) ResetUserFactors(ctx context.Context, req *connect.Request[adminv1.ResetUserFactorsRequest]) (*connect.Response[adminv1.ResetUserFactorsResponse], error) {
	u, err := s.user(ctx, req.Msg.GetUsername())
	if err != nil {
		return nil, err
	}
	if err := s.resetFactors(ctx, u, ""); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.ResetUserFactorsResponse{}), nil
}

// resetFactors removes every second factor of u and audits it (reason
// "mfa_reset"): for ResetUserFactors and SetUserPassword's
// reset_factors. When the store fails, the Internal error says failed
// (empty: "internal error"), which must say what was done by then.
func (s *Service) resetFactors(ctx context.Context, u *store.User, failed string) error {
	if _, err := s.cfg.Store.ResetSecondFactors(ctx, u.ID); err != nil {
		return connect.NewError(connect.CodeInternal, internalError{msg: failed, cause: err})
	}
	return s.record(ctx, audit.Event{Type: audit.SecondFactorReset, Subject: u.ID, Username: u.Username, Reason: "mfa_reset"})
}

// RemoveUserTOTP removes a user's authenticator app; the recovery codes
// stay. NotFound when the user has none.
func (s *factorsRPC) RemoveUserTOTP(ctx context.Context, req *connect.Request[adminv1.RemoveUserTOTPRequest]) (*connect.Response[adminv1.RemoveUserTOTPResponse], error) {
	u, err := s.user(ctx, req.Msg.GetUsername())
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.RemoveTOTP(ctx, u.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("%q has no authenticator app", u.Username))
		}
		return nil, toConnect(err, userWhat(u.Username))
	}
	if err := s.record(ctx, audit.Event{Type: audit.SecondFactorReset, Subject: u.ID, Username: u.Username, Reason: "totp_removed"}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.RemoveUserTOTPResponse{}), nil
}

// ListUserPasskeys lists a user's passkeys, in the store's order.
func (s *factorsRPC) ListUserPasskeys(ctx context.Context, req *connect.Request[adminv1.ListUserPasskeysRequest]) (*connect.Response[adminv1.ListUserPasskeysResponse], error) {
	u, err := s.user(ctx, req.Msg.GetUsername())
	if err != nil {
		return nil, err
	}
	pks, err := s.cfg.Store.PasskeysByUser(ctx, u.ID)
	if err != nil {
		return nil, toConnect(err, userWhat(u.Username))
	}
	resp := &adminv1.ListUserPasskeysResponse{Passkeys: make([]*adminv1.Passkey, 0, len(pks))}
	for i := range pks {
		resp.Passkeys = append(resp.Passkeys, passkeyProto(&pks[i]))
	}
	return connect.NewResponse(resp), nil
}

// RemoveUserPasskey removes the user's passkey with the name, or else the
// id, the request gives. A removed passkey no longer logs anyone in.
func (s *factorsRPC) RemoveUserPasskey(ctx context.Context, req *connect.Request[adminv1.RemoveUserPasskeyRequest]) (*connect.Response[adminv1.RemoveUserPasskeyResponse], error) {
	nameOrID := req.Msg.GetPasskey()
	if nameOrID == "" {
		return nil, invalid("passkey is required: the name or id of one of the user's passkeys")
	}
	u, err := s.user(ctx, req.Msg.GetUsername())
	if err != nil {
		return nil, err
	}
	p, err := s.cfg.Store.DeletePasskey(ctx, u.ID, nameOrID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("%q has no passkey named or with the id %q (nsauth users passkeys %s lists them)",
				u.Username, nameOrID, u.Username))
		}
		return nil, toConnect(err, userWhat(u.Username))
	}
	if err := s.record(ctx, audit.Event{Type: audit.PasskeyRemoved, Subject: u.ID, Username: u.Username, Target: p.Name}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.RemoveUserPasskeyResponse{Passkey: passkeyProto(p)}), nil
}

// passkeyProto describes p (its public key and credential id stay in the
// store).
func passkeyProto(p *store.Passkey) *adminv1.Passkey {
	return &adminv1.Passkey{
		Id:             p.ID,
		Name:           p.Name,
		BackupEligible: p.BackupEligible,
		CloneWarning:   p.CloneWarning,
		Aaguid:         p.AAGUID,
		CreatedAt:      unix(p.CreatedAt),
		LastUsedAt:     unix(p.LastUsedAt),
	}
}

// CreateUserEnrolLink makes an enrolment link for an enabled user,
// replacing the user's previous one. The link is in the response alone:
// only its digest is stored, and the audit trail records that one was
// made (admin.user, reason "enrol_link_created"), never the link.
func (s *factorsRPC) CreateUserEnrolLink(ctx context.Context, req *connect.Request[adminv1.CreateUserEnrolLinkRequest]) (*connect.Response[adminv1.CreateUserEnrolLinkResponse], error) {
	ttl := duration(req.Msg.GetTtlSeconds())
	switch {
	case req.Msg.GetTtlSeconds() < 0 || ttl > store.MaxEnrolLinkTTL:
		return nil, invalid("ttl_seconds: an enrolment link stays valid for at most %s (%d seconds), not %d seconds",
			store.MaxEnrolLinkTTL, seconds(store.MaxEnrolLinkTTL), req.Msg.GetTtlSeconds())
	case ttl == 0:
		ttl = DefaultEnrolLinkTTL
	}
	u, err := s.user(ctx, req.Msg.GetUsername())
	if err != nil {
		return nil, err
	}
	if u.Disabled() {
		return nil, precondition("%q is disabled: enable it first with nsauth users enable %s", u.Username, u.Username)
	}
	issuerURL, err := s.linkIssuer(ctx)
	if err != nil {
		return nil, err
	}
	secret := store.RandomToken(32)
	expires := s.cfg.Now().Add(ttl)
	if err := s.cfg.Store.CreateEnrolLink(ctx, u.ID, secret, expires); err != nil {
		return nil, toConnect(err, userWhat(u.Username))
	}
	if err := s.userChanged(ctx, u, "enrol_link_created"); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.CreateUserEnrolLinkResponse{
		Url:       issuerURL + authflow.EnrolLinkPath + "?link=" + url.QueryEscape(secret),
		ExpiresAt: unix(expires),
	}), nil
}

// RevokeUserEnrolLink removes a user's enrolment link, if any (audited
// only when there was one).
func (s *factorsRPC) RevokeUserEnrolLink(ctx context.Context, req *connect.Request[adminv1.RevokeUserEnrolLinkRequest]) (*connect.Response[adminv1.RevokeUserEnrolLinkResponse], error) {
	u, err := s.user(ctx, req.Msg.GetUsername())
	if err != nil {
		return nil, err
	}
	had, err := s.cfg.Store.RevokeEnrolLink(ctx, u.ID)
	if err != nil {
		return nil, toConnect(err, userWhat(u.Username))
	}
	if had {
		if err := s.userChanged(ctx, u, "enrol_link_revoked"); err != nil {
			return nil, err
		}
	}
	return connect.NewResponse(&adminv1.RevokeUserEnrolLinkResponse{Revoked: had}), nil
}
