package issuer_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
)

func TestAuthorizeRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), func(c *issuer.Config) {
		c.AllowedRedirectURIs = []string{"https://app.example.com/callback"}
	})
	const (
		toLogin    = "login"
		toClient   = "client error"
		notRedirct = "refused here"
	)
	for _, tc := range []struct {
		name    string
		extra   url.Values
		outcome string
		errCode string
	}{
		{"loopback, the usual port", nil, toLogin, ""},
		{"loopback, any port and path", url.Values{"redirect_uri": {"http://127.0.0.1:51234/x/y"}}, toLogin, ""},
		{"localhost", url.Values{"redirect_uri": {"http://localhost:8000/cb"}}, toLogin, ""},
		{"IPv6 loopback", url.Values{"redirect_uri": {"http://[::1]:8000/cb"}}, toLogin, ""},
		{"allowed exact URI", url.Values{"redirect_uri": {"https://app.example.com/callback"}}, toLogin, ""},
		{"allowed URI with another path", url.Values{"redirect_uri": {"https://app.example.com/other"}}, notRedirct, ""},
		{"other host", url.Values{"redirect_uri": {"https://evil.example.com/cb"}}, notRedirct, ""},
		{"userinfo trick", url.Values{"redirect_uri": {"http://127.0.0.1:4242@evil.example.com/cb"}}, notRedirct, ""},
		{"https loopback", url.Values{"redirect_uri": {"https://127.0.0.1:4242/cb"}}, notRedirct, ""},
		{"encoded path", url.Values{"redirect_uri": {"http://127.0.0.1:4242/%63b"}}, notRedirct, ""},
		{"no redirect URI", url.Values{"redirect_uri": {""}}, notRedirct, ""},
		{"unknown client", url.Values{"client_id": {"someone-else"}}, notRedirct, ""},
		{"plain PKCE", url.Values{"code_challenge_method": {"plain"}, "code_challenge": {strings.Repeat("a", 43)}}, toClient, "invalid_request"},
		{"implicit flow", url.Values{"response_type": {"token"}}, toClient, "unauthorized_client"},
		// The login page answers it from the browser session (sso_test.go).
		{"prompt=none", url.Values{"prompt": {"none"}}, toLogin, ""},
		{"no openid scope", url.Values{"scope": {"profile"}}, toClient, "invalid_scope"},
		{"form_post response mode", url.Values{"response_mode": {"form_post"}}, toClient, "invalid_request"},
		{"huge state", url.Values{"state": {strings.Repeat("s", 5000)}}, toClient, "invalid_request"},
		{"request object", url.Values{"request": {"e30.e30."}}, toClient, "request_not_supported"},
		// Every field within its bound, but together more than a sealed
		// auth request may hold.
		{"too large to seal", url.Values{"prompt": {strings.TrimSpace(strings.Repeat("login ", 1500))}}, toClient, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := h.get(strings.TrimPrefix(h.authorizeURL(oauth2.GenerateVerifier(), tc.extra), h.url), nil)
			loc, _ := url.Parse(resp.Header.Get("Location"))
			switch tc.outcome {
			case toLogin:
				if resp.StatusCode != http.StatusFound || loc.Path != "/login" {
					t.Fatalf("HTTP %d to %q (%s), want the login page", resp.StatusCode, loc, body)
				}
			case toClient:
				if resp.StatusCode != http.StatusFound || loc.Host != "127.0.0.1:4242" {
					t.Fatalf("HTTP %d to %q (%s), want an error redirect to the client", resp.StatusCode, loc, body)
				}
				params := loc.Query()
				if loc.Fragment != "" {
					params, _ = url.ParseQuery(loc.Fragment)
				}
				if params.Get("error") != tc.errCode || params.Get("state") != "the-state" && tc.name != "huge state" {
					t.Fatalf("redirect %s, want error=%s with the state", loc, tc.errCode)
				}
			case notRedirct:
				if resp.StatusCode < 400 || resp.StatusCode >= 500 || resp.Header.Get("Location") != "" {
					t.Fatalf("HTTP %d to %q, want a 4xx answered here", resp.StatusCode, loc)
				}
			}
		})
	}
}

