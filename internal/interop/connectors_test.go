//go:build interop

package interop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
)

// TestConnectors is issue 28's acceptance in headless Chromium, on SQLite
// and on PostgreSQL with two replicas (every sign-in started on replica 0
// and its upstream's redirect back served by replica 1): nsauth-server's
// built-in provider with OpenID Connect connectors added by
// `nsauth connectors add`, its upstreams two providers nobody here wrote:
// Ory Hydra (its login and consent answered by a test app) and
// zitadel/oidc's example provider (its own login page). "Continue with …"
// signs people into `nsauth login` and into an app of `nsauth apps add`,
// device login works through a connector, NSAUTH_MFA=required and the
// passkey offer apply after a connector sign-in, and --trust-upstream-mfa
// takes the upstream's second factor. Each suite prints
// "connector checks: N passed of M (upstream, backend)".
func TestConnectors(t *testing.T) {
	t.Parallel()
	bin := buildNsauthServer(t)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			t.Run("hydra", func(t *testing.T) { hydraConnectorChecks(t, bin, backend) })
			t.Run("zitadel", func(t *testing.T) { zitadelConnectorChecks(t, bin, backend) })
			t.Run("mfa", func(t *testing.T) { mfaConnectorChecks(t, bin, backend) })
			t.Run("ldap", func(t *testing.T) { ldapConnectorChecks(t, bin, backend) })
			t.Run("github", func(t *testing.T) { githubConnectorChecks(t, bin, backend) })
			t.Run("no-password-login", func(t *testing.T) { noPasswordLoginChecks(t, bin, backend) })
		})
	}
}

// label names the backend for a tally.
func (cd *connectorDeployment) label() string {
	if n := len(cd.Replicas); n > 1 {
		return fmt.Sprintf("%s, %d replicas", cd.backend, n)
	}
	return cd.backend
}

// checkCrossed checks that the sign-ins were started on replica 0 and
// finished on the other one (two replicas only).
func (cd *connectorDeployment) checkCrossed(t *testing.T, l *checklist) {
	t.Helper()
	if len(cd.Replicas) < 2 {
		return
	}
	starts, callbacks := cd.Crossed()
	t.Logf("sign-ins started on replica 0: %d; upstream callbacks served by replica 1: %d", starts, callbacks)
	l.Check(t, "every sign-in started on replica 0 came back through replica 1", starts > 0 && callbacks >= starts,
		"%d started, %d callbacks", starts, callbacks)
}

