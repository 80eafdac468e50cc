//go:build interop

package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// What the Neosync stand-in is registered with.
const (
	neosyncApp      = "neosync-web"
	neosyncProvider = "nsauth" // AUTH_PROVIDER_ID: the callback is /api/auth/callback/nsauth
	neosyncAudience = "https://api.neosync.test"
	neosyncScope    = "openid profile email offline_access"
)

// TestNeosyncWebApp is issue 24's acceptance, on SQLite and on PostgreSQL
// with two replicas behind a load balancer (signed in through replica 0,
// refreshed and signed out through replica 1): Neosync's web app as it is
// written (interop/js/neosync-web.mjs: Auth.js with Neosync's
// configuration) is registered with `nsauth apps add`, signs in through
// nsauth's login page in Chromium, shows a session naming the user whose
// access token passes CheckToken, refreshes as Neosync's jwt callback does,
// then, in the same browser, `nsauth login` completes with one click and no
// password field, a second app's prompt=none gets a code without a page and
// a third-party app shows its consent page once; Neosync's sign-out comes
// back to its base URL, after which its refresh token is refused, while the
// terminal's offline login survives.
func TestNeosyncWebApp(t *testing.T) {
	t.Parallel()
	bin := buildNsauthServer(t)
	cases := []struct {
		name, backend string
		authCore      string // a package of interop/js
	}{
		{"sqlite", "sqlite", "@auth/core"},
		{"postgres", "postgres", "@auth/core"},
		// A newer next-auth's @auth/core, for the day Neosync upgrades.
		{"sqlite, auth-core 0.41", "sqlite", "auth-core-0.41"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runNeosyncWebApp(t, bin, tc.backend, tc.authCore)
		})
	}
}

