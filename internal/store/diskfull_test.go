package store_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nsauth/nsauth/internal/store"
)

// TestIsDiskFull: the one test of a full disk recognises SQLite's
// SQLITE_FULL (a real one: a database at its max_page_count), wrapped as
// the sub-stores wrap it, PostgreSQL's disk_full and ENOSPC, and nothing
// else: not a constraint violation, not PostgreSQL's other resource
// errors, not another I/O error.
func TestIsDiskFull(t *testing.T) {
	t.Parallel()
	sqliteFull, sqliteUnique := sqliteErrors(t)
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"SQLite full", sqliteFull, true},
		{"SQLite full, wrapped", fmt.Errorf("committing transaction: %w", sqliteFull), true},
		{"PostgreSQL disk_full (53100)", &pgconn.PgError{Code: "53100", Message: "could not extend file"}, true},
		{"PostgreSQL disk_full, wrapped", fmt.Errorf("inserting user: %w", &pgconn.PgError{Code: "53100"}), true},
		{"ENOSPC from a file", &os.PathError{Op: "write", Path: "nsauth.db-wal", Err: syscall.ENOSPC}, true},
		{"nil", nil, false},
		{"not found", store.ErrNotFound, false},
		{"SQLite unique violation", sqliteUnique, false},
		{"PostgreSQL out of memory (53200)", &pgconn.PgError{Code: "53200"}, false},
		{"PostgreSQL unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"EIO from a file", &os.PathError{Op: "write", Path: "nsauth.db", Err: syscall.EIO}, false},
		{"a message that says full", errors.New("database or disk is full"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := store.IsDiskFull(tc.err); got != tc.want {
				t.Errorf("IsDiskFull(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// sqliteErrors returns what modernc.org/sqlite returns for a database that
// cannot grow (SQLITE_FULL, as for a full disk) and for a duplicate key.
func sqliteErrors(t *testing.T) (full, unique error) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "full.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1) // max_page_count is the connection's
	for _, q := range []string{`CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)`, `INSERT INTO t (k) VALUES (1)`, `PRAGMA max_page_count = 8`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_, unique = db.Exec(`INSERT INTO t (k) VALUES (1)`)
	if unique == nil {
		t.Fatal("a duplicate key was inserted")
	}
	for i := 2; i < 100 && full == nil; i++ {
		_, full = db.Exec(`INSERT INTO t (k, v) VALUES (?, zeroblob(4096))`, i)
	}
	if full == nil {
		t.Fatal("a database of 8 pages at most took 100 pages of data")
	}
	return full, unique
}
