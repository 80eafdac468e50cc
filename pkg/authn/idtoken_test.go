package authn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// TestIDTokens checks Config.IDTokens: a relying party's verifier of ID
// tokens takes them untyped or typed JWT, refuses an access token (typed
// at+jwt) and anything but an asymmetric signature, and still checks iss,
// aud and exp.
func TestIDTokens(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	prov, err := authn.NewProviderWithKeys(p.Issuer, mustKeySet(t, p))
	if err != nil {
		t.Fatal(err)
	}
	v, err := prov.Verifier(authn.Config{Audiences: []string{p.ClientID}, IDTokens: true, CacheEntries: -1})
	if err != nil {
		t.Fatal(err)
	}
	idClaims := func(mutate func(map[string]any)) map[string]any {
		now := time.Now()
		c := map[string]any{"iss": p.Issuer, "sub": "user-1", "aud": p.ClientID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "nonce": "n-1"}
		if mutate != nil {
			mutate(c)
		}
		return c
	}
	for _, tc := range []struct {
		name      string
		token     string
		refusedBy string // "" accepts
	}{
		{"untyped", p.Sign(idClaims(nil), nil), ""},
		{"typed JWT", p.Sign(idClaims(nil), map[string]any{"typ": "JWT"}), ""},
		{"access token type", p.Sign(idClaims(nil), map[string]any{"typ": "at+jwt"}), "token type"},
		{"other type", p.Sign(idClaims(nil), map[string]any{"typ": "logout+jwt"}), "token type"},
		{"wrong audience", p.Sign(idClaims(func(c map[string]any) { c["aud"] = "another-client" }), nil), "audience"},
		{"wrong issuer", p.Sign(idClaims(func(c map[string]any) { c["iss"] = "https://evil.example" }), nil), "issuer"},
		{"expired", p.Sign(idClaims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), nil), "expiry"},
		{"alg none", p.Sign(idClaims(nil), map[string]any{"alg": "none"}), "algorithm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims, err := v.Verify(context.Background(), tc.token)
			if tc.refusedBy == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				var extra struct {
					Nonce string `json:"nonce"`
				}
				if err := claims.Decode(&extra); err != nil || extra.Nonce != "n-1" {
					t.Errorf("nonce = %q, %v", extra.Nonce, err)
				}
				return
			}
			if !errors.Is(err, authn.ErrInvalidToken) || authn.RefusedCheck(err) != tc.refusedBy || authn.RefusedBy(err) != tc.refusedBy {
				t.Errorf("err = %v (refused by %q), want refused by %q", err, authn.RefusedBy(err), tc.refusedBy)
			}
		})
	}
}

func TestIDTokensWithAccessTokenTypeIsAConfigurationError(t *testing.T) {
	t.Parallel()
	prov, err := authn.NewProviderWithKeys("https://issuer.example", staticKeys{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prov.Verifier(authn.Config{Audiences: []string{"c"}, IDTokens: true, RequireAccessTokenType: true}); err == nil {
		t.Error("IDTokens with RequireAccessTokenType accepted")
	}
}

func mustKeySet(t *testing.T, p *oidctest.Provider) *authn.RemoteKeySet {
	t.Helper()
	ks, err := authn.NewRemoteKeySet(authn.RemoteKeySetConfig{URL: authn.StaticURL(p.Server.URL + oidctest.PathJWKS)})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestRefusedCheckOfOtherErrors(t *testing.T) {
	t.Parallel()
	for _, err := range []error{nil, errors.New("other"), authn.ErrUnavailable, authn.ErrKeysUnavailable} {
		if got := authn.RefusedCheck(err); got != "" {
			t.Errorf("RefusedCheck(%v) = %q, want none", err, got)
		}
	}
}
