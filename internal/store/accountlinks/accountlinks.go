// Package accountlinks keeps one-time account links (nsauth users invite,
// nsauth users reset-link): an administrator's link that lets its holder
// set the user's password (and enrol a second factor) once, for a short
// time. A user has at most one live link: a new one replaces it. Only the
// digest of the link's secret is stored; the link's ID is the reference
// the audit trail names, never the secret.
//
// Disabling or deleting the user deletes the link (package users, and
// the cascade); callers audit that.
package accountlinks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
)

// LinkStore keeps one-time account links.
type LinkStore struct {
	db *core.DB
}

// New returns the account links of db.
func New(db *core.DB) *LinkStore {
	return &LinkStore{db: db}
}

// Purposes of a link.
const (
	// PurposeInvite: a new user sets a first password.
	PurposeInvite = "invite"
	// PurposeReset: a user who lost the password sets a new one.
	PurposeReset = "reset"
)

// MaxLinkTTL bounds how long a link may stay valid.
const MaxLinkTTL = 7 * 24 * time.Hour

// Retention is how long an expired link is kept, so that opening it is
// told (and audited) as expired rather than unknown; store.DeleteExpired
// deletes it after.
const Retention = 7 * 24 * time.Hour

// Link is a one-time account link. It never holds the secret.
type Link struct {
	// ID is the reference the audit trail names; it is not secret and
	// opens nothing.
	ID     string
	UserID string
	// Purpose is [PurposeInvite] or [PurposeReset].
	Purpose   string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Expired reports whether the link has expired at now.
func (l *Link) Expired(now time.Time) bool { return !now.Before(l.ExpiresAt) }

const linkColumns = `id, user_id, purpose, created_at, expires_at`

func scanLink(row core.Scanner) (*Link, error) {
	var l Link
	var created, expires int64
	if err := row.Scan(&l.ID, &l.UserID, &l.Purpose, &created, &expires); err != nil {
		return nil, err
	}
	l.CreatedAt, l.ExpiresAt = time.UnixMilli(created), time.UnixMilli(expires)
	return &l, nil
}

// CreateLink stores the link whose secret is secret for the user, for
// purpose, valid until expiresAt (in the future, at most [MaxLinkTTL]
// away). The user's previous link, if any, is deleted; when it was live
// (unexpired) it is returned as replaced, for the caller to audit as
// revoked. It fails
// with [core.ErrNotFound] when there is no such user. A disabled user may
// be given a link, but [LinkStore.TakeLink] refuses it while the user is
// disabled.
func (s *LinkStore) CreateLink(ctx context.Context, userID, purpose, secret string, expiresAt time.Time) (link *Link, replaced *Link, err error) {
	now := time.UnixMilli(s.db.NowMillis())
	if purpose != PurposeInvite && purpose != PurposeReset {
		return nil, nil, fmt.Errorf("a link's purpose is %q or %q", PurposeInvite, PurposeReset)
	}
	if secret == "" || !expiresAt.After(now) || expiresAt.Sub(now) > MaxLinkTTL {
		return nil, nil, fmt.Errorf("a link needs a secret and an expiry within %s", MaxLinkTTL)
	}
	l := &Link{ID: core.NewID(), UserID: userID, Purpose: purpose, CreatedAt: now, ExpiresAt: time.UnixMilli(expiresAt.UnixMilli())}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var id string
		if err := s.db.QueryRow(ctx, tx, `SELECT id FROM nsauth_users WHERE id = ?`+s.db.Dialect.LockRows, userID).Scan(&id); err != nil {
			return core.NotFound(err, "user")
		}
		old, err := scanLink(s.db.QueryRow(ctx, tx, `DELETE FROM nsauth_account_links WHERE user_id = ? RETURNING `+linkColumns, userID))
		switch {
		case err == nil:
			if !old.Expired(now) {
				replaced = old
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("replacing a link: %w", err)
		}
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_account_links (id, link_hash, user_id, purpose, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?)`, l.ID, core.HashSecret(secret), userID, purpose, now.UnixMilli(), l.ExpiresAt.UnixMilli()); err != nil {
			if s.db.Dialect.IsUnique(err) {
				return fmt.Errorf("link: %w", core.ErrConflict)
			}
			return fmt.Errorf("storing a link: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return l, replaced, nil
}

// LinkBySecret returns the link whose secret is secret, even when it has
// expired (the caller checks ExpiresAt, audits the expiry and deletes
// it), without using it; [core.ErrNotFound] when there is none.
func (s *LinkStore) LinkBySecret(ctx context.Context, secret string) (*Link, error) {
	if secret == "" {
		return nil, fmt.Errorf("link: %w", core.ErrNotFound)
	}
	l, err := scanLink(s.db.QueryRow(ctx, s.db, `SELECT `+linkColumns+` FROM nsauth_account_links WHERE link_hash = ?`, core.HashSecret(secret)))
	if err != nil {
		return nil, core.NotFound(err, "link")
	}
	return l, nil
}

// TakeLink uses up the link whose secret is secret: it must be userID's,
// unexpired, and the user not disabled. The link is deleted in the same
// statement, so of simultaneous uses exactly one succeeds; the others,
// and every other case, fail with [core.ErrNotFound].
func (s *LinkStore) TakeLink(ctx context.Context, secret, userID string) (*Link, error) {
	if secret == "" {
		return nil, fmt.Errorf("link: %w", core.ErrNotFound)
	}
	l, err := scanLink(s.db.QueryRow(ctx, s.db, `DELETE FROM nsauth_account_links
		WHERE link_hash = ? AND user_id = ? AND expires_at > ?
		AND EXISTS (SELECT 1 FROM nsauth_users u WHERE u.id = nsauth_account_links.user_id AND u.disabled_at IS NULL)
		RETURNING `+linkColumns, core.HashSecret(secret), userID, s.db.NowMillis()))
	if err != nil {
		return nil, core.NotFound(err, "link")
	}
	return l, nil
}

// DeleteLink deletes the link with that ID (live or expired), or fails
// with [core.ErrNotFound].
func (s *LinkStore) DeleteLink(ctx context.Context, id string) error {
	res, err := s.db.Exec(ctx, s.db, `DELETE FROM nsauth_account_links WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("deleting a link: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("link: %w", core.ErrNotFound)
	}
	return nil
}

// RevokeUserLinks deletes the user's links and returns those that were
// live (unexpired), for the caller to audit as revoked; none is not an
// error.
func (s *LinkStore) RevokeUserLinks(ctx context.Context, userID string) ([]Link, error) {
	all, err := core.QueryAll(ctx, s.db, "revoking a user's links", scanLink,
		`DELETE FROM nsauth_account_links WHERE user_id = ? RETURNING `+linkColumns, userID)
	if err != nil {
		return nil, err
	}
	now := s.db.Now()
	var live []Link
	for _, l := range all {
		if !l.Expired(now) {
			live = append(live, l)
		}
	}
	return live, nil
}

// UserLink returns the user's live (unexpired) link, or
// [core.ErrNotFound].
func (s *LinkStore) UserLink(ctx context.Context, userID string) (*Link, error) {
	l, err := scanLink(s.db.QueryRow(ctx, s.db, `SELECT `+linkColumns+` FROM nsauth_account_links WHERE user_id = ? AND expires_at > ?`,
		userID, s.db.NowMillis()))
	if err != nil {
		return nil, core.NotFound(err, "link")
	}
	return l, nil
}
