// Package store persists the built-in OpenID provider's state: users,
// clients, federation policies, completed authorization requests (pending
// ones are not stored), authorization codes, refresh and access token
// records, signing keys, failed-login counters and the audit trail.
//
// Two backends share one implementation over database/sql: an embedded
// SQLite file (modernc.org/sqlite, no cgo) for a single process, and
// PostgreSQL (pgx) for one or more processes. Every operation that must be
// atomic across processes (redeeming a code, rotating a refresh token,
// adding a signing key, counting failed logins) is a single statement or a
// transaction that locks what it reads, so replicas sharing a PostgreSQL
// database behave as one provider.
//
// Secrets never reach the database in clear: codes, refresh tokens and
// client secrets are stored as SHA-256 digests (they are random and long,
// so a fast hash is enough), passwords only as the argon2id hashes callers
// pass in. What must be read back (the private signing keys, and the
// instance secrets every replica shares: the broker's client secret, the
// keys that seal pending authorization requests and sign device cookies)
// is sealed with AES-256-GCM under [Options.Keyring], whose keys are kept
// out of the database (see package seal). A copy of the database alone
// therefore mints no token. A rotated refresh token keeps its successor for a short retry
// window sealed under a key derived from its own value, which only its
// holder knows (see refreshgrace.go).
//
// Errors are plain Go errors; callers branch on [ErrNotFound],
// [ErrConflict], [ErrReused] and [ErrRevoked]. No error carries a secret.
package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nsauth/nsauth/internal/seal"
)

// Sentinel errors.
var (
	// ErrNotFound means the record does not exist or has expired.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique value (such as a username) is taken.
	ErrConflict = errors.New("already exists")
	// ErrReused means a single-use credential (an authorization code or a
	// refresh token) was presented again. Everything issued from it has been
	// revoked by the time this error is returned.
	ErrReused = errors.New("credential already used")
	// ErrRevoked means the credential was revoked.
	ErrRevoked = errors.New("credential revoked")
)

// Options configure a [Store].
type Options struct {
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Keyring seals the secrets the store keeps (signing keys and the
	// values of [Store.EnsureSecret]) and opens them. Nil means the store
	// holds no key: methods that read or write a secret fail with
	// [ErrNoKeyring], and the rest work (as `nsauth users` needs).
	Keyring *seal.Keyring
	// LoadKeys, when set, reads again the keys Keyring was made of, newest
	// first, from a source a rotation rewrites (a key file): the store
	// calls it when a value names a key it does not hold, or the database
	// seals with one (see [Store.ReloadKeys] for when keys are dropped).
	// It returns the same keys when its source has not changed. Nil: the
	// keys are fixed.
	LoadKeys func() ([]*seal.Key, error)
	// AuditRetention is how long audit events are kept: [Store.DeleteExpired]
	// deletes older ones. Zero means [DefaultAuditRetention]; a negative
	// value keeps them for good.
	AuditRetention time.Duration
}

// DefaultAuditRetention is the default of Options.AuditRetention: 90 days.
const DefaultAuditRetention = 90 * 24 * time.Hour

// Store is the provider's persistence. It is safe for concurrent use, and
// several processes may share one PostgreSQL database.
type Store struct {
	db       *sql.DB
	d        dialect
	now      func() time.Time
	location string
	// channel is the PostgreSQL notification channel of revocations.
	channel string
	hooks   revocationHooks
	keys    keyring
	// auditRetention is Options.AuditRetention, defaulted.
	auditRetention time.Duration
}

func newStore(db *sql.DB, d dialect, location string, opts Options) *Store {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	retention := opts.AuditRetention
	if retention == 0 {
		retention = DefaultAuditRetention
	}
	st := &Store{db: db, d: d, now: now, location: location, auditRetention: retention}
	st.keys.load = opts.LoadKeys
	if opts.Keyring != nil {
		st.keys.ring.Store(opts.Keyring)
	}
	return st
}

// Backend names the database kind: "sqlite" or "postgres".
func (s *Store) Backend() string { return s.d.name }

// Location describes where the data lives, for people: a file path, or a
// PostgreSQL URL with any password removed.
func (s *Store) Location() string { return s.location }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// exec, query and queryRow rewrite `?` placeholders for the dialect.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) exec(ctx context.Context, q querier, query string, args ...any) (sql.Result, error) {
	return q.ExecContext(ctx, s.d.rebind(query), args...)
}

func (s *Store) query(ctx context.Context, q querier, query string, args ...any) (*sql.Rows, error) {
	return q.QueryContext(ctx, s.d.rebind(query), args...)
}

// queryAll runs query and scans every row with scan; what names the rows
// in errors ("listing users").
func queryAll[T any](ctx context.Context, s *Store, what string, scan func(interface{ Scan(...any) error }) (*T, error), query string, args ...any) ([]T, error) {
	rows, err := s.query(ctx, s.db, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, *v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

func (s *Store) queryRow(ctx context.Context, q querier, query string, args ...any) *sql.Row {
	return q.QueryRowContext(ctx, s.d.rebind(query), args...)
}

// inTx runs fn in a transaction, committing when it returns nil. SQLite
// transactions take the write lock at BEGIN, so read-then-write sequences
// cannot interleave.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		s.hooks.finish(tx, false)
		return err
	}
	err = tx.Commit()
	s.hooks.finish(tx, err == nil)
	if err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}

// millis converts a time to the stored representation; zero is NULL.
func millis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromMillis(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMilli(n.Int64)
}

func (s *Store) nowMillis() int64 { return s.now().UnixMilli() }

// HashSecret returns the digest under which a random secret (code, token,
// client secret) is stored and looked up.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// NewID returns a random identifier: 128 bits, base64url.
func NewID() string {
	return RandomToken(16)
}

// RandomToken returns n random bytes, base64url-encoded without padding.
// crypto/rand.Read never fails on supported platforms (and crashes the
// program irrecoverably if it somehow does), so there is no error.
func RandomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// joinList and splitList store short string lists (scopes, AMR values) as
// one space-separated column; none of their elements contain spaces.
func joinList(v []string) string { return strings.Join(v, " ") }

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}

// notFound turns sql.ErrNoRows into ErrNotFound and wraps other errors.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("reading %s: %w", what, err)
}
