// Package tokens keeps the records of refresh and access tokens: refresh
// tokens rotated once each (with a grace for a retry whose answer was
// lost), and access tokens recorded so that they can be refused before
// they expire. Token values are never stored, only their digests.
package tokens

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/revocations"
)

// TokenStore keeps refresh and access token records.
type TokenStore struct {
	db     *core.DB
	rev    *revocations.Revoker
	events EventWriter
}

// EventWriter stores an audit event in the transaction of the change it
// tells of (the audit trail's auditlog.AuditStore): a token's issue and
// its event are committed together, or neither is.
type EventWriter interface {
	InsertAuditEventIn(ctx context.Context, q core.Querier, e audit.Event) error
}

// New returns the token records of db, revoked through rev, whose events
// of issue are stored through events.
func New(db *core.DB, rev *revocations.Revoker, events EventWriter) *TokenStore {
	return &TokenStore{db: db, rev: rev, events: events}
}

// event stores e through q; nothing when e is nil.
func (s *TokenStore) event(ctx context.Context, q core.Querier, e *audit.Event) error {
	if e == nil {
		return nil
	}
	return s.events.InsertAuditEventIn(ctx, q, *e)
}

// Grant is what a chain of tokens was issued for: one user's consent to one
// client, from one authorization code. Its ID (the auth request's id) ties
// the chain together for revocation.
type Grant struct {
	ID       string
	UserID   string
	ClientID string
	Scopes   []string
	Audience []string
	// Resources are the audiences of the grant's access tokens besides
	// nsauth's own (RFC 8707).
	Resources []string
	AuthTime  time.Time
	AMR       []string
}

// RefreshToken is the stored record of a refresh token. Its value is never
// stored, only its digest.
type RefreshToken struct {
	ID string
	Grant
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
	RevokedAt time.Time
}

// CreateRefreshToken stores the first refresh token of a grant and returns
// its id.
func (s *TokenStore) CreateRefreshToken(ctx context.Context, value string, g Grant, expiresAt time.Time) (string, error) {
	id := core.NewID()
	if err := s.insertRefreshToken(ctx, s.db, id, value, g, expiresAt); err != nil {
		return "", err
	}
	return id, nil
}

