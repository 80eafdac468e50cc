// Package sessions keeps the browser sessions of the built-in provider:
// after a login, the browser holds a session cookie whose digest names a
// row here, so that another app's login (or the same app's, later) can
// complete without the password. A session records the grants (one per
// app login, the grant id being the completed auth request's id) issued
// within it, so that ending it can revoke them.
package sessions

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/revocations"
)

// Retention is how long a session is kept after it ended or expired.
const Retention = 24 * time.Hour

// SessionStore keeps browser sessions.
type SessionStore struct {
	db  *core.DB
	rev *revocations.Revoker
}

// New returns the sessions of db, whose grants rev revokes.
func New(db *core.DB, rev *revocations.Revoker) *SessionStore {
	return &SessionStore{db: db, rev: rev}
}

// Session is a browser session: one user, proven with AMR at AuthTime, in
// one browser (Browser: the id of the device cookie the login gave it).
type Session struct {
	ID       string
	UserID   string
	Browser  string
	AuthTime time.Time
	AMR      []string
	// CreatedAt, LastSeenAt: when it began and was last used;
	// ExpiresAt is its absolute end; EndedAt is set once it ended.
	CreatedAt, LastSeenAt, ExpiresAt, EndedAt time.Time
}

// Grant is a grant issued within a session: one app's login.
type Grant struct {
	SessionID string
	GrantID   string
	ClientID  string
	// Offline is whether the grant has offline access (its refresh token
	// was asked for with offline_access).
	Offline bool
	// Revoked is set by [SessionStore.EndSession] on the grants it revoked.
	Revoked bool
}

