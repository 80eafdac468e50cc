package servercmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/adminservice"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
)

// One-time links instead of passwords handed over: nsauth users invite and
// nsauth users reset-link, through the AdminService (remotely with
// --api-url, or in process). The link goes to standard output alone, so
// that a script can pipe it into a mail; the message goes to standard
// error.

// linkTTLFlag is --ttl of the link commands: zero leaves the lifetime to
// the server's NSAUTH_LINK_TTL.
func linkTTLFlag(cmd *cobra.Command, ttl *time.Duration) {
	cmd.Flags().DurationVar(ttl, "ttl", 0, "how long the link stays valid (at most 168h; default: the server's --link-ttl, 24h unless set)")
}

func checkLinkTTL(ttl time.Duration) error {
	switch {
	case ttl < 0 || ttl > store.MaxLinkTTL:
		return cli.UsageErrorf("--ttl must be above 0 and at most %s, not %s", store.MaxLinkTTL, ttl)
	case ttl%time.Second != 0:
		// The admin API carries whole seconds; a fraction must not
		// silently become the server's default.
		return cli.UsageErrorf("--ttl must be whole seconds, not %s", ttl)
	}
	return nil
}

func newUsersInviteCommand(o *usersOptions) *cobra.Command {
	var (
		name, email string
		groups      []string
		ttl         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "invite <username>",
		Short: "Create a user without a password and print a one-time link with which they set one",
		Long: `Print an invite link: its holder sets the user's password in the browser (and
sets up a second factor: required under NSAUTH_MFA=required, offered
otherwise), then lands on their account page, signed in. The user is created
first, without a password, when there is none of that name; a user who has a
password gets a reset link instead (nsauth users reset-link).

The link works once and expires after --ttl (default: the server's
--link-ttl, 24h unless set; at most 7 days). A new link replaces the user's
previous one. It is printed on standard output, once, and stored only as a
digest: give it to the user alone, through a channel you trust. The audit
trail names it by its ref.`,
		Example: `  nsauth users invite alice --name "Alice Liddell" --email alice@example.com
  nsauth users invite bob --groups ops,dev --ttl 2h`,
		Args: exactlyOneArg,
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkLinkTTL(ttl); err != nil {
				return err
			}
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				return o.invite(ctx, api, &adminv1.CreateUserRequest{Username: args[0], Name: name, Email: email, Groups: groups}, ttl)
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "display name of a new user (the ID token's name claim)")
	cmd.Flags().StringVar(&email, "email", "", "email address of a new user (the ID token's email claim)")
	cmd.Flags().StringSliceVar(&groups, "groups", nil, "nsauth groups to add a new user to, comma-separated (they must exist)")
	linkTTLFlag(cmd, &ttl)
	return cmd
}

func newUsersResetLinkCommand(o *usersOptions) *cobra.Command {
	var (
		ttl    time.Duration
		revoke bool
	)
	cmd := &cobra.Command{
		Use:   "reset-link <username>",
		Short: "Print a one-time link with which a user sets a new password",
		Long: `Print a password reset link: its holder sets a new password for the user in
the browser. A user who has a second factor must also give one of them (a
code of their authenticator app, a recovery code or a passkey), so that the link alone
never takes an account a factor protects; a user without one is offered to
set one up (required under NSAUTH_MFA=required). The new password ends the
user's other sessions and revokes their tokens.

The link works once and expires after --ttl (default: the server's
--link-ttl, 24h unless set; at most 7 days); a disabled user's link is
refused. A new link replaces the user's previous one; --revoke removes it.
Give it to the user alone: it is printed on standard output, once, and
stored only as a digest.`,
		Example: `  nsauth users reset-link alice
  nsauth users reset-link alice --ttl 1h
  nsauth users reset-link alice --revoke`,
		Args: exactlyOneArg,
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkLinkTTL(ttl); err != nil {
				return err
			}
			if revoke && c.Flags().Changed("ttl") {
				return cli.UsageErrorf("--revoke takes no --ttl")
			}
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				if revoke {
					return o.revokeLink(ctx, api, args[0])
				}
				return o.printLink(ctx, api, args[0], adminv1.LinkPurpose_LINK_PURPOSE_RESET, ttl)
			})
		},
	}
	linkTTLFlag(cmd, &ttl)
	cmd.Flags().BoolVar(&revoke, "revoke", false, "remove the user's one-time link instead of making one")
	return cmd
}

