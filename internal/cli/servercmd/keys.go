package servercmd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd/storecmd"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/seal"
)

func newKeysCommand(a *cli.App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the secret key that seals the built-in provider's secrets",
		Long: `The built-in provider keeps its private signing keys, the broker's client
secret and the keys of login links and device cookies in its database, sealed
with AES-256-GCM under a secret key kept elsewhere: NSAUTH_SECRET_KEY, or the
file NSAUTH_SECRET_KEY_FILE names (32 random bytes in base64). With SQLite and
neither set, the key is the file secret.key in the data directory, made at
first start. PostgreSQL requires one.

Either may list several keys, newest first, separated by commas (in a file,
by commas or lines): a server holds them all and opens what any of them
sealed, and the database says which one seals new values. That is how a
rotation goes without downtime: see rotate-secret-key.`,
		Args: cli.NoArgs,
	}
	cmd.AddCommand(newGenerateSecretKeyCommand(a), newRotateSecretKeyCommand(a))
	return cmd
}

func newGenerateSecretKeyCommand(a *cli.App) *cobra.Command {
	return &cobra.Command{
		Use:   "generate-secret-key",
		Short: "Print a new random secret key (32 bytes, base64)",
		Long: `Print a new secret key: 32 bytes from the system's random source, in
standard base64, as NSAUTH_SECRET_KEY and NSAUTH_SECRET_KEY_FILE take it.
Write it straight to a file readable only by the server's user.`,
		Example: `  (umask 077; nsauth keys generate-secret-key > /etc/nsauth/secret.key)`,
		Args:    cli.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(a.Out, seal.GenerateKey())
			return err
		},
	}
}

func newRotateSecretKeyCommand(a *cli.App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate-secret-key",
		Short: "Seal every secret again under a new secret key, while the servers run",
		Long: `Seal every secret in the provider's database again under a new key, and make
it the key that seals new ones, in one transaction, while the servers run.

SQLite with the data directory's secret.key (no key settings given): the
command makes the new key itself and writes it into secret.key above the old
one; the running server reads the file again when it meets the new key, so
it never stops opening what is sealed. After sealing everything again the
file is left with the new key alone. Run it on the server's machine, as the
user that owns secret.key.

Keys in NSAUTH_SECRET_KEY (or a file of your own, NSAUTH_SECRET_KEY_FILE):
the new key is the first one listed, and the others open what is sealed now.
First give every server the new key, listed before the current one
(NSAUTH_SECRET_KEY="<new key>,<current key>"): servers go on sealing with
the current key until this command switches the database to the new one, so
a rolling restart strands none. Then run this command with the same list.
Afterwards the old key opens nothing: remove it from the list when
convenient (servers that still list it keep working).

Every running server publishes in the database which keys it holds. The
command refuses, naming the servers and the fix, and changes nothing, when a
running server does not hold the new key and would fail to open what is
sealed under it. Use the same --data-dir or --database-url as nsauth serve.`,
		Example: `  # SQLite, with the data directory's secret.key
  nsauth keys rotate-secret-key --data-dir /var/lib/nsauth

  # PostgreSQL replicas: deploy NSAUTH_SECRET_KEY="$NEW,$OLD" to every one first
  NSAUTH_SECRET_KEY="$NEW,$OLD" NSAUTH_DATABASE_URL=postgres://nsauth@db/nsauth \
    nsauth keys rotate-secret-key
  # later, deploy NSAUTH_SECRET_KEY="$NEW" alone`,
		Args: cli.NoArgs,
	}
	config.RegisterStoreFlags(cmd.Flags())
	config.RegisterSecretKeyFlags(cmd.Flags())
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		loc, err := storecmd.LoadExistingStore(c.Flags(), a.Getenv)
		if err != nil {
			return err
		}
		keys, err := config.LoadSecretKeys(c.Flags(), a.Getenv)
		if err != nil {
			return err
		}
		rot, err := app.RotateSecretKey(c.Context(), *loc, *keys, a.Now)
		if err != nil {
			return err
		}
		if rot.Resumed {
			fmt.Fprintf(a.ErrOut, "%s listed a newer key above the one in use: finished that rotation.\n", rot.KeyFile)
		}
		fmt.Fprintf(a.ErrOut, "Sealed %d signing key(s) and %d other secret(s) again under the key with id %s; new secrets are sealed with it.\n",
			rot.Sealed.SigningKeys, rot.Sealed.Total()-rot.Sealed.SigningKeys, rot.KeyID)
		switch {
		case rot.KeyFile != "":
			fmt.Fprintf(a.ErrOut, "%s holds the new key alone; running servers that read it keep working, and drop the old key by themselves.\n", rot.KeyFile)
		case len(rot.Retired) > 0:
			fmt.Fprintf(a.ErrOut, "Key id(s) %s open nothing any more: remove them from %s on every server when convenient; servers that still list them keep working.\n",
				strings.Join(rot.Retired, ", "), config.SecretKeySettings())
		}
		if loc.DatabaseURL == "" && rot.KeyFile == "" {
			file := filepath.Join(loc.DataDir, config.DefaultSecretKeyFile)
			if _, err := os.Stat(file); err == nil {
				fmt.Fprintf(a.ErrOut, "%s still holds the old key: a server started without %s would not start; replace the file's key with the new one, or keep setting %s.\n",
					file, config.SecretKeySettings(), config.SecretKeySettings())
			}
		}
		return nil
	}
	return cmd
}
