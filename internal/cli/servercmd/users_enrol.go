package servercmd

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/adminservice"
	"github.com/nsauth/nsauth/internal/store"
)

func newUsersEnrolLinkCommand(o *usersOptions) *cobra.Command {
	var (
		ttl    time.Duration
		revoke bool
	)
	cmd := &cobra.Command{
		Use:   "enrol-link <username>",
		Short: "Print a one-time link with which a user adds a second factor in the browser",
		Long: `Print a link that lets a user set up a second factor (an authenticator app
or a passkey) in the browser. A password alone never adds a factor: a factor
that can replace the password is added only after a login that proved a
second factor, or through this link. Its holder must also give the user's
password; the link then works once, and expires after --ttl (default 12h, at
most 7 days). A new link replaces the user's previous one; --revoke removes it.

Under NSAUTH_MFA=required a user without a second factor cannot sign in
until they use such a link (or you run nsauth users totp enroll for them).
Give the link to the user alone, through a channel you trust: the link is
printed on standard output, once, and stored only as a digest.`,
		Example: `  nsauth users enrol-link alice
  nsauth users enrol-link alice --ttl 1h
  nsauth users enrol-link alice --revoke`,
		Args: exactlyOneArg,
		RunE: func(c *cobra.Command, args []string) error {
			if ttl <= 0 || ttl > store.MaxEnrolLinkTTL {
				return fmt.Errorf("--ttl must be above 0 and at most %s, not %s", store.MaxEnrolLinkTTL, ttl)
			}
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				if revoke {
					return o.revokeEnrolLink(ctx, api, args[0])
				}
				return o.enrolLink(ctx, api, args[0], ttl)
			})
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", adminservice.DefaultEnrolLinkTTL, "how long the link stays valid (at most 168h)")
	cmd.Flags().BoolVar(&revoke, "revoke", false, "remove the user's enrolment link instead of making one")
	return cmd
}

// enrolLink makes an enrolment link for username and prints it
// (adminservice's CreateUserEnrolLink): the link alone on standard
// output, once. The lifetime goes in whole seconds, rounded up (zero
// would mean the default).
func (o *usersOptions) enrolLink(ctx context.Context, api adminv1connect.AdminServiceClient, username string, ttl time.Duration) error {
	resp, err := api.CreateUserEnrolLink(ctx, connect.NewRequest(&adminv1.CreateUserEnrolLinkRequest{Username: username, TtlSeconds: int64((ttl + time.Second - 1) / time.Second)}))
	if err != nil {
		return err
	}
	name := linkUsername(username)
	fmt.Fprintf(o.App.ErrOut, "Enrolment link for %q, valid once until %s. Give it to %s alone: with the account's password it adds a second factor.\n",
		name, time.Unix(resp.Msg.GetExpiresAt(), 0).UTC().Format("2006-01-02 15:04 MST"), name)
	fmt.Fprintln(o.App.Out, resp.Msg.GetUrl())
	return nil
}

// revokeEnrolLink removes username's enrolment link (adminservice's
// RevokeUserEnrolLink).
func (o *usersOptions) revokeEnrolLink(ctx context.Context, api adminv1connect.AdminServiceClient, username string) error {
	resp, err := api.RevokeUserEnrolLink(ctx, connect.NewRequest(&adminv1.RevokeUserEnrolLinkRequest{Username: username}))
	if err != nil {
		return err
	}
	if !resp.Msg.GetRevoked() {
		return fmt.Errorf("%q has no enrolment link", linkUsername(username))
	}
	fmt.Fprintf(o.App.ErrOut, "Revoked the enrolment link of %q.\n", linkUsername(username))
	return nil
}
