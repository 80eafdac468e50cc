package servercmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/adminservice"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd/storecmd"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/visible"
)

// usersOptions holds what every `nsauth users` subcommand needs.
type usersOptions struct {
	storecmd.Command
	// readPassword reads a secret without echo from a terminal; nil means
	// golang.org/x/term on In when it is one.
	readPassword func(prompt string) (string, error)
}

func newUsersCommand(app *cli.App) *cobra.Command {
	o := &usersOptions{Command: storecmd.Command{App: app}}
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Manage the built-in provider's user accounts",
		Long: `Manage the accounts people log in with when nsauth serves its built-in OpenID
provider. The commands work on the provider's store directly (the SQLite
database in --data-dir, or PostgreSQL at --database-url), so a running server
sees the changes at once; use the same settings as for nsauth serve. With
--api-url instead, add, list, passwd, disable, enable, delete, unlock,
groups, invite, reset-link, mfa-reset, totp remove, passkeys and
enrol-link administer a running server through its admin API, as the
administrator nsauth login --api-url logged in (docs/admin-api.md).

Passwords are read from the terminal without echo, or from the first line of
standard input when it is not a terminal; never from the command line.
Disabling a user, changing its password or deleting it revokes its tokens.
Unlocking a user clears the failed-login counters that keep browsers out of
it after too many wrong passwords, and takes its failures off the counters of
the addresses they came from (an address's failures at other accounts still
count). "totp enroll" sets up an authenticator
app (one-time codes) and prints recovery codes; "mfa-reset" removes every
second factor of a user who lost their device. "link" binds a user to their
identity at a connector (nsauth connectors), "unlink" removes it.`,
		Example: `  nsauth users add alice --name "Alice Liddell" --email alice@example.com
  printf '%s\n' "$PASSWORD" | nsauth users passwd alice
  nsauth users list
  nsauth users list --api-url https://auth.example.com
  NSAUTH_DATABASE_URL=postgres://nsauth@db/nsauth nsauth users disable bob
  nsauth users unlock admin
  nsauth users totp enroll alice
  nsauth users mfa-reset alice
  nsauth users link alice --connector google --subject 110248495921238986420`,
		Args: cli.NoArgs,
	}
	o.Parent = cmd
	config.RegisterStoreFlags(cmd.PersistentFlags())
	o.RegisterRemoteFlags(cmd.PersistentFlags())

	var (
		name, email string
		noPassword  bool
		identity    identityFlags
	)
	add := &cobra.Command{
		Use:   "add <username>",
		Short: "Create a user (asks for the password)",
		Long: `Create a user. The password is asked for without echo, or read from the first
line of standard input. With --no-password --connector NAME --subject SUBJECT
the user has no password and is linked to their identity at the connector:
they sign in only through it (nsauth users passwd gives them a password later).`,
		Example: `  nsauth users add alice --name "Alice Liddell" --email alice@example.com
  nsauth users add bob --no-password --connector google --subject 110248495921238986420`,
		Args: exactlyOneArg,
		RunE: func(c *cobra.Command, args []string) error {
			linked := c.Flags().Changed("connector") || c.Flags().Changed("subject")
			switch {
			case noPassword && !linked:
				return cli.UsageErrorf("--no-password needs --connector and --subject: a user without a password signs in only through a connector")
			case linked && !noPassword:
				return cli.UsageErrorf("--connector and --subject go with --no-password; to link a user who has a password, run nsauth users link after add")
			case linked:
				if err := identity.check(true); err != nil {
					return err
				}
			}
			if noPassword {
				if err := o.OfflineOnly("nsauth users add --no-password"); err != nil {
					return err
				}
				return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
					normalized, err := store.NormalizeUsername(args[0])
					if err != nil {
						return cli.UsageErrorf("%v", err)
					}
					return o.addWithIdentity(ctx, st, &store.User{Username: normalized, Name: name, Email: email}, identity)
				})
			}
			return o.Admin(c.Context(), func(ctx context.Context, admin adminv1connect.AdminServiceClient) error {
				return o.add(ctx, admin, args[0], name, email)
			})
		},
	}
	add.Flags().StringVar(&name, "name", "", "display name (the ID token's name claim)")
	add.Flags().StringVar(&email, "email", "", "email address (the ID token's email claim)")
	add.Flags().BoolVar(&noPassword, "no-password", false, "create the user without a password, linked to --connector and --subject")
	identity.register(add.Flags(), true)

	list := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return o.Admin(c.Context(), o.list)
		},
	}
	simple := func(use, short string, run func(ctx context.Context, admin adminv1connect.AdminServiceClient, username string) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " <username>",
			Short: short,
			Args:  exactlyOneArg,
			RunE: func(c *cobra.Command, args []string) error {
				return o.Admin(c.Context(), func(ctx context.Context, admin adminv1connect.AdminServiceClient) error {
					return run(ctx, admin, args[0])
				})
			},
		}
	}
	cmd.AddCommand(
		add,
		list,
		newUsersPasswdCommand(o),
		simple("disable", "Disable a user and revoke its tokens", func(ctx context.Context, admin adminv1connect.AdminServiceClient, u string) error {
			return o.setDisabled(ctx, admin, u, true)
		}),
		simple("enable", "Enable a disabled user", func(ctx context.Context, admin adminv1connect.AdminServiceClient, u string) error {
			return o.setDisabled(ctx, admin, u, false)
		}),
		simple("delete", "Delete a user and everything issued to it", o.delete),
		simple("unlock", "Clear a user's failed-login counters and its failures on address counters, so browsers may try again at once", o.unlock),
		newUsersPasskeysCommand(o),
		newUsersEnrolLinkCommand(o),
		newUsersInviteCommand(o),
		newUsersResetLinkCommand(o),
	)
	cmd.AddCommand(newUsersLinkCommands(o)...)
	o.addSecondFactorCommands(cmd)
	cmd.AddCommand(newUsersGroupsCommand(o))
	return cmd
}

