package appscmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd/storecmd"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/visible"
)

// appsOptions holds what every `nsauth apps` subcommand needs.
type appsOptions struct {
	storecmd.Command
}

// appSecretWarning goes to standard error whenever an app's secret is
// printed.
const appSecretWarning = "Store the client secret now: it is shown only this once (nsauth keeps only a digest of it).\n" +
	"Anyone who holds it can redeem this app's codes and refresh tokens; `nsauth apps rotate-secret` replaces it.\n"

// NewAppsCommand is `nsauth apps`: the applications people log in to with
// the built-in provider, and what users allowed them (`apps consents`).
func NewAppsCommand(app *cli.App) *cobra.Command {
	o := &appsOptions{Command: storecmd.Command{App: app}}
	cmd := &cobra.Command{
		Use:   "apps",
		Short: "Manage the applications people log in to with the built-in provider",
		Long: `Manage apps: web, mobile and desktop applications that send people's browsers
to the built-in provider's login page (the OpenID Connect code flow) and get
ID, access and refresh tokens for them. nsauth's own CLI is the app
nsauth-cli. An app's name is its client id; apps and machine clients share
one namespace of names.

A confidential app (the default) authenticates with the secret that add and
rotate-secret print once, on standard output; only a digest of it is stored.
A --public app holds no secret and must use PKCE. Redirect URIs are matched
exactly; a --native app's loopback redirect URIs may use any port (RFC 8252).
A first-party app gets codes at once for a user signed in to the provider; a
--third-party app shows its users a consent page listing the scopes, once
per user (nsauth apps consents revoke forgets it).

Redirect, post-logout and back-channel logout URIs must be absolute, https
(http only on a loopback host) and without a fragment. On update, each list
flag given replaces that whole list; settings not given are kept.

The commands work on the provider's store directly (the SQLite database in
--data-dir, or PostgreSQL at --database-url), so a running server sees the
changes at once; use the same settings as for nsauth serve. Rotating an
app's secret, disabling it or deleting it revokes its tokens at once.`,
		Example: `  nsauth apps add neosync --display-name Neosync \
      --redirect-uri https://neosync.example.com/api/auth/callback/nsauth \
      --post-logout-redirect-uri https://neosync.example.com \
      --scope openid --scope profile --scope email --scope offline_access \
      --audience https://neosync-api.example.com
  nsauth apps add desktop --public --native --redirect-uri http://127.0.0.1/callback
  nsauth apps list
  nsauth apps show neosync --json
  nsauth apps update neosync --access-token-ttl 10m
  nsauth apps rotate-secret neosync
  nsauth apps consents revoke partner-app --user alice`,
		Args: cli.NoArgs,
	}
	o.Parent = cmd
	config.RegisterStoreFlags(cmd.PersistentFlags())

	var addFlags appFlags
	add := &cobra.Command{
		Use:   "add <name>",
		Short: "Register an app and print its client secret once",
		Args:  exactlyOneApp,
		RunE: func(c *cobra.Command, args []string) error {
			a, err := addFlags.newApp(c.Flags(), args[0])
			if err != nil {
				return err
			}
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				return o.add(ctx, st, a, addFlags.asJSON)
			})
		},
	}
	addFlags.register(add.Flags(), false)

	var updateFlags appFlags
	update := &cobra.Command{
		Use:   "update <name>",
		Short: "Change an app's settings (each list flag given replaces its list)",
		Args:  exactlyOneApp,
		RunE: func(c *cobra.Command, args []string) error {
			if !updateFlags.anyGiven(c.Flags()) {
				return cli.UsageErrorf("%s changes the settings given as flags, and none was given (see --help)", c.CommandPath())
			}
			if err := updateFlags.check(c.Flags()); err != nil {
				return err
			}
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				return o.update(ctx, st, args[0], c.Flags(), &updateFlags)
			})
		},
	}
	updateFlags.register(update.Flags(), true)

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List apps",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				return o.list(ctx, st, asJSON)
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")

	show := &cobra.Command{
		Use:   "show <name>",
		Short: "Show an app's settings",
		Args:  exactlyOneApp,
		RunE: func(c *cobra.Command, args []string) error {
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				a, err := findApp(ctx, st, args[0])
				if err != nil {
					return err
				}
				broker, err := isBrokerApp(ctx, st, a)
				if err != nil {
					return err
				}
				return o.show(a, broker, asJSON)
			})
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	rotate := &cobra.Command{
		Use:   "rotate-secret <name>",
		Short: "Replace an app's secret, print the new one once, and revoke its tokens",
		Args:  exactlyOneApp,
		RunE: func(c *cobra.Command, args []string) error {
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				return o.rotate(ctx, st, args[0], asJSON)
			})
		},
	}
	rotate.Flags().BoolVar(&asJSON, "json", false, "print the client id and secret as JSON")

	simple := func(use, short string, run func(ctx context.Context, st *store.Store, a *store.Client) error) *cobra.Command {
		return storecmd.OnOne(&o.Command, use, short, exactlyOneApp, findApp, run)
	}
	cmd.AddCommand(
		add,
		list,
		show,
		update,
		rotate,
		simple("disable", "Disable an app and revoke its tokens", func(ctx context.Context, st *store.Store, a *store.Client) error {
			if err := st.SetAppDisabled(ctx, a.ID, true); err != nil {
				return appError(a.ID, err)
			}
			if err := o.appChanged(ctx, audit.AppDisabled, a); err != nil {
				return err
			}
			fmt.Fprintf(o.App.ErrOut, "Disabled app %q and revoked its tokens.\n", a.ID)
			return nil
		}),
		simple("enable", "Enable a disabled app", func(ctx context.Context, st *store.Store, a *store.Client) error {
			if err := st.SetAppDisabled(ctx, a.ID, false); err != nil {
				return appError(a.ID, err)
			}
			if err := o.appChanged(ctx, audit.AppEnabled, a); err != nil {
				return err
			}
			fmt.Fprintf(o.App.ErrOut, "Enabled app %q.\n", a.ID)
			return nil
		}),
		simple("delete", "Delete an app, its consents and its tokens", func(ctx context.Context, st *store.Store, a *store.Client) error {
			if err := refuseBrokerApp(ctx, st, a, "deleted"); err != nil {
				return err
			}
			if err := st.DeleteApp(ctx, a.ID); err != nil {
				return appError(a.ID, err)
			}
			if err := o.appChanged(ctx, audit.AppDeleted, a); err != nil {
				return err
			}
			fmt.Fprintf(o.App.ErrOut, "Deleted app %q and revoked its tokens.\n", a.ID)
			return nil
		}),
		newConsentsCommand(o),
	)
	return cmd
}