func runNeosyncWebApp(t *testing.T, bin, backend, authCore string) {
	ctx := context.Background()
	d := startDeployment(t, bin, backend)
	last := len(d.Replicas) - 1

	webAddr := freeLoopbackAddr(t)
	_, port, _ := net.SplitHostPort(webAddr)
	// localhost, not 127.0.0.1: the app is another site than the provider,
	// as in production, so SameSite decides which cookies travel.
	base := "http://localhost:" + port
	app := d.AddApp(t, neosyncApp,
		"--redirect-uri", base+"/api/auth/callback/"+neosyncProvider,
		"--post-logout-redirect-uri", base,
		"--display-name", "Neosync",
		"--audience", neosyncAudience,
		// Short-lived tokens: Neosync's jwt callback refreshes on its own
		// clock, and its sign-out sends an expired ID token, as in use.
		"--access-token-ttl", neosyncTokenTTL.String())
	if app.ClientSecret == "" {
		t.Fatal("apps add printed no secret for a confidential app")
	}
	web := startNode(t, "neosync-web.mjs", map[string]string{
		"AUTH_ISSUER":                d.Issuer,
		"AUTH_CLIENT_ID":             app.ClientID,
		"AUTH_CLIENT_SECRET":         app.ClientSecret,
		"AUTH_AUDIENCE":              neosyncAudience,
		"AUTH_SCOPE":                 neosyncScope,
		"AUTH_PROVIDER_ID":           neosyncProvider,
		"AUTH_PROVIDER_NAME":         "nsauth",
		"AUTH_TRUST_HOST":            "true",
		"NEXTAUTH_URL":               base,
		"NEXTAUTH_SECRET":            randomHex(32),
		"NEOSYNC_STANDIN_LISTEN":     webAddr,
		"NEOSYNC_STANDIN_TEST_HOOKS": "1",
		"NEOSYNC_STANDIN_AUTH_CORE":  authCore,
	})
	ready := web.waitLine(t, ctx, "neosync-web listening on", 30*time.Second)
	_, version, _ := strings.Cut(ready, " with ")
	checks := newChecklist(t, version+" as Neosync's web app, "+backend)
	t.Cleanup(func() { assertClean(t, "the web app's standard error", web.Stderr.String(), app.ClientSecret) })

	c := issuertest.NewChromium(t, 4*time.Minute)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }

	// Sign in through nsauth's login page, on replica 0.
	c.Do(t, "sign in: the app's button to nsauth's login page",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(css("#sign-in")),
		chromedp.Click(css("#sign-in")),
		chromedp.WaitVisible(css("#password")),
		chromedp.SendKeys(css("#username"), deployAdmin),
		chromedp.SendKeys(css("#password"), deployAdminPassword),
		chromedp.Click(css("button[type=submit]")),
		chromedp.WaitVisible(css("#signed-in")),
	)
	checks.Check(t, "sign in through the login page with audience and scope params", true, "")
	name := strings.TrimSpace(issuertest.Get(t, c, chromedp.Text(css("#user-name"))))
	s := readSession(t, c, base)
	checks.Check(t, "the session carries an access token and an ID token", s.AccessToken != "" && s.IDToken != "", "session %+v", s.User)
	sub := checkTokenOn(t, checks, d, "sign-in", s.AccessToken)
	idClaims, _ := payload(s.IDToken)
	checks.Check(t, "the session names the user (the ID token's name)", name != "" && name == idClaims["name"] && s.User.Name == name,
		"the page shows %q, the session %q, the ID token %v", name, s.User.Name, idClaims["name"])
	checks.Check(t, "the ID token's aud is the app's client id", audiences(idClaims["aud"]).equal(neosyncApp), "aud %v", idClaims["aud"])
	checks.Check(t, "the ID token's iss is the issuer", idClaims["iss"] == d.Issuer, "iss %v", idClaims["iss"])
	atClaims, _ := payload(s.AccessToken)
	aud := audiences(atClaims["aud"])
	checks.Check(t, "the access token's aud holds nsauth's audience and AUTH_AUDIENCE", aud.has(d.Issuer) && aud.has(neosyncAudience), "aud %v", atClaims["aud"])

	// Refresh as Neosync's jwt callback does once the access token has
	// expired, on the other replica.
	d.Use(last)
	s2 := refreshedSession(t, checks, c, d, base, s, 1)
	apps := ssoChecks(t, ctx, c, d, sub)
	// Sign out with a live access token (refreshed again) and the first
	// ID token, long expired.
	s3 := refreshedSession(t, checks, c, d, base, s2, 2)

	// Neosync's sign-out: next-auth's signOut, then its provider-sign-out
	// route to end_session_endpoint with id_token_hint (the first ID
	// token) and post_logout_redirect_uri = NEXTAUTH_URL.
	c.Do(t, "sign out: the app's button",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(css("#sign-out")),
		chromedp.Click(css("#sign-out")),
	)
	final, confirmed := followSignOut(t, c, base)
	checks.Check(t, "sign-out comes back to the app's base URL", strings.TrimSuffix(final, "/") == base, "ended at %s", final)
	checks.Check(t, "sign-out with an expired id_token_hint shows one confirmation page", confirmed, "no confirmation page")
	var refused struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	}
	postJSON(t, base+"/test/refresh", &refused)
	checks.Check(t, "after sign-out the app's refresh token is refused", refused.Status == http.StatusBadRequest && refused.Error == "invalid_grant",
		"HTTP %d %q", refused.Status, refused.Error)
	if live := time.Until(expiry(s3.AccessToken)); live > 0 {
		checks.Check(t, "after sign-out the app's access token is refused", eventuallyRefused(t, d, s3.AccessToken, live), "CheckToken still accepts it")
	} else {
		t.Errorf("the access token expired before the sign-out ended: the machine is too slow for %v tokens", neosyncTokenTTL)
	}
	afterSignOutChecks(t, ctx, c, d, apps)
	d.AssertLogsClean(t, app.ClientSecret, s.AccessToken, s.IDToken, s2.AccessToken, s3.AccessToken)
}

// neosyncTokenTTL is the web app's access and ID token lifetime.
const neosyncTokenTTL = 15 * time.Second