var exactlyOneArg = cli.ExactlyOne("the username")

// userChanged records the audit.UserChanged event of action on u (or on
// the account named username, when the command did not read it).
func (o *usersOptions) userChanged(ctx context.Context, u *store.User, username, action string) error {
	e := audit.Event{Type: audit.UserChanged, Username: strings.ToLower(username), Reason: action}
	if u != nil {
		e.Subject, e.Username = u.ID, u.Username
	}
	return o.Changed(ctx, e)
}

func (o *usersOptions) add(ctx context.Context, admin adminv1connect.AdminServiceClient, username, name, email string) error {
	normalized, err := store.NormalizeUsername(username)
	if err != nil {
		return cli.UsageErrorf("%v", err)
	}
	if _, err := admin.GetUser(ctx, connect.NewRequest(&adminv1.GetUserRequest{Username: normalized})); err == nil {
		return fmt.Errorf("user %q already exists", normalized)
	} else if connect.CodeOf(err) != connect.CodeNotFound {
		return err
	}
	pw, invite, err := o.passwordOrInvite()
	if err != nil {
		return err
	}
	if invite {
		return o.invite(ctx, admin, &adminv1.CreateUserRequest{Username: normalized, Name: name, Email: email}, 0)
	}
	resp, err := admin.CreateUser(ctx, connect.NewRequest(&adminv1.CreateUserRequest{Username: normalized, Name: name, Email: email, Password: pw}))
	if err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Created user %q.\n", resp.Msg.GetUser().GetUsername())
	return nil
}

