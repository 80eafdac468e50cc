package appscmd

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd/storecmd"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/store"
)

// NewSessionsCommand is `nsauth sessions`: the built-in provider's browser
// sessions, listed and ended.
func NewSessionsCommand(app *cli.App) *cobra.Command {
	o := &storecmd.Command{App: app}
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "List and end the built-in provider's browser sessions",
		Long: `List and end browser sessions. After a login, the built-in provider keeps the
user signed in, in that browser, so that the same app later, or another app,
gets its code without the password (single sign-on). A session ends when the
user signs out of an app, after --session-idle-timeout without use, after
--session-lifetime, or when nsauth sessions revoke ends it.

Revoking a session ends it and revokes every token issued to the apps the
user signed in to within it; nsauth sessions revoke --user ends every session
of a user. The commands work on the provider's store directly, as nsauth users
does, or with --api-url through the admin API of a running server.`,
		Example: `  nsauth sessions list --user alice
  nsauth sessions revoke 3f0c2a9e-5d1b-4d55-9a57-1f1d2b6f8e01
  nsauth sessions revoke --user alice`,
		Args: cli.NoArgs,
	}
	o.Parent = cmd
	config.RegisterStoreFlags(cmd.PersistentFlags())
	o.RegisterRemoteFlags(cmd.PersistentFlags())

	var (
		user   string
		asJSON bool
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List the live browser sessions, newest first",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			name, err := userFlag(user)
			if err != nil {
				return err
			}
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				return listSessions(ctx, o, api, name, asJSON)
			})
		},
	}
	list.Flags().StringVar(&user, "user", "", "only this user's sessions")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")

	revoke := &cobra.Command{
		Use:   "revoke <id> | --user <username>",
		Short: "End a browser session (or every session of a user) and revoke its tokens",
		Args: func(c *cobra.Command, args []string) error {
			switch {
			case user == "" && len(args) != 1:
				return cli.UsageErrorf("%s takes a session id (nsauth sessions list shows them), or --user", c.CommandPath())
			case user != "" && len(args) != 0:
				return cli.UsageErrorf("%s takes a session id or --user, not both", c.CommandPath())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if user != "" {
				name, err := userFlag(user)
				if err != nil {
					return err
				}
				return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
					return revokeUserSessions(ctx, o, api, name)
				})
			}
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				return revokeSession(ctx, o, api, args[0])
			})
		},
	}
	revoke.Flags().StringVar(&user, "user", "", "end every session of this user")

	cmd.AddCommand(list, revoke)
	return cmd
}

// sessionJSON is a session as `sessions list --json` prints it: never
// its cookie, nor the browser's device id.
type sessionJSON struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	Username   string    `json:"username"`
	AuthTime   time.Time `json:"auth_time"`
	AMR        []string  `json:"amr"`
	Apps       []string  `json:"apps"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// userFlag is the username a --user flag gives, or a usage error.
func userFlag(username string) (string, error) {
	if username == "" {
		return "", nil
	}
	name, err := store.NormalizeUsername(username)
	if err != nil {
		return "", cli.UsageErrorf("--user: %v", err)
	}
	return name, nil
}

// noUser says that --user names no user, when err is the service's
// NotFound.
func noUser(err error, name string) error {
	if connect.CodeOf(err) == connect.CodeNotFound {
		return fmt.Errorf("--user: no user %q", name)
	}
	return err
}

func listSessions(ctx context.Context, o *storecmd.Command, api adminv1connect.AdminServiceClient, username string, asJSON bool) error {
	res, err := api.ListSessions(ctx, connect.NewRequest(&adminv1.ListSessionsRequest{Username: username}))
	if err != nil {
		return noUser(err, username)
	}
	out := make([]sessionJSON, 0, len(res.Msg.GetSessions()))
	for _, s := range res.Msg.GetSessions() {
		amr, apps := s.GetAmr(), s.GetApps()
		if amr == nil {
			amr = []string{}
		}
		if apps == nil {
			apps = []string{}
		}
		out = append(out, sessionJSON{ID: s.GetId(), UserID: s.GetUserId(), Username: s.GetUsername(), AuthTime: fromUnix(s.GetAuthTime()), AMR: amr, Apps: apps,
			CreatedAt: fromUnix(s.GetCreatedAt()), LastSeenAt: fromUnix(s.GetLastSeenAt()), ExpiresAt: fromUnix(s.GetExpiresAt())})
	}
	if asJSON {
		return storecmd.PrintJSON(o.App.Out, out)
	}
	tw := tabwriter.NewWriter(o.App.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tSIGNED IN\tMETHODS\tLAST SEEN\tEXPIRES\tAPPS")
	for _, s := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Username, s.AuthTime.Format(time.RFC3339), storecmd.OrDash(strings.Join(s.AMR, ",")),
			s.LastSeenAt.Format(time.RFC3339), s.ExpiresAt.Format(time.RFC3339), storecmd.OrDash(strings.Join(s.Apps, ",")))
	}
	return tw.Flush()
}

func revokeSession(ctx context.Context, o *storecmd.Command, api adminv1connect.AdminServiceClient, id string) error {
	id = strings.TrimSpace(id)
	res, err := api.EndSessions(ctx, connect.NewRequest(&adminv1.EndSessionsRequest{Id: id}))
	if connect.CodeOf(err) == connect.CodeNotFound {
		return fmt.Errorf("no session %q (nsauth sessions list shows them)", id)
	}
	if err != nil {
		return err
	}
	if res.Msg.GetEnded() == 0 {
		fmt.Fprintf(o.App.ErrOut, "Session %s had already ended.\n", id)
		return nil
	}
	fmt.Fprintf(o.App.ErrOut, "Ended session %s of %q and revoked the tokens of %d app login(s) within it.\n", id, res.Msg.GetUsername(), res.Msg.GetAppLoginsRevoked())
	return nil
}

func revokeUserSessions(ctx context.Context, o *storecmd.Command, api adminv1connect.AdminServiceClient, username string) error {
	res, err := api.EndSessions(ctx, connect.NewRequest(&adminv1.EndSessionsRequest{Username: username}))
	if err != nil {
		return noUser(err, username)
	}
	if res.Msg.GetEnded() == 0 {
		fmt.Fprintf(o.App.ErrOut, "%q has no live session.\n", res.Msg.GetUsername())
		return nil
	}
	fmt.Fprintf(o.App.ErrOut, "Ended %d session(s) of %q and revoked the tokens issued within them.\n", res.Msg.GetEnded(), res.Msg.GetUsername())
	return nil
}
