package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// BackupSQLite writes a consistent copy of the SQLite database in dataDir
// to path, while a server may be running on it: VACUUM INTO reads one
// snapshot of the database, WAL included, and writes it as a single
// self-contained file, never a copy of the live files. The database is
// opened read-only and is never migrated: a backup taken by a newer nsauth
// leaves an older server's schema as it is. The copy holds what the
// database holds (password hashes, token digests, secrets sealed under the
// secret key), never the secret key itself, and is readable by its owner
// only.
//
// path must not exist: a backup never overwrites one. The copy is written
// beside it under a temporary name, synced, and then given its name, so a
// failed backup leaves no file that looks whole.
func BackupSQLite(ctx context.Context, dataDir, path string) error {
	live, err := filepath.Abs(filepath.Join(dataDir, SQLiteFileName))
	if err != nil {
		return fmt.Errorf("finding the database: %w", err)
	}
	if fi, err := os.Stat(live); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("no nsauth database in %s (expected %s): give the data directory of the server to back up (--data-dir)", dataDir, SQLiteFileName)
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists: a backup never overwrites a file, give a new name", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	dsn := (&url.URL{Scheme: "file", OmitHost: true, Path: live, RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer db.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return fmt.Errorf("creating the backup file: %w", err)
	}
	tmpName := tmp.Name()
	_ = tmp.Close() // VACUUM INTO accepts an empty file; CreateTemp made it 0600
	done := false
	defer func() {
		if !done {
			_ = os.Remove(tmpName)
		}
	}()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmpName); err != nil {
		return fmt.Errorf("copying the database (VACUUM INTO): %w", err)
	}
	if err := syncFile(tmpName); err != nil {
		return err
	}
	// A hard link gives the file its name only if the name is still free.
	if err := os.Link(tmpName, path); err != nil {
		return fmt.Errorf("naming the backup %s: %w", path, err)
	}
	done = true
	_ = os.Remove(tmpName)
	return syncDir(filepath.Dir(path))
}

// BackupInfo describes a backup file.
type BackupInfo struct {
	// SchemaVersion is the schema version of the database it holds.
	SchemaVersion int
	// Users counts its users.
	Users int
}

// RestoreSQLite makes dataDir the data directory of the SQLite database
// in the backup file made by [BackupSQLite]. dataDir must not exist (it
// is then made, with mode 0700) or hold none but the names keep (the
// secret key file): a restore never replaces data.
// The file is checked first (a SQLite database whose integrity check
// passes, with nsauth's schema no newer than this build's) and copied,
// not moved, to the data directory's database file, synced, readable by
// its owner only.
//
// The restored database is not opened: the caller opens it with the key
// that opens its secrets, which the backup does not hold, and removes
// the data directory's contents again if that key does not open them
// ([RemoveRestored]).
func RestoreSQLite(ctx context.Context, backupFile, dataDir string, keep ...string) (*BackupInfo, error) {
	if err := CheckEmptyDataDir(dataDir, keep...); err != nil {
		return nil, err
	}
	info, err := InspectBackup(ctx, backupFile)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	if err := copyFile(backupFile, filepath.Join(dataDir, SQLiteFileName)); err != nil {
		RemoveRestored(dataDir)
		return nil, err
	}
	return info, nil
}

// CheckEmptyDataDir fails unless dir does not exist or is a directory
// that holds none but the names keep.
func CheckEmptyDataDir(dir string, keep ...string) error {
	if dir == "" {
		return errors.New("a data directory is required")
	}
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the data directory: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(len(keep) + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the data directory %s: %w", dir, err)
	}
	if slices.ContainsFunc(names, func(n string) bool { return !slices.Contains(keep, n) }) {
		return fmt.Errorf("the data directory %s is not empty: a restore never replaces data; restore into a new or empty directory (and move it into place once the server is stopped)", dir)
	}
	return nil
}

// RemoveRestored removes the database files a restore put in dataDir,
// leaving it as it was: empty.
func RemoveRestored(dataDir string) {
	db := filepath.Join(dataDir, SQLiteFileName)
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		_ = os.Remove(p)
	}
}

// InspectBackup opens a backup file read-only and checks it: a SQLite
// database whose integrity check passes, with nsauth's schema, no newer
// than this build's.
func InspectBackup(ctx context.Context, path string) (*BackupInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading the backup: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("the backup %s is not a regular file", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("reading the backup: %w", err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "query_only(1)")
	dsn := (&url.URL{Scheme: "file", OmitHost: true, Path: abs, RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening the backup: %w", err)
	}
	defer db.Close()
	notBackup := func(err error) error {
		return fmt.Errorf("%s is not a backup of nsauth's SQLite database (made by nsauth-server backup): %w", path, err)
	}
	var check string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil {
		return nil, notBackup(err)
	}
	if check != "ok" {
		return nil, fmt.Errorf("the backup %s is damaged (integrity check: %s)", path, strings.SplitN(check, "\n", 2)[0])
	}
	var info BackupInfo
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM nsauth_schema_migrations`).Scan(&info.SchemaVersion); err != nil {
		return nil, notBackup(err)
	}
	if info.SchemaVersion > SchemaVersion() {
		return nil, fmt.Errorf("the backup's schema is version %d, newer than this nsauth supports (%d): restore it with the nsauth that made it, or a newer one", info.SchemaVersion, SchemaVersion())
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM nsauth_users`).Scan(&info.Users); err != nil {
		return nil, notBackup(err)
	}
	return &info, nil
}

// copyFile copies src to a new file dst (mode 0600) and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("reading the backup: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating the database file: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return fmt.Errorf("writing the database file: %w", err)
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return fmt.Errorf("syncing the database file: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("writing the database file: %w", err)
	}
	return syncDir(filepath.Dir(dst))
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("syncing the backup: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing the backup: %w", err)
	}
	return nil
}

// syncDir makes a new name in dir durable; where directories cannot be
// synced (some platforms), it does nothing.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}
