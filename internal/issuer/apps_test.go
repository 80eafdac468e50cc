package issuer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store"
)

// app is an app registered for a test: its id, secret (empty for a
// public app) and first redirect URI.
type app struct {
	id, secret, redirect string
}

// addApp registers c (a confidential app unless c.Public) and returns it.
func (h *harness) addApp(c store.Client) app {
	h.t.Helper()
	a := app{id: c.ID, redirect: c.RedirectURIs[0]}
	if !c.Public {
		a.secret = store.RandomToken(32)
		c.SecretHash = store.HashSecret(a.secret)
	}
	if err := h.st.AddApp(ctx, &c); err != nil {
		h.t.Fatal(err)
	}
	return a
}

// appAuthorizeURL is an authorize URL of a with PKCE; extra parameters
// replace the defaults.
func (h *harness) appAuthorizeURL(a app, verifier string, extra url.Values) string {
	q := url.Values{"client_id": {a.id}, "redirect_uri": {a.redirect}}
	for k, v := range extra {
		q[k] = v
	}
	return h.authorizeURL(verifier, q)
}

// appLogin logs alice in for a in a fresh browser and returns the redirect
// back to a.
func (h *harness) appLogin(a app, verifier string, extra url.Values) *url.URL {
	h.t.Helper()
	return issuertest.NewBrowser(h.t).Login(h.t, h.appAuthorizeURL(a, verifier, extra), "alice", alicePassword)
}

// appToken posts form to the token endpoint as a: a confidential app with
// its secret (HTTP Basic), a public one with its client_id only.
func (h *harness) appToken(a app, form url.Values) tokenResponse {
	h.t.Helper()
	resp, body := h.appPost(a, "/oauth/token", form)
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		h.t.Fatalf("token response is not JSON (HTTP %d): %s", resp.StatusCode, body)
	}
	tr.status = resp.StatusCode
	return tr
}

func (h *harness) appPost(a app, path string, form url.Values) (*http.Response, []byte) {
	h.t.Helper()
	saved := h.client
	savedSecret := h.secret
	defer func() { h.client, h.secret = saved, savedSecret }()
	if a.secret == "" {
		form = cloneValues(form)
		form.Set("client_id", a.id)
		return h.post(path, form, false)
	}
	h.client, h.secret = a.id, a.secret
	return h.post(path, form, true)
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// appTokens logs alice in for a and redeems the code.
func (h *harness) appTokens(a app, extra url.Values) tokenResponse {
	h.t.Helper()
	v := oauth2.GenerateVerifier()
	loc := h.appLogin(a, v, extra)
	code := loc.Query().Get("code")
	if code == "" {
		h.t.Fatalf("redirect %s carries no code", loc)
	}
	tr := h.appToken(a, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.redirect}, "code_verifier": {v}})
	if tr.status != http.StatusOK {
		h.t.Fatalf("token exchange for %s: HTTP %d %s: %s", a.id, tr.status, tr.Error, tr.ErrorDescription)
	}
	return tr
}

