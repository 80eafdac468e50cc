package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/cli/session"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// statusTimeout bounds status's one call to the server.
const statusTimeout = 10 * time.Second

// statusOptions holds `nsauth status`'s flags and dependencies.
type statusOptions struct {
	app    *App
	client session.Options
	deps   session.Deps

	Output outputFormat
}

func newStatusCommand(app *App, runF func(context.Context, *statusOptions) error) *cobra.Command {
	o := &statusOptions{app: app, deps: session.NewDeps(app)}
	if runF == nil {
		runF = runStatus
	}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the API URL, whether it has authentication enabled, and whether you are logged in",
		Long: `Show the API URL, whether the server is reachable and has authentication
enabled (GetAuthStatus), whether tokens are stored for it, the active account
and how many are stored, and when the access token expires. Nothing is
refreshed.

A session the server refused (found out by whoami or a refresh) shows as
not logged in, with when it was refused.

The exit status is 1 when the server cannot be reached or does not answer
as an nsauth or Neosync API server, or the stored tokens cannot be read;
not being logged in is not an error.`,
		Example: `  nsauth status
  nsauth status --api-url https://neosync.example.com --output json`,
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

// statusResult is status's JSON output.
type statusResult struct {
	APIURL      string `json:"api_url"`
	Reachable   bool   `json:"reachable"`
	ServerError string `json:"server_error,omitempty"`
	AuthEnabled *bool  `json:"auth_enabled,omitempty"`
	LoggedIn    bool   `json:"logged_in"`
	// Account and AccountID are the active account's; Accounts counts the
	// server's stored accounts.
	Account   string `json:"account,omitempty"`
	AccountID string `json:"account_id,omitempty"`
	Accounts  int    `json:"accounts"`
	// NoActiveAccount is set when accounts are stored and none is active.
	NoActiveAccount bool       `json:"no_active_account,omitempty"`
	StoreError      string     `json:"store_error,omitempty"`
	Storage         string     `json:"storage,omitempty"`
	TokenFile       string     `json:"token_file,omitempty"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	Expired         bool       `json:"expired"`
	HasRefreshToken bool       `json:"has_refresh_token"`
	// RefusedAt is when the server refused the stored session.
	RefusedAt *time.Time `json:"refused_at,omitempty"`
}

func runStatus(ctx context.Context, o *statusOptions) error {
	res := statusResult{APIURL: o.client.APIURL}
	store, err := o.deps.Store(o.client.ConfigDir)
	if err != nil {
		return err
	}
	// Counting is best effort: a store that cannot be listed shows in
	// LoadMetadata's error, or (a keyring to read) not at all.
	entries, _, _ := store.Accounts(o.client.APIURL)
	res.Accounts = len(entries)
	e, err := store.LoadMetadata(o.client.APIURL)
	switch {
	case errors.Is(err, tokenstore.ErrNoActiveAccount):
		res.NoActiveAccount = true
	case errors.Is(err, tokenstore.ErrNotFound):
	case err != nil:
		res.StoreError = err.Error()
	default:
		res.LoggedIn = e.AccessToken != "" || e.RefreshToken != "" || e.Storage == tokenstore.StorageKeyring
		res.Storage = string(e.Storage)
		res.TokenFile = store.Path(o.client.APIURL)
		res.Account, res.AccountID = session.DisplayText(e.Account.Name), e.Account.ID
		if res.Accounts == 0 {
			res.Accounts = 1
		}
		if !e.Expiry.IsZero() {
			exp := e.Expiry.UTC()
			res.ExpiresAt = &exp
			res.Expired = !o.deps.Now().Before(e.Expiry)
		}
		// A keyring entry's file does not say; assume what login stored.
		res.HasRefreshToken = e.RefreshToken != "" || e.Storage == tokenstore.StorageKeyring
		if res.Expired && !res.HasRefreshToken {
			res.LoggedIn = false
		}
		if e.Refused() {
			at := e.RefusedAt.UTC()
			res.RefusedAt = &at
			res.LoggedIn, res.HasRefreshToken = false, false
		}
	}

	callCtx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	resp, err := o.deps.AuthClient(o.client.APIURL).GetAuthStatus(callCtx, connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{}))
	if err != nil {
		res.ServerError = o.deps.DescribeError(o.client.APIURL, err)
		// Something answered, but not an API server.
		res.Reachable = o.deps.Exchanges.Diagnosis(o.client.APIURL) != ""
	} else {
		res.Reachable = true
		enabled := resp.Msg.GetIsEnabled()
		res.AuthEnabled = &enabled
	}

	if err := o.print(res); err != nil {
		return err
	}
	switch {
	case res.StoreError != "":
		return errors.New("the stored tokens cannot be read (see above)")
	case res.ServerError != "":
		return fmt.Errorf("cannot get the server's status: %s", res.ServerError)
	}
	return nil
}

func (o *statusOptions) print(res statusResult) error {
	if o.Output == outputJSON {
		enc := json.NewEncoder(o.app.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	w := tabwriter.NewWriter(o.app.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "API URL:\t%s\n", res.APIURL)
	switch {
	case res.ServerError != "" && res.Reachable:
		fmt.Fprintf(w, "Server:\treached, but %s\n", res.ServerError)
	case !res.Reachable:
		fmt.Fprintf(w, "Server:\tnot reachable: %s\n", res.ServerError)
	case *res.AuthEnabled:
		fmt.Fprintf(w, "Server:\treachable, authentication enabled\n")
	default:
		fmt.Fprintf(w, "Server:\treachable, authentication disabled\n")
	}
	switch {
	case res.StoreError != "":
		fmt.Fprintf(w, "Logged in:\tunknown: %s\n", res.StoreError)
	case res.NoActiveAccount:
		fmt.Fprintf(w, "Logged in:\tno active account (%s on this server; %s)\n", session.CountAccounts(res.Accounts), session.SwitchHint(res.APIURL, "ACCOUNT"))
	case res.RefusedAt != nil:
		fmt.Fprintf(w, "Logged in:\tno (the server refused the session at %s; %s)\n", session.FormatPast(*res.RefusedAt, o.deps.Now()), session.LoginHint(res.APIURL))
	case res.LoggedIn:
		fmt.Fprintf(w, "Logged in:\tyes (tokens in %s)\n", storageDescription(res))
	case res.TokenFile != "":
		fmt.Fprintf(w, "Logged in:\tno (the access token has expired and there is no refresh token)\n")
	default:
		fmt.Fprintf(w, "Logged in:\tno\n")
	}
	switch {
	case res.Account != "" && res.Accounts > 1:
		fmt.Fprintf(w, "Account:\t%s (active; %s on this server, nsauth accounts lists them)\n", res.Account, session.CountAccounts(res.Accounts))
	case res.Account != "":
		fmt.Fprintf(w, "Account:\t%s\n", res.Account)
	}
	if res.ExpiresAt != nil {
		verb := "expires"
		if res.Expired {
			verb = "expired"
		}
		fmt.Fprintf(w, "Access token:\t%s %s\n", verb, session.FormatExpiry(*res.ExpiresAt, o.deps.Now()))
	}
	if res.TokenFile != "" {
		refresh := "no"
		if res.HasRefreshToken {
			refresh = "yes"
		}
		fmt.Fprintf(w, "Refresh token:\t%s\n", refresh)
	}
	return w.Flush()
}

func storageDescription(res statusResult) string {
	if res.Storage == string(tokenstore.StorageKeyring) {
		return "the OS keyring; metadata in " + res.TokenFile
	}
	return res.TokenFile
}
