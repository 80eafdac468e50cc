package authn_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// lookups records what OnCacheLookup is told.
type lookups struct {
	mu   sync.Mutex
	seen []bool
}

func (l *lookups) observe(hit bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, hit)
}

func (l *lookups) last() (n int, lastHit bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) == 0 {
		return 0, false
	}
	return len(l.seen), l.seen[len(l.seen)-1]
}

func TestOnCacheLookupTellsHitsAndMisses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		verify func(t *testing.T, l *lookups) (authn.TokenVerifier, string)
	}{
		{"JWT verifier", func(t *testing.T, l *lookups) (authn.TokenVerifier, string) {
			p := oidctest.New(t)
			v, _ := newVerifier(t, p, func(c *authn.VerifierConfig, _ *authn.RemoteKeySetConfig) { c.OnCacheLookup = l.observe })
			return v, p.AccessToken()
		}},
		{"introspector", func(t *testing.T, l *lookups) (authn.TokenVerifier, string) {
			p := oidctest.New(t, oidctest.WithOpaqueAccessTokens())
			in := newIntrospectorWith(t, p, func(c *authn.IntrospectorConfig) { c.OnCacheLookup = l.observe })
			access, _ := opaqueToken(t, p)
			return in, access
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := &lookups{}
			v, token := tc.verify(t, l)
			const calls = 4
			for range calls {
				if _, err := v.Verify(context.Background(), token); err != nil {
					t.Fatalf("Verify: %v", err)
				}
			}
			n, lastHit := l.last()
			if n != calls || !lastHit {
				t.Errorf("told %d lookups (last hit: %v), want %d ending with a hit: %v", n, lastHit, calls, l.seen)
			}
			if l.seen[0] {
				t.Error("the first lookup was a hit")
			}
		})
	}
}

// TestHotTokenStaysCachedUnderChurn: a token used between every two of
// many distinct tokens, more than the cache holds, is answered from the
// cache every time: a full cache keeps admitting new tokens, and it evicts
// the least recently used, never the one in use.
func TestHotTokenStaysCachedUnderChurn(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	const capacity, churn = 50, 300
	var hot, cold lookups
	var observe func(bool)
	v, _ := newVerifier(t, p, func(c *authn.VerifierConfig, _ *authn.RemoteKeySetConfig) {
		c.CacheEntries = capacity
		c.OnCacheLookup = func(hit bool) { observe(hit) }
	})
	ctx := context.Background()
	// The key set is fetched on first use, which changes its generation:
	// a result cached before that is checked again once (by design).
	observe = func(bool) {}
	if _, err := v.Verify(ctx, p.AccessToken()); err != nil {
		t.Fatal(err)
	}
	hotToken := p.AccessToken()
	observe = hot.observe
	if _, err := v.Verify(ctx, hotToken); err != nil {
		t.Fatal(err)
	}
	distinct := make([]string, churn)
	for i := range distinct {
		claims := p.AccessClaims(p.Subject)
		claims["jti"] = fmt.Sprintf("churn-%d", i)
		distinct[i] = p.Sign(claims, map[string]any{"typ": "at+jwt"})
	}
	for i, tok := range distinct {
		observe = cold.observe
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("distinct token %d: %v", i, err)
		}
		observe = hot.observe
		if _, err := v.Verify(ctx, hotToken); err != nil {
			t.Fatalf("hot token after %d distinct: %v", i, err)
		}
	}
	// Every distinct token was a miss (admitted past the bound), the hot
	// one a miss once (its first use) and a hit every time after.
	hits := func(l *lookups) (n int) {
		for _, h := range l.seen {
			if h {
				n++
			}
		}
		return n
	}
	if got := hits(&cold); got != 0 || len(cold.seen) != churn {
		t.Errorf("distinct tokens: %d lookups, %d hits; want %d misses", len(cold.seen), got, churn)
	}
	if got := hits(&hot); got != churn || len(hot.seen) != churn+1 {
		var missed []int
		for i, h := range hot.seen {
			if !h {
				missed = append(missed, i)
			}
		}
		t.Errorf("hot token: %d lookups, %d hits; want %d hits after its first miss (missed at lookups %v)", len(hot.seen), got, churn, missed)
	}
	// The cache was full: the distinct tokens that came first were evicted.
	observe = cold.observe
	before := len(cold.seen)
	if _, err := v.Verify(ctx, distinct[0]); err != nil {
		t.Fatal(err)
	}
	if cold.seen[before] {
		t.Error("the first distinct token is still cached: the cache held more than its capacity")
	}
}
