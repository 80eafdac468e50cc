// Package core is what every sub-store of package store shares: the
// database handle and its dialect, transactions, the clock, the sentinel
// errors and the small encodings every table uses.
//
// It is internal to package store: a sub-store is handed a *DB by
// store.Store, and callers outside reach the errors through package store.
package core

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Sentinel errors. Package store re-exports each under the same name.
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
	// ErrNoKeyring means a secret was to be read or written by a store
	// opened without a keyring.
	ErrNoKeyring = errors.New("the store was opened without a secret key")
)

// DB is the database of one store, shared by its sub-stores. It is safe
// for concurrent use.
type DB struct {
	// SQL is the pool itself, for what the helpers below do not cover
	// (a dedicated connection, a PRAGMA).
	SQL *sql.DB
	// Dialect is what differs between the backends.
	Dialect Dialect
	now     func() time.Time

	// mu guards afterTx: what open transactions want done once they end.
	mu      sync.Mutex
	afterTx map[*sql.Tx][]func(committed bool)
}

// New wraps db. now nil means time.Now.
func New(db *sql.DB, d Dialect, now func() time.Time) *DB {
	if now == nil {
		now = time.Now
	}
	return &DB{SQL: db, Dialect: d, now: now}
}

// Now is the store's clock.
func (db *DB) Now() time.Time { return db.now() }

// NowMillis is Now as stored: Unix milliseconds.
func (db *DB) NowMillis() int64 { return db.now().UnixMilli() }

// Querier is the database or a transaction: what Exec, Query and QueryRow
// run statements on.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ExecContext runs a statement on the pool, as written: it makes *DB a
// [Querier] for Exec, Query and QueryRow, which rewrite placeholders.
func (db *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return db.SQL.ExecContext(ctx, query, args...)
}

// QueryContext runs a query on the pool, as written.
func (db *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return db.SQL.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a one-row query on the pool, as written.
func (db *DB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return db.SQL.QueryRowContext(ctx, query, args...)
}

// Exec runs a statement with `?` placeholders on q, rewritten for the
// dialect.
func (db *DB) Exec(ctx context.Context, q Querier, query string, args ...any) (sql.Result, error) {
	return q.ExecContext(ctx, db.Dialect.Rebind(query), args...)
}

// Query is Exec for a query returning rows.
func (db *DB) Query(ctx context.Context, q Querier, query string, args ...any) (*sql.Rows, error) {
	return q.QueryContext(ctx, db.Dialect.Rebind(query), args...)
}

// QueryRow is Exec for a query returning one row.
func (db *DB) QueryRow(ctx context.Context, q Querier, query string, args ...any) *sql.Row {
	return q.QueryRowContext(ctx, db.Dialect.Rebind(query), args...)
}

// Scanner is a row to scan: *sql.Row or *sql.Rows.
type Scanner interface{ Scan(...any) error }

// QueryAll runs query on the pool and scans every row with scan; what
// names the rows in errors ("listing users").
func QueryAll[T any](ctx context.Context, db *DB, what string, scan func(Scanner) (*T, error), query string, args ...any) ([]T, error) {
	rows, err := db.Query(ctx, db, query, args...)
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

// InTx runs fn in a transaction, committing when it returns nil. SQLite
// transactions take the write lock at BEGIN, so read-then-write sequences
// cannot interleave. What [DB.AfterTx] registered for the transaction
// runs once it has ended.
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		db.finish(tx, false)
		return err
	}
	err = tx.Commit()
	db.finish(tx, err == nil)
	if err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}

// AfterTx registers f to be called once tx, a transaction of [DB.InTx],
// has ended, with whether it committed. Functions run in the order they
// were registered.
func (db *DB) AfterTx(tx *sql.Tx, f func(committed bool)) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.afterTx == nil {
		db.afterTx = make(map[*sql.Tx][]func(bool))
	}
	db.afterTx[tx] = append(db.afterTx[tx], f)
}

func (db *DB) finish(tx *sql.Tx, committed bool) {
	db.mu.Lock()
	fs := db.afterTx[tx]
	delete(db.afterTx, tx)
	db.mu.Unlock()
	for _, f := range fs {
		f(committed)
	}
}

// Millis converts a time to the stored representation; zero is NULL.
func Millis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// FromMillis reads what Millis stored.
func FromMillis(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMilli(n.Int64)
}

// HashSecret returns the digest under which a random secret (code, token,
// client secret) is stored and looked up.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// NewID returns a random identifier: 128 bits, base64url. It never begins
// with "-", so that an administrator can pass it as an argument
// (nsauth sessions revoke ID) without it being read as a flag.
func NewID() string {
	for {
		if id := RandomToken(16); id[0] != '-' {
			return id
		}
	}
}

// RandomToken returns n random bytes, base64url-encoded without padding.
// crypto/rand.Read never fails on supported platforms (and crashes the
// program irrecoverably if it somehow does), so there is no error.
func RandomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// JoinList and SplitList store short string lists (scopes, AMR values) as
// one space-separated column; none of their elements contain spaces.
func JoinList(v []string) string { return strings.Join(v, " ") }

// SplitList reads what JoinList stored.
func SplitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}

// NotFound turns sql.ErrNoRows into ErrNotFound and wraps other errors.
func NotFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("reading %s: %w", what, err)
}