// authorizeAnswer sends an authorize request without following redirects.
func (h *harness) authorizeAnswer(authorizeURL string) *http.Response {
	h.t.Helper()
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(authorizeURL)
	if err != nil {
		h.t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp
}

// twoApps is a harness with two confidential web apps, A and B.
func twoApps(t *testing.T) (*harness, app, app) {
	h := newHarness(t, sqlite(), nil)
	a := h.addApp(store.Client{ID: "app-a", RedirectURIs: []string{"https://a.example.com/cb"}})
	b := h.addApp(store.Client{ID: "app-b", RedirectURIs: []string{"https://b.example.com/cb"}})
	return h, a, b
}

func TestAppIsolation(t *testing.T) {
	t.Parallel()
	t.Run("another app's redirect URI is refused without a redirect", func(t *testing.T) {
		t.Parallel()
		h, a, b := twoApps(t)
		for _, uri := range []string{a.redirect, "http://127.0.0.1:4242/api/auth/callback", "https://b.example.com/cb/more"} {
			resp := h.authorizeAnswer(h.appAuthorizeURL(b, oauth2.GenerateVerifier(), url.Values{"redirect_uri": {uri}}))
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Errorf("B with redirect %s: HTTP %d Location %q, want 400 without a redirect", uri, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	})
	t.Run("an app's ID token is not valid for another", func(t *testing.T) {
		t.Parallel()
		h, a, b := twoApps(t)
		tr := h.appTokens(a, nil)
		keys := rp.NewRemoteKeySet(http.DefaultClient, h.url+"/keys")
		if _, err := rp.VerifyIDToken[*oidc.IDTokenClaims](context.Background(), tr.IDToken, rp.NewIDTokenVerifier(h.url, a.id, keys)); err != nil {
			t.Fatalf("A's ID token does not verify for A: %v", err)
		}
		if _, err := rp.VerifyIDToken[*oidc.IDTokenClaims](context.Background(), tr.IDToken, rp.NewIDTokenVerifier(h.url, b.id, keys)); err == nil {
			t.Fatal("A's ID token verifies for B")
		}
	})
	t.Run("an app cannot redeem, introspect or revoke another's", func(t *testing.T) {
		t.Parallel()
		h, a, b := twoApps(t)
		v := oauth2.GenerateVerifier()
		code := h.appLogin(b, v, nil).Query().Get("code")
		if tr := h.appToken(a, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {b.redirect}, "code_verifier": {v}}); tr.Error != "invalid_grant" {
			t.Fatalf("A redeeming B's code: HTTP %d %q", tr.status, tr.Error)
		}
		tb := h.appTokens(b, nil)
		_, body := h.appPost(a, "/oauth/introspect", url.Values{"token": {tb.AccessToken}})
		var in map[string]any
		_ = json.Unmarshal(body, &in)
		if in["active"] == true {
			t.Fatalf("A introspecting B's access token: %s", body)
		}
		_, body = h.appPost(b, "/oauth/introspect", url.Values{"token": {tb.AccessToken}})
		if !strings.Contains(string(body), `"active":true`) {
			t.Fatalf("B introspecting its own access token: %s", body)
		}
		if resp, _ := h.appPost(a, "/oauth/revoke", url.Values{"token": {tb.RefreshToken}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("A revoking B's refresh token: HTTP %d", resp.StatusCode)
		}
		if resp, _ := h.appPost(a, "/oauth/revoke", url.Values{"token": {tb.AccessToken}, "token_type_hint": {"access_token"}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("A revoking B's access token: HTTP %d", resp.StatusCode)
		}
		if tr := h.appToken(b, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tb.RefreshToken}}); tr.status != http.StatusOK {
			t.Fatalf("B's refresh token after A revoked it: HTTP %d %s", tr.status, tr.Error)
		}
		if tr := h.appToken(a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tb.RefreshToken}}); tr.Error != "invalid_grant" {
			t.Fatalf("A refreshing with B's refresh token: HTTP %d %q", tr.status, tr.Error)
		}
	})
	t.Run("a disabled app is refused", func(t *testing.T) {
		t.Parallel()
		h, a, _ := twoApps(t)
		tr := h.appTokens(a, nil)
		if err := h.st.SetAppDisabled(ctx, a.id, true); err != nil {
			t.Fatal(err)
		}
		resp := h.authorizeAnswer(h.appAuthorizeURL(a, oauth2.GenerateVerifier(), nil))
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("authorize for a disabled app: HTTP %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if got := h.appToken(a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}); got.status != http.StatusUnauthorized || got.Error != "invalid_client" {
			t.Errorf("refresh by a disabled app: HTTP %d %q", got.status, got.Error)
		}
		if err := h.st.SetAppDisabled(ctx, a.id, false); err != nil {
			t.Fatal(err)
		}
		if got := h.appToken(a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}); got.Error != "invalid_grant" {
			t.Errorf("a refresh token issued before the app was disabled, once enabled again: HTTP %d %q, want invalid_grant", got.status, got.Error)
		}
	})
}

