package servercmd

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd/storecmd"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/federation"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/visible"
)

func newFederationCommand(app *cli.App) *cobra.Command {
	o := &storecmd.Command{App: app}
	cmd := &cobra.Command{
		Use:   "federation",
		Short: "Manage the policies that let CI jobs exchange their ID tokens for nsauth tokens",
		Long: `Manage the trust policies of keyless CI. A CI platform (GitHub Actions, GitLab
CI, Buildkite, a Kubernetes service account) gives each job a short-lived
OpenID Connect ID token; a job whose token a policy matches exchanges it at
the token endpoint (RFC 8693 token exchange) for a short-lived access token
of the policy's machine client, with no stored secret.

A policy names the CI's issuer exactly as its tokens spell it, the audience
the tokens must carry, and a subject pattern: the exact subject, or a glob
in which * stands for one or more characters other than a colon, so that it
never spans two fields of the subject (repo:acme/app:ref:refs/heads/*
matches every branch of acme/app, and nothing of another repository or
event). The subject must match whole. --max-ttl caps the lifetime of the
tokens the policy yields, below the client's own.

The commands work on the provider's store directly, as nsauth users does.
Deleting a policy revokes the tokens issued under it; deleting its client
deletes the policy.`,
		Example: `  nsauth federation add deploy-main --issuer https://token.actions.githubusercontent.com \
      --audience https://nsauth.example.com --subject 'repo:acme/app:ref:refs/heads/main' \
      --client ci-deployer --max-ttl 10m
  nsauth federation list
  nsauth federation delete deploy-main`,
		Args: cli.NoArgs,
	}
	o.Parent = cmd
	config.RegisterStoreFlags(cmd.PersistentFlags())

	var p federation.Policy
	var client string
	add := &cobra.Command{
		Use:   "add <name>",
		Short: "Add a policy",
		Args:  exactlyOnePolicy,
		RunE: func(c *cobra.Command, args []string) error {
			p.Name = args[0]
			configured, _ := app.Getenv("NSAUTH_ISSUER")
			check := &federation.Policy{Name: p.Name, Issuer: p.Issuer, Audience: p.Audience, Subject: p.Subject, ClientID: client, MaxTTL: p.MaxTTL}
			if err := federation.CheckPolicy(check, configured); err != nil {
				return cli.UsageErrorf("%v", err)
			}
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				// The issuer the server serves this database under is known
				// even when NSAUTH_ISSUER is not in this command's
				// environment (a derived issuer, another shell).
				served, err := st.ServedIssuer(ctx)
				if err != nil {
					return err
				}
				if err := federation.CheckPolicy(check, served); err != nil {
					return cli.UsageErrorf("%v", err)
				}
				return addPolicy(ctx, o, st, p, client)
			})
		},
	}
	add.Flags().StringVar(&p.Issuer, "issuer", "", "the CI provider's issuer URL, exactly as its tokens' iss (required)")
	add.Flags().StringVar(&p.Audience, "audience", "", "the audience the tokens must carry (required)")
	add.Flags().StringVar(&p.Subject, "subject", "", "the subject, or a glob where * matches within one colon-separated field (required)")
	add.Flags().StringVar(&client, "client", "", "the machine client (name or id) the tokens are exchanged for (required)")
	add.Flags().DurationVar(&p.MaxTTL, "max-ttl", 0, "cap on the lifetime of the tokens issued under the policy (default: the client's)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List policies",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error { return listPolicies(ctx, app, st) })
		},
	}
	del := &cobra.Command{
		Use:   "delete <name>",
		Short: "Delete a policy and revoke the tokens issued under it",
		Args:  exactlyOnePolicy,
		RunE: func(c *cobra.Command, args []string) error {
			return o.WithStore(c.Context(), func(ctx context.Context, st *store.Store) error {
				if err := st.DeleteFederationPolicy(ctx, args[0]); err != nil {
					if errors.Is(err, store.ErrNotFound) {
						return fmt.Errorf("no federation policy %q", args[0])
					}
					return err
				}
				if err := o.Changed(ctx, audit.Event{Type: audit.FederationChanged, Target: args[0], Reason: "deleted"}); err != nil {
					return err
				}
				fmt.Fprintf(app.ErrOut, "Deleted the federation policy %q; the tokens issued under it are revoked.\n", args[0])
				return nil
			})
		},
	}
	cmd.AddCommand(add, list, del)
	return cmd
}

func exactlyOnePolicy(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return cli.UsageErrorf("%s takes exactly one argument, the policy name", cmd.CommandPath())
	}
	return nil
}

func addPolicy(ctx context.Context, o *storecmd.Command, st *store.Store, p federation.Policy, client string) error {
	app := o.App
	c, err := findClient(ctx, st, client)
	if err != nil {
		return err
	}
	sp := &store.FederationPolicy{Name: p.Name, Issuer: p.Issuer, Audience: p.Audience, Subject: p.Subject, ClientID: c.ID, MaxTTL: p.MaxTTL}
	if err := st.CreateFederationPolicy(ctx, sp); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("a federation policy %q already exists", p.Name)
		}
		return err
	}
	if err := o.Changed(ctx, audit.Event{Type: audit.FederationChanged, ClientID: c.ID, Target: sp.Name, Reason: "added"}); err != nil {
		return err
	}
	fmt.Fprintf(app.ErrOut, "Added the federation policy %q: tokens of %s for %s whose subject matches %s are exchanged for tokens of %s.\n",
		sp.Name, sp.Issuer, sp.Audience, sp.Subject, c.Name)
	if c.Disabled() {
		fmt.Fprintf(app.ErrOut, "The client %s is disabled: no token is issued until it is enabled.\n", c.Name)
	}
	return nil
}

func listPolicies(ctx context.Context, app *cli.App, st *store.Store) error {
	policies, err := st.FederationPolicies(ctx)
	if err != nil {
		return err
	}
	clients, err := st.ListMachineClients(ctx)
	if err != nil {
		return err
	}
	names := make(map[string]string, len(clients))
	for _, c := range clients {
		names[c.ID] = c.Name
	}
	tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tISSUER\tAUDIENCE\tSUBJECT\tCLIENT\tMAX TTL\tCREATED")
	for _, p := range policies {
		ttl := "-"
		if p.MaxTTL > 0 {
			ttl = p.MaxTTL.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", visible.Escape(p.Name), visible.Escape(p.Issuer), visible.Escape(p.Audience), visible.Escape(p.Subject), storecmd.OrDash(names[p.ClientID]), ttl,
			p.CreatedAt.UTC().Format(time.DateOnly))
	}
	return tw.Flush()
}
