package connectorscmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd/storecmd"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/visible"
)

// options holds what every `nsauth connectors` subcommand needs.
type options struct {
	storecmd.Command
}

// NewConnectorsCommand is `nsauth connectors`: the login methods backed by
// an identity people already have.
func NewConnectorsCommand(a *cli.App) *cobra.Command {
	o := &options{Command: storecmd.Command{App: a}}
	cmd := &cobra.Command{
		Use:   "connectors",
		Short: "Manage the connectors that sign people in with an identity they already have (OpenID Connect, GitHub, LDAP)",
		Long: `Manage connectors: login methods of the built-in provider that sign people in
with an identity they already have. An oidc connector sends the browser to an
OpenID Connect provider (Google Workspace, Microsoft Entra, Okta, GitLab...),
a github connector to GitHub or GitHub Enterprise (an OAuth app); both show a
"Continue with DISPLAY-NAME" button on the login page. An ldap connector
checks the username and password of the login page's form against a
directory, under the same login defence as local passwords.

A person signs in as the nsauth user bound to their upstream identity
(nsauth users link), or, with --create-users, as a user created at their first
sign-in; never as an account that merely has the same name or email.
--create-users needs a connector that restricts who may sign in
(--allowed-domains, --org, --team, or an LDAP directory's filter).

The client secret or bind password is read from a file or from standard
input, never from the command line, and stored sealed with the server's
secret key (give the same NSAUTH_SECRET_KEY or key file as to nsauth serve);
no command prints it. show prints the callback URL to register at the
upstream: ISSUER/login/connector/NAME/callback.

The commands work on the provider's store directly (the SQLite database in
--data-dir, or PostgreSQL at --database-url), so every replica of a running
server uses a change at its next sign-in. On update, only the settings given
change; each list flag given replaces that whole list.`,
		Example: `  nsauth connectors add google --type oidc --display-name Google \
      --issuer https://accounts.google.com --client-id 1234.apps.googleusercontent.com \
      --client-secret-file /run/secrets/google --allowed-domains example.com --create-users
  nsauth connectors add github --type github --client-id Iv1.0123 \
      --client-secret-stdin --org acme < /run/secrets/github
  nsauth connectors add corp --type ldap --url ldaps://ldap.example.com \
      --bind-dn cn=nsauth,ou=services,dc=example,dc=com --bind-password-file /run/secrets/ldap \
      --user-base-dn ou=people,dc=example,dc=com --user-filter '(&(objectClass=person)(uid=%s))'
  nsauth connectors list
  nsauth connectors show google
  nsauth connectors update google --allowed-domains example.com,example.org
  nsauth connectors disable github`,
		Args: cli.NoArgs,
	}
	o.Parent = cmd
	config.RegisterStoreFlags(cmd.PersistentFlags())

	var addFlags connectorFlags
	add := &cobra.Command{
		Use:   "add <name> --type oidc|github|ldap",
		Short: "Add a connector (its secret read from a file or standard input)",
		Args:  exactlyOneConnector,
		RunE: func(c *cobra.Command, args []string) error {
			return o.add(c.Context(), c.Flags(), args[0], &addFlags)
		},
	}
	addFlags.register(add.Flags(), false)
	_ = add.RegisterFlagCompletionFunc("type", cobra.FixedCompletions([]string{store.ConnectorOIDC, store.ConnectorGitHub, store.ConnectorLDAP}, cobra.ShellCompDirectiveNoFileComp))
	config.RegisterSecretKeyFlags(add.Flags())

	var updateFlags connectorFlags
	update := &cobra.Command{
		Use:   "update <name>",
		Short: "Change a connector's settings (only those given; a secret flag replaces its secret)",
		Args:  exactlyOneConnector,
		RunE: func(c *cobra.Command, args []string) error {
			if !anyGiven(c.Flags()) {
				return cli.UsageErrorf("%s changes the settings given as flags, and none was given (see --help)", c.CommandPath())
			}
			return o.update(c.Context(), c.Flags(), args[0], &updateFlags)
		},
	}
	updateFlags.register(update.Flags(), true)
	config.RegisterSecretKeyFlags(update.Flags())

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List connectors",
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
		Short: "Show a connector's settings and the callback URL to register upstream (never its secret)",
		Args:  exactlyOneConnector,
		RunE: func(c *cobra.Command, args []string) error {
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				k, err := findConnector(ctx, st, args[0])
				if err != nil {
					return err
				}
				return o.show(ctx, st, k, asJSON)
			})
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	simple := func(use, short string, run func(ctx context.Context, st *store.Store, k *store.Connector) error) *cobra.Command {
		return storecmd.OnOne(&o.Command, use, short, exactlyOneConnector, findConnector, run)
	}
	cmd.AddCommand(
		add,
		list,
		show,
		update,
		simple("disable", "Disable a connector: its button or option leaves the login page and sign-ins through it are refused", func(ctx context.Context, st *store.Store, k *store.Connector) error {
			if err := st.SetConnectorDisabled(ctx, k.Name, true); err != nil {
				return connectorError(k.Name, err)
			}
			if err := o.changed(ctx, audit.ConnectorDisabled, k, k.Type); err != nil {
				return err
			}
			fmt.Fprintf(o.App.ErrOut, "Disabled connector %q: no one signs in through it until nsauth connectors enable %s. "+
				"Sessions already signed in through it go on (nsauth users disable stops a person).\n", k.Name, k.Name)
			return nil
		}),
		simple("enable", "Enable a disabled connector", func(ctx context.Context, st *store.Store, k *store.Connector) error {
			if err := st.SetConnectorDisabled(ctx, k.Name, false); err != nil {
				return connectorError(k.Name, err)
			}
			if err := o.changed(ctx, audit.ConnectorEnabled, k, k.Type); err != nil {
				return err
			}
			fmt.Fprintf(o.App.ErrOut, "Enabled connector %q.\n", k.Name)
			return nil
		}),
		simple("delete", "Delete a connector and the bindings of users to its identities (the users stay)", func(ctx context.Context, st *store.Store, k *store.Connector) error {
			if err := st.DeleteConnector(ctx, k.Name); err != nil {
				return connectorError(k.Name, err)
			}
			if err := o.changed(ctx, audit.ConnectorDeleted, k, k.Type); err != nil {
				return err
			}
			fmt.Fprintf(o.App.ErrOut, "Deleted connector %q and the bindings of users to its identities; the users stay "+
				"(those it created have no password: nsauth users passwd gives one, nsauth users link binds them to another connector).\n", k.Name)
			return nil
		}),
	)
	return cmd
}

