package issuer_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/issuer"
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
		{"prompt=none", url.Values{"prompt": {"none"}}, toClient, "login_required"},
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
