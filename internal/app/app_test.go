package app_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/inprocess"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/redirect"
	"github.com/nsauth/nsauth/internal/servetest"
)

const (
	adminPassword = "app-test-admin-password"
	redirectURI   = "http://127.0.0.1:4242/api/auth/callback"
	scope         = "openid profile email offline_access"
)

// builtinEnv is the environment of a built-in provider on a fresh SQLite
// directory.
func builtinEnv(t *testing.T) map[string]string {
	return map[string]string{
		"NSAUTH_DATA_DIR":       filepath.Join(t.TempDir(), "data"),
		"NSAUTH_ADMIN_PASSWORD": adminPassword,
	}
}

// keepCPUBusy spins n goroutines until the test ends, so that nothing the
// server does at start gets a CPU to itself.
func keepCPUBusy(t *testing.T, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := 0
			for ctx.Err() == nil {
				for i := range 1 << 16 {
					x += i
				}
			}
			_ = x
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestBuiltinAnswersAsSoonAsItListens is the promise of built-in mode: the
// port accepts connections only once every RPC can answer. Fifty times in
// a row, on a machine kept busy, the server is started and asked for an
// authorize URL at once, on a new connection: no call may answer
// Unavailable (the provider is discovered in process before the listener
// serves; nothing waits for a background retry).
func TestBuiltinAnswersAsSoonAsItListens(t *testing.T) {
	t.Parallel()
	keepCPUBusy(t, runtime.GOMAXPROCS(0))
	env := builtinEnv(t)
	const runs = 50
	codes := map[string]int{}
	for i := range runs {
		ctx, cancel := context.WithCancel(context.Background())
		srv, err := servetest.New(ctx, env, []string{"--listen", "127.0.0.1:0", "--log-level", "error"}, app.Deps{})
		if err != nil {
			cancel()
			t.Fatalf("run %d: %v", i, err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ctx) }()

		tr := &http.Transport{DisableKeepAlives: true}
		client := mgmtv1alpha1connect.NewAuthServiceClient(&http.Client{Transport: tr, Timeout: 30 * time.Second}, srv.URL())
		_, err = client.GetAuthorizeUrl(context.Background(), connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
			State: "st", RedirectUri: redirectURI, Scope: scope,
		}))
		codes[codeName(err)]++
		cancel()
		if err := <-served; err != nil {
			t.Fatalf("run %d: Serve: %v", i, err)
		}
	}
	t.Logf("%d starts, GetAuthorizeUrl at once: %v", runs, codes)
	if codes["ok"] != runs {
		t.Fatalf("GetAuthorizeUrl right after start: %v; want %d ok (and 0 unavailable)", codes, runs)
	}
}

func codeName(err error) string {
	if err == nil {
		return "ok"
	}
	return connect.CodeOf(err).String()
}

// inProcessBrowser is a browser that reaches srv's handler for issuerURL
// without the network, as if over TLS for an https issuer: for issuer URLs
// that resolve nowhere.
func inProcessBrowser(t *testing.T, srv *app.Server, issuerURL string) *issuertest.Browser {
	t.Helper()
	b := issuertest.NewBrowser(t)
	tr, err := inprocess.New(inprocess.Config{Origin: issuerURL, Handler: srv.Handler()})
	if err != nil {
		t.Fatal(err)
	}
	b.Client.Transport = tr
	return b
}

// TestBuiltinNeverCallsItselfOverTheNetwork runs the whole CLI flow with
// issuer URLs the server cannot reach: one that resolves nowhere
// (.invalid, RFC 6761) and a loopback port nobody listens on. Every RPC
// answers, so the broker and the verifier reached the provider in process;
// a single dial would have failed.
func TestBuiltinNeverCallsItselfOverTheNetwork(t *testing.T) {
	t.Parallel()
	for name, issuerURL := range map[string]string{"unresolvable https": "https://nsauth.invalid", "unreachable loopback": "http://127.0.0.1:1"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, mode := range []string{"jwt", "introspection"} {
				t.Run(mode, func(t *testing.T) {
					t.Parallel()
					env := builtinEnv(t)
					env["NSAUTH_TOKEN_MODE"] = mode
					s := servetest.Start(t, servetest.Options{Env: env, Args: []string{"--issuer", issuerURL}})
					api := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, s.URL)
					ctx := context.Background()

					verifier := oauth2.GenerateVerifier()
					challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
					authz, err := api.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
						State: "cli-state", RedirectUri: redirectURI, Scope: scope, CodeChallenge: &challenge, CodeChallengeMethod: &method,
					}))
					if err != nil {
						t.Fatalf("GetAuthorizeUrl: %v", err)
					}
					if !strings.HasPrefix(authz.Msg.GetUrl(), issuerURL+"/authorize?") {
						t.Fatalf("authorize URL %q is not the issuer's", authz.Msg.GetUrl())
					}
					loc := inProcessBrowser(t, s.App, issuerURL).Login(t, authz.Msg.GetUrl(), "admin", adminPassword)
					login, err := api.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{
						Code: loc.Query().Get("code"), RedirectUri: redirectURI, CodeVerifier: &verifier,
					}))
					if err != nil {
						t.Fatalf("LoginCli: %v", err)
					}
					tok := login.Msg.GetAccessToken()
					check := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
					check.Header().Set("Authorization", "Bearer "+tok.GetAccessToken())
					ct, err := api.CheckToken(ctx, check)
					if err != nil {
						t.Fatalf("CheckToken: %v", err)
					}
					if ct.Msg.GetIssuer() != issuerURL && mode == "jwt" {
						t.Errorf("CheckToken issuer = %q, want %q", ct.Msg.GetIssuer(), issuerURL)
					}
					refreshed, err := api.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: tok.GetRefreshToken()}))
					if err != nil {
						t.Fatalf("RefreshCli: %v", err)
					}
					revoked, err := api.RevokeCli(ctx, connect.NewRequest(&mgmtv1alpha1.RevokeCliRequest{RefreshToken: refreshed.Msg.GetAccessToken().GetRefreshToken()}))
					if err != nil || !revoked.Msg.GetRevoked() {
						t.Fatalf("RevokeCli = %v, %v", revoked, err)
					}
					if n := s.App.ProviderRequests(); n == 0 {
						t.Fatal("no request reached the provider in process")
					}
				})
			}
		})
	}
}

