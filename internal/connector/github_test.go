package connector_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/connector"
	"github.com/nsauth/nsauth/internal/connector/connectortest"
)

func buildGitHub(t *testing.T, up *connectortest.GitHub, mutate func(*connector.GitHubSettings)) connector.Redirecting {
	t.Helper()
	s := up.Settings()
	if mutate != nil {
		mutate(&s)
	}
	return build(t, "github", s, up.ClientSecret)
}

func TestGitHubSignIn(t *testing.T) {
	t.Parallel()
	up := connectortest.NewGitHub(t, connectortest.WithGitHubRedirectURI(callback), connectortest.WithGitHubPKCERequired())
	u := up.User()
	u.Teams = append(u.Teams, "other-org/x")
	up.SetUser(u)
	c := buildGitHub(t, up, func(s *connector.GitHubSettings) {
		s.Org = "acme"
		s.Teams = []string{"acme/platform"}
		s.AllowedDomains = []string{"acme.example"}
	})
	a := newAttempt(t)
	authURL, back := authorize(t, c, a)
	q := authURL.Query()
	if authURL.Path != connectortest.GitHubPathAuthorize || q.Get("scope") != "read:user user:email read:org" ||
		q.Get("code_challenge_method") != "S256" || q.Get("redirect_uri") != callback || q.Get("client_id") != up.ClientID {
		t.Errorf("authorization request = %s", authURL)
	}
	id, err := c.Exchange(context.Background(), back, "", a.verifier)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	want := connector.Identity{Subject: "4242", Username: "octocat", Name: "Mona Octocat", Email: "mona@acme.example", Groups: []string{"acme/platform"}}
	if !sameIdentity(id, want) {
		t.Errorf("identity = %+v, want %+v", id, want)
	}
}

func TestGitHubWithoutRulesAsksNoOrgs(t *testing.T) {
	t.Parallel()
	up := connectortest.NewGitHub(t)
	u := up.User()
	u.Emails = []connectortest.GitHubEmail{{Email: "m@x.example", Primary: true, Verified: false}, {Email: "v@y.example", Verified: true}}
	up.SetUser(u)
	c := buildGitHub(t, up, nil)
	a := newAttempt(t)
	authURL, back := authorize(t, c, a)
	if got := authURL.Query().Get("scope"); got != "read:user user:email" {
		t.Errorf("scope = %q, want no read:org", got)
	}
	id, err := c.Exchange(context.Background(), back, "", a.verifier)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if id.Email != "" || id.Groups != nil || id.Subject != "4242" {
		t.Errorf("identity = %+v: want no email (the primary is unverified) and no groups", id)
	}
	if up.Count(connectortest.GitHubPathOrgs)+up.Count(connectortest.GitHubPathTeams) != 0 {
		t.Error("orgs or teams asked without a rule")
	}
}

