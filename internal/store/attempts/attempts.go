// Package attempts counts login attempts in fixed windows, atomically
// across every process sharing the database, so that password guessing
// is bounded per address and per account.
package attempts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nsauth/nsauth/internal/store/internal/core"
)

// AttemptStore keeps login-attempt counters.
type AttemptStore struct {
	db *core.DB
}

// New returns the login-attempt counters of db.
func New(db *core.DB) *AttemptStore {
	return &AttemptStore{db: db}
}

// AttemptCounter names one login-attempt counter: Key identifies it (such
// as "addr:192.0.2.1" or "user:alice"), Account is the account it protects
// ("" for counters of no account, such as an address's), so that
// [AttemptStore.ClearAccountLoginAttempts] finds it.
//
// At, on a counter of no account, names the account the attempt was at
// ("" when none): the store then keeps, beside the counter, how many of
// the attempts in its current window were at that account, so that
// unlocking the account takes them off the counter too, and leaves the
// rest. Keys beginning with "share:" are the store's own, for this.
type AttemptCounter struct {
	Key     string
	Account string
	At      string
}

// sharePrefix begins the key of a counter's share: the attempts of its
// window that were at one account.
const sharePrefix = "share:"

// shareKey is the key of the share of c's attempts that were at c.At.
func (c AttemptCounter) shareKey() string {
	return sharePrefix + c.At + ":" + c.Key
}

// errCounterFull aborts a reservation transaction.
var errCounterFull = errors.New("login attempt counter full")

// Reservation is the outcome of [AttemptStore.ReserveLoginAttempt].
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
func (s *AttemptStore) ReserveLoginAttempt(ctx context.Context, counters []AttemptCounter, max int, window time.Duration) (Reservation, error) {
	if max < 1 {
		return Reservation{}, errors.New("a login attempt limit must be at least 1")
	}
	// A fixed order of row locks: two reservations cannot deadlock.
	counters = slices.Clone(counters)
	slices.SortFunc(counters, func(a, b AttemptCounter) int { return strings.Compare(a.Key, b.Key) })
	counters = slices.CompactFunc(counters, func(a, b AttemptCounter) bool { return a.Key == b.Key })

	var res Reservation
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		now := s.db.Now()
		open := now.Add(-window).UnixMilli()
		res = Reservation{OK: true, Remaining: max}
		for _, c := range counters {
			var n int
			var start int64
			err := s.db.QueryRow(ctx, tx, `INSERT INTO nsauth_login_attempts (key, account, window_start, attempts) VALUES (?, ?, ?, 1)
				ON CONFLICT (key) DO UPDATE SET
					attempts = CASE WHEN nsauth_login_attempts.window_start > ? THEN nsauth_login_attempts.attempts + 1 ELSE 1 END,
					window_start = CASE WHEN nsauth_login_attempts.window_start > ? THEN nsauth_login_attempts.window_start ELSE excluded.window_start END
				WHERE nsauth_login_attempts.window_start <= ? OR nsauth_login_attempts.attempts < ?
				RETURNING attempts, window_start`,
				c.Key, c.Account, now.UnixMilli(), open, open, open, max).Scan(&n, &start)
			if errors.Is(err, sql.ErrNoRows) {
				if err := s.db.QueryRow(ctx, tx, `SELECT window_start FROM nsauth_login_attempts WHERE key = ?`, c.Key).Scan(&start); err != nil {
					return fmt.Errorf("reading a full login attempt counter: %w", err)
				}
				res = Reservation{Full: c.Key, RetryAt: time.UnixMilli(start).Add(window)}
				return errCounterFull
			}
			if err != nil {
				return fmt.Errorf("counting a login attempt: %w", err)
			}
			if c.At != "" {
				// The share follows its counter's window: a share of an
				// older window starts again.
				if _, err := s.db.Exec(ctx, tx, `INSERT INTO nsauth_login_attempts (key, account, window_start, attempts) VALUES (?, ?, ?, 1)
					ON CONFLICT (key) DO UPDATE SET
						attempts = CASE WHEN nsauth_login_attempts.window_start = excluded.window_start THEN nsauth_login_attempts.attempts + 1 ELSE 1 END,
						window_start = excluded.window_start`,
					c.shareKey(), c.At, start); err != nil {
					return fmt.Errorf("counting a login attempt at an account: %w", err)
				}
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
// the counter c (and in its share of c.At's attempts): for an attempt that
// did not fail (the password was right, or it was never checked).
func (s *AttemptStore) ReleaseLoginAttempt(ctx context.Context, c AttemptCounter) error {
	keys := []string{c.Key}
	if c.At != "" {
		keys = append(keys, c.shareKey())
	}
	for _, key := range keys {
		if _, err := s.db.Exec(ctx, s.db, `UPDATE nsauth_login_attempts SET attempts = attempts - 1 WHERE key = ? AND attempts > 0`, key); err != nil {
			return fmt.Errorf("releasing a login attempt: %w", err)
		}
	}
	return nil
}

// LoginAttempts returns how many attempts the counter key holds in the
// window still open at now, or 0.
func (s *AttemptStore) LoginAttempts(ctx context.Context, key string, window time.Duration) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, s.db, `SELECT attempts FROM nsauth_login_attempts WHERE key = ? AND window_start > ?`,
		key, s.db.Now().Add(-window).UnixMilli()).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading login attempts: %w", err)
	}
	return n, nil
}

