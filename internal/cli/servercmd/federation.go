package servercmd

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd/storecmd"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/federation"
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

The commands work on the provider's store directly, as nsauth users does, or
with --api-url through the admin API of a running server.
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
	o.RegisterRemoteFlags(cmd.PersistentFlags())

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
			maxTTL, err := ttlFlag("--max-ttl", p.MaxTTL)
			if err != nil {
				return err
			}
			// The service checks the policy again against the issuer the
			// server serves its database under, which is known even when
			// NSAUTH_ISSUER is not in this command's environment (a
			// derived issuer, another shell).
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				return addPolicy(ctx, app, api, &adminv1.FederationPolicy{Name: p.Name, Issuer: p.Issuer, Audience: p.Audience, Subject: p.Subject,
					Client: client, MaxTtlSeconds: maxTTL})
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
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				return listPolicies(ctx, app, api)
			})
		},
	}
	del := &cobra.Command{
		Use:   "delete <name>",
		Short: "Delete a policy and revoke the tokens issued under it",
		Args:  exactlyOnePolicy,
		RunE: func(c *cobra.Command, args []string) error {
			return o.Admin(c.Context(), func(ctx context.Context, api adminv1connect.AdminServiceClient) error {
				if _, err := api.DeleteFederationPolicy(ctx, connect.NewRequest(&adminv1.DeleteFederationPolicyRequest{Name: args[0]})); err != nil {
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

var exactlyOnePolicy = cli.ExactlyOne("the policy name")

func addPolicy(ctx context.Context, app *cli.App, api adminv1connect.AdminServiceClient, p *adminv1.FederationPolicy) error {
	res, err := api.CreateFederationPolicy(ctx, connect.NewRequest(&adminv1.CreateFederationPolicyRequest{Policy: p}))
	if err != nil {
		return err
	}
	sp := res.Msg.GetPolicy()
	fmt.Fprintf(app.ErrOut, "Added the federation policy %q: tokens of %s for %s whose subject matches %s are exchanged for tokens of %s.\n",
		sp.GetName(), sp.GetIssuer(), sp.GetAudience(), sp.GetSubject(), sp.GetClient())
	if res.Msg.GetClientDisabled() {
		fmt.Fprintf(app.ErrOut, "The client %s is disabled: no token is issued until it is enabled.\n", sp.GetClient())
	}
	return nil
}

func listPolicies(ctx context.Context, app *cli.App, api adminv1connect.AdminServiceClient) error {
	res, err := api.ListFederationPolicies(ctx, connect.NewRequest(&adminv1.ListFederationPoliciesRequest{}))
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tISSUER\tAUDIENCE\tSUBJECT\tCLIENT\tMAX TTL\tCREATED")
	for _, p := range res.Msg.GetPolicies() {
		ttl := "-"
		if p.GetMaxTtlSeconds() > 0 {
			ttl = apiDuration(p.GetMaxTtlSeconds()).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", visible.Escape(p.GetName()), visible.Escape(p.GetIssuer()), visible.Escape(p.GetAudience()), visible.Escape(p.GetSubject()), storecmd.OrDash(p.GetClient()), ttl,
			apiTime(p.GetCreatedAt()).Format(time.DateOnly))
	}
	return tw.Flush()
}
