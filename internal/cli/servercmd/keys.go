package servercmd

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/cli"
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
first start. PostgreSQL requires one.`,
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
		Short: "Seal every secret again under a new secret key",
		Long: `Seal every secret in the provider's database again under the new key
(NSAUTH_SECRET_KEY or NSAUTH_SECRET_KEY_FILE), in one transaction, opening
them with the old key (NSAUTH_OLD_SECRET_KEY or NSAUTH_OLD_SECRET_KEY_FILE;
with SQLite, the data directory's secret.key is tried too). Afterwards the
new key alone is needed and the old one opens nothing.

Servers that run meanwhile keep working when they were started with both
keys: start them with the new key and the old one, rotate, then restart
them with the new key alone. Use the same --data-dir or --database-url as
nsauth serve.`,
		Example: `  umask 077; nsauth keys generate-secret-key > new.key
  NSAUTH_OLD_SECRET_KEY_FILE=old.key NSAUTH_SECRET_KEY_FILE=new.key \
    NSAUTH_DATABASE_URL=postgres://nsauth@db/nsauth nsauth keys rotate-secret-key`,
		Args: cli.NoArgs,
	}
	config.RegisterStoreFlags(cmd.Flags())
	config.RegisterSecretKeyFlags(cmd.Flags())
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		loc, err := loadExistingStore(c.Flags(), a.Getenv)
		if err != nil {
			return err
		}
		keys, err := config.LoadSecretKeys(c.Flags(), a.Getenv)
		if err != nil {
			return err
		}
		n, err := app.RotateSecretKey(c.Context(), *loc, *keys, a.Now)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.ErrOut, "Sealed %d signing key(s) and %d other secret(s) again under the key with id %s.\n"+
			"Start every server with this key alone now: the old one opens nothing any more.\n",
			n.SigningKeys, n.Values+n.SecondFactors, keys.Current.ID())
		if loc.DatabaseURL == "" {
			file := filepath.Join(loc.DataDir, config.DefaultSecretKeyFile)
			if _, err := os.Stat(file); err == nil {
				fmt.Fprintf(a.ErrOut, "%s still holds the old key: replace it with the new one, or keep setting %s.\n", file, config.SecretKeySettings())
			}
		}
		return nil
	}
	return cmd
}