func exactlyOneApp(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return cli.UsageErrorf("%s takes exactly one argument, the app's name", cmd.CommandPath())
	}
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

// isBrokerApp reports whether a is the broker's own app (nsauth-cli): the
// one whose secret the server keeps and checks at every start. Its
// redirect URIs are the server's (any loopback URI, and
// NSAUTH_ALLOWED_REDIRECT_URIS), not its own.
func isBrokerApp(ctx context.Context, st *store.Store, a *store.Client) (bool, error) {
	_, err := st.Value(ctx, issuer.BrokerSecretName(a.ID))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// refuseBrokerApp refuses to delete the broker's own app or to rotate its
// secret: either would stop nsauth login from working.
func refuseBrokerApp(ctx context.Context, st *store.Store, a *store.Client, what string) error {
	broker, err := isBrokerApp(ctx, st, a)
	if err != nil {
		return err
	}
	if broker {
		return fmt.Errorf("%q is the app nsauth's own login uses; its secret is the server's, and it cannot be %s (nsauth apps update changes its settings)", a.ID, what)
	}
	return nil
}

func (o *appsOptions) add(ctx context.Context, st *store.Store, a *store.Client, asJSON bool) error {
	var secret string
	if !a.Public {
		secret = store.NewMachineClientSecret() // 256 random bits, like a machine client's
		a.SecretHash = store.HashSecret(secret)
	}
	if err := st.AddApp(ctx, a); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("the name %q is taken by an app or a machine client", a.ID)
		}
		return err
	}
	if err := o.appChanged(ctx, audit.AppAdded, a); err != nil {
		return err
	}
	kind := "confidential"
	if a.Public {
		kind = "public"
	}
	fmt.Fprintf(o.App.ErrOut, "Registered %s app %q.\n", kind, a.ID)
	return o.printCredentials(a, secret, asJSON)
}