// TestAuthorizeRequirePKCE: with Config.RequirePKCE, an authorization
// request without an S256 challenge is refused with invalid_request at the
// client's redirect URI, even from the confidential broker client, which
// may otherwise leave PKCE out.
func TestAuthorizeRequirePKCE(t *testing.T) {
	t.Parallel()
	harnesses := map[bool]*harness{
		false: newHarness(t, sqlite(), nil),
		true:  newHarness(t, sqlite(), func(c *issuer.Config) { c.RequirePKCE = true }),
	}
	const pkceRequired = "PKCE is required: send a code_challenge with code_challenge_method=S256"
	noPKCE := url.Values{"code_challenge": {""}, "code_challenge_method": {""}}
	for _, tc := range []struct {
		name    string
		require bool
		extra   url.Values
		// errCode and errDescription are the error redirected to the
		// client; empty means the request goes on to the login page.
		errCode, errDescription string
	}{
		{"not required, no challenge", false, noPKCE, "", ""},
		{"not required, S256 challenge", false, nil, "", ""},
		{"required, no challenge", true, noPKCE, "invalid_request", pkceRequired},
		{"required, method without challenge", true, url.Values{"code_challenge": {""}}, "invalid_request", pkceRequired},
		{"required, S256 challenge", true, nil, "", ""},
		{"required, plain challenge", true, url.Values{"code_challenge_method": {"plain"}, "code_challenge": {strings.Repeat("a", 43)}}, "invalid_request", "code_challenge_method must be S256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := harnesses[tc.require]
			resp, body := h.get(strings.TrimPrefix(h.authorizeURL(oauth2.GenerateVerifier(), tc.extra), h.url), nil)
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if tc.errCode == "" {
				if resp.StatusCode != http.StatusFound || loc.Path != "/login" {
					t.Fatalf("HTTP %d to %q (%s), want the login page", resp.StatusCode, loc, body)
				}
				return
			}
			if resp.StatusCode != http.StatusFound || loc.Host != "127.0.0.1:4242" {
				t.Fatalf("HTTP %d to %q (%s), want an error redirect to the client", resp.StatusCode, loc, body)
			}
			q := loc.Query()
			if q.Get("error") != tc.errCode || q.Get("error_description") != tc.errDescription || q.Get("state") != "the-state" {
				t.Fatalf("redirect with error=%q error_description=%q state=%q, want %q %q with the state",
					q.Get("error"), q.Get("error_description"), q.Get("state"), tc.errCode, tc.errDescription)
			}
		})
	}
	t.Run("required, a login with PKCE completes", func(t *testing.T) {
		t.Parallel()
		if tr := harnesses[true].tokens(nil); tr.AccessToken == "" {
			t.Fatal("no access token")
		}
	})
}

// TestRequirePKCEAtExchange: a code issued without a challenge (by a
// replica that does not require PKCE, or before the setting was on) is
// refused by a provider that requires it.
func TestRequirePKCEAtExchange(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.RequirePKCE = true })
	lax := h.replica(nil)
	b := issuertest.NewBrowser(t)
	b.Rewrite = func(u *url.URL) { u.Host = lax }
	loc := b.Login(t, h.authorizeURL("", url.Values{"code_challenge": {""}, "code_challenge_method": {""}}), "alice", alicePassword)
	tr := h.exchange(loc.Query().Get("code"), "")
	if tr.status != http.StatusBadRequest || tr.Error != "invalid_grant" || tr.ErrorDescription != "PKCE is required: the code was issued without a code_challenge" {
		t.Fatalf("exchange of a code without a challenge: HTTP %d %s %q, want 400 invalid_grant naming PKCE", tr.status, tr.Error, tr.ErrorDescription)
	}
}
