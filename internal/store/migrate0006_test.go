package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// sqliteAtVersion makes, in dir, a SQLite database migrated to version
// (before the migrations after it), then runs then in it: the state a
// database of an older nsauth is in when this one opens it.
func sqliteAtVersion(t *testing.T, dir string, version int, then ...string) {
	t.Helper()
	ctx := context.Background()
	ms, err := migrations("sqlite")
	if err != nil || len(ms) <= version || ms[version].version != version+1 {
		t.Fatalf("migrations: %v", err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, SQLiteFileName)+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{`CREATE TABLE nsauth_schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`}
	for _, m := range ms[:version] {
		stmts = append(stmts, m.sql, `INSERT INTO nsauth_schema_migrations (version, applied_at) VALUES (`+strconv.Itoa(m.version)+`, 0)`)
	}
	for _, q := range append(stmts, then...) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMigration0006KeepsAccessTokens: on SQLite, 0006 rebuilds
// nsauth_access_tokens (user_id becomes nullable); a database at version 5
// keeps its token records, their user cascade, and foreign keys intact.
func TestMigration0006KeepsAccessTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	now := time.Now().UnixMilli()
	sqliteAtVersion(t, dir, 5,
		`INSERT INTO nsauth_users (id, username, password_hash, created_at, updated_at) VALUES ('u1', 'alice', 'x', 0, 0)`,
		`INSERT INTO nsauth_clients (id, secret_hash, redirect_uris, created_at) VALUES ('cli', x'00', '[]', 0)`,
		`INSERT INTO nsauth_access_tokens (id, grant_id, user_id, client_id, scopes, created_at, expires_at) VALUES ('t1', 'g1', 'u1', 'cli', 'openid', 0, `+strconv.FormatInt(now+3600_000, 10)+`)`,
	)

	s, err := OpenSQLite(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at, err := s.ActiveAccessToken(ctx, "t1")
	if err != nil || at.UserID != "u1" || at.ClientID != "cli" || at.GrantID != "g1" {
		t.Fatalf("after 0006: %+v, %v", at, err)
	}
	if c, err := s.ClientByID(ctx, "cli"); err != nil || c.ID != "cli" {
		t.Fatalf("the native client after 0006: %v", err)
	}
	rows, err := s.db.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Error("foreign key violations after 0006")
	}
	rows.Close()
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ActiveAccessToken(ctx, "t1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the user's token record outlived the user: %v", err)
	}
}
