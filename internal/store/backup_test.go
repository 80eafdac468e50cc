package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/nsauth/nsauth/internal/store"
)

// TestBackupSQLiteLeavesTheSchemaAlone: a backup taken by this nsauth of the
// database of an older one (a server of that version may be running on
// it) copies it as it is, and never migrates it.
func TestBackupSQLiteLeavesTheSchemaAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	older := store.SchemaVersion() - 1
	dir := t.TempDir()
	live := filepath.Join(dir, store.SQLiteFileName)
	db, err := sql.Open("sqlite", "file:"+live+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range levelStatements(t, "sqlite", older) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("statement %d (%.70q): %v", i, q, err)
		}
	}
	// The database stays open, as a running older server would hold it.
	t.Cleanup(func() { _ = db.Close() })

	out := filepath.Join(t.TempDir(), "nsauth.backup")
	if err := store.BackupSQLite(ctx, dir, out); err != nil {
		t.Fatalf("BackupSQLite: %v", err)
	}
	var liveVersion int
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM nsauth_schema_migrations`).Scan(&liveVersion); err != nil {
		t.Fatal(err)
	}
	if liveVersion != older {
		t.Fatalf("the live database is at schema %d after the backup, want %d (untouched)", liveVersion, older)
	}
	info, err := store.InspectBackup(ctx, out)
	if err != nil {
		t.Fatalf("InspectBackup: %v", err)
	}
	if info.SchemaVersion != older {
		t.Fatalf("the backup holds schema %d, want %d", info.SchemaVersion, older)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("the backup's mode is %v, want 0600", fi.Mode().Perm())
	}

	for _, tc := range []struct {
		name, dataDir, file string
	}{
		{"an existing file", dir, out},
		{"a directory without a database", t.TempDir(), filepath.Join(t.TempDir(), "x.backup")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := store.BackupSQLite(ctx, tc.dataDir, tc.file); err == nil {
				t.Fatalf("BackupSQLite(%s) succeeded, want a refusal", tc.name)
			}
		})
	}
}
