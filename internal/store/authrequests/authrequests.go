// Package authrequests keeps completed authorization requests and the
// codes issued for them: a request completes once, and its code is
// redeemed once (a replayed code revokes what it yielded).
package authrequests

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/revocations"
)

// CodeRetention is how long a redeemed or expired code's digest is kept,
// so a late replay is still recognised (and punished) rather than looking
// like an unknown code.
const CodeRetention = 24 * time.Hour

// RequestStore keeps completed authorization requests and their codes.
type RequestStore struct {
	db  *core.DB
	rev *revocations.Revoker
}

// New returns the authorization requests of db; a replayed code revokes
// its grant through rev.
func New(db *core.DB, rev *revocations.Revoker) *RequestStore {
	return &RequestStore{db: db, rev: rev}
}

// AuthRequest is an authorization request. Pending ones are not stored
// (the built-in provider hands them to the browser sealed); a request is
// stored once a user has logged in for it, and redeemed through its code.
type AuthRequest struct {
	ID                  string
	ClientID            string
	RedirectURI         string
	Scopes              []string
	State               string
	Nonce               string
	ResponseType        string
	ResponseMode        string
	CodeChallenge       string
	CodeChallengeMethod string
	Prompt              []string
	LoginHint           string
	// Resources are the audiences (RFC 8707 resource, or audience) the
	// request asked its access tokens to be for, besides nsauth's own.
	Resources []string
	// MaxAge is the request's max_age when HasMaxAge: the longest time
	// since the user last proved who they are that the app accepts.
	MaxAge    time.Duration
	HasMaxAge bool
	CreatedAt time.Time
	ExpiresAt time.Time
	// UserID, AuthTime and AMR are set once the user has logged in.
	UserID   string
	AuthTime time.Time
	AMR      []string
}

// Done reports whether a user has logged in for the request.
func (r *AuthRequest) Done() bool { return r.UserID != "" }

