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

// Reservation is the outcome of [Store.ReserveLoginAttempt].
type Reservation struct {
	// OK is true when the attempt got a place in every counter.
	OK bool
	// Remaining is how many more attempts the fullest counter allows in
	// its window (after this one, when OK).
	Remaining int
	// Full is the key of a counter with no place left: the one that
	// refused the attempt, or, when OK, one this attempt filled.
	Full string
	// RetryAt is when Full's window closes and it allows attempts again.
	RetryAt time.Time
}

// ReserveLoginAttempt takes one place in each of counters for the fixed
// window that is open at now (a counter's window opens with its first
// attempt and lasts window). It is all or nothing: when any counter
// already holds max attempts in its open window, nothing is counted and it
// returns a Reservation that is not OK, naming that counter and when its
// window closes.
//
// The reservation is one transaction whose upserts lock the counters'
// rows, so concurrent attempts, from one process or from replicas sharing
// a PostgreSQL database, can never take more than max places between them.
func (s *Store) ReserveLoginAttempt(ctx context.Context, counters []AttemptCounter, max int, window time.Duration) (Reservation, error) {
	if max < 1 {
		return Reservation{}, errors.New("a login attempt limit must be at least 1")
	}
	// A fixed order of row locks: two reservations cannot deadlock.
	counters = slices.Clone(counters)
	slices.SortFunc(counters, func(a, b AttemptCounter) int { return strings.Compare(a.Key, b.Key) })
	counters = slices.CompactFunc(counters, func(a, b AttemptCounter) bool { return a.Key == b.Key })

	var res Reservation
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		open := now.Add(-window).UnixMilli()
		res = Reservation{OK: true, Remaining: max}
		for _, c := range counters {
			var n int
			var start int64
			err := s.queryRow(ctx, tx, `INSERT INTO nsauth_login_attempts (key, account, window_start, attempts) VALUES (?, ?, ?, 1)
				ON CONFLICT (key) DO UPDATE SET
					attempts = CASE WHEN nsauth_login_attempts.window_start > ? THEN nsauth_login_attempts.attempts + 1 ELSE 1 END,
					window_start = CASE WHEN nsauth_login_attempts.window_start > ? THEN nsauth_login_attempts.window_start ELSE excluded.window_start END
				WHERE nsauth_login_attempts.window_start <= ? OR nsauth_login_attempts.attempts < ?
				RETURNING attempts, window_start`,
				c.Key, c.Account, now.UnixMilli(), open, open, open, max).Scan(&n, &start)
			if errors.Is(err, sql.ErrNoRows) {
				if err := s.queryRow(ctx, tx, `SELECT window_start FROM nsauth_login_attempts WHERE key = ?`, c.Key).Scan(&start); err != nil {
					return fmt.Errorf("reading a full login attempt counter: %w", err)
				}
				res = Reservation{Full: c.Key, RetryAt: time.UnixMilli(start).Add(window)}
				return errCounterFull
			}
			if err != nil {
				return fmt.Errorf("counting a login attempt: %w", err)
			}
			if left := max - n; left < res.Remaining {
				res.Remaining = left
				if left == 0 {
					res.Full, res.RetryAt = c.Key, time.UnixMilli(start).Add(window)
				}
			}
		}
		return nil
	})
	if errors.Is(err, errCounterFull) {
		return res, nil
	}
	if err != nil {
		return Reservation{}, err
	}
	return res, nil
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
