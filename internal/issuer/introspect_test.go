package issuer_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/issuer"
)

// TestIntrospection: RFC 7662 introspection is active only for an access
// token this provider signed, unaltered, unexpired (no tolerance), issued
// to the client asking; anything else, an ID token, a forgery under the
// provider's key id or an expired token included, is {"active": false};
// and a resource client that does not authenticate is refused as the
// library refuses it (401, invalid_client), with no answer about the
// token.
func TestIntrospection(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.AccessTokenTTL = 10 * time.Minute })
	tr := h.tokens(url.Values{"scope": {"openid offline_access"}})
	if tr.AccessToken == "" || tr.IDToken == "" {
		t.Fatalf("no tokens: %+v", tr)
	}
	forged := resign(t, tr.AccessToken, nil)
	altered := resign(t, tr.AccessToken, func(claims map[string]any) { claims["scope"] = "openid offline_access admin" })
	tests := []struct {
		name   string
		token  string
		secret string // the resource client's; empty: the right one
		status int
		active bool
	}{
		{"the provider's access token", tr.AccessToken, "", http.StatusOK, true},
		{"its ID token", tr.IDToken, "", http.StatusOK, false},
		{"its refresh token", tr.RefreshToken, "", http.StatusOK, false},
		{"signed by another key under the provider's key id", forged, "", http.StatusOK, false},
		{"payload altered, signature kept", altered, "", http.StatusOK, false},
		{"garbage", "not.a.token", "", http.StatusOK, false},
		{"a wrong client secret", tr.AccessToken, "wrong secret", http.StatusUnauthorized, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			secret := h.secret
			if tc.secret != "" {
				secret = tc.secret
			}
			status, answer := introspectAs(t, h, h.client, secret, tc.token)
			if status != tc.status {
				t.Fatalf("HTTP %d %v, want %d", status, answer, tc.status)
			}
			if tc.status != http.StatusOK {
				if answer["error"] != "invalid_client" || answer["active"] != nil {
					t.Fatalf("refusal %v, want invalid_client and nothing about the token", answer)
				}
				return
			}
			if answer["active"] != tc.active {
				t.Fatalf("active = %v, want %v: %v", answer["active"], tc.active, answer)
			}
			if tc.active && (answer["jti"] == nil || answer["client_id"] != h.client || answer["sub"] == nil) {
				t.Errorf("an active answer without its jti, client or subject: %v", answer)
			}
		})
	}
	t.Run("expired: no tolerance", func(t *testing.T) {
		h.clock.Advance(10*time.Minute + time.Second)
		if _, answer := introspectAs(t, h, h.client, h.secret, tr.AccessToken); answer["active"] != false {
			t.Fatalf("a token expired a second ago: %v", answer)
		}
	})
}

// introspectAs introspects token as the client id with secret.
func introspectAs(t *testing.T, h *harness, id, secret, token string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+"/oauth/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]any{}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("HTTP %d: the answer is not JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, m
}

// resign returns token's header and claims (changed by change, when not
// nil) either signed by a new RSA key under the token's own key id and typ,
// what a forger without the provider's key can make, or, with change,
// carrying the provider's signature of the original claims.
func resign(t *testing.T, token string, change func(map[string]any)) string {
	t.Helper()
	header, claims := jwtParts(t, token)
	if change != nil {
		change(claims)
		payload, err := json.Marshal(claims)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(token, ".")
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := header["kid"].(string)
	typ, _ := header["typ"].(string)
	return signTypedJWT(t, key, kid, typ, claims)
}