// TestGitHubRefusals: org and team rules, unverified or foreign emails,
// GitHub's errors.
func TestGitHubRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		user     func(*connectortest.GitHubUser)
		bad      connectortest.GitHubMisbehaviour
		settings func(*connector.GitHubSettings)
		tamper   func(url.Values, *attempt)
		reason   string // "" wants a plain error (GitHub unavailable)
	}{
		{name: "not in the org", settings: func(s *connector.GitHubSettings) { s.Org = "other" }, reason: connector.ReasonNotInOrg},
		{name: "left the org", user: func(u *connectortest.GitHubUser) { u.Orgs = nil }, settings: func(s *connector.GitHubSettings) { s.Org = "acme" }, reason: connector.ReasonNotInOrg},
		{name: "not in the team", settings: func(s *connector.GitHubSettings) { s.Teams = []string{"acme/security"} }, reason: connector.ReasonNotInTeam},
		{name: "a team of the same slug in another org", user: func(u *connectortest.GitHubUser) { u.Teams = []string{"evil/platform"} },
			settings: func(s *connector.GitHubSettings) { s.Teams = []string{"acme/platform"} }, reason: connector.ReasonNotInTeam},
		{name: "unverified primary email", user: func(u *connectortest.GitHubUser) {
			u.Emails = []connectortest.GitHubEmail{{Email: "mona@acme.example", Primary: true}}
		},
			settings: func(s *connector.GitHubSettings) { s.AllowedDomains = []string{"acme.example"} }, reason: connector.ReasonUnverifiedEmail},
		{name: "no email", user: func(u *connectortest.GitHubUser) { u.Emails = nil },
			settings: func(s *connector.GitHubSettings) { s.AllowedDomains = []string{"acme.example"} }, reason: connector.ReasonUnverifiedEmail},
		{name: "domain not allowed", settings: func(s *connector.GitHubSettings) { s.AllowedDomains = []string{"corp.example"} }, reason: connector.ReasonDomainNotAllowed},
		{name: "error response", bad: connectortest.GitHubMisbehaviour{Error: "access_denied"}, reason: connector.ReasonUpstreamError},
		{name: "bad verification code", bad: connectortest.GitHubMisbehaviour{TokenError: "bad_verification_code"}, reason: connector.ReasonUpstreamError},
		{name: "wrong PKCE verifier", tamper: func(_ url.Values, a *attempt) { a.verifier = strings.Repeat("w", 43) }, reason: connector.ReasonUpstreamError},
		{name: "no code", tamper: func(q url.Values, _ *attempt) { q.Del("code") }, reason: connector.ReasonMalformed},
		{name: "API refuses the token", bad: connectortest.GitHubMisbehaviour{APIStatus: 401}, reason: connector.ReasonUpstreamError},
		{name: "API down", bad: connectortest.GitHubMisbehaviour{APIStatus: 503}, reason: ""},
		{name: "API redirect not followed", bad: connectortest.GitHubMisbehaviour{RedirectAPI: true}, reason: ""},
		{name: "API answer too large", bad: connectortest.GitHubMisbehaviour{HugeUser: 2 << 20}, reason: connector.ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := connectortest.NewGitHub(t)
			u := up.User()
			if tc.user != nil {
				tc.user(&u)
			}
			up.SetUser(u)
			c := buildGitHub(t, up, tc.settings)
			a := newAttempt(t)
			if tc.bad.Error != "" || tc.bad.TokenError != "" {
				up.Misbehave(tc.bad)
			}
			_, back := authorize(t, c, a)
			up.Misbehave(tc.bad)
			if tc.tamper != nil {
				tc.tamper(back, &a)
			}
			id, err := c.Exchange(context.Background(), back, "", a.verifier)
			if err == nil || connector.ReasonOf(err) != tc.reason {
				t.Fatalf("Exchange = %+v, %v; want reason %q", id, err, tc.reason)
			}
			if strings.Contains(err.Error(), up.ClientSecret) || strings.Contains(err.Error(), "gho_") {
				t.Errorf("the error repeats a secret: %v", err)
			}
		})
	}
}

// TestGitHubRemovedFromTeam: the rules are checked at every sign-in, with
// what GitHub says then.
func TestGitHubRemovedFromTeam(t *testing.T) {
	t.Parallel()
	up := connectortest.NewGitHub(t)
	c := buildGitHub(t, up, func(s *connector.GitHubSettings) { s.Teams = []string{"acme/platform"} })
	id, err := signIn(t, c)
	if err != nil || !slices.Equal(id.Groups, []string{"acme/platform"}) {
		t.Fatalf("first sign-in = %+v, %v", id, err)
	}
	up.SetTeams("acme/marketing")
	if _, err := signIn(t, c); connector.ReasonOf(err) != connector.ReasonNotInTeam {
		t.Fatalf("after removal from the team: %v, want %s", err, connector.ReasonNotInTeam)
	}
	up.SetTeams("acme/platform")
	if _, err := signIn(t, c); err != nil {
		t.Fatalf("back in the team: %v", err)
	}
}

func TestGitHubPagesTeams(t *testing.T) {
	t.Parallel()
	up := connectortest.NewGitHub(t)
	var teams []string
	for i := range 150 {
		teams = append(teams, "acme/team-"+strconv.Itoa(i))
	}
	up.SetTeams(teams...)
	c := buildGitHub(t, up, func(s *connector.GitHubSettings) { s.Teams = []string{teams[149]} })
	id, err := signIn(t, c)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if len(id.Groups) != 150 {
		t.Errorf("%d groups, want 150", len(id.Groups))
	}
	if n := up.Count(connectortest.GitHubPathTeams); n != 2 {
		t.Errorf("%d team pages asked, want 2", n)
	}
}

// TestRedirectsNotFollowedWithTheCallersClient: Build makes the caller's
// client one that follows no redirect, so the access token is not sent
// on to where GitHub's answer points.
func TestRedirectsNotFollowedWithTheCallersClient(t *testing.T) {
	t.Parallel()
	up := connectortest.NewGitHub(t)
	js, _ := json.Marshal(up.Settings())
	built, err := connector.Build("github", js, up.ClientSecret, connector.Env{Callback: callback, HTTPClient: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	c := built.(connector.Redirecting)
	a := newAttempt(t)
	_, back := authorize(t, c, a)
	up.Misbehave(connectortest.GitHubMisbehaviour{RedirectAPI: true})
	_, err = c.Exchange(context.Background(), back, "", a.verifier)
	if err == nil || connector.ReasonOf(err) != "" || !strings.Contains(err.Error(), "307") {
		t.Fatalf("Exchange = %v, want a plain error naming the redirect (HTTP 307)", err)
	}
}
