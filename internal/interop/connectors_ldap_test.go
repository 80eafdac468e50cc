//go:build interop

package interop_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/connector/ldaptest"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// ldapConnectorChecks: OpenLDAP's slapd (internal/connector/ldaptest's
// directory, StartTLS with its test CA) as a connector that creates users:
// the login page's account choice in Chromium, a wrong password and a
// disabled directory user refused alike, groups in the tokens, `nsauth
// login`, and a refresh refused once the person is deleted from the
// directory (checked at most once per --check-interval, on the other
// replica).
func ldapConnectorChecks(t *testing.T, bin, backend string) {
	ctx := context.Background()
	dir := ldaptest.Start(t)
	d := startConnectorDeployment(t, bin, backend)
	l := newConnectorChecks(t, "OpenLDAP slapd, "+d.label())
	const display = "Example directory"
	code, out, errOut := d.AdminIn(t, ldaptest.BindPassword+"\n", "connectors", "add", "ldap", "--type", "ldap",
		"--url", dir.URL, "--start-tls", "--root-ca-file", dir.CAFile,
		"--bind-dn", ldaptest.BindDN, "--bind-password-stdin",
		"--user-base-dn", ldaptest.PeopleDN, "--user-filter", ldaptest.UserFilter,
		"--group-base-dn", ldaptest.GroupsDN, "--group-filter", ldaptest.GroupFilter,
		"--display-name", display, "--create-users", "--check-interval", "1s")
	if !l.Check(t, "connectors add --type ldap", code == 0, "exit %d\n%s%s", code, out, errOut) {
		return
	}
	assertClean(t, "connectors add's output", out+errOut, ldaptest.BindPassword)

	c := issuertest.NewChromium(t, 5*time.Minute)
	c.Do(t, "starting the browser", chromedp.Navigate("about:blank"))
	b := &connectorBrowser{c: c, d: d}
	cb := newAppCallback(t)
	app := d.AddApp(t, "ldap-app", "--redirect-uri", cb.URL)
	authorize := func(verifier, state string) string {
		params := url.Values{
			"client_id": {app.ClientID}, "response_type": {"code"}, "scope": {"openid profile groups"}, "redirect_uri": {cb.URL},
			"state": {state}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)},
			"code_challenge_method": {"S256"}, "prompt": {"login"},
		}
		return d.authorizeURL(t, params)
	}

	st := b.directorySignIn(t, authorize(oauth2.GenerateVerifier(), randomHex(8)), "ldap", ldaptest.Alice.UID, "not-"+ldaptest.Alice.Password, cb.URL)
	wrong := loginError(st)
	l.Check(t, "a wrong directory password is refused on the login page", st.Kind == "page" && wrong != "", "%s", st)
	st = b.directorySignIn(t, authorize(oauth2.GenerateVerifier(), randomHex(8)), "ldap", ldaptest.Carol.UID, ldaptest.Carol.Password, cb.URL)
	l.Check(t, "a disabled directory user is refused like a wrong password", st.Kind == "page" && loginError(st) == wrong, "%s", st)

	verifier, state := oauth2.GenerateVerifier(), randomHex(8)
	st = b.directorySignIn(t, authorize(verifier, state), "ldap", ldaptest.Alice.UID, ldaptest.Alice.Password, cb.URL)
	if l.Check(t, "the directory's password signs in to the app", st.Kind == "done", "%s", st) {
		res := b.redeem(t, l, "directory", app, cb, state, verifier, appSignIn{State: st})
		if res.Claims != nil {
			l.Check(t, "directory: amr [pwd]", slices.Equal(claimStrings(res.Claims, "amr"), []string{"pwd"}), "amr %v", res.Claims["amr"])
			groups := claimStrings(res.Claims, "groups")
			l.Check(t, "directory: groups prefixed ldap:", slices.Contains(groups, "ldap:admins") && slices.Contains(groups, "ldap:developers"), "groups %v", groups)
			l.Check(t, "directory: the user is the directory's uid", res.Claims["preferred_username"] == ldaptest.Alice.UID, "preferred_username %v", res.Claims["preferred_username"])
		}
	}

	// nsauth login as Dave, who then leaves the directory: his refresh is
	// refused after the check interval.
	b.forget(t)
	configDir := t.TempDir()
	errBuf := &lockedBuffer{}
	done := make(chan cliResult, 1)
	go func() {
		done <- runServerBinary(ctx, d.deployment, configDir, errBuf, "login", "--no-browser", "--timeout", "2m")
	}()
	authURL := waitLoginURL(t, errBuf, done)
	au, _ := url.Parse(authURL)
	st = b.directorySignIn(t, authURL, "ldap", ldaptest.Dave.UID, ldaptest.Dave.Password, au.Query().Get("redirect_uri"))
	l.Check(t, "nsauth login with the directory's password", st.Kind == "done", "%s", st)
	var r cliResult
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		r = cliResult{code: -1, errOut: errBuf.String()}
	}
	if l.Check(t, "nsauth login finishes", r.code == 0, "exit %d\n%s", r.code, tail(r.errOut, 10)) {
		entry := loadEntry(t, d, configDir)
		ref, err := apiClient(d.Issuer).RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: entry.RefreshToken}))
		l.Check(t, "a directory user's refresh works while the directory knows them", err == nil, "%v", err)
		dir.Delete(t, ldaptest.Dave)
		time.Sleep(1500 * time.Millisecond)
		if err == nil {
			_, err = apiClient(d.Issuer).RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: ref.Msg.GetAccessToken().GetRefreshToken()}))
			l.Check(t, "deleted from the directory: the refresh is refused", err != nil && connect.CodeOf(err) != connect.CodeUnavailable && connect.CodeOf(err) != connect.CodeInternal, "%v", err)
		}
	}
	// No callback here: the password form is served by replica 0, the
	// refreshes by replica 1.
	d.AssertLogsClean(t, ldaptest.BindPassword, ldaptest.Alice.Password, ldaptest.Dave.Password)
}

