package issuer_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// machine registers a machine client and returns its id and secret.
func (h *harness) machine(name string, scopes []string, ttl time.Duration) (string, string) {
	h.t.Helper()
	secret := store.NewMachineClientSecret()
	c := &store.MachineClient{Name: name, SecretHash: store.HashSecret(secret), Scopes: scopes, TokenTTL: ttl}
	if err := h.st.CreateMachineClient(ctx, c); err != nil {
		h.t.Fatal(err)
	}
	return c.ID, secret
}

// clientCredentials posts a client-credentials token request, the
// credentials in HTTP Basic authentication (or, with post, in the form).
func (h *harness) clientCredentials(id, secret string, form url.Values, post bool) tokenResponse {
	h.t.Helper()
	f := url.Values{"grant_type": {"client_credentials"}}
	for k, v := range form {
		f[k] = v
	}
	if post {
		f.Set("client_id", id)
		f.Set("client_secret", secret)
	}
	req, err := http.NewRequest(http.MethodPost, h.url+"/oauth/token", strings.NewReader(f.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if !post {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	tr := tokenResponse{status: resp.StatusCode}
	if err := json.Unmarshal(body, &tr); err != nil {
		h.t.Fatalf("token response is not JSON (HTTP %d): %s", resp.StatusCode, body)
	}
	if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
		h.t.Error("a 429 without Retry-After")
	}
	return tr
}

// wantRefused checks a token response is the one invalid_client answer.
func wantRefused(t *testing.T, what string, tr tokenResponse) {
	t.Helper()
	if tr.status != http.StatusUnauthorized || tr.Error != "invalid_client" || tr.ErrorDescription != "client authentication failed" || tr.AccessToken != "" {
		t.Errorf("%s: HTTP %d %s %q, want 401 invalid_client with the fixed message", what, tr.status, tr.Error, tr.ErrorDescription)
	}
}

func TestClientCredentialsGrant(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		id, secret := h.machine("deploy", []string{"read", "write"}, 5*time.Minute)
		long, longSecret := h.machine("long-lived", []string{"read"}, 2*time.Hour)
		tests := []struct {
			name       string
			id, secret string
			form       url.Values
			post       bool
			wantStatus int
			wantError  string
			wantScope  string
			wantTTL    int64
		}{
			{name: "all allowed scopes when none asked", id: id, secret: secret, wantStatus: 200, wantScope: "read write", wantTTL: 300},
			{name: "narrowed", id: id, secret: secret, form: url.Values{"scope": {"read"}}, wantStatus: 200, wantScope: "read", wantTTL: 300},
			{name: "credentials in the form", id: id, secret: secret, post: true, wantStatus: 200, wantScope: "read write", wantTTL: 300},
			{name: "lifetime capped by the server", id: long, secret: longSecret, wantStatus: 200, wantScope: "read", wantTTL: 900},
			{name: "scope not allowed", id: id, secret: secret, form: url.Values{"scope": {"read admin"}}, wantStatus: 400, wantError: "invalid_scope"},
			{name: "openid not allowed", id: id, secret: secret, form: url.Values{"scope": {"openid"}}, wantStatus: 400, wantError: "invalid_scope"},
			{name: "offline_access not allowed", id: id, secret: secret, form: url.Values{"scope": {"read offline_access"}}, wantStatus: 400, wantError: "invalid_scope"},
			{name: "wrong secret", id: id, secret: secret + "x", wantStatus: 401, wantError: "invalid_client"},
			{name: "empty secret", id: id, secret: "", post: true, wantStatus: 401, wantError: "invalid_client"},
			{name: "another client's secret", id: id, secret: longSecret, wantStatus: 401, wantError: "invalid_client"},
			{name: "unknown client", id: "m-nobody", secret: secret, wantStatus: 401, wantError: "invalid_client"},
			{name: "the broker's client", id: h.client, secret: h.secret, wantStatus: 401, wantError: "invalid_client"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tr := h.clientCredentials(tt.id, tt.secret, tt.form, tt.post)
				if tr.status != tt.wantStatus || tr.Error != tt.wantError {
					t.Fatalf("HTTP %d %s %q, want %d %s", tr.status, tr.Error, tr.ErrorDescription, tt.wantStatus, tt.wantError)
				}
				if tt.wantError == "invalid_client" {
					wantRefused(t, tt.name, tr)
				}
				if tt.wantStatus != 200 {
					return
				}
				if tr.RefreshToken != "" || tr.IDToken != "" || tr.TokenType != "Bearer" || tr.Scope != tt.wantScope || tr.ExpiresIn != tt.wantTTL {
					t.Errorf("token response = %+v", tr)
				}
				hdr, claims := jwtParts(t, tr.AccessToken)
				if hdr["typ"] != "at+jwt" {
					t.Errorf("typ = %v", hdr["typ"])
				}
				if claims["sub"] != tt.id || claims["client_id"] != tt.id || claims["scope"] != tt.wantScope || claims["aud"] != h.url || claims["iss"] != h.url {
					t.Errorf("claims = %v", claims)
				}
				if _, ok := claims["auth_time"]; ok {
					t.Error("a machine token carries auth_time")
				}
				if exp, iat := claims["exp"].(float64), claims["iat"].(float64); int64(exp-iat) != tt.wantTTL {
					t.Errorf("lifetime %vs, want %d", exp-iat, tt.wantTTL)
				}
				if _, err := h.st.ActiveAccessToken(ctx, claims["jti"].(string)); err != nil {
					t.Errorf("the token is not recorded: %v", err)
				}
			})
		}

		t.Run("not for other grants", func(t *testing.T) {
			for _, form := range []url.Values{
				{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {redirectURI}},
				{"grant_type": {"refresh_token"}, "refresh_token": {"x"}},
			} {
				tr := h.clientCredentials(id, secret, form, false)
				if tr.status != http.StatusUnauthorized || tr.Error != "invalid_client" {
					t.Errorf("%s with a machine client: HTTP %d %s", form.Get("grant_type"), tr.status, tr.Error)
				}
			}
		})

		t.Run("a user's token is not a machine's", func(t *testing.T) {
			_, claims := jwtParts(t, h.tokens(nil).AccessToken)
			if claims["sub"] == claims["client_id"] {
				t.Errorf("a user's token has sub = client_id: %v", claims)
			}
		})
	})
}

