package servercmd

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
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd/storecmd"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/store"
)

// clientsOptions holds what every `nsauth clients` subcommand needs.
type clientsOptions struct {
	storecmd.Command
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
changes at once; use the same settings as for nsauth serve. With --api-url
they go through the admin API of a running server instead, as the admin
nsauth login logged in.

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
	o.RegisterRemoteFlags(cmd.PersistentFlags())

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
			name, err := store.NormalizeClientName(args[0])
			if err != nil {
				return cli.UsageErrorf("%v", err)
			}
			ttl, err := ttlFlag("--token-ttl", tokenTTL)
			if err != nil {
				return err
			}
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				return o.add(ctx, api, &adminv1.CreateMachineClientRequest{Name: name, Scopes: scopes, TokenTtlSeconds: ttl}, asJSON)
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
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				return o.list(ctx, api, asJSON)
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")

	rotate := &cobra.Command{
		Use:   "rotate-secret <name>",
		Short: "Replace a client's secret, print the new one once, and revoke its tokens",
		Args:  exactlyOneName,
		RunE: func(c *cobra.Command, args []string) error {
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				return o.rotate(ctx, api, args[0], asJSON)
			})
		},
	}
	rotate.Flags().BoolVar(&asJSON, "json", false, "print the client id and secret as JSON")

	simple := func(use, short string, run func(ctx context.Context, api adminv1connect.AdminServiceClient, ref string) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " <name>",
			Short: short,
			Args:  exactlyOneName,
			RunE: func(c *cobra.Command, args []string) error {
				return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
					return run(ctx, api, args[0])
				})
			},
		}
	}
	setDisabled := func(disabled bool, done string) func(ctx context.Context, api adminv1connect.AdminServiceClient, ref string) error {
		return func(ctx context.Context, api adminv1connect.AdminServiceClient, ref string) error {
			res, err := api.SetMachineClientDisabled(ctx, connect.NewRequest(&adminv1.SetMachineClientDisabledRequest{Name: ref, Disabled: disabled}))
			if err != nil {
				return err
			}
			fmt.Fprintf(o.App.ErrOut, done, res.Msg.GetName())
			return nil
		}
	}
	cmd.AddCommand(
		add,
		list,
		rotate,
		simple("disable", "Disable a client and revoke its tokens", setDisabled(true, "Disabled %q and revoked its tokens.\n")),
		simple("enable", "Enable a disabled client", setDisabled(false, "Enabled %q.\n")),
		simple("delete", "Delete a client and revoke its tokens", func(ctx context.Context, api adminv1connect.AdminServiceClient, ref string) error {
			res, err := api.DeleteMachineClient(ctx, connect.NewRequest(&adminv1.DeleteMachineClientRequest{Name: ref}))
			if err != nil {
				return err
			}
			fmt.Fprintf(o.App.ErrOut, "Deleted %q and revoked its tokens.\n", res.Msg.GetName())
			return nil
		}),
	)
	return cmd
}

var exactlyOneName = cli.ExactlyOne("the client's name")

// ttlFlag is a lifetime flag in whole seconds, as the admin API takes it.
func ttlFlag(flag string, d time.Duration) (int64, error) {
	switch {
	case d < 0:
		return 0, cli.UsageErrorf("%s cannot be negative", flag)
	case d%time.Second != 0:
		return 0, cli.UsageErrorf("%s must be a whole number of seconds", flag)
	}
	return int64(d / time.Second), nil
}

func (o *clientsOptions) add(ctx context.Context, api adminv1connect.AdminServiceClient, req *adminv1.CreateMachineClientRequest, asJSON bool) error {
	res, err := api.CreateMachineClient(ctx, connect.NewRequest(req))
	if err != nil {
		return err
	}
	c := res.Msg.GetClient()
	fmt.Fprintf(o.App.ErrOut, "Created machine client %q.\n", c.GetName())
	return o.printSecret(c.GetName(), c.GetId(), res.Msg.GetClientSecret(), asJSON)
}

func (o *clientsOptions) rotate(ctx context.Context, api adminv1connect.AdminServiceClient, ref string, asJSON bool) error {
	res, err := api.RotateMachineClientSecret(ctx, connect.NewRequest(&adminv1.RotateMachineClientSecretRequest{Name: ref}))
	if err != nil {
		return err
	}
	fmt.Fprintf(o.App.ErrOut, "Replaced the secret of %q; the old one no longer works and its tokens are revoked.\n", res.Msg.GetName())
	return o.printSecret(res.Msg.GetName(), res.Msg.GetClientId(), res.Msg.GetClientSecret(), asJSON)
}

// printSecret prints a client's id and secret on standard output, the one
// time the secret is shown, with the warning on standard error.
func (o *clientsOptions) printSecret(name, clientID, secret string, asJSON bool) error {
	fmt.Fprint(o.App.ErrOut, secretWarning)
	if asJSON {
		return json.NewEncoder(o.App.Out).Encode(struct {
			Name         string `json:"name"`
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
		}{name, clientID, secret})
	}
	_, err := fmt.Fprintf(o.App.Out, "client_id:     %s\nclient_secret: %s\n", clientID, secret)
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

func (o *clientsOptions) list(ctx context.Context, api adminv1connect.AdminServiceClient, asJSON bool) error {
	res, err := api.ListMachineClients(ctx, connect.NewRequest(&adminv1.ListMachineClientsRequest{}))
	if err != nil {
		return err
	}
	clients := res.Msg.GetClients()
	if asJSON {
		out := make([]clientJSON, 0, len(clients))
		for _, c := range clients {
			j := clientJSON{Name: c.GetName(), ClientID: c.GetId(), Disabled: c.GetDisabledAt() != 0, Scopes: c.GetScopes(), Created: apiTime(c.GetCreatedAt())}
			if j.Scopes == nil {
				j.Scopes = []string{}
			}
			if c.GetTokenTtlSeconds() > 0 {
				j.TokenTTL = apiDuration(c.GetTokenTtlSeconds()).String()
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
		if c.GetDisabledAt() != 0 {
			status = "disabled"
		}
		ttl := "default"
		if c.GetTokenTtlSeconds() > 0 {
			ttl = apiDuration(c.GetTokenTtlSeconds()).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.GetName(), c.GetId(), status, storecmd.OrDash(strings.Join(c.GetScopes(), ",")), ttl, apiTime(c.GetCreatedAt()).Format(time.DateOnly))
	}
	return tw.Flush()
}

// apiTime is the time s seconds after the epoch (the admin API's
// times), the zero time for 0.
func apiTime(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// apiDuration is s seconds (the admin API's lifetimes).
func apiDuration(s int64) time.Duration { return time.Duration(s) * time.Second }
