package cli_test

import (
	"context"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
)

const adminPassword = "correct horse battery staple"

// newBuiltinEnv starts `nsauth serve` with no provider configured, so that
// it runs its built-in one, and waits until the broker has discovered it.
func newBuiltinEnv(t *testing.T) *env {
	t.Helper()
	serverURL := startServe(t, map[string]string{
		"NSAUTH_DATA_DIR":       filepath.Join(t.TempDir(), "data"),
		"NSAUTH_ADMIN_PASSWORD": adminPassword,
	})
	waitReady(t, serverURL)
	e := &env{t: t, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}}
	e.apiURL = e.countingProxy(serverURL)
	return e
}

var (
	formPattern  = regexp.MustCompile(`(?s)<form[^>]*method="post"[^>]*action="([^"]+)"`)
	inputPattern = regexp.MustCompile(`<input[^>]*>`)
	namePattern  = regexp.MustCompile(`\bname="([^"]*)"`)
	valuePattern = regexp.MustCompile(`\bvalue="([^"]*)"`)
)

// signIn is the "browser" for the built-in provider: it follows the
// authorize URL to the login page, fills in the form as a person would
// (keeping its hidden fields), posts it, and follows the redirects to the
// callback listener.
func signIn(t *testing.T, authorizeURL, username, password string) browserResult {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := client.Get(authorizeURL)
	if err != nil {
		t.Fatalf("opening the authorize URL: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := formPattern.FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("no login form at %s (status %d):\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	action, err := resp.Request.URL.Parse(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{}
	for _, in := range inputPattern.FindAll(page, -1) {
		name := namePattern.FindSubmatch(in)
		if name == nil {
			continue
		}
		var value string
		if v := valuePattern.FindSubmatch(in); v != nil {
			value = html.UnescapeString(string(v[1]))
		}
		form.Set(string(name[1]), value)
	}
	form.Set("username", username)
	form.Set("password", password)
	req, err := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", action.Scheme+"://"+action.Host)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("posting the login form: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return browserResult{resp.StatusCode, string(body)}
}

// TestBuiltinProviderSession is the README's first session: `nsauth serve` with
// nothing configured, the administrator logs in through the login page.
func TestBuiltinProviderSession(t *testing.T) {
	t.Parallel()
	e := newBuiltinEnv(t)
	ctx := context.Background()

	// A wrong password leaves the login waiting; the right one finishes it.
	authURL, done := e.startLogin(ctx, nil, "--timeout", "30s")
	if b := signIn(t, authURL, "admin", "wrong password"); !strings.Contains(b.body, "Wrong username or password") {
		t.Errorf("wrong password: status %d\n%s", b.status, b.body)
	}
	b := signIn(t, authURL, "admin", adminPassword)
	if b.status != http.StatusOK || !strings.Contains(b.body, "You are logged in") {
		t.Fatalf("browser ended on %d:\n%s", b.status, b.body)
	}
	r := wait(t, done)
	if r.code != 0 {
		t.Fatalf("login: exit %d\n%s", r.code, r.errOut)
	}
	mustContain(t, "login stderr", r.errOut, "Logged in as Administrator until ")
	mustNotContain(t, "login stderr", r.errOut, "did not pass PKCE")
	ent := e.entry()
	if fileMode(t, e.store().Path(e.normalizedURL())) != 0o600 || ent.RefreshToken == "" {
		t.Errorf("stored entry: mode %04o, refresh token %v", fileMode(t, e.store().Path(e.normalizedURL())), ent.RefreshToken != "")
	}

	before := e.totalCalls()
	r = e.run(ctx, nil, "token")
	if r.code != 0 || strings.TrimSpace(r.out) != ent.AccessToken || r.errOut != "" {
		t.Fatalf("token: exit %d, stderr %q", r.code, r.errOut)
	}
	if e.totalCalls() != before {
		t.Errorf("token made %d calls to the server with a fresh token", e.totalCalls()-before)
	}
	if _, err := e.checkToken(ent.AccessToken); err != nil {
		t.Errorf("CheckToken refuses the token: %v", err)
	}

	r = e.run(ctx, nil, "whoami")
	if r.code != 0 {
		t.Fatalf("whoami: exit %d\n%s", r.code, r.errOut)
	}
	mustContain(t, "whoami", r.out, "Name:", "Administrator", "Username:", "admin", "Issuer:", "http://127.0.0.1:", "offline_access")

	// An expired access token is refreshed through the built-in provider.
	ent.Expiry = time.Now().Add(-time.Minute)
	if err := e.store().Save(ent); err != nil {
		t.Fatal(err)
	}
	r = e.run(ctx, nil, "token")
	if r.code != 0 || strings.TrimSpace(r.out) == ent.AccessToken || e.calls(procRefresh) != 1 {
		t.Fatalf("token after expiry: exit %d, refreshes %d\n%s", r.code, e.calls(procRefresh), r.errOut)
	}
	refreshed := e.entry()
	if refreshed.RefreshToken == ent.RefreshToken {
		t.Error("the built-in provider's refresh token was not rotated in the store")
	}

	r = e.run(ctx, nil, "logout")
	if r.code != 0 {
		t.Fatalf("logout: exit %d\n%s", r.code, r.errOut)
	}
	mustContain(t, "logout", r.errOut, "Revoked the refresh token at the identity provider.", "Deleted the stored tokens")
	c := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, e.apiURL)
	_, err := c.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: refreshed.RefreshToken}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnauthenticated {
		t.Errorf("refreshing with the revoked refresh token: %v, want Unauthenticated", err)
	}
}
