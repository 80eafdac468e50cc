package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// logoutTimeout bounds logout's revocation call and its wait for the lock.
const logoutTimeout = 30 * time.Second

// logoutOptions holds `nsauth logout`'s flags and dependencies.
type logoutOptions struct {
	app    *App
	client clientOptions
	deps   clientDeps
}

func newLogoutCommand(app *App, runF func(context.Context, *logoutOptions) error) *cobra.Command {
	o := &logoutOptions{app: app, deps: defaultClientDeps(app)}
	if runF == nil {
		runF = runLogout
	}
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Revoke the refresh token and delete the stored tokens",
		Long: `Ask the server to revoke the stored refresh token at the identity provider
(RevokeCli, RFC 7009), then delete the stored tokens for the API URL.

The tokens are deleted even when revocation fails or is not supported (an
older server, or a provider without a revocation endpoint); the command then
says so, and exits with status 1 if revocation failed. An access token that
was already issued is refused within a second by a server running the
built-in provider, or asking an external one by introspection; a server
checking an external provider's JWTs by signature accepts it until it
expires.`,
		Example: `  nsauth logout
  nsauth logout --api-url https://neosync.example.com`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.client.resolve(o.app.Getenv); err != nil {
				return err
			}
			return runF(cmd.Context(), o)
		},
	}
	o.client.addFlags(cmd.Flags())
	return cmd
}

func runLogout(ctx context.Context, o *logoutOptions) error {
	errOut := o.app.ErrOut
	apiURL := o.client.APIURL
	store, err := o.deps.store(o.client.ConfigDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, logoutTimeout)
	defer cancel()

	e, loadErr := store.LoadMetadata(apiURL)
	if errors.Is(loadErr, tokenstore.ErrNotFound) {
		fmt.Fprintf(errOut, "Not logged in to %s; nothing to do.\n", apiURL)
		return nil
	}
	// Hold the lock so that no refresh writes new tokens behind us.
	unlock, err := store.Lock(ctx, apiURL)
	if err != nil {
		return fmt.Errorf("logging out: %w", err)
	}
	defer unlock()

	var revokeErr error
	if loadErr == nil {
		e, loadErr = store.Load(apiURL)
	}
	switch {
	case loadErr != nil:
		fmt.Fprintf(errOut, "The stored tokens cannot be read (%v); deleting them without revoking.\n", loadErr)
	case e.RefreshToken == "":
		fmt.Fprintln(errOut, "No refresh token is stored; nothing to revoke.")
	default:
		revokeErr = o.revoke(ctx, e.RefreshToken)
	}

	existed, err := store.Delete(apiURL)
	if err != nil {
		return fmt.Errorf("deleting the stored tokens: %w", err)
	}
	if existed {
		fmt.Fprintf(errOut, "Deleted the stored tokens for %s.\n", apiURL)
	}
	if loadErr == nil && !e.Expiry.IsZero() && o.deps.Now().Before(e.Expiry) {
		fmt.Fprintf(errOut, "An access token already handed out stays valid until %s.\n", formatExpiry(e.Expiry, o.deps.Now()))
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
	resp, err := o.deps.authClient(o.client.APIURL).RevokeCli(ctx, connect.NewRequest(&mgmtv1alpha1.RevokeCliRequest{RefreshToken: refreshToken}))
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
		return errors.New(o.deps.describeError(o.client.APIURL, err))
	}
	return nil
}