func (o *appsOptions) update(ctx context.Context, st *store.Store, ref string, fs *pflag.FlagSet, f *appFlags) error {
	a, err := findApp(ctx, st, ref)
	if err != nil {
		return err
	}
	f.apply(fs, a, false)
	broker, err := isBrokerApp(ctx, st, a)
	if err != nil {
		return err
	}
	if !broker {
		if err := checkApp(a); err != nil {
			return err
		}
	}
	if err := st.UpdateApp(ctx, a); err != nil {
		return appError(a.ID, err)
	}
	if err := o.appChanged(ctx, audit.AppUpdated, a); err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Updated app %q.\n", a.ID)
	return nil
}

func (o *appsOptions) rotate(ctx context.Context, st *store.Store, ref string, asJSON bool) error {
	a, err := findApp(ctx, st, ref)
	if err != nil {
		return err
	}
	if a.Public {
		return fmt.Errorf("%q is a public app: it has no secret to rotate", a.ID)
	}
	if err := refuseBrokerApp(ctx, st, a, "given another secret"); err != nil {
		return err
	}
	secret := store.NewMachineClientSecret() // 256 random bits, like a machine client's
	if err := st.SetAppSecret(ctx, a.ID, store.HashSecret(secret)); err != nil {
		return appError(a.ID, err)
	}
	// Unrecorded, the new secret is never shown: the app stays locked out
	// until a rotation is recorded.
	if err := o.appChanged(ctx, audit.AppSecretRotated, a); err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Replaced the secret of app %q; the old one no longer works and its tokens are revoked.\n", a.ID)
	return o.printCredentials(a, secret, asJSON)
}

// printCredentials prints an app's client id, and its secret the one time
// it is shown (with the warning on standard error); a public app has none.
func (o *appsOptions) printCredentials(a *store.Client, secret string, asJSON bool) error {
	if secret != "" {
		fmt.Fprint(o.App.ErrOut, appSecretWarning)
	}
	if asJSON {
		return json.NewEncoder(o.App.Out).Encode(struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret,omitempty"`
		}{a.ID, secret})
	}
	if secret == "" {
		_, err := fmt.Fprintf(o.App.Out, "client_id:     %s\n", a.ID)
		return err
	}
	_, err := fmt.Fprintf(o.App.Out, "client_id:     %s\nclient_secret: %s\n", a.ID, secret)
	return err
}

// appJSON is an app as `apps list --json` and `apps show --json` print it:
// every setting, never the secret's digest.
type appJSON struct {
	ClientID               string     `json:"client_id"`
	DisplayName            string     `json:"display_name,omitempty"`
	Disabled               bool       `json:"disabled"`
	Public                 bool       `json:"public"`
	Native                 bool       `json:"native"`
	ThirdParty             bool       `json:"third_party"`
	RedirectURIs           []string   `json:"redirect_uris"`
	PostLogoutRedirectURIs []string   `json:"post_logout_redirect_uris"`
	Scopes                 []string   `json:"scopes"`
	GrantTypes             []string   `json:"grant_types"`
	Audiences              []string   `json:"audiences"`
	AccessTokenTTL         string     `json:"access_token_ttl,omitempty"`
	RefreshTokenTTL        string     `json:"refresh_token_ttl,omitempty"`
	BackchannelLogoutURI   string     `json:"backchannel_logout_uri,omitempty"`
	Created                time.Time  `json:"created_at"`
	Updated                *time.Time `json:"updated_at,omitempty"`
	DisabledAt             *time.Time `json:"disabled_at,omitempty"`
}

func toAppJSON(a *store.Client) appJSON {
	list := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	ttl := func(d time.Duration) string {
		if d > 0 {
			return d.String()
		}
		return ""
	}
	at := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		u := t.UTC()
		return &u
	}
	return appJSON{
		ClientID: a.ID, DisplayName: a.DisplayName, Disabled: a.Disabled(),
		Public: a.Public, Native: a.Native, ThirdParty: a.ThirdParty,
		RedirectURIs: list(a.RedirectURIs), PostLogoutRedirectURIs: list(a.PostLogoutRedirectURIs),
		Scopes: list(a.Scopes), GrantTypes: list(appGrantTypes(a)), Audiences: list(a.Audiences),
		AccessTokenTTL: ttl(a.AccessTokenTTL), RefreshTokenTTL: ttl(a.RefreshTokenTTL),
		BackchannelLogoutURI: a.BackchannelLogoutURI,
		Created:              a.CreatedAt.UTC(), Updated: at(a.UpdatedAt), DisabledAt: at(a.DisabledAt),
	}
}

