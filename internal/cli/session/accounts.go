package session

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/cli/cliapp"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// Several accounts per server: `nsauth accounts` lists them, `nsauth
// switch` chooses the active one, and what the other commands say about
// them. The store keys accounts by issuer and subject and names them from
// the ID token (tokenstore.Account); people select one by that name, or by
// its ID where two accounts share a name.

// CheckAccountFlag refuses an --account that selects no stored account,
// or several, as a usage mistake whose message lists the accounts.
func CheckAccountFlag(store *tokenstore.Store, c Options) error {
	if c.Account == "" {
		return nil
	}
	_, err := store.LoadAccountMetadata(c.APIURL, c.Account)
	if errors.Is(err, tokenstore.ErrUnknownAccount) || errors.Is(err, tokenstore.ErrAmbiguousAccount) {
		return &cliapp.UsageError{Err: fmt.Errorf("--account: %w", err)}
	}
	return nil
}

// NoActiveAccountError says that accounts are stored for apiURL but none
// is active, and how to choose one.
func NoActiveAccountError(store *tokenstore.Store, apiURL string) error {
	entries, _, _ := store.Accounts(apiURL)
	handles := make([]string, len(entries))
	for i, e := range entries {
		handles[i] = DisplayText(e.Account.Handle(entries))
	}
	return fmt.Errorf("no account is active on %s (its accounts: %s); %s, or %s", apiURL, strings.Join(handles, ", "), SwitchHint(apiURL, "ACCOUNT"), LoginHint(apiURL))
}

// SwitchHint is the command that makes account apiURL's active one.
func SwitchHint(apiURL, account string) string {
	if strings.ContainsAny(account, " \t'\"$`\\") {
		account = "'" + strings.ReplaceAll(account, "'", `'\''`) + "'"
	}
	if apiURL == DefaultAPIURL {
		return "run nsauth switch " + account
	}
	return "run nsauth switch --api-url " + apiURL + " " + account
}

// CompleteAccounts completes an account's name (or, where names clash,
// its ID) from the store that c's flags select, for --account and switch.
func CompleteAccounts(app *cliapp.App, c *Options) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		opts := *c
		if opts.Resolve(app.Getenv) != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		store, err := tokenstore.New(tokenstore.Config{Dir: opts.ConfigDir})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		entries, _, _ := store.Accounts(opts.APIURL)
		handles := make([]string, len(entries))
		for i, e := range entries {
			handles[i] = DisplayText(e.Account.Handle(entries))
		}
		return handles, cobra.ShellCompDirectiveNoFileComp
	}
}

// SavedLogin is what SaveLogin did.
type SavedLogin struct {
	// accounts are the server's accounts afterwards.
	accounts []*tokenstore.Entry
	// replaced is set when the account was stored already.
	replaced bool
	// previous is the account active before, if another.
	previous *tokenstore.Account
}

// SaveLogin stores entry, the tokens of a login, as its account's and
// makes that account active, under the server's lock: a login as another
// user adds an account, a login as a stored one replaces its tokens.
func SaveLogin(ctx context.Context, store *tokenstore.Store, entry *tokenstore.Entry) (SavedLogin, error) {
	var res SavedLogin
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
func (s SavedLogin) Note(apiURL string) string {
	n := len(s.accounts)
	if n < 2 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s on this server", CountAccounts(n))
	if s.previous != nil {
		fmt.Fprintf(&b, "; %s to go back", SwitchHint(apiURL, DisplayText(s.previous.Handle(s.accounts))))
	}
	if s.replaced {
		b.WriteString("; this one's tokens were replaced")
	}
	b.WriteString("; nsauth accounts lists them.")
	return b.String()
}

// CountAccounts says "1 account" or "n accounts".
func CountAccounts(n int) string {
	if n == 1 {
		return "1 account"
	}
	return fmt.Sprintf("%d accounts", n)
}
