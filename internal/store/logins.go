package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LoginFailures returns how many failed logins were counted for key in the
// window that is still open at now, or 0.
func (s *Store) LoginFailures(ctx context.Context, key string, window time.Duration) (int, error) {
	var n int
	err := s.queryRow(ctx, s.db, `SELECT failures FROM nsauth_login_failures WHERE key = ? AND window_start > ?`,
		key, s.now().Add(-window).UnixMilli()).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading login failures: %w", err)
	}
	return n, nil
}

// AddLoginFailure counts one failed login for key in a fixed window (a new
// window opens when the previous one is over) and returns the count. The
// single statement is atomic, so replicas count together.
func (s *Store) AddLoginFailure(ctx context.Context, key string, window time.Duration) (int, error) {
	now := s.now()
	var n int
	err := s.queryRow(ctx, s.db, `INSERT INTO nsauth_login_failures (key, window_start, failures) VALUES (?, ?, 1)
		ON CONFLICT (key) DO UPDATE SET
			failures = CASE WHEN nsauth_login_failures.window_start > ? THEN nsauth_login_failures.failures + 1 ELSE 1 END,
			window_start = CASE WHEN nsauth_login_failures.window_start > ? THEN nsauth_login_failures.window_start ELSE excluded.window_start END
		RETURNING failures`,
		key, now.UnixMilli(), now.Add(-window).UnixMilli(), now.Add(-window).UnixMilli()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting a login failure: %w", err)
	}
	return n, nil
}

// ClearLoginFailures forgets the failures counted for key.
func (s *Store) ClearLoginFailures(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, s.db, `DELETE FROM nsauth_login_failures WHERE key = ?`, key); err != nil {
		return fmt.Errorf("clearing login failures: %w", err)
	}
	return nil
}