// refreshedSession waits for prev's access token to expire, then reads the
// session, which makes Neosync's jwt callback refresh it (the n-th
// refresh), and checks the new access token.
func refreshedSession(t *testing.T, checks *checklist, c *issuertest.Chromium, d *deployment, base string, prev session, n int) session {
	t.Helper()
	// Auth.js dates the expiry from its own clock when the answer arrived:
	// read the session until the jwt callback has refreshed.
	time.Sleep(time.Until(expiry(prev.AccessToken)) + time.Second)
	s := readSession(t, c, base)
	for deadline := time.Now().Add(10 * time.Second); s.AccessToken == prev.AccessToken && time.Now().Before(deadline); {
		time.Sleep(time.Second)
		s = readSession(t, c, base)
	}
	var st standinState
	getJSONOrFail(t, base+"/test/state", &st)
	checks.Check(t, fmt.Sprintf("Neosync's refresh POST (client_secret_post) succeeds (%d)", n), st.Refreshes == n && st.RefreshFailures == 0,
		"refreshes %d, failures %d (%s)", st.Refreshes, st.RefreshFailures, st.LastRefreshError)
	checks.Check(t, fmt.Sprintf("the refreshed session has a new access token (%d)", n), s.AccessToken != "" && s.AccessToken != prev.AccessToken, "same or no access token")
	checks.Check(t, fmt.Sprintf("the session keeps the first ID token (%d)", n), s.IDToken == prev.IDToken, "the ID token changed")
	if s.AccessToken != "" {
		checkTokenOn(t, checks, d, fmt.Sprintf("refresh %d", n), s.AccessToken)
	}
	return s
}

// expiry is a JWT's exp.
func expiry(jwt string) time.Time {
	claims, _ := payload(jwt)
	exp, _ := claims["exp"].(float64)
	return time.Unix(int64(exp), 0)
}

