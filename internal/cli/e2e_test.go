package cli_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/oidctest"
)

// TestLoginTokenWhoamiLogout is the whole client session against `nsauth
// serve` brokering a (fake) external provider.
func TestLoginTokenWhoamiLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	// Before login.
	r := e.run(ctx, nil, "status", "--output", "json")
	if r.code != 0 {
		t.Fatalf("status before login: exit %d\n%s", r.code, r.errOut)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(r.out), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, r.out)
	}
	if st["logged_in"] != false || st["auth_enabled"] != true || st["reachable"] != true {
		t.Errorf("status before login = %v", st)
	}
	if r := e.run(ctx, nil, "token"); r.code != 1 || r.out != "" || !strings.Contains(r.errOut, "run nsauth login") {
		t.Errorf("token before login: exit %d out %q err %q; want 1, nothing, 'run nsauth login'", r.code, r.out, r.errOut)
	}

	// Login.
	authURL, done := e.startLogin(ctx, nil)
	au, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	q := au.Query()
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 {
		t.Errorf("authorize URL lacks an S256 PKCE challenge: %s", authURL)
	}
	if len(q.Get("state")) < 22 { // 128 bits in base64url
		t.Errorf("state %q is shorter than 128 bits", q.Get("state"))
	}
	redirect, _ := url.Parse(q.Get("redirect_uri"))
	if redirect.Hostname() != "127.0.0.1" || redirect.Path != "/api/auth/callback" {
		t.Errorf("redirect_uri = %s", redirect)
	}
	b := browse(t, authURL)
	if b.status != http.StatusOK || !strings.Contains(b.body, "You are logged in") {
		t.Errorf("browser page: %d\n%s", b.status, b.body)
	}
	r = wait(t, done)
	if r.code != 0 {
		t.Fatalf("login: exit %d\n%s", r.code, r.errOut)
	}
	if r.out != "" {
		t.Errorf("login wrote to stdout: %q", r.out)
	}
	mustContain(t, "login stderr", r.errOut, "Logged in as Test User <user@example.test> until ", "refreshed automatically")
	if e.calls(procLogin) != 1 || e.fake.Count(oidctest.PathToken) != 1 {
		t.Errorf("LoginCli calls %d, provider token calls %d; want 1 and 1", e.calls(procLogin), e.fake.Count(oidctest.PathToken))
	}
	// The callback listener is gone.
	if _, err := http.Get("http://" + redirect.Host + "/"); err == nil {
		t.Errorf("callback listener %s still answers after login", redirect.Host)
	}

	// Files and permissions.
	store := e.store()
	path := store.Path(e.normalizedURL())
	if m := fileMode(t, path); m != 0o600 {
		t.Errorf("token file mode %04o, want 0600", m)
	}
	if m := fileMode(t, store.Dir()); m != 0o700 {
		t.Errorf("token directory mode %04o, want 0700", m)
	}
	ent := e.entry()
	if ent.AccessToken == "" || ent.RefreshToken == "" || ent.IDToken == "" {
		t.Fatalf("stored entry lacks tokens: %v", ent)
	}
	if d := time.Until(ent.Expiry); d < 14*time.Minute || d > 15*time.Minute {
		t.Errorf("stored expiry is %v away, want about 15 minutes", d)
	}
	for _, secret := range []string{ent.AccessToken, ent.RefreshToken, ent.IDToken} {
		mustNotContain(t, "login stderr", r.errOut, secret)
	}

	// token: the cached token, with no call to the server at all.
	before := e.totalCalls()
	r = e.run(ctx, nil, "token")
	if r.code != 0 || r.out != ent.AccessToken+"\n" || r.errOut != "" {
		t.Fatalf("token: exit %d, stdout %d bytes, stderr %q; want the stored access token only", r.code, len(r.out), r.errOut)
	}
	if n := e.totalCalls() - before; n != 0 {
		t.Errorf("token with a fresh cached token made %d calls to the server, want 0", n)
	}
	if _, err := e.checkToken(strings.TrimSpace(r.out)); err != nil {
		t.Errorf("CheckToken refuses the printed token: %v", err)
	}

	// whoami, text and JSON.
	r = e.run(ctx, nil, "whoami")
	if r.code != 0 {
		t.Fatalf("whoami: exit %d\n%s", r.code, r.errOut)
	}
	mustContain(t, "whoami", r.out, "Subject:", "user-123", "Name:", "Test User", "Email:", "user@example.test", "Issuer:", e.fake.Issuer, "Scopes:", "openid", "Expires:")
	mustNotContain(t, "whoami", r.out+r.errOut, ent.AccessToken, ent.RefreshToken, ent.IDToken)
	checks := e.calls(procCheck)
	r = e.run(ctx, nil, "whoami", "-o", "json")
	if r.code != 0 {
		t.Fatalf("whoami json: exit %d\n%s", r.code, r.errOut)
	}
	var who struct {
		Subject, Email, Issuer, Name string
		Scopes                       []string
		ExpiresAt                    time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(r.out), &who); err != nil {
		t.Fatalf("whoami JSON: %v\n%s", err, r.out)
	}
	if who.Subject != "user-123" || who.Email != "user@example.test" || who.Issuer != e.fake.Issuer ||
		!slices.Contains(who.Scopes, "offline_access") || who.ExpiresAt.IsZero() {
		t.Errorf("whoami JSON = %+v", who)
	}
	if e.calls(procCheck) != checks+1 {
		t.Errorf("whoami did not confirm the token with CheckToken")
	}

	// status after login.
	r = e.run(ctx, nil, "status")
	if r.code != 0 {
		t.Fatalf("status: exit %d\n%s", r.code, r.errOut)
	}
	mustContain(t, "status", r.out, "API URL:", e.apiURL, "authentication enabled", "Logged in:", "yes (tokens in "+path+")", "Access token:", "expires", "Refresh token:", "yes")

	// logout: revoked at the provider, file gone.
	r = e.run(ctx, nil, "logout")
	if r.code != 0 {
		t.Fatalf("logout: exit %d\n%s", r.code, r.errOut)
	}
	mustContain(t, "logout", r.errOut, "Revoked the refresh token at the identity provider.", "Deleted the stored tokens for "+e.apiURL)
	if !e.fake.Revoked(ent.RefreshToken) {
		t.Error("the provider did not revoke the refresh token")
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("token file still there after logout (%v)", err)
	}
	if r := e.run(ctx, nil, "token"); r.code != 1 || r.out != "" || !strings.Contains(r.errOut, "run nsauth login") {
		t.Errorf("token after logout: exit %d out %q err %q", r.code, r.out, r.errOut)
	}
	if r := e.run(ctx, nil, "logout"); r.code != 0 || !strings.Contains(r.errOut, "Not logged in") {
		t.Errorf("second logout: exit %d err %q", r.code, r.errOut)
	}
}

func TestLoginWhenAuthIsDisabled(t *testing.T) {
	t.Parallel()
	serverURL := startServe(t, map[string]string{"AUTH_ENABLED": "false"})
	e := &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}}
	e.apiURL = e.countingProxy(serverURL)
	r := e.run(context.Background(), nil, "login", "--no-browser")
	if r.code != 0 || !strings.Contains(r.errOut, "Authentication is disabled on "+e.apiURL) {
		t.Fatalf("login: exit %d\n%s", r.code, r.errOut)
	}
	if e.calls(procAuthorize) != 0 {
		t.Error("login asked for an authorize URL although auth is disabled")
	}
	r = e.run(context.Background(), nil, "status", "-o", "json")
	if r.code != 0 || !strings.Contains(r.out, `"auth_enabled": false`) {
		t.Errorf("status: exit %d\n%s%s", r.code, r.out, r.errOut)
	}
}