// hydraConnectorChecks: Hydra as the upstream of a connector that creates
// users of one domain.
func hydraConnectorChecks(t *testing.T, bin, backend string) {
	ctx := context.Background()
	h := connectorHydra(t)
	d := startConnectorDeployment(t, bin, backend)
	l := newConnectorChecks(t, "Ory Hydra v2.3.0, "+d.label())
	const display = "Ory Hydra"

	clientID, secret := h.RegisterConnector(t, d.Callback("hydra"))
	ada := upstreamUser{Subject: "hydra-ada-" + randomHex(4), Email: "ada@example.test", EmailVerified: true,
		Name: "Ada Lovelace", PreferredUsername: "ada", Groups: []string{"ops", "dev"}}
	h.App.SetUser(clientID, ada)
	shown := d.AddConnector(t, "hydra", h.Issuer, clientID, secret,
		"--display-name", display, "--allowed-domains", "example.test", "--create-users")
	l.Check(t, "connectors add --json names the callback to register upstream", strings.Contains(fmt.Sprint(shown), d.Callback("hydra")), "%v", shown)
	code, out, errOut := d.AdminIn(t, "", "connectors", "show", "hydra")
	l.Check(t, "connectors show names the callback and never the secret",
		code == 0 && strings.Contains(out, d.Callback("hydra")) && !strings.Contains(out+errOut, secret), "exit %d\n%s%s", code, out, errOut)
	code, out, errOut = d.AdminIn(t, "", "connectors", "list")
	l.Check(t, "connectors list shows it", code == 0 && strings.Contains(out, "hydra"), "exit %d\n%s%s", code, out, errOut)

	c := issuertest.NewChromium(t, 8*time.Minute)
	c.Do(t, "starting the browser", chromedp.Navigate("about:blank"))
	b := &connectorBrowser{c: c, d: d}

	// 1. nsauth login through the connector: a user is created.
	entry, configDir, ok := b.cliLogin(t, l, display)
	var sub string
	if ok {
		claims, _ := payload(entry.IDToken)
		sub, _ = claims["sub"].(string)
		l.Check(t, "the terminal's ID token: a user of nsauth's, not the upstream's subject", sub != "" && sub != ada.Subject && claims["iss"] == d.Issuer,
			"sub %v iss %v", claims["sub"], claims["iss"])
		l.Check(t, "the terminal's ID token: amr [fed]", slices.Equal(claimStrings(claims, "amr"), []string{"fed"}), "amr %v", claims["amr"])
		who := runServerBinary(ctx, d.deployment, configDir, &lockedBuffer{}, "whoami", "-o", "json")
		l.Check(t, "whoami names the created user (the upstream's preferred_username)", who.code == 0 && strings.Contains(who.out, `"ada"`),
			"exit %d\n%s", who.code, who.out)
		resp, err := apiClient(d.Issuer).CheckToken(ctx, bearer(&mgmtv1alpha1.CheckTokenRequest{}, entry.AccessToken))
		l.Check(t, "CheckToken accepts the terminal's access token", err == nil && resp.Msg.GetSubject() == sub, "%v", err)
		ref, err := apiClient(d.Issuer).RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: entry.RefreshToken}))
		l.Check(t, "the terminal's refresh token refreshes for the connector's user (no password)", err == nil && ref.Msg.GetAccessToken().GetAccessToken() != "", "%v", err)
		d.AssertLogsClean(t, secret, entry.AccessToken, entry.RefreshToken, entry.IDToken)
	}
	code, out, errOut = d.AdminIn(t, "", "users", "list")
	l.Check(t, "users list shows the created user", code == 0 && strings.Contains(out, "ada"), "exit %d\n%s%s", code, out, errOut)

	// 2. An app of `nsauth apps add`, prompt=login: through the connector
	// again; a connector sign-in alone is offered no passkey.
	cb := newAppCallback(t)
	app := d.AddApp(t, "connector-app", "--redirect-uri", cb.URL)
	res := b.appSignIn(t, l, "app", app, cb, "openid profile email groups", display)
	l.Check(t, "app: Continue with "+display+" comes back to the app (no passkey offered after a connector alone)", res.State.Kind == "done", "%s", res.State)
	if res.Claims != nil {
		l.Check(t, "app: the ID token names the same user as the terminal's", sub != "" && res.Claims["sub"] == sub, "sub %v, want %s", res.Claims["sub"], sub)
		l.Check(t, "app: amr [fed]", slices.Equal(claimStrings(res.Claims, "amr"), []string{"fed"}), "amr %v", res.Claims["amr"])
		groups := claimStrings(res.Claims, "groups")
		l.Check(t, "app: the groups scope brings the upstream's groups, prefixed hydra:",
			slices.Contains(groups, "hydra:ops") && slices.Contains(groups, "hydra:dev"), "groups %v", res.Claims["groups"])
		l.Check(t, "app: the ID token's email is the upstream's verified email", res.Claims["email"] == ada.Email, "email %v", res.Claims["email"])
		info, err := userinfo(d, res.Tokens.AccessToken)
		l.Check(t, "app: userinfo carries the groups too", err == nil && slices.Contains(claimStrings(info, "groups"), "hydra:ops"), "%v %v", info["groups"], err)
	}
	l.Check(t, "the upstream saw a login per sign-in", h.App.Logins(clientID) >= 2, "%d logins", h.App.Logins(clientID))

	// 2b. The upstream's redirect back, stolen: another browser (with a
	// CSRF cookie of its own) is refused it; the browser that began the
	// sign-in still finishes it.
	stolenCallbackChecks(t, l, b, app, cb, display)

	// 3. Device login through the connector, in a browser without a session.
	b.forget(t)
	connectorDeviceChecks(t, l, b, display, sub)

	// 4. The same email from another upstream subject is another user,
	// never the first (no linking by email); the username gets the
	// connector's name.
	b.forget(t)
	h.App.SetUser(clientID, upstreamUser{Subject: "hydra-other-" + randomHex(4), Email: ada.Email, EmailVerified: true,
		Name: "Not Ada", PreferredUsername: "ada"})
	res = b.appSignIn(t, l, "same email, another subject", app, cb, "openid profile", display)
	if l.Check(t, "same email, another subject: signs in", res.State.Kind == "done", "%s", res.State) && res.Claims != nil {
		l.Check(t, "same email, another subject: another user, never bound by email", res.Claims["sub"] != sub, "the same user %v", res.Claims["sub"])
		l.Check(t, "same email, another subject: the username gets -hydra", res.Claims["preferred_username"] == "ada-hydra",
			"preferred_username %v", res.Claims["preferred_username"])
	}

	// 5. A verified email of another domain: refused, no user created.
	b.forget(t)
	h.App.SetUser(clientID, upstreamUser{Subject: "hydra-eve-" + randomHex(4), Email: "eve@elsewhere.test", EmailVerified: true,
		Name: "Eve", PreferredUsername: "eve"})
	res = b.appSignIn(t, l, "another domain", app, cb, "openid", display)
	l.Check(t, "another domain: refused with a page of nsauth's", res.State.Kind == "message" || res.State.Kind == "page", "%s", res.State)
	_, out, _ = d.AdminIn(t, "", "users", "list")
	l.Check(t, "another domain: no user created", !strings.Contains(out, "eve"), "users list:\n%s", out)

	// 6. Without --create-users: the page names the command that links
	// the account; once linked, the sign-in is the linked user's.
	linkedID, linkedSecret := h.RegisterConnector(t, d.Callback("hydra-linked"))
	grace := upstreamUser{Subject: "hydra-grace-" + randomHex(4), Email: "grace@example.test", EmailVerified: true, Name: "Grace", PreferredUsername: "grace"}
	h.App.SetUser(linkedID, grace)
	d.AddConnector(t, "hydra-linked", h.Issuer, linkedID, linkedSecret, "--display-name", "Hydra without new users")
	b.forget(t)
	res = b.appSignIn(t, l, "not linked", app, cb, "openid profile", "Hydra without new users")
	l.Check(t, "not linked: refused with the command that links the account",
		res.State.Kind != "done" && strings.Contains(res.State.Text, "nsauth users link") &&
			strings.Contains(res.State.Text, "--connector hydra-linked") && strings.Contains(res.State.Text, "--subject "+grace.Subject),
		"%s", res.State)
	code, out, errOut = d.AdminIn(t, "", "users", "link", deployAdmin, "--connector", "hydra-linked", "--subject", grace.Subject)
	if l.Check(t, "users link binds the upstream subject to an existing user", code == 0, "exit %d\n%s%s", code, out, errOut) {
		b.forget(t)
		res = b.appSignIn(t, l, "linked", app, cb, "openid profile", "Hydra without new users")
		if l.Check(t, "linked: signs in", res.State.Kind == "done", "%s", res.State) && res.Claims != nil {
			l.Check(t, "linked: the ID token is the linked user's", res.Claims["preferred_username"] == deployAdmin,
				"preferred_username %v", res.Claims["preferred_username"])
		}
	}

	// 7. Disabled: the button is gone (on every replica at once); enabled
	// again: it is back.
	// A sign-in under way at the upstream when the connector is disabled
	// is refused when it comes back.
	h.App.SetUser(clientID, ada)
	b.forget(t)
	d.hold.Store(true)
	st := b.signIn(t, d.authorizeURL(t, authorizeParams(app.ClientID, cb.URL, "openid", nil)), display, d.Issuer+"/login/connector/")
	var inFlight string
	select {
	case inFlight = <-d.held:
	case <-time.After(5 * time.Second):
		l.Check(t, "a sign-in under way: the upstream redirected back", false, "%s", st)
	}
	d.hold.Store(false)
	code, out, errOut = d.AdminIn(t, "", "connectors", "disable", "hydra")
	if inFlight != "" {
		st = b.signIn(t, d.Issuer+inFlight, display, cb.URL)
		l.Check(t, "disabled while a sign-in was at the upstream: refused at the callback", st.Kind == "message" || st.Kind == "page", "%s", st)
	}
	if l.Check(t, "connectors disable", code == 0, "exit %d\n%s%s", code, out, errOut) {
		b.forget(t)
		st = b.signIn(t, d.authorizeURL(t, authorizeParams(app.ClientID, cb.URL, "openid", nil)), display, cb.URL)
		l.Check(t, "disabled: the login page has no Continue with "+display, st.Kind == "page" && strings.Contains(st.Text, "Hydra without new users"), "%s", st)
		code, out, errOut = d.AdminIn(t, "", "connectors", "enable", "hydra")
		l.Check(t, "connectors enable", code == 0, "exit %d\n%s%s", code, out, errOut)
		st = b.signIn(t, d.authorizeURL(t, authorizeParams(app.ClientID, cb.URL, "openid", nil)), display, cb.URL)
		l.Check(t, "enabled again: Continue with "+display+" signs in", st.Kind == "done", "%s", st)
	}
	d.checkCrossed(t, l)
	d.AssertLogsClean(t, secret, linkedSecret)
	auditChecks(t, l, d, secret, linkedSecret)
}

