// Package storetest gives tests a fresh store on every backend: SQLite in a
// temporary directory, and PostgreSQL in a schema of its own, so parallel
// test runs against one database never see each other's rows.
//
// PostgreSQL is found at $NSAUTH_TEST_DATABASE_URL, or
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable. When it cannot be
// reached, PostgreSQL tests are skipped with a message, except when $CI is
// "true": in CI a missing database is a failure, never a silent skip.
package storetest

import (
	"context"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
)

// DefaultPostgresURL is used when $NSAUTH_TEST_DATABASE_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Backend is one database kind a test runs against.
type Backend struct {
	// Name is "sqlite" or "postgres".
	Name string
	// Open returns a fresh, migrated, empty store that is closed (and, for
	// PostgreSQL, dropped) when the test ends. Without opts.Keyring it
	// seals secrets with [Keyring].
	Open func(t testing.TB, opts store.Options) *store.Store
	// Reopen opens another store on the same database as s (a second
	// process, for PostgreSQL; a second handle on the file, for SQLite).
	Reopen func(t testing.TB, s *store.Store, opts store.Options) *store.Store
}

// Backends returns SQLite and PostgreSQL.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", Open: openSQLite, Reopen: reopenSQLite},
		{Name: "postgres", Open: openPostgres, Reopen: reopenPostgres},
	}
}

// ForEach runs fn as a parallel subtest per backend.
func ForEach(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// SealedColumns are queries that read, as stored, every sealed value the
// provider keeps (one column each): for tests that look at which key they
// are sealed under.
var SealedColumns = []string{
	`SELECT private_key FROM nsauth_signing_keys`,
	`SELECT value FROM nsauth_instance_values`,
	`SELECT secret FROM nsauth_totp`,
	`SELECT totp_secret FROM nsauth_mfa_pending WHERE totp_secret IS NOT NULL`,
	`SELECT secret FROM nsauth_connectors WHERE secret IS NOT NULL`,
	`SELECT state FROM nsauth_identities WHERE state IS NOT NULL`,
}

// testKeyText is the secret key of [Keyring]. It is a test fixture, public
// on purpose.
const testKeyText = "bnNhdXRoIHN0b3JldGVzdCBzZWNyZXQga2V5IDMyIGI="

var testKeyring = func() *seal.Keyring {
	k, err := seal.ParseKey(testKeyText)
	if err != nil {
		panic(err)
	}
	return seal.NewKeyring(k)
}()

// Keyring is the keyring stores opened by this package seal secrets with
// when the test's options give none: one fixed key, the same for every
// store, so a reopened store reads what the first one sealed.
func Keyring() *seal.Keyring { return testKeyring }

func withKeyring(opts store.Options) store.Options {
	if opts.Keyring == nil {
		opts.Keyring = testKeyring
	}
	return opts
}

var (
	sqliteDirs sync.Map // *store.Store → data dir
	pgURLs     sync.Map // *store.Store → URL with search_path
)

func openSQLite(t testing.TB, opts store.Options) *store.Store {
	t.Helper()
	opts = withKeyring(opts)
	dir := t.TempDir()
	s, err := store.OpenSQLite(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("opening SQLite store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	sqliteDirs.Store(s, dir)
	return s
}

func reopenSQLite(t testing.TB, s *store.Store, opts store.Options) *store.Store {
	t.Helper()
	opts = withKeyring(opts)
	dir, ok := sqliteDirs.Load(s)
	if !ok {
		t.Fatal("storetest: Reopen of a store storetest did not open")
	}
	s2, err := store.OpenSQLite(context.Background(), dir.(string), opts)
	if err != nil {
		t.Fatalf("reopening SQLite store: %v", err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	return s2
}

// SQLiteDir returns the data directory of a store opened by this package.
func SQLiteDir(t testing.TB, s *store.Store) string {
	t.Helper()
	dir, ok := sqliteDirs.Load(s)
	if !ok {
		t.Fatal("storetest: not a SQLite store opened by storetest")
	}
	return dir.(string)
}

func openPostgres(t testing.TB, opts store.Options) *store.Store {
	t.Helper()
	opts = withKeyring(opts)
	u := PostgresURL(t)
	s, err := store.OpenPostgres(context.Background(), u, opts)
	if err != nil {
		t.Fatalf("opening PostgreSQL store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	pgURLs.Store(s, u)
	return s
}

func reopenPostgres(t testing.TB, s *store.Store, opts store.Options) *store.Store {
	t.Helper()
	opts = withKeyring(opts)
	u, ok := pgURLs.Load(s)
	if !ok {
		t.Fatal("storetest: Reopen of a store storetest did not open")
	}
	s2, err := store.OpenPostgres(context.Background(), u.(string), opts)
	if err != nil {
		t.Fatalf("reopening PostgreSQL store: %v", err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	return s2
}

// PostgresURL creates a schema of its own for the test, dropped when the
// test ends, and returns a URL whose search_path selects it. It skips the
// test when PostgreSQL is unreachable outside CI, and fails it in CI.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("NSAUTH_TEST_DATABASE_URL")
	if base == "" {
		base = DefaultPostgresURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required in CI but unreachable at %s: %v", store.RedactURL(base), err)
		}
		t.Skipf("skipping: PostgreSQL unreachable at %s (%v); set NSAUTH_TEST_DATABASE_URL or start it (in CI this fails)", store.RedactURL(base), err)
	}
	defer conn.Close(context.Background())
	schema := "nsauth_test_" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(store.RandomToken(9)))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating test schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("dropping test schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("dropping test schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("NSAUTH_TEST_DATABASE_URL must be a postgres:// URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Clock is a settable clock for tests, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock set to start, or to the current time (truncated
// to the millisecond, the stored precision) when start is zero.
func NewClock(start time.Time) *Clock {
	if start.IsZero() {
		start = time.Now().Truncate(time.Millisecond)
	}
	return &Clock{t: start}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// DataDirSize is the bytes of the files in dir, such as a SQLite data
// directory: the database, its write-ahead log and shared-memory index.
func DataDirSize(t testing.TB, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += info.Size()
	}
	return n
}