// TestClientCredentialsLifecycle checks that disabling, rotating and
// deleting a machine client take effect at once: for new tokens, and for
// live ones through the revocation records verifiers follow.
func TestClientCredentialsLifecycle(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		id, secret := h.machine("ci", []string{"read"}, 0)
		issue := func(sec string) string {
			t.Helper()
			tr := h.clientCredentials(id, sec, nil, false)
			if tr.status != http.StatusOK {
				t.Fatalf("HTTP %d %s %q", tr.status, tr.Error, tr.ErrorDescription)
			}
			_, claims := jwtParts(t, tr.AccessToken)
			return claims["jti"].(string)
		}
		revoked := func(jti string) bool {
			t.Helper()
			// A deleted client's token records go with it; the revocation
			// stays.
			_, err := h.st.ActiveAccessToken(ctx, jti)
			if !errors.Is(err, store.ErrRevoked) && !errors.Is(err, store.ErrNotFound) {
				return false
			}
			live, err := h.st.LiveRevocations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range live {
				if r.TokenID == jti {
					return true
				}
			}
			return false
		}

		jti := issue(secret)
		if err := h.st.SetMachineClientDisabled(ctx, id, true); err != nil {
			t.Fatal(err)
		}
		if !revoked(jti) {
			t.Error("disabling did not revoke the live token")
		}
		wantRefused(t, "disabled", h.clientCredentials(id, secret, nil, false))
		if err := h.st.SetMachineClientDisabled(ctx, id, false); err != nil {
			t.Fatal(err)
		}
		jti = issue(secret)

		newSecret := store.NewMachineClientSecret()
		if err := h.st.SetMachineClientSecret(ctx, id, store.HashSecret(newSecret)); err != nil {
			t.Fatal(err)
		}
		if !revoked(jti) {
			t.Error("rotating the secret did not revoke the live token")
		}
		wantRefused(t, "old secret", h.clientCredentials(id, secret, nil, false))
		jti = issue(newSecret)

		if err := h.st.DeleteMachineClient(ctx, id); err != nil {
			t.Fatal(err)
		}
		if !revoked(jti) {
			t.Error("deleting did not revoke the live token")
		}
		wantRefused(t, "deleted", h.clientCredentials(id, newSecret, nil, false))
	})
}

func TestClientCredentialsRateLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  func(*issuer.Config)
		// clients is how many distinct clients the requests cycle through.
		clients int
	}{
		{"per client", func(c *issuer.Config) { c.MachineTokensPerMinute = 3 }, 1},
		{"per address", func(c *issuer.Config) { c.MachineTokensPerAddressPerMinute = 3 }, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, sqlite(), tt.cfg)
			type cred struct{ id, secret string }
			var creds []cred
			for i := range tt.clients {
				id, s := h.machine("c"+string(rune('a'+i)), []string{"read"}, 0)
				creds = append(creds, cred{id, s})
			}
			for i := range 3 {
				c := creds[i%len(creds)]
				// Wrong secrets count too: the limit is what stops a guesser.
				sec := c.secret
				if i == 0 {
					sec = "wrong"
				}
				if tr := h.clientCredentials(c.id, sec, nil, false); tr.status == http.StatusTooManyRequests {
					t.Fatalf("request %d refused early", i)
				}
			}
			c := creds[3%len(creds)]
			if tr := h.clientCredentials(c.id, c.secret, nil, false); tr.status != http.StatusTooManyRequests {
				t.Fatalf("request over the budget: HTTP %d, want 429", tr.status)
			}
			h.clock.Advance(time.Minute)
			if tr := h.clientCredentials(c.id, c.secret, nil, false); tr.status != http.StatusOK {
				t.Fatalf("after a minute: HTTP %d %s", tr.status, tr.Error)
			}
		})
	}
	t.Run("other clients unaffected", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, sqlite(), func(c *issuer.Config) { c.MachineTokensPerMinute = 1 })
		a, as := h.machine("a", nil, 0)
		bid, bs := h.machine("b", nil, 0)
		h.clientCredentials(a, as, nil, false)
		if tr := h.clientCredentials(a, as, nil, false); tr.status != http.StatusTooManyRequests {
			t.Fatalf("second request of a: HTTP %d", tr.status)
		}
		if tr := h.clientCredentials(bid, bs, nil, false); tr.status != http.StatusOK {
			t.Fatalf("b: HTTP %d %s", tr.status, tr.Error)
		}
		// Another spelling of a's id (RFC 6749 §2.3.1 form encoding) is
		// the same bucket.
		req, _ := http.NewRequest(http.MethodPost, h.url+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(strings.Replace(a, "-", "%2D", 1), as)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("a's id spelled differently: HTTP %d", resp.StatusCode)
		}
	})
}

func TestClientCredentialsNoSecretInLogs(t *testing.T) {
	t.Parallel()
	h, logs := newLoggedHarness(t, sqlite(), nil)
	id, secret := h.machine("quiet", []string{"read"}, 0)
	var bodies []string
	for _, sec := range []string{secret, secret + "x", ""} {
		tr := h.clientCredentials(id, sec, nil, false)
		bodies = append(bodies, tr.Error+tr.ErrorDescription)
	}
	if err := h.st.SetMachineClientDisabled(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	tr := h.clientCredentials(id, secret, nil, false)
	bodies = append(bodies, tr.Error+tr.ErrorDescription)
	for _, s := range append(bodies, logs.String()) {
		if strings.Contains(s, secret) {
			t.Fatalf("the secret appears in %q", s)
		}
	}
}