// auditChecks reads `nsauth audit -o json`: the connectors' story, one
// event per happening, with no connector secret.
func auditChecks(t *testing.T, l *checklist, d *connectorDeployment, secrets ...string) {
	t.Helper()
	code, out, errOut := d.AdminIn(t, "", "audit", "-o", "json")
	if !l.Check(t, "nsauth audit", code == 0, "exit %d\n%s", code, errOut) {
		return
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		var ev struct{ Type, Target, Reason, Username string }
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Type != "" {
			seen[ev.Type+" "+ev.Target] = true
			if ev.Type == "admin.user" && ev.Target == "hydra" && ev.Username == "ada" {
				seen["created ada"] = true
			}
		}
	}
	for _, want := range []string{"connector.added hydra", "connector.added hydra-linked", "connector.disabled hydra", "connector.enabled hydra",
		"login.succeeded hydra", "login.failed hydra", "login.failed hydra-linked", "user.linked hydra-linked", "created ada"} {
		l.Check(t, "audit: "+want, seen[want], "not among the events")
	}
	for i, s := range secrets {
		l.Check(t, fmt.Sprintf("audit: no connector secret (#%d)", i), !strings.Contains(out, s), "the audit trail holds it")
	}
}

// stolenCallbackChecks: the load balancer keeps the upstream's redirect
// back (code and state) from the browser that began the sign-in; another
// browser that opens it, having been to nsauth's login page itself, is
// refused; then the first browser opens it and gets to the app.
func stolenCallbackChecks(t *testing.T, l *checklist, b *connectorBrowser, app appCredentials, cb *appCallback, display string) {
	t.Helper()
	b.forget(t)
	verifier, state := oauth2.GenerateVerifier(), randomHex(8)
	params := authorizeParams(app.ClientID, cb.URL, "openid", nil)
	params.Set("state", state)
	params.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
	b.d.hold.Store(true)
	st := b.signIn(t, b.d.authorizeURL(t, params), display, b.d.Issuer+"/login/connector/")
	var stolen string
	select {
	case stolen = <-b.d.held:
	case <-time.After(5 * time.Second):
	}
	b.d.hold.Store(false)
	if !l.Check(t, "stolen callback: the upstream redirected back", stolen != "", "%s", st) {
		return
	}
	attacker := &connectorBrowser{c: issuertest.NewChromium(t, 2*time.Minute), d: b.d}
	attacker.c.Do(t, "attacker: nsauth's login page (a CSRF cookie of its own)",
		chromedp.Navigate(b.d.authorizeURL(t, authorizeParams(app.ClientID, cb.URL, "openid", nil))),
		chromedp.WaitVisible(chromedp.CSS("form")))
	ast := attacker.signIn(t, b.d.Issuer+stolen, display, cb.URL)
	l.Check(t, "stolen callback: another browser is refused", ast.Kind == "message" || ast.Kind == "page", "%s", ast)
	vst := b.signIn(t, b.d.Issuer+stolen, display, cb.URL)
	if l.Check(t, "stolen callback: the browser that began the sign-in still finishes it", vst.Kind == "done", "%s", vst) {
		res := b.redeem(t, l, "after the stolen callback", app, cb, state, verifier, appSignIn{State: vst})
		l.Check(t, "after the stolen callback: the app gets its tokens", res.Claims != nil, "no ID token")
	}
}

