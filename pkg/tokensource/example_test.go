package tokensource_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/pkg/tokensource"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// Example calls a protected API with the login `nsauth login` stored. The
// stored access token has expired here, so the first request refreshes it.
func Example() {
	apiURL, configDir, cleanup, err := exampleLogin()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cleanup()

	// ConfigDir is set only because the example has its own; programs
	// leave it empty to share the user's `nsauth login`.
	ts, err := tokensource.New(tokensource.Config{APIURL: apiURL, ConfigDir: configDir})
	if err != nil {
		fmt.Println(err)
		return
	}
	client := oauth2.NewClient(context.Background(), ts)
	resp, err := client.Get(apiURL + "/hello")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.Status, string(body))
	// Output: 200 OK hello, user-123
}

// When nothing is stored for the API URL (or the stored login can no
// longer be refreshed), the error wraps ErrLoginRequired: only the user can
// fix it, by logging in again.
func ExampleTokenSource_TokenContext() {
	configDir, err := os.MkdirTemp("", "nsauth-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(configDir)

	ts, err := tokensource.New(tokensource.Config{APIURL: "http://localhost:8080/", ConfigDir: configDir})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = ts.TokenContext(context.Background())
	if errors.Is(err, tokensource.ErrLoginRequired) {
		fmt.Println("please run: nsauth login --api-url", ts.APIURL())
	}
	// Output: please run: nsauth login --api-url http://localhost:8080
}

// A program that acts for one of the users logged in to a server names the
// account, as `nsauth accounts` shows it; without Config.Account it gets
// the active one. An account that is not logged in is ErrLoginRequired, and
// tokenstore.ErrUnknownAccount says why.
func ExampleConfig_account() {
	apiURL, configDir, cleanup, err := exampleLogin()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cleanup()

	for _, account := range []string{"", "bob@example.com"} {
		ts, err := tokensource.New(tokensource.Config{APIURL: apiURL, ConfigDir: configDir, Account: account})
		if err != nil {
			fmt.Println(err)
			return
		}
		_, err = ts.Token()
		switch {
		case errors.Is(err, tokenstore.ErrUnknownAccount):
			fmt.Printf("%s: not logged in (login required: %v)\n", account, errors.Is(err, tokensource.ErrLoginRequired))
		case err != nil:
			fmt.Println(err)
		default:
			fmt.Printf("the active account: %s\n", ts.Account().Name)
		}
	}
	// Output:
	// the active account: user-123
	// bob@example.com: not logged in (login required: true)
}

// exampleLogin starts a fake API server and stores an expired login for
// it through pkg/tokenstore, as `nsauth login` would have left it an hour
// ago.
func exampleLogin() (apiURL, configDir string, cleanup func(), err error) {
	f, srv := startFakeAuth()
	at, rt := f.issue()
	fail := func(err error) (string, string, func(), error) {
		srv.Close()
		if configDir != "" {
			_ = os.RemoveAll(configDir)
		}
		return "", "", nil, err
	}
	if configDir, err = os.MkdirTemp("", "nsauth-example"); err != nil {
		return fail(err)
	}
	if apiURL, err = tokenstore.NormalizeAPIURL(srv.URL); err != nil {
		return fail(err)
	}
	store, err := tokenstore.New(tokenstore.Config{Dir: configDir})
	if err != nil {
		return fail(err)
	}
	account := tokenstore.Account{ID: tokenstore.AccountID(apiURL, "user-123"), Name: "user-123", Subject: "user-123", Issuer: apiURL}
	err = store.Save(&tokenstore.Entry{APIURL: apiURL, AccessToken: at, RefreshToken: rt, Expiry: time.Now().Add(-time.Hour), Account: account})
	if err != nil {
		return fail(err)
	}
	return apiURL, configDir, func() {
		srv.Close()
		_ = os.RemoveAll(configDir)
	}, nil
}
