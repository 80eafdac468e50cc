// Package consents keeps what users allowed third-party apps: the scopes
// each user consented to per app, until revoked.
package consents

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
)

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
	var scopes string
	err := s.db.QueryRow(ctx, s.db, `SELECT scopes FROM nsauth_consents WHERE user_id = ? AND client_id = ?`, userID, clientID).Scan(&scopes)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading consent: %w", err)
	}
	return core.SplitList(scopes), nil
}

// GrantConsent adds scopes to what userID allowed clientID. An unknown
// user or app fails (their rows are referenced).
func (s *ConsentStore) GrantConsent(ctx context.Context, userID, clientID string, scopes []string) error {
	for _, sc := range scopes {
		if sc == "" || len(sc) > 128 || slices.ContainsFunc([]byte(sc), func(c byte) bool { return c <= ' ' || c > '~' }) {
			return errors.New("a scope must be 1 to 128 printable ASCII characters without spaces")
		}
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		now := s.db.NowMillis()
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_consents (user_id, client_id, scopes, created_at, updated_at) VALUES (?, ?, '', ?, ?)
			ON CONFLICT (user_id, client_id) DO NOTHING`, userID, clientID, now, now); err != nil {
			return fmt.Errorf("storing consent: %w", err)
		}
		var stored string
		if err := s.db.QueryRow(ctx, tx, `SELECT scopes FROM nsauth_consents WHERE user_id = ? AND client_id = ?`+s.db.Dialect.LockRows,
			userID, clientID).Scan(&stored); err != nil {
			return fmt.Errorf("reading consent: %w", err)
		}
		all := core.SplitList(stored)
		for _, sc := range scopes {
			if !slices.Contains(all, sc) {
				all = append(all, sc)
			}
		}
		if _, err := s.db.Exec(ctx, tx, `UPDATE nsauth_consents SET scopes = ?, updated_at = ? WHERE user_id = ? AND client_id = ?`,
			core.JoinList(all), now, userID, clientID); err != nil {
			return fmt.Errorf("storing consent: %w", err)
		}
		return nil
	})
}

// RevokeConsent forgets what userID allowed clientID, or fails with
// [core.ErrNotFound]. Tokens already issued are left alone.
func (s *ConsentStore) RevokeConsent(ctx context.Context, userID, clientID string) error {
	res, err := s.db.Exec(ctx, s.db, `DELETE FROM nsauth_consents WHERE user_id = ? AND client_id = ?`, userID, clientID)
	if err != nil {
		return fmt.Errorf("revoking consent: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("consent: %w", core.ErrNotFound)
	}
	return nil
}

func scanConsent(row core.Scanner) (*Consent, error) {
	var c Consent
	var scopes string
	var created, updated int64
	if err := row.Scan(&c.UserID, &c.ClientID, &scopes, &created, &updated); err != nil {
		return nil, err
	}
	c.Scopes, c.CreatedAt, c.UpdatedAt = core.SplitList(scopes), time.UnixMilli(created), time.UnixMilli(updated)
	return &c, nil
}

// ListConsents returns userID's consents ("" for every user's), ordered
// by user and app.
func (s *ConsentStore) ListConsents(ctx context.Context, userID string) ([]Consent, error) {
	q := `SELECT user_id, client_id, scopes, created_at, updated_at FROM nsauth_consents`
	var args []any
	if userID != "" {
		q += ` WHERE user_id = ?`
		args = append(args, userID)
	}
	return core.QueryAll(ctx, s.db, "listing consents", scanConsent, q+` ORDER BY user_id, client_id`, args...)
}
