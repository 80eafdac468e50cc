package store_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// autoVacuum reads the auto_vacuum mode of the database in dir on a
// connection of its own: 0 none, 1 full, 2 incremental.
func autoVacuum(t *testing.T, dir string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, store.SQLiteFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode int
	if err := db.QueryRow(`PRAGMA auto_vacuum`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	return mode
}

// TestDeleteExpiredShrinksSQLiteFile fills the database with auth requests
// and checks that deleting them gives the space back to the file system.
func TestDeleteExpiredShrinksSQLiteFile(t *testing.T) {
	t.Parallel()
	f := newFixture(t, storetest.Backends()[0])
	dir := storetest.SQLiteDir(t, f.s)
	if mode := autoVacuum(t, dir); mode != 2 {
		t.Fatalf("a new database has auto_vacuum %d, want 2 (incremental)", mode)
	}
	if _, err := f.s.DeleteExpired(ctx); err != nil {
		t.Fatal(err)
	}
	empty := storetest.DataDirSize(t, dir)

	const rows, rowBytes = 500, 8000
	filler := strings.Repeat("s", rowBytes)
	for range rows {
		r := &store.AuthRequest{ID: store.NewID(), ClientID: "cli", RedirectURI: "http://127.0.0.1:1/cb", State: filler,
			ResponseType: "code", ExpiresAt: f.clock.Now().Add(time.Minute)}
		if err := f.s.InsertCompletedAuthRequest(ctx, r, f.user.ID, []string{"pwd"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	full := storetest.DataDirSize(t, dir)
	if full < empty+rows*rowBytes {
		t.Fatalf("%d rows of %d bytes grew the directory only from %d to %d bytes", rows, rowBytes, empty, full)
	}

	f.clock.Advance(2 * time.Minute)
	n, err := f.s.DeleteExpired(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != rows {
		t.Fatalf("DeleteExpired removed %d rows, want %d", n, rows)
	}
	after := storetest.DataDirSize(t, dir)
	t.Logf("data directory: %d bytes empty, %d with %d rows, %d after DeleteExpired", empty, full, rows, after)
	if after > empty+256<<10 {
		t.Fatalf("the data directory is %d bytes after deleting every row, %d before any: the space was not given back", after, empty)
	}
}

// TestOpenSwitchesOldSQLiteToIncrementalVacuum opens a database created
// without auto_vacuum, as nsauth made them before: it is switched once,
// and keeps its data.
func TestOpenSwitchesOldSQLiteToIncrementalVacuum(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, store.SQLiteFileName)+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`PRAGMA auto_vacuum = NONE`, `CREATE TABLE older (v TEXT)`, `INSERT INTO older VALUES ('kept')`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	_ = db.Close()
	if mode := autoVacuum(t, dir); mode != 0 {
		t.Fatalf("setup: auto_vacuum = %d, want 0", mode)
	}

	s, err := store.OpenSQLite(ctx, dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, &store.User{Username: "bob", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if mode := autoVacuum(t, dir); mode != 2 {
		t.Fatalf("after opening, auto_vacuum = %d, want 2 (incremental)", mode)
	}
	s, err = store.OpenSQLite(ctx, dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.UserByUsername(ctx, "bob"); err != nil {
		t.Fatalf("user lost: %v", err)
	}
	db, err = sql.Open("sqlite", "file:"+filepath.Join(dir, store.SQLiteFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow(`SELECT v FROM older`).Scan(&v); err != nil || v != "kept" {
		t.Fatalf("older data = %q, %v", v, err)
	}
}
