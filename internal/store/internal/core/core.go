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
	"sync/atomic"
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

	// diskFull is told when writes start failing for a full disk and when
	// they succeed again (see [DB.OnDiskFull]). fullSince is when it was
	// told the disk is full (Unix ms; 0: it was not, or told since that
	// writes succeed), lastRefused when a write last failed for it. While
	// full, wrote holds the transactions a statement of [DB.Exec] changed
	// something in (guarded by mu): a commit that wrote nothing proves
	// nothing about the disk.
	diskFull    func(full bool, cause error)
	fullSince   atomic.Int64
	lastRefused atomic.Int64
	wrote       map[*sql.Tx]bool

	// stmts holds the statements prepared for the pool, by query text
	// (SQLite's; see [DB.prepared]), and nstmts how many; preparing the
	// queries a goroutine of [DB.querier] is preparing.
	stmts     sync.Map
	nstmts    atomic.Int32
	preparing sync.Map
	// background counts the goroutines of querier, closing ends their
	// context (stopClosing, at Close), and closed (guarded by mu) says no
	// more may start.
	background  sync.WaitGroup
	closing     context.Context
	stopClosing context.CancelFunc
	closed      bool
}

// InArgs is the placeholders and the arguments of `IN (…)` over values,
// which must not be empty: "?, ?, ?" and the values as arguments. Callers
// bound how many values one query takes ([MaxInArgs]).
func InArgs(values []string) (string, []any) {
	args := make([]any, len(values))
	for i, v := range values {
		args[i] = v
	}
	return "?" + strings.Repeat(", ?", len(values)-1), args
}

// MaxInArgs is the most values one query's InArgs should hold: well under
// SQLite's and PostgreSQL's bounds on a statement's parameters.
const MaxInArgs = 1000

// maxPreparedStatements bounds [DB.prepared]'s cache. The store's queries
// are constants, a few hundred; one built with a variable number of
// placeholders adds one per length, and past the bound is not cached.
const maxPreparedStatements = 1024

// prepared returns the pool's prepared statement for query, preparing it
// on first use, or nil when the query is to be run unprepared: always on
// PostgreSQL, whose driver (pgx) already prepares each statement once per
// connection; on SQLite, when the cache is full or preparing failed (the
// query then meets its error itself). Preparing on SQLite parses and
// plans the statement, which costs more than running most of ours;
// database/sql prepares a statement once per connection that runs it.
// Preparing takes a connection of the pool: see [DB.querier] for a
// transaction's statements.
func (db *DB) prepared(ctx context.Context, query string) *sql.Stmt {
	if db.Dialect.numbered {
		return nil
	}
	if s, ok := db.stmts.Load(query); ok {
		return s.(*sql.Stmt)
	}
	if db.nstmts.Load() >= maxPreparedStatements {
		return nil
	}
	s, err := db.SQL.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	if had, loaded := db.stmts.LoadOrStore(query, s); loaded {
		_ = s.Close()
		return had.(*sql.Stmt)
	}
	db.nstmts.Add(1)
	return s
}

// querier is q with its statement for query prepared when the cache of
// [DB.prepared] holds it: for a transaction, that statement within it
// (database/sql reuses its preparation on the transaction's connection,
// and closes it when the transaction ends). A transaction never waits to
// prepare: that takes a second connection of the pool, which may all be
// waiting for the write lock the transaction holds. A statement first
// seen in a transaction runs unprepared, and is prepared for next time by
// a goroutine of its own.
func (db *DB) querier(ctx context.Context, q Querier, query string) Querier {
	tx, ok := q.(*sql.Tx)
	if !ok || db.Dialect.numbered {
		return q // the pool's own methods use the cache
	}
	if s, ok := db.stmts.Load(query); ok {
		return stmtQuerier{tx.StmtContext(ctx, s.(*sql.Stmt))}
	}
	if _, busy := db.preparing.LoadOrStore(query, true); busy {
		return q
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return q
	}
	db.background.Add(1)
	go func() {
		defer db.background.Done()
		ctx, cancel := context.WithTimeout(db.closing, 30*time.Second)
		defer cancel()
		db.prepared(ctx, query)
		db.preparing.Delete(query)
	}()
	return q
}

// Close closes the pool once the statements [DB.querier] is preparing are
// done (told to give up): nothing touches the database after Close.
func (db *DB) Close() error {
	db.mu.Lock()
	db.closed = true
	db.mu.Unlock()
	db.stopClosing()
	db.background.Wait()
	return db.SQL.Close()
}

// stmtQuerier runs a prepared statement as a [Querier] (the query text it
// is given is the statement's own).
type stmtQuerier struct{ s *sql.Stmt }

func (q stmtQuerier) ExecContext(ctx context.Context, _ string, args ...any) (sql.Result, error) {
	return q.s.ExecContext(ctx, args...)
}

func (q stmtQuerier) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return q.s.QueryContext(ctx, args...)
}

func (q stmtQuerier) QueryRowContext(ctx context.Context, _ string, args ...any) *sql.Row {
	return q.s.QueryRowContext(ctx, args...)
}

// New wraps db. now nil means time.Now.
func New(db *sql.DB, d Dialect, now func() time.Time) *DB {
	if now == nil {
		now = time.Now
	}
	closing, stop := context.WithCancel(context.Background())
	return &DB{SQL: db, Dialect: d, now: now, closing: closing, stopClosing: stop}
}

