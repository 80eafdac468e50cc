// Package sessions keeps the browser sessions of the built-in provider:
// after a login, the browser holds a session cookie whose digest names a
// row here, so that another app's login (or the same app's, later) can
// complete without the password. A session records the grants (one per
// app login, the grant id being the completed auth request's id) issued
// within it, so that ending it can revoke them.
package sessions

import (
	"context"
	"errors"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/revocations"
)

var errNotYet = errors.New("sessions: not implemented yet")

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

// CreateSession stores s under the digest of token (the cookie's value,
// never stored). s.ID is generated when empty; CreatedAt and LastSeenAt
// are now.
func (s *SessionStore) CreateSession(ctx context.Context, sess *Session, token string) error {
	return errNotYet
}

// SessionByToken returns the live session whose cookie value is token, and
// marks it seen now. A session that ended, passed ExpiresAt, or was not
// seen for idle (when idle > 0) fails with [core.ErrNotFound].
func (s *SessionStore) SessionByToken(ctx context.Context, token string, idle time.Duration) (*Session, error) {
	return nil, errNotYet
}

// SessionByID returns a session, live or not, or [core.ErrNotFound].
func (s *SessionStore) SessionByID(ctx context.Context, id string) (*Session, error) {
	return nil, errNotYet
}

// ListSessions returns the live sessions (not ended, not past ExpiresAt) of
// userID, or of every user when userID is "", newest first.
func (s *SessionStore) ListSessions(ctx context.Context, userID string) ([]Session, error) {
	return nil, errNotYet
}

// AddSessionGrant records that grant g was issued within session
// g.SessionID.
func (s *SessionStore) AddSessionGrant(ctx context.Context, g Grant) error { return errNotYet }

// SessionGrants lists the grants issued within a session.
func (s *SessionStore) SessionGrants(ctx context.Context, sessionID string) ([]Grant, error) {
	return nil, errNotYet
}

// EndSession ends session id and revokes, in the same transaction, each
// of its grants for which keep returns false (keep nil: all of them). It
// returns every grant of the session, those revoked marked Revoked. Ending
// a session that already ended revokes nothing more and is not an error;
// an unknown id fails with [core.ErrNotFound].
func (s *SessionStore) EndSession(ctx context.Context, id string, keep func(Grant) bool) ([]Grant, error) {
	return nil, errNotYet
}

// EndUserSessions ends every live session of userID and revokes the grants
// issued within them; it returns how many sessions it ended.
func (s *SessionStore) EndUserSessions(ctx context.Context, userID string) (int, error) {
	return 0, errNotYet
}