// CreateRefreshTokenWithAccess is [TokenStore.CreateRefreshToken] that
// also records at, the access token issued beside the refresh token (its
// CreatedAt set to now), and e, the event of their issue, in the same
// write transaction: a code exchange stores its tokens and their event
// with one commit. A nil at records none, a nil e stores none.
func (s *TokenStore) CreateRefreshTokenWithAccess(ctx context.Context, value string, g Grant, expiresAt time.Time, at *AccessToken, e *audit.Event) (string, error) {
	id := core.NewID()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.event(ctx, tx, e); err != nil {
			return err
		}
		if err := s.insertRefreshToken(ctx, tx, id, value, g, expiresAt); err != nil {
			return err
		}
		return s.recordAccessToken(ctx, tx, at)
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

func (s *TokenStore) insertRefreshToken(ctx context.Context, q core.Querier, id, value string, g Grant, expiresAt time.Time) error {
	_, err := s.db.Exec(ctx, q, `INSERT INTO nsauth_refresh_tokens (id, token_hash, family_id, user_id, client_id, scopes, audience,
		resources, auth_time, amr, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, core.HashSecret(value), g.ID, g.UserID, g.ClientID, core.JoinList(g.Scopes), core.JoinList(g.Audience),
		core.JoinList(g.Resources), g.AuthTime.UnixMilli(), core.JoinList(g.AMR), s.db.NowMillis(), expiresAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("storing refresh token: %w", err)
	}
	return nil
}

const refreshColumns = `id, family_id, user_id, client_id, scopes, audience, resources, auth_time, amr, created_at, expires_at, used_at, revoked_at`

func scanRefresh(row core.Scanner) (*RefreshToken, error) {
	var t RefreshToken
	var scopes, aud, resources, amr string
	var authTime, created, expires int64
	var used, revoked sql.NullInt64
	if err := row.Scan(&t.ID, &t.Grant.ID, &t.UserID, &t.ClientID, &scopes, &aud, &resources, &authTime, &amr, &created, &expires, &used, &revoked); err != nil {
		return nil, err
	}
	t.Scopes, t.Audience, t.Resources, t.AMR = core.SplitList(scopes), core.SplitList(aud), core.SplitList(resources), core.SplitList(amr)
	t.AuthTime, t.CreatedAt, t.ExpiresAt = time.UnixMilli(authTime), time.UnixMilli(created), time.UnixMilli(expires)
	t.UsedAt, t.RevokedAt = core.FromMillis(used), core.FromMillis(revoked)
	return &t, nil
}

// RefreshTokenByValue looks a refresh token up by its value and checks that
// it may be used: unknown or expired tokens fail with [core.ErrNotFound],
// revoked ones with [core.ErrRevoked], and a token that was already rotated
// fails with [core.ErrReused] after its whole family has been revoked (RFC 9700
// §4.14.2): either the client or an attacker holds a stolen copy, and the
// server cannot tell which.
func (s *TokenStore) RefreshTokenByValue(ctx context.Context, value string) (*RefreshToken, error) {
	return s.RefreshTokenByValueWithGrace(ctx, value, Grace{})
}

func (s *TokenStore) checkRefresh(ctx context.Context, t *RefreshToken) error {
	switch {
	case !t.RevokedAt.IsZero():
		return fmt.Errorf("refresh token: %w", core.ErrRevoked)
	case !t.UsedAt.IsZero():
		if err := s.db.InTx(ctx, func(tx *sql.Tx) error { return s.rev.Grant(ctx, tx, t.Grant.ID) }); err != nil {
			return err
		}
		return fmt.Errorf("refresh token: %w", core.ErrReused)
	case !s.db.Now().Before(t.ExpiresAt):
		return &ExpiredError{AuthTime: t.AuthTime, ExpiresAt: t.ExpiresAt}
	}
	return nil
}

// ExpiredError is the error of an expired refresh token. It wraps
// [core.ErrNotFound] (an expired token is as good as none) and carries the
// token's times, so that a caller can tell a session that reached its
// maximum lifetime from an idle one.
type ExpiredError struct {
	AuthTime  time.Time
	ExpiresAt time.Time
}

func (e *ExpiredError) Error() string { return "refresh token expired" }
func (e *ExpiredError) Unwrap() error { return core.ErrNotFound }

// RotateRefreshToken marks the refresh token oldID used and stores its
// successor, atomically: of two concurrent rotations of one token, one
// succeeds and the other fails with [core.ErrReused], revoking the family. The
// successor inherits the grant (its Resources too: a refresh that asks for
// fewer resources narrows its access token, r.Access, not the grant);
// scopes may be narrowed by the caller.
func (s *TokenStore) RotateRefreshToken(ctx context.Context, oldID, newValue string, scopes []string, expiresAt time.Time) (string, error) {
	r, err := s.RotateRefreshTokenWithGrace(ctx, Rotation{OldID: oldID, NewValue: newValue, Scopes: scopes, ExpiresAt: expiresAt})
	return r.ID, err
}

// RotateRefreshTokenWithGrace is [TokenStore.RotateRefreshToken] with the
// rotation grace of r.Grace (see refreshgrace.go): the rotated token keeps
// its successor sealed for the grace window, and a token already rotated
// within it answers with that same successor instead of revoking the
// family, when the rules of [Grace] allow. r.Access, when given, is
// recorded with the successor, or with its retry.
func (s *TokenStore) RotateRefreshTokenWithGrace(ctx context.Context, r Rotation) (Rotated, error) {
	oldID, newValue, scopes, expiresAt := r.OldID, r.NewValue, r.Scopes, r.ExpiresAt
	newID := core.NewID()
	sealed, err := sealSuccessor(r, newID)
	if err != nil {
		return Rotated{}, err
	}
	var reused bool
	var retried Rotated
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var family string
		if err := s.db.QueryRow(ctx, tx, `SELECT family_id FROM nsauth_refresh_tokens WHERE id = ?`, oldID).Scan(&family); err != nil {
			return core.NotFound(err, "refresh token")
		}
		if err := s.rev.LockFamily(ctx, tx, family); err != nil {
			return err
		}
		now := s.db.NowMillis()
		t, err := scanRefresh(s.db.QueryRow(ctx, tx, `UPDATE nsauth_refresh_tokens SET used_at = ?, successor_id = ?, successor_sealed = ?
			WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ? RETURNING `+refreshColumns, now, newID, sealed, oldID, now))
		if errors.Is(err, sql.ErrNoRows) {
			if retried, err = s.retryRotation(ctx, tx, r); err != nil {
				return err
			}
			if retried.Retried {
				if err := s.event(ctx, tx, r.event(retried)); err != nil {
					return err
				}
				return s.recordAccessToken(ctx, tx, r.Access)
			}
			reused = true
			return s.rev.Grant(ctx, tx, family)
		}
		if err != nil {
			return fmt.Errorf("rotating refresh token: %w", err)
		}
		g := t.Grant
		if scopes != nil {
			g.Scopes = scopes
		}
		if err := s.event(ctx, tx, r.event(Rotated{ID: newID, Value: newValue})); err != nil {
			return err
		}
		if err := s.insertRefreshToken(ctx, tx, newID, newValue, g, expiresAt); err != nil {
			return err
		}
		if err := s.recordAccessToken(ctx, tx, r.Access); err != nil {
			return err
		}
		return s.dropPredecessorStash(ctx, tx, g.ID, oldID)
	})
	if reused && err == nil {
		return Rotated{}, fmt.Errorf("refresh token: %w", core.ErrReused)
	}
	if err != nil {
		return Rotated{}, err
	}
	if retried.Retried {
		return retried, nil
	}
	return Rotated{ID: newID, Value: newValue}, nil
}

// RevokeRefreshToken revokes one refresh token and, because a refresh token
// stands for its whole grant, every token of its family.
func (s *TokenStore) RevokeRefreshToken(ctx context.Context, id string) error {
	var family string
	if err := s.db.QueryRow(ctx, s.db, `SELECT family_id FROM nsauth_refresh_tokens WHERE id = ?`, id).Scan(&family); err != nil {
		return core.NotFound(err, "refresh token")
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error { return s.rev.Grant(ctx, tx, family) })
}

// RevokeGrant revokes every refresh and access token of the grant grantID
// (one login's session at one client) when that grant is userID's at
// clientID, and returns how many tokens it revoked. Tokens of anyone else's
// grant are left alone; an unknown grant, or one already revoked, revokes
// nothing and is not an error.
func (s *TokenStore) RevokeGrant(ctx context.Context, grantID, userID, clientID string) (int64, error) {
	now := s.db.NowMillis()
	var n int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.rev.LockFamily(ctx, tx, grantID); err != nil {
			return err
		}
		res, err := s.db.Exec(ctx, tx, `UPDATE nsauth_refresh_tokens SET revoked_at = ? WHERE family_id = ? AND user_id = ? AND client_id = ? AND revoked_at IS NULL`,
			now, grantID, userID, clientID)
		if err != nil {
			return fmt.Errorf("revoking grant: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("revoking grant: %w", err)
		}
		c, err := s.rev.AccessTokens(ctx, tx, now, revocations.OfUsersGrant(grantID, userID, clientID))
		n += c
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// AccessToken is the stored record of an issued access token, keyed by its
// `jti`, so that introspection, userinfo and revocation can refuse it
// before it expires.
type AccessToken struct {
	ID      string
	GrantID string
	// UserID is empty for a machine client's token.
	UserID   string
	ClientID string
	Scopes   []string
	// AMR is how the user authenticated (the grant's amr); nil for a
	// machine client's token.
	AMR []string
	// Resources are the token's audiences besides nsauth's own.
	Resources []string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time
}

// RecordAccessToken stores an access token's record. CreatedAt is now. A
// machine client's token has no UserID.
func (s *TokenStore) RecordAccessToken(ctx context.Context, t *AccessToken) error {
	return s.recordAccessToken(ctx, s.db, t)
}

// RecordAccessTokenWithEvent is [TokenStore.RecordAccessToken] that
// stores e, the audit event of the token's issue, in the same write
// transaction (audit.Recorder.RecordWith): a machine token costs one
// commit, and the trail holds its event exactly when the token was
// recorded. A nil e records the token alone.
func (s *TokenStore) RecordAccessTokenWithEvent(ctx context.Context, t *AccessToken, e *audit.Event) error {
	if e == nil {
		return s.RecordAccessToken(ctx, t)
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.event(ctx, tx, e); err != nil {
			return err
		}
		return s.recordAccessToken(ctx, tx, t)
	})
}

// recordAccessToken is [TokenStore.RecordAccessToken] through q; nothing when t
// is nil.
func (s *TokenStore) recordAccessToken(ctx context.Context, q core.Querier, t *AccessToken) error {
	if t == nil {
		return nil
	}
	t.CreatedAt = s.db.Now()
	_, err := s.db.Exec(ctx, q, `INSERT INTO nsauth_access_tokens (id, grant_id, user_id, client_id, scopes, amr, resources, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.ID, t.GrantID, sql.NullString{String: t.UserID, Valid: t.UserID != ""}, t.ClientID, core.JoinList(t.Scopes),
		core.JoinList(t.AMR), core.JoinList(t.Resources), t.CreatedAt.UnixMilli(), t.ExpiresAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("recording access token: %w", err)
	}
	return nil
}

// ActiveAccessToken returns the record of an access token that is neither
// expired nor revoked, or an error wrapping [core.ErrNotFound] or [core.ErrRevoked].
func (s *TokenStore) ActiveAccessToken(ctx context.Context, id string) (*AccessToken, error) {
	var t AccessToken
	var scopes, amr, resources string
	var created, expires int64
	var revoked sql.NullInt64
	err := s.db.QueryRow(ctx, s.db, `SELECT id, grant_id, COALESCE(user_id, ''), client_id, scopes, amr, resources, created_at, expires_at, revoked_at
		FROM nsauth_access_tokens WHERE id = ?`, id).Scan(&t.ID, &t.GrantID, &t.UserID, &t.ClientID, &scopes, &amr, &resources, &created, &expires, &revoked)
	if err != nil {
		return nil, core.NotFound(err, "access token")
	}
	t.AMR, t.Resources = core.SplitList(amr), core.SplitList(resources)
	t.Scopes, t.CreatedAt, t.ExpiresAt, t.RevokedAt = core.SplitList(scopes), time.UnixMilli(created), time.UnixMilli(expires), core.FromMillis(revoked)
	if !t.RevokedAt.IsZero() {
		return nil, fmt.Errorf("access token: %w", core.ErrRevoked)
	}
	if !s.db.Now().Before(t.ExpiresAt) {
		return nil, fmt.Errorf("access token expired: %w", core.ErrNotFound)
	}
	return &t, nil
}

// RevokeAccessToken revokes one access token.
func (s *TokenStore) RevokeAccessToken(ctx context.Context, id string) error {
	_, err := s.rev.AccessTokens(ctx, s.db, s.db.NowMillis(), revocations.ByID(id))
	return err
}

// RevokeUserTokensExcept revokes every refresh and access token of userID
// but those of the grants keepGrantIDs, at once: after a password change
// on the account page, the tokens issued within the session it was
// changed in stay valid and every other one is refused. Access tokens are
// revoked as every revocation is (see package revocations), so servers
// following revocations refuse them promptly.
func (s *TokenStore) RevokeUserTokensExcept(ctx context.Context, userID string, keepGrantIDs []string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		return s.rev.UserTokensExcept(ctx, tx, userID, keepGrantIDs)
	})
}
