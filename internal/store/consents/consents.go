// Package consents keeps what users allowed third-party apps: the scopes
// each user consented to per app, until revoked.
package consents

import (
	"context"
	"errors"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
)

var errNotYet = errors.New("consents: not implemented yet")

// ConsentStore keeps consents.
type ConsentStore struct {
	db *core.DB
}

// New returns the consents of db.
func New(db *core.DB) *ConsentStore { return &ConsentStore{db: db} }

// Consent is what one user allowed one app.
type Consent struct {
	UserID    string
	ClientID  string
	Scopes    []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ConsentedScopes returns the scopes userID allowed clientID (nil when
// none).
func (s *ConsentStore) ConsentedScopes(ctx context.Context, userID, clientID string) ([]string, error) {
	return nil, errNotYet
}

// GrantConsent adds scopes to what userID allowed clientID.
func (s *ConsentStore) GrantConsent(ctx context.Context, userID, clientID string, scopes []string) error {
	return errNotYet
}

// RevokeConsent forgets what userID allowed clientID, or fails with
// [core.ErrNotFound].
func (s *ConsentStore) RevokeConsent(ctx context.Context, userID, clientID string) error {
	return errNotYet
}

// ListConsents returns userID's consents ("" for every user's).
func (s *ConsentStore) ListConsents(ctx context.Context, userID string) ([]Consent, error) {
	return nil, errNotYet
}
