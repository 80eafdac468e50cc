package oidcdiscovery_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

// provider starts a stand-in provider whose document names issuer.
func provider(issuer func() string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q,"token_endpoint":%q}`, issuer(), issuer()+"/keys", issuer()+"/token")
	}))
}

func ExampleDiscover() {
	var srv *httptest.Server
	srv = provider(func() string { return srv.URL })
	defer srv.Close()

	md, err := oidcdiscovery.Discover(context.Background(), srv.URL, oidcdiscovery.Options{
		Require: []string{oidcdiscovery.JWKSURI},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(md.JWKSURI == srv.URL+"/keys")
	// Output: true
}

func ExampleIssuerMismatchError() {
	var srv *httptest.Server
	srv = provider(func() string { return srv.URL })
	defer srv.Close()

	// A trailing slash is another issuer.
	_, err := oidcdiscovery.Discover(context.Background(), srv.URL+"/", oidcdiscovery.Options{})
	var mismatch *oidcdiscovery.IssuerMismatchError
	if errors.As(err, &mismatch) {
		fmt.Println(mismatch.Named == srv.URL)
	}
	// Output: true
}

func ExampleOptions() {
	// The provider is reached at one URL and names itself with another.
	srv := provider(func() string { return "https://auth.example.com" })
	defer srv.Close()

	md, err := oidcdiscovery.Discover(context.Background(), "https://auth.example.com", oidcdiscovery.Options{BaseURL: srv.URL})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(md.TokenEndpoint)
	// Output: https://auth.example.com/token
}

func ExampleURL() {
	fmt.Println(oidcdiscovery.URL("https://auth.example.com/realms/ci"))
	// Output: https://auth.example.com/realms/ci/.well-known/openid-configuration
}

func ExampleCheckEndpointURL() {
	fmt.Println(oidcdiscovery.CheckEndpointURL("https://auth.example.com/oauth/token", "https://auth.example.com"))
	fmt.Println("token_endpoint", oidcdiscovery.CheckEndpointURL("/oauth/token", ""))
	// Output:
	// <nil>
	// token_endpoint "/oauth/token" is not an absolute http(s) URL
}
