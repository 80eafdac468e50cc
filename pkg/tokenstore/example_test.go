package tokenstore_test

import (
	"fmt"
	"os"

	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// Two people logged in to one server: each login is an account, named from
// its ID token, and one of them is active.
func ExampleStore_Accounts() {
	dir, err := os.MkdirTemp("", "nsauth-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	store, err := tokenstore.New(tokenstore.Config{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	const apiURL = "https://neosync.example.com"
	for _, email := range []string{"alice@example.com", "bob@example.com"} {
		// As `nsauth login` stores a login (see FromAccessToken).
		idToken := unsignedJWT(map[string]any{"iss": "https://idp.example.com", "sub": "id-" + email, "email": email})
		e := &tokenstore.Entry{APIURL: apiURL, AccessToken: "…", IDToken: idToken, Account: tokenstore.AccountFromTokens(idToken, "")}
		if err := store.Save(e); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := store.SetActive(apiURL, "bob@example.com"); err != nil {
		fmt.Println(err)
		return
	}
	entries, active, err := store.Accounts(apiURL)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range entries {
		fmt.Println(e.Account.Name, e.Account.ID == active)
	}
	// Output:
	// alice@example.com false
	// bob@example.com true
}

// Load, without an account, reads the active account's entry; LoadAccount
// reads another's by name or ID.
func ExampleStore_LoadAccount() {
	dir, err := os.MkdirTemp("", "nsauth-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	store, err := tokenstore.New(tokenstore.Config{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	const apiURL = "https://neosync.example.com"
	for _, email := range []string{"alice@example.com", "bob@example.com"} {
		idToken := unsignedJWT(map[string]any{"iss": "https://idp.example.com", "sub": "id-" + email, "email": email})
		e := &tokenstore.Entry{APIURL: apiURL, AccessToken: "token-of-" + email, IDToken: idToken, Account: tokenstore.AccountFromTokens(idToken, "")}
		if err := store.Save(e); err != nil {
			fmt.Println(err)
			return
		}
	}
	active, err := store.Load(apiURL) // the first account saved is active
	if err != nil {
		fmt.Println(err)
		return
	}
	bob, err := store.LoadAccount(apiURL, "bob@example.com")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(active.AccessToken)
	fmt.Println(bob.AccessToken)
	// Output:
	// token-of-alice@example.com
	// token-of-bob@example.com
}
