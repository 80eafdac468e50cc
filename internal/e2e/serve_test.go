package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/pkg/authn"
)

const redirectURI = "http://127.0.0.1:4242/api/auth/callback"

func TestServeWithAuthDisabled(t *testing.T) {
	t.Parallel()
	s := startServe(t, map[string]string{"AUTH_ENABLED": "false"})

	// docs/getting-started.md's curl: Connect JSON, empty object in, proto3 JSON out.
	resp, err := http.Post(s.URL+mgmtv1alpha1connect.AuthServiceGetAuthStatusProcedure, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || (string(body) != "{}" && string(body) != `{"isEnabled":false}`) {
		t.Fatalf("GetAuthStatus = %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(s.Logs.String(), "authentication is DISABLED") {
		t.Errorf("start-up logs do not say auth is disabled:\n%s", s.Logs.String())
	}

	if got := healthStatus(t, s.URL); got != grpchealth.StatusServing {
		t.Errorf("health = %s, want SERVING", got)
	}
	reflectClient := grpcreflect.NewClient(h2cClient(), s.URL, connect.WithGRPC())
	stream := reflectClient.NewStream(context.Background())
	services, err := stream.ListServices()
	if err != nil {
		t.Fatalf("reflection ListServices: %v", err)
	}
	_, _ = stream.Close()
	var names []string
	for _, n := range services {
		names = append(names, string(n))
	}
	if got := strings.Join(names, ","); !strings.Contains(got, "mgmt.v1alpha1.AuthService") || !strings.Contains(got, "grpc.health.v1.Health") {
		t.Errorf("reflection lists %s", got)
	}

	client := newClient(s.URL, protocols[2])
	_, err = client.GetAuthorizeUrl(context.Background(), connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{State: "s", RedirectUri: redirectURI, Scope: "openid"}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("GetAuthorizeUrl with auth disabled: %v, want FailedPrecondition", err)
	}
	if code := s.Stop(t); code != 0 {
		t.Errorf("exit code after SIGTERM-like stop = %d", code)
	}
}

func TestServeRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	secret := "s3cr3t-value-that-must-not-leak"
	base := map[string]string{"AUTH_AUDIENCE": "api", "AUTH_CLI_CLIENT_ID": "cli", "AUTH_BASEURL": "https://auth.example.test"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		names string
	}{
		{"base URL not a URL", with("AUTH_ENABLED", "true", "AUTH_BASEURL", "not-a-url"), nil, "AUTH_BASEURL"},
		{"unknown token mode", with("NSAUTH_TOKEN_MODE", "opaque"), nil, "NSAUTH_TOKEN_MODE"},
		{"introspection URL not a URL", with("NSAUTH_INTROSPECTION_URL", "introspect"), nil, "NSAUTH_INTROSPECTION_URL"},
		{"negative rate limit", with("NSAUTH_RATE_LIMIT_PER_MINUTE", "-1"), nil, "NSAUTH_RATE_LIMIT_PER_MINUTE"},
		{"pprof not a bool", with("NSAUTH_PPROF", "yes please"), nil, "NSAUTH_PPROF"},
		{"zero login attempts", map[string]string{"NSAUTH_LOGIN_ATTEMPTS_PER_MINUTE": "0"}, nil, "NSAUTH_LOGIN_ATTEMPTS_PER_MINUTE"},
		{"malformed client secrets", with("AUTH_CLIENTID_SECRET", `{"cli": "`+secret), nil, "AUTH_CLIENTID_SECRET"},
		{"client secrets not an object", with("AUTH_CLIENTID_SECRET", `["`+secret+`"]`), nil, "AUTH_CLIENTID_SECRET"},
		{"missing audience", with("AUTH_AUDIENCE", ""), nil, "AUTH_AUDIENCE"},
		{"missing client id", with("AUTH_CLI_CLIENT_ID", ""), nil, "AUTH_CLI_CLIENT_ID"},
		{"HMAC algorithm", with("AUTH_SIGNATURE_ALGORITHM", "HS256"), nil, "AUTH_SIGNATURE_ALGORITHM"},
		{"none algorithm", with("AUTH_SIGNATURE_ALGORITHM", "none"), nil, "AUTH_SIGNATURE_ALGORITHM"},
		{"enabled not a bool", with("AUTH_ENABLED", "maybe"), nil, "AUTH_ENABLED"},
		{"port not a number", map[string]string{"PORT": "eighty"}, nil, "PORT"},
		{"listen flag malformed", nil, []string{"--listen", "nowhere"}, "--listen"},
		{"built-in provider on all interfaces without an issuer", map[string]string{"HOST": "0.0.0.0"}, nil, `NSAUTH_ISSUER (--issuer): is required when listening on "0.0.0.0:8080"`},
		{"log format", nil, []string{"--log-format", "xml"}, "--log-format"},
		{"tls cert without key", nil, []string{"--tls-cert", "x.pem"}, "--tls-cert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stderr := runServe(t, tt.env, tt.args...)
			if code == 0 {
				t.Fatalf("serve exited 0; stderr:\n%s", stderr)
			}
			if !strings.Contains(stderr, tt.names) {
				t.Errorf("stderr does not name %s:\n%s", tt.names, stderr)
			}
			assertClean(t, "stderr", stderr, secret)
		})
	}
}

