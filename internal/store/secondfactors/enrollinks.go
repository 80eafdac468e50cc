package secondfactors

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/users"
)

// Enrolment links (nsauth users enrol-link NAME): an administrator's
// one-time permission for a user to add a second factor in the browser,
// where the password alone never adds one. A user has at most one live
// link: a new one replaces it. Only the digest of the link's secret is
// stored.

// MaxEnrolLinkTTL bounds how long an enrolment link may stay valid.
const MaxEnrolLinkTTL = 7 * 24 * time.Hour

// CreateEnrolLink stores the enrolment link whose secret is token for the
// user, valid until expiresAt, replacing the user's previous link. It
// fails with [core.ErrNotFound] when there is no such user.
func (s *FactorStore) CreateEnrolLink(ctx context.Context, userID, token string, expiresAt time.Time) error {
	now := s.db.Now()
	if token == "" || !expiresAt.After(now) || expiresAt.Sub(now) > MaxEnrolLinkTTL {
		return fmt.Errorf("an enrolment link needs a secret and an expiry within %s", MaxEnrolLinkTTL)
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := s.db.QueryRow(ctx, tx, `SELECT COUNT(*) FROM nsauth_users WHERE id = ?`, userID).Scan(&n); err != nil {
			return fmt.Errorf("reading the user: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("user: %w", core.ErrNotFound)
		}
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_enrol_links (user_id, link_hash, created_at, expires_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (user_id) DO UPDATE SET link_hash = excluded.link_hash, created_at = excluded.created_at, expires_at = excluded.expires_at`,
			userID, core.HashSecret(token), now.UnixMilli(), expiresAt.UnixMilli()); err != nil {
			return fmt.Errorf("storing an enrolment link: %w", err)
		}
		return nil
	})
}

// EnrolLinkUser returns the user whose unexpired enrolment link has the
// secret token, without using the link; [core.ErrNotFound] otherwise.
func (s *FactorStore) EnrolLinkUser(ctx context.Context, token string) (*users.User, error) {
	var userID string
	if err := s.db.QueryRow(ctx, s.db, `SELECT user_id FROM nsauth_enrol_links WHERE link_hash = ? AND expires_at > ?`,
		core.HashSecret(token), s.db.NowMillis()).Scan(&userID); err != nil {
		return nil, core.NotFound(err, "enrolment link")
	}
	return s.users.UserByID(ctx, userID)
}

// TakeEnrolLink uses up the unexpired enrolment link with the secret
// token, which must belong to userID: of two simultaneous uses exactly
// one succeeds. It fails with [core.ErrNotFound] otherwise.
func (s *FactorStore) TakeEnrolLink(ctx context.Context, token, userID string) error {
	res, err := s.db.Exec(ctx, s.db, `DELETE FROM nsauth_enrol_links WHERE link_hash = ? AND user_id = ? AND expires_at > ?`,
		core.HashSecret(token), userID, s.db.NowMillis())
	if err != nil {
		return fmt.Errorf("using an enrolment link: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("enrolment link: %w", core.ErrNotFound)
	}
	return nil
}

// RevokeEnrolLink removes the user's enrolment link, if any, and reports
// whether there was a live one.
func (s *FactorStore) RevokeEnrolLink(ctx context.Context, userID string) (bool, error) {
	res, err := s.db.Exec(ctx, s.db, `DELETE FROM nsauth_enrol_links WHERE user_id = ?`, userID)
	if err != nil {
		return false, fmt.Errorf("revoking an enrolment link: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
