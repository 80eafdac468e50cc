package issuer_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/nsauth/nsauth/internal/federation/federationtest"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// syncBuffer is a log destination the test reads after the server wrote.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const ciSubject = "repo:acme/app:ref:refs/heads/main"

// exchangeFixture is a built-in provider with a machine client, a fake CI
// provider and a policy trusting the CI's main-branch jobs as the client.
type exchangeFixture struct {
	*harness
	ci     *federationtest.Issuer
	client *store.MachineClient
	policy *store.FederationPolicy
	logs   *syncBuffer
}

func newExchangeFixture(t *testing.T, b storetest.Backend, mod func(*issuer.Config)) *exchangeFixture {
	t.Helper()
	logs := &syncBuffer{}
	h := newHarness(t, b, func(c *issuer.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if mod != nil {
			mod(c)
		}
	})
	f := &exchangeFixture{harness: h, ci: federationtest.NewIssuer(t), logs: logs}
	f.client = &store.MachineClient{Name: "deployer", SecretHash: store.HashSecret(store.NewMachineClientSecret()),
		Scopes: []string{"deploy", "read"}, TokenTTL: 10 * time.Minute}
	if err := h.st.CreateMachineClient(ctx, f.client); err != nil {
		t.Fatal(err)
	}
	f.policy = &store.FederationPolicy{Name: "deploy-main", Issuer: f.ci.URL, Audience: h.url, Subject: "repo:acme/*:ref:refs/heads/main",
		ClientID: f.client.ID, MaxTTL: 5 * time.Minute}
	if err := h.st.CreateFederationPolicy(ctx, f.policy); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *exchangeFixture) ciToken(change func(map[string]any)) string {
	f.t.Helper()
	c := f.ci.Claims(f.clock.Now(), f.url, ciSubject)
	if change != nil {
		change(c)
	}
	return f.ci.Mint(f.t, c)
}

type exchangeAnswer struct {
	AccessToken      string `json:"access_token"`
	IssuedTokenType  string `json:"issued_token_type"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	Scope            string `json:"scope"`
	RefreshToken     string `json:"refresh_token"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	status           int
}

// exchange sends a token-exchange request without client authentication.
func (f *exchangeFixture) exchange(subjectToken string, extra url.Values) exchangeAnswer {
	f.t.Helper()
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subjectToken},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"},
	}
	for k, v := range extra {
		form[k] = v
	}
	resp, body := f.post("/oauth/token", form, false)
	var a exchangeAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		f.t.Fatalf("answer is not JSON (HTTP %d): %s", resp.StatusCode, body)
	}
	a.status = resp.StatusCode
	if resp.Header.Get("Cache-Control") != "no-store" {
		f.t.Errorf("Cache-Control = %q", resp.Header.Get("Cache-Control"))
	}
	return a
}