// connectorDeviceChecks: the device flow (x/oauth2) approved at nsauth's
// device pages after a sign-in through the connector.
func connectorDeviceChecks(t *testing.T, l *checklist, b *connectorBrowser, display, sub string) {
	t.Helper()
	ctx := context.Background()
	cb := newAppCallback(t)
	app := b.d.AddApp(t, "connector-device-app", "--public", "--redirect-uri", cb.URL,
		"--grant-type", "authorization_code,refresh_token,device_code")
	var disc struct {
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
		DeviceEndpoint        string `json:"device_authorization_endpoint"`
	}
	getJSONOrFail(t, b.d.Issuer+"/.well-known/openid-configuration", &disc)
	cfg := &oauth2.Config{ClientID: app.ClientID, Scopes: []string{"openid", "profile"},
		Endpoint: oauth2.Endpoint{AuthURL: disc.AuthorizationEndpoint, TokenURL: disc.TokenEndpoint,
			DeviceAuthURL: disc.DeviceEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
	da, err := cfg.DeviceAuth(ctx)
	if !l.Check(t, "device: authorization", err == nil && da.VerificationURIComplete != "", "%v", err) {
		return
	}
	st := b.signIn(t, da.VerificationURIComplete, display, "\x00")
	if !l.Check(t, "device: Continue with "+display+" leads to the approval page", st.Kind == "approve", "%s", st) {
		return
	}
	b.c.Do(t, "device: approve", chromedp.Click(chromedp.CSS("#approve")))
	st = b.waitKind(t, display, "\x00", "message")
	l.Check(t, "device: approved", st.Kind == "message", "%s", st)
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tok, err := cfg.DeviceAccessToken(pctx, da)
	if l.Check(t, "device: the device gets its tokens", err == nil && tok.AccessToken != "", "%v", err) {
		resp, err := apiClient(b.d.Issuer).CheckToken(ctx, bearer(&mgmtv1alpha1.CheckTokenRequest{}, tok.AccessToken))
		l.Check(t, "device: the access token is the connector user's", err == nil && sub != "" && resp.Msg.GetSubject() == sub, "%v", err)
	}
}

// zitadelConnectorChecks: zitadel/oidc's example provider as the upstream
// of a connector that creates no users: the first sign-in is refused with
// the command that links the account; linked, it signs into `nsauth login`
// and an app.
func zitadelConnectorChecks(t *testing.T, bin, backend string) {
	ctx := context.Background()
	d := startConnectorDeployment(t, bin, backend)
	l := newConnectorChecks(t, "zitadel/oidc v3.52.0 example provider, "+d.label())
	const display = "ZITADEL example"
	z := startZitadelUpstream(t, d.Callback("zitadel"))
	d.AddConnector(t, "zitadel", z.Issuer, z.ClientID, z.ClientSecret, "--display-name", display)

	c := issuertest.NewChromium(t, 6*time.Minute)
	c.Do(t, "starting the browser", chromedp.Navigate("about:blank"))
	b := &connectorBrowser{c: c, d: d, upstreamUser: zitadelUsername, upstreamPassword: zitadelPassword}

	cb := newAppCallback(t)
	app := d.AddApp(t, "zitadel-app", "--redirect-uri", cb.URL)
	res := b.appSignIn(t, l, "not linked", app, cb, "openid profile email", display)
	// zitadelop makes the username the subject.
	l.Check(t, "not linked: refused with the command that links the account",
		res.State.Kind != "done" && strings.Contains(res.State.Text, "nsauth users link") &&
			strings.Contains(res.State.Text, "--connector zitadel") && strings.Contains(res.State.Text, "--subject "+zitadelUsername),
		"%s", res.State)
	code, out, errOut := d.AdminIn(t, "", "users", "link", deployAdmin, "--connector", "zitadel", "--subject", zitadelUsername)
	if !l.Check(t, "users link", code == 0, "exit %d\n%s%s", code, out, errOut) {
		return
	}
	b.forget(t)
	entry, configDir, ok := b.cliLogin(t, l, display)
	var sub string
	if ok {
		claims, _ := payload(entry.IDToken)
		sub, _ = claims["sub"].(string)
		l.Check(t, "the terminal's ID token: amr [fed]", slices.Equal(claimStrings(claims, "amr"), []string{"fed"}), "amr %v", claims["amr"])
		who := runServerBinary(ctx, d.deployment, configDir, &lockedBuffer{}, "whoami", "-o", "json")
		l.Check(t, "whoami names the linked user", who.code == 0 && strings.Contains(who.out, `"`+deployAdmin+`"`), "exit %d\n%s", who.code, who.out)
	}
	res = b.appSignIn(t, l, "linked", app, cb, "openid profile", display)
	if l.Check(t, "app: Continue with "+display+" comes back to the app", res.State.Kind == "done", "%s", res.State) && res.Claims != nil {
		l.Check(t, "app: the same user as the terminal's", sub != "" && res.Claims["sub"] == sub, "sub %v", res.Claims["sub"])
	}
	d.checkCrossed(t, l)
	d.AssertLogsClean(t, z.ClientSecret, entry.AccessToken, entry.RefreshToken, entry.IDToken)
}

// mfaConnectorChecks: NSAUTH_MFA=required after a connector sign-in. A
// created user without a second factor is refused; once an administrator
// enrols an authenticator app, the connector sign-in asks for a code and
// then offers a passkey (a virtual authenticator adds one); a connector
// added with --trust-upstream-mfa takes the upstream's amr "otp" as the
// second factor and refuses an upstream login without one.
func mfaConnectorChecks(t *testing.T, bin, backend string) {
	h := connectorHydra(t)
	d := startConnectorDeployment(t, bin, backend, "NSAUTH_MFA=required")
	l := newConnectorChecks(t, "Ory Hydra v2.3.0 with NSAUTH_MFA=required, "+d.label())
	const display = "Ory Hydra"
	clientID, secret := h.RegisterConnector(t, d.Callback("hydra"))
	h.App.SetUser(clientID, upstreamUser{Subject: "hydra-bob-" + randomHex(4), Email: "bob@example.test", EmailVerified: true,
		Name: "Bob", PreferredUsername: "bob"})
	d.AddConnector(t, "hydra", h.Issuer, clientID, secret, "--display-name", display, "--allowed-domains", "example.test", "--create-users")

	c := issuertest.NewChromium(t, 6*time.Minute)
	c.Do(t, "starting the browser", chromedp.Navigate("about:blank"))
	authID := connectorAuthenticator(t, c)
	b := &connectorBrowser{c: c, d: d}
	cb := newAppCallback(t)
	app := d.AddApp(t, "mfa-app", "--redirect-uri", cb.URL)

	res := b.appSignIn(t, l, "no second factor", app, cb, "openid profile", display)
	l.Check(t, "MFA required: a connector user without a second factor is refused, naming the way out",
		res.State.Kind == "message" && strings.Contains(strings.ToLower(res.State.Text), "second factor"), "%s", res.State)
	wayOutChecks(t, l, b, "bob", display, res.State.Text)

	secretTOTP, err := d.enrolTOTP(t, "bob")
	if l.Check(t, "users totp enroll for the created user", err == nil, "%v", err) {
		b.forget(t)
		verifier := oauth2.GenerateVerifier()
		state := randomHex(8)
		params := authorizeParams(app.ClientID, cb.URL, "openid profile", nil)
		params.Set("state", state)
		params.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
		st := b.signIn(t, d.authorizeURL(t, params), display, cb.URL)
		if l.Check(t, "MFA required: the connector sign-in asks for the code", st.Kind == "totp", "%s", st) {
			code, _ := totpCode(secretTOTP, time.Now())
			c.Do(t, "typing the code", chromedp.SendKeys(chromedp.CSS("#code"), code), chromedp.Click(chromedp.CSS("form[action='/login/mfa'] button[type=submit]")))
			st = b.waitKind(t, display, cb.URL, "offer")
			if l.Check(t, "after the code a passkey is offered", st.Kind == "offer", "%s", st) {
				c.Do(t, "adding a passkey",
					chromedp.WaitVisible(chromedp.CSS("#passkey-button")),
					chromedp.SetValue(chromedp.CSS("#passkey-name"), "Laptop"),
					chromedp.Click(chromedp.CSS("#passkey-button")))
				st = b.waitKind(t, display, cb.URL, "done")
				l.Check(t, "the passkey added, the sign-in goes on to the app", st.Kind == "done", "%s", st)
				res := b.redeem(t, l, "code and passkey", app, cb, state, verifier, appSignIn{State: st})
				if res.Claims != nil {
					amr := claimStrings(res.Claims, "amr")
					l.Check(t, "amr after the connector and a code: fed, otp, mfa",
						slices.Contains(amr, "fed") && slices.Contains(amr, "otp") && slices.Contains(amr, "mfa"), "amr %v", amr)
				}
				code, out, errOut := d.AdminIn(t, "", "users", "passkeys", "bob")
				l.Check(t, "users passkeys lists the passkey", code == 0 && strings.Contains(out, "Laptop"), "exit %d\n%s%s", code, out, errOut)
				l.Check(t, "the authenticator holds one credential", len(connectorCredentials(t, c, authID)) == 1, "")
			}
		}
	}

	// --trust-upstream-mfa: the upstream's otp counts; without it, refused.
	trustID, trustSecret := h.RegisterConnector(t, d.Callback("hydra-mfa"))
	h.App.SetUser(trustID, upstreamUser{Subject: "hydra-carol-" + randomHex(4), Email: "carol@example.test", EmailVerified: true,
		Name: "Carol", PreferredUsername: "carol", AMR: []string{"pwd", "otp"}})
	d.AddConnector(t, "hydra-mfa", h.Issuer, trustID, trustSecret, "--display-name", "Hydra with MFA",
		"--allowed-domains", "example.test", "--create-users", "--trust-upstream-mfa")
	b.forget(t)
	verifier, state := oauth2.GenerateVerifier(), randomHex(8)
	params := authorizeParams(app.ClientID, cb.URL, "openid profile", nil)
	params.Set("state", state)
	params.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
	res = appSignIn{State: b.signIn(t, d.authorizeURL(t, params), "Hydra with MFA", cb.URL)}
	if res.State.Kind == "offer" {
		// The upstream's second factor is a proven one: a passkey may be
		// offered, as after nsauth's own. Not now.
		c.Do(t, "declining the passkey", chromedp.Click(chromedp.CSS("#passkey-skip")))
		res.State = b.waitKind(t, "Hydra with MFA", cb.URL, "done")
	}
	if res.State.Kind == "done" {
		res = b.redeem(t, l, "trusted upstream MFA", app, cb, state, verifier, res)
	}
	if l.Check(t, "--trust-upstream-mfa: the upstream's otp stands for the second factor", res.State.Kind == "done", "%s", res.State) && res.Claims != nil {
		amr := claimStrings(res.Claims, "amr")
		l.Check(t, "--trust-upstream-mfa: amr fed, mfa (and the upstream's otp)",
			slices.Contains(amr, "fed") && slices.Contains(amr, "mfa") && slices.Contains(amr, "otp"), "amr %v", amr)
	}
	h.App.SetUser(trustID, upstreamUser{Subject: "hydra-dave-" + randomHex(4), Email: "dave@example.test", EmailVerified: true,
		Name: "Dave", PreferredUsername: "dave", AMR: []string{"pwd"}})
	b.forget(t)
	res = b.appSignIn(t, l, "upstream without MFA", app, cb, "openid profile", "Hydra with MFA")
	l.Check(t, "--trust-upstream-mfa with an upstream amr of pwd only: MFA still required", res.State.Kind == "message", "%s", res.State)
	d.checkCrossed(t, l)
	d.AssertLogsClean(t, secret, trustSecret)
}

// wayOutChecks: the way out that the refusal of a connector user without
// a second factor names must work for a user without a password: an
// enrolment link whose page lets them prove who they are otherwise than by
// a password, or an administrator's `nsauth users totp enroll`.
func wayOutChecks(t *testing.T, l *checklist, b *connectorBrowser, username, display, refusal string) {
	t.Helper()
	if !strings.Contains(refusal, "enrol-link") {
		l.Check(t, "MFA required: the refusal names a way out for a user without a password", strings.Contains(refusal, "nsauth users totp enroll"), "%s", refusal)
		return
	}
	code, out, errOut := b.d.AdminIn(t, "", "users", "enrol-link", username)
	link := strings.TrimSpace(out)
	if !l.Check(t, "users enrol-link for the connector user", code == 0 && strings.HasPrefix(link, b.d.Issuer), "exit %d\n%s", code, errOut) {
		return
	}
	b.forget(t)
	b.c.Do(t, "opening the enrolment link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("form")))
	st := b.read("page")
	asksPassword := issuertest.Get(t, b.c, chromedp.Evaluate[bool](`document.querySelector("input[type=password]") !== null`))
	other := issuertest.Get(t, b.c, chromedp.Evaluate[bool](`[...document.querySelectorAll("button")].some(e => e.textContent.includes("Continue with "))`))
	if l.Check(t, "MFA required: the enrolment link the refusal names lets a user without a password in (not a password form only)",
		!asksPassword || other, "the link's page asks for the password %s has not got:\n%s", username, tail(st.Text, 8)) {
		// Continue with the upstream from the link's page: the enrolment
		// page follows (an authenticator app's code, #code).
		st := b.signIn(t, "", display, b.d.Issuer+"/never")
		l.Check(t, "MFA required: through the upstream from the enrolment link's page to enrolment", st.Kind == "totp" &&
			strings.Contains(strings.ToLower(st.Text), "authenticator"), "%s", st)
	}
	_, _, _ = b.d.AdminIn(t, "", "users", "enrol-link", username, "--revoke")
}

// connectorAuthenticator gives the browser a DevTools virtual
// authenticator (CTAP2, internal, resident keys, user verification).
func connectorAuthenticator(t *testing.T, c *issuertest.Chromium) webauthn.AuthenticatorID {
	t.Helper()
	var id webauthn.AuthenticatorID
	c.Do(t, "adding a virtual authenticator", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		res, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
				Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true,
				HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
			}})
		id = res.AuthenticatorID
		return err
	}))
	return id
}

func connectorCredentials(t *testing.T, c *issuertest.Chromium, id webauthn.AuthenticatorID) []*webauthn.Credential {
	t.Helper()
	var creds []*webauthn.Credential
	c.Do(t, "reading the authenticator's credentials", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		res, err := cdp.Call(ctx, tg, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
		creds = res.Credentials
		return err
	}))
	return creds
}

// userinfo asks the deployment's userinfo endpoint with an access token.
func userinfo(d *connectorDeployment, accessToken string) (map[string]any, error) {
	var disc struct {
		UserinfoEndpoint string `json:"userinfo_endpoint"`
	}
	if err := getJSON(d.Issuer+"/.well-known/openid-configuration", &disc); err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodGet, disc.UserinfoEndpoint, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("userinfo: HTTP %d", resp.StatusCode)
	}
	var out map[string]any
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
	return out, err
}
