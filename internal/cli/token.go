package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/cli/session"
	"github.com/nsauth/nsauth/pkg/tokensource"
)

// tokenOptions holds `nsauth token`'s flags and dependencies.
type tokenOptions struct {
	app    *App
	client session.Options
	deps   session.Deps

	// Margin is how much life a cached token must have left.
	Margin time.Duration
	// Machine are the machine credentials' flags, and Credentials what
	// they and the environment resolve to.
	Machine     machineFlags
	Credentials *machineCredentials
}

func newTokenCommand(app *App, runF func(context.Context, *tokenOptions) error) *cobra.Command {
	o := &tokenOptions{app: app, deps: session.NewDeps(app)}
	if runF == nil {
		runF = runToken
	}
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a valid access token for scripts",
		Long: `Print the stored access token on standard output, and nothing else.

A token with more than --margin of life left is printed without any network
call. Otherwise it is refreshed first (one process refreshes; others running
at the same time wait for it and use its result). When there is no usable
login, the command says so on standard error and exits with status 1: not
logged in, the session refused by the server (whoami or a refresh found
that out; the refused tokens are forgotten, never printed again), or
authentication disabled on the server (no token is needed there).

A program or CI job gets a token of its own, without a login and without
writing any file, with machine credentials:

  - a machine client: $NSAUTH_CLIENT_ID with its secret in $NSAUTH_CLIENT_SECRET,
    in the file $NSAUTH_CLIENT_SECRET_FILE, or on standard input with
    --client-secret-stdin (never on the command line);
  - a CI job's ID token, exchanged for an access token (RFC 8693): the file
    --id-token-file or $NSAUTH_ID_TOKEN_FILE, read at each run, or the token
    in $NSAUTH_ID_TOKEN.

Giving both kinds, or one kind twice, is a usage error. The token comes from
the identity provider's token endpoint: the issuer's in $NSAUTH_ISSUER
(--issuer), or else the one named by the discovery document at the API URL's
origin, where nsauth's built-in provider serves it.`,
		Example: `  curl -H "Authorization: Bearer $(nsauth token)" http://localhost:8080/…

  # Against another server
  NSAUTH_API_URL=https://neosync.example.com nsauth token

  # As another of the accounts logged in (nsauth accounts lists them)
  nsauth token --account bob@example.com

  # As a machine client
  NSAUTH_CLIENT_ID=reports NSAUTH_CLIENT_SECRET_FILE=/run/secrets/reports nsauth token

  # In a CI job, with the job's ID token
  nsauth token --id-token-file "$CI_ID_TOKEN_FILE"`,
		Args: NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := resolveMachine(o.Machine, o.app.Getenv)
			if err != nil {
				return err
			}
			o.client.NoStore = m.Mode != storedLogin
			if err := o.client.Resolve(o.app.Getenv); err != nil {
				return err
			}
			if o.Margin < 0 {
				return UsageErrorf("--margin must not be negative")
			}
			if m.Mode != storedLogin && o.client.Account != "" {
				return UsageErrorf("--account names a stored login; machine credentials (%s) are their own account", m.secretSetting())
			}
			o.Credentials = m
			return runF(cmd.Context(), o)
		},
	}
	o.client.AddFlags(cmd.Flags())
	o.client.AddAccountFlag(app, cmd)
	cmd.Flags().DurationVar(&o.Margin, "margin", tokensource.DefaultMargin, "refresh a token that expires within this long")
	o.Machine.add(cmd.Flags())
	return cmd
}

func runToken(ctx context.Context, o *tokenOptions) error {
	if m := o.Credentials; m != nil && m.Mode != storedLogin {
		tok, err := machineToken(ctx, o.deps, o.app, o.client, m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(o.app.Out, tok.AccessToken)
		return err
	}
	margin := o.Margin
	if margin == 0 {
		margin = -1 // tokensource: zero means the default, negative means none
	}
	tok, _, err := o.deps.Token(ctx, o.client, margin)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(o.app.Out, tok.AccessToken)
	return err
}
