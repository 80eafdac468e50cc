package cli_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/authservice"
	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/internal/upstream"
)

func TestTokenRefreshesAnExpiredToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.login()
	old := e.entry()
	old.Expiry = time.Now().Add(-time.Minute)
	if err := e.store().Save(old); err != nil {
		t.Fatal(err)
	}
	r := e.run(context.Background(), nil, "token")
	if r.code != 0 || r.errOut != "" {
		t.Fatalf("token: exit %d\n%s", r.code, r.errOut)
	}
	tok := strings.TrimSpace(r.out)
	if tok == old.AccessToken {
		t.Error("token printed the expired token")
	}
	if _, err := e.checkToken(tok); err != nil {
		t.Errorf("CheckToken refuses the refreshed token: %v", err)
	}
	if e.calls(procRefresh) != 1 {
		t.Errorf("RefreshCli calls = %d, want 1", e.calls(procRefresh))
	}
	now := e.entry()
	if now.AccessToken != tok || now.RefreshToken == old.RefreshToken || now.RefreshToken == "" || now.IDToken == "" {
		t.Error("the store does not hold the refreshed tokens with the rotated refresh token")
	}
	// Inside the margin counts as expired; --margin changes that.
	now.Expiry = time.Now().Add(30 * time.Second)
	if err := e.store().Save(now); err != nil {
		t.Fatal(err)
	}
	if r := e.run(context.Background(), nil, "token", "--margin", "10s"); r.code != 0 || strings.TrimSpace(r.out) != tok || e.calls(procRefresh) != 1 {
		t.Errorf("token --margin 10s with 30s left: exit %d, refreshed %d times", r.code, e.calls(procRefresh))
	}
	if r := e.run(context.Background(), nil, "token"); r.code != 0 || strings.TrimSpace(r.out) == tok || e.calls(procRefresh) != 2 {
		t.Errorf("token with 30s left and the default margin: exit %d, refreshed %d times, want a refresh", r.code, e.calls(procRefresh))
	}
}

// TestCrashBetweenRefreshAndWrite: the stored refresh token has been spent
// by a process that died before saving the rotated one. The next run must
// ask for a login (one refused RefreshCli), and the run after that must not
// even call the server.
func TestCrashBetweenRefreshAndWrite(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.login()
	ent := e.entry()
	c := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, e.apiURL)
	if _, err := c.RefreshCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: ent.RefreshToken})); err != nil {
		t.Fatal(err)
	}
	ent.Expiry = time.Now().Add(-time.Minute)
	if err := e.store().Save(ent); err != nil {
		t.Fatal(err)
	}
	base := e.calls(procRefresh)
	for i, wantCalls := range []int{1, 1, 1} {
		r := e.run(context.Background(), nil, "token")
		if r.code != 1 || r.out != "" || !strings.Contains(r.errOut, "run nsauth login") {
			t.Errorf("run %d: exit %d out %q err %q; want 1 and 'run nsauth login'", i+1, r.code, r.out, r.errOut)
		}
		if got := e.calls(procRefresh) - base; got != wantCalls {
			t.Errorf("run %d: RefreshCli calls = %d, want %d in total", i+1, got, wantCalls)
		}
		mustNotContain(t, "stderr", r.errOut, ent.RefreshToken, ent.AccessToken, oidctest.LeakBait)
	}
	r := e.run(context.Background(), nil, "status", "-o", "json")
	if !strings.Contains(r.out, `"logged_in": false`) {
		t.Errorf("status after a rejected refresh token:\n%s", r.out)
	}
}

func TestInsecureTokenFilesAreRefused(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("Unix permissions")
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, path string)
		want   string
	}{
		{"world-readable", func(t *testing.T, p string) {
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is accessible by other users (mode 0644)"},
		{"group-readable", func(t *testing.T, p string) {
			if err := os.Chmod(p, 0o640); err != nil {
				t.Fatal(err)
			}
		}, "is accessible by other users (mode 0640)"},
		{"symlink", func(t *testing.T, p string) {
			target := filepath.Join(t.TempDir(), "planted.json")
			if err := os.Rename(p, target); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.login()
			tok := e.entry().AccessToken
			tc.tamper(t, e.store().Path(e.normalizedURL()))
			for _, cmd := range []string{"token", "whoami"} {
				r := e.run(context.Background(), nil, cmd)
				if r.code != 1 || r.out != "" {
					t.Errorf("%s: exit %d, stdout %q; want 1 and nothing", cmd, r.code, r.out)
				}
				mustContain(t, cmd+" stderr", r.errOut, "insecure token storage", tc.want)
				mustNotContain(t, cmd+" stderr", r.errOut, tok)
			}
			r := e.run(context.Background(), nil, "status")
			if r.code != 1 || !strings.Contains(r.out, tc.want) {
				t.Errorf("status: exit %d\n%s", r.code, r.out)
			}
			// logout still cleans up (the link itself, not its target).
			r = e.run(context.Background(), nil, "logout")
			if r.code != 0 || !strings.Contains(r.errOut, "deleting them without revoking") {
				t.Errorf("logout: exit %d\n%s", r.code, r.errOut)
			}
		})
	}
}

func TestLoginKeyringUnavailable(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" || os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		t.Skip("needs a Linux machine without a D-Bus session")
	}
	e := newEnv(t)
	r := e.run(context.Background(), nil, "login", "--keyring", "--no-browser", "--timeout", "5s")
	if r.code != 1 {
		t.Fatalf("login --keyring: exit %d\n%s", r.code, r.errOut)
	}
	mustContain(t, "stderr", r.errOut, "the OS keyring is not available", "log in without --keyring")
	if e.calls(procAuthorize) != 0 {
		t.Error("login --keyring sent the user to the browser before finding the keyring missing")
	}
	if _, err := os.Lstat(e.store().Path(e.normalizedURL())); !os.IsNotExist(err) {
		t.Errorf("a token file was written (%v)", err)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	e := &env{t: t, apiURL: "http://127.0.0.1:1", configDir: t.TempDir()}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"extra argument", []string{"token", "extra"}, "takes no arguments"},
		{"unknown flag", []string{"whoami", "--nope"}, "unknown flag"},
		{"bad output", []string{"whoami", "-o", "xml"}, `--output "xml" is not text or json`},
		{"bad status output", []string{"status", "--output", "yaml"}, "is not text or json"},
		{"port out of range", []string{"login", "--port", "70000"}, "--port 70000"},
		{"listen address", []string{"login", "--listen-address", "localhost"}, "is not an IP address"},
		{"zero timeout", []string{"login", "--timeout", "0s"}, "--timeout must be positive"},
		{"bad API URL", []string{"token", "--api-url", "localhost:8080"}, "not an absolute http(s) URL"},
		{"plain HTTP to a remote host", []string{"token", "--api-url", "http://neosync.example.com"}, "plain HTTP"},
		{"completion without shell", []string{"completion"}, "needs exactly one shell"},
		{"completion with unknown shell", []string{"completion", "tcsh"}, "unknown shell"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.run(context.Background(), nil, tc.args...)
			if r.code != 2 || !strings.Contains(r.errOut, tc.want) || r.out != "" {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, r.code, r.out, r.errOut, tc.want)
			}
		})
	}
}

