// Package backupcmd holds nsauth-server backup and restore: a consistent
// copy of the built-in provider's SQLite database while the server runs,
// and a new data directory made from one, checked against the secret key
// the backup does not hold; for PostgreSQL, the pg_dump and pg_restore
// commands that do it.
package backupcmd

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd/storecmd"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
)

var oneBackupFile = cli.ExactlyOne("the backup file")

// NewBackupCommand is `nsauth-server backup`.
func NewBackupCommand(a *cli.App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup <file>",
		Short: "Copy the built-in provider's SQLite database to a file, while the server runs",
		Long: `Write a consistent copy of the built-in provider's SQLite database (in
--data-dir) to a new file, while the server runs: SQLite's VACUUM INTO reads
one snapshot of the database and writes it as one self-contained file, readable
by its owner only. Never copy the live files of a running server instead: the
database file without its write-ahead log is not a whole database.

The secret key is not in the backup (nor in the database): keep a copy of it
apart from the backups. With no key configured it is the file secret.key in
the data directory; nsauth-server restore needs it.

A PostgreSQL database (--database-url) is backed up with pg_dump; this command
then says how, and does nothing.`,
		Example: `  nsauth-server backup --data-dir /var/lib/nsauth /backup/nsauth-$(date +%F).db`,
		Args:    oneBackupFile,
		RunE: func(c *cobra.Command, args []string) error {
			loc, err := storecmd.LoadExistingStore(c.Flags(), a.Getenv)
			if err != nil {
				return err
			}
			if loc.DatabaseURL != "" {
				return errors.New(pgDumpAdvice(loc.DatabaseURL, args[0]))
			}
			return backup(c.Context(), a, *loc, args[0])
		},
	}
	config.RegisterStoreFlags(cmd.Flags())
	return cmd
}

func backup(ctx context.Context, a *cli.App, loc config.Store, file string) error {
	now := a.Now
	if now == nil {
		now = time.Now
	}
	started := now()
	if err := store.BackupSQLite(ctx, loc.DataDir, file); err != nil {
		return err
	}
	info, err := store.InspectBackup(ctx, file)
	if err != nil {
		return fmt.Errorf("the backup %s was written but does not read back: %w", file, err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.Out, "backed up %s to %s: %d bytes, schema version %d, %s, in %s\n",
		filepath.Join(loc.DataDir, store.SQLiteFileName), file, fi.Size(), info.SchemaVersion, users(info.Users), now().Sub(started).Round(time.Millisecond))
	fmt.Fprintf(a.Out, "the secret key is not in the backup: keep it apart (with no key configured, it is %s)\n",
		filepath.Join(loc.DataDir, config.DefaultSecretKeyFile))
	return nil
}

// NewRestoreCommand is `nsauth-server restore`.
func NewRestoreCommand(a *cli.App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore <file>",
		Short: "Make a new data directory from a backup of the SQLite database",
		Long: `Restore a backup made by nsauth-server backup into --data-dir, which must be
new, or empty but for the secret key file secret.key: a restore never
replaces data. Restore into a new directory, then stop the server and start it
on that directory (or move it into place).

The backup does not hold the secret key that seals the provider's secrets
(signing keys, the broker's secret, TOTP secrets): give the key of the server
the backup was taken from, in NSAUTH_SECRET_KEY, NSAUTH_SECRET_KEY_FILE
(--secret-key-file), or as the file secret.key in the new data directory
(where the server looks when no key is configured). The restore checks that
the key opens every secret in the backup, and otherwise undoes itself and
says so. Start the restored server with the same key.

A PostgreSQL dump (--database-url) is restored with pg_restore or psql; this
command then says how, and does nothing.`,
		Example: `  install -d -m 0700 /var/lib/nsauth.new
  cp /safe/place/secret.key /var/lib/nsauth.new/
  nsauth-server restore --data-dir /var/lib/nsauth.new /backup/nsauth-2026-12-07.db
  NSAUTH_SECRET_KEY_FILE=/etc/nsauth/secret.key nsauth-server restore --data-dir /var/lib/nsauth.new nsauth.db`,
		Args: oneBackupFile,
		RunE: func(c *cobra.Command, args []string) error {
			loc, err := config.LoadStore(c.Flags(), a.Getenv)
			if err != nil {
				return err
			}
			if loc.DatabaseURL != "" {
				return errors.New(pgRestoreAdvice(loc.DatabaseURL, args[0]))
			}
			keys, err := config.LoadSecretKeys(c.Flags(), a.Getenv)
			if err != nil {
				return err
			}
			return restore(c.Context(), a, *loc, *keys, args[0])
		},
	}
	config.RegisterStoreFlags(cmd.Flags())
	config.RegisterSecretKeyFlags(cmd.Flags())
	return cmd
}

