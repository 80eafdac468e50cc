package e2e_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
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

// wantConnectError checks that err is a Connect error with code and exactly
// message, or, when code is 0, that there is no error.
func wantConnectError(t *testing.T, err error, code connect.Code, message string) {
	t.Helper()
	if code == 0 {
		if err != nil {
			t.Fatalf("err = %v, want success", err)
		}
		return
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want %v %q", err, code, message)
	}
	if ce.Code() != code || ce.Message() != message {
		t.Fatalf("err = %v %q, want %v %q", ce.Code(), ce.Message(), code, message)
	}
}

// TestRequirePKCE: with NSAUTH_REQUIRE_PKCE, an authorize URL without an
// S256 challenge and a login without a verifier are InvalidArgument, and a
// code the provider issued without a challenge is not redeemed, even though
// this provider, like some real ones, would redeem it. Without the setting,
// both are accepted, as Neosync's own CLI needs.
func TestRequirePKCE(t *testing.T) {
	t.Parallel()
	type server struct {
		p      *oidctest.Provider
		client mgmtv1alpha1connect.AuthServiceClient
	}
	start := func(require bool) server {
		p := oidctest.New(t)
		env := providerEnv(p)
		if require {
			env["NSAUTH_REQUIRE_PKCE"] = "true"
		}
		return server{p, newClient(startServe(t, env).URL, protocols[0])}
	}
	servers := map[bool]server{false: start(false), true: start(true)}
	ctx := context.Background()
	str := func(s string) *string { return &s }
	verifier := oauth2.GenerateVerifier()
	challenge := oauth2.S256ChallengeFromVerifier(verifier)
	const (
		challengeRequired = "code_challenge is required: this server requires PKCE (S256)"
		verifierRequired  = "code_verifier is required: this server requires PKCE (S256)"
	)

	t.Run("GetAuthorizeUrl", func(t *testing.T) {
		for _, tc := range []struct {
			name              string
			require           bool
			challenge, method *string
			code              connect.Code // 0: success
			message           string
		}{
			{"not required, no challenge", false, nil, nil, 0, ""},
			{"not required, S256 challenge", false, &challenge, str("S256"), 0, ""},
			{"required, no challenge", true, nil, nil, connect.CodeInvalidArgument, challengeRequired},
			{"required, S256 challenge", true, &challenge, str("S256"), 0, ""},
			{"required, method without challenge", true, nil, str("S256"), connect.CodeInvalidArgument, "code_challenge is required when code_challenge_method is set"},
			{"required, empty challenge", true, str(""), str("S256"), connect.CodeInvalidArgument, "code_challenge is required when code_challenge_method is set"},
			{"required, plain challenge", true, &challenge, str("plain"), connect.CodeInvalidArgument, `code_challenge_method must be "S256"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				resp, err := servers[tc.require].client.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
					State: "st", RedirectUri: redirectURI, Scope: "openid", CodeChallenge: tc.challenge, CodeChallengeMethod: tc.method,
				}))
				wantConnectError(t, err, tc.code, tc.message)
				if err != nil {
					return
				}
				u, err := url.Parse(resp.Msg.GetUrl())
				if err != nil {
					t.Fatal(err)
				}
				want := url.Values{}
				if tc.challenge != nil {
					want = url.Values{"code_challenge": {*tc.challenge}, "code_challenge_method": {"S256"}}
				}
				got := url.Values{}
				for _, k := range []string{"code_challenge", "code_challenge_method"} {
					if v, ok := u.Query()[k]; ok {
						got[k] = v
					}
				}
				if got.Encode() != want.Encode() {
					t.Fatalf("authorize URL carries %v, want %v", got, want)
				}
			})
		}
	})

	// Sequential: each case counts the provider's token endpoint calls.
	t.Run("LoginCli", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			require bool
			// challenged: the code was issued for an S256 challenge of
			// verifier; otherwise for none.
			challenged bool
			verifier   *string
			code       connect.Code // 0: success
			message    string
		}{
			{"not required, code without challenge, no verifier", false, false, nil, 0, ""},
			{"not required, code with challenge, verifier", false, true, &verifier, 0, ""},
			{"required, code without challenge, no verifier", true, false, nil, connect.CodeInvalidArgument, verifierRequired},
			{"required, code with challenge, no verifier", true, true, nil, connect.CodeInvalidArgument, verifierRequired},
			{"required, code with challenge, verifier", true, true, &verifier, 0, ""},
			{"required, malformed verifier", true, true, str("short"), connect.CodeUnauthenticated, "code_verifier must be 43 to 128 characters long"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := servers[tc.require]
				var code string
				if tc.challenged {
					code = s.p.MintCode(redirectURI, "openid", challenge)
				} else {
					// Issued straight by the provider, bypassing
					// GetAuthorizeUrl, as an attacker holding a leaked code
					// would have it.
					code = s.p.MintCode(redirectURI, "openid", "")
				}
				before := s.p.Count(oidctest.PathToken)
				resp, err := s.client.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: redirectURI, CodeVerifier: tc.verifier}))
				wantConnectError(t, err, tc.code, tc.message)
				calls := s.p.Count(oidctest.PathToken) - before
				if err != nil {
					if calls != 0 {
						t.Errorf("the provider's token endpoint was called %d times for a refused login", calls)
					}
					return
				}
				if calls != 1 || resp.Msg.GetAccessToken().GetAccessToken() == "" {
					t.Fatalf("login: %d token endpoint calls, access token present=%v", calls, resp.Msg.GetAccessToken().GetAccessToken() != "")
				}
			})
		}
	})
}