func TestServeRefusesIssuerMismatch(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	p.SetDiscoveredIssuer("https://impostor.example.test")
	code, stderr := runServe(t, providerEnv(p), "--listen", "127.0.0.1:0")
	if code == 0 {
		t.Fatal("serve started although the discovered issuer differs")
	}
	if !strings.Contains(stderr, "AUTH_EXPECTED_ISS") || !strings.Contains(stderr, "impostor") {
		t.Errorf("stderr does not explain the mismatch:\n%s", stderr)
	}
}

// TestLoginFlow runs the whole CLI flow over every protocol, with the
// original fields only and with PKCE.
func TestLoginFlow(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	s := startServe(t, providerEnv(p))
	for _, proto := range protocols {
		for _, pkce := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/pkce=%v", proto.name, pkce), func(t *testing.T) {
				t.Parallel()
				client := newClient(s.URL, proto)
				ctx := context.Background()
				state := oauth2.GenerateVerifier()
				req := &mgmtv1alpha1.GetAuthorizeUrlRequest{State: state, RedirectUri: redirectURI, Scope: "openid profile offline_access"}
				verifier := oauth2.GenerateVerifier()
				if pkce {
					challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
					req.CodeChallenge, req.CodeChallengeMethod = &challenge, &method
				}
				authz, err := client.GetAuthorizeUrl(ctx, connect.NewRequest(req))
				if err != nil {
					t.Fatalf("GetAuthorizeUrl: %v", err)
				}
				cb := p.Authorize(t, authz.Msg.GetUrl())
				if cb.Get("state") != state || cb.Get("code") == "" {
					t.Fatalf("callback = %v", cb)
				}
				login := &mgmtv1alpha1.LoginCliRequest{Code: cb.Get("code"), RedirectUri: redirectURI}
				if pkce {
					login.CodeVerifier = &verifier
				}
				lr, err := client.LoginCli(ctx, connect.NewRequest(login))
				if err != nil {
					t.Fatalf("LoginCli: %v", err)
				}
				at := lr.Msg.GetAccessToken()
				if at.GetAccessToken() == "" || at.RefreshToken == nil || at.IdToken == nil || at.GetTokenType() != "Bearer" || at.GetExpiresIn() <= 0 || at.GetScope() == "" {
					t.Fatalf("LoginCli token incomplete: expires_in=%d scope=%q type=%q refresh=%v id=%v", at.GetExpiresIn(), at.GetScope(), at.GetTokenType(), at.RefreshToken != nil, at.IdToken != nil)
				}
				ct, err := client.CheckToken(ctx, withBearer(&mgmtv1alpha1.CheckTokenRequest{}, at.GetAccessToken()))
				if err != nil {
					t.Fatalf("CheckToken: %v", err)
				}
				if ct.Msg.GetSubject() != p.Subject || ct.Msg.GetIssuer() != p.Issuer || ct.Msg.GetExpiresAt() == 0 {
					t.Errorf("CheckToken = %v", ct.Msg)
				}
				rr, err := client.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: at.GetRefreshToken()}))
				if err != nil {
					t.Fatalf("RefreshCli: %v", err)
				}
				nt := rr.Msg.GetAccessToken()
				if nt.GetRefreshToken() == "" || nt.GetRefreshToken() == at.GetRefreshToken() {
					t.Errorf("RefreshCli did not return the rotated refresh token")
				}
				if _, err := client.CheckToken(ctx, withBearer(&mgmtv1alpha1.CheckTokenRequest{}, nt.GetAccessToken())); err != nil {
					t.Errorf("CheckToken with refreshed token: %v", err)
				}
				// The old refresh token was rotated away.
				_, err = client.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: at.GetRefreshToken()}))
				if connect.CodeOf(err) != connect.CodeUnauthenticated {
					t.Errorf("reusing a rotated refresh token: %v, want Unauthenticated", err)
				}
			})
		}
	}
}

