package tokensource_test

import (
	"context"
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
	apiURL, configDir, cleanup := exampleLogin()
	defer cleanup()

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
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body))
	// Output: 200 OK hello, user-123
}

// exampleLogin starts a fake API server and stores an expired login for
// it, as `nsauth login` would have left it an hour ago.
func exampleLogin() (apiURL, configDir string, cleanup func()) {
	f, srv := startFakeAuth()
	at, rt := f.issue()
	configDir, _ = os.MkdirTemp("", "nsauth-example")
	store, _ := tokenstore.New(tokenstore.Config{Dir: configDir})
	_ = store.Save(&tokenstore.Entry{APIURL: srv.URL, AccessToken: at, RefreshToken: rt, Expiry: time.Now().Add(-time.Hour)})
	return srv.URL, configDir, func() {
		srv.Close()
		_ = os.RemoveAll(configDir)
	}
}
