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
	"github.com/nsauth/nsauth/internal/store/internal/core"
	"github.com/nsauth/nsauth/internal/store/revocations"
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
	if err := useIncrementalVacuum(ctx, db); err != nil {
		_ = db.Close()
		return nil, err
	}
	cdb := core.New(db, core.SQLite, opts.Now)
	if err := migrate(ctx, cdb); err != nil {
		_ = db.Close()
		return nil, err
	}
	return newStore(cdb, path, "", opts), nil
}

// useIncrementalVacuum makes the database file one that can give freed
// pages back (see reclaimSpace): incremental auto-vacuum. A new file, or
// one made before nsauth set it, is switched by a VACUUM on the connection
// that set the mode: only a VACUUM (or the first table) records it, and on
// an existing file the VACUUM rewrites it once, outside any transaction.
// The mode is not set in the connection string: on an existing file that
// rewrites its first page at every new connection.
func useIncrementalVacuum(ctx context.Context, db *sql.DB) error {
	const incremental = 2
	var mode int
	if err := db.QueryRowContext(ctx, `PRAGMA auto_vacuum`).Scan(&mode); err != nil {
		return fmt.Errorf("reading auto_vacuum: %w", err)
	}
	if mode == incremental {
		return nil
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connecting to the database: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA auto_vacuum = INCREMENTAL`); err != nil {
		return fmt.Errorf("setting auto_vacuum: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("switching the database to incremental vacuum: %w", err)
	}
	return nil
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
	cdb := core.New(db, core.Postgres, opts.Now)
	if err := migrate(ctx, cdb); err != nil {
		_ = db.Close()
		return nil, err
	}
	var schema string
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("reading the current schema: %w", err)
	}
	return newStore(cdb, RedactURL(databaseURL), revocations.Channel(schema), opts), nil
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
