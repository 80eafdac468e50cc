package issuer_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func TestCodeFlowTokens(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		tr := h.tokens(url.Values{"nonce": {"n-0S6_WzA2Mj"}})
		if tr.TokenType != "Bearer" || tr.ExpiresIn < 890 || tr.ExpiresIn > 900 || tr.RefreshToken == "" || tr.IDToken == "" {
			t.Fatalf("token response = %+v", tr)
		}
		if tr.Scope != "openid profile email offline_access" {
			t.Errorf("scope = %q", tr.Scope)
		}

		// RFC 9068 access token.
		hdr, claims := jwtParts(t, tr.AccessToken)
		if hdr["typ"] != "at+jwt" || hdr["alg"] != "RS256" || hdr["kid"] == "" {
			t.Errorf("access token header = %v", hdr)
		}
		for _, c := range []string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"} {
			if _, ok := claims[c]; !ok {
				t.Errorf("access token lacks %q: %v", c, claims)
			}
		}
		if claims["iss"] != h.url || claims["aud"] != h.url || claims["sub"] != h.alice.ID || claims["client_id"] != h.client ||
			claims["scope"] != "openid profile email offline_access" {
			t.Errorf("access token claims = %v", claims)
		}
		if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 900 {
			t.Errorf("access token lifetime = %vs, want 900", exp-iat)
		}
		for _, leak := range []string{"email", "name", "nonce"} {
			if _, ok := claims[leak]; ok {
				t.Errorf("access token carries %q", leak)
			}
		}

		// ID token.
		hdr, id := jwtParts(t, tr.IDToken)
		if hdr["typ"] == "at+jwt" {
			t.Error("the ID token is typed as an access token")
		}
		if id["nonce"] != "n-0S6_WzA2Mj" || id["sub"] != h.alice.ID || id["email"] != "alice@example.com" ||
			id["name"] != "Alice Liddell" || id["preferred_username"] != "alice" || id["iss"] != h.url || id["at_hash"] == nil {
			t.Errorf("ID token claims = %v", id)
		}
		if _, ok := id["email_verified"]; ok {
			t.Error("ID token claims a verified email")
		}
	})
}

func TestScopesShapeTokens(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	for _, tc := range []struct {
		name            string
		scope           string
		refresh         bool
		email, fullName bool
		nonce           bool
	}{
		{"openid only", "openid", false, false, false, false},
		{"email", "openid email", false, true, false, false},
		{"profile and nonce", "openid profile", false, false, true, true},
		{"offline access", "openid offline_access", true, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := url.Values{"scope": {tc.scope}}
			if tc.nonce {
				extra.Set("nonce", "abc")
			}
			tr := h.tokens(extra)
			if (tr.RefreshToken != "") != tc.refresh {
				t.Errorf("refresh token issued = %v, want %v", tr.RefreshToken != "", tc.refresh)
			}
			_, id := jwtParts(t, tr.IDToken)
			if _, ok := id["email"]; ok != tc.email {
				t.Errorf("email claim present = %v, want %v", ok, tc.email)
			}
			if _, ok := id["name"]; ok != tc.fullName {
				t.Errorf("name claim present = %v, want %v", ok, tc.fullName)
			}
			if _, ok := id["nonce"]; ok != tc.nonce {
				t.Errorf("nonce present = %v, want %v", ok, tc.nonce)
			}
		})
	}
}

func TestCodeIsSingleUseAndReplayRevokes(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		m := &metricTally{}
		h := newHarness(t, b, func(c *issuer.Config) { c.Observer = m.observer() })
		v := oauth2.GenerateVerifier()
		code := h.login(v, nil)
		first := h.exchange(code, v)
		if first.status != http.StatusOK {
			t.Fatalf("first exchange: %d %s", first.status, first.Error)
		}
		if h.introspect(first.AccessToken)["active"] != true {
			t.Fatal("fresh access token is not active")
		}
		replay := h.exchange(code, v)
		if replay.status != http.StatusBadRequest || replay.Error != "invalid_grant" {
			t.Fatalf("replay = %d %s, want 400 invalid_grant", replay.status, replay.Error)
		}
		if strings.Contains(replay.ErrorDescription, code) {
			t.Fatal("error echoes the code")
		}
		// What the code produced is revoked.
		if got := h.refresh(first.RefreshToken); got.Error != "invalid_grant" {
			t.Errorf("refresh after replay = %d %s, want invalid_grant", got.status, got.Error)
		}
		if h.introspect(first.AccessToken)["active"] != false {
			t.Error("access token still active after the code was replayed")
		}
		if st, _ := h.userinfo(first.AccessToken); st == http.StatusOK {
			t.Error("userinfo still answers for a revoked access token")
		}
		// Exactly once each: a replay counted by its site and by the
		// event recorder would be two.
		m.expect(t, map[string]int{"login:success": 1, "replay:authorization_code": 1})
	})
}