// session is what Neosync's session callback returns.
type session struct {
	User struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"user"`
	AccessToken string `json:"accessToken"`
	IDToken     string `json:"idToken"`
}

type standinState struct {
	Refreshes        int    `json:"refreshes"`
	RefreshFailures  int    `json:"refreshFailures"`
	LastRefreshError string `json:"lastRefreshError"`
}

// readSession reads /api/auth/session in the browser (its cookies).
func readSession(t *testing.T, c *issuertest.Chromium, base string) session {
	t.Helper()
	c.Do(t, "reading the session", chromedp.Navigate(base+"/api/auth/session"), chromedp.WaitReady(chromedp.CSS("body")))
	text := issuertest.Get(t, c, chromedp.Text(chromedp.CSS("body")))
	var s session
	if err := json.Unmarshal([]byte(text), &s); err != nil {
		t.Fatalf("/api/auth/session is not JSON: %v", err)
	}
	return s
}

// checkTokenOn asks every replica's CheckToken about token and returns its
// subject.
func checkTokenOn(t *testing.T, checks *checklist, d *deployment, when, token string) string {
	t.Helper()
	var sub string
	for i, r := range d.Replicas {
		resp, err := apiClient(r).CheckToken(context.Background(), bearer(&mgmtv1alpha1.CheckTokenRequest{}, token))
		ok := err == nil && resp.Msg.GetSubject() != "" && resp.Msg.GetIssuer() == d.Issuer
		checks.Check(t, fmt.Sprintf("CheckToken on replica %d accepts the access token (%s)", i, when), ok, "%v", err)
		if ok {
			sub = resp.Msg.GetSubject()
		}
	}
	return sub
}

// eventuallyRefused reports whether every replica's CheckToken refuses token
// within 5 seconds (or within, when shorter: before it expires).
func eventuallyRefused(t *testing.T, d *deployment, token string, within time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(min(within, 5*time.Second))
	for _, r := range d.Replicas {
		for {
			_, err := apiClient(r).CheckToken(context.Background(), bearer(&mgmtv1alpha1.CheckTokenRequest{}, token))
			if connect.CodeOf(err) == connect.CodeUnauthenticated {
				break
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return true
}

// apiClient speaks Connect over HTTP/1.1, as a load balancer would carry it.
func apiClient(baseURL string) mgmtv1alpha1connect.AuthServiceClient {
	return mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, baseURL)
}

// followSignOut waits for the browser to come back to base after the
// app's sign-out, pressing the provider's confirmation button when it shows
// one. It returns the final URL and whether a confirmation page was shown.
func followSignOut(t *testing.T, c *issuertest.Chromium, base string) (string, bool) {
	t.Helper()
	const button = "form button[type=submit], form input[type=submit]"
	confirmed := false
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		loc, err := chromedp.Run(c.Ctx, chromedp.Location())
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		page, err := chromedp.Run(c.Ctx, chromedp.Evaluate[string](`document.readyState !== "complete" ? "loading" :
			document.querySelector("#signed-out") ? "signed-out" :
			document.querySelector("`+button+`") ? "form" : "other"`))
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		hasButton := page == "form"
		if strings.HasPrefix(loc, base) && page == "signed-out" {
			return loc, confirmed
		}
		if !strings.HasPrefix(loc, base) && hasButton && !confirmed {
			confirmed = true
			c.Do(t, "sign out: the provider's confirmation", chromedp.Click(chromedp.CSS(button)))
			continue
		}
		time.Sleep(100 * time.Millisecond)
	}
	loc, _ := chromedp.Run(c.Ctx, chromedp.Location())
	text, _ := chromedp.Run(c.Ctx, chromedp.Text(chromedp.CSS("body")))
	t.Fatalf("sign-out did not come back to %s; the browser is at %s:\n%s", base, loc, tail(text, 20))
	return "", false
}

// ssoChecks are the single sign-on acceptance in the browser signed in to
// the web app: `nsauth login` with one click, a second app's prompt=none,
// a third-party app's consent once.
func ssoChecks(t *testing.T, ctx context.Context, c *issuertest.Chromium, d *deployment, sub string) ssoApps {
	t.Helper()
	checks := newChecklist(t, "nsauth's browser session (SSO), "+d.backend)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }

	// nsauth login: one "Continue as" page, one button, no password.
	configDir := t.TempDir()
	loginErr := &lockedBuffer{}
	done := make(chan cliResult, 1)
	go func() {
		done <- runServerBinary(ctx, d, configDir, loginErr, "login", "--no-browser", "--timeout", "2m")
	}()
	authURL := waitLoginURL(t, loginErr, done)
	c.Do(t, "nsauth login: the provider's page",
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(css("form button[type=submit]")),
	)
	noPassword := issuertest.Get(t, c, chromedp.Evaluate[bool](`document.querySelector("input[type=password]") === null`))
	checks.Check(t, "nsauth login in a signed-in browser shows no password field", noPassword, "the page asks for a password")
	c.Do(t, "nsauth login: continue", chromedp.Click(css("form button[type=submit]")))
	select {
	case r := <-done:
		checks.Check(t, "nsauth login completes with one click", r.code == 0, "exit %d\n%s", r.code, r.errOut)
		who := runServerBinary(ctx, d, configDir, &lockedBuffer{}, "whoami", "-o", "json")
		checks.Check(t, "nsauth login is the web app's user", who.code == 0 && sub != "" && strings.Contains(who.out, sub), "whoami: exit %d", who.code)
	case <-time.After(60 * time.Second):
		checks.Check(t, "nsauth login completes with one click", false, "login did not finish:\n%s", loginErr.String())
	}

	// A second first-party app: prompt=none gets a code without a page.
	cb := newAppCallback(t)
	bc := newBackchannelReceiver(t)
	d.AddApp(t, "second-app", "--redirect-uri", cb.URL, "--backchannel-logout-uri", bc.URL)
	q := cb.navigate(t, c, d, authorizeParams("second-app", cb.URL, "openid profile", url.Values{"prompt": {"none"}}))
	checks.Check(t, "a second app's prompt=none returns a code without a page", q.Get("code") != "" && q.Get("error") == "", "callback %v", redactCode(q))
	checks.Check(t, "the authorization response carries iss (RFC 9207)", q.Get("iss") == d.Issuer, "iss %q", q.Get("iss"))

	// A third-party app: the consent page once, listing the scopes.
	cb3 := newAppCallback(t)
	d.AddApp(t, "third-party-app", "--redirect-uri", cb3.URL, "--third-party")
	params := authorizeParams("third-party-app", cb3.URL, "openid profile email", nil)
	c.Do(t, "third-party app: the consent page", chromedp.Navigate(d.authorizeURL(t, params)), chromedp.WaitVisible(css("form button[type=submit]")))
	page := issuertest.Get(t, c, chromedp.Text(css("body")))
	checks.Check(t, "a third-party app's consent page lists the scopes", strings.Contains(page, "email") && strings.Contains(page, "profile"), "page:\n%s", tail(page, 20))
	clicked := issuertest.Get(t, c, chromedp.Evaluate[bool](`(() => {
		const b = [...document.querySelectorAll("form button[type=submit]")].find(b => !/deny|cancel|refuse/i.test(b.textContent + " " + (b.value || "")));
		if (!b) return false; b.click(); return true; })()`))
	apps := ssoApps{cliConfigDir: configDir, second: cb, secondBackchannel: bc}
	if !checks.Check(t, "the consent page has an approve button", clicked, "no approve button") {
		return apps
	}
	q = cb3.wait(t)
	checks.Check(t, "approving consent returns a code", q.Get("code") != "", "callback %v", redactCode(q))
	q = cb3.navigate(t, c, d, authorizeParams("third-party-app", cb3.URL, "openid profile email", nil))
	checks.Check(t, "consent is asked once: the next authorization has no page", q.Get("code") != "", "callback %v", redactCode(q))
	return apps
}

// ssoApps are the apps ssoChecks signed in to, for the checks after the
// web app's sign-out.
type ssoApps struct {
	cliConfigDir      string // nsauth login's tokens (offline_access)
	second            *appCallback
	secondBackchannel *backchannelReceiver
}

// afterSignOutChecks: the terminal's offline login survives the web app's
// sign-out; the second app, whose grant ended with the session, receives a
// logout token; the browser session is over (prompt=none: login_required).
func afterSignOutChecks(t *testing.T, ctx context.Context, c *issuertest.Chromium, d *deployment, apps ssoApps) {
	t.Helper()
	checks := newChecklist(t, "nsauth's logout rule, "+d.backend)
	store, err := tokenstore.New(tokenstore.Config{Dir: apps.cliConfigDir})
	if err != nil {
		t.Fatal(err)
	}
	apiURL, err := tokenstore.NormalizeAPIURL(d.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	if entry, err := store.Load(apiURL); checks.Check(t, "nsauth login stored its tokens", err == nil, "%v", err) {
		_, err := apiClient(d.Issuer).RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: entry.RefreshToken}))
		checks.Check(t, "the terminal's offline login survives the web app's sign-out", err == nil, "RefreshCli: %v", err)
	}
	if apps.secondBackchannel != nil {
		problem := apps.secondBackchannel.verifyLogoutToken(t, d, "second-app")
		checks.Check(t, "the second app receives a valid back-channel logout token", problem == "", "%s", problem)
	}
	if apps.second != nil {
		q := apps.second.navigate(t, c, d, authorizeParams("second-app", apps.second.URL, "openid", url.Values{"prompt": {"none"}}))
		checks.Check(t, "after sign-out the browser session is over: prompt=none gets login_required", q.Get("error") == "login_required", "callback %v", redactCode(q))
	}
}

// authorizeParams is an authorization request with PKCE S256.
func authorizeParams(clientID, redirectURI, scope string, extra url.Values) url.Values {
	v := url.Values{
		"client_id": {clientID}, "response_type": {"code"}, "scope": {scope}, "redirect_uri": {redirectURI},
		"state": {randomHex(8)}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
		"code_challenge_method": {"S256"},
	}
	for k, vs := range extra {
		v[k] = vs
	}
	return v
}

// authorizeURL is the discovered authorization endpoint with params.
func (d *deployment) authorizeURL(t *testing.T, params url.Values) string {
	t.Helper()
	var disc struct {
		AuthorizationEndpoint string `json:"authorization_endpoint"`
	}
	getJSONOrFail(t, d.Issuer+"/.well-known/openid-configuration", &disc)
	return disc.AuthorizationEndpoint + "?" + params.Encode()
}

// appCallback is an app's redirect URI: it keeps what arrives.
type appCallback struct {
	URL string
	got chan url.Values
}

func newAppCallback(t *testing.T) *appCallback {
	t.Helper()
	cb := &appCallback{got: make(chan url.Values, 8)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		cb.got <- r.URL.Query()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>App</title><p id="app-done">done</p>`))
	}))
	t.Cleanup(srv.Close)
	cb.URL = srv.URL + "/callback"
	return cb
}

