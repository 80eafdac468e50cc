package authn_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nsauth/nsauth/pkg/authn"
)

// NewProvider needs only the issuer URL: the keys' location and the
// signature algorithms come from the provider's discovery document. The
// Verifier's Config is policy: which tokens of that provider to accept.
func ExampleNewProvider() {
	provider := startExampleProvider()
	defer provider.Close()

	p, err := authn.NewProvider(context.Background(), provider.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	verifier, err := p.Verifier(authn.Config{Audiences: []string{"my-api"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	claims, err := verifier.Verify(context.Background(), provider.issue("alice", nil))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.Subject, claims.Audience)

	// A provider is named by its issuer exactly: with a trailing slash it
	// is another issuer, and discovery says so.
	_, err = authn.NewProvider(context.Background(), provider.URL+"/")
	fmt.Println(err != nil && strings.Contains(err.Error(), "names the issuer"))
	// Output:
	// alice [my-api]
	// true
}

// One Provider serves several Verifiers, each with its own policy, over
// one key set.
func ExampleProvider_Verifier() {
	provider := startExampleProvider()
	defer provider.Close()
	p, err := authn.NewProvider(context.Background(), provider.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	token := provider.issue("alice", nil)
	for _, audience := range []string{"my-api", "another-api"} {
		verifier, err := p.Verifier(authn.Config{Audiences: []string{audience}})
		if err != nil {
			fmt.Println(err)
			return
		}
		_, err = verifier.Verify(context.Background(), token)
		fmt.Println(audience, err == nil, errors.Is(err, authn.ErrInvalidToken))
	}
	// Output:
	// my-api true false
	// another-api false true
}

// Metadata is the discovery document NewProvider read, for the endpoints
// a service needs besides the keys.
func ExampleProvider_Metadata() {
	provider := startExampleProvider()
	defer provider.Close()
	p, err := authn.NewProvider(context.Background(), provider.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	md, _ := p.Metadata()
	fmt.Println(strings.TrimPrefix(md.IntrospectionEndpoint, provider.URL), md.IDTokenSigningAlgValuesSupported)
	// Output: /introspect [ES256]
}

// NewProviderWithKeys is for keys whose location is known without
// discovery.
func ExampleNewProviderWithKeys() {
	provider := startExampleProvider()
	defer provider.Close()

	keys, err := authn.NewRemoteKeySet(authn.RemoteKeySetConfig{URL: authn.StaticURL(provider.URL + "/jwks")})
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := authn.NewProviderWithKeys(provider.URL, keys)
	if err != nil {
		fmt.Println(err)
		return
	}
	verifier, err := p.Verifier(authn.Config{Audiences: []string{"my-api"}, Algorithms: []string{"ES256"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	claims, err := verifier.Verify(context.Background(), provider.issue("alice", nil))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.Subject)
	// Output: alice
}

// The interceptor is configured as the verifier is, with a struct. With a
// logger, a service that refuses every token it sees says why at warning
// level (once a minute per reason; never the token).
func ExampleNewInterceptorFromConfig() {
	provider := startExampleProvider()
	defer provider.Close()
	p, err := authn.NewProvider(context.Background(), provider.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	// The audience is wrong: every token will be refused.
	verifier, err := p.Verifier(authn.Config{Audiences: []string{"not-my-api"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == slog.MessageKey || a.Key == "procedure" {
				return slog.Attr{} // keep the example's output stable and short
			}
			return a
		},
	}))
	interceptor := authn.NewInterceptorFromConfig(verifier, authn.InterceptorConfig{
		PublicProcedures: []string{"/greet.v1.GreetService/Ping"},
		Logger:           logger,
	})

	const procedure = "/greet.v1.GreetService/Greet"
	greet := func(ctx context.Context, _ *connect.Request[wrapperspb.StringValue]) (*connect.Response[wrapperspb.StringValue], error) {
		claims, _ := authn.ClaimsFromContext(ctx)
		return connect.NewResponse(wrapperspb.String("hello, " + claims.Subject)), nil
	}
	mux := http.NewServeMux()
	mux.Handle(procedure, connect.NewUnaryHandler(procedure, greet, connect.WithInterceptors(interceptor)))
	server := httptest.NewServer(mux)
	defer server.Close()

	client := connect.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](server.Client(), server.URL+procedure)
	for range 2 {
		req := connect.NewRequest(wrapperspb.String(""))
		req.Header().Set("Authorization", "Bearer "+provider.issue("alice", nil))
		_, err = client.CallUnary(context.Background(), req)
		fmt.Println(err)
	}
	// Output:
	// level=WARN check=audience reason="invalid token: audience [\"my-api\"] is not accepted"
	// unauthenticated: missing or invalid access token
	// unauthenticated: missing or invalid access token
}
