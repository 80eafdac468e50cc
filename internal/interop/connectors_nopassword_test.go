//go:build interop

package interop_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nsauth/nsauth/internal/issuer/issuertest"
)

// noPasswordLoginChecks: NSAUTH_PASSWORD_LOGIN=false once a connector
// works: the login page shows no password form, only "Continue with …",
// which signs in; a password posted anyway (the administrator's, right) is
// refused.
func noPasswordLoginChecks(t *testing.T, bin, backend string) {
	h := connectorHydra(t)
	d := startConnectorDeployment(t, bin, backend, "NSAUTH_PASSWORD_LOGIN=false")
	l := newConnectorChecks(t, "Ory Hydra v2.3.0 with NSAUTH_PASSWORD_LOGIN=false, "+d.label())
	const display = "Ory Hydra"
	clientID, secret := h.RegisterConnector(t, d.Callback("hydra"))
	h.App.SetUser(clientID, upstreamUser{Subject: "hydra-erin-" + randomHex(4), Email: "erin@example.test", EmailVerified: true,
		Name: "Erin", PreferredUsername: "erin"})
	d.AddConnector(t, "hydra", h.Issuer, clientID, secret, "--display-name", display, "--allowed-domains", "example.test", "--create-users")

	c := issuertest.NewChromium(t, 3*time.Minute)
	c.Do(t, "starting the browser", chromedp.Navigate("about:blank"))
	b := &connectorBrowser{c: c, d: d}
	cb := newAppCallback(t)
	app := d.AddApp(t, "no-password-app", "--redirect-uri", cb.URL)

	c.Do(t, "the login page", chromedp.Navigate(d.authorizeURL(t, authorizeParams(app.ClientID, cb.URL, "openid", nil))),
		chromedp.WaitVisible(chromedp.CSS("form[action='/login/connector']")))
	noPassword := issuertest.Get(t, c, chromedp.Evaluate[bool](`document.querySelector("input[type=password]") === null && document.querySelector("form[action='/login']") === null`))
	l.Check(t, "the login page has no password form", noPassword, "it has one")
	res := b.appSignIn(t, l, "connector only", app, cb, "openid profile", display)
	l.Check(t, "Continue with "+display+" signs in", res.State.Kind == "done", "%s", res.State)

	hb := issuertest.NewBrowser(t)
	page := hb.Open(t, d.authorizeURL(t, authorizeParams(app.ClientID, cb.URL, "openid", nil)))
	if l.Check(t, "the login page (without a browser's script)", page.Response.StatusCode == http.StatusOK && page.Form.Get("authRequestID") != "", "HTTP %d", page.Response.StatusCode) {
		got := hb.Submit(t, page, deployAdmin, deployAdminPassword)
		loc := got.Response.Header.Get("Location")
		l.Check(t, "a password posted anyway is refused, even the right one", got.Response.StatusCode >= 400 && !strings.HasPrefix(loc, cb.URL),
			"HTTP %d to %q", got.Response.StatusCode, redactQuery(loc))
	}
	d.AssertLogsClean(t, secret)
}