func TestAppRedirectRules(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.AllowedRedirectURIs = []string{"https://server-wide.example.com/cb"} })
	web := h.addApp(store.Client{ID: "web", RedirectURIs: []string{"https://web.example.com/cb", "http://127.0.0.1:3000/cb"}})
	native := h.addApp(store.Client{ID: "native", Native: true, Public: true, RedirectURIs: []string{"http://127.0.0.1/cb"}})
	broker := app{id: h.client, secret: h.secret, redirect: redirectURI}
	for _, tc := range []struct {
		name string
		app  app
		uri  string
		ok   bool
	}{
		{"web app, registered", web, "https://web.example.com/cb", true},
		{"web app, registered loopback", web, "http://127.0.0.1:3000/cb", true},
		{"web app, loopback on another port", web, "http://127.0.0.1:3001/cb", false},
		{"web app, server-wide URI", web, "https://server-wide.example.com/cb", false},
		{"native app, loopback on any port", native, "http://127.0.0.1:53682/cb", true},
		{"native app, loopback on another path", native, "http://127.0.0.1:53682/other", false},
		{"broker, loopback anywhere", broker, "http://127.0.0.1:9/any/path", true},
		{"broker, server-wide URI", broker, "https://server-wide.example.com/cb", true},
		{"broker, elsewhere", broker, "https://web.example.com/cb", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := h.authorizeAnswer(h.appAuthorizeURL(tc.app, oauth2.GenerateVerifier(), url.Values{"redirect_uri": {tc.uri}}))
			loc := resp.Header.Get("Location")
			toLogin := resp.StatusCode == http.StatusFound && strings.HasPrefix(loc, h.url+"/login?")
			if toLogin != tc.ok {
				t.Fatalf("HTTP %d Location %q, want the login page: %v", resp.StatusCode, loc, tc.ok)
			}
			if !tc.ok && loc != "" {
				t.Fatalf("refused with a redirect to %s", loc)
			}
		})
	}
}

func TestPublicApp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	pub := h.addApp(store.Client{ID: "spa", Public: true, RedirectURIs: []string{"https://spa.example.com/cb"}})
	t.Run("code flow with PKCE and none", func(t *testing.T) {
		t.Parallel()
		tr := h.appTokens(pub, nil)
		if tr.AccessToken == "" || tr.IDToken == "" || tr.RefreshToken == "" {
			t.Fatalf("tokens missing: %+v", tr)
		}
		if got := h.appToken(pub, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}); got.status != http.StatusOK {
			t.Fatalf("refresh by a public app: HTTP %d %s", got.status, got.Error)
		}
	})
	t.Run("refused without PKCE", func(t *testing.T) {
		t.Parallel()
		resp := h.authorizeAnswer(h.appAuthorizeURL(pub, "", url.Values{"code_challenge": {""}, "code_challenge_method": {""}}))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc == nil || !strings.HasPrefix(loc.String(), pub.redirect+"?") || loc.Query().Get("error") != "invalid_request" {
			t.Fatalf("HTTP %d Location %v, want invalid_request at the app", resp.StatusCode, loc)
		}
		if loc.Query().Get("iss") != h.url || loc.Query().Get("state") != "the-state" {
			t.Fatalf("error redirect %s lacks iss or state", loc)
		}
	})
	t.Run("a wrong verifier is refused", func(t *testing.T) {
		t.Parallel()
		code := h.appLogin(pub, oauth2.GenerateVerifier(), nil).Query().Get("code")
		tr := h.appToken(pub, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {pub.redirect}, "code_verifier": {oauth2.GenerateVerifier()}})
		if tr.Error != "invalid_grant" {
			t.Fatalf("HTTP %d %q, want invalid_grant", tr.status, tr.Error)
		}
	})
	t.Run("a confidential app cannot leave its secret out", func(t *testing.T) {
		t.Parallel()
		conf := h.addApp(store.Client{ID: "conf", RedirectURIs: []string{"https://conf.example.com/cb"}})
		v := oauth2.GenerateVerifier()
		code := h.appLogin(conf, v, nil).Query().Get("code")
		tr := h.appToken(app{id: conf.id}, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {conf.redirect}, "code_verifier": {v}})
		if tr.status != http.StatusUnauthorized || tr.Error != "invalid_client" {
			t.Fatalf("HTTP %d %q, want 401 invalid_client", tr.status, tr.Error)
		}
	})
}

