package tokensource_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/tokensource"
	"golang.org/x/oauth2"
)

// A service calls a protected API as itself, with a machine client's
// credentials. The source finds the provider's token endpoint from its
// issuer URL, and reuses each token until it is a minute from expiry.
func ExampleNewClientCredentials() {
	provider, stop := oidctest.Start()
	defer stop()
	provider.AddMachineClient("reports-service", "s3cr3t")
	// A real service reads its secret from the environment or a file
	// (os.Getenv("REPORTS_CLIENT_SECRET")), never from its command line.
	secret := "s3cr3t"

	ts, err := tokensource.NewClientCredentials(tokensource.ClientCredentialsConfig{
		Issuer:       provider.Issuer,
		ClientID:     "reports-service",
		ClientSecret: secret,
		Scopes:       []string{"reports:read"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// &http.Client{Transport: &oauth2.Transport{Source: ts}} sends the
	// token on every request; here, the token itself.
	for range 3 {
		tok, err := ts.TokenContext(context.Background())
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(tok.Type(), tok.Extra("scope"))
	}
	fmt.Println("token requests:", provider.GrantCount("client_credentials"))
	// Output:
	// Bearer reports:read
	// Bearer reports:read
	// Bearer reports:read
	// token requests: 1
}

// A wrong client secret is the provider's invalid_client.
func ExampleTokenEndpointError() {
	provider, stop := oidctest.Start()
	defer stop()
	provider.AddMachineClient("reports-service", "s3cr3t")

	ts, err := tokensource.NewClientCredentials(tokensource.ClientCredentialsConfig{
		Issuer: provider.Issuer, ClientID: "reports-service", ClientSecret: "not-the-secret",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = ts.Token()
	var te *tokensource.TokenEndpointError
	if errors.As(err, &te) && te.ErrorCode == "invalid_client" {
		fmt.Println("the client ID or secret is wrong")
	}
	// Output: the client ID or secret is wrong
}

// A CI job exchanges the ID token its CI system gives it for an access
// token, without any stored secret. The file is read again for every
// exchange: CI systems renew the token there.
func ExampleNewTokenExchange() {
	provider, stop := oidctest.Start()
	defer stop()
	dir, err := os.MkdirTemp("", "nsauth-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	// The CI system writes the job's ID token, which the provider trusts
	// for the machine client "deployer".
	path := filepath.Join(dir, "id-token")
	if err := os.WriteFile(path, []byte(provider.MintSubjectToken("deployer", 5*time.Minute)), 0o600); err != nil {
		fmt.Println(err)
		return
	}

	ts, err := tokensource.NewTokenExchange(tokensource.TokenExchangeConfig{
		Issuer:       provider.Issuer,
		SubjectToken: tokensource.SubjectTokenFile(path),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	tok, err := ts.Token()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tok.Type(), tok.Expiry.After(time.Now()))
	// Output: Bearer true
}

// Discover finds the token endpoint from an issuer URL, which must be
// spelled exactly as the provider's document spells it.
func ExampleDiscover() {
	provider, stop := oidctest.Start()
	defer stop()

	md, err := tokensource.Discover(context.Background(), provider.Issuer, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(md.TokenURL == provider.Issuer+"/token")

	_, err = tokensource.Discover(context.Background(), provider.Issuer+"/", nil)
	var mismatch *tokensource.IssuerMismatchError
	fmt.Println(errors.As(err, &mismatch))
	// Output:
	// true
	// true
}

// AuthStyle reads a discovery document's
// token_endpoint_auth_methods_supported: the secret goes in the
// Authorization header unless the provider takes it only in the form.
func ExampleAuthStyle() {
	for _, methods := range [][]string{nil, {"client_secret_post"}, {"client_secret_basic", "client_secret_post"}} {
		fmt.Println(methods, tokensource.AuthStyle(methods) == oauth2.AuthStyleInParams)
	}
	// Output:
	// [] false
	// [client_secret_post] true
	// [client_secret_basic client_secret_post] false
}
