package appscmd

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/appsettings"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd/storecmd"
	"github.com/nsauth/nsauth/internal/config"
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
changes at once; use the same settings as for nsauth serve. With --api-url
they go through the admin API of a running server instead, as the admin
nsauth login logged in (apps consents works on the store only). Rotating an
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
	o.RegisterRemoteFlags(cmd.PersistentFlags())

	var addFlags appFlags
	add := &cobra.Command{
		Use:   "add <name>",
		Short: "Register an app and print its client secret once",
		Args:  exactlyOneApp,
		RunE: func(c *cobra.Command, args []string) error {
			id, settings, err := addFlags.newApp(args[0])
			if err != nil {
				return err
			}
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				return o.add(ctx, api, id, settingsProto(settings, addFlags.public), addFlags.asJSON)
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
			if !anyGiven(c.Flags()) {
				return cli.UsageErrorf("%s changes the settings given as flags, and none was given (see --help)", c.CommandPath())
			}
			settings, err := updateFlags.settings()
			if err != nil {
				return err
			}
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				return o.update(ctx, api, args[0], settings, given(c.Flags()))
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
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				return o.list(ctx, api, asJSON)
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")

	show := &cobra.Command{
		Use:   "show <name>",
		Short: "Show an app's settings",
		Args:  exactlyOneApp,
		RunE: func(c *cobra.Command, args []string) error {
			id, err := appName(args[0])
			if err != nil {
				return err
			}
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				res, err := api.GetApp(ctx, connect.NewRequest(&adminv1.GetAppRequest{Name: id}))
				if err != nil {
					return err
				}
				return o.show(appFromProto(res.Msg.GetApp()), res.Msg.GetApp().GetBroker(), asJSON)
			})
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	rotate := &cobra.Command{
		Use:   "rotate-secret <name>",
		Short: "Replace an app's secret, print the new one once, and revoke its tokens",
		Args:  exactlyOneApp,
		RunE: func(c *cobra.Command, args []string) error {
			id, err := appName(args[0])
			if err != nil {
				return err
			}
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				res, err := api.RotateAppSecret(ctx, connect.NewRequest(&adminv1.RotateAppSecretRequest{Name: id}))
				if err != nil {
					return err
				}
				fmt.Fprintf(o.App.ErrOut, "Replaced the secret of app %q; the old one no longer works and its tokens are revoked.\n", res.Msg.GetClientId())
				return o.printCredentials(res.Msg.GetClientId(), res.Msg.GetClientSecret(), asJSON)
			})
		},
	}
	rotate.Flags().BoolVar(&asJSON, "json", false, "print the client id and secret as JSON")

	simple := func(use, short string, run func(ctx context.Context, api adminv1connect.AdminServiceClient, id string) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " <name>",
			Short: short,
			Args:  exactlyOneApp,
			RunE: func(c *cobra.Command, args []string) error {
				id, err := appName(args[0])
				if err != nil {
					return err
				}
				return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
					return run(ctx, api, id)
				})
			},
		}
	}
	cmd.AddCommand(
		add,
		list,
		show,
		update,
		rotate,
		simple("disable", "Disable an app and revoke its tokens", func(ctx context.Context, api adminv1connect.AdminServiceClient, id string) error {
			if _, err := api.SetAppDisabled(ctx, connect.NewRequest(&adminv1.SetAppDisabledRequest{Name: id, Disabled: true})); err != nil {
				return err
			}
			fmt.Fprintf(o.App.ErrOut, "Disabled app %q and revoked its tokens.\n", id)
			return nil
		}),
		simple("enable", "Enable a disabled app", func(ctx context.Context, api adminv1connect.AdminServiceClient, id string) error {
			if _, err := api.SetAppDisabled(ctx, connect.NewRequest(&adminv1.SetAppDisabledRequest{Name: id, Disabled: false})); err != nil {
				return err
			}
			fmt.Fprintf(o.App.ErrOut, "Enabled app %q.\n", id)
			return nil
		}),
		simple("delete", "Delete an app, its consents and its tokens", func(ctx context.Context, api adminv1connect.AdminServiceClient, id string) error {
			if _, err := api.DeleteApp(ctx, connect.NewRequest(&adminv1.DeleteAppRequest{Name: id})); err != nil {
				return err
			}
			fmt.Fprintf(o.App.ErrOut, "Deleted app %q and revoked its tokens.\n", id)
			return nil
		}),
		newConsentsCommand(o),
	)
	return cmd
}

