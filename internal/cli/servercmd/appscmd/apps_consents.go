package appscmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd/storecmd"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/visible"
)

// newConsentsCommand is `nsauth apps consents`: what users allowed
// third-party apps.
func newConsentsCommand(o *appsOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consents",
		Short: "List and revoke what users allowed third-party apps",
		Long: `A third-party app (nsauth apps add --third-party) shows each user a consent
page listing the scopes it asks for; the provider remembers the user's
answer per app. Revoking a consent makes the app ask again at the user's
next login; it does not revoke the tokens the app holds (nsauth sessions
revoke or nsauth apps rotate-secret do).`,
		Example: `  nsauth apps consents list --user alice
  nsauth apps consents revoke partner-app --user alice`,
		Args: cli.NoArgs,
	}
	var (
		user   string
		asJSON bool
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List consents",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.OfflineOnly("nsauth apps consents"); err != nil {
				return err
			}
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				return o.listConsents(ctx, st, user, asJSON)
			})
		},
	}
	list.Flags().StringVar(&user, "user", "", "only this user's consents")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")

	var revokeUser string
	revoke := &cobra.Command{
		Use:   "revoke <app> --user <username>",
		Short: "Forget what a user allowed an app, so that it asks again",
		Args:  exactlyOneApp,
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.OfflineOnly("nsauth apps consents"); err != nil {
				return err
			}
			if revokeUser == "" {
				return cli.UsageErrorf("%s needs --user, the user whose consent to revoke", c.CommandPath())
			}
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				return o.revokeConsent(ctx, st, args[0], revokeUser)
			})
		},
	}
	revoke.Flags().StringVar(&revokeUser, "user", "", "the user whose consent to revoke (required)")
	cmd.AddCommand(list, revoke)
	return cmd
}

// consentJSON is a consent as `apps consents list --json` prints it.
type consentJSON struct {
	UserID    string    `json:"user_id"`
	Username  string    `json:"username"`
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (o *appsOptions) listConsents(ctx context.Context, st *store.Store, username string, asJSON bool) error {
	userID, err := filterUserID(ctx, st, username)
	if err != nil {
		return err
	}
	consents, err := st.ListConsents(ctx, userID)
	if err != nil {
		return err
	}
	names := st.Usernames()
	out := make([]consentJSON, 0, len(consents))
	for _, c := range consents {
		name, err := names.Of(ctx, c.UserID)
		if err != nil {
			return err
		}
		scopes := c.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		out = append(out, consentJSON{UserID: c.UserID, Username: name, ClientID: c.ClientID, Scopes: scopes, CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC()})
	}
	if asJSON {
		return storecmd.PrintJSON(o.App.Out, out)
	}
	tw := tabwriter.NewWriter(o.App.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tAPP\tSCOPES\tGRANTED\tUPDATED")
	for _, c := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Username, c.ClientID, storecmd.OrDash(visible.Escape(strings.Join(c.Scopes, " "))), c.CreatedAt.Format(time.DateOnly), c.UpdatedAt.Format(time.DateOnly))
	}
	return tw.Flush()
}

func (o *appsOptions) revokeConsent(ctx context.Context, st *store.Store, appName, username string) error {
	a, err := findApp(ctx, st, appName)
	if err != nil {
		return err
	}
	u, err := findUser(ctx, st, username)
	if err != nil {
		return err
	}
	if err := st.RevokeConsent(ctx, u.ID, a.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%q has given app %q no consent", u.Username, a.ID)
		}
		return err
	}
	if err := o.Changed(ctx, audit.Event{Type: audit.ConsentRevoked, Subject: u.ID, Username: u.Username, ClientID: a.ID}); err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Revoked the consent %q gave app %q; it will ask again at the next login.\n", u.Username, a.ID)
	return nil
}

// findApp finds an app by its name (its client id).
func findApp(ctx context.Context, st *store.Store, ref string) (*store.Client, error) {
	id, err := store.NormalizeClientName(ref)
	if err != nil {
		return nil, cli.UsageErrorf("%v", err)
	}
	a, err := st.ClientByID(ctx, id)
	if err != nil {
		return nil, appError(id, err)
	}
	return a, nil
}

func appError(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no app %q", strings.ToLower(id))
	}
	return err
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
