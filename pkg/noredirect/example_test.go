package noredirect_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/nsauth/nsauth/pkg/noredirect"
)

func ExampleNewClient() {
	moved := httptest.NewServer(http.RedirectHandler("https://elsewhere.example/jwks", http.StatusPermanentRedirect))
	defer moved.Close()

	c := noredirect.NewClient(nil, 10*time.Second)
	resp, err := c.Get(moved.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Location"))
	// Output: 308 https://elsewhere.example/jwks
}

func ExampleCheckRedirect() {
	// A client built elsewhere (with a proxy, a custom TLS setup) keeps
	// its transport and stops following redirects.
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: noredirect.CheckRedirect}
	fmt.Println(c.CheckRedirect(nil, nil) == http.ErrUseLastResponse)
	// Output: true
}