func TestRefreshWithoutRotationOmitsRefreshToken(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithoutRefreshRotation())
	s := startServe(t, providerEnv(p))
	client := newClient(s.URL, protocols[0])
	ctx := context.Background()
	code := authorizeCode(t, client, p, "offline_access")
	lr, err := client.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: redirectURI}))
	if err != nil {
		t.Fatal(err)
	}
	if lr.Msg.GetAccessToken().IdToken != nil {
		t.Error("id_token set although the provider sent none (no openid scope)")
	}
	rr, err := client.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: lr.Msg.GetAccessToken().GetRefreshToken()}))
	if err != nil {
		t.Fatal(err)
	}
	if rr.Msg.GetAccessToken().RefreshToken != nil {
		t.Error("refresh_token set although the provider did not rotate it")
	}
}

// TestNoSideEffectMethodsOverHTTPGet checks the idempotency options made it
// to the wire: Connect clients may call the two methods with GET.
func TestNoSideEffectMethodsOverHTTPGet(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	s := startServe(t, providerEnv(p))
	client := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, s.URL, connect.WithHTTPGet(), connect.WithProtoJSON())
	ctx := context.Background()
	if _, err := client.GetAuthStatus(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{})); err != nil {
		t.Fatalf("GetAuthStatus over GET: %v", err)
	}
	if _, err := client.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{State: "s", RedirectUri: redirectURI, Scope: "openid"})); err != nil {
		t.Fatalf("GetAuthorizeUrl over GET: %v", err)
	}
	resp, err := http.Get(s.URL + mgmtv1alpha1connect.AuthServiceGetAuthStatusProcedure + "?encoding=json&message=%7B%7D")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != `{"isEnabled":true}` {
		t.Errorf("raw GET = %d %s", resp.StatusCode, body)
	}
}

func TestDiscoveryIsFetchedOnce(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	s := startServe(t, providerEnv(p))
	client := newClient(s.URL, protocols[1])
	ctx := context.Background()
	for i := range 1000 {
		_, err := client.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{State: fmt.Sprint("state-", i), RedirectUri: redirectURI, Scope: "openid"}))
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := p.Count(oidctest.PathDiscovery); n != 1 {
		t.Errorf("discovery fetched %d times for 1000 calls, want 1", n)
	}
}

// TestKeyRotationVerifiesAfterOneRefetch: after the provider rotates its
// key, tokens under the new kid verify after exactly one JWKS refetch. The
// server runs on a clock the test moves past the 30 s refetch interval.
func TestKeyRotationVerifiesAfterOneRefetch(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	var ahead atomic.Int64 // how far the server's clock is ahead of time.Now
	s := servetest.Start(t, servetest.Options{
		Env:  providerEnv(p),
		Args: []string{"--log-level", "debug"},
		Now:  func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) },
	})
	client := newClient(s.URL, protocols[0])
	ctx := context.Background()
	if _, err := client.CheckToken(ctx, withBearer(&mgmtv1alpha1.CheckTokenRequest{}, p.AccessToken())); err != nil {
		t.Fatal(err)
	}
	before := p.Count(oidctest.PathJWKS)
	// Unknown key ids may cause one refetch per 30 s interval.
	ahead.Store(int64(31 * time.Second))
	p.Keys.Rotate("ES256")
	for range 10 {
		if _, err := client.CheckToken(ctx, withBearer(&mgmtv1alpha1.CheckTokenRequest{}, p.AccessToken())); err != nil {
			t.Fatalf("CheckToken after rotation: %v", err)
		}
	}
	if got := p.Count(oidctest.PathJWKS) - before; got != 1 {
		t.Errorf("JWKS refetches after rotation = %d, want 1", got)
	}
}

