package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// Several accounts per server: `nsauth accounts` lists them, `nsauth
// switch` chooses the active one, and what the other commands say about
// them. The store keys accounts by issuer and subject and names them from
// the ID token (tokenstore.Account); people select one by that name, or by
// its ID where two accounts share a name.

// accountsTimeout bounds the wait for the server's lock.
const accountsTimeout = 10 * time.Second

// checkAccountFlag refuses an --account that selects no stored account,
// or several, as a usage mistake whose message lists the accounts.
func checkAccountFlag(store *tokenstore.Store, c clientOptions) error {
	if c.Account == "" {
		return nil
	}
	_, err := store.LoadAccountMetadata(c.APIURL, c.Account)
	if errors.Is(err, tokenstore.ErrUnknownAccount) || errors.Is(err, tokenstore.ErrAmbiguousAccount) {
		return &usageError{Err: fmt.Errorf("--account: %w", err)}
	}
	return nil
}

// noActiveAccountError says that accounts are stored for apiURL but none
// is active, and how to choose one.
func noActiveAccountError(store *tokenstore.Store, apiURL string) error {
	entries, _, _ := store.Accounts(apiURL)
	handles := make([]string, len(entries))
	for i, e := range entries {
		handles[i] = displayText(e.Account.Handle(entries))
	}
	return fmt.Errorf("no account is active on %s (its accounts: %s); %s, or %s", apiURL, strings.Join(handles, ", "), switchHint(apiURL, "ACCOUNT"), loginHint(apiURL))
}

// switchHint is the command that makes account apiURL's active one.
func switchHint(apiURL, account string) string {
	if strings.ContainsAny(account, " \t'\"$`\\") {
		account = "'" + strings.ReplaceAll(account, "'", `'\''`) + "'"
	}
	if apiURL == DefaultAPIURL {
		return "run nsauth switch " + account
	}
	return "run nsauth switch --api-url " + apiURL + " " + account
}

// completeAccounts completes an account's name (or, where names clash,
// its ID) from the store that c's flags select, for --account and switch.
func completeAccounts(app *App, c *clientOptions) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		opts := *c
		if opts.resolve(app.Getenv) != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		store, err := tokenstore.New(tokenstore.Config{Dir: opts.ConfigDir})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		entries, _, _ := store.Accounts(opts.APIURL)
		handles := make([]string, len(entries))
		for i, e := range entries {
			handles[i] = displayText(e.Account.Handle(entries))
		}
		return handles, cobra.ShellCompDirectiveNoFileComp
	}
}

// savedLogin is what saveLogin did.
type savedLogin struct {
	// accounts are the server's accounts afterwards.
	accounts []*tokenstore.Entry
	// replaced is set when the account was stored already.
	replaced bool
	// previous is the account active before, if another.
	previous *tokenstore.Account
}

// saveLogin stores entry, the tokens of a login, as its account's and
// makes that account active, under the server's lock: a login as another
// user adds an account, a login as a stored one replaces its tokens.
func saveLogin(ctx context.Context, store *tokenstore.Store, entry *tokenstore.Entry) (savedLogin, error) {
	var res savedLogin
	unlock, err := store.Lock(ctx, entry.APIURL)
	if err != nil {
		return res, err
	}
	defer unlock()
	// A store that cannot be listed (a corrupt file, say) is replaced by
	// the login, as it always was; only the message loses detail.
	before, active, _ := store.Accounts(entry.APIURL)
	for _, e := range before {
		switch e.Account.ID {
		case entry.Account.ID:
			res.replaced = true
		case active:
			res.previous = &e.Account
		}
	}
	if err := store.Save(entry); err != nil {
		return res, err
	}
	if err := store.SetActive(entry.APIURL, entry.Account.ID); err != nil {
		return res, err
	}
	res.accounts, _, _ = store.Accounts(entry.APIURL)
	return res, nil
}

// note says what a login did to the server's accounts, when there is more
// than one; "" otherwise.
func (s savedLogin) note(apiURL string) string {
	n := len(s.accounts)
	if n < 2 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s on this server", countAccounts(n))
	if s.previous != nil {
		fmt.Fprintf(&b, "; %s to go back", switchHint(apiURL, displayText(s.previous.Handle(s.accounts))))
	}
	if s.replaced {
		b.WriteString("; this one's tokens were replaced")
	}
	b.WriteString("; nsauth accounts lists them.")
	return b.String()
}

// countAccounts says "1 account" or "n accounts".
func countAccounts(n int) string {
	if n == 1 {
		return "1 account"
	}
	return fmt.Sprintf("%d accounts", n)
}

// accountsOptions holds `nsauth accounts`' flags and dependencies.
type accountsOptions struct {
	app    *App
	client clientOptions
	deps   clientDeps

	Output outputFormat
}

func newAccountsCommand(app *App, runF func(context.Context, *accountsOptions) error) *cobra.Command {
	o := &accountsOptions{app: app, deps: defaultClientDeps(app)}
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
			if err := o.client.resolve(o.app.Getenv); err != nil {
				return err
			}
			return runF(cmd.Context(), o)
		},
	}
	o.client.addFlags(cmd.Flags())
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
	store, err := o.deps.store(o.client.ConfigDir)
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
			Name:      displayText(e.Account.Name),
			ID:        e.Account.ID,
			Subject:   displayText(e.Account.Subject),
			Issuer:    displayText(e.Account.Issuer),
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
		fmt.Fprintf(o.app.ErrOut, "Not logged in to %s; %s.\n", apiURL, loginHint(apiURL))
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
		fmt.Fprintf(o.app.ErrOut, "No account is active; %s.\n", switchHint(apiURL, "ACCOUNT"))
	}
	return nil
}

// sessionSummary says in a few words whether an account's tokens are of use.
func sessionSummary(a accountResult, now time.Time) string {
	switch {
	case a.RefusedAt != nil:
		return "refused by the server " + formatPast(*a.RefusedAt, now)
	case a.ExpiresAt == nil:
		return "logged in"
	case now.Before(*a.ExpiresAt):
		return "access token expires " + formatExpiry(*a.ExpiresAt, now)
	case a.HasRefreshToken:
		return "access token expired; refreshed when used"
	}
	return "expired, no refresh token"
}

// switchOptions holds `nsauth switch`'s flags and dependencies.
type switchOptions struct {
	app    *App
	client clientOptions
	deps   clientDeps
}

func newSwitchCommand(app *App, runF func(context.Context, *switchOptions) error) *cobra.Command {
	o := &switchOptions{app: app, deps: defaultClientDeps(app)}
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
			if err := o.client.resolve(o.app.Getenv); err != nil {
				return err
			}
			o.client.Account = args[0]
			return runF(cmd.Context(), o)
		},
	}
	o.client.addFlags(cmd.Flags())
	complete := completeAccounts(app, &o.client)
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
	store, err := o.deps.store(o.client.ConfigDir)
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
		return fmt.Errorf("not logged in to %s; %s", apiURL, loginHint(apiURL))
	}
	e, err := store.LoadAccountMetadata(apiURL, o.client.Account)
	if errors.Is(err, tokenstore.ErrUnknownAccount) || errors.Is(err, tokenstore.ErrAmbiguousAccount) {
		return &usageError{Err: err}
	}
	if err != nil {
		return fmt.Errorf("reading the stored accounts: %w", err)
	}
	name := displayText(e.Account.Handle(entries))
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