func TestCompletionAndHelp(t *testing.T) {
	t.Parallel()
	e := &env{t: t, apiURL: "http://127.0.0.1:1", configDir: t.TempDir()}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		r := e.run(context.Background(), nil, "completion", shell)
		if r.code != 0 || !strings.Contains(r.out, "nsauth") || len(r.out) < 500 {
			t.Errorf("completion %s: exit %d, %d bytes", shell, r.code, len(r.out))
		}
	}
	for _, cmd := range []string{"login", "token", "whoami", "status", "logout", "completion"} {
		r := e.run(context.Background(), nil, cmd, "--help")
		if r.code != 0 || !strings.Contains(r.out, "Examples:") {
			t.Errorf("%s --help: exit %d, no examples:\n%s", cmd, r.code, r.out)
		}
	}
}

// oldServer is an AuthService as an unmodified Neosync server behaves: it
// does not know the PKCE fields (they are dropped as unknown fields are)
// nor RevokeCli.
type oldServer struct {
	mgmtv1alpha1connect.UnimplementedAuthServiceHandler
	svc *authservice.Service
}

func (s oldServer) GetAuthStatus(ctx context.Context, r *connect.Request[mgmtv1alpha1.GetAuthStatusRequest]) (*connect.Response[mgmtv1alpha1.GetAuthStatusResponse], error) {
	return s.svc.GetAuthStatus(ctx, r)
}

func (s oldServer) GetAuthorizeUrl(ctx context.Context, r *connect.Request[mgmtv1alpha1.GetAuthorizeUrlRequest]) (*connect.Response[mgmtv1alpha1.GetAuthorizeUrlResponse], error) {
	r.Msg.CodeChallenge, r.Msg.CodeChallengeMethod = nil, nil
	return s.svc.GetAuthorizeUrl(ctx, r)
}

func (s oldServer) LoginCli(ctx context.Context, r *connect.Request[mgmtv1alpha1.LoginCliRequest]) (*connect.Response[mgmtv1alpha1.LoginCliResponse], error) {
	r.Msg.CodeVerifier = nil
	return s.svc.LoginCli(ctx, r)
}

func TestOldServerWithoutPKCEOrRevocation(t *testing.T) {
	t.Parallel()
	fake := oidctest.New(t)
	provider, err := upstream.New(upstream.Config{BaseURL: fake.Issuer, ClientID: fake.ClientID, ClientSecret: fake.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	if err := provider.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	svc, err := authservice.New(authservice.Config{Enabled: true, Broker: provider})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(mgmtv1alpha1connect.NewAuthServiceHandler(oldServer{svc: svc}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &env{t: t, fake: fake, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}}
	e.apiURL = e.countingProxy(srv.URL)

	r := e.login()
	mustContain(t, "login stderr", r.errOut, "did not pass PKCE on", "Logged in as Test User")
	for _, req := range fake.Requests() {
		if req.URL.Path == oidctest.PathAuthorize && req.URL.Query().Has("code_challenge") {
			t.Error("the old server sent a PKCE challenge; the test server is wrong")
		}
	}
	ent := e.entry()
	r = e.run(context.Background(), nil, "logout")
	if r.code != 0 {
		t.Fatalf("logout: exit %d\n%s", r.code, r.errOut)
	}
	mustContain(t, "logout stderr", r.errOut, "does not support revocation (an older server)", "Deleted the stored tokens")
	if fake.Revoked(ent.RefreshToken) {
		t.Error("refresh token revoked, but the old server cannot do that")
	}
	var gone *os.PathError
	if _, err := os.Lstat(e.store().Path(e.normalizedURL())); !errors.As(err, &gone) {
		t.Errorf("token file still there: %v", err)
	}
}
