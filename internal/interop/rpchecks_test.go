//go:build interop

package interop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/client/rs"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
)

// rpResource is an audience the public app may ask for (RFC 8707).
const rpResource = "https://api.rp.test"

// TestRelyingParties runs three relying-party libraries nobody here wrote
// against apps registered with `nsauth apps add` on nsauth-server, once
// on SQLite (one replica) and once on PostgreSQL with two replicas behind
// a load balancer that sends the browser to replica 0 and the apps' back
// channel to replica 1 (deployment.SplitBrowser): every code, session and
// token made at the pages is exchanged, refreshed, introspected and
// revoked on the other replica. The browser's part is played by Chromium
// through nsauth's own pages: oauth4webapi with a public client (PKCE S256
// and `none`), openid-client with a confidential one
// (interop/js/rp-checks.mjs), zitadel/oidc's rp and rs packages (ID token
// signatures verified against the provider's keys, isolation between
// apps), and x/oauth2 (device flow, code flow with PKCE). Each prints
// "RP checks: N passed of M (library, backend)".
func TestRelyingParties(t *testing.T) {
	t.Parallel()
	bin := buildNsauthServer(t)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			runRelyingParties(t, bin, backend)
		})
	}
}

// runRelyingParties runs every library's checks, each in a subtest of its
// own, on one deployment and one browser.
func runRelyingParties(t *testing.T, bin, backend string) {
	ctx := context.Background()
	d := startDeployment(t, bin, backend)
	label := backend
	if n := len(d.Replicas); n > 1 {
		d.SplitBrowser()
		label = fmt.Sprintf("%s, %d replicas", backend, n)
	}
	c := issuertest.NewChromium(t, 8*time.Minute)
	c.Do(t, "starting the browser", chromedp.Navigate("about:blank"))

	t.Run("oauth4webapi+openid-client", func(t *testing.T) { jsRPChecks(t, c, d, label) })
	t.Run("zitadel-rp", func(t *testing.T) { zitadelRPChecks(t, ctx, c, d, label) })
	t.Run("x-oauth2", func(t *testing.T) { xoauth2Checks(t, ctx, c, d, label) })

	if len(d.Replicas) > 1 {
		// The crossing is what the PostgreSQL run is for: make sure it
		// happened, the pages on replica 0 only and the back channel on
		// the last replica only.
		last := len(d.Replicas) - 1
		b0, o0 := d.Served(0)
		bl, ol := d.Served(last)
		t.Logf("the load balancer sent replica 0 %d browser and %d other requests, replica %d %d browser and %d other requests", b0, o0, last, bl, ol)
		if b0 == 0 || o0 != 0 || bl != 0 || ol == 0 {
			t.Errorf("the state did not cross replicas as meant: replica 0 served %d browser and %d other requests, replica %d %d browser and %d other requests", b0, o0, last, bl, ol)
		}
	}
}