// InsertCompletedAuthRequest records that userID logged in for r, a
// request that was pending until now: r is stored already completed, in
// one statement. r.ID and r.ExpiresAt must be set; the stored expiry is
// extended to at least minRemaining from now, so the code the request
// yields outlives it. On success r holds what was stored (UserID, AuthTime,
// AMR, the expiry, and CreatedAt when it was zero).
//
// A request completes once, across every process sharing the database: it
// fails with [core.ErrConflict] when a request with r.ID was completed before,
// even if its row was deleted since (its code's digest outlives the row),
// and with [core.ErrNotFound] when r has expired.
func (s *RequestStore) InsertCompletedAuthRequest(ctx context.Context, r *AuthRequest, userID string, amr []string, minRemaining time.Duration) error {
	if r.ID == "" || r.ExpiresAt.IsZero() {
		return errors.New("a completed auth request needs an id and an expiry")
	}
	now := s.db.Now()
	if !r.ExpiresAt.After(now) {
		return fmt.Errorf("auth request: %w", core.ErrNotFound)
	}
	expires := r.ExpiresAt
	if floor := now.Add(minRemaining); expires.Before(floor) {
		expires = floor
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	maxAge := sql.NullInt64{Int64: r.MaxAge.Milliseconds(), Valid: r.HasMaxAge}
	res, err := s.db.Exec(ctx, s.db, `INSERT INTO nsauth_auth_requests (id, client_id, redirect_uri, scopes, state, nonce, response_type,
		response_mode, code_challenge, code_challenge_method, prompt, login_hint, resources, max_age_ms, created_at, expires_at, user_id, auth_time, amr)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
		WHERE NOT EXISTS (SELECT 1 FROM nsauth_auth_codes WHERE auth_request_id = ?)`,
		r.ID, r.ClientID, r.RedirectURI, core.JoinList(r.Scopes), r.State, r.Nonce, r.ResponseType,
		r.ResponseMode, r.CodeChallenge, r.CodeChallengeMethod, core.JoinList(r.Prompt), r.LoginHint, core.JoinList(r.Resources), maxAge,
		r.CreatedAt.UnixMilli(), expires.UnixMilli(), userID, now.UnixMilli(), core.JoinList(amr), r.ID)
	if err != nil {
		if s.db.Dialect.IsUnique(err) {
			return fmt.Errorf("auth request completed before: %w", core.ErrConflict)
		}
		return fmt.Errorf("storing completed auth request: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("auth request completed before: %w", core.ErrConflict)
	}
	r.ExpiresAt = expires
	r.UserID, r.AuthTime, r.AMR = userID, time.UnixMilli(now.UnixMilli()), amr
	return nil
}

const authRequestColumns = `id, client_id, redirect_uri, scopes, state, nonce, response_type, response_mode, code_challenge,
	code_challenge_method, prompt, login_hint, resources, max_age_ms, created_at, expires_at, user_id, auth_time, amr`

func scanAuthRequest(row core.Scanner) (*AuthRequest, error) {
	var r AuthRequest
	var scopes, prompt, resources, amr string
	var created, expires int64
	var userID sql.NullString
	var authTime, maxAge sql.NullInt64
	if err := row.Scan(&r.ID, &r.ClientID, &r.RedirectURI, &scopes, &r.State, &r.Nonce, &r.ResponseType, &r.ResponseMode,
		&r.CodeChallenge, &r.CodeChallengeMethod, &prompt, &r.LoginHint, &resources, &maxAge, &created, &expires, &userID, &authTime, &amr); err != nil {
		return nil, err
	}
	r.Scopes, r.Prompt, r.Resources, r.AMR = core.SplitList(scopes), core.SplitList(prompt), core.SplitList(resources), core.SplitList(amr)
	r.MaxAge, r.HasMaxAge = time.Duration(maxAge.Int64)*time.Millisecond, maxAge.Valid
	r.CreatedAt, r.ExpiresAt = time.UnixMilli(created), time.UnixMilli(expires)
	r.UserID = userID.String
	r.AuthTime = core.FromMillis(authTime)
	return &r, nil
}

// AuthRequestByID returns an unexpired completed auth request, or an
// error wrapping [core.ErrNotFound].
func (s *RequestStore) AuthRequestByID(ctx context.Context, id string) (*AuthRequest, error) {
	r, err := scanAuthRequest(s.db.QueryRow(ctx, s.db, `SELECT `+authRequestColumns+` FROM nsauth_auth_requests
		WHERE id = ? AND expires_at > ?`, id, s.db.NowMillis()))
	if err != nil {
		return nil, core.NotFound(err, "auth request")
	}
	return r, nil
}

// DeleteAuthRequest deletes an auth request. Its code's digest, if any, is
// kept past its expiry, so a replay can still be recognised and the
// request cannot be completed again.
func (s *RequestStore) DeleteAuthRequest(ctx context.Context, id string) error {
	if _, err := s.db.Exec(ctx, s.db, `DELETE FROM nsauth_auth_requests WHERE id = ?`, id); err != nil {
		return fmt.Errorf("deleting auth request: %w", err)
	}
	return nil
}

// SaveCode stores the authorization code issued for a completed auth
// request, under its digest. One request yields at most one code; a second
// one is refused with [core.ErrConflict].
func (s *RequestStore) SaveCode(ctx context.Context, code, authRequestID string, expiresAt time.Time) error {
	now := s.db.NowMillis()
	res, err := s.db.Exec(ctx, s.db, `INSERT INTO nsauth_auth_codes (code_hash, auth_request_id, created_at, expires_at)
		SELECT ?, id, ?, ? FROM nsauth_auth_requests WHERE id = ? AND user_id IS NOT NULL AND expires_at > ?`,
		core.HashSecret(code), now, expiresAt.UnixMilli(), authRequestID, now)
	if err != nil {
		if s.db.Dialect.IsUnique(err) {
			return fmt.Errorf("code for auth request: %w", core.ErrConflict)
		}
		return fmt.Errorf("storing code: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("completed auth request: %w", core.ErrNotFound)
	}
	return nil
}

// RedeemCode marks a code used and returns its auth request. A code is
// good once: presenting it again fails with [core.ErrReused] after revoking
// every token issued from it (RFC 6749 §4.1.2). An unknown or expired code
// fails with [core.ErrNotFound].
func (s *RequestStore) RedeemCode(ctx context.Context, code string) (*AuthRequest, error) {
	hash := core.HashSecret(code)
	var out *AuthRequest
	var reused bool
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		now := s.db.NowMillis()
		var reqID string
		err := s.db.QueryRow(ctx, tx, `UPDATE nsauth_auth_codes SET used_at = ?
			WHERE code_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING auth_request_id`, now, hash, now).Scan(&reqID)
		if errors.Is(err, sql.ErrNoRows) {
			var usedAt sql.NullInt64
			err := s.db.QueryRow(ctx, tx, `SELECT auth_request_id, used_at FROM nsauth_auth_codes WHERE code_hash = ?`, hash).Scan(&reqID, &usedAt)
			if err != nil {
				return core.NotFound(err, "code")
			}
			if !usedAt.Valid {
				return fmt.Errorf("code expired: %w", core.ErrNotFound)
			}
			// The auth request id is the grant id of everything issued from it.
			reused = true
			return s.rev.Grant(ctx, tx, reqID)
		}
		if err != nil {
			return fmt.Errorf("redeeming code: %w", err)
		}
		r, err := scanAuthRequest(s.db.QueryRow(ctx, tx, `SELECT `+authRequestColumns+` FROM nsauth_auth_requests WHERE id = ?`, reqID))
		if err != nil {
			return core.NotFound(err, "auth request of code")
		}
		out = r
		return nil
	})
	if reused && err == nil {
		return nil, fmt.Errorf("code: %w", core.ErrReused)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