// list prints every user, a page at a time as the server sends them, so
// that a million users start printing at once and none is held for long;
// each page's columns are aligned on their own.
func (o *usersOptions) list(ctx context.Context, admin adminv1connect.AdminServiceClient) error {
	header := true
	for after := ""; ; {
		resp, err := admin.ListUsers(ctx, connect.NewRequest(&adminv1.ListUsersRequest{AfterUsername: after, Limit: adminservice.UsersPage}))
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(o.App.Out, 0, 4, 2, ' ', 0)
		if header {
			fmt.Fprintln(tw, "USERNAME\tSTATUS\tMFA\tNAME\tEMAIL\tCREATED")
			header = false
		}
		for _, u := range resp.Msg.GetUsers() {
			status := "enabled"
			if u.GetDisabledAt() != 0 {
				status = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.GetUsername(), status, secondFactorStatus(adminservice.Factors(u)), storecmd.OrDash(visible.Escape(u.GetName())), storecmd.OrDash(visible.Escape(u.GetEmail())), time.Unix(u.GetCreatedAt(), 0).UTC().Format(time.DateOnly))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(resp.Msg.GetUsers()) < adminservice.UsersPage || resp.Msg.GetLastUsername() == "" {
			return nil
		}
		after = resp.Msg.GetLastUsername()
	}
}

func newUsersPasswdCommand(o *usersOptions) *cobra.Command {
	var resetFactors bool
	cmd := &cobra.Command{
		Use:   "passwd <username>",
		Short: "Change a user's password (asks for it) and revoke its tokens",
		Long: `Change a user's password (asked for without echo, or read from the first line
of standard input) and revoke every token issued to the user. The command
says which second factors the user has: after a suspected takeover, whoever
held the password may have added one, so --reset-factors also removes every
second factor (authenticator app, recovery codes, passkeys), as
nsauth users mfa-reset does, in the same command.`,
		Example: `  nsauth users passwd alice
  nsauth users passwd alice --reset-factors`,
		Args: exactlyOneArg,
		RunE: func(c *cobra.Command, args []string) error {
			return o.Admin(c.Context(), func(ctx context.Context, admin adminv1connect.AdminServiceClient) error {
				return o.passwd(ctx, admin, args[0], resetFactors)
			})
		},
	}
	cmd.Flags().BoolVar(&resetFactors, "reset-factors", false, "also remove every second factor of the user (as users mfa-reset)")
	return cmd
}

func (o *usersOptions) passwd(ctx context.Context, admin adminv1connect.AdminServiceClient, username string, resetFactors bool) error {
	got, err := admin.GetUser(ctx, connect.NewRequest(&adminv1.GetUserRequest{Username: username}))
	if err != nil {
		return err
	}
	u := got.Msg.GetUser()
	has := factorsInWords(adminservice.Factors(u))
	switch {
	case has == "":
		fmt.Fprintf(o.App.ErrOut, "%q has no second factor.\n", u.GetUsername())
	case resetFactors:
		fmt.Fprintf(o.App.ErrOut, "%q has %s: --reset-factors removes them with the password change.\n", u.GetUsername(), has)
	default:
		fmt.Fprintf(o.App.ErrOut, "%q has %s. If someone else may have used this account, they may have added one: "+
			"run the command with --reset-factors to remove them all.\n", u.GetUsername(), has)
	}
	pw, err := o.newPassword()
	if err != nil {
		return err
	}
	if _, err := admin.SetUserPassword(ctx, connect.NewRequest(&adminv1.SetUserPasswordRequest{Username: u.GetUsername(), Password: pw, ResetFactors: resetFactors})); err != nil {
		return err
	}
	if !resetFactors {
		fmt.Fprintf(o.App.ErrOut, "Changed the password of %q; its tokens are revoked.\n", u.GetUsername())
		return nil
	}
	fmt.Fprintf(o.App.ErrOut, "Changed the password of %q and removed every second factor; its tokens are revoked.\n", u.GetUsername())
	return nil
}

// factorsInWords says which second factors f counts ("2 passkeys, 10
// recovery codes and an authenticator app"), "" for none.
func factorsInWords(f store.SecondFactors) string {
	var parts []string
	plural := func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	if f.Passkeys > 0 {
		parts = append(parts, plural(f.Passkeys, "passkey", "passkeys"))
	}
	if f.RecoveryCodes > 0 {
		parts = append(parts, plural(f.RecoveryCodes, "recovery code", "recovery codes"))
	}
	if f.TOTP {
		parts = append(parts, "an authenticator app")
	}
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

func (o *usersOptions) setDisabled(ctx context.Context, admin adminv1connect.AdminServiceClient, username string, disabled bool) error {
	if _, err := admin.SetUserDisabled(ctx, connect.NewRequest(&adminv1.SetUserDisabledRequest{Username: username, Disabled: disabled})); err != nil {
		return err
	}
	if disabled {
		fmt.Fprintf(o.App.ErrOut, "Disabled %q and revoked its tokens.\n", strings.ToLower(username))
	} else {
		fmt.Fprintf(o.App.ErrOut, "Enabled %q.\n", strings.ToLower(username))
	}
	return nil
}

func (o *usersOptions) delete(ctx context.Context, admin adminv1connect.AdminServiceClient, username string) error {
	if _, err := admin.DeleteUser(ctx, connect.NewRequest(&adminv1.DeleteUserRequest{Username: username})); err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Deleted %q.\n", strings.ToLower(username))
	return nil
}

// unlock clears the account's login-attempt counters and takes its
// failures off the client addresses' counters (adminservice's UnlockUser).
// What an address tried at other accounts still counts: it limits a
// client across every account, and the message says so.
func (o *usersOptions) unlock(ctx context.Context, admin adminv1connect.AdminServiceClient, username string) error {
	resp, err := admin.UnlockUser(ctx, connect.NewRequest(&adminv1.UnlockUserRequest{Username: username}))
	if err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Unlocked %q: cleared %d login-attempt counter(s) and took its failed sign-ins off %d client address(es). "+
		"Any browser may sign in to it again, from any address not still over the limit with failed sign-ins at other accounts.\n",
		strings.ToLower(username), resp.Msg.GetCounters(), resp.Msg.GetAddresses())
	return nil
}

func userError(username string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %q", strings.ToLower(username))
	}
	return err
}

// newPassword reads a new password: twice without echo from a terminal, or
// the first line of standard input otherwise.
func (o *usersOptions) newPassword() (string, error) {
	read := o.passwordReader()
	var pw string
	if read != nil {
		first, err := read("New password: ")
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		second, err := read("Repeat it: ")
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		if first != second {
			return "", errors.New("the passwords do not match")
		}
		pw = first
	} else {
		line, err := bufio.NewReader(io.LimitReader(o.App.In, password.MaxLength+2)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the password from standard input: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("no password on standard input (pipe it in, or run in a terminal)")
		}
	}
	if err := password.Validate(pw); err != nil {
		return "", err
	}
	return pw, nil
}