var exactlyOneApp = cli.ExactlyOne("the app's name")

// appName is the app name ref spells, or a usage error.
func appName(ref string) (string, error) {
	id, err := store.NormalizeClientName(ref)
	if err != nil {
		return "", cli.UsageErrorf("%v", err)
	}
	return id, nil
}

func (o *appsOptions) add(ctx context.Context, api adminv1connect.AdminServiceClient, id string, settings *adminv1.AppSettings, asJSON bool) error {
	res, err := api.CreateApp(ctx, connect.NewRequest(&adminv1.CreateAppRequest{Name: id, Settings: settings}))
	if err != nil {
		return err
	}
	kind := "confidential"
	if settings.GetPublic() {
		kind = "public"
	}
	fmt.Fprintf(o.App.ErrOut, "Registered %s app %q.\n", kind, res.Msg.GetApp().GetName())
	return o.printCredentials(res.Msg.GetApp().GetName(), res.Msg.GetClientSecret(), asJSON)
}

// update checks the app the settings given make before asking the
// service to change them, so that its refusal names the flags (the
// service checks it again).
func (o *appsOptions) update(ctx context.Context, api adminv1connect.AdminServiceClient, ref string, settings *appsettings.Settings, given func(appsettings.Field) bool) error {
	id, err := appName(ref)
	if err != nil {
		return err
	}
	res, err := api.GetApp(ctx, connect.NewRequest(&adminv1.GetAppRequest{Name: id}))
	if err != nil {
		return err
	}
	a := appFromProto(res.Msg.GetApp())
	appsettings.Apply(settings, a, given)
	if !res.Msg.GetApp().GetBroker() {
		if err := appsettings.CheckApp(a, appsettings.Flag); err != nil {
			return cli.UsageErrorf("%v", err)
		}
	}
	var mask []string
	for _, f := range appsettings.Fields {
		if given(f) {
			mask = append(mask, string(f))
		}
	}
	if _, err := api.UpdateApp(ctx, connect.NewRequest(&adminv1.UpdateAppRequest{Name: id, Settings: settingsProto(settings, false), UpdateMask: mask})); err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Updated app %q.\n", id)
	return nil
}

// printCredentials prints an app's client id, and its secret the one time
// it is shown (with the warning on standard error); a public app has none.
func (o *appsOptions) printCredentials(clientID, secret string, asJSON bool) error {
	if secret != "" {
		fmt.Fprint(o.App.ErrOut, appSecretWarning)
	}
	if asJSON {
		return json.NewEncoder(o.App.Out).Encode(struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret,omitempty"`
		}{clientID, secret})
	}
	if secret == "" {
		_, err := fmt.Fprintf(o.App.Out, "client_id:     %s\n", clientID)
		return err
	}
	_, err := fmt.Fprintf(o.App.Out, "client_id:     %s\nclient_secret: %s\n", clientID, secret)
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

func (o *appsOptions) list(ctx context.Context, api adminv1connect.AdminServiceClient, asJSON bool) error {
	res, err := api.ListApps(ctx, connect.NewRequest(&adminv1.ListAppsRequest{}))
	if err != nil {
		return err
	}
	apps := make([]store.Client, 0, len(res.Msg.GetApps()))
	for _, a := range res.Msg.GetApps() {
		apps = append(apps, *appFromProto(a))
	}
	if asJSON {
		out := make([]appJSON, 0, len(apps))
		for i := range apps {
			out = append(out, toAppJSON(&apps[i]))
		}
		return storecmd.PrintJSON(o.App.Out, out)
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
		return storecmd.PrintJSON(o.App.Out, toAppJSON(a))
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