// CreateSession stores sess under the digest of token (the cookie's
// value, never stored). sess.ID is generated when empty; CreatedAt and
// LastSeenAt are now. UserID, Browser and ExpiresAt are required.
func (s *SessionStore) CreateSession(ctx context.Context, sess *Session, token string) error {
	if sess.UserID == "" || sess.Browser == "" || sess.ExpiresAt.IsZero() || token == "" {
		return errors.New("a session needs a user, a browser, an expiry and a token")
	}
	if sess.ID == "" {
		sess.ID = core.NewID()
	}
	now := time.UnixMilli(s.db.NowMillis())
	sess.CreatedAt, sess.LastSeenAt, sess.EndedAt = now, now, time.Time{}
	sess.AuthTime, sess.ExpiresAt = time.UnixMilli(sess.AuthTime.UnixMilli()), time.UnixMilli(sess.ExpiresAt.UnixMilli())
	_, err := s.db.Exec(ctx, s.db, `INSERT INTO nsauth_browser_sessions (id, token_hash, user_id, browser, auth_time, amr, created_at, last_seen_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, sess.ID, core.HashSecret(token), sess.UserID, sess.Browser, sess.AuthTime.UnixMilli(),
		core.JoinList(sess.AMR), now.UnixMilli(), now.UnixMilli(), sess.ExpiresAt.UnixMilli())
	if err != nil {
		if s.db.Dialect.IsUnique(err) {
			return fmt.Errorf("session: %w", core.ErrConflict)
		}
		return fmt.Errorf("storing session: %w", err)
	}
	return nil
}

const sessionColumns = `id, user_id, browser, auth_time, amr, created_at, last_seen_at, expires_at, ended_at`

func scanSession(row core.Scanner) (*Session, error) {
	var sess Session
	var amr string
	var authTime, created, seen, expires int64
	var ended sql.NullInt64
	if err := row.Scan(&sess.ID, &sess.UserID, &sess.Browser, &authTime, &amr, &created, &seen, &expires, &ended); err != nil {
		return nil, err
	}
	sess.AMR = core.SplitList(amr)
	sess.AuthTime, sess.CreatedAt, sess.LastSeenAt = time.UnixMilli(authTime), time.UnixMilli(created), time.UnixMilli(seen)
	sess.ExpiresAt, sess.EndedAt = time.UnixMilli(expires), core.FromMillis(ended)
	return &sess, nil
}

// Live reports whether the session has neither ended nor expired at now.
func (sess *Session) Live(now time.Time) bool {
	return sess.EndedAt.IsZero() && now.Before(sess.ExpiresAt)
}

// liveAt is the rule of a live session, for a WHERE clause: not ended,
// not past expires_at, and seen within idle (when idle > 0). Its
// arguments are [liveArgs].
const liveAt = `ended_at IS NULL AND expires_at > ? AND last_seen_at > ?`

func liveArgs(now int64, idle time.Duration) []any {
	seenAfter := int64(-1)
	if idle > 0 {
		seenAfter = now - idle.Milliseconds()
	}
	return []any{now, seenAfter}
}

// SessionByToken returns the live session whose cookie value is token. A
// session that ended, passed ExpiresAt, or was not seen for idle (when
// idle > 0) fails with [core.ErrNotFound]. It does not mark the session
// seen: a cookie is not a use of its session until the caller checked
// that it came from the session's browser ([SessionStore.TouchSession]).
func (s *SessionStore) SessionByToken(ctx context.Context, token string, idle time.Duration) (*Session, error) {
	sess, err := scanSession(s.db.QueryRow(ctx, s.db, `SELECT `+sessionColumns+` FROM nsauth_browser_sessions
		WHERE token_hash = ? AND `+liveAt, append([]any{core.HashSecret(token)}, liveArgs(s.db.NowMillis(), idle)...)...))
	if err != nil {
		return nil, core.NotFound(err, "session")
	}
	return sess, nil
}

// TouchSession marks session id seen now, as used by browser (the device
// id of the request's device cookie), and returns it. Only the session's
// own browser can keep it alive: a session bound to another browser, or
// no longer live by the rule of [SessionStore.SessionByToken] (it may
// have ended since it was read), is left as it is and fails with
// [core.ErrNotFound].
func (s *SessionStore) TouchSession(ctx context.Context, id, browser string, idle time.Duration) (*Session, error) {
	now := s.db.NowMillis()
	sess, err := scanSession(s.db.QueryRow(ctx, s.db, `UPDATE nsauth_browser_sessions SET last_seen_at = ?
		WHERE id = ? AND browser = ? AND `+liveAt+` RETURNING `+sessionColumns,
		append([]any{now, id, browser}, liveArgs(now, idle)...)...))
	if err != nil {
		return nil, core.NotFound(err, "session")
	}
	return sess, nil
}

// SessionByID returns a session, live or not, or [core.ErrNotFound].
func (s *SessionStore) SessionByID(ctx context.Context, id string) (*Session, error) {
	sess, err := scanSession(s.db.QueryRow(ctx, s.db, `SELECT `+sessionColumns+` FROM nsauth_browser_sessions WHERE id = ?`, id))
	if err != nil {
		return nil, core.NotFound(err, "session")
	}
	return sess, nil
}

// SessionOfGrant returns the session, live or not, within which grant
// grantID (an ID token's sid) was issued, or [core.ErrNotFound] when it
// was issued outside any (a device login, say).
func (s *SessionStore) SessionOfGrant(ctx context.Context, grantID string) (*Session, error) {
	sess, err := scanSession(s.db.QueryRow(ctx, s.db, `SELECT `+sessionColumns+` FROM nsauth_browser_sessions
		WHERE id = (SELECT session_id FROM nsauth_session_grants WHERE grant_id = ? ORDER BY created_at DESC LIMIT 1)`, grantID))
	if err != nil {
		return nil, core.NotFound(err, "session")
	}
	return sess, nil
}

// ListSessions returns the live sessions (not ended, not past ExpiresAt) of
// userID, or of every user when userID is "", newest first.
func (s *SessionStore) ListSessions(ctx context.Context, userID string) ([]Session, error) {
	q := `SELECT ` + sessionColumns + ` FROM nsauth_browser_sessions WHERE ended_at IS NULL AND expires_at > ?`
	args := []any{s.db.NowMillis()}
	if userID != "" {
		q += ` AND user_id = ?`
		args = append(args, userID)
	}
	return core.QueryAll(ctx, s.db, "listing sessions", scanSession, q+` ORDER BY created_at DESC, id`, args...)
}

// AddSessionGrant records that grant g was issued within session
// g.SessionID. The session must be live: recording a grant in a session
// that ended (concurrently, say) fails with [core.ErrNotFound], so that
// no grant escapes the end of its session. Recording a grant twice is not
// an error.
func (s *SessionStore) AddSessionGrant(ctx context.Context, g Grant) error {
	if g.SessionID == "" || g.GrantID == "" || g.ClientID == "" {
		return errors.New("a session grant needs a session, a grant and a client")
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		now := s.db.NowMillis()
		var id string
		if err := s.db.QueryRow(ctx, tx, `SELECT id FROM nsauth_browser_sessions WHERE id = ? AND ended_at IS NULL AND expires_at > ?`+s.db.Dialect.LockRows,
			g.SessionID, now).Scan(&id); err != nil {
			return core.NotFound(err, "live session")
		}
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_session_grants (session_id, grant_id, client_id, offline, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id, grant_id) DO NOTHING`, g.SessionID, g.GrantID, g.ClientID, boolInt(g.Offline), now); err != nil {
			return fmt.Errorf("recording session grant: %w", err)
		}
		return nil
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func scanGrant(row core.Scanner) (*Grant, error) {
	var g Grant
	var offline int
	var revoked sql.NullInt64
	if err := row.Scan(&g.SessionID, &g.GrantID, &g.ClientID, &offline, &revoked); err != nil {
		return nil, err
	}
	g.Offline, g.Revoked = offline != 0, revoked.Valid
	return &g, nil
}

const grantColumns = `session_id, grant_id, client_id, offline, revoked_at`

// SessionGrants lists the grants issued within a session, oldest first.
func (s *SessionStore) SessionGrants(ctx context.Context, sessionID string) ([]Grant, error) {
	return core.QueryAll(ctx, s.db, "listing session grants", scanGrant, `SELECT `+grantColumns+` FROM nsauth_session_grants
		WHERE session_id = ? ORDER BY created_at, grant_id`, sessionID)
}

// EndSession ends session id and revokes, in the same transaction, each
// of its grants for which keep returns false (keep nil: all of them). It
// returns every grant of the session, those revoked (now or before)
// marked Revoked. Ending a session that already ended revokes nothing
// more and is not an error; an unknown id fails with [core.ErrNotFound].
func (s *SessionStore) EndSession(ctx context.Context, id string, keep func(Grant) bool) ([]Grant, error) {
	var out []Grant
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var ended sql.NullInt64
		if err := s.db.QueryRow(ctx, tx, `SELECT ended_at FROM nsauth_browser_sessions WHERE id = ?`+s.db.Dialect.LockRows, id).Scan(&ended); err != nil {
			return core.NotFound(err, "session")
		}
		var err error
		if ended.Valid {
			out, err = grantsOf(ctx, s.db, tx, id)
			return err
		}
		out, err = endSession(ctx, s.db, tx, s.rev, id, keep)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func grantsOf(ctx context.Context, db *core.DB, tx *sql.Tx, sessionID string) ([]Grant, error) {
	rows, err := db.Query(ctx, tx, `SELECT `+grantColumns+` FROM nsauth_session_grants WHERE session_id = ? ORDER BY created_at, grant_id`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("listing session grants: %w", err)
	}
	defer rows.Close()
	var out []Grant
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, fmt.Errorf("listing session grants: %w", err)
		}
		out = append(out, *g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing session grants: %w", err)
	}
	return out, nil
}

// endSession ends a live session (locked by the caller) and revokes its
// grants but those keep keeps, in tx.
func endSession(ctx context.Context, db *core.DB, tx *sql.Tx, rev *revocations.Revoker, id string, keep func(Grant) bool) ([]Grant, error) {
	now := db.NowMillis()
	if _, err := db.Exec(ctx, tx, `UPDATE nsauth_browser_sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL`, now, id); err != nil {
		return nil, fmt.Errorf("ending session: %w", err)
	}
	grants, err := grantsOf(ctx, db, tx, id)
	if err != nil {
		return nil, err
	}
	for i, g := range grants {
		if g.Revoked || (keep != nil && keep(g)) {
			continue
		}
		if err := rev.Grant(ctx, tx, g.GrantID); err != nil {
			return nil, err
		}
		if _, err := db.Exec(ctx, tx, `UPDATE nsauth_session_grants SET revoked_at = ? WHERE session_id = ? AND grant_id = ?`, now, id, g.GrantID); err != nil {
			return nil, fmt.Errorf("revoking session grant: %w", err)
		}
		grants[i].Revoked = true
	}
	return grants, nil
}

// EndUserSessions ends every live session of userID and revokes the grants
// issued within them; it returns how many sessions it ended.
func (s *SessionStore) EndUserSessions(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		ids, err := userSessions(ctx, s.db, tx, userID)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := endSession(ctx, s.db, tx, s.rev, id, nil); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	return n, err
}

// userSessions locks and lists the sessions of userID that have not
// ended.
func userSessions(ctx context.Context, db *core.DB, tx *sql.Tx, userID string) ([]string, error) {
	rows, err := db.Query(ctx, tx, `SELECT id FROM nsauth_browser_sessions WHERE user_id = ? AND ended_at IS NULL ORDER BY id`+db.Dialect.LockRows, userID)
	if err != nil {
		return nil, fmt.Errorf("listing the user's sessions: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("listing the user's sessions: %w", err)
		}
		ids = append(ids, id)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("listing the user's sessions: %w", err)
	}
	return ids, nil
}

// EndRevokedUserSessions ends, in tx, every session of userID, for a
// caller that revokes all the user's tokens in the same transaction (the
// users store, disabling a user or changing their password, with
// [revocations.Revoker.UserTokens]): it marks the sessions ended and their
// grants revoked without revoking anything itself. The caller calls it
// before revoking, so that, like [SessionStore.EndSession], it locks the
// sessions before the tokens' rows, and the two cannot deadlock.
func EndRevokedUserSessions(ctx context.Context, db *core.DB, tx *sql.Tx, userID string) error {
	now := db.NowMillis()
	if _, err := db.Exec(ctx, tx, `UPDATE nsauth_session_grants SET revoked_at = ? WHERE revoked_at IS NULL AND session_id IN
		(SELECT id FROM nsauth_browser_sessions WHERE user_id = ? AND ended_at IS NULL)`, now, userID); err != nil {
		return fmt.Errorf("revoking the user's session grants: %w", err)
	}
	if _, err := db.Exec(ctx, tx, `UPDATE nsauth_browser_sessions SET ended_at = ? WHERE user_id = ? AND ended_at IS NULL`, now, userID); err != nil {
		return fmt.Errorf("ending the user's sessions: %w", err)
	}
	return nil
}