// ClearLoginAttempts forgets the counter key.
func (s *AttemptStore) ClearLoginAttempts(ctx context.Context, key string) error {
	if _, err := s.db.Exec(ctx, s.db, `DELETE FROM nsauth_login_attempts WHERE key = ?`, key); err != nil {
		return fmt.Errorf("clearing login attempts: %w", err)
	}
	return nil
}

// Unlocked is what [AttemptStore.ClearAccountLoginAttempts] cleared.
type Unlocked struct {
	// Counters is how many of the account's own counters were forgotten
	// (the one of its unknown browsers, those of its known browsers).
	Counters int64
	// Addresses is how many counters of no account (client addresses')
	// had the account's attempts of their current window taken off.
	Addresses int64
}

// ClearAccountLoginAttempts forgets every counter that protects account,
// and takes the attempts at account off the counters of client addresses
// (those reserved with At set to account): `nsauth users unlock`. What an
// address tried at other accounts still counts: it limits a client across
// every account.
func (s *AttemptStore) ClearAccountLoginAttempts(ctx context.Context, account string) (Unlocked, error) {
	var u Unlocked
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		u = Unlocked{}
		type share struct {
			counter     string
			windowStart int64
			attempts    int64
		}
		rows, err := s.db.Query(ctx, tx, `SELECT key, window_start, attempts FROM nsauth_login_attempts WHERE account = ? AND key LIKE 'share:%'`, account)
		if err != nil {
			return fmt.Errorf("reading the account's share of address counters: %w", err)
		}
		var shares []share
		for rows.Next() {
			var key string
			var sh share
			if err := rows.Scan(&key, &sh.windowStart, &sh.attempts); err != nil {
				rows.Close()
				return fmt.Errorf("reading the account's share of address counters: %w", err)
			}
			counter, ok := strings.CutPrefix(key, sharePrefix+account+":")
			if ok && sh.attempts > 0 {
				sh.counter = counter
				shares = append(shares, sh)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reading the account's share of address counters: %w", err)
		}
		// Counters in key order, as reservations lock them.
		slices.SortFunc(shares, func(a, b share) int { return strings.Compare(a.counter, b.counter) })
		for _, sh := range shares {
			res, err := s.db.Exec(ctx, tx, `UPDATE nsauth_login_attempts SET attempts = CASE WHEN attempts > ? THEN attempts - ? ELSE 0 END
				WHERE key = ? AND window_start = ? AND account = ''`, sh.attempts, sh.attempts, sh.counter, sh.windowStart)
			if err != nil {
				return fmt.Errorf("taking the account's attempts off an address counter: %w", err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				u.Addresses++
			}
		}
		res, err := s.db.Exec(ctx, tx, `DELETE FROM nsauth_login_attempts WHERE account = ? AND account <> '' AND key NOT LIKE 'share:%'`, account)
		if err != nil {
			return fmt.Errorf("clearing the account's login attempts: %w", err)
		}
		u.Counters, _ = res.RowsAffected()
		if _, err := s.db.Exec(ctx, tx, `DELETE FROM nsauth_login_attempts WHERE account = ? AND account <> '' AND key LIKE 'share:%'`, account); err != nil {
			return fmt.Errorf("clearing the account's share of address counters: %w", err)
		}
		return nil
	})
	if err != nil {
		return Unlocked{}, err
	}
	return u, nil
}