func exactlyOneConnector(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return cli.UsageErrorf("%s takes exactly one argument, the connector's name", cmd.CommandPath())
	}
	return checkName(args[0])
}

// findConnector finds a connector by name, without its secret (no key
// needed).
func findConnector(ctx context.Context, st *store.Store, name string) (*store.Connector, error) {
	all, err := st.Connectors(ctx)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Name == name {
			return &all[i], nil
		}
	}
	return nil, connectorError(name, store.ErrNotFound)
}

func connectorError(name string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no connector %q (nsauth connectors list shows them)", name)
	}
	return err
}

// withKeyedStore is WithStore for a command that writes a secret.
func (o *options) withKeyedStore(ctx context.Context, fs *pflag.FlagSet, fn func(context.Context, *store.Store) error) error {
	keys, err := config.LoadSecretKeys(fs, o.App.Getenv)
	if err != nil {
		return err
	}
	return o.WithStoreOpenedBy(ctx, func(ctx context.Context, loc config.Store) (*store.Store, error) {
		return app.OpenKeyedStore(ctx, loc, *keys, o.App.Now)
	}, fn)
}

func (o *options) add(ctx context.Context, fs *pflag.FlagSet, name string, f *connectorFlags) error {
	typ := f.typ
	switch typ {
	case store.ConnectorOIDC, store.ConnectorGitHub, store.ConnectorLDAP:
	case "":
		return cli.UsageErrorf("--type is required: oidc, github or ldap")
	default:
		return cli.UsageErrorf("--type %q: not one of oidc, github, ldap", visible.Escape(typ))
	}
	if err := f.checkFlags(fs, typ); err != nil {
		return err
	}
	if err := requireFlags(fs, f, typ); err != nil {
		return err
	}
	settings, err := f.settings(fs, typ, nil, true)
	if err != nil {
		return err
	}
	if f.createUsers {
		if err := checkCreateUsers(typ, settings); err != nil {
			return err
		}
	}
	var secret string
	if f.secretGiven() {
		if secret, err = f.readSecret(typ, o.App.In); err != nil {
			return err
		}
	}
	k := &store.Connector{Name: name, Type: typ, DisplayName: f.displayName, Settings: settings, Secret: secret,
		CreateUsers: f.createUsers, TrustUpstreamMFA: f.trustMFA}
	return o.withKeyedStore(ctx, fs, func(ctx context.Context, st *store.Store) error {
		if err := st.CreateConnector(ctx, k); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("there is a connector named %q already (nsauth connectors update changes it)", name)
			}
			return err
		}
		if err := o.changed(ctx, audit.ConnectorAdded, k, typ); err != nil {
			return err
		}
		fmt.Fprintf(o.App.ErrOut, "Added %s connector %q.\n", typ, name)
		added, err := findConnector(ctx, st, name)
		if err != nil {
			return err
		}
		return o.show(ctx, st, added, f.asJSON)
	})
}