// invite creates the user of req when there is none, then prints an invite
// link for them.
func (o *usersOptions) invite(ctx context.Context, api adminv1connect.AdminServiceClient, req *adminv1.CreateUserRequest, ttl time.Duration) error {
	_, err := api.GetUser(ctx, connect.NewRequest(&adminv1.GetUserRequest{Username: req.Username}))
	switch {
	case connect.CodeOf(err) == connect.CodeNotFound:
		created, err := api.CreateUser(ctx, connect.NewRequest(req))
		if err != nil {
			return linkError(err)
		}
		fmt.Fprintf(o.App.ErrOut, "Created user %q without a password.\n", created.Msg.GetUser().GetUsername())
	case err != nil:
		return linkError(err)
	case req.Name != "" || req.Email != "" || len(req.Groups) > 0:
		return fmt.Errorf("user %q already exists: --name, --email and --groups are for a new user", req.Username)
	}
	return o.printLink(ctx, api, req.Username, adminv1.LinkPurpose_LINK_PURPOSE_INVITE, ttl)
}

// printLink makes a link of purpose for username and prints it.
func (o *usersOptions) printLink(ctx context.Context, api adminv1connect.AdminServiceClient, username string, purpose adminv1.LinkPurpose, ttl time.Duration) error {
	resp, err := api.CreateUserLink(ctx, connect.NewRequest(&adminv1.CreateUserLinkRequest{Username: username, Purpose: purpose,
		TtlSeconds: int64(ttl / time.Second)}))
	if err != nil {
		return linkError(err)
	}
	what, does := "Invite link", "sets the password and signs in"
	if purpose == adminv1.LinkPurpose_LINK_PURPOSE_RESET {
		what, does = "Password reset link", "sets a new password (and needs the second factor, if the user has one)"
	}
	expires := time.Unix(resp.Msg.GetExpiresAt(), 0).UTC().Format("2006-01-02 15:04 MST")
	fmt.Fprintf(o.App.ErrOut, "%s for %q (ref %s), valid once until %s. Give it to the user alone: its holder %s.\n",
		what, linkUsername(username), resp.Msg.GetRef(), expires, does)
	fmt.Fprintln(o.App.Out, resp.Msg.GetUrl())
	return nil
}

// revokeLink removes username's link.
func (o *usersOptions) revokeLink(ctx context.Context, api adminv1connect.AdminServiceClient, username string) error {
	resp, err := api.RevokeUserLink(ctx, connect.NewRequest(&adminv1.RevokeUserLinkRequest{Username: username}))
	if err != nil {
		return linkError(err)
	}
	if !resp.Msg.GetRevoked() {
		return fmt.Errorf("%q has no one-time link", linkUsername(username))
	}
	fmt.Fprintf(o.App.ErrOut, "Revoked the one-time link of %q.\n", linkUsername(username))
	return nil
}

// linkError is what the commands print of the service's error: its
// message (which names the fix), and for an internal error in process its
// cause.
func linkError(err error) error {
	err = adminservice.Detail(err)
	var ce *connect.Error
	if errors.As(err, &ce) {
		if ce.Code() == connect.CodeInvalidArgument {
			return cli.UsageErrorf("%s", ce.Message())
		}
		return errors.New(ce.Message())
	}
	return err
}

// linkUsername is username as the store names it, for messages.
func linkUsername(username string) string {
	if n, err := store.NormalizeUsername(username); err == nil {
		return n
	}
	return username
}

// passwordReader reads a secret without echo: o.readPassword, else
// golang.org/x/term when standard input is a terminal; nil otherwise.
func (o *usersOptions) passwordReader() func(prompt string) (string, error) {
	if o.readPassword != nil {
		return o.readPassword
	}
	f, ok := o.App.In.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return func(prompt string) (string, error) {
		fmt.Fprint(o.App.ErrOut, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(o.App.ErrOut)
		return string(b), err
	}
}

// passwordOrInvite reads a new user's password as newPassword does; on a
// terminal, Enter on an empty password means an invite link instead
// (invite true), so that no password is handed over.
func (o *usersOptions) passwordOrInvite() (pw string, invite bool, err error) {
	read := o.passwordReader()
	if read == nil {
		pw, err = o.newPassword()
		return pw, false, err
	}
	first, err := read("New password: ")
	if err != nil {
		return "", false, fmt.Errorf("reading the password: %w", err)
	}
	if first == "" {
		fmt.Fprintln(o.App.ErrOut, "No password given: the user sets one with an invite link instead.")
		return "", true, nil
	}
	second, err := read("Repeat it: ")
	if err != nil {
		return "", false, fmt.Errorf("reading the password: %w", err)
	}
	if first != second {
		return "", false, errors.New("the passwords do not match")
	}
	if err := password.Validate(first); err != nil {
		return "", false, err
	}
	return first, false, nil
}
