package e2e_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/oidctest"
)

// login runs GetAuthorizeUrl → authorize → LoginCli and returns the tokens.
func login(t *testing.T, client mgmtv1alpha1connect.AuthServiceClient, p *oidctest.Provider) *mgmtv1alpha1.AccessToken {
	t.Helper()
	code := authorizeCode(t, client, p, "openid offline_access")
	lr, err := client.LoginCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: redirectURI}))
	if err != nil {
		t.Fatal(err)
	}
	return lr.Msg.GetAccessToken()
}

func TestOpaqueTokensThroughIntrospection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode      string
		jwtToo    bool
		wantCalls int // introspection requests for three checks of one opaque token
	}{
		{"introspection", false, 1},
		{"jwt-or-introspection", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			p := oidctest.New(t, oidctest.WithOpaqueAccessTokens())
			env := providerEnv(p)
			env["NSAUTH_TOKEN_MODE"] = tt.mode
			s := startServe(t, env)
			client := newClient(s.URL, protocols[0])
			ctx := context.Background()
			tok := login(t, client, p)
			if strings.Count(tok.GetAccessToken(), ".") == 2 {
				t.Fatalf("the fake issued a JWT; the test needs an opaque token")
			}
			for range 3 {
				ct, err := client.CheckToken(ctx, withBearer(&mgmtv1alpha1.CheckTokenRequest{}, tok.GetAccessToken()))
				if err != nil {
					t.Fatalf("CheckToken with an active opaque token: %v", err)
				}
				if ct.Msg.GetSubject() != p.Subject {
					t.Errorf("subject = %q", ct.Msg.GetSubject())
				}
			}
			if n := p.Count(oidctest.PathIntrospect); n != tt.wantCalls {
				t.Errorf("introspection requests = %d, want %d (results are cached)", n, tt.wantCalls)
			}
			if _, err := client.CheckToken(ctx, withBearer(&mgmtv1alpha1.CheckTokenRequest{}, "opaque-never-issued")); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("inactive token: %v, want Unauthenticated", err)
			}
			// A JWT is verified locally in jwt-or-introspection mode, and is
			// refused (never introspected) in introspection mode, because the
			// fake's introspection knows only opaque tokens.
			_, err := client.CheckToken(ctx, withBearer(&mgmtv1alpha1.CheckTokenRequest{}, p.AccessToken()))
			if tt.jwtToo && err != nil {
				t.Errorf("JWT in %s mode: %v", tt.mode, err)
			}
			if !tt.jwtToo && connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("JWT in %s mode: %v, want Unauthenticated", tt.mode, err)
			}
			p.SetFailure(oidctest.PathIntrospect, oidctest.Status500)
			if _, err := client.CheckToken(ctx, withBearer(&mgmtv1alpha1.CheckTokenRequest{}, "opaque-another-one")); connect.CodeOf(err) != connect.CodeUnavailable {
				t.Errorf("introspection endpoint down: %v, want Unavailable", err)
			}
		})
	}
}

func TestRateLimitAnswersResourceExhausted(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	env := providerEnv(p)
	env["NSAUTH_RATE_LIMIT_PER_MINUTE"] = "3"
	s := startServe(t, env)
	client := newClient(s.URL, protocols[0])
	ctx := context.Background()
	for i := range 3 {
		_, err := client.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: "rt-unknown"}))
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("call %d: %v, want Unauthenticated from the provider", i, err)
		}
	}
	_, err := client.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: "c", RedirectUri: redirectURI}))
	var ce *connect.Error
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("fourth call: %v, want ResourceExhausted", err)
	}
	if !errors.As(err, &ce) || ce.Meta().Get("Retry-After") == "" {
		t.Errorf("no Retry-After hint on %v", err)
	}
	// Over plain HTTP it is a 429 with Retry-After.
	resp, err := http.Post(s.URL+"/mgmt.v1alpha1.AuthService/RefreshCli", "application/json", strings.NewReader(`{"refreshToken":"rt"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("HTTP %d, Retry-After %q, body %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Calls that never reach the provider are not limited.
	if _, err := client.GetAuthStatus(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{})); err != nil {
		t.Errorf("GetAuthStatus limited too: %v", err)
	}
}