// jsRPChecks runs interop/js/rp-checks.mjs (oauth4webapi and
// openid-client) and plays its browser.
func jsRPChecks(t *testing.T, c *issuertest.Chromium, d *deployment, label string) {
	t.Helper()
	listen := freeLoopbackAddr(t)
	cbBase := "http://" + listen
	spa := d.AddApp(t, "spa-app", "--public", "--redirect-uri", cbBase+"/public", "--audience", rpResource)
	conf := d.AddApp(t, "oc-app", "--redirect-uri", cbBase+"/conf", "--post-logout-redirect-uri", cbBase+"/bye")
	p := startNode(t, "rp-checks.mjs", map[string]string{
		"ISSUER": d.Issuer, "PUBLIC_CLIENT_ID": spa.ClientID,
		"CONF_CLIENT_ID": conf.ClientID, "CONF_CLIENT_SECRET": conf.ClientSecret,
		"CALLBACK_LISTEN": listen, "CALLBACK_BASE": cbBase, "RESOURCE": rpResource,
	})
	lists := map[string]*checklist{}
	deadline := time.After(4 * time.Minute)
	for {
		var line string
		select {
		case l, ok := <-p.Lines:
			if !ok {
				t.Fatalf("rp-checks.mjs ended early:\n%s", tail(p.Stderr.String(), 40))
			}
			line = l
		case <-deadline:
			t.Fatalf("rp-checks.mjs did not finish within 4 minutes:\n%s", tail(p.Stderr.String(), 40))
		}
		var m struct {
			Open    string `json:"open"`
			Library string `json:"library"`
			Check   string `json:"check"`
			OK      bool   `json:"ok"`
			Detail  string `json:"detail"`
			Done    bool   `json:"done"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Logf("rp-checks.mjs: %s", line)
			continue
		}
		switch {
		case m.Done:
			return
		case m.Open != "":
			u, _ := url.Parse(m.Open)
			if at, ok := driveToApp(t, c, m.Open, cbBase); !ok {
				stuck, _ := json.Marshal(map[string]string{"stuck": stuckPath(u, cbBase), "at": at})
				_, _ = p.Stdin.Write(append(stuck, '\n'))
			}
		case m.Library != "":
			l := lists[m.Library]
			if l == nil {
				l = newChecklist(t, m.Library+", "+label)
				lists[m.Library] = l
			}
			l.Check(t, m.Check, m.OK, "%s", m.Detail)
		}
	}
}

// stuckPath is the app's path the browser was sent towards: the
// redirect_uri or post_logout_redirect_uri of the request.
func stuckPath(u *url.URL, cbBase string) string {
	for _, k := range []string{"redirect_uri", "post_logout_redirect_uri"} {
		if v := u.Query().Get(k); strings.HasPrefix(v, cbBase) {
			return strings.TrimPrefix(v, cbBase)
		}
	}
	return ""
}

// driveToApp opens u and plays the user until the browser reaches an URL
// under app: the password form (as the administrator), and a provider page
// with a form (continue, consent, sign-out confirmation) by its first
// button that does not deny. It reports where the browser stopped when it
// did not get there.
func driveToApp(t *testing.T, c *issuertest.Chromium, u, app string) (string, bool) {
	t.Helper()
	// Every action runs in c.Ctx itself: the browser's tab belongs to the
	// context it was first used in, and a derived one would close it when
	// cancelled.
	ctx := c.Ctx
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		t.Logf("navigating: %v", err)
	}
	clicks := 0
	var loc string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		loc, _ = chromedp.Run(ctx, chromedp.Location())
		if strings.HasPrefix(loc, app) {
			return loc, true
		}
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState !== "complete" ? "loading" :
			document.querySelector("#password") ? "password" :
			document.querySelector("form button[type=submit]") ? "form" : "page"`))
		switch state {
		case "password":
			if clicks > 3 {
				return loc, false
			}
			clicks++
			_ = chromedp.Do(ctx,
				chromedp.SendKeys(chromedp.CSS("#username"), deployAdmin),
				chromedp.SendKeys(chromedp.CSS("#password"), deployAdminPassword),
				chromedp.Click(chromedp.CSS("button[type=submit]")))
			time.Sleep(300 * time.Millisecond)
		case "form":
			if clicks > 3 {
				return loc, false
			}
			clicks++
			_, _ = chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
				const b = [...document.querySelectorAll("form button[type=submit]")].find(b => !/deny|cancel|refuse/i.test(b.textContent + " " + (b.value || "")));
				if (!b) return false; b.click(); return true; })()`))
			time.Sleep(300 * time.Millisecond)
		case "page":
			// A page without a form: an error the provider shows instead
			// of redirecting. Give a redirect in progress a moment.
			time.Sleep(time.Second)
			if l, _ := chromedp.Run(ctx, chromedp.Location()); l == loc {
				return loc, false
			}
		default:
			time.Sleep(100 * time.Millisecond)
		}
	}
	return loc, false
}

// zitadelRPChecks: zitadel/oidc's relying party (rp) and resource server
// (rs) with two confidential apps: the code flow with PKCE (the ID token's
// signature checked against the provider's keys), userinfo, refresh,
// introspection and revocation, and the isolation between the two apps.
func zitadelRPChecks(t *testing.T, ctx context.Context, c *issuertest.Chromium, d *deployment, label string) {
	t.Helper()
	l := newChecklist(t, "zitadel/oidc v3.52.0 rp, "+label)
	cbA, cbB := newAppCallback(t), newAppCallback(t)
	a := d.AddApp(t, "rp-app", "--redirect-uri", cbA.URL)
	b := d.AddApp(t, "rp-other", "--redirect-uri", cbB.URL)
	scopes := []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopeOfflineAccess}
	relA, err := rp.NewRelyingPartyOIDC(ctx, d.Issuer, a.ClientID, a.ClientSecret, cbA.URL, scopes)
	if !l.Check(t, "discovery", err == nil, "%v", err) {
		return
	}
	relB, err := rp.NewRelyingPartyOIDC(ctx, d.Issuer, b.ClientID, b.ClientSecret, cbB.URL, scopes)
	if err != nil {
		t.Fatal(err)
	}

	verifier := oauth2.GenerateVerifier()
	state := randomHex(8)
	authURL := rp.AuthURL(state, relA, rp.WithCodeChallenge(oauth2.S256ChallengeFromVerifier(verifier)))
	if _, ok := driveToApp(t, c, authURL, cbA.URL); !l.Check(t, "authorization with PKCE comes back to the app", ok, "the browser did not come back") {
		return
	}
	q := cbA.wait(t)
	l.Check(t, "the authorization response carries state and iss", q.Get("state") == state && q.Get("iss") == d.Issuer, "%v", redactCode(q))
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, q.Get("code"), relA, rp.WithCodeVerifier(verifier))
	if !l.Check(t, "code exchange, ID token signature and claims verified", err == nil, "%v", err) {
		return
	}
	sub := tokens.IDTokenClaims.GetSubject()
	info, err := rp.Userinfo[*oidc.UserInfo](ctx, tokens.AccessToken, tokens.TokenType, sub, relA)
	l.Check(t, "userinfo", err == nil && info.Subject == sub, "%v", err)
	_, err = rp.VerifyIDToken[*oidc.IDTokenClaims](ctx, tokens.IDToken, relB.IDTokenVerifier())
	l.Check(t, "isolation: the app's ID token is refused by another app's verifier", err != nil, "rp-other accepted rp-app's ID token")

	refreshed, err := rp.RefreshTokens[*oidc.IDTokenClaims](ctx, relA, tokens.RefreshToken, "", "")
	l.Check(t, "refresh", err == nil && refreshed.AccessToken != "", "%v", err)
	refreshToken := tokens.RefreshToken
	if err == nil && refreshed.RefreshToken != "" {
		refreshToken = refreshed.RefreshToken
	}

	rsA, errA := rs.NewResourceServerClientCredentials(ctx, d.Issuer, a.ClientID, a.ClientSecret)
	rsB, errB := rs.NewResourceServerClientCredentials(ctx, d.Issuer, b.ClientID, b.ClientSecret)
	if l.Check(t, "resource server discovery", errA == nil && errB == nil, "%v %v", errA, errB) {
		own, err := rs.Introspect[*oidc.IntrospectionResponse](ctx, rsA, refreshed.AccessToken)
		l.Check(t, "introspection of the app's own access token", err == nil && own.Active, "%v", err)
		other, err := rs.Introspect[*oidc.IntrospectionResponse](ctx, rsB, refreshed.AccessToken)
		l.Check(t, "isolation: another app's introspection says inactive", err == nil && !other.Active, "active %v, %v", other != nil && other.Active, err)
	}

	err = rp.RevokeToken(ctx, relB, refreshToken, "refresh_token")
	_ = err // RFC 7009: the answer is the same whether or not the token was the caller's
	again, err := rp.RefreshTokens[*oidc.IDTokenClaims](ctx, relA, refreshToken, "", "")
	l.Check(t, "isolation: another app cannot revoke the app's refresh token", err == nil, "%v", err)
	if err == nil && again.RefreshToken != "" {
		refreshToken = again.RefreshToken
	}
	err = rp.RevokeToken(ctx, relA, refreshToken, "refresh_token")
	l.Check(t, "revocation", err == nil, "%v", err)
	_, err = rp.RefreshTokens[*oidc.IDTokenClaims](ctx, relA, refreshToken, "", "")
	l.Check(t, "a revoked refresh token is refused", err != nil, "it still works")

	// rp-app's redirect URI with rp-other's client id: refused without a
	// redirect.
	params := authorizeParams(b.ClientID, cbA.URL, "openid", nil)
	resp, err := noRedirectClient().Get(d.authorizeURL(t, params))
	if err == nil {
		loc := resp.Header.Get("Location")
		_ = resp.Body.Close()
		l.Check(t, "isolation: another app's redirect URI is refused without a redirect",
			resp.StatusCode >= 400 && !strings.HasPrefix(loc, cbA.URL), "HTTP %d to %q", resp.StatusCode, loc)
	} else {
		l.Check(t, "isolation: another app's redirect URI is refused without a redirect", false, "%v", err)
	}

	// An unregistered post-logout URI is never redirected to.
	endURL, err := rp.EndSession(ctx, relA, tokens.IDToken, "http://127.0.0.1:9/elsewhere", "s", "", nil)
	if l.Check(t, "end-session URL", err == nil, "%v", err) {
		at, reached := driveToApp(t, c, endURL.String(), "http://127.0.0.1:9/")
		l.Check(t, "an unregistered post_logout_redirect_uri is not redirected to", !reached, "the browser went to %s", at)
	}
}

// noRedirectClient follows no redirect.
func noRedirectClient() *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// xoauth2Checks: golang.org/x/oauth2 with a public app: the device flow
// (RFC 8628, which sends no secret), approved at nsauth's device pages,
// and the code flow with PKCE, refreshed by its TokenSource.
func xoauth2Checks(t *testing.T, ctx context.Context, c *issuertest.Chromium, d *deployment, label string) {
	t.Helper()
	l := newChecklist(t, "golang.org/x/oauth2 v0.38.0, "+label)
	cb := newAppCallback(t)
	app := d.AddApp(t, "device-app", "--public", "--redirect-uri", cb.URL,
		"--grant-type", "authorization_code,refresh_token,device_code")
	var disc struct {
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
		DeviceEndpoint        string `json:"device_authorization_endpoint"`
	}
	getJSONOrFail(t, d.Issuer+"/.well-known/openid-configuration", &disc)
	cfg := &oauth2.Config{
		ClientID: app.ClientID, RedirectURL: cb.URL,
		Scopes: []string{"openid", "profile", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: disc.AuthorizationEndpoint, TokenURL: disc.TokenEndpoint,
			DeviceAuthURL: disc.DeviceEndpoint, AuthStyle: oauth2.AuthStyleInParams},
	}

	da, err := cfg.DeviceAuth(ctx)
	if l.Check(t, "device authorization with a public client", err == nil && da.UserCode != "", "%v", err) {
		l.Check(t, "the user approves at the device pages", driveDevice(t, c, da.VerificationURIComplete), "the pages did not end with a message")
		pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		tok, err := cfg.DeviceAccessToken(pctx, da)
		cancel()
		if l.Check(t, "the device access token", err == nil && tok.AccessToken != "", "%v", err) {
			resp, err := apiClient(d.Issuer).CheckToken(ctx, bearer(&mgmtv1alpha1.CheckTokenRequest{}, tok.AccessToken))
			l.Check(t, "CheckToken accepts the device flow's access token", err == nil && resp.Msg.GetClientId() == app.ClientID, "%v", err)
		}
	}

	verifier := oauth2.GenerateVerifier()
	state := randomHex(8)
	u := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
	if _, ok := driveToApp(t, c, u, cb.URL); !l.Check(t, "code flow with PKCE comes back to the app", ok, "the browser did not come back") {
		return
	}
	q := cb.wait(t)
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if !l.Check(t, "code exchange with PKCE and no secret", err == nil && tok.Extra("id_token") != nil, "%v", err) {
		return
	}
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	next, err := cfg.TokenSource(ctx, &expired).Token()
	l.Check(t, "the TokenSource refreshes an expired token", err == nil && next.AccessToken != tok.AccessToken, "%v", err)
}

// driveDevice opens a device verification URI (the code filled in) and
// plays the user: continue, the password if asked, approve.
func driveDevice(t *testing.T, c *issuertest.Chromium, u string) bool {
	t.Helper()
	if err := chromedp.Do(c.Ctx, chromedp.Navigate(u)); err != nil {
		t.Logf("navigating: %v", err)
		return false
	}
	clicks := 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && clicks < 6; {
		state, _ := chromedp.Run(c.Ctx, chromedp.Evaluate[string](`document.readyState !== "complete" ? "loading" :
			document.querySelector("#approve") ? "approve" :
			document.querySelector("#password") ? "password" :
			document.querySelector("#message") ? "message" :
			document.querySelector("form button[type=submit]") ? "form" : "page"`))
		switch state {
		case "message":
			return true
		case "approve":
			clicks++
			_ = chromedp.Do(c.Ctx, chromedp.Click(chromedp.CSS("#approve")))
		case "password":
			clicks++
			_ = chromedp.Do(c.Ctx,
				chromedp.SendKeys(chromedp.CSS("#username"), deployAdmin),
				chromedp.SendKeys(chromedp.CSS("#password"), deployAdminPassword),
				chromedp.Click(chromedp.CSS("button[type=submit]")))
		case "form":
			clicks++
			_ = chromedp.Do(c.Ctx, chromedp.Click(chromedp.CSS("form button[type=submit]")))
		}
		time.Sleep(300 * time.Millisecond)
	}
	return false
}
