package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/pkg/tokensource"
)

// tokenOptions holds `nsauth token`'s flags and dependencies.
type tokenOptions struct {
	app    *App
	client clientOptions
	deps   clientDeps

	// Margin is how much life a cached token must have left.
	Margin time.Duration
}

func newTokenCommand(app *App, runF func(context.Context, *tokenOptions) error) *cobra.Command {
	o := &tokenOptions{app: app, deps: defaultClientDeps(app)}
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
authentication disabled on the server (no token is needed there).`,
		Example: `  curl -H "Authorization: Bearer $(nsauth token)" http://localhost:8080/…

  # Against another server
  NSAUTH_API_URL=https://neosync.example.com nsauth token

  # As another of the accounts logged in (nsauth accounts lists them)
  nsauth token --account bob@example.com`,
		Args: NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.client.resolve(o.app.Getenv); err != nil {
				return err
			}
			if o.Margin < 0 {
				return UsageErrorf("--margin must not be negative")
			}
			return runF(cmd.Context(), o)
		},
	}
	o.client.addFlags(cmd.Flags())
	o.client.addAccountFlag(app, cmd)
	cmd.Flags().DurationVar(&o.Margin, "margin", tokensource.DefaultMargin, "refresh a token that expires within this long")
	return cmd
}

func runToken(ctx context.Context, o *tokenOptions) error {
	margin := o.Margin
	if margin == 0 {
		margin = -1 // tokensource: zero means the default, negative means none
	}
	tok, _, err := o.deps.token(ctx, o.client, margin)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(o.app.Out, tok.AccessToken)
	return err
}