func TestCheckTokenRefusals(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	s := startServe(t, providerEnv(p))
	client := newClient(s.URL, protocols[0])
	expired := p.AccessClaims("alice")
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	tests := []struct {
		name   string
		header string
	}{
		{"no header", ""},
		{"empty bearer", "Bearer "},
		{"basic scheme", "Basic dXNlcjpwYXNz"},
		{"garbage", "Bearer not-a-jwt"},
		{"expired", "Bearer " + p.Sign(expired, nil)},
		{"wrong audience", "Bearer " + p.Sign(map[string]any{"iss": p.Issuer, "sub": "x", "aud": "other", "exp": time.Now().Add(time.Hour).Unix()}, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
			if tt.header != "" {
				req.Header().Set("Authorization", tt.header)
			}
			_, err := client.CheckToken(context.Background(), req)
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeUnauthenticated || ce.Message() != authn.UnauthenticatedMessage {
				t.Fatalf("CheckToken = %v, want Unauthenticated %q", err, authn.UnauthenticatedMessage)
			}
			if !strings.HasPrefix(ce.Meta().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", ce.Meta().Get("WWW-Authenticate"))
			}
		})
	}
}

func TestBadInputsNeverReachTheProvider(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	s := startServe(t, providerEnv(p))
	client := newClient(s.URL, protocols[0])
	ctx := context.Background()
	// Let start-up traffic (discovery) settle before counting.
	start := p.TotalRequests()
	str := func(s string) *string { return &s }
	goodChallenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	authorize := []struct {
		name string
		req  *mgmtv1alpha1.GetAuthorizeUrlRequest
	}{
		{"missing state", &mgmtv1alpha1.GetAuthorizeUrlRequest{RedirectUri: redirectURI, Scope: "openid"}},
		{"missing redirect", &mgmtv1alpha1.GetAuthorizeUrlRequest{State: "s", Scope: "openid"}},
		{"missing scope", &mgmtv1alpha1.GetAuthorizeUrlRequest{State: "s", RedirectUri: redirectURI}},
		{"blank scope", &mgmtv1alpha1.GetAuthorizeUrlRequest{State: "s", RedirectUri: redirectURI, Scope: "   "}},
		{"oversized state", &mgmtv1alpha1.GetAuthorizeUrlRequest{State: strings.Repeat("a", 513), RedirectUri: redirectURI, Scope: "openid"}},
		{"control character in state", &mgmtv1alpha1.GetAuthorizeUrlRequest{State: "a\r\nb", RedirectUri: redirectURI, Scope: "openid"}},
		{"control character in scope", &mgmtv1alpha1.GetAuthorizeUrlRequest{State: "s", RedirectUri: redirectURI, Scope: "openid\x00"}},
		{"non-loopback redirect", &mgmtv1alpha1.GetAuthorizeUrlRequest{State: "s", RedirectUri: "https://evil.example/cb", Scope: "openid"}},
		{"https loopback redirect", &mgmtv1alpha1.GetAuthorizeUrlRequest{State: "s", RedirectUri: "https://127.0.0.1:4242/cb", Scope: "openid"}},
		{"plain PKCE", &mgmtv1alpha1.GetAuthorizeUrlRequest{State: "s", RedirectUri: redirectURI, Scope: "openid", CodeChallenge: str(goodChallenge), CodeChallengeMethod: str("plain")}},
		{"challenge without method", &mgmtv1alpha1.GetAuthorizeUrlRequest{State: "s", RedirectUri: redirectURI, Scope: "openid", CodeChallenge: str(goodChallenge)}},
		{"short challenge", &mgmtv1alpha1.GetAuthorizeUrlRequest{State: "s", RedirectUri: redirectURI, Scope: "openid", CodeChallenge: str("abc"), CodeChallengeMethod: str("S256")}},
	}
	for _, tt := range authorize {
		t.Run("GetAuthorizeUrl/"+tt.name, func(t *testing.T) {
			_, err := client.GetAuthorizeUrl(ctx, connect.NewRequest(tt.req))
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
		})
	}
	login := []struct {
		name string
		req  *mgmtv1alpha1.LoginCliRequest
	}{
		{"missing code", &mgmtv1alpha1.LoginCliRequest{RedirectUri: redirectURI}},
		{"missing redirect", &mgmtv1alpha1.LoginCliRequest{Code: "c"}},
		{"code with space", &mgmtv1alpha1.LoginCliRequest{Code: "a b", RedirectUri: redirectURI}},
		{"oversized code", &mgmtv1alpha1.LoginCliRequest{Code: strings.Repeat("c", 2049), RedirectUri: redirectURI}},
		{"evil redirect", &mgmtv1alpha1.LoginCliRequest{Code: "c", RedirectUri: "http://127.0.0.1@evil.example/"}},
	}
	for _, tt := range login {
		t.Run("LoginCli/"+tt.name, func(t *testing.T) {
			_, err := client.LoginCli(ctx, connect.NewRequest(tt.req))
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
		})
	}
	for name, verifier := range map[string]string{"short": "short", "bad characters": strings.Repeat("+", 43), "too long": strings.Repeat("v", 129), "empty": ""} {
		t.Run("LoginCli/malformed verifier "+name, func(t *testing.T) {
			_, err := client.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: "c", RedirectUri: redirectURI, CodeVerifier: &verifier}))
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("err = %v, want Unauthenticated", err)
			}
		})
	}
	for name, rt := range map[string]string{"empty": "", "oversized": strings.Repeat("r", 8193), "newline": "a\nb"} {
		t.Run("RefreshCli/"+name, func(t *testing.T) {
			_, err := client.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: rt}))
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
		})
	}
	if n := p.TotalRequests() - start; n != 0 {
		t.Errorf("the provider received %d requests for invalid input", n)
	}
}