// TestStateLimitIsOneRule: a state the AuthService accepts is one the
// built-in provider accepts, and one byte more is refused by the first.
func TestStateLimitIsOneRule(t *testing.T) {
	t.Parallel()
	s := servetest.Start(t, servetest.Options{Env: builtinEnv(t)})
	api := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, s.URL)
	ask := func(state string) (string, error) {
		verifier := oauth2.GenerateVerifier()
		challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
		resp, err := api.GetAuthorizeUrl(context.Background(), connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
			State: state, RedirectUri: redirectURI, Scope: scope, CodeChallenge: &challenge, CodeChallengeMethod: &method,
		}))
		if err != nil {
			return "", err
		}
		return resp.Msg.GetUrl(), nil
	}
	longest := strings.Repeat("s", redirect.MaxStateLen)
	authURL, err := ask(longest)
	if err != nil {
		t.Fatalf("GetAuthorizeUrl with a %d-byte state: %v", len(longest), err)
	}
	loc := issuertest.NewBrowser(t).Login(t, authURL, "admin", adminPassword)
	if loc.Query().Get("state") != longest {
		t.Fatal("the provider did not give the state back")
	}
	if _, err := ask(longest + "s"); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("GetAuthorizeUrl with a %d-byte state = %v, want InvalidArgument", len(longest)+1, err)
	}
}

// TestNewReleasesWhatItOpenedOnFailure: a start that fails after the
// listener was opened gives the port back.
func TestNewReleasesWhatItOpenedOnFailure(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := builtinEnv(t)
	// The listener is open by the time the store fails to open.
	env["NSAUTH_DATA_DIR"] = "/dev/null/nsauth"
	if _, err := servetest.New(context.Background(), env, []string{"--listen", addr}, app.Deps{}); err == nil {
		t.Fatal("New succeeded on an impossible data directory")
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the port is still taken after a failed start: %v", err)
	}
	ln.Close()
}

// TestHandlerServesWithoutTheListener: Handler answers RPCs in memory.
func TestHandlerServesWithoutTheListener(t *testing.T) {
	t.Parallel()
	srv, err := servetest.New(context.Background(), builtinEnv(t), []string{"--listen", "127.0.0.1:0"}, app.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	u, _ := url.Parse(srv.URL())
	tr, err := inprocess.New(inprocess.Config{Origin: u.Scheme + "://" + u.Host, Handler: srv.Handler()})
	if err != nil {
		t.Fatal(err)
	}
	api := mgmtv1alpha1connect.NewAuthServiceClient(&http.Client{Transport: tr}, srv.URL())
	status, err := api.GetAuthStatus(context.Background(), connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{}))
	if err != nil || !status.Msg.GetIsEnabled() {
		t.Fatalf("GetAuthStatus = %v, %v", status, err)
	}
	if _, err := api.GetAuthorizeUrl(context.Background(), connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
		State: "st", RedirectUri: redirectURI, Scope: scope,
	})); err != nil {
		t.Fatalf("GetAuthorizeUrl before Serve: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestServeStopsWithTheContext: Serve returns nil once its context ends,
// and the port is free again.
func TestServeStopsWithTheContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := servetest.New(ctx, map[string]string{"AUTH_ENABLED": "false"}, []string{"--listen", "127.0.0.1:0"}, app.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	resp, err := http.Get(srv.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
	if resp, err := http.Get(srv.URL() + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("still serving after Serve returned")
	}
}

// TestIssuerChangeIsSaid: a server started on data that was last served
// under another issuer URL (a replica configured apart from the others, or
// a moved installation) says so, naming both; one started under the same
// URL says nothing.
func TestIssuerChangeIsSaid(t *testing.T) {
	t.Parallel()
	env := builtinEnv(t)
	const warning = "this data was last served under another issuer URL"
	tests := []struct {
		name, issuer string
		wantWarning  bool
	}{
		{"first start", "http://127.0.0.1:18601", false},
		{"same issuer again", "http://127.0.0.1:18601", false},
		{"another issuer", "http://localhost:18601", true},
		{"and back", "http://127.0.0.1:18601", true},
	}
	prev := ""
	for _, tt := range tests {
		s := servetest.Start(t, servetest.Options{Env: env, Args: []string{"--issuer", tt.issuer}})
		code := s.Stop(t)
		logs := s.Logs.String()
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", tt.name, code, logs)
		}
		said := strings.Contains(logs, warning)
		if said != tt.wantWarning {
			t.Fatalf("%s: warning logged %v, want %v\n%s", tt.name, said, tt.wantWarning, logs)
		}
		if said && (!strings.Contains(logs, `"previous_issuer":"`+prev+`"`) || !strings.Contains(logs, `"issuer":"`+tt.issuer+`"`)) {
			t.Fatalf("%s: the warning does not name both issuers (%s, %s):\n%s", tt.name, prev, tt.issuer, logs)
		}
		prev = tt.issuer
	}
}
