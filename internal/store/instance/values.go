// Package instance keeps the named values every replica of one
// installation shares (such as the issuer URL the data was served under).
// Sealed values are package secrets' job.
package instance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/nsauth/nsauth/internal/store/internal/core"
)

// ValueStore keeps instance values.
type ValueStore struct {
	db *core.DB
}

// New returns the instance values of db.
func New(db *core.DB) *ValueStore { return &ValueStore{db: db} }

// EnsureValue stores name=value unless name already has a value, and
// returns the stored value. Processes racing to initialise the same value
// all get the one that won.
func (s *ValueStore) EnsureValue(ctx context.Context, name, value string) (string, error) {
	if _, err := s.db.Exec(ctx, s.db, `INSERT INTO nsauth_instance_values (name, value, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, name, value, s.db.NowMillis()); err != nil {
		return "", fmt.Errorf("storing %s: %w", name, err)
	}
	return s.Value(ctx, name)
}

// SwapValue stores value under name and returns what was stored there
// before ("" when nothing was).
func (s *ValueStore) SwapValue(ctx context.Context, name, value string) (string, error) {
	var prev string
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		err := s.db.QueryRow(ctx, tx, `SELECT value FROM nsauth_instance_values WHERE name = ?`+s.db.Dialect.LockRows, name).Scan(&prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_instance_values (name, value, created_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value, s.db.NowMillis()); err != nil {
			return fmt.Errorf("storing %s: %w", name, err)
		}
		return nil
	})
	return prev, err
}

// servedIssuerName is the instance value recording the issuer URL the data
// was last served under.
const servedIssuerName = "issuer_url"

// RecordServedIssuer records issuer as the URL the built-in provider
// serves this data under, and returns the one recorded before ("" at the
// first start).
func (s *ValueStore) RecordServedIssuer(ctx context.Context, issuer string) (string, error) {
	return s.SwapValue(ctx, servedIssuerName, issuer)
}

// ServedIssuer returns the issuer URL the data was last served under, or
// "" when no server has served it yet: what the commands that work on the
// store directly know of the server's issuer without its settings.
func (s *ValueStore) ServedIssuer(ctx context.Context) (string, error) {
	v, err := s.Value(ctx, servedIssuerName)
	if errors.Is(err, core.ErrNotFound) {
		return "", nil
	}
	return v, err
}

// Value returns a stored instance value, or an error wrapping
// [core.ErrNotFound].
func (s *ValueStore) Value(ctx context.Context, name string) (string, error) {
	var v string
	if err := s.db.QueryRow(ctx, s.db, `SELECT value FROM nsauth_instance_values WHERE name = ?`, name).Scan(&v); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("%s: %w", name, core.ErrNotFound)
		}
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	return v, nil
}