// TestProviderFailures checks the error mapping: refusals are
// Unauthenticated, outages Unavailable, and no message carries the
// provider's body, the code or the client secret.
func TestProviderFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		failure oidctest.Failure
		badCode bool
		want    connect.Code
	}{
		{"invalid_grant", oidctest.Healthy, true, connect.CodeUnauthenticated},
		{"token endpoint 500", oidctest.Status500, false, connect.CodeUnavailable},
		{"token endpoint garbage", oidctest.Garbage, false, connect.CodeUnavailable},
		{"token endpoint drops connection", oidctest.Drop, false, connect.CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := oidctest.New(t)
			s := startServe(t, providerEnv(p))
			client := newClient(s.URL, protocols[0])
			ctx := context.Background()
			code := authorizeCode(t, client, p, "openid offline_access")
			sent := code
			if tt.badCode {
				sent = code + "-forged"
			}
			p.SetFailure(oidctest.PathToken, tt.failure)
			_, err := client.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: sent, RedirectUri: redirectURI}))
			if connect.CodeOf(err) != tt.want {
				t.Fatalf("LoginCli = %v, want %v", err, tt.want)
			}
			assertClean(t, "error", err.Error(), oidctest.LeakBait, code, p.ClientSecret)
			assertClean(t, "logs", s.Logs.String(), oidctest.LeakBait, code, p.ClientSecret)
			_, err = client.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: "rt-unknown-token"}))
			if tt.failure == oidctest.Healthy {
				if connect.CodeOf(err) != connect.CodeUnauthenticated {
					t.Fatalf("RefreshCli with unknown token = %v, want Unauthenticated", err)
				}
			} else if connect.CodeOf(err) != tt.want {
				t.Fatalf("RefreshCli = %v, want %v", err, tt.want)
			}
			assertClean(t, "logs", s.Logs.String(), "rt-unknown-token")
		})
	}
}

