package e2e_test

import (
	"context"
	"net/url"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/oidctest"
)

// TestParameterInjectionThroughStateAndScope checks that hostile state and
// scope values come out of GetAuthorizeUrl as single, encoded parameters.
func TestParameterInjectionThroughStateAndScope(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	s := startServe(t, providerEnv(p))
	client := newClient(s.URL, protocols[0])
	tests := []struct{ name, state, scope string }{
		{"ampersand in state", "abc&redirect_uri=https://evil.example/&client_id=evil", "openid"},
		{"hash in state", "abc#fragment", "openid"},
		{"encoded ampersand in state", "abc%26scope%3Dadmin", "openid"},
		{"ampersand in scope", "s", "openid&response_type=token"},
		{"equals and question mark in scope", "s", "openid?x=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := client.GetAuthorizeUrl(context.Background(), connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{State: tt.state, RedirectUri: redirectURI, Scope: tt.scope}))
			if err != nil {
				// Refusing is fine too; what must never happen is a URL with
				// injected parameters.
				if connect.CodeOf(err) != connect.CodeInvalidArgument {
					t.Fatalf("err = %v", err)
				}
				return
			}
			u, err := url.Parse(resp.Msg.GetUrl())
			if err != nil {
				t.Fatal(err)
			}
			if u.Fragment != "" {
				t.Errorf("URL has a fragment: %s", resp.Msg.GetUrl())
			}
			q := u.Query()
			for _, name := range []string{"state", "scope", "redirect_uri", "client_id", "response_type"} {
				if len(q[name]) != 1 {
					t.Errorf("%s appears %d times", name, len(q[name]))
				}
			}
			if q.Get("state") != tt.state || q.Get("scope") != tt.scope || q.Get("redirect_uri") != redirectURI || q.Get("client_id") != p.ClientID || q.Get("response_type") != "code" {
				t.Errorf("parameters altered: %v", q)
			}
		})
	}
}

// TestPKCEVerifierRefusals: once a challenge was sent, a wrong or missing
// verifier is Unauthenticated (the provider refuses the code).
func TestPKCEVerifierRefusals(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	s := startServe(t, providerEnv(p))
	client := newClient(s.URL, protocols[2])
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
	other := oauth2.GenerateVerifier()
	tests := []struct {
		name     string
		verifier *string
	}{
		{"wrong verifier", &other},
		{"missing verifier", nil},
		{"the challenge sent as verifier", &challenge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			authz, err := client.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{State: "st", RedirectUri: redirectURI, Scope: "openid", CodeChallenge: &challenge, CodeChallengeMethod: &method}))
			if err != nil {
				t.Fatal(err)
			}
			code := p.Authorize(t, authz.Msg.GetUrl()).Get("code")
			_, err = client.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: redirectURI, CodeVerifier: tt.verifier}))
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("LoginCli = %v, want Unauthenticated", err)
			}
		})
	}
}

// TestScopeAllowlist: with NSAUTH_ALLOWED_SCOPES set, other scopes are
// InvalidArgument before the provider is involved.
func TestScopeAllowlist(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	env := providerEnv(p)
	env["NSAUTH_ALLOWED_SCOPES"] = "openid profile email offline_access"
	s := startServe(t, env)
	client := newClient(s.URL, protocols[0])
	ctx := context.Background()
	if _, err := client.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{State: "s", RedirectUri: redirectURI, Scope: "openid offline_access"})); err != nil {
		t.Fatalf("allowed scopes refused: %v", err)
	}
	for _, scope := range []string{"admin", "openid admin", "openid\tprofile", "OPENID"} {
		t.Run(scope, func(t *testing.T) {
			_, err := client.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{State: "s", RedirectUri: redirectURI, Scope: scope}))
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("scope %q: %v, want InvalidArgument", scope, err)
			}
		})
	}
}
