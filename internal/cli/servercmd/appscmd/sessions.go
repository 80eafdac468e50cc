package appscmd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/audit"
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
does.`,
		Example: `  nsauth sessions list --user alice
  nsauth sessions revoke 3f0c2a9e-5d1b-4d55-9a57-1f1d2b6f8e01
  nsauth sessions revoke --user alice`,
		Args: cli.NoArgs,
	}
	o.Parent = cmd
	config.RegisterStoreFlags(cmd.PersistentFlags())

	var (
		user   string
		asJSON bool
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List the live browser sessions, newest first",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				return listSessions(ctx, o, st, user, asJSON)
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
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				if user != "" {
					return revokeUserSessions(ctx, o, st, user)
				}
				return revokeSession(ctx, o, st, args[0])
			})
		},
	}
	revoke.Flags().StringVar(&user, "user", "", "end every session of this user")

	cmd.AddCommand(list, revoke)
	return cmd
}

// filterUserID is the id of the user a listing's optional --user flag
// names, or "" (every user's) when it names none.
func filterUserID(ctx context.Context, st *store.Store, username string) (string, error) {
	if username == "" {
		return "", nil
	}
	u, err := findUser(ctx, st, username)
	if err != nil {
		return "", err
	}
	return u.ID, nil
}

// findUser finds the user named username, for a --user flag.
func findUser(ctx context.Context, st *store.Store, username string) (*store.User, error) {
	name, err := store.NormalizeUsername(username)
	if err != nil {
		return nil, cli.UsageErrorf("--user: %v", err)
	}
	u, err := st.UserByUsername(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("--user: no user %q", name)
	}
	return u, err
}

// usernames names users by id, asking the store once per user.
type usernames struct {
	st    *store.Store
	names map[string]string
}

func (n *usernames) of(ctx context.Context, id string) (string, error) {
	if name, ok := n.names[id]; ok {
		return name, nil
	}
	if n.names == nil {
		n.names = map[string]string{}
	}
	u, err := n.st.UserByID(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		n.names[id] = "(deleted user)"
	case err != nil:
		return "", err
	default:
		n.names[id] = u.Username
	}
	return n.names[id], nil
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

func listSessions(ctx context.Context, o *storecmd.Command, st *store.Store, username string, asJSON bool) error {
	userID, err := filterUserID(ctx, st, username)
	if err != nil {
		return err
	}
	sessions, err := st.ListSessions(ctx, userID)
	if err != nil {
		return err
	}
	names := &usernames{st: st}
	out := make([]sessionJSON, 0, len(sessions))
	for _, s := range sessions {
		name, err := names.of(ctx, s.UserID)
		if err != nil {
			return err
		}
		grants, err := st.SessionGrants(ctx, s.ID)
		if err != nil {
			return err
		}
		apps := []string{}
		for _, g := range grants {
			if !g.Revoked && !slices.Contains(apps, g.ClientID) {
				apps = append(apps, g.ClientID)
			}
		}
		amr := s.AMR
		if amr == nil {
			amr = []string{}
		}
		out = append(out, sessionJSON{ID: s.ID, UserID: s.UserID, Username: name, AuthTime: s.AuthTime.UTC(), AMR: amr, Apps: apps,
			CreatedAt: s.CreatedAt.UTC(), LastSeenAt: s.LastSeenAt.UTC(), ExpiresAt: s.ExpiresAt.UTC()})
	}
	if asJSON {
		return printJSON(o.App.Out, out)
	}
	tw := tabwriter.NewWriter(o.App.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tSIGNED IN\tMETHODS\tLAST SEEN\tEXPIRES\tAPPS")
	for _, s := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Username, s.AuthTime.Format(time.RFC3339), storecmd.OrDash(strings.Join(s.AMR, ",")),
			s.LastSeenAt.Format(time.RFC3339), s.ExpiresAt.Format(time.RFC3339), storecmd.OrDash(strings.Join(s.Apps, ",")))
	}
	return tw.Flush()
}

func revokeSession(ctx context.Context, o *storecmd.Command, st *store.Store, id string) error {
	id = strings.TrimSpace(id)
	s, err := st.SessionByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no session %q (nsauth sessions list shows them)", id)
	}
	if err != nil {
		return err
	}
	if !s.EndedAt.IsZero() {
		fmt.Fprintf(o.App.ErrOut, "Session %s had already ended.\n", s.ID)
		return nil
	}
	grants, err := st.EndSession(ctx, s.ID, nil)
	if err != nil {
		return err
	}
	name, err := (&usernames{st: st}).of(ctx, s.UserID)
	if err != nil {
		return err
	}
	if err := o.Changed(ctx, audit.Event{Type: audit.SessionRevoked, Subject: s.UserID, Username: name, Target: s.ID}); err != nil {
		return err
	}
	revoked := 0
	for _, g := range grants {
		if g.Revoked {
			revoked++
		}
	}
	fmt.Fprintf(o.App.ErrOut, "Ended session %s of %q and revoked the tokens of %d app login(s) within it.\n", s.ID, name, revoked)
	return nil
}

func revokeUserSessions(ctx context.Context, o *storecmd.Command, st *store.Store, username string) error {
	u, err := findUser(ctx, st, username)
	if err != nil {
		return err
	}
	n, err := st.EndUserSessions(ctx, u.ID)
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(o.App.ErrOut, "%q has no live session.\n", u.Username)
		return nil
	}
	if err := o.Changed(ctx, audit.Event{Type: audit.SessionRevoked, Subject: u.ID, Username: u.Username, Reason: "all_sessions"}); err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Ended %d session(s) of %q and revoked the tokens issued within them.\n", n, u.Username)
	return nil
}