// TestPublicAppDeviceFlow runs the device flow as golang.org/x/oauth2 does,
// for a public app that has only its client id.
func TestPublicAppDeviceFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.DevicePollInterval = time.Second })
	tv := h.addApp(store.Client{ID: "tv", Public: true, Native: true, RedirectURIs: []string{"http://127.0.0.1/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token", store.DeviceCodeGrantType}})
	cfg := oauth2.Config{ClientID: tv.id, Scopes: []string{"openid", "offline_access"}, Endpoint: oauth2.Endpoint{
		DeviceAuthURL: h.url + "/oauth/device_authorization", TokenURL: h.url + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	da, err := cfg.DeviceAuth(c)
	if err != nil {
		t.Fatal(err)
	}
	b := issuertest.NewBrowser(t)
	if res := decide(h, b, h.approvalPage(b, da.UserCode), "approve"); res.Response.StatusCode != http.StatusOK {
		t.Fatalf("approve: HTTP %d\n%s", res.Response.StatusCode, res.Body)
	}
	tok, err := cfg.DeviceAccessToken(c, da)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Extra("id_token") == nil {
		t.Fatalf("tokens missing: %+v", tok)
	}
	if _, claims := jwtParts(t, tok.AccessToken); claims["client_id"] != tv.id {
		t.Fatalf("access token client_id = %v", claims["client_id"])
	}

	t.Run("an app without the device grant is refused", func(t *testing.T) {
		web := h.addApp(store.Client{ID: "no-device", Public: true, RedirectURIs: []string{"https://web.example.com/cb"}})
		other := cfg
		other.ClientID = web.id
		if _, err := other.DeviceAuth(c); err == nil {
			t.Fatal("device authorization for an app without the device grant")
		}
	})
}

func TestAppAudiences(t *testing.T) {
	t.Parallel()
	const api = "https://api.neosync.example"
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.Audience = "https://nsauth.example/api" })
	a := h.addApp(store.Client{ID: "neosync", RedirectURIs: []string{"https://neosync.example/cb"}, Audiences: []string{api, "https://other.example"}})
	wantAud := func(t *testing.T, token string, want ...string) {
		t.Helper()
		_, claims := jwtParts(t, token)
		got := claims["aud"]
		var list []string
		switch v := got.(type) {
		case string:
			list = []string{v}
		case []any:
			for _, x := range v {
				list = append(list, x.(string))
			}
		}
		if !slices.Equal(list, want) {
			t.Fatalf("aud = %v, want %v", got, want)
		}
		if len(want) == 1 {
			if _, ok := got.(string); !ok {
				t.Fatalf("a single aud is not a string: %v", got)
			}
		}
		_, body := h.appPost(a, "/oauth/introspect", url.Values{"token": {token}})
		var in struct {
			Active bool          `json:"active"`
			Aud    oidc.Audience `json:"aud"`
		}
		_ = json.Unmarshal(body, &in)
		if !in.Active || !slices.Equal([]string(in.Aud), want) {
			t.Fatalf("introspection: %s, want aud %v", body, want)
		}
	}
	t.Run("none asked: the server's", func(t *testing.T) {
		t.Parallel()
		wantAud(t, h.appTokens(a, nil).AccessToken, "https://nsauth.example/api")
	})
	t.Run("audience, as Auth.js sends it", func(t *testing.T) {
		t.Parallel()
		tr := h.appTokens(a, url.Values{"audience": {api}})
		wantAud(t, tr.AccessToken, "https://nsauth.example/api", api)
		_, id := jwtParts(t, tr.IDToken)
		if id["aud"] != a.id && !slices.Equal(anyStrings(id["aud"]), []string{a.id}) {
			t.Fatalf("ID token aud = %v, want the app", id["aud"])
		}
		got := h.appToken(a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}})
		if got.status != http.StatusOK {
			t.Fatalf("refresh: HTTP %d %s", got.status, got.Error)
		}
		wantAud(t, got.AccessToken, "https://nsauth.example/api", api)
		narrowed := h.appToken(a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {got.RefreshToken}, "resource": {"https://nsauth.example/api"}})
		if narrowed.status != http.StatusOK {
			t.Fatalf("narrowing refresh: HTTP %d %s", narrowed.status, narrowed.Error)
		}
		wantAud(t, narrowed.AccessToken, "https://nsauth.example/api")
		widened := h.appToken(a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {narrowed.RefreshToken}, "resource": {"https://other.example"}})
		if widened.status != http.StatusBadRequest || widened.Error != "invalid_target" {
			t.Fatalf("widening refresh: HTTP %d %q, want 400 invalid_target", widened.status, widened.Error)
		}
	})
	t.Run("a code redeemed for one of its resources", func(t *testing.T) {
		t.Parallel()
		v := oauth2.GenerateVerifier()
		code := h.appLogin(a, v, url.Values{"resource": {api, "https://other.example"}}).Query().Get("code")
		tr := h.appToken(a, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.redirect}, "code_verifier": {v},
			"resource": {api}})
		if tr.status != http.StatusOK {
			t.Fatalf("HTTP %d %s: %s", tr.status, tr.Error, tr.ErrorDescription)
		}
		wantAud(t, tr.AccessToken, "https://nsauth.example/api", api)
		// The grant keeps both: a refresh may ask for the other.
		got := h.appToken(a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "resource": {"https://other.example"}})
		if got.status != http.StatusOK {
			t.Fatalf("refresh for the grant's other resource: HTTP %d %s", got.status, got.Error)
		}
		wantAud(t, got.AccessToken, "https://nsauth.example/api", "https://other.example")
	})
	t.Run("a code redeemed for a resource it was not issued for", func(t *testing.T) {
		t.Parallel()
		v := oauth2.GenerateVerifier()
		code := h.appLogin(a, v, url.Values{"resource": {api}}).Query().Get("code")
		tr := h.appToken(a, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.redirect}, "code_verifier": {v},
			"resource": {"https://other.example"}})
		if tr.status != http.StatusBadRequest || tr.Error != "invalid_target" {
			t.Fatalf("HTTP %d %q, want 400 invalid_target", tr.status, tr.Error)
		}
	})
	t.Run("resources, repeated and duplicated", func(t *testing.T) {
		t.Parallel()
		tr := h.appTokens(a, url.Values{"resource": {api, "https://other.example", api, "https://nsauth.example/api"}})
		wantAud(t, tr.AccessToken, "https://nsauth.example/api", api, "https://other.example")
	})
	t.Run("space-separated audiences and the issuer", func(t *testing.T) {
		t.Parallel()
		tr := h.appTokens(a, url.Values{"audience": {api + " " + h.url}})
		wantAud(t, tr.AccessToken, "https://nsauth.example/api", api, h.url)
	})
	for _, bad := range []url.Values{
		{"audience": {"https://evil.example"}},
		{"resource": {api, "https://evil.example"}},
		{"audience": {api + " https://evil.example"}},
	} {
		t.Run("invalid_target "+bad.Encode(), func(t *testing.T) {
			t.Parallel()
			resp := h.authorizeAnswer(h.appAuthorizeURL(a, oauth2.GenerateVerifier(), bad))
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if loc == nil || !strings.HasPrefix(loc.String(), a.redirect+"?") {
				t.Fatalf("HTTP %d Location %v, want a redirect to the app", resp.StatusCode, loc)
			}
			q := loc.Query()
			if q.Get("error") != "invalid_target" || q.Get("iss") != h.url || q.Get("state") != "the-state" {
				t.Fatalf("redirect %s, want invalid_target with iss and state", loc)
			}
		})
	}
}

