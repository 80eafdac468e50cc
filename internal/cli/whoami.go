package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/cli/session"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// whoamiOptions holds `nsauth whoami`'s flags and dependencies.
type whoamiOptions struct {
	app    *App
	client session.Options
	deps   session.Deps

	Output outputFormat
	// Machine are the machine credentials' flags, and Credentials what
	// they and the environment resolve to (see nsauth token).
	Machine     machineFlags
	Credentials *machineCredentials
}

func newWhoamiCommand(app *App, runF func(context.Context, *whoamiOptions) error) *cobra.Command {
	o := &whoamiOptions{app: app, deps: session.NewDeps(app)}
	if runF == nil {
		runF = runWhoami
	}
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show who you are logged in as, after the server confirms the token",
		Long: `Ask the server to check the stored access token (CheckToken), refreshing it
first if needed, and show its subject, issuer, scopes and expiry with the
name and email from the ID token.

The name and email are read from the ID token without checking its
signature: they are for display. The subject, issuer, scopes and expiry come
from the server's check when it reports them (older servers do not).

When the server refuses the access token (after its database was reset,
say), the token is forgotten: with a refresh token, whoami refreshes and
checks the new token; otherwise, or when the refresh is refused too, the
session is recorded as refused, and token and status say so until the next
nsauth login.

With machine credentials (a machine client's, or a CI job's ID token: see
nsauth token --help), whoami gets a token with them instead, asks the server
to check it and shows what it says: the client and the scopes it is granted.`,
		Example: `  nsauth whoami
  nsauth whoami --output json | jq -r .email
  nsauth whoami --account bob@example.com`,
		Args: NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := resolveMachine(o.Machine, o.app.Getenv)
			if err != nil {
				return err
			}
			o.client.NoStore = m.Mode != storedLogin
			if err := o.client.Resolve(o.app.Getenv); err != nil {
				return err
			}
			if m.Mode != storedLogin && o.client.Account != "" {
				return UsageErrorf("--account names a stored login; machine credentials (%s) are their own account", m.secretSetting())
			}
			o.Credentials = m
			return runF(cmd.Context(), o)
		},
	}
	o.client.AddFlags(cmd.Flags())
	o.client.AddAccountFlag(app, cmd)
	addOutputFlag(cmd, &o.Output)
	o.Machine.add(cmd.Flags())
	return cmd
}

// whoamiResult is whoami's JSON output.
type whoamiResult struct {
	APIURL string `json:"api_url"`
	// Account and AccountID are the stored account the token is of.
	Account   string     `json:"account"`
	AccountID string     `json:"account_id"`
	Subject   string     `json:"subject,omitempty"`
	Name      string     `json:"name,omitempty"`
	Email     string     `json:"email,omitempty"`
	Username  string     `json:"preferred_username,omitempty"`
	Issuer    string     `json:"issuer,omitempty"`
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// ClientID and Machine are set for machine credentials.
	ClientID string `json:"client_id,omitempty"`
	Machine  bool   `json:"machine,omitempty"`
}