// navigate opens the authorization request in the browser and returns what
// reached the callback; the browser must end on the app's page at once
// (no page of the provider's waited for a click).
func (cb *appCallback) navigate(t *testing.T, c *issuertest.Chromium, d *deployment, params url.Values) url.Values {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.Ctx, 20*time.Second) // the tab exists: cancelling ends only these steps
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(d.authorizeURL(t, params)), chromedp.WaitVisible(chromedp.CSS("#app-done"))); err != nil {
		loc, _ := chromedp.Run(c.Ctx, chromedp.Location())
		text, _ := chromedp.Run(c.Ctx, chromedp.Text(chromedp.CSS("body")))
		t.Errorf("the browser stopped at %s instead of coming back to the app:\n%s", loc, tail(text, 20))
		return url.Values{}
	}
	return cb.wait(t)
}

func (cb *appCallback) wait(t *testing.T) url.Values {
	t.Helper()
	select {
	case q := <-cb.got:
		return q
	case <-time.After(20 * time.Second):
		t.Error("nothing reached the app's redirect URI")
		return url.Values{}
	}
}

// redactCode shows a callback's parameters without the code.
func redactCode(q url.Values) url.Values {
	r := url.Values{}
	for k, v := range q {
		if k == "code" {
			v = []string{"…"}
		}
		r[k] = v
	}
	return r
}

