package authn_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nsauth/nsauth/pkg/authn"
)

// Require guards one procedure with a scope and a group: a caller whose
// valid token lacks either is refused with PermissionDenied naming what
// is missing. Other procedures need only a valid token.
func ExampleRequire() {
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
	const procedure = "/acme.reports.v1.ReportService/Delete"
	interceptor := authn.NewInterceptorFromConfig(verifier, authn.InterceptorConfig{},
		authn.Require(procedure, authn.Scope("reports:write"), authn.Group("reports-admins")))

	del := func(ctx context.Context, _ *connect.Request[wrapperspb.StringValue]) (*connect.Response[wrapperspb.StringValue], error) {
		claims, _ := authn.ClaimsFromContext(ctx)
		return connect.NewResponse(wrapperspb.String("deleted by " + claims.Subject)), nil
	}
	mux := http.NewServeMux()
	mux.Handle(procedure, connect.NewUnaryHandler(procedure, del, connect.WithInterceptors(interceptor)))
	server := httptest.NewServer(mux)
	defer server.Close()
	client := connect.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](server.Client(), server.URL+procedure)

	for _, token := range []string{
		provider.issue("bob", map[string]any{"scope": "reports:write", "groups": []string{"staff"}}),
		provider.issue("carol", map[string]any{"scope": "reports:read", "groups": []string{"staff"}}),
		provider.issue("alice", map[string]any{"scope": "reports:write", "groups": []string{"staff", "reports-admins"}}),
	} {
		req := connect.NewRequest(wrapperspb.String(""))
		req.Header().Set("Authorization", "Bearer "+token)
		resp, err := client.CallUnary(context.Background(), req)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(resp.Msg.GetValue())
	}
	// Output:
	// permission_denied: this call needs group "reports-admins", which the access token does not carry
	// permission_denied: this call needs scope "reports:write" and group "reports-admins", which the access token does not carry
	// deleted by alice
}

// Claims.Groups reads the token's `groups` claim; nsauth's built-in
// provider sets it when the app was granted the `groups` scope.
func ExampleClaims_Groups() {
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
	claims, err := verifier.Verify(context.Background(),
		provider.issue("alice", map[string]any{"groups": []string{"admin", "github:acme/ops"}}))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.Groups())
	// Output: [admin github:acme/ops]
}