func restore(ctx context.Context, a *cli.App, loc config.Store, keys config.SecretKeys, file string) error {
	keyFile := filepath.Join(loc.DataDir, config.DefaultSecretKeyFile)
	given := config.SecretKeySettings() + " (--secret-key-file)"
	if keys.Current() == nil {
		fileKeys, err := config.ReadSecretKeyFile(keyFile)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("the secret key is missing: the backup does not hold it, and its secrets open only with it; "+
				"give the key of the server the backup was taken from in %s, or copy that server's key file to %s", given, keyFile)
		}
		if err != nil {
			return err
		}
		keys.Listed, given = fileKeys, keyFile
	}
	ring := seal.NewKeyring(keys.Current(), slices.Concat(keys.Listed[1:], keys.Old)...)
	_, statErr := os.Stat(loc.DataDir)
	madeDir := errors.Is(statErr, os.ErrNotExist)
	info, err := store.RestoreSQLite(ctx, file, loc.DataDir, config.DefaultSecretKeyFile)
	if err != nil {
		return err
	}
	undo := func() {
		store.RemoveRestored(loc.DataDir)
		if madeDir {
			_ = os.Remove(loc.DataDir)
		}
	}
	// Opening migrates a backup made by an older nsauth; the key must open
	// every sealed value, or the restored server could not start.
	st, err := store.OpenSQLite(ctx, loc.DataDir, store.Options{Now: a.Now, Keyring: ring})
	if err != nil {
		undo()
		return fmt.Errorf("restored nothing: %w", err)
	}
	defer st.Close()
	if err := st.CheckSecrets(ctx); err != nil {
		_ = st.Close()
		undo()
		var ke *seal.KeyError
		switch {
		case errors.As(err, &ke):
			return fmt.Errorf("restored nothing: the secret key is wrong: the backup's secrets are sealed with key id %s, and the key given in %s (key id %s) is not it; "+
				"give the key of the server the backup was taken from", ke.ID, given, ring.CurrentID())
		case errors.Is(err, seal.ErrNotAuthentic), errors.Is(err, seal.ErrMalformed):
			return fmt.Errorf("restored nothing: a sealed secret in the backup does not open under the key of its key id, given in %s: the backup was altered: %w", given, err)
		}
		return fmt.Errorf("restored nothing: checking the backup's secrets: %w", err)
	}
	fmt.Fprintf(a.Out, "restored %s into %s: schema version %d, %s; the secret key given in %s opens its secrets\n",
		file, st.Location(), info.SchemaVersion, users(info.Users), given)
	if given != keyFile {
		fmt.Fprintf(a.Out, "start the server with the same secret key (%s), or copy its key file to %s\n", config.SecretKeySettings(), keyFile)
	}
	return nil
}

// pgDumpAdvice is backup's answer for PostgreSQL: the pg_dump command.
func pgDumpAdvice(databaseURL, file string) string {
	target, schema, note := libpqTarget(databaseURL)
	if schema != "" {
		schema = " --schema=" + shellQuote(schema)
	}
	return "nsauth-server backup copies a SQLite data directory; a PostgreSQL database is backed up by pg_dump, " +
		"which takes a consistent copy while nsauth runs:\n" +
		"  pg_dump --format=custom" + schema + " --file=" + shellQuote(file) + " " + target + "\n" + note +
		"The secret key is not in the dump: keep it apart, the restored database needs it."
}

// pgRestoreAdvice is restore's answer for PostgreSQL: the pg_restore and
// psql commands, into the database --database-url names.
func pgRestoreAdvice(databaseURL, file string) string {
	target, _, note := libpqTarget(databaseURL)
	return "nsauth-server restore makes a SQLite data directory; a PostgreSQL dump is restored into a new, empty database " +
		"by pg_restore (a dump of pg_dump --format=custom) or psql (a plain SQL dump):\n" +
		"  pg_restore --no-owner --exit-on-error --dbname=" + target + " " + shellQuote(file) + "\n" +
		"  psql --set=ON_ERROR_STOP=1 --dbname=" + target + " --file=" + shellQuote(file) + "\n" + note +
		"(make the database first: createdb, or CREATE DATABASE); then start nsauth on it with the secret key of the server " +
		"the dump was taken from (" + config.SecretKeySettings() + ")."
}

// libpqTarget is the database URL as pg_dump and psql take it: without
// the search_path parameter, which libpq refuses (the schema is returned
// apart), and without its password, which a message never shows (note
// then says where libpq finds it).
func libpqTarget(databaseURL string) (target, schema, note string) {
	u, err := url.Parse(databaseURL)
	if err != nil || u.Scheme == "" {
		return `"$NSAUTH_DATABASE_URL"`, "", ""
	}
	q := u.Query()
	if sp := q.Get("search_path"); sp != "" {
		schema = strings.TrimSpace(strings.Split(sp, ",")[0])
		q.Del("search_path")
	}
	if q.Has("password") {
		q.Del("password")
		note = "(give the password in PGPASSWORD or ~/.pgpass)\n"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.User(u.User.Username())
		note = "(give the password in PGPASSWORD or ~/.pgpass)\n"
	}
	u.RawQuery = q.Encode()
	return shellQuote(u.String()), schema, note
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@%+,") == "" && !strings.HasPrefix(s, "-") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// users says how many users a backup holds: "1 user", "3 users".
func users(n int) string {
	if n == 1 {
		return "1 user"
	}
	return fmt.Sprintf("%d users", n)
}