// appGrantTypes are the grant types an app may use: its own, or the
// default ones.
func appGrantTypes(a *store.Client) []string {
	if len(a.GrantTypes) == 0 {
		return store.DefaultAppGrantTypes
	}
	return a.GrantTypes
}

// appKind says in a few words what sort of app a is.
func appKind(a *store.Client) string {
	kind := []string{"confidential"}
	if a.Public {
		kind[0] = "public"
	}
	if a.Native {
		kind = append(kind, "native")
	}
	if a.ThirdParty {
		kind = append(kind, "third-party")
	}
	return strings.Join(kind, ",")
}

func appStatus(a *store.Client) string {
	if a.Disabled() {
		return "disabled"
	}
	return "enabled"
}

func (o *appsOptions) list(ctx context.Context, st *store.Store, asJSON bool) error {
	apps, err := st.ListApps(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		out := make([]appJSON, 0, len(apps))
		for i := range apps {
			out = append(out, toAppJSON(&apps[i]))
		}
		return printJSON(o.App.Out, out)
	}
	tw := tabwriter.NewWriter(o.App.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tKIND\tDISPLAY NAME\tREDIRECT URIS\tCREATED")
	for i := range apps {
		a := &apps[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", a.ID, appStatus(a), appKind(a), storecmd.OrDash(visible.Escape(a.DisplayName)), len(a.RedirectURIs), a.CreatedAt.UTC().Format(time.DateOnly))
	}
	return tw.Flush()
}

func (o *appsOptions) show(a *store.Client, broker, asJSON bool) error {
	if asJSON {
		return printJSON(o.App.Out, toAppJSON(a))
	}
	ttl := func(d time.Duration) string {
		if d > 0 {
			return d.String()
		}
		return "the server's"
	}
	lines := func(l []string) string {
		if len(l) == 0 {
			return "-"
		}
		return strings.Join(l, "\n\t")
	}
	scopes := "every scope the server offers"
	if len(a.Scopes) > 0 {
		scopes = strings.Join(a.Scopes, " ")
	}
	tw := tabwriter.NewWriter(o.App.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "client_id:\t%s\n", a.ID)
	fmt.Fprintf(tw, "display name:\t%s\n", storecmd.OrDash(visible.Escape(a.DisplayName)))
	fmt.Fprintf(tw, "status:\t%s\n", appStatus(a))
	fmt.Fprintf(tw, "kind:\t%s\n", appKind(a))
	if broker {
		fmt.Fprintf(tw, "redirect URIs:\t%s\n", "the server's: any loopback URI, and NSAUTH_ALLOWED_REDIRECT_URIS")
	} else {
		fmt.Fprintf(tw, "redirect URIs:\t%s\n", lines(a.RedirectURIs))
	}
	fmt.Fprintf(tw, "post-logout redirect URIs:\t%s\n", lines(a.PostLogoutRedirectURIs))
	fmt.Fprintf(tw, "scopes:\t%s\n", scopes)
	fmt.Fprintf(tw, "grant types:\t%s\n", strings.Join(appGrantTypes(a), " "))
	fmt.Fprintf(tw, "audiences:\t%s\n", lines(a.Audiences))
	fmt.Fprintf(tw, "access token TTL:\t%s\n", ttl(a.AccessTokenTTL))
	fmt.Fprintf(tw, "refresh token TTL:\t%s\n", ttl(a.RefreshTokenTTL))
	fmt.Fprintf(tw, "back-channel logout URI:\t%s\n", storecmd.OrDash(a.BackchannelLogoutURI))
	fmt.Fprintf(tw, "created:\t%s\n", a.CreatedAt.UTC().Format(time.RFC3339))
	return tw.Flush()
}

// printJSON writes v to w as indented JSON, with no hidden character left
// raw (visible.EscapeJSON).
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(visible.EscapeJSON(b), '\n'))
	return err
}

// appChanged records an app event of the kind t; the app's id is its
// name, so ClientID names it. The secret is never part of it.
func (o *appsOptions) appChanged(ctx context.Context, t audit.Type, a *store.Client) error {
	return o.Changed(ctx, audit.Event{Type: t, ClientID: a.ID})
}
