package authn_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// newVerifier returns a verifier trusting p, with an adjustable clock.
func newVerifier(t testing.TB, p *oidctest.Provider, mutate func(*authn.VerifierConfig, *authn.RemoteKeySetConfig)) (*authn.Verifier, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Now()}
	ksCfg := authn.RemoteKeySetConfig{URL: authn.StaticURL(p.Server.URL + oidctest.PathJWKS), Now: clock.Now}
	vCfg := authn.VerifierConfig{
		Issuer:     p.Issuer,
		Audiences:  []string{p.Audience},
		Algorithms: []string{"RS256", "ES256"},
		Now:        clock.Now,
	}
	if mutate != nil {
		mutate(&vCfg, &ksCfg)
	}
	ks, err := authn.NewRemoteKeySet(ksCfg)
	if err != nil {
		t.Fatal(err)
	}
	vCfg.KeySet = ks
	v, err := authn.NewVerifier(vCfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, clock
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestVerifyAcceptsValidTokens(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			var opts []oidctest.Option
			if alg == "ES256" {
				opts = append(opts, oidctest.WithES256())
			}
			p := oidctest.New(t, opts...)
			v, _ := newVerifier(t, p, nil)
			claims, err := v.Verify(context.Background(), p.AccessToken())
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if claims.Subject != p.Subject || claims.Issuer != p.Issuer || claims.ClientID != p.ClientID {
				t.Errorf("claims = %+v", claims)
			}
			if got := fmt.Sprint(claims.Scopes); got != "[openid profile]" {
				t.Errorf("scopes = %s", got)
			}
		})
	}
}

func TestVerifyRefusesBadClaims(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	v, _ := newVerifier(t, p, nil)
	now := time.Now()
	tests := []struct {
		name   string
		mutate func(map[string]any)
	}{
		{"wrong issuer", func(c map[string]any) { c["iss"] = "https://evil.example" }},
		{"issuer with trailing slash", func(c map[string]any) { c["iss"] = p.Issuer + "/" }},
		{"missing audience", func(c map[string]any) { delete(c, "aud") }},
		{"wrong audience", func(c map[string]any) { c["aud"] = "someone-else" }},
		{"audience of wrong type", func(c map[string]any) { c["aud"] = 42 }},
		{"empty audience list", func(c map[string]any) { c["aud"] = []string{} }},
		{"missing subject", func(c map[string]any) { delete(c, "sub") }},
		{"missing exp", func(c map[string]any) { delete(c, "exp") }},
		{"expired", func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }},
		{"exp as string", func(c map[string]any) { c["exp"] = fmt.Sprint(now.Add(time.Hour).Unix()) }},
		{"nbf in the future", func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() }},
		{"iat in the future", func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := p.AccessClaims("alice")
			tt.mutate(c)
			_, err := v.Verify(context.Background(), p.Sign(c, nil))
			if !errors.Is(err, authn.ErrInvalidToken) {
				t.Fatalf("Verify error = %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestVerifyToleratesClockSkew(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	v, clock := newVerifier(t, p, nil)
	tok := p.AccessToken()
	clock.Advance(15*time.Minute + 30*time.Second) // 30 s past exp, within 60 s skew
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("within skew: %v", err)
	}
	clock.Advance(time.Minute)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, authn.ErrTokenExpired) {
		t.Fatalf("past skew: err = %v, want ErrTokenExpired", err)
	}
}

func TestKeyRotationCausesOneRefetch(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	v, clock := newVerifier(t, p, nil)
	if _, err := v.Verify(context.Background(), p.AccessToken()); err != nil {
		t.Fatal(err)
	}
	if n := p.Count(oidctest.PathJWKS); n != 1 {
		t.Fatalf("JWKS fetches after first verify = %d, want 1", n)
	}
	// Unknown key ids trigger at most one refetch per interval (30 s), so
	// the rotation happens a little after the first fetch.
	clock.Advance(31 * time.Second)
	p.Keys.Rotate("ES256")
	rotated := p.AccessToken()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := v.Verify(context.Background(), rotated)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("verify after rotation: %v", err)
		}
	}
	if n := p.Count(oidctest.PathJWKS); n != 2 {
		t.Fatalf("JWKS fetches after rotation = %d, want 2 (one shared refetch)", n)
	}
}

func TestUnknownKeyIDsAreRateLimited(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	v, clock := newVerifier(t, p, nil)
	if _, err := v.Verify(context.Background(), p.AccessToken()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute) // past the refetch interval: one refetch is allowed
	for i := range 1000 {
		tok := p.Sign(p.AccessClaims("alice"), map[string]any{"kid": fmt.Sprintf("random-%d", i)})
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, authn.ErrInvalidToken) {
			t.Fatalf("unknown kid %d: err = %v", i, err)
		}
	}
	if n := p.Count(oidctest.PathJWKS); n != 2 {
		t.Fatalf("JWKS fetches = %d, want 2 (initial + one refetch for 1000 unknown kids)", n)
	}
}

func TestCachedKeysSurviveJWKSOutage(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	v, clock := newVerifier(t, p, nil)
	if _, err := v.Verify(context.Background(), p.AccessToken()); err != nil {
		t.Fatal(err)
	}
	if got := p.Count(oidctest.PathJWKS); got != 1 {
		t.Fatalf("JWKS fetched %d times before the outage, want 1", got)
	}
	p.SetFailure(oidctest.PathJWKS, oidctest.Status500)
	clock.Advance(11 * time.Minute) // past MaxAge: a refetch is attempted and fails
	if _, err := v.Verify(context.Background(), p.AccessToken()); err != nil {
		t.Fatalf("verify during JWKS outage: %v", err)
	}
	// Without this, a key set that never refetched (so never met the
	// outage) would pass as one that survived it.
	if got := p.Count(oidctest.PathJWKS); got != 2 {
		t.Fatalf("JWKS requested %d times in all, want 2: the expired set must be refetched once, and the failure survived", got)
	}
}

func TestNoKeysIsUnavailableNotInvalid(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	p.SetFailure(oidctest.PathJWKS, oidctest.Status500)
	v, _ := newVerifier(t, p, nil)
	_, err := v.Verify(context.Background(), p.AccessToken())
	if !errors.Is(err, authn.ErrKeysUnavailable) {
		t.Fatalf("err = %v, want ErrKeysUnavailable", err)
	}
}

func TestRemovedKeyStopsVerifying(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	v, clock := newVerifier(t, p, nil)
	old := p.Keys.Current()
	tok := p.AccessToken()
	for range 2 { // the second time from the verifier's cache
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	p.Keys.Rotate("RS256")
	p.Keys.Remove(old.ID)
	clock.Advance(11 * time.Minute) // past the key set's MaxAge, within the token's 15 min
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("token signed by a removed key: err = %v, want ErrInvalidToken", err)
	}
}

func TestNewVerifierRefusesSymmetricAlgorithms(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"HS256", "none", "rs256"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			_, err := authn.NewVerifier(authn.VerifierConfig{Issuer: "x", Audiences: []string{"a"}, KeySet: staticKeys{}, Algorithms: []string{alg}})
			if err == nil {
				t.Fatalf("NewVerifier accepted algorithm %q", alg)
			}
		})
	}
}
