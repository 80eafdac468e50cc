package adminservice

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/issuer/linkflow"
	"github.com/nsauth/nsauth/internal/store"
)

// One-time links (package linkflow serves them): an invite lets a new
// user set their first password and enrol a second factor; a reset lets a
// user set a new password (and asks for a factor the user has). Only the
// link's digest is stored; the link itself is in the response alone, and
// the audit trail names it by its ref.

// linkPurposes maps the proto's purposes to the store's.
var linkPurposes = map[adminv1.LinkPurpose]string{
	adminv1.LinkPurpose_LINK_PURPOSE_INVITE: store.LinkInvite,
	adminv1.LinkPurpose_LINK_PURPOSE_RESET:  store.LinkReset,
}

// CreateUserLink makes a one-time link for a user, replacing the user's
// previous one (audited as revoked, reason "replaced").
func (s *Service) CreateUserLink(ctx context.Context, req *connect.Request[adminv1.CreateUserLinkRequest]) (*connect.Response[adminv1.CreateUserLinkResponse], error) {
	m := req.Msg
	purpose, ok := linkPurposes[m.GetPurpose()]
	if !ok {
		return nil, invalid("purpose is required: LINK_PURPOSE_INVITE or LINK_PURPOSE_RESET")
	}
	ttl := duration(m.GetTtlSeconds())
	switch {
	case m.GetTtlSeconds() < 0 || ttl > store.MaxLinkTTL:
		return nil, invalid("ttl_seconds: a link stays valid for at most %s (%d seconds), not %d seconds",
			store.MaxLinkTTL, seconds(store.MaxLinkTTL), m.GetTtlSeconds())
	case ttl == 0:
		ttl = s.linkTTL()
	}
	u, err := s.user(ctx, m.GetUsername())
	if err != nil {
		return nil, err
	}
	if u.Disabled() {
		return nil, precondition("user %q is disabled: enable it first (nsauth users enable %s)", u.Username, u.Username)
	}
	if purpose == store.LinkInvite && u.HasPassword() {
		return nil, precondition("user %q already has a password: make a reset link instead (nsauth users reset-link %s)", u.Username, u.Username)
	}
	issuerURL, err := s.linkIssuer(ctx)
	if err != nil {
		return nil, err
	}
	secret := store.RandomToken(linkflow.SecretBytes)
	l, replaced, err := s.cfg.Store.CreateLink(ctx, u.ID, purpose, secret, s.cfg.Now().Add(ttl))
	if err != nil {
		return nil, toConnect(err, userWhat(u.Username))
	}
	if replaced != nil {
		if err := s.linkEvent(ctx, audit.LinkRevoked, u, replaced, "replaced"); err != nil {
			return nil, err
		}
	}
	if err := s.linkEvent(ctx, audit.LinkCreated, u, l, purpose); err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.CreateUserLinkResponse{Url: linkflow.URL(issuerURL, secret), Ref: l.ID, ExpiresAt: unix(l.ExpiresAt)}), nil
}

// RevokeUserLink deletes a user's live link, if any.
func (s *Service) RevokeUserLink(ctx context.Context, req *connect.Request[adminv1.RevokeUserLinkRequest]) (*connect.Response[adminv1.RevokeUserLinkResponse], error) {
	u, err := s.user(ctx, req.Msg.GetUsername())
	if err != nil {
		return nil, err
	}
	revoked, err := s.cfg.Store.RevokeUserLinks(ctx, u.ID)
	if err != nil {
		return nil, toConnect(err, userWhat(u.Username))
	}
	for j := range revoked {
		if err := s.linkEvent(ctx, audit.LinkRevoked, u, &revoked[j], "revoked"); err != nil {
			return nil, err
		}
	}
	return connect.NewResponse(&adminv1.RevokeUserLinkResponse{Revoked: len(revoked) > 0}), nil
}

// liveLink returns u's live link, nil when there is none: read before an
// act that deletes it with the user (disabling, deleting), for linkEnded.
func (s *Service) liveLink(ctx context.Context, u *store.User) (*store.Link, error) {
	l, err := s.cfg.Store.UserLink(ctx, u.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, toConnect(err, userWhat(u.Username))
	}
	return l, nil
}

// linkEnded audits link l (nil: none) of u as revoked, for reason.
func (s *Service) linkEnded(ctx context.Context, u *store.User, l *store.Link, reason string) error {
	if l == nil {
		return nil
	}
	return s.linkEvent(ctx, audit.LinkRevoked, u, l, reason)
}

// linkEvent records an event of link l of user u: the ref, never the
// secret.
func (s *Service) linkEvent(ctx context.Context, t audit.Type, u *store.User, l *store.Link, reason string) error {
	if err := s.record(ctx, audit.Event{Type: t, Subject: u.ID, Username: u.Username, Reason: reason, Target: l.ID}); err != nil {
		return internal(err)
	}
	return nil
}

// linkTTL is how long a link stays valid when the request names no
// lifetime.
func (s *Service) linkTTL() time.Duration {
	if s.cfg.LinkTTL > 0 {
		return min(s.cfg.LinkTTL, store.MaxLinkTTL)
	}
	return config.DefaultLinkTTL
}

// linkIssuer is the issuer URL links point to.
func (s *Service) linkIssuer(ctx context.Context) (string, error) {
	if s.cfg.Issuer != "" {
		return s.cfg.Issuer, nil
	}
	served, err := s.cfg.Store.ServedIssuer(ctx)
	if err != nil {
		return "", toConnect(err, "the served issuer")
	}
	if served == "" {
		return "", precondition("this data has never been served, so its issuer URL is unknown: start nsauth serve with it once " +
			"(with the NSAUTH_ISSUER users reach), then make the link")
	}
	return served, nil
}