func anyStrings(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestAuthorizationResponsesCarryIss: every authorization response (a code,
// the library's errors and ours) names the issuer (RFC 9207); discovery
// says so.
func TestAuthorizationResponsesCarryIss(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	a := h.addApp(store.Client{ID: "app", RedirectURIs: []string{"https://app.example.com/cb"}})
	for _, tc := range []struct {
		name  string
		extra url.Values
		want  string
	}{
		{"the library's: a bad prompt", url.Values{"prompt": {"none login"}}, "invalid_request"},
		{"the library's: a plain challenge", url.Values{"code_challenge_method": {"plain"}}, "invalid_request"},
		{"ours: no openid", url.Values{"scope": {"profile"}}, "invalid_scope"},
		{"ours: a fragment response", url.Values{"response_mode": {"fragment"}}, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := h.authorizeAnswer(h.appAuthorizeURL(a, oauth2.GenerateVerifier(), tc.extra))
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || resp.StatusCode != http.StatusFound {
				t.Fatalf("HTTP %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			params := loc.Query()
			if loc.Fragment != "" {
				params, _ = url.ParseQuery(loc.Fragment)
			}
			if params.Get("error") != tc.want || params.Get("iss") != h.url {
				t.Fatalf("redirect %s, want %s with iss=%s", loc, tc.want, h.url)
			}
		})
	}
	t.Run("a code", func(t *testing.T) {
		t.Parallel()
		loc := h.appLogin(a, oauth2.GenerateVerifier(), nil)
		if loc.Query().Get("code") == "" || loc.Query().Get("iss") != h.url {
			t.Fatalf("redirect %s, want a code with iss=%s", loc, h.url)
		}
	})
	t.Run("discovery", func(t *testing.T) {
		t.Parallel()
		_, body := h.get("/.well-known/openid-configuration", nil)
		var d map[string]any
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"authorization_response_iss_parameter_supported", "backchannel_logout_supported", "backchannel_logout_session_supported"} {
			if d[k] != true {
				t.Errorf("%s = %v, want true", k, d[k])
			}
		}
		if !slices.Contains(anyStrings(d["token_endpoint_auth_methods_supported"]), "none") {
			t.Errorf("token_endpoint_auth_methods_supported = %v, want none among them", d["token_endpoint_auth_methods_supported"])
		}
	})
}

// TestAppSettings: an app's scopes narrow what it is granted, and its
// token lifetimes replace the server's.
func TestAppSettings(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	a := h.addApp(store.Client{ID: "narrow", RedirectURIs: []string{"https://narrow.example.com/cb"}, Scopes: []string{"openid", "profile"},
		AccessTokenTTL: 2 * time.Minute})
	tr := h.appTokens(a, nil)
	if tr.Scope != "openid profile" || tr.RefreshToken != "" {
		t.Fatalf("scope %q refresh %q, want openid profile without a refresh token", tr.Scope, tr.RefreshToken)
	}
	if tr.ExpiresIn != 120 {
		t.Fatalf("expires_in = %d, want 120", tr.ExpiresIn)
	}
	_, id := jwtParts(t, tr.IDToken)
	if exp, iat := id["exp"].(float64), id["iat"].(float64); exp-iat != 120 {
		t.Fatalf("ID token lifetime %v s, want 120", exp-iat)
	}
}

// TestAppRefreshesWithSecretInForm: Neosync's web app refreshes by POSTing
// client_id and client_secret in the form (client_secret_post).
func TestAppRefreshesWithSecretInForm(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	a := h.addApp(store.Client{ID: "neosync", RedirectURIs: []string{"https://neosync.example/api/auth/callback/nsauth"}})
	tr := h.appTokens(a, nil)
	for _, tc := range []struct {
		name, secret string
		status       int
	}{
		{"right secret", a.secret, http.StatusOK},
		{"wrong secret", "wrong", http.StatusUnauthorized},
	} {
		resp, body := h.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken},
			"client_id": {a.id}, "client_secret": {tc.secret}}, false)
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: HTTP %d, want %d: %s", tc.name, resp.StatusCode, tc.status, body)
		}
	}
}

// TestAppRefreshTokenLifetime: an app's refresh token lifetime replaces the
// server's.
func TestAppRefreshTokenLifetime(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	short := h.addApp(store.Client{ID: "short", RedirectURIs: []string{"https://short.example.com/cb"}, RefreshTokenTTL: time.Hour})
	server := h.addApp(store.Client{ID: "server", RedirectURIs: []string{"https://server.example.com/cb"}})
	trShort, trServer := h.appTokens(short, nil), h.appTokens(server, nil)
	h.clock.Advance(time.Hour + time.Second)
	if got := h.appToken(short, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {trShort.RefreshToken}}); got.Error != "invalid_grant" {
		t.Fatalf("the short-lived app's refresh token after an hour: HTTP %d %q, want invalid_grant", got.status, got.Error)
	}
	if got := h.appToken(server, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {trServer.RefreshToken}}); got.status != http.StatusOK {
		t.Fatalf("an app with the server's lifetime after an hour: HTTP %d %q", got.status, got.Error)
	}
}
