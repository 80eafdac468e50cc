package cli_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"

	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/servetest"
)

// TestBuiltinBrowserLogin drives the login page in headless Chromium, from
// the authorize URL to the loopback redirect: a wrong password first (the
// page says so and keeps the username), then the right one. The code the
// browser delivers is then redeemed with LoginCli, as the CLI would.
func TestBuiltinBrowserLogin(t *testing.T) {
	t.Parallel()
	chromium := issuertest.FindChromium(t)
	s := startBuiltinServe(t, map[string]string{
		"NSAUTH_DATA_DIR":       filepath.Join(t.TempDir(), "data"),
		"NSAUTH_ADMIN_PASSWORD": biAdminPassword,
	}, time.Now)
	s.waitReady(t)

	// The CLI's loopback listener.
	got := make(chan url.Values, 1)
	callback := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/auth/callback" {
			http.NotFound(w, r)
			return
		}
		select {
		case got <- r.URL.Query():
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>done</title><p id="done">Logged in</p>`)
	}))
	t.Cleanup(callback.Close)
	redirect := callback.URL + "/api/auth/callback"

	verifier := oauth2.GenerateVerifier()
	method, challenge := "S256", oauth2.S256ChallengeFromVerifier(verifier)
	authResp, err := s.api.GetAuthorizeUrl(context.Background(), connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
		State: "browser-state", RedirectUri: redirect, Scope: biScope, CodeChallenge: &challenge, CodeChallengeMethod: &method,
	}))
	if err != nil {
		t.Fatal(err)
	}

	browserLog := &servetest.Buffer{}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(browserLog),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	fail := func(what string, err error) {
		t.Helper()
		t.Fatalf("%s: %v\nbrowser output:\n%s", what, err, browserLog.String())
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(authResp.Msg.GetUrl()),
		chromedp.WaitVisible(css("#username")),
		chromedp.SendKeys(css("#username"), "admin"),
		chromedp.SendKeys(css("#password"), "not-the-password"),
		chromedp.Click(css("button[type=submit]")),
		chromedp.WaitVisible(css("#login-error")),
	)
	if err != nil {
		fail("submitting a wrong password", err)
	}
	errorText, err := chromedp.Run(ctx, chromedp.Text(css("#login-error")))
	if err != nil {
		fail("reading the error", err)
	}
	keptUsername, err := chromedp.Run(ctx, chromedp.Value(css("#username")))
	if err != nil {
		fail("reading the username field", err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(css("#password"), biAdminPassword),
		chromedp.Click(css("button[type=submit]")),
		chromedp.WaitVisible(css("#done")),
	)
	if err != nil {
		fail("submitting the right password", err)
	}
	finalURL, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		fail("reading the location", err)
	}
	if !strings.Contains(errorText, "Wrong username or password") {
		t.Errorf("error message = %q", errorText)
	}
	if keptUsername != "admin" {
		t.Errorf("username after a failure = %q, want it kept", keptUsername)
	}
	if !strings.HasPrefix(finalURL, redirect+"?") {
		t.Fatalf("browser ended at %q, want the loopback redirect", finalURL)
	}

	var q url.Values
	select {
	case q = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the loopback listener got no callback")
	}
	if q.Get("state") != "browser-state" || q.Get("code") == "" {
		t.Fatalf("callback query has state %q and a code: %v", q.Get("state"), q.Get("code") != "")
	}
	login, err := s.api.LoginCli(context.Background(), connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: q.Get("code"), RedirectUri: redirect, CodeVerifier: &verifier}))
	if err != nil {
		t.Fatalf("LoginCli with the browser's code: %v", err)
	}
	if _, err := s.checkToken(login.Msg.GetAccessToken().GetAccessToken()); err != nil {
		t.Fatalf("CheckToken: %v", err)
	}
}