// runServerBinary runs an nsauth client command with the built
// nsauth-server binary against the deployment's issuer (which serves the
// API too), with configDir for its tokens.
func runServerBinary(ctx context.Context, d *deployment, configDir string, errOut *lockedBuffer, args ...string) cliResult {
	var out lockedBuffer
	cmd := exec.CommandContext(ctx, d.bin, append(args, "--config-dir", configDir)...)
	cmd.Env = append(slices.Clone(d.env), "NSAUTH_API_URL="+d.Issuer)
	cmd.Stdout, cmd.Stderr = &out, errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		code = 1
		var exit interface{ ExitCode() int }
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		}
	}
	return cliResult{code: code, out: out.String(), errOut: errOut.String()}
}

// audienceList is a JWT's aud, a string or an array.
type audienceList []string

func audiences(v any) audienceList {
	switch a := v.(type) {
	case string:
		return audienceList{a}
	case []any:
		var l audienceList
		for _, s := range a {
			if s, ok := s.(string); ok {
				l = append(l, s)
			}
		}
		return l
	}
	return nil
}

func (l audienceList) has(s string) bool { return slices.Contains(l, s) }

func (l audienceList) equal(s ...string) bool { return slices.Equal(l, s) }

// postJSON POSTs nothing to u and decodes the JSON answer into out.
func postJSON(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Post(u, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("POST %s: %v", u, err)
		}
	}
}

func getJSONOrFail(t *testing.T, u string, out any) {
	t.Helper()
	if err := getJSON(u, out); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}