// metricTally counts what an issuer tells its Observer, by metric and
// label.
type metricTally struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *metricTally) add(k string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == nil {
		m.n = map[string]int{}
	}
	m.n[k]++
}

func (m *metricTally) observer() *issuer.Observer {
	return &issuer.Observer{
		Login:   func(o string) { m.add("login:" + o) },
		Lockout: func() { m.add("lockout") },
		Replay:  func(k string) { m.add("replay:" + k) },
	}
}

// expect fails t unless the tally is exactly want.
func (m *metricTally) expect(t *testing.T, want map[string]int) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.n) != len(want) {
		t.Errorf("metrics %v, want exactly %v", m.n, want)
		return
	}
	for k, n := range want {
		if m.n[k] != n {
			t.Errorf("%s moved by %d, want %d (all: %v)", k, m.n[k], n, m.n)
		}
	}
}

func TestCodeExchangeRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	for _, tc := range []struct {
		name    string
		prepare func() url.Values
		status  int
		errCode string
	}{
		{"wrong verifier", func() url.Values {
			code := h.login(oauth2.GenerateVerifier(), nil)
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {oauth2.GenerateVerifier()}}
		}, http.StatusBadRequest, "invalid_grant"},
		{"verifier stripped", func() url.Values {
			code := h.login(oauth2.GenerateVerifier(), nil)
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
		}, http.StatusBadRequest, "invalid_request"},
		{"other redirect URI", func() url.Values {
			v := oauth2.GenerateVerifier()
			code := h.login(v, nil)
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:4243/api/auth/callback"}, "code_verifier": {v}}
		}, http.StatusBadRequest, "invalid_grant"},
		{"expired code", func() url.Values {
			v := oauth2.GenerateVerifier()
			code := h.login(v, nil)
			h.clock.Advance(issuer.CodeTTL + time.Second)
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {v}}
		}, http.StatusBadRequest, "invalid_grant"},
		{"made-up code", func() url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {"bm90IGEgY29kZQ"}, "redirect_uri": {redirectURI}, "code_verifier": {oauth2.GenerateVerifier()}}
		}, http.StatusBadRequest, "invalid_grant"},
		{"unsupported grant", func() url.Values {
			return url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword}}
		}, http.StatusBadRequest, "unsupported_grant_type"},
		// Only machine clients may use client credentials (machine_test.go).
		{"client credentials of the broker's client", func() url.Values {
			return url.Values{"grant_type": {"client_credentials"}}
		}, http.StatusUnauthorized, "invalid_client"},
		{"jwt bearer grant", func() url.Values {
			return url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {"a.b.c"}}
		}, http.StatusBadRequest, "unsupported_grant_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := h.token(tc.prepare())
			if got.status != tc.status || got.Error != tc.errCode {
				t.Fatalf("= HTTP %d %q (%s), want %d %q", got.status, got.Error, got.ErrorDescription, tc.status, tc.errCode)
			}
		})
	}
}

func TestClientAuthentication(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	v := oauth2.GenerateVerifier()
	code := h.login(v, nil)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {v}}
	req, _ := http.NewRequest(http.MethodPost, h.url+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(h.client, "wrong-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong client secret: HTTP %d, want 401", resp.StatusCode)
	}
	// The code survived the failed attempt: client authentication comes
	// first.
	if tr := h.exchange(code, v); tr.status != http.StatusOK {
		t.Fatalf("exchange with the right secret = %d %s", tr.status, tr.Error)
	}
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		first := h.tokens(nil)
		second := h.refresh(first.RefreshToken)
		if second.status != http.StatusOK || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken || second.AccessToken == "" {
			t.Fatalf("refresh = %+v", second)
		}
		_, c1 := jwtParts(t, first.AccessToken)
		_, c2 := jwtParts(t, second.AccessToken)
		if c1["jti"] == c2["jti"] || c2["sub"] != h.alice.ID {
			t.Errorf("refreshed access token claims = %v", c2)
		}
		// Narrowing the scope applies to the access token only.
		third := h.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second.RefreshToken}, "scope": {"openid"}})
		if third.status != http.StatusOK || third.Scope != "openid" {
			t.Fatalf("narrowed refresh = %d %q", third.status, third.Scope)
		}
		if widened := h.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {third.RefreshToken}, "scope": {"openid admin"}}); widened.Error != "invalid_scope" {
			t.Fatalf("widening refresh = %d %q, want invalid_scope", widened.status, widened.Error)
		}
		fourth := h.refresh(third.RefreshToken)
		if fourth.status != http.StatusOK || fourth.Scope != "openid profile email offline_access" {
			t.Fatalf("refresh after narrowing = %d %q", fourth.status, fourth.Scope)
		}
		// Reusing a rotated token revokes the whole family.
		if reuse := h.refresh(first.RefreshToken); reuse.Error != "invalid_grant" {
			t.Fatalf("reuse = %d %q, want invalid_grant", reuse.status, reuse.Error)
		}
		if latest := h.refresh(fourth.RefreshToken); latest.Error != "invalid_grant" {
			t.Fatalf("latest token after reuse = %d %q, want invalid_grant", latest.status, latest.Error)
		}
		if h.introspect(fourth.AccessToken)["active"] != false {
			t.Fatal("access token of a revoked family is still active")
		}
		// Another login is another family, unaffected.
		other := h.tokens(nil)
		if r := h.refresh(other.RefreshToken); r.status != http.StatusOK {
			t.Fatalf("unrelated family = %d %q", r.status, r.Error)
		}
	})
}

func TestRefreshRefusedForDisabledUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	tr := h.tokens(nil)
	if err := h.st.SetDisabled(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	if r := h.refresh(tr.RefreshToken); r.Error != "invalid_grant" {
		t.Fatalf("refresh of a disabled user = %d %q", r.status, r.Error)
	}
	if st, _ := h.userinfo(tr.AccessToken); st == http.StatusOK {
		t.Fatal("userinfo answers for a disabled user")
	}
}

func TestRefreshTokenExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.RefreshTokenTTL = time.Hour })
	tr := h.tokens(nil)
	h.clock.Advance(time.Hour + time.Second)
	if r := h.refresh(tr.RefreshToken); r.Error != "invalid_grant" {
		t.Fatalf("expired refresh token = %d %q", r.status, r.Error)
	}
}

func TestUserinfoIntrospectionRevocation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	tr := h.tokens(nil)

	status, info := h.userinfo(tr.AccessToken)
	if status != http.StatusOK || info["sub"] != h.alice.ID || info["email"] != "alice@example.com" || info["preferred_username"] != "alice" {
		t.Fatalf("userinfo = %d %v", status, info)
	}
	if status, _ := h.userinfo(tr.IDToken); status == http.StatusOK {
		t.Error("userinfo accepts an ID token")
	}

	in := h.introspect(tr.AccessToken)
	if in["active"] != true || in["sub"] != h.alice.ID || in["client_id"] != h.client || in["username"] != "alice" || in["scope"] != "openid profile email offline_access" {
		t.Fatalf("introspection = %v", in)
	}
	if h.introspect("not-a-token")["active"] != false {
		t.Error("garbage is active")
	}
	resp, _ := h.post("/oauth/introspect", url.Values{"token": {tr.AccessToken}}, false)
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unauthenticated introspection: HTTP %d", resp.StatusCode)
	}

	// RFC 7009: revoking the refresh token ends the grant.
	resp, _ = h.post("/oauth/revoke", url.Values{"token": {tr.RefreshToken}, "token_type_hint": {"refresh_token"}}, true)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation: HTTP %d", resp.StatusCode)
	}
	if r := h.refresh(tr.RefreshToken); r.Error != "invalid_grant" {
		t.Errorf("refresh after revocation = %d %q", r.status, r.Error)
	}
	if h.introspect(tr.AccessToken)["active"] != false {
		t.Error("access token active after its refresh token was revoked")
	}
	// Unknown tokens revoke fine.
	resp, _ = h.post("/oauth/revoke", url.Values{"token": {"no-such-token"}}, true)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("revoking an unknown token: HTTP %d", resp.StatusCode)
	}

	// Revoking an access token alone.
	tr2 := h.tokens(nil)
	resp, _ = h.post("/oauth/revoke", url.Values{"token": {tr2.AccessToken}, "token_type_hint": {"access_token"}}, true)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("access token revocation: HTTP %d", resp.StatusCode)
	}
	if h.introspect(tr2.AccessToken)["active"] != false {
		t.Error("revoked access token is active")
	}
	if r := h.refresh(tr2.RefreshToken); r.status != http.StatusOK {
		t.Errorf("refresh token died with its access token: %d %q", r.status, r.Error)
	}
}

func TestCredentialEndpointsTakePostBodiesOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	for _, path := range []string{"/oauth/token", "/oauth/introspect", "/oauth/revoke"} {
		t.Run(path, func(t *testing.T) {
			resp, _ := h.get(path+"?grant_type=refresh_token&refresh_token=x", nil)
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("GET: HTTP %d, want 405", resp.StatusCode)
			}
			req, _ := http.NewRequest(http.MethodPost, h.url+path+"?client_secret=leak", strings.NewReader(""))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != http.StatusBadRequest {
				t.Errorf("POST with a query: HTTP %d, want 400", r.StatusCode)
			}
		})
	}
}

func TestInternalErrorsStayInternal(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil)
	tr := h.tokens(nil)
	_ = h.st.Close()
	got := h.refresh(tr.RefreshToken)
	if got.status != http.StatusInternalServerError && got.status != http.StatusBadRequest {
		t.Fatalf("refresh on a closed database: HTTP %d", got.status)
	}
	for _, leak := range []string{"sql", "database", "closed", "sqlite"} {
		if strings.Contains(strings.ToLower(got.ErrorDescription), leak) {
			t.Fatalf("error description leaks internals: %q", got.ErrorDescription)
		}
	}
}
