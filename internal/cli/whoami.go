package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
)

// whoamiOptions holds `nsauth whoami`'s flags and dependencies.
type whoamiOptions struct {
	app    *App
	client clientOptions
	deps   clientDeps

	Output outputFormat
}

func newWhoamiCommand(app *App, runF func(context.Context, *whoamiOptions) error) *cobra.Command {
	o := &whoamiOptions{app: app, deps: defaultClientDeps(app)}
	if runF == nil {
		runF = runWhoami
	}
	var output string
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show who you are logged in as, after the server confirms the token",
		Long: `Ask the server to check the stored access token (CheckToken), refreshing it
first if needed, and show its subject, issuer, scopes and expiry with the
name and email from the ID token.

The name and email are read from the ID token without checking its
signature: they are for display. The subject, issuer, scopes and expiry come
from the server's check when it reports them (older servers do not).`,
		Example: `  nsauth whoami
  nsauth whoami --output json | jq -r .email`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.client.resolve(o.app.Getenv); err != nil {
				return err
			}
			f, err := parseOutput(output)
			if err != nil {
				return err
			}
			o.Output = f
			return runF(cmd.Context(), o)
		},
	}
	o.client.addFlags(cmd.Flags())
	addOutputFlag(cmd, &output)
	return cmd
}

// whoamiResult is whoami's JSON output.
type whoamiResult struct {
	APIURL    string     `json:"api_url"`
	Subject   string     `json:"subject,omitempty"`
	Name      string     `json:"name,omitempty"`
	Email     string     `json:"email,omitempty"`
	Username  string     `json:"preferred_username,omitempty"`
	Issuer    string     `json:"issuer,omitempty"`
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func runWhoami(ctx context.Context, o *whoamiOptions) error {
	ts, err := o.deps.tokenSource(o.client, 0)
	if err != nil {
		return err
	}
	tok, err := ts.TokenContext(ctx)
	if err != nil {
		return o.deps.tokenError(err, o.client.APIURL)
	}
	req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
	req.Header().Set("Authorization", tok.Type()+" "+tok.AccessToken)
	resp, err := o.deps.authClient(o.client.APIURL).CheckToken(ctx, req)
	if err != nil {
		if connect.CodeOf(err) == connect.CodeUnauthenticated && o.deps.Exchanges.diagnosis(o.client.APIURL) == "" {
			return fmt.Errorf("the server does not accept the stored access token; %s", loginHint(o.client.APIURL))
		}
		return o.deps.callError(o.client.APIURL, "checking the token", err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	scope, _ := tok.Extra("scope").(string)
	id := identityFromTokens(idToken, tok.AccessToken)
	m := resp.Msg
	res := whoamiResult{
		APIURL:   o.client.APIURL,
		Subject:  firstNonEmpty(displayText(m.GetSubject()), id.Subject),
		Name:     id.Name,
		Email:    id.Email,
		Username: id.Username,
		Issuer:   firstNonEmpty(displayText(m.GetIssuer()), id.Issuer),
		Scopes:   m.GetScopes(),
	}
	if len(res.Scopes) == 0 {
		res.Scopes = strings.Fields(scope)
	}
	for i, s := range res.Scopes {
		res.Scopes[i] = displayText(s)
	}
	if res.Scopes == nil {
		res.Scopes = []string{}
	}
	exp := tok.Expiry
	if m.ExpiresAt != nil {
		exp = time.Unix(m.GetExpiresAt(), 0)
	}
	if !exp.IsZero() {
		exp = exp.UTC()
		res.ExpiresAt = &exp
	}

	if o.Output == outputJSON {
		enc := json.NewEncoder(o.app.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	w := tabwriter.NewWriter(o.app.Out, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s:\t%s\n", k, v)
		}
	}
	row("API URL", res.APIURL)
	row("Subject", res.Subject)
	row("Name", res.Name)
	row("Email", res.Email)
	row("Username", res.Username)
	row("Issuer", res.Issuer)
	row("Scopes", strings.Join(res.Scopes, " "))
	if res.ExpiresAt != nil {
		row("Expires", formatExpiry(*res.ExpiresAt, o.deps.Now()))
	}
	return w.Flush()
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