func runWhoami(ctx context.Context, o *whoamiOptions) error {
	var (
		tok     *oauth2.Token
		account tokenstore.Account
		resp    *mgmtv1alpha1.CheckTokenResponse
		err     error
	)
	if m := o.Credentials; m != nil && m.Mode != storedLogin {
		tok, resp, err = o.checkedMachineToken(ctx, m)
	} else {
		tok, account, resp, err = o.checkedToken(ctx)
	}
	if err != nil {
		return err
	}
	idToken, _ := tok.Extra("id_token").(string)
	scope, _ := tok.Extra("scope").(string)
	id := session.IdentityFromTokens(idToken, tok.AccessToken)
	m := resp
	res := whoamiResult{
		APIURL:    o.client.APIURL,
		Account:   session.DisplayText(account.Name),
		AccountID: account.ID,
		Subject:   cmp.Or(session.DisplayText(m.GetSubject()), id.Subject),
		Name:      id.Name,
		Email:     id.Email,
		Username:  id.Username,
		Issuer:    cmp.Or(session.DisplayText(m.GetIssuer()), id.Issuer),
		Scopes:    m.GetScopes(),
		ClientID:  session.DisplayText(m.GetClientId()),
		Machine:   m.GetMachine(),
	}
	if len(res.Scopes) == 0 {
		res.Scopes = strings.Fields(scope)
	}
	for i, s := range res.Scopes {
		res.Scopes[i] = session.DisplayText(s)
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
	row("Account", res.Account)
	if res.Machine {
		row("Client", res.ClientID+" (machine)")
	}
	row("Subject", res.Subject)
	row("Name", res.Name)
	row("Email", res.Email)
	row("Username", res.Username)
	row("Issuer", res.Issuer)
	row("Scopes", strings.Join(res.Scopes, " "))
	if res.ExpiresAt != nil {
		row("Expires", session.FormatExpiry(*res.ExpiresAt, o.deps.Now()))
	}
	return w.Flush()
}

// checkedToken returns the stored access token and the server's
// CheckToken answer for it. A token the server refuses is forgotten (see
// session.Deps.RefusedAccessToken) and, when a refresh token is stored,
// replaced by a refreshed one, which is checked in turn.
func (o *whoamiOptions) checkedToken(ctx context.Context) (*oauth2.Token, tokenstore.Account, *mgmtv1alpha1.CheckTokenResponse, error) {
	apiURL := o.client.APIURL
	client := o.client
	var none tokenstore.Account
	for attempt := 1; ; attempt++ {
		tok, account, err := o.deps.Token(ctx, client, 0)
		if err != nil {
			return nil, none, nil, err
		}
		// A second attempt is about the same account, even if another
		// became active meanwhile.
		client.Account = account.ID
		req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
		req.Header().Set("Authorization", tok.Type()+" "+tok.AccessToken)
		resp, err := o.deps.AuthClient(apiURL).CheckToken(ctx, req)
		switch {
		case err == nil:
			return tok, account, resp.Msg, nil
		case connect.CodeOf(err) != connect.CodeUnauthenticated || o.deps.Exchanges.Diagnosis(apiURL) != "":
			return nil, none, nil, o.deps.CallError(apiURL, "checking the token", err)
		}
		canRefresh, rerr := o.deps.RefusedAccessToken(ctx, o.client, account.ID, tok.AccessToken)
		switch {
		case rerr != nil:
			return nil, none, nil, rerr
		case !canRefresh:
			return nil, none, nil, session.RefusedError(apiURL)
		case attempt == 2:
			// A token refreshed a moment ago is refused too: logging in
			// again would give another such token.
			return nil, none, nil, errors.New("the server refuses even a freshly refreshed access token: its token checking does not match the tokens it issues (a configuration problem on the server, such as AUTH_AUDIENCE), not a problem with your login")
		}
	}
}

// checkedMachineToken gets a token with machine credentials and the
// server's CheckToken answer for it. Nothing is stored or forgotten.
func (o *whoamiOptions) checkedMachineToken(ctx context.Context, m *machineCredentials) (*oauth2.Token, *mgmtv1alpha1.CheckTokenResponse, error) {
	apiURL := o.client.APIURL
	tok, err := machineToken(ctx, o.deps, o.app, o.client, m)
	if err != nil {
		return nil, nil, err
	}
	req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
	req.Header().Set("Authorization", tok.Type()+" "+tok.AccessToken)
	resp, err := o.deps.AuthClient(apiURL).CheckToken(ctx, req)
	switch {
	case err == nil:
		return tok, resp.Msg, nil
	case connect.CodeOf(err) == connect.CodeUnauthenticated && o.deps.Exchanges.Diagnosis(apiURL) == "":
		return nil, nil, fmt.Errorf("the server refuses the machine token the identity provider just issued: it does not accept that provider's tokens (check %s, and the server's issuer and AUTH_AUDIENCE)", envIssuer)
	}
	return nil, nil, o.deps.CallError(apiURL, "checking the token", err)
}
