package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/cli/session"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// logoutTimeout bounds logout's revocation call and its wait for the lock.
const logoutTimeout = 30 * time.Second

// logoutOptions holds `nsauth logout`'s flags and dependencies.
type logoutOptions struct {
	app    *App
	client session.Options
	deps   session.Deps

	// All logs out of every account of the server.
	All bool
}

func newLogoutCommand(app *App, runF func(context.Context, *logoutOptions) error) *cobra.Command {
	o := &logoutOptions{app: app, deps: session.NewDeps(app)}
	if runF == nil {
		runF = runLogout
	}
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Revoke the refresh token and delete the stored tokens",
		Long: `Ask the server to revoke the stored refresh token at the identity provider
(RevokeCli, RFC 7009), then delete the stored tokens of the active account for
the API URL (of another with --account, of all with --all).

The server's other accounts stay logged in. After logging out of the active
account none is active, rather than another user silently taking its place:
choose one with nsauth switch, or log in.

The tokens are deleted even when revocation fails or is not supported (an
older server, or a provider without a revocation endpoint); the command then
says so, and exits with status 1 if revocation failed. An access token that
was already issued is refused within a second by a server running the
built-in provider, or asking an external one by introspection; a server
checking an external provider's JWTs by signature accepts it until it
expires.`,
		Example: `  nsauth logout
  nsauth logout --api-url https://neosync.example.com
  nsauth logout --account bob@example.com
  nsauth logout --all`,
		Args: NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.client.Resolve(o.app.Getenv); err != nil {
				return err
			}
			if o.All && o.client.Account != "" {
				return UsageErrorf("--all and --account exclude each other")
			}
			return runF(cmd.Context(), o)
		},
	}
	o.client.AddFlags(cmd.Flags())
	o.client.AddAccountFlag(app, cmd)
	cmd.Flags().BoolVar(&o.All, "all", false, "log out of every account of the API server")
	return cmd
}

func runLogout(ctx context.Context, o *logoutOptions) error {
	errOut := o.app.ErrOut
	apiURL := o.client.APIURL
	store, err := o.deps.Store(o.client.ConfigDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, logoutTimeout)
	defer cancel()

	targets := []string{o.client.Account} // "": the active account
	if o.All {
		entries, _, err := store.Accounts(apiURL)
		if err != nil {
			return fmt.Errorf("reading the stored accounts: %w", err)
		}
		targets = targets[:0]
		for _, e := range entries {
			targets = append(targets, e.Account.ID)
		}
	}
	e, err := store.LoadAccountMetadata(apiURL, o.client.Account)
	switch {
	case errors.Is(err, tokenstore.ErrUnknownAccount), errors.Is(err, tokenstore.ErrAmbiguousAccount):
		return &usageError{Err: fmt.Errorf("--account: %w", err)}
	case !o.All && errors.Is(err, tokenstore.ErrNoActiveAccount):
		fmt.Fprintf(errOut, "No account is active on %s; nothing to do (nsauth logout --account ACCOUNT logs out of another, --all of all).\n", apiURL)
		return nil
	case (!o.All && errors.Is(err, tokenstore.ErrNotFound)) || len(targets) == 0:
		fmt.Fprintf(errOut, "Not logged in to %s; nothing to do.\n", apiURL)
		return nil
	case err == nil && !o.All:
		targets[0] = e.Account.ID
	}
	// Hold the lock so that no refresh writes new tokens behind us.
	unlock, err := store.Lock(ctx, apiURL)
	if err != nil {
		return fmt.Errorf("logging out: %w", err)
	}
	defer unlock()

	var failed []error
	for _, account := range targets {
		if err := o.logoutAccount(ctx, store, account); err != nil {
			failed = append(failed, err)
		}
	}
	if entries, active, err := store.Accounts(apiURL); err == nil && len(entries) > 0 {
		handles := make([]string, len(entries))
		for i, e := range entries {
			handles[i] = session.DisplayText(e.Account.Handle(entries))
		}
		switch {
		case active != "":
			// Another account was logged out of; the active one stays.
		case len(entries) == 1:
			fmt.Fprintf(errOut, "Still logged in as %s, which is not active; %s to use it.\n", handles[0], session.SwitchHint(apiURL, handles[0]))
		default:
			fmt.Fprintf(errOut, "Still logged in as %s, none of them active; %s to use one.\n", strings.Join(handles, ", "), session.SwitchHint(apiURL, "ACCOUNT"))
		}
	}
	return errors.Join(failed...)
}

// logoutAccount revokes and deletes the tokens of one account (an ID, or
// "" for the active one), under the server's lock.
func (o *logoutOptions) logoutAccount(ctx context.Context, store *tokenstore.Store, account string) error {
	errOut := o.app.ErrOut
	apiURL := o.client.APIURL
	var revokeErr error
	e, loadErr := store.LoadAccount(apiURL, account)
	switch {
	case errors.Is(loadErr, tokenstore.ErrNotFound):
		return nil // gone meanwhile
	case loadErr != nil:
		fmt.Fprintf(errOut, "The stored tokens cannot be read (%v); deleting them without revoking.\n", loadErr)
	case e.RefreshToken == "":
		fmt.Fprintln(errOut, "No refresh token is stored; nothing to revoke.")
	default:
		revokeErr = o.revoke(ctx, e.RefreshToken)
	}

	existed, err := store.DeleteAccount(apiURL, account)
	if err != nil {
		return fmt.Errorf("deleting the stored tokens: %w", err)
	}
	if existed {
		whose := ""
		if loadErr == nil {
			whose = " (" + session.DisplayText(e.Account.Name) + ")"
		}
		fmt.Fprintf(errOut, "Deleted the stored tokens for %s%s.\n", apiURL, whose)
	}
	if loadErr == nil && !e.Expiry.IsZero() && o.deps.Now().Before(e.Expiry) {
		fmt.Fprintf(errOut, "An access token already handed out stays valid until %s.\n", session.FormatExpiry(e.Expiry, o.deps.Now()))
	}
	if revokeErr != nil {
		return fmt.Errorf("logged out locally, but the refresh token was not revoked: %w", revokeErr)
	}
	return nil
}

// revoke asks the server to revoke refreshToken, and says what happened.
// It returns an error only when revocation was possible and failed.
func (o *logoutOptions) revoke(ctx context.Context, refreshToken string) error {
	errOut := o.app.ErrOut
	resp, err := o.deps.AuthClient(o.client.APIURL).RevokeCli(ctx, connect.NewRequest(&mgmtv1alpha1.RevokeCliRequest{RefreshToken: refreshToken}))
	switch {
	case err == nil && resp.Msg.GetRevoked():
		fmt.Fprintln(errOut, "Revoked the refresh token at the identity provider.")
	case err == nil:
		fmt.Fprintln(errOut, "The identity provider does not support revocation; the refresh token stays valid until it expires.")
	case connect.CodeOf(err) == connect.CodeUnimplemented:
		fmt.Fprintln(errOut, "The server does not support revocation (an older server); the refresh token stays valid until it expires.")
	case connect.CodeOf(err) == connect.CodeFailedPrecondition:
		fmt.Fprintln(errOut, "Authentication is disabled on the server; nothing to revoke.")
	case connect.CodeOf(err) == connect.CodeUnauthenticated:
		fmt.Fprintln(errOut, "The identity provider no longer accepts the refresh token; nothing to revoke.")
	default:
		return errors.New(o.deps.DescribeError(o.client.APIURL, err))
	}
	return nil
}
