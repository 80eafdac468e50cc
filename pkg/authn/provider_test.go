package authn_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

func TestNewProvider(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithES256())
	provider, err := authn.NewProvider(context.Background(), p.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	if provider.Issuer() != p.Issuer {
		t.Errorf("Issuer() = %q, want %q", provider.Issuer(), p.Issuer)
	}
	md, ok := provider.Metadata()
	if !ok || md.JWKSURI != p.Server.URL+oidctest.PathJWKS {
		t.Fatalf("Metadata() = %+v, %v", md, ok)
	}
	// The copy is the caller's own.
	md.IDTokenSigningAlgValuesSupported[0] = "changed"
	if again, _ := provider.Metadata(); again.IDTokenSigningAlgValuesSupported[0] == "changed" {
		t.Fatal("Metadata returned a slice shared with the provider")
	}
	if got := p.Count(oidctest.PathJWKS); got != 0 {
		t.Fatalf("JWKS fetched %d times by NewProvider, want 0 (at the first verification)", got)
	}
	v, err := provider.Verifier(authn.Config{Audiences: []string{p.Audience}})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(context.Background(), p.AccessToken())
	if err != nil {
		t.Fatal(err)
	}
	if claims.Issuer != p.Issuer {
		t.Errorf("claims.Issuer = %q", claims.Issuer)
	}
	// The algorithms come from the document: an HMAC token is refused.
	forged := p.Sign(p.AccessClaims("alice"), map[string]any{"alg": "HS256"})
	if _, err := v.Verify(context.Background(), forged); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("HS256 token: err = %v, want ErrInvalidToken", err)
	}
}

func TestNewProviderRefuses(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	down := oidctest.New(t)
	down.SetFailure(oidctest.PathDiscovery, oidctest.Status500)
	mismatched := oidctest.New(t)
	mismatched.SetDiscoveredIssuer("https://evil.example")
	for _, tc := range []struct {
		name        string
		issuer      string
		want        string
		unavailable bool
		mismatch    bool
	}{
		{name: "a trailing slash", issuer: p.Issuer + "/", want: "names the issuer", mismatch: true},
		{name: "the document names another issuer", issuer: mismatched.Issuer, want: "https://evil.example", mismatch: true},
		{name: "the provider is down", issuer: down.Issuer, want: "HTTP 500", unavailable: true},
		{name: "not a URL", issuer: "auth.example.com", want: "authn: issuer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := authn.NewProvider(context.Background(), tc.issuer)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewProvider = %v, want an error containing %q", err, tc.want)
			}
			if got := errors.Is(err, authn.ErrUnavailable) && errors.Is(err, oidcdiscovery.ErrUnavailable); got != tc.unavailable {
				t.Errorf("matches ErrUnavailable of both packages: %v, want %v", got, tc.unavailable)
			}
			if got := errors.Is(err, oidcdiscovery.ErrIssuerMismatch); got != tc.mismatch {
				t.Errorf("matches ErrIssuerMismatch: %v, want %v", got, tc.mismatch)
			}
		})
	}
}

func TestProviderVerifierPolicy(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	clock := &fakeClock{t: time.Now()}
	keys, err := authn.NewRemoteKeySet(authn.RemoteKeySetConfig{URL: authn.StaticURL(p.Server.URL + oidctest.PathJWKS)})
	if err != nil {
		t.Fatal(err)
	}
	provider, err := authn.NewProviderWithKeys(p.Issuer, keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cfg     authn.Config
		token   func() string
		advance time.Duration
		want    error // nil for accepted
		wantCfg string
	}{
		{name: "accepted", cfg: authn.Config{Audiences: []string{p.Audience}, Now: clock.Now}, token: p.AccessToken},
		{name: "another audience", cfg: authn.Config{Audiences: []string{"other-api"}, Now: clock.Now}, token: p.AccessToken, want: authn.ErrInvalidToken},
		{name: "expired by the verifier's clock", cfg: authn.Config{Audiences: []string{p.Audience}, Now: func() time.Time { return time.Now().Add(24 * time.Hour) }},
			token: p.AccessToken, want: authn.ErrTokenExpired},
		{name: "no audience", cfg: authn.Config{}, wantCfg: "audience is required"},
		{name: "an HMAC algorithm", cfg: authn.Config{Audiences: []string{"a"}, Algorithms: []string{"HS256"}}, wantCfg: "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := provider.Verifier(tc.cfg)
			if tc.wantCfg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantCfg) {
					t.Fatalf("Verifier = %v, want an error containing %q", err, tc.wantCfg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(context.Background(), tc.token())
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewProviderWithKeysRefuses(t *testing.T) {
	t.Parallel()
	keys, err := authn.NewRemoteKeySet(authn.RemoteKeySetConfig{URL: authn.StaticURL("https://auth.example.com/jwks")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		issuer string
		keys   authn.KeySet
		want   string
	}{
		{"no issuer", "", keys, "issuer is required"},
		{"no keys", "https://auth.example.com", nil, "key set is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := authn.NewProviderWithKeys(tc.issuer, tc.keys); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewProviderWithKeys = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestNewProviderUsesTheGivenClient(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	var used int
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used++
		return http.DefaultTransport.RoundTrip(r)
	})}
	provider, err := authn.NewProviderFromConfig(context.Background(), p.Issuer, authn.ProviderConfig{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	v, err := provider.Verifier(authn.Config{Audiences: []string{p.Audience}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), p.AccessToken()); err != nil {
		t.Fatal(err)
	}
	if used != 2 {
		t.Fatalf("the given client made %d requests, want 2 (discovery and JWKS)", used)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