// directorySignIn opens u, chooses the connector in the password form's
// account list, types the credentials and returns where the browser
// stopped (done: at a URL under done; page: the login page again).
func (b *connectorBrowser) directorySignIn(t *testing.T, u, connectorName, username, password, done string) pageState {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.c.Ctx, 30*time.Second) // the tab exists: cancelling ends only these steps
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(u),
		chromedp.WaitVisible(chromedp.CSS("select#connector")),
		chromedp.SetValue(chromedp.CSS("select#connector"), connectorName),
		chromedp.SendKeys(chromedp.CSS("#username"), username),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
	); err != nil {
		return b.read("timeout")
	}
	// The page we leave is marked: the state is read from the next.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.nsauthLeft = true`)); err != nil {
		return b.read("timeout")
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("form[action='/login'] button[type=submit]"))); err != nil {
		return b.read("timeout")
	}
	js := `window.nsauthLeft ? "loading" : ` + b.stateJS("\x00", done)
	var st pageState
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		kind, err := chromedp.Run(b.c.Ctx, chromedp.Evaluate[string](js))
		if err != nil || kind == "loading" {
			continue
		}
		return b.read(kind)
	}
	st.Kind = "timeout"
	return st
}

// loginError is the login page's error line, or "".
func loginError(st pageState) string { return strings.TrimSpace(st.Error) }

// loadEntry is what `nsauth login` stored in configDir for the deployment.
func loadEntry(t *testing.T, d *connectorDeployment, configDir string) tokenstore.Entry {
	t.Helper()
	store, err := tokenstore.New(tokenstore.Config{Dir: configDir})
	if err != nil {
		t.Fatal(err)
	}
	apiURL, err := tokenstore.NormalizeAPIURL(d.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := store.Load(apiURL)
	if err != nil {
		t.Fatalf("loading the stored tokens: %v", err)
	}
	return *entry
}
