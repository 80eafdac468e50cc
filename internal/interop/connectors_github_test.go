//go:build interop

package interop_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nsauth/nsauth/internal/connector/connectortest"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
)

// githubConnectorChecks: a GitHub connector (`--type github`, GitHub
// Enterprise's URLs pointed at the fake GitHub of connectortest, which
// approves at once) restricted to a team, in Chromium: a member signs into
// an app and gets the team as a group; once removed from the team, the next
// sign-in is refused.
func githubConnectorChecks(t *testing.T, bin, backend string) {
	d := startConnectorDeployment(t, bin, backend)
	l := newConnectorChecks(t, "fake GitHub (connectortest), "+d.label())
	const display = "GitHub"
	gh := connectortest.NewGitHub(t, connectortest.WithGitHubRedirectURI(d.Callback("github")), connectortest.WithGitHubPKCERequired())
	code, out, errOut := d.AdminIn(t, gh.ClientSecret+"\n", "connectors", "add", "github", "--type", "github",
		"--client-id", gh.ClientID, "--client-secret-stdin", "--api-url", gh.APIURL, "--base-url", gh.URL,
		"--team", "acme/platform", "--create-users", "--display-name", display)
	if !l.Check(t, "connectors add --type github --team", code == 0, "exit %d\n%s%s", code, out, errOut) {
		return
	}
	c := issuertest.NewChromium(t, 3*time.Minute)
	c.Do(t, "starting the browser", chromedp.Navigate("about:blank"))
	b := &connectorBrowser{c: c, d: d}
	cb := newAppCallback(t)
	app := d.AddApp(t, "github-app", "--redirect-uri", cb.URL)

	res := b.appSignIn(t, l, "team member", app, cb, "openid profile email groups", display)
	if l.Check(t, "a team member: Continue with GitHub comes back to the app", res.State.Kind == "done", "%s", res.State) && res.Claims != nil {
		l.Check(t, "the user is the GitHub login", res.Claims["preferred_username"] == "octocat", "preferred_username %v", res.Claims["preferred_username"])
		l.Check(t, "amr [fed]", slices.Equal(claimStrings(res.Claims, "amr"), []string{"fed"}), "amr %v", res.Claims["amr"])
		l.Check(t, "the team is a group, prefixed github:", slices.Contains(claimStrings(res.Claims, "groups"), "github:acme/platform"), "groups %v", res.Claims["groups"])
		l.Check(t, "the verified primary email", res.Claims["email"] == "mona@acme.example", "email %v", res.Claims["email"])
	}
	gh.SetTeams()
	b.forget(t)
	res = b.appSignIn(t, l, "removed from the team", app, cb, "openid", display)
	l.Check(t, "removed from the team: refused at the next sign-in", res.State.Kind == "message" || res.State.Kind == "page", "%s", res.State)
	l.Check(t, "removed from the team: the page says why", strings.Contains(strings.ToLower(res.State.Text), "team"), "%s", res.State)
	d.checkCrossed(t, l)
	d.AssertLogsClean(t, gh.ClientSecret)
}