func TestProviderDownAtStart(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	p.SetFailure(oidctest.PathDiscovery, oidctest.Status500)
	s := startServe(t, providerEnv(p))
	client := newClient(s.URL, protocols[2])
	ctx := context.Background()
	req := &mgmtv1alpha1.GetAuthorizeUrlRequest{State: "s", RedirectUri: redirectURI, Scope: "openid"}
	if _, err := client.GetAuthorizeUrl(ctx, connect.NewRequest(req)); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("GetAuthorizeUrl while the provider is down = %v, want Unavailable", err)
	}
	if _, err := client.CheckToken(ctx, withBearer(&mgmtv1alpha1.CheckTokenRequest{}, p.AccessToken())); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("CheckToken while the provider is down = %v, want Unavailable", err)
	}
	if st := readyStatus(t, s.URL); st != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d, want 503", st)
	}
	if got := healthStatus(t, s.URL); got != grpchealth.StatusNotServing {
		t.Fatalf("health = %s, want NOT_SERVING", got)
	}
	if st, err := client.GetAuthStatus(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{})); err != nil || !st.Msg.GetIsEnabled() {
		t.Fatalf("GetAuthStatus while the provider is down = %v, %v", st, err)
	}

	p.SetFailure(oidctest.PathDiscovery, oidctest.Healthy)
	deadline := time.Now().Add(15 * time.Second)
	for readyStatus(t, s.URL) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("server did not become ready after the provider recovered")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := healthStatus(t, s.URL); got != grpchealth.StatusServing {
		t.Fatalf("health = %s, want SERVING", got)
	}
	if _, err := client.GetAuthorizeUrl(ctx, connect.NewRequest(req)); err != nil {
		t.Fatalf("GetAuthorizeUrl after recovery: %v", err)
	}
	if _, err := client.CheckToken(ctx, withBearer(&mgmtv1alpha1.CheckTokenRequest{}, p.AccessToken())); err != nil {
		t.Fatalf("CheckToken after recovery: %v", err)
	}
}

func readyStatus(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestMetricsCountCalls(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	s := startServe(t, providerEnv(p))
	client := newClient(s.URL, protocols[0])
	ctx := context.Background()
	for range 3 {
		if _, err := client.GetAuthStatus(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{})); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = client.CheckToken(ctx, connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{}))
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`nsauth_rpc_requests_total{code="ok",procedure="/mgmt.v1alpha1.AuthService/GetAuthStatus"} 3`,
		`nsauth_rpc_requests_total{code="unauthenticated",procedure="/mgmt.v1alpha1.AuthService/CheckToken"} 1`,
		`nsauth_rpc_duration_seconds_bucket{procedure="/mgmt.v1alpha1.AuthService/GetAuthStatus"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestGracefulShutdownDrainsInFlightCalls stops the server while a LoginCli
// call waits on a slow provider: the call must complete.
func TestGracefulShutdownDrainsInFlightCalls(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	s := startServe(t, providerEnv(p))
	client := newClient(s.URL, protocols[2])
	ctx := context.Background()
	code := authorizeCode(t, client, p, "openid")
	p.SetFailure(oidctest.PathToken, oidctest.Slow)
	var wg sync.WaitGroup
	var callErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, callErr = client.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: redirectURI}))
	}()
	for p.Count(oidctest.PathToken) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if exit := s.Stop(t); exit != 0 {
		t.Errorf("exit code = %d", exit)
	}
	wg.Wait()
	if callErr != nil {
		t.Fatalf("in-flight LoginCli failed during shutdown: %v", callErr)
	}
	if !strings.Contains(s.Logs.String(), "draining") {
		t.Errorf("logs do not mention draining")
	}
}

// TestPprofOnlyWhenAsked: the profiling endpoints exist only with --pprof.
func TestPprofOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want int
	}{
		{nil, http.StatusNotFound},
		{[]string{"--pprof"}, http.StatusOK},
	} {
		s := startServe(t, map[string]string{"AUTH_ENABLED": "false"}, tt.args...)
		resp, err := http.Get(s.URL + "/debug/pprof/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("serve %v: /debug/pprof/ answered %d, want %d", tt.args, resp.StatusCode, tt.want)
		}
	}
}
