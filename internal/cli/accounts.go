package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/cli/session"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// accountsTimeout bounds the wait for the server's lock.
const accountsTimeout = 10 * time.Second

// accountsOptions holds `nsauth accounts`' flags and dependencies.
type accountsOptions struct {
	app    *App
	client session.Options
	deps   session.Deps

	Output outputFormat
}

func newAccountsCommand(app *App, runF func(context.Context, *accountsOptions) error) *cobra.Command {
	o := &accountsOptions{app: app, deps: session.NewDeps(app)}
	if runF == nil {
		runF = runAccounts
	}
	cmd := &cobra.Command{
		Use:   "accounts",
		Short: "List the accounts logged in to the API server, the active one marked",
		Long: `List the accounts whose tokens are stored for the API URL. Logging in as
another user adds an account and makes it active; nsauth switch makes another
one active. token, whoami and logout use the active account unless given
--account.

An account is named by the ID token's email, else its preferred_username,
else its subject; where two accounts share a name (one email at two identity
providers), the ID column tells them apart and selects one. Nothing is sent
to the server.`,
		Example: `  nsauth accounts
  nsauth accounts --output json | jq -r '.accounts[] | select(.active) | .name'`,
		Args: NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.client.Resolve(o.app.Getenv); err != nil {
				return err
			}
			return runF(cmd.Context(), o)
		},
	}
	o.client.AddFlags(cmd.Flags())
	addOutputFlag(cmd, &o.Output)
	return cmd
}

// accountsResult is accounts' JSON output.
type accountsResult struct {
	APIURL   string          `json:"api_url"`
	Accounts []accountResult `json:"accounts"`
}

