package servercmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// clientsOptions holds what every `nsauth clients` subcommand needs.
type clientsOptions struct {
	storecmd.Command
	// newSecret returns a fresh client secret; nil means
	// store.NewMachineClientSecret.
	newSecret func() string
}

// secretWarning goes to standard error whenever a secret is printed.
const secretWarning = "Store the client secret now: it is shown only this once (nsauth keeps only a digest of it).\n" +
	"Anyone who holds it obtains tokens as this client; `nsauth clients rotate-secret` replaces it.\n"

func newClientsCommand(app *cli.App) *cobra.Command {
	o := &clientsOptions{Command: storecmd.Command{App: app}}
	cmd := &cobra.Command{
		Use:   "clients",
		Short: "Manage the built-in provider's machine clients",
		Long: `Manage machine clients: programs and CI jobs that obtain access tokens for
themselves from the built-in OpenID provider with the client-credentials grant
(RFC 6749 §4.4), with no person logging in. A machine client's tokens have
the client as subject (sub = client_id), only the scopes it is allowed, no
refresh token, and a lifetime of at most --token-ttl and the server's
access-token-ttl.

The commands work on the provider's store directly (the SQLite database in
--data-dir, or PostgreSQL at --database-url), so a running server sees the
changes at once; use the same settings as for nsauth serve.

add and rotate-secret print the client secret once, on standard output; only
a digest of it is stored. No command takes a secret on its command line.
Disabling a client, rotating its secret or deleting it revokes its tokens at
once. A client is named by its NAME or its client id.`,
		Example: `  nsauth clients add deploy --scopes read,write --token-ttl 10m
  nsauth clients list
  nsauth clients rotate-secret deploy
  NSAUTH_DATABASE_URL=postgres://nsauth@db/nsauth nsauth clients disable deploy`,
		Args: cli.NoArgs,
	}
	o.Parent = cmd
	config.RegisterStoreFlags(cmd.PersistentFlags())

	var (
		scopes   []string
		tokenTTL time.Duration
		asJSON   bool
	)
	add := &cobra.Command{
		Use:   "add <name>",
		Short: "Create a machine client and print its secret once",
		Args:  exactlyOneName,
		RunE: func(c *cobra.Command, args []string) error {
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				return o.add(ctx, st, args[0], scopes, tokenTTL, asJSON)
			})
		},
	}
	add.Flags().StringSliceVar(&scopes, "scopes", nil, "scopes the client may be granted, comma-separated (default none)")
	add.Flags().DurationVar(&tokenTTL, "token-ttl", 0, "lifetime of the client's access tokens (default and maximum: the server's access-token-ttl)")
	add.Flags().BoolVar(&asJSON, "json", false, "print the client id and secret as JSON")

	list := &cobra.Command{
		Use:   "list",
		Short: "List machine clients",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				return o.list(ctx, st, asJSON)
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")

	rotate := &cobra.Command{
		Use:   "rotate-secret <name>",
		Short: "Replace a client's secret, print the new one once, and revoke its tokens",
		Args:  exactlyOneName,
		RunE: func(c *cobra.Command, args []string) error {
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				return o.rotate(ctx, st, args[0], asJSON)
			})
		},
	}
	rotate.Flags().BoolVar(&asJSON, "json", false, "print the client id and secret as JSON")

	simple := func(use, short string, run func(ctx context.Context, st *store.Store, c *store.MachineClient) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " <name>",
			Short: short,
			Args:  exactlyOneName,
			RunE: func(c *cobra.Command, args []string) error {
				return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
					mc, err := findClient(ctx, st, args[0])
					if err != nil {
						return err
					}
					return run(ctx, st, mc)
				})
			},
		}
	}
	cmd.AddCommand(
		add,
		list,
		rotate,
		simple("disable", "Disable a client and revoke its tokens", func(ctx context.Context, st *store.Store, c *store.MachineClient) error {
			if err := st.SetMachineClientDisabled(ctx, c.ID, true); err != nil {
				return clientError(c.Name, err)
			}
			if err := o.clientChanged(ctx, c, "disabled"); err != nil {
				return err
			}
			fmt.Fprintf(o.App.ErrOut, "Disabled %q and revoked its tokens.\n", c.Name)
			return nil
		}),
		simple("enable", "Enable a disabled client", func(ctx context.Context, st *store.Store, c *store.MachineClient) error {
			if err := st.SetMachineClientDisabled(ctx, c.ID, false); err != nil {
				return clientError(c.Name, err)
			}
			if err := o.clientChanged(ctx, c, "enabled"); err != nil {
				return err
			}
			fmt.Fprintf(o.App.ErrOut, "Enabled %q.\n", c.Name)
			return nil
		}),
		simple("delete", "Delete a client and revoke its tokens", func(ctx context.Context, st *store.Store, c *store.MachineClient) error {
			if err := st.DeleteMachineClient(ctx, c.ID); err != nil {
				return clientError(c.Name, err)
			}
			if err := o.clientChanged(ctx, c, "deleted"); err != nil {
				return err
			}
			fmt.Fprintf(o.App.ErrOut, "Deleted %q and revoked its tokens.\n", c.Name)
			return nil
		}),
	)
	return cmd
}