// verifier checks the provider's access tokens as a resource server would.
func (f *exchangeFixture) verifier() *authn.Verifier {
	f.t.Helper()
	p, err := authn.NewProviderFromConfig(ctx, f.url, authn.ProviderConfig{Now: f.clock.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	v, err := p.Verifier(authn.Config{Audiences: []string{f.url}, RequireAccessTokenType: true, Now: f.clock.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

func TestTokenExchange(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newExchangeFixture(t, b, nil)
		subject := f.ciToken(nil)
		a := f.exchange(subject, nil)
		if a.status != http.StatusOK {
			t.Fatalf("exchange: HTTP %d %s: %s", a.status, a.Error, a.ErrorDescription)
		}
		if a.IssuedTokenType != "urn:ietf:params:oauth:token-type:access_token" || a.TokenType != "Bearer" || a.RefreshToken != "" {
			t.Fatalf("answer %+v", a)
		}
		if a.ExpiresIn != 300 || a.Scope != "deploy read" {
			t.Fatalf("expires_in %d, scope %q; want the policy's 5 min and the client's scopes", a.ExpiresIn, a.Scope)
		}
		access := a.AccessToken
		claims, err := f.verifier().Verify(ctx, access)
		if err != nil {
			t.Fatalf("the access token does not verify: %v", err)
		}
		if claims.Subject != f.client.ID || claims.ClientID != f.client.ID || claims.ExpiresAt.Sub(f.clock.Now()) > 5*time.Minute {
			t.Fatalf("claims %+v", claims)
		}
		if _, err := f.st.ActiveAccessToken(ctx, claims.ID); err != nil {
			t.Fatalf("the token is not recorded: %v", err)
		}

		// A narrower scope, and the optional parameters a client may send.
		a = f.exchange(subject, url.Values{"scope": {"read"}, "requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
			"audience": {f.url}, "client_id": {f.client.ID}, "subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"}})
		if a.status != http.StatusOK || a.Scope != "read" {
			t.Fatalf("narrowed exchange: HTTP %d %s %s, scope %q", a.status, a.Error, a.ErrorDescription, a.Scope)
		}
		if a = f.exchange(subject, url.Values{"scope": {"admin"}}); a.Error != "invalid_scope" {
			t.Fatalf("a scope the client lacks: %+v", a)
		}

		// Deleting the policy revokes what it yielded.
		if err := f.st.DeleteFederationPolicy(ctx, f.policy.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.ActiveAccessToken(ctx, claims.ID); !errors.Is(err, store.ErrRevoked) {
			t.Fatalf("after the policy was deleted: %v, want ErrRevoked", err)
		}
		if a = f.exchange(subject, nil); a.status != http.StatusBadRequest || a.Error != "invalid_grant" {
			t.Fatalf("exchange under a deleted policy: %+v", a)
		}
		if logs := f.logs.String(); strings.Contains(logs, subject) || strings.Contains(logs, access) || strings.Contains(logs, claims.ID) {
			t.Fatal("a token reached the logs")
		}
	})
}

// Every refusal of the subject token gets the same answer, and none
// reaches the logs.
func TestTokenExchangeRefusals(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, testTokenExchangeRefusals)
}

func testTokenExchangeRefusals(t *testing.T, b storetest.Backend) {
	f := newExchangeFixture(t, b, nil)
	now := f.clock.Now()
	strangerKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other := federationtest.NewIssuer(t)
	own := f.tokens(nil) // the built-in provider's own tokens, from a real login
	// Even a policy naming the provider itself does not make its tokens
	// CI tokens (nsauth federation add refuses to create one).
	for name, aud := range map[string]string{"self-access": f.url, "self-id": f.harness.client} {
		if err := f.st.CreateFederationPolicy(ctx, &store.FederationPolicy{Name: name, Issuer: f.url, Audience: aud,
			Subject: "*", ClientID: f.client.ID}); err != nil {
			t.Fatal(err)
		}
	}
	claims := func(change func(map[string]any)) map[string]any {
		c := f.ci.Claims(now, f.url, ciSubject)
		change(c)
		return c
	}
	tests := []struct {
		name  string
		token string
	}{
		{"wrong audience", f.ciToken(func(c map[string]any) { c["aud"] = "https://elsewhere.example.com" })},
		{"wrong subject", f.ciToken(func(c map[string]any) { c["sub"] = "repo:acme/app:ref:refs/heads/evil" })},
		{"glob does not cross a colon", f.ciToken(func(c map[string]any) { c["sub"] = "repo:acme/app:x:ref:refs/heads/main" })},
		{"other issuer", other.Mint(t, claims(func(c map[string]any) { c["iss"] = other.URL }))},
		{"other issuer's key", other.Mint(t, claims(func(map[string]any) {}))},
		{"expired", f.ciToken(func(c map[string]any) {
			c["iat"], c["nbf"], c["exp"] = now.Add(-20*time.Minute).Unix(), now.Add(-20*time.Minute).Unix(), now.Add(-10*time.Minute).Unix()
		})},
		{"not yet valid", f.ciToken(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Minute).Unix() })},
		{"alg none", f.ci.MintUnsigned(t, claims(func(map[string]any) {}))},
		{"HMAC signed with the public key", f.ci.MintHMACWithPublicKey(t, claims(func(map[string]any) {}))},
		{"unknown kid", f.ci.MintWith(t, claims(func(map[string]any) {}), jose.RS256, strangerKey, "rsa-9")},
		{"the provider's own access token", own.AccessToken},
		{"the provider's own ID token", own.IDToken},
		{"oversized", f.ciToken(func(c map[string]any) { c["pad"] = strings.Repeat("x", 10000) })},
		{"not a JWT", "hello"},
	}
	var descriptions = map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.exchange(tt.token, nil)
			if a.status != http.StatusBadRequest || a.Error != "invalid_grant" || a.AccessToken != "" {
				t.Fatalf("HTTP %d %+v, want invalid_grant", a.status, a)
			}
			descriptions[a.ErrorDescription] = true
		})
	}
	if len(descriptions) != 1 {
		t.Errorf("refusals are told apart: %v", descriptions)
	}
	if other.DiscoveryFetches()+other.JWKSFetches() != 0 {
		t.Error("an issuer no policy names was contacted")
	}
	logs := f.logs.String()
	for _, tt := range tests {
		if len(tt.token) > 20 && strings.Contains(logs, tt.token) {
			t.Errorf("the %s reached the logs", tt.name)
		}
	}
	for _, reason := range []string{"token exchange refused", "this server's own", `algorithm \"none\"`, `algorithm \"HS256\"`, "no key with that id"} {
		if !strings.Contains(logs, reason) {
			t.Errorf("no refusal was logged for %q", reason)
		}
	}

	t.Run("disabled client", func(t *testing.T) {
		if err := f.st.SetMachineClientDisabled(ctx, f.client.ID, true); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = f.st.SetMachineClientDisabled(ctx, f.client.ID, false) }()
		if a := f.exchange(f.ciToken(nil), nil); a.status != http.StatusBadRequest || a.Error != "invalid_grant" {
			t.Fatalf("HTTP %d %+v, want invalid_grant", a.status, a)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		good := f.ciToken(nil)
		for name, extra := range map[string]url.Values{
			"access token subject type": {"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}},
			"refresh token requested":   {"requested_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"}},
			"actor token":               {"actor_token": {good}, "actor_token_type": {"urn:ietf:params:oauth:token-type:id_token"}},
			"repeated subject token":    {"subject_token": {good, good}},
		} {
			if a := f.exchange(good, extra); a.status != http.StatusBadRequest || a.Error != "invalid_request" {
				t.Errorf("%s: HTTP %d %+v, want invalid_request", name, a.status, a)
			}
		}
		if a := f.exchange(good, url.Values{"audience": {"https://elsewhere.example.com"}}); a.Error != "invalid_target" {
			t.Errorf("another audience: %+v", a)
		}
		if a := f.exchange(good, url.Values{"client_id": {"someone-else"}}); a.Error != "invalid_grant" {
			t.Errorf("another client_id: %+v", a)
		}
	})
}

