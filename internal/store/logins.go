package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// AttemptCounter names one login-attempt counter: Key identifies it (such
// as "addr:192.0.2.1" or "user:alice"), Account is the account it protects
// ("" for counters of no account, such as an address's), so that
// [Store.ClearAccountLoginAttempts] finds it.
type AttemptCounter struct {
	Key     string
	Account string
}

// errCounterFull aborts a reservation transaction.
var errCounterFull = errors.New("login attempt counter full")

// ReserveLoginAttempt takes one place in each of counters for the fixed
// window that is open at now (a counter's window opens with its first
// attempt and lasts window). It is all or nothing: when any counter
// already holds max attempts in its open window, nothing is counted and it
// returns false with the time that counter's window closes.
//
// The reservation is one transaction whose upserts lock the counters'
// rows, so concurrent attempts, from one process or from replicas sharing
// a PostgreSQL database, can never take more than max places between them.
func (s *Store) ReserveLoginAttempt(ctx context.Context, counters []AttemptCounter, max int, window time.Duration) (bool, time.Time, error) {
	if max < 1 {
		return false, time.Time{}, errors.New("a login attempt limit must be at least 1")
	}
	// A fixed order of row locks: two reservations cannot deadlock.
	counters = slices.Clone(counters)
	slices.SortFunc(counters, func(a, b AttemptCounter) int { return strings.Compare(a.Key, b.Key) })
	counters = slices.CompactFunc(counters, func(a, b AttemptCounter) bool { return a.Key == b.Key })

	var retryAt time.Time
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		open := now.Add(-window).UnixMilli()
		for _, c := range counters {
			var n int
			err := s.queryRow(ctx, tx, `INSERT INTO nsauth_login_attempts (key, account, window_start, attempts) VALUES (?, ?, ?, 1)
				ON CONFLICT (key) DO UPDATE SET
					attempts = CASE WHEN nsauth_login_attempts.window_start > ? THEN nsauth_login_attempts.attempts + 1 ELSE 1 END,
					window_start = CASE WHEN nsauth_login_attempts.window_start > ? THEN nsauth_login_attempts.window_start ELSE excluded.window_start END
				WHERE nsauth_login_attempts.window_start <= ? OR nsauth_login_attempts.attempts < ?
				RETURNING attempts`,
				c.Key, c.Account, now.UnixMilli(), open, open, open, max).Scan(&n)
			if errors.Is(err, sql.ErrNoRows) {
				var start int64
				if err := s.queryRow(ctx, tx, `SELECT window_start FROM nsauth_login_attempts WHERE key = ?`, c.Key).Scan(&start); err != nil {
					return fmt.Errorf("reading a full login attempt counter: %w", err)
				}
				retryAt = time.UnixMilli(start).Add(window)
				return errCounterFull
			}
			if err != nil {
				return fmt.Errorf("counting a login attempt: %w", err)
			}
		}
		return nil
	})
	if errors.Is(err, errCounterFull) {
		return false, retryAt, nil
	}
	if err != nil {
		return false, time.Time{}, err
	}
	return true, time.Time{}, nil
}

// ReleaseLoginAttempt gives back one place taken by ReserveLoginAttempt in
// the counter key: for an attempt that did not fail (the password was
// right, or it was never checked).
func (s *Store) ReleaseLoginAttempt(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, s.db, `UPDATE nsauth_login_attempts SET attempts = attempts - 1 WHERE key = ? AND attempts > 0`, key); err != nil {
		return fmt.Errorf("releasing a login attempt: %w", err)
	}
	return nil
}

// LoginAttempts returns how many attempts the counter key holds in the
// window still open at now, or 0.
func (s *Store) LoginAttempts(ctx context.Context, key string, window time.Duration) (int, error) {
	var n int
	err := s.queryRow(ctx, s.db, `SELECT attempts FROM nsauth_login_attempts WHERE key = ? AND window_start > ?`,
		key, s.now().Add(-window).UnixMilli()).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading login attempts: %w", err)
	}
	return n, nil
}

// ClearLoginAttempts forgets the counter key.
func (s *Store) ClearLoginAttempts(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, s.db, `DELETE FROM nsauth_login_attempts WHERE key = ?`, key); err != nil {
		return fmt.Errorf("clearing login attempts: %w", err)
	}
	return nil
}

// ClearAccountLoginAttempts forgets every counter that protects account
// (`nsauth users unlock`) and returns how many there were. Counters of
// client addresses are kept: they limit a client across all accounts.
func (s *Store) ClearAccountLoginAttempts(ctx context.Context, account string) (int64, error) {
	res, err := s.exec(ctx, s.db, `DELETE FROM nsauth_login_attempts WHERE account = ? AND account <> ''`, account)
	if err != nil {
		return 0, fmt.Errorf("clearing the account's login attempts: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
