package connectortest_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/connector/connectortest"
	"github.com/nsauth/nsauth/pkg/noredirect"
)

const cb = "https://nsauth.example/login/connector/x/callback"

// get returns the status and Location of a GET, not following redirects.
func get(t *testing.T, u string) (int, *url.URL) {
	t.Helper()
	resp, err := (&http.Client{CheckRedirect: noredirect.CheckRedirect}).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	return resp.StatusCode, loc
}

// TestFakesRefuseWhatRealUpstreamsRefuse: the fakes are strict where the
// connectors' protections are tested against them.
func TestFakesRefuseWhatRealUpstreamsRefuse(t *testing.T) {
	t.Parallel()
	o := connectortest.NewOIDC(t, connectortest.WithRedirectURI(cb))
	g := connectortest.NewGitHub(t, connectortest.WithGitHubRedirectURI(cb), connectortest.WithGitHubPKCERequired())
	q := url.Values{"client_id": {o.ClientID}, "redirect_uri": {cb}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s"}}
	for _, tc := range []struct {
		name, url string
		status    int
		err       string // error parameter of the redirect back
	}{
		{"OIDC unregistered redirect", o.Issuer + connectortest.OIDCPathAuthorize + "?" + with(q, "redirect_uri", cb+"x"), http.StatusBadRequest, ""},
		{"OIDC unknown client", o.Issuer + connectortest.OIDCPathAuthorize + "?" + with(q, "client_id", "other"), http.StatusBadRequest, ""},
		{"OIDC without PKCE", o.Issuer + connectortest.OIDCPathAuthorize + "?" + q.Encode(), http.StatusSeeOther, "invalid_request"},
		{"OIDC plain PKCE", o.Issuer + connectortest.OIDCPathAuthorize + "?" + with(with2(q, "code_challenge", "abc"), "code_challenge_method", "plain"), http.StatusSeeOther, "invalid_request"},
		{"OIDC without openid", o.Issuer + connectortest.OIDCPathAuthorize + "?" + with(with2(q, "code_challenge", "abc"), "scope", "email"), http.StatusSeeOther, "invalid_scope"},
		{"GitHub without PKCE", g.URL + connectortest.GitHubPathAuthorize + "?" + with(q, "client_id", g.ClientID), http.StatusFound, "invalid_request"},
		{"GitHub unregistered redirect", g.URL + connectortest.GitHubPathAuthorize + "?" + with(with2(q, "client_id", g.ClientID), "redirect_uri", "https://evil.example/cb"), http.StatusBadRequest, ""},
	} {
		status, loc := get(t, tc.url)
		if status != tc.status || (tc.err != "" && loc.Query().Get("error") != tc.err) {
			t.Errorf("%s: HTTP %d, Location %s; want %d with error=%s", tc.name, status, loc, tc.status, tc.err)
		}
		if tc.err != "" && loc.Query().Get("state") != "s" {
			t.Errorf("%s: the error response lost the state", tc.name)
		}
	}
	// The token endpoints refuse a wrong client secret.
	resp, err := http.PostForm(o.Issuer+connectortest.OIDCPathToken, url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {o.ClientID}, "client_secret": {"wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("OIDC token endpoint with a wrong secret: HTTP %d", resp.StatusCode)
	}
	// GitHub's API wants a token it issued.
	resp, err = http.Get(g.APIURL + "/user")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GitHub /user without a token: HTTP %d", resp.StatusCode)
	}
	if !strings.HasPrefix(o.Issuer, "http://127.0.0.1:") {
		t.Errorf("issuer %s is not on loopback", o.Issuer)
	}
}

func with(q url.Values, k, v string) string {
	c := url.Values{}
	for key, vs := range q {
		c[key] = append([]string(nil), vs...)
	}
	c.Set(k, v)
	return c.Encode()
}

func with2(q url.Values, k, v string) url.Values {
	c, _ := url.ParseQuery(with(q, k, v))
	return c
}