// accountResult is one account in accounts' JSON output.
type accountResult struct {
	Name            string     `json:"name"`
	ID              string     `json:"id"`
	Subject         string     `json:"subject,omitempty"`
	Issuer          string     `json:"issuer,omitempty"`
	Active          bool       `json:"active"`
	Storage         string     `json:"storage"`
	TokenFile       string     `json:"token_file"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	HasRefreshToken bool       `json:"has_refresh_token"`
	RefusedAt       *time.Time `json:"refused_at,omitempty"`
}

func runAccounts(_ context.Context, o *accountsOptions) error {
	store, err := o.deps.Store(o.client.ConfigDir)
	if err != nil {
		return err
	}
	apiURL := o.client.APIURL
	entries, active, err := store.Accounts(apiURL)
	if err != nil {
		return fmt.Errorf("reading the stored accounts: %w", err)
	}
	res := accountsResult{APIURL: apiURL, Accounts: []accountResult{}}
	for _, e := range entries {
		a := accountResult{
			Name:      session.DisplayText(e.Account.Name),
			ID:        e.Account.ID,
			Subject:   session.DisplayText(e.Account.Subject),
			Issuer:    session.DisplayText(e.Account.Issuer),
			Active:    e.Account.ID == active,
			Storage:   string(e.Storage),
			TokenFile: store.AccountPath(apiURL, e.Account.ID),
			// A keyring entry's file does not say; assume what login stored.
			HasRefreshToken: e.RefreshToken != "" || e.Storage == tokenstore.StorageKeyring,
		}
		if e.Account.ID == active && len(entries) == 1 && store.Path(apiURL) != a.TokenFile {
			a.TokenFile = store.Path(apiURL) // a store written before accounts
		}
		if !e.Expiry.IsZero() {
			exp := e.Expiry.UTC()
			a.ExpiresAt = &exp
		}
		if e.Refused() {
			at := e.RefusedAt.UTC()
			a.RefusedAt, a.HasRefreshToken = &at, false
		}
		res.Accounts = append(res.Accounts, a)
	}
	if o.Output == outputJSON {
		enc := json.NewEncoder(o.app.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	if len(entries) == 0 {
		fmt.Fprintf(o.app.ErrOut, "Not logged in to %s; %s.\n", apiURL, session.LoginHint(apiURL))
		return nil
	}
	now := o.deps.Now()
	w := tabwriter.NewWriter(o.app.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\tACCOUNT\tID\tSTORAGE\tSESSION")
	for _, a := range res.Accounts {
		mark := ""
		if a.Active {
			mark = "*"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", mark, a.Name, a.ID, a.Storage, sessionSummary(a, now))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if active == "" {
		fmt.Fprintf(o.app.ErrOut, "No account is active; %s.\n", session.SwitchHint(apiURL, "ACCOUNT"))
	}
	return nil
}

// sessionSummary says in a few words whether an account's tokens are of use.
func sessionSummary(a accountResult, now time.Time) string {
	switch {
	case a.RefusedAt != nil:
		return "refused by the server " + session.FormatPast(*a.RefusedAt, now)
	case a.ExpiresAt == nil:
		return "logged in"
	case now.Before(*a.ExpiresAt):
		return "access token expires " + session.FormatExpiry(*a.ExpiresAt, now)
	case a.HasRefreshToken:
		return "access token expired; refreshed when used"
	}
	return "expired, no refresh token"
}

// switchOptions holds `nsauth switch`'s flags and dependencies.
type switchOptions struct {
	app    *App
	client session.Options
	deps   session.Deps
}

func newSwitchCommand(app *App, runF func(context.Context, *switchOptions) error) *cobra.Command {
	o := &switchOptions{app: app, deps: session.NewDeps(app)}
	if runF == nil {
		runF = runSwitch
	}
	cmd := &cobra.Command{
		Use:   "switch ACCOUNT",
		Short: "Make another stored account the active one",
		Long: `Make ACCOUNT, by its name or ID as nsauth accounts shows them (exactly), the
active account for the API URL: the one nsauth token, whoami and logout use
without --account, and Go programs using pkg/tokensource by default.
Nothing is sent to the server. Programs already running keep the account
they started with.`,
		Example: `  nsauth switch alice@example.com
  nsauth switch --api-url https://neosync.example.com 3f2a9c01b7de`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return UsageErrorf("%s takes one account, its name or ID (nsauth accounts lists them)", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.client.Resolve(o.app.Getenv); err != nil {
				return err
			}
			o.client.Account = args[0]
			return runF(cmd.Context(), o)
		},
	}
	o.client.AddFlags(cmd.Flags())
	complete := session.CompleteAccounts(app, &o.client)
	cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return complete(cmd, args, toComplete)
	}
	return cmd
}

func runSwitch(ctx context.Context, o *switchOptions) error {
	apiURL := o.client.APIURL
	store, err := o.deps.Store(o.client.ConfigDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, accountsTimeout)
	defer cancel()
	unlock, err := store.Lock(ctx, apiURL)
	if err != nil {
		return fmt.Errorf("switching accounts: %w", err)
	}
	defer unlock()
	entries, active, err := store.Accounts(apiURL)
	if err != nil {
		return fmt.Errorf("reading the stored accounts: %w", err)
	}
	if len(entries) == 0 {
		return fmt.Errorf("not logged in to %s; %s", apiURL, session.LoginHint(apiURL))
	}
	e, err := store.LoadAccountMetadata(apiURL, o.client.Account)
	if errors.Is(err, tokenstore.ErrUnknownAccount) || errors.Is(err, tokenstore.ErrAmbiguousAccount) {
		return &usageError{Err: err}
	}
	if err != nil {
		return fmt.Errorf("reading the stored accounts: %w", err)
	}
	name := session.DisplayText(e.Account.Handle(entries))
	if e.Account.ID == active {
		fmt.Fprintf(o.app.ErrOut, "%s is already the active account on %s.\n", name, apiURL)
		return nil
	}
	if err := store.SetActive(apiURL, e.Account.ID); err != nil {
		return fmt.Errorf("switching accounts: %w", err)
	}
	fmt.Fprintf(o.app.ErrOut, "Switched to %s on %s.\n", name, apiURL)
	return nil
}
