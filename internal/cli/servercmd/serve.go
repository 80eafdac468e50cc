package servercmd

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/config"
)

func newServeCommand(a *cli.App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the AuthService server",
		Long: `Run the AuthService server: Connect, gRPC and gRPC-Web on one port, with
health checking, reflection and Prometheus metrics.

Configuration comes from flags or environment variables (Neosync's names are
accepted unchanged); flags win. With no external provider configured, nsauth
runs its own OpenID provider in the same process: accounts live in a SQLite
database under --data-dir, or in PostgreSQL with --database-url, and the first
start creates an administrator. AUTH_ENABLED=false turns authentication off.`,
		Example: `  # Built-in provider on 127.0.0.1:8080, issuer http://localhost:8080 (prints the admin password at first start)
  nsauth serve

  # Built-in provider on PostgreSQL, reachable by other machines
  NSAUTH_DATABASE_URL=postgres://nsauth@db/nsauth nsauth serve \
    --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem --issuer https://auth.example.com:8443

  # Broker an external OpenID provider
  AUTH_BASEURL=https://auth.example.com/realms/neosync \
  AUTH_AUDIENCE=neosync AUTH_CLI_CLIENT_ID=neosync-cli \
  AUTH_CLIENTID_SECRET='{"neosync-cli":"…"}' nsauth serve --listen 0.0.0.0:8080`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cmd.Flags(), a.Getenv)
			if err != nil {
				return err
			}
			return runServe(cmd.Context(), a, cfg)
		},
	}
	config.RegisterFlags(cmd.Flags())
	return cmd
}

// deps are what the server takes from the outside world: the messages
// stream, the audit stream's standard output, the clock and the environment.
func deps(a *cli.App) app.Deps {
	return app.Deps{Stderr: a.ErrOut, Stdout: a.Out, Now: a.Now, Getenv: a.Getenv}
}

// runServe assembles the server and serves until ctx ends.
func runServe(ctx context.Context, a *cli.App, cfg *config.Server) error {
	srv, err := app.New(ctx, cfg, deps(a))
	if err != nil {
		return err
	}
	return srv.Serve(ctx)
}
