package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// SQLiteFileName is the database file's name inside the data directory.
const SQLiteFileName = "nsauth.db"

// OpenSQLite opens (creating it if needed) the SQLite database in dataDir,
// which is created with mode 0700, and applies pending migrations. The
// database file is made readable by its owner only.
func OpenSQLite(ctx context.Context, dataDir string, opts Options) (*Store, error) {
	if dataDir == "" {
		return nil, errors.New("a data directory is required")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	path := filepath.Join(dataDir, SQLiteFileName)
	// Create the file ourselves so it never exists with a laxer mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening database file: %w", err)
	}
	_ = f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("restricting database file mode: %w", err)
	}

	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	dsn := (&url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening SQLite database: %w", err)
	}
	// SQLite has one writer at a time; a small pool avoids piling up
	// connections that would only wait on its lock.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	s := newStore(db, sqliteDialect, path, opts)
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// OpenPostgres connects to the PostgreSQL database at databaseURL (a
// postgres:// URL or key=value connection string) and applies pending
// migrations. Tables are created in the connection's current schema (the
// first one on search_path), so several installations can share a database
// with `?search_path=…`. Errors never contain the URL's password.
func OpenPostgres(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		// pgconn redacts passwords from its parse errors.
		return nil, fmt.Errorf("parsing the database URL: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL at %s: %w", RedactURL(databaseURL), err)
	}
	s := newStore(db, postgresDialect, RedactURL(databaseURL), opts)
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// RedactURL returns a database URL without its password, for messages. A
// string that is not a URL is replaced by a placeholder rather than risk
// echoing a secret.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "(connection string)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