// DiskFullSettle is how long writes must have gone without one failing
// for a full disk before a success counts as the disk having space again:
// while the disk is full, some writes still succeed (in pages SQLite's
// write-ahead log already holds), which must not read as a recovery.
const DiskFullSettle = 30 * time.Second

// OnDiskFull sets f, called when a write (a transaction of [DB.InTx] or a
// statement [DB.Exec] runs on the pool) fails because the disk is full
// (see [IsDiskFull]), with that error, and when a write succeeds at least
// [DiskFullSettle] after the last such failure, with nil: once per change,
// however many writes fail in between, so that an operator reads one line,
// not one per request. Call it before the DB is used; nil (the default)
// means nothing is told.
func (db *DB) OnDiskFull(f func(full bool, cause error)) { db.diskFull = f }

// noteWrite tells diskFull how a write ended, when that changes what it
// was last told.
func (db *DB) noteWrite(err error) {
	if db.diskFull == nil {
		return
	}
	switch now := db.NowMillis(); {
	case err == nil:
		if db.fullSince.Load() != 0 && now-db.lastRefused.Load() >= DiskFullSettle.Milliseconds() && db.fullSince.Swap(0) != 0 {
			db.diskFull(false, nil)
		}
	case IsDiskFull(err):
		db.lastRefused.Store(now)
		if db.fullSince.CompareAndSwap(0, max(now, 1)) {
			db.diskFull(true, err)
		}
	}
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

// ExecContext runs a statement on the pool, as written (prepared once,
// see [DB.prepared]): it makes *DB a [Querier] for Exec, Query and
// QueryRow, which rewrite placeholders.
func (db *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := db.prepared(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return db.SQL.ExecContext(ctx, query, args...)
}

// QueryContext runs a query on the pool, as written (prepared once).
func (db *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := db.prepared(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return db.SQL.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a one-row query on the pool, as written (prepared
// once).
func (db *DB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := db.prepared(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return db.SQL.QueryRowContext(ctx, query, args...)
}

// Exec runs a statement with `?` placeholders on q, rewritten for the
// dialect.
func (db *DB) Exec(ctx context.Context, q Querier, query string, args ...any) (sql.Result, error) {
	query = db.Dialect.Rebind(query)
	res, err := db.querier(ctx, q, query).ExecContext(ctx, query, args...)
	noteOutage(ctx, err)
	// A statement in a transaction has written nothing to disk until the
	// commit, which InTx notes.
	switch q := q.(type) {
	case *DB:
		db.noteWrite(err)
	case *sql.Tx:
		if err == nil && db.fullSince.Load() != 0 {
			db.mu.Lock()
			if db.wrote == nil {
				db.wrote = make(map[*sql.Tx]bool)
			}
			db.wrote[q] = true
			db.mu.Unlock()
		}
	}
	return res, err
}

// Query is Exec for a query returning rows. Its error, and one met while
// the rows are read (seen at Err), reach ctx's [Outage].
func (db *DB) Query(ctx context.Context, q Querier, query string, args ...any) (*Rows, error) {
	query = db.Dialect.Rebind(query)
	rows, err := db.querier(ctx, q, query).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, noteOutage(ctx, err)
	}
	return &Rows{Rows: rows, ctx: ctx}, nil
}

// Rows is the result of [DB.Query]: *sql.Rows whose Err reports an
// unavailable database to the [Outage] of the query's context.
type Rows struct {
	*sql.Rows
	ctx context.Context // the query's: where Err reports its error
}

// Err is (*sql.Rows).Err, reporting its error to the query's [Outage].
func (r *Rows) Err() error { return noteOutage(r.ctx, r.Rows.Err()) }

// QueryRow is Exec for a query returning one row. Its error, whether the
// query's or one met while the row is read (a connection lost with the
// query in flight shows only at Scan), reaches ctx's [Outage].
func (db *DB) QueryRow(ctx context.Context, q Querier, query string, args ...any) *Row {
	query = db.Dialect.Rebind(query)
	return &Row{row: db.querier(ctx, q, query).QueryRowContext(ctx, query, args...), ctx: ctx}
}

// Row is the result of [DB.QueryRow]: a *sql.Row whose Scan reports an
// unavailable database to the [Outage] of the query's context.
type Row struct {
	row *sql.Row
	ctx context.Context // the query's: where Scan reports its error
}

// Scan is (*sql.Row).Scan, reporting its error to the query's [Outage].
func (r *Row) Scan(dest ...any) error { return noteOutage(r.ctx, r.row.Scan(dest...)) }

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
		return fmt.Errorf("beginning transaction: %w", noteOutage(ctx, err))
	}
	if err := fn(tx); err != nil {
		noteOutage(ctx, err)
		_ = tx.Rollback()
		_ = db.finish(tx, false)
		db.noteWrite(err)
		return err
	}
	err = tx.Commit()
	wrote := db.finish(tx, err == nil)
	if err != nil || wrote {
		db.noteWrite(err)
	}
	if err != nil {
		return fmt.Errorf("committing transaction: %w", noteOutage(ctx, err))
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

// finish runs what tx registered with AfterTx, and says whether a
// statement changed something in it while the disk was full.
func (db *DB) finish(tx *sql.Tx, committed bool) (wrote bool) {
	db.mu.Lock()
	fs := db.afterTx[tx]
	delete(db.afterTx, tx)
	wrote = db.wrote[tx]
	delete(db.wrote, tx)
	db.mu.Unlock()
	for _, f := range fs {
		f(committed)
	}
	return wrote
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
