package servercmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/redirect"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/visible"
	"github.com/nsauth/nsauth/pkg/loopbackhost"
)

// appsOptions holds what every `nsauth apps` subcommand needs.
type appsOptions struct {
	storeCommand
	// newSecret returns a fresh client secret; nil means
	// store.NewMachineClientSecret.
	newSecret func() string
}

// appSecretWarning goes to standard error whenever an app's secret is
// printed.
const appSecretWarning = "Store the client secret now: it is shown only this once (nsauth keeps only a digest of it).\n" +
	"Anyone who holds it can redeem this app's codes and refresh tokens; `nsauth apps rotate-secret` replaces it.\n"

// The grant types an app may have.
const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
	grantDeviceCode        = store.DeviceCodeGrantType
)

// Bounds on an app's lists and texts: far above what an app needs, low
// enough that no registration makes pages or tokens large.
const (
	maxAppURIs        = 32
	maxAppScopes      = 64
	maxAppAudiences   = 16
	maxDisplayNameLen = 100
)

func newAppsCommand(app *cli.App) *cobra.Command {
	o := &appsOptions{storeCommand: storeCommand{app: app}}
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
	o.cmd = cmd
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
			return o.withStore(c.Context(), func(ctx context.Context, st *store.Store) error {
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
			return o.withStore(c.Context(), func(ctx context.Context, st *store.Store) error {
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
			return o.withStore(c.Context(), func(ctx context.Context, st *store.Store) error {
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
			return o.withStore(c.Context(), func(ctx context.Context, st *store.Store) error {
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
			return o.withStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				return o.rotate(ctx, st, args[0], asJSON)
			})
		},
	}
	rotate.Flags().BoolVar(&asJSON, "json", false, "print the client id and secret as JSON")

	simple := func(use, short string, run func(ctx context.Context, st *store.Store, a *store.Client) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " <name>",
			Short: short,
			Args:  exactlyOneApp,
			RunE: func(c *cobra.Command, args []string) error {
				return o.withStore(c.Context(), func(ctx context.Context, st *store.Store) error {
					a, err := findApp(ctx, st, args[0])
					if err != nil {
						return err
					}
					return run(ctx, st, a)
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
		simple("disable", "Disable an app and revoke its tokens", func(ctx context.Context, st *store.Store, a *store.Client) error {
			if err := st.SetAppDisabled(ctx, a.ID, true); err != nil {
				return appError(a.ID, err)
			}
			if err := o.appChanged(ctx, audit.AppDisabled, a); err != nil {
				return err
			}
			fmt.Fprintf(o.app.ErrOut, "Disabled app %q and revoked its tokens.\n", a.ID)
			return nil
		}),
		simple("enable", "Enable a disabled app", func(ctx context.Context, st *store.Store, a *store.Client) error {
			if err := st.SetAppDisabled(ctx, a.ID, false); err != nil {
				return appError(a.ID, err)
			}
			if err := o.appChanged(ctx, audit.AppEnabled, a); err != nil {
				return err
			}
			fmt.Fprintf(o.app.ErrOut, "Enabled app %q.\n", a.ID)
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
			fmt.Fprintf(o.app.ErrOut, "Deleted app %q and revoked its tokens.\n", a.ID)
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

// appFlags are the settings of an app as add and update take them.
type appFlags struct {
	redirectURIs, postLogoutURIs    []string
	public, native, thirdParty      bool
	displayName                     string
	scopes, grantTypes, audiences   []string
	accessTokenTTL, refreshTokenTTL time.Duration
	backchannelLogoutURI            string
	asJSON                          bool
}

func (f *appFlags) register(fs *pflag.FlagSet, update bool) {
	replaces := ""
	if update {
		replaces = "; replaces the list"
	}
	fs.StringArrayVar(&f.redirectURIs, "redirect-uri", nil, "a redirect `URI` of the app (repeat the flag for several)"+replaces)
	fs.StringArrayVar(&f.postLogoutURIs, "post-logout-redirect-uri", nil, "a `URI` where end-session may send the browser after a logout (repeat for several)"+replaces)
	if !update {
		fs.BoolVar(&f.public, "public", false, "the app holds no secret (token_endpoint_auth_method none) and must use PKCE")
	}
	fs.BoolVar(&f.native, "native", false, "a native app: its loopback redirect URIs may use any port (RFC 8252)")
	fs.BoolVar(&f.thirdParty, "third-party", false, "show users a consent page listing the scopes, once per user")
	fs.StringVar(&f.displayName, "display-name", "", "the `name` the login and consent pages show (default: the app's name)")
	fs.StringSliceVar(&f.scopes, "scope", nil, "a `scope` the app may ask for (repeat or comma-separate; default: every scope the server offers)"+replaces)
	fs.StringSliceVar(&f.grantTypes, "grant-type", nil, "a `grant` type: authorization_code, refresh_token, device_code (repeat or comma-separate; default: authorization_code,refresh_token)"+replaces)
	fs.StringArrayVar(&f.audiences, "audience", nil, "an `audience` (RFC 8707 resource) the app's access tokens may be issued for besides nsauth's (repeat for several)"+replaces)
	fs.DurationVar(&f.accessTokenTTL, "access-token-ttl", 0, "lifetime of the app's access tokens (0: the server's access-token-ttl)")
	fs.DurationVar(&f.refreshTokenTTL, "refresh-token-ttl", 0, "lifetime of the app's refresh tokens (0: the server's)")
	fs.StringVar(&f.backchannelLogoutURI, "backchannel-logout-uri", "", "the `URI` to POST OpenID Connect back-channel logout tokens to (empty: none)")
	if !update {
		fs.BoolVar(&f.asJSON, "json", false, "print the client id and secret as JSON")
	}
}

// settingFlags are the flags that set an app's settings.
var settingFlags = []string{"redirect-uri", "post-logout-redirect-uri", "native", "third-party", "display-name", "scope",
	"grant-type", "audience", "access-token-ttl", "refresh-token-ttl", "backchannel-logout-uri"}

// anyGiven reports whether any setting was given on the command line.
func (f *appFlags) anyGiven(fs *pflag.FlagSet) bool {
	return slices.ContainsFunc(settingFlags, fs.Changed)
}

// newApp checks the flags of add and returns the app they describe.
func (f *appFlags) newApp(fs *pflag.FlagSet, name string) (*store.Client, error) {
	id, err := store.NormalizeClientName(name)
	if err != nil {
		return nil, cli.UsageErrorf("%v", err)
	}
	if err := f.check(fs); err != nil {
		return nil, err
	}
	a := &store.Client{ID: id, Public: f.public}
	f.apply(fs, a, true)
	if err := checkApp(a); err != nil {
		return nil, err
	}
	return a, nil
}

// check validates the flags given, each on its own; checkApp validates
// the app they make.
func (f *appFlags) check(fs *pflag.FlagSet) error {
	for _, l := range []struct {
		flag string
		uris []string
	}{{"--redirect-uri", f.redirectURIs}, {"--post-logout-redirect-uri", f.postLogoutURIs}} {
		if len(l.uris) > maxAppURIs {
			return cli.UsageErrorf("%s: at most %d URIs", l.flag, maxAppURIs)
		}
		for _, u := range l.uris {
			if err := checkAppURI(u); err != nil {
				return cli.UsageErrorf("%s %q: %v", l.flag, visible.Escape(u), err)
			}
		}
	}
	if f.backchannelLogoutURI != "" {
		if err := checkAppURI(f.backchannelLogoutURI); err != nil {
			return cli.UsageErrorf("--backchannel-logout-uri %q: %v", visible.Escape(f.backchannelLogoutURI), err)
		}
	}
	if len(f.displayName) > maxDisplayNameLen {
		return cli.UsageErrorf("--display-name: at most %d bytes", maxDisplayNameLen)
	}
	if err := visible.Check("--display-name", f.displayName); err != nil {
		return cli.UsageErrorf("%v", err)
	}
	if len(f.scopes) > maxAppScopes {
		return cli.UsageErrorf("--scope: at most %d scopes", maxAppScopes)
	}
	for _, s := range f.scopes {
		if s == "" || len(s) > 128 || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '"' || r == '\\' || r > '~' }) {
			return cli.UsageErrorf("--scope %q: a scope is 1 to 128 printable ASCII characters without spaces, quotes or backslashes", visible.Escape(s))
		}
	}
	grants, err := normalizeGrantTypes(f.grantTypes)
	if err != nil {
		return err
	}
	f.grantTypes = grants
	if len(f.audiences) > maxAppAudiences {
		return cli.UsageErrorf("--audience: at most %d audiences", maxAppAudiences)
	}
	for _, a := range f.audiences {
		if err := checkAudience(a); err != nil {
			return cli.UsageErrorf("--audience %q: %v", visible.Escape(a), err)
		}
	}
	for _, d := range []struct {
		flag string
		ttl  time.Duration
	}{{"--access-token-ttl", f.accessTokenTTL}, {"--refresh-token-ttl", f.refreshTokenTTL}} {
		if d.ttl < 0 {
			return cli.UsageErrorf("%s cannot be negative", d.flag)
		}
		if d.ttl > 0 && d.ttl < time.Second {
			return cli.UsageErrorf("%s must be at least 1s (or 0 for the server's)", d.flag)
		}
	}
	return nil
}

// apply sets on a the settings given: every one when adding, those whose
// flag was given when updating.
func (f *appFlags) apply(fs *pflag.FlagSet, a *store.Client, adding bool) {
	given := func(name string) bool { return adding || fs.Changed(name) }
	if given("redirect-uri") {
		a.RedirectURIs = dedupe(f.redirectURIs)
	}
	if given("post-logout-redirect-uri") {
		a.PostLogoutRedirectURIs = dedupe(f.postLogoutURIs)
	}
	if given("native") {
		a.Native = f.native
	}
	if given("third-party") {
		a.ThirdParty = f.thirdParty
	}
	if given("display-name") {
		a.DisplayName = f.displayName
	}
	if given("scope") {
		a.Scopes = dedupe(f.scopes)
	}
	if given("grant-type") {
		a.GrantTypes = dedupe(f.grantTypes)
	}
	if given("audience") {
		a.Audiences = dedupe(f.audiences)
	}
	if given("access-token-ttl") {
		a.AccessTokenTTL = f.accessTokenTTL
	}
	if given("refresh-token-ttl") {
		a.RefreshTokenTTL = f.refreshTokenTTL
	}
	if given("backchannel-logout-uri") {
		a.BackchannelLogoutURI = f.backchannelLogoutURI
	}
}

// checkApp checks what only the whole app tells: an app that uses the
// code flow has somewhere to send its codes.
func checkApp(a *store.Client) error {
	grants := a.GrantTypes
	if len(grants) == 0 {
		grants = store.DefaultAppGrantTypes
	}
	if slices.Contains(grants, grantAuthorizationCode) && len(a.RedirectURIs) == 0 {
		return cli.UsageErrorf("--redirect-uri is required for an app that uses the authorization_code grant")
	}
	if len(grants) == 1 && grants[0] == grantRefreshToken {
		return cli.UsageErrorf("--grant-type refresh_token needs a grant that issues refresh tokens: authorization_code or device_code")
	}
	return nil
}

func dedupe(l []string) []string {
	var out []string
	for _, s := range l {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// normalizeGrantTypes checks the grant types given and spells
// device_code as its URN.
func normalizeGrantTypes(in []string) ([]string, error) {
	var out []string
	for _, g := range in {
		switch g {
		case grantAuthorizationCode, grantRefreshToken, grantDeviceCode:
		case "device_code":
			g = grantDeviceCode
		case "client_credentials":
			return nil, cli.UsageErrorf("--grant-type client_credentials: an app acts for people; a program that acts for itself is a machine client (nsauth clients add)")
		default:
			return nil, cli.UsageErrorf("--grant-type %q: not one of authorization_code, refresh_token, device_code", visible.Escape(g))
		}
		out = append(out, g)
	}
	return out, nil
}

// checkAppURI is the rule for the URIs an app registers (redirect,
// post-logout, back-channel logout): absolute, https, or http on a loopback
// host, without user info or fragment, spelled canonically, since they
// are compared as strings.
func checkAppURI(raw string) error {
	if err := redirect.RequireText("the URI", raw, redirect.MaxURILen); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "the URI "))
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "" {
		return errors.New("must be an absolute URI (https://host/path)")
	}
	if u.User != nil {
		return errors.New("must not contain user info")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("must not contain a fragment (#)")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackhost.Is(u.Hostname()) {
			return errors.New("must use https (http only on a loopback host: 127.0.0.1, [::1], localhost)")
		}
	default:
		return errors.New("must use https (http only on a loopback host)")
	}
	if u.String() != raw {
		return fmt.Errorf("is not written canonically (compared as a string, it would never match): write %q", u.String())
	}
	return nil
}

// checkAudience accepts an RFC 8707 resource: an absolute URI without a
// fragment.
func checkAudience(raw string) error {
	if err := redirect.RequireText("the audience", raw, redirect.MaxURILen); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "the audience "))
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || strings.ContainsAny(raw, " \t") {
		return errors.New("must be an absolute URI (such as https://api.example.com)")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("must not contain a fragment (#)")
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

func (o *appsOptions) secret() string {
	if o.newSecret != nil {
		return o.newSecret()
	}
	return store.NewMachineClientSecret()
}

func (o *appsOptions) add(ctx context.Context, st *store.Store, a *store.Client, asJSON bool) error {
	var secret string
	if !a.Public {
		secret = o.secret()
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
	fmt.Fprintf(o.app.ErrOut, "Registered %s app %q.\n", kind, a.ID)
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
	fmt.Fprintf(o.app.ErrOut, "Updated app %q.\n", a.ID)
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
	secret := o.secret()
	if err := st.SetAppSecret(ctx, a.ID, store.HashSecret(secret)); err != nil {
		return appError(a.ID, err)
	}
	// Unrecorded, the new secret is never shown: the app stays locked out
	// until a rotation is recorded.
	if err := o.appChanged(ctx, audit.AppSecretRotated, a); err != nil {
		return err
	}
	fmt.Fprintf(o.app.ErrOut, "Replaced the secret of app %q; the old one no longer works and its tokens are revoked.\n", a.ID)
	return o.printCredentials(a, secret, asJSON)
}

// printCredentials prints an app's client id, and its secret the one time
// it is shown (with the warning on standard error); a public app has none.
func (o *appsOptions) printCredentials(a *store.Client, secret string, asJSON bool) error {
	if secret != "" {
		fmt.Fprint(o.app.ErrOut, appSecretWarning)
	}
	if asJSON {
		return json.NewEncoder(o.app.Out).Encode(struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret,omitempty"`
		}{a.ID, secret})
	}
	if secret == "" {
		_, err := fmt.Fprintf(o.app.Out, "client_id:     %s\n", a.ID)
		return err
	}
	_, err := fmt.Fprintf(o.app.Out, "client_id:     %s\nclient_secret: %s\n", a.ID, secret)
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
		return o.printJSON(out)
	}
	tw := tabwriter.NewWriter(o.app.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tKIND\tDISPLAY NAME\tREDIRECT URIS\tCREATED")
	for i := range apps {
		a := &apps[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", a.ID, appStatus(a), appKind(a), orDash(visible.Escape(a.DisplayName)), len(a.RedirectURIs), a.CreatedAt.UTC().Format(time.DateOnly))
	}
	return tw.Flush()
}

func (o *appsOptions) show(a *store.Client, broker, asJSON bool) error {
	if asJSON {
		return o.printJSON(toAppJSON(a))
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
	tw := tabwriter.NewWriter(o.app.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "client_id:\t%s\n", a.ID)
	fmt.Fprintf(tw, "display name:\t%s\n", orDash(visible.Escape(a.DisplayName)))
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
	fmt.Fprintf(tw, "back-channel logout URI:\t%s\n", orDash(a.BackchannelLogoutURI))
	fmt.Fprintf(tw, "created:\t%s\n", a.CreatedAt.UTC().Format(time.RFC3339))
	return tw.Flush()
}

func (o *storeCommand) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = o.app.Out.Write(append(visible.EscapeJSON(b), '\n'))
	return err
}

// appChanged records an app event of the kind t. The secret is never part
// of it.
func (o *appsOptions) appChanged(ctx context.Context, t audit.Type, a *store.Client) error {
	return o.changed(ctx, audit.Event{Type: t, ClientID: a.ID, Target: a.ID})
}
