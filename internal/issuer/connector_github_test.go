package issuer_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/nsauth/nsauth/internal/connector/connectortest"
	"github.com/nsauth/nsauth/internal/store"
)

// TestConnectorGitHub: a sign-in through (a fake) GitHub with a team rule
// creates the user, maps the teams into groups, and a user removed from
// the team is refused at the next sign-in.
func TestConnectorGitHub(t *testing.T) {
	t.Parallel()
	h := newConnectorHarness(t, nil)
	gh := connectortest.NewGitHub(t, connectortest.WithGitHubRedirectURI(h.url+"/login/connector/gh/callback"))
	s := gh.Settings()
	s.Teams = []string{"acme/platform"}
	settings, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.st.CreateConnector(ctx, &store.Connector{Name: "gh", Type: store.ConnectorGitHub, DisplayName: "GitHub", Settings: settings,
		Secret: gh.ClientSecret, CreateUsers: true}); err != nil {
		t.Fatal(err)
	}
	_, p := h.signIn(t, "gh", url.Values{"scope": {"openid profile groups"}})
	tr := h.redeem(t, p)
	_, claims := jwtParts(t, tr.IDToken)
	octocat, err := h.st.UserByUsername(ctx, "octocat")
	if err != nil || claims["sub"] != octocat.ID {
		t.Fatalf("sub %v, user %v %v: want the created octocat", claims["sub"], octocat, err)
	}
	if g, _ := claims["groups"].([]any); !slices.Equal(g, []any{"gh:acme/platform"}) {
		t.Fatalf("groups %v", claims["groups"])
	}

	gh.SetTeams()
	_, p = h.signIn(t, "gh", nil)
	if p.Response.StatusCode != http.StatusForbidden {
		t.Fatalf("removed from the team: HTTP %d\n%s", p.Response.StatusCode, p.Body)
	}
	if e := h.lastRefusal(t); e.Reason != "not_in_team" || e.Target != "gh" {
		t.Fatalf("refusal %+v: want not_in_team at gh", e)
	}
}