func TestTokenExchangeRateLimits(t *testing.T) {
	t.Parallel()
	t.Run("per address", func(t *testing.T) {
		t.Parallel()
		f := newExchangeFixture(t, sqlite(), func(c *issuer.Config) { c.ExchangePerMinute = 3 })
		for i := range 3 {
			if a := f.exchange("garbage", nil); a.status != http.StatusBadRequest {
				t.Fatalf("request %d: HTTP %d", i, a.status)
			}
		}
		before := f.ci.JWKSFetches()
		if a := f.exchange(f.ciToken(nil), nil); a.status != http.StatusTooManyRequests || a.Error != "temporarily_unavailable" {
			t.Fatalf("fourth request: HTTP %d %+v, want 429 temporarily_unavailable", a.status, a)
		}
		if f.ci.JWKSFetches() != before {
			t.Fatal("a request over the limit was verified")
		}
		f.clock.Advance(time.Minute)
		if a := f.exchange(f.ciToken(nil), nil); a.status != http.StatusOK {
			t.Fatalf("a minute later: HTTP %d %+v", a.status, a)
		}
	})
	t.Run("per policy", func(t *testing.T) {
		t.Parallel()
		f := newExchangeFixture(t, sqlite(), func(c *issuer.Config) { c.ExchangePerMinute = -1; c.ExchangePerPolicyMinute = 2 })
		tok := f.ciToken(nil)
		for i := range 2 {
			if a := f.exchange(tok, nil); a.status != http.StatusOK {
				t.Fatalf("request %d: HTTP %d %+v", i, a.status, a)
			}
		}
		if a := f.exchange(tok, nil); a.status != http.StatusTooManyRequests {
			t.Fatalf("third request: HTTP %d, want 429", a.status)
		}
	})
}