// requireFlags refuses an add without the settings typ cannot do
// without, naming the flag.
func requireFlags(fs *pflag.FlagSet, f *connectorFlags, typ string) error {
	fileFlag, stdinFlag := secretFlags(typ)
	need := func(flag, what string) error {
		if !fs.Changed(flag) || fs.Lookup(flag).Value.String() == "" {
			return cli.UsageErrorf("--%s is required for an %s connector: %s", flag, typ, what)
		}
		return nil
	}
	switch typ {
	case store.ConnectorOIDC, store.ConnectorGitHub:
		if typ == store.ConnectorOIDC {
			if err := need("issuer", "the upstream's issuer URL, such as https://accounts.google.com"); err != nil {
				return err
			}
		}
		if err := need("client-id", "the client id of nsauth's registration at the upstream"); err != nil {
			return err
		}
		if !f.secretGiven() {
			return cli.UsageErrorf("%s or %s is required for an %s connector: the client secret of nsauth's registration at the upstream", fileFlag, stdinFlag, typ)
		}
	case store.ConnectorLDAP:
		if err := need("url", "the directory, such as ldaps://ldap.example.com"); err != nil {
			return err
		}
		if err := need("user-base-dn", "where people are, such as ou=people,dc=example,dc=com"); err != nil {
			return err
		}
		if err := need("user-filter", "the filter that finds a person, such as (&(objectClass=person)(uid=%s))"); err != nil {
			return err
		}
		if err := need("bind-dn", "the service account nsauth searches the directory as"); err != nil {
			return err
		}
		if !f.secretGiven() {
			return cli.UsageErrorf("%s or %s is required for an ldap connector: the password of --bind-dn", fileFlag, stdinFlag)
		}
	}
	return nil
}

// update changes a connector; it needs the secret key only when it
// replaces the secret (the store never opens the stored one).
func (o *options) update(ctx context.Context, fs *pflag.FlagSet, name string, f *connectorFlags) error {
	withStore := o.WithStore
	if f.secretGiven() {
		withStore = func(ctx context.Context, fn func(context.Context, *store.Store) error) error {
			return o.withKeyedStore(ctx, fs, fn)
		}
	}
	return withStore(ctx, func(ctx context.Context, st *store.Store) error {
		k, err := findConnector(ctx, st, name)
		if err != nil {
			return err
		}
		if err := f.checkFlags(fs, k.Type); err != nil {
			return err
		}
		var secret string
		if f.secretGiven() {
			if secret, err = f.readSecret(k.Type, o.App.In); err != nil {
				return err
			}
		}
		err = st.UpdateConnector(ctx, name, func(c *store.Connector) error {
			settings, err := f.settings(fs, c.Type, c.Settings, false)
			if err != nil {
				return err
			}
			c.Settings = settings
			if fs.Changed("display-name") {
				c.DisplayName = f.displayName
			}
			if fs.Changed("create-users") {
				c.CreateUsers = f.createUsers
			}
			if fs.Changed("trust-upstream-mfa") {
				c.TrustUpstreamMFA = f.trustMFA
			}
			if c.CreateUsers {
				if err := checkCreateUsers(c.Type, c.Settings); err != nil {
					return err
				}
			}
			if secret != "" {
				c.Secret = secret
			}
			return nil
		})
		if err != nil {
			return connectorError(name, err)
		}
		reason := "settings_changed"
		if secret != "" {
			reason = "secret_replaced"
		}
		if err := o.changed(ctx, audit.ConnectorUpdated, k, reason); err != nil {
			return err
		}
		fmt.Fprintf(o.App.ErrOut, "Updated connector %q; every replica uses the change at its next sign-in.\n", name)
		return nil
	})
}

// changed records a connector event of the kind t; the secret is never
// part of it.
func (o *options) changed(ctx context.Context, t audit.Type, k *store.Connector, reason string) error {
	return o.Changed(ctx, audit.Event{Type: t, Target: k.Name, Reason: reason})
}

