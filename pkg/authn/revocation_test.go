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

func TestRevocationSet(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	claims := func(id string) *authn.Claims { return &authn.Claims{ID: id} }
	tests := []struct {
		name  string
		add   map[string]time.Time
		check *authn.Claims
		want  bool
	}{
		{name: "added id", add: map[string]time.Time{"t1": now.Add(time.Minute)}, check: claims("t1"), want: true},
		{name: "other id", add: map[string]time.Time{"t1": now.Add(time.Minute)}, check: claims("t2"), want: false},
		{name: "empty set", check: claims("t1"), want: false},
		{name: "token without jti", add: map[string]time.Time{"t1": now.Add(time.Minute)}, check: claims(""), want: false},
		{name: "empty id is ignored", add: map[string]time.Time{"": now.Add(time.Minute)}, check: claims(""), want: false},
		{name: "nil claims", add: map[string]time.Time{"t1": now.Add(time.Minute)}, check: nil, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &authn.RevocationSet{Now: func() time.Time { return now }}
			for id, exp := range tt.add {
				s.Add(id, exp)
			}
			if got := s.Revoked(context.Background(), tt.check); got != tt.want {
				t.Fatalf("Revoked = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRevocationSetDropsExpired checks that memory is bounded by the live
// revoked tokens: entries past their expiry go as the set grows.
func TestRevocationSetDropsExpired(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	s := &authn.RevocationSet{Now: func() time.Time { return now }}
	for i := range 1000 {
		s.Add(fmt.Sprintf("dead-%d", i), now.Add(-time.Second))
	}
	s.Add("live", now.Add(time.Hour))
	if n := s.Len(); n > 2*64 {
		t.Fatalf("Len = %d after 1000 expired adds, want the expired ones dropped", n)
	}
	if !s.Revoked(context.Background(), &authn.Claims{ID: "live"}) {
		t.Fatal("the live entry was dropped")
	}
	// Re-adding with an earlier expiry keeps the later one.
	s.Add("live", now.Add(-time.Hour))
	for i := range 1000 {
		s.Add(fmt.Sprintf("dead2-%d", i), now.Add(-time.Second))
	}
	if !s.Revoked(context.Background(), &authn.Claims{ID: "live"}) {
		t.Fatal("an earlier expiry replaced the later one")
	}
}

func TestRevocationSetConcurrent(t *testing.T) {
	t.Parallel()
	s := &authn.RevocationSet{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				id := fmt.Sprintf("%d-%d", w, i)
				s.Add(id, time.Now().Add(time.Minute))
				if !s.Revoked(context.Background(), &authn.Claims{ID: id}) {
					t.Errorf("%s not revoked right after Add", id)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestVerifierRevocations checks that a token the checker reports revoked
// is refused, by the "revoked" check, whether the verifier had it cached
// or not, and that other tokens are unaffected.
func TestVerifierRevocations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cache int
	}{
		{name: "cached", cache: 0},
		{name: "uncached", cache: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := oidctest.New(t)
			revoked := &authn.RevocationSet{}
			v, _ := newVerifier(t, p, func(c *authn.VerifierConfig, _ *authn.RemoteKeySetConfig) {
				c.CacheEntries, c.Revocations = tt.cache, revoked
			})
			ctx := context.Background()
			token, other := p.AccessToken(), p.AccessToken()
			claims, err := v.Verify(ctx, token)
			if err != nil {
				t.Fatal(err)
			}
			if claims.ID == "" {
				t.Fatal("the test token has no jti")
			}
			revoked.Add(claims.ID, claims.ExpiresAt)
			for range 2 { // the second call would be a cache hit
				_, err = v.Verify(ctx, token)
				if !errors.Is(err, authn.ErrInvalidToken) || authn.RefusedBy(err) != "revoked" {
					t.Fatalf("Verify of a revoked token: %v (check %q), want a refusal by the revoked check", err, authn.RefusedBy(err))
				}
			}
			if _, err := v.Verify(ctx, other); err != nil {
				t.Fatalf("Verify of another token: %v", err)
			}
		})
	}
}

// TestVerifyCachedWithRevocationsAllocs checks that consulting a
// RevocationSet adds no allocation to a cached verification.
func TestVerifyCachedWithRevocationsAllocs(t *testing.T) {
	p := oidctest.New(t)
	plain, _ := newVerifier(t, p, nil)
	revoked := &authn.RevocationSet{}
	for i := range 1000 {
		revoked.Add(fmt.Sprintf("other-%d", i), time.Now().Add(time.Hour))
	}
	checked, _ := newVerifier(t, p, func(c *authn.VerifierConfig, _ *authn.RemoteKeySetConfig) { c.Revocations = revoked })
	token := p.AccessToken()
	ctx := context.Background()
	allocs := func(v *authn.Verifier) float64 {
		if _, err := v.Verify(ctx, token); err != nil {
			t.Fatal(err)
		}
		return testing.AllocsPerRun(100, func() {
			if _, err := v.Verify(ctx, token); err != nil {
				t.Fatal(err)
			}
		})
	}
	if a, b := allocs(plain), allocs(checked); b > a {
		t.Fatalf("a cached verification allocates %.0f times with a RevocationSet, %.0f without", b, a)
	}
}