func exactlyOneName(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return cli.UsageErrorf("%s takes exactly one argument, the client's name", cmd.CommandPath())
	}
	return nil
}

// findClient finds a machine client by name, or else by client id.
func findClient(ctx context.Context, st *store.Store, ref string) (*store.MachineClient, error) {
	c, err := st.MachineClientByName(ctx, ref)
	if errors.Is(err, store.ErrNotFound) && strings.HasPrefix(ref, store.MachineClientIDPrefix) {
		c, err = st.MachineClientByID(ctx, ref)
	}
	if err != nil {
		return nil, clientError(ref, err)
	}
	return c, nil
}

func clientError(ref string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no machine client %q", strings.ToLower(ref))
	}
	return err
}

func (o *clientsOptions) secret() string {
	if o.newSecret != nil {
		return o.newSecret()
	}
	return store.NewMachineClientSecret()
}

func (o *clientsOptions) add(ctx context.Context, st *store.Store, name string, scopes []string, ttl time.Duration, asJSON bool) error {
	normalized, err := store.NormalizeClientName(name)
	if err != nil {
		return cli.UsageErrorf("%v", err)
	}
	if ttl < 0 {
		return cli.UsageErrorf("--token-ttl cannot be negative")
	}
	secret := o.secret()
	c := &store.MachineClient{Name: normalized, SecretHash: store.HashSecret(secret), Scopes: scopes, TokenTTL: ttl}
	if err := st.CreateMachineClient(ctx, c); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("machine client %q already exists", normalized)
		}
		return err
	}
	if err := o.clientChanged(ctx, c, "added"); err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Created machine client %q.\n", c.Name)
	return o.printSecret(c, secret, asJSON)
}

func (o *clientsOptions) rotate(ctx context.Context, st *store.Store, ref string, asJSON bool) error {
	c, err := findClient(ctx, st, ref)
	if err != nil {
		return err
	}
	secret := o.secret()
	if err := st.SetMachineClientSecret(ctx, c.ID, store.HashSecret(secret)); err != nil {
		return clientError(c.Name, err)
	}
	// Unrecorded, the new secret is never shown: the client stays locked
	// out until a rotation is recorded.
	if err := o.clientChanged(ctx, c, "secret_rotated"); err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Replaced the secret of %q; the old one no longer works and its tokens are revoked.\n", c.Name)
	return o.printSecret(c, secret, asJSON)
}

// printSecret prints a client's id and secret on standard output, the one
// time the secret is shown, with the warning on standard error.
func (o *clientsOptions) printSecret(c *store.MachineClient, secret string, asJSON bool) error {
	fmt.Fprint(o.App.ErrOut, secretWarning)
	if asJSON {
		return json.NewEncoder(o.App.Out).Encode(struct {
			Name         string `json:"name"`
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
		}{c.Name, c.ID, secret})
	}
	_, err := fmt.Fprintf(o.App.Out, "client_id:     %s\nclient_secret: %s\n", c.ID, secret)
	return err
}

// clientJSON is a client as `clients list --json` prints it.
type clientJSON struct {
	Name     string    `json:"name"`
	ClientID string    `json:"client_id"`
	Disabled bool      `json:"disabled"`
	Scopes   []string  `json:"scopes"`
	TokenTTL string    `json:"token_ttl,omitempty"`
	Created  time.Time `json:"created_at"`
}

func (o *clientsOptions) list(ctx context.Context, st *store.Store, asJSON bool) error {
	clients, err := st.ListMachineClients(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		out := make([]clientJSON, 0, len(clients))
		for _, c := range clients {
			j := clientJSON{Name: c.Name, ClientID: c.ID, Disabled: c.Disabled(), Scopes: c.Scopes, Created: c.CreatedAt.UTC()}
			if j.Scopes == nil {
				j.Scopes = []string{}
			}
			if c.TokenTTL > 0 {
				j.TokenTTL = c.TokenTTL.String()
			}
			out = append(out, j)
		}
		enc := json.NewEncoder(o.App.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(o.App.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCLIENT ID\tSTATUS\tSCOPES\tTOKEN TTL\tCREATED")
	for _, c := range clients {
		status := "enabled"
		if c.Disabled() {
			status = "disabled"
		}
		ttl := "default"
		if c.TokenTTL > 0 {
			ttl = c.TokenTTL.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.ID, status, storecmd.OrDash(strings.Join(c.Scopes, ",")), ttl, c.CreatedAt.UTC().Format(time.DateOnly))
	}
	return tw.Flush()
}

// clientChanged records the audit.ClientChanged event of action on c. The
// secret is never part of it.
func (o *clientsOptions) clientChanged(ctx context.Context, c *store.MachineClient, action string) error {
	return o.Changed(ctx, audit.Event{Type: audit.ClientChanged, Subject: c.ID, ClientID: c.ID, Target: c.Name, Reason: action})
}
