package authn_test

import (
	"context"
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