// callbackURL is the connector's callback at nsauth, "" when the issuer
// URL is unknown (the one the data was last served under, else
// NSAUTH_ISSUER) or the connector has none (LDAP).
func (o *options) callbackURL(ctx context.Context, st *store.Store, k *store.Connector) (string, error) {
	if k.Type == store.ConnectorLDAP {
		return "", nil
	}
	iss, err := st.ServedIssuer(ctx)
	if err != nil {
		return "", err
	}
	if iss == "" {
		iss, _ = o.App.Getenv("NSAUTH_ISSUER")
	}
	if iss == "" {
		return "", nil
	}
	return CallbackURL(iss, k.Name), nil
}

// CallbackURL is the callback of the connector name at the provider of
// issuer: the redirect URI to register at the upstream.
func CallbackURL(issuer, name string) string {
	return strings.TrimSuffix(issuer, "/") + "/login/connector/" + name + "/callback"
}

// connectorJSON is a connector as list --json and show --json print it:
// its settings, never its secret.
type connectorJSON struct {
	Name             string          `json:"name"`
	Type             string          `json:"type"`
	DisplayName      string          `json:"display_name,omitempty"`
	Disabled         bool            `json:"disabled"`
	CreateUsers      bool            `json:"create_users"`
	TrustUpstreamMFA bool            `json:"trust_upstream_mfa"`
	Settings         json.RawMessage `json:"settings"`
	CallbackURL      string          `json:"callback_url,omitempty"`
	Created          time.Time       `json:"created_at"`
	Updated          *time.Time      `json:"updated_at,omitempty"`
	DisabledAt       *time.Time      `json:"disabled_at,omitempty"`
}

func toJSON(k *store.Connector, callback string) connectorJSON {
	at := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		u := t.UTC()
		return &u
	}
	settings := json.RawMessage(k.Settings)
	if len(settings) == 0 {
		settings = json.RawMessage("{}")
	}
	return connectorJSON{Name: k.Name, Type: k.Type, DisplayName: k.DisplayName, Disabled: k.Disabled(),
		CreateUsers: k.CreateUsers, TrustUpstreamMFA: k.TrustUpstreamMFA, Settings: settings, CallbackURL: callback,
		Created: k.CreatedAt.UTC(), Updated: at(k.UpdatedAt), DisabledAt: at(k.DisabledAt)}
}

func status(k *store.Connector) string {
	if k.Disabled() {
		return "disabled"
	}
	return "enabled"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (o *options) list(ctx context.Context, st *store.Store, asJSON bool) error {
	all, err := st.Connectors(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		out := make([]connectorJSON, 0, len(all))
		for i := range all {
			cb, err := o.callbackURL(ctx, st, &all[i])
			if err != nil {
				return err
			}
			out = append(out, toJSON(&all[i], cb))
		}
		return storecmd.PrintJSON(o.App.Out, out)
	}
	tw := tabwriter.NewWriter(o.App.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tSTATUS\tDISPLAY NAME\tCREATE USERS\tCREATED")
	for i := range all {
		k := &all[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.Name, k.Type, status(k), storecmd.OrDash(visible.Escape(k.DisplayName)),
			yesNo(k.CreateUsers), k.CreatedAt.UTC().Format(time.DateOnly))
	}
	return tw.Flush()
}

func (o *options) show(ctx context.Context, st *store.Store, k *store.Connector, asJSON bool) error {
	cb, err := o.callbackURL(ctx, st, k)
	if err != nil {
		return err
	}
	if asJSON {
		return storecmd.PrintJSON(o.App.Out, toJSON(k, cb))
	}
	if cb == "" && k.Type != store.ConnectorLDAP {
		cb = "unknown until nsauth serve has served this data (or NSAUTH_ISSUER is set): ISSUER/login/connector/" + k.Name + "/callback"
	}
	tw := tabwriter.NewWriter(o.App.Out, 0, 4, 2, ' ', 0)
	line := func(label, value string) { fmt.Fprintf(tw, "%s:\t%s\n", label, storecmd.OrDash(visible.Escape(value))) }
	line("name", k.Name)
	line("type", k.Type)
	line("display name", k.DisplayName)
	line("status", status(k))
	if cb != "" {
		line("callback URL", cb)
	}
	for _, s := range settingLines(k.Type, k.Settings) {
		line(s[0], s[1])
	}
	line("create users", yesNo(k.CreateUsers))
	if k.Type == store.ConnectorOIDC {
		line("trust upstream MFA", yesNo(k.TrustUpstreamMFA))
	}
	line("created", k.CreatedAt.UTC().Format(time.RFC3339))
	if !k.UpdatedAt.IsZero() && !k.UpdatedAt.Equal(k.CreatedAt) {
		line("updated", k.UpdatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}
