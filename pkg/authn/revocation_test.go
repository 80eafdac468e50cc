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
	dead := now.Add(-authn.DefaultClockSkew - time.Second)
	for i := range 1000 {
		s.Add(fmt.Sprintf("dead-%d", i), dead)
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
		s.Add(fmt.Sprintf("dead2-%d", i), dead)
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
		// overflow: the set is full, so the revoked token is the
		// fallback's to judge
		overflow bool
	}{
		{name: "cached", cache: 0},
		{name: "uncached", cache: -1},
		{name: "cached, beyond the set's bound", cache: 0, overflow: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := oidctest.New(t)
			revoked := &authn.RevocationSet{}
			fb := &fallback{revoked: map[string]bool{}}
			if tt.overflow {
				revoked.MaxEntries, revoked.Fallback = 1, fb
				revoked.Add("another-token", time.Now().Add(time.Hour))
			}
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
			fb.mu.Lock()
			fb.revoked[claims.ID] = true
			fb.mu.Unlock()
			if revoked.Overflowed() != tt.overflow {
				t.Fatalf("Overflowed = %v", revoked.Overflowed())
			}
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

// fallback is a RevocationChecker that knows some ids and counts its calls.
type fallback struct {
	mu      sync.Mutex
	revoked map[string]bool
	calls   int
}

func (f *fallback) Revoked(_ context.Context, c *authn.Claims) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.revoked[c.ID]
}

// TestRevocationSetOverflow fills a set bounded at 100 entries: an id it
// cannot hold makes it overflowed, and from then on a token it does not
// hold is the fallback's to judge, or refused without one. A set whose
// entries have expired sweeps them instead of overflowing.
func TestRevocationSetOverflow(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	live, dead := now.Add(time.Hour), now.Add(-time.Hour)
	tests := []struct {
		name           string
		first          time.Time // the expiry of the 100 ids that fill the set
		fallback       *fallback
		wantOverflowed bool
		// what Revoked answers for the 101st id (revoked, known to the
		// fallback) and for an id never revoked
		wantBeyond, wantOther bool
	}{
		{name: "full, with a fallback", first: live, fallback: &fallback{revoked: map[string]bool{"beyond": true}},
			wantOverflowed: true, wantBeyond: true, wantOther: false},
		{name: "full, without a fallback", first: live,
			wantOverflowed: true, wantBeyond: true, wantOther: true},
		{name: "full of expired entries", first: dead, fallback: &fallback{},
			wantOverflowed: false, wantBeyond: true, wantOther: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &authn.RevocationSet{Now: func() time.Time { return now }, MaxEntries: 100}
			if tt.fallback != nil {
				s.Fallback = tt.fallback
			}
			ctx := context.Background()
			for i := range 100 {
				s.Add(fmt.Sprintf("id-%d", i), tt.first)
			}
			if s.Overflowed() {
				t.Fatal("overflowed at its bound")
			}
			if s.Revoked(ctx, &authn.Claims{ID: "other"}) || (tt.first == live && !s.Revoked(ctx, &authn.Claims{ID: "id-7"})) {
				t.Fatal("wrong answers before the overflow")
			}
			if tt.fallback != nil && tt.fallback.calls != 0 {
				t.Fatalf("the fallback was asked %d times before the overflow", tt.fallback.calls)
			}
			s.Add("beyond", live)
			if got := s.Overflowed(); got != tt.wantOverflowed {
				t.Fatalf("Overflowed = %v, want %v", got, tt.wantOverflowed)
			}
			if n := s.Len(); n > 100 {
				t.Fatalf("Len = %d, beyond the bound", n)
			}
			if got := s.Revoked(ctx, &authn.Claims{ID: "beyond"}); got != tt.wantBeyond {
				t.Errorf("Revoked(beyond) = %v, want %v", got, tt.wantBeyond)
			}
			if got := s.Revoked(ctx, &authn.Claims{ID: "other"}); got != tt.wantOther {
				t.Errorf("Revoked(other) = %v, want %v", got, tt.wantOther)
			}
			if tt.first == live && !s.Revoked(ctx, &authn.Claims{ID: "id-7"}) {
				t.Error("a held id is no longer refused")
			}
		})
	}
}

// TestRevocationSetReload checks that an overflowed set is whole again
// only after a reload during which it left nothing out.
func TestRevocationSetReload(t *testing.T) {
	t.Parallel()
	start := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name string
		// during runs inside the reload, with the set given
		during         func(s *authn.RevocationSet)
		loadErr        error
		wantOverflowed bool
	}{
		{name: "nothing left out", wantOverflowed: false},
		{name: "an id left out during the reload", during: func(s *authn.RevocationSet) {
			for i := range 200 {
				s.Add(fmt.Sprintf("more-%d", i), start.Add(24*time.Hour))
			}
		}, wantOverflowed: true},
		{name: "the load fails", loadErr: errors.New("database down"), wantOverflowed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			now := start
			s := &authn.RevocationSet{MaxEntries: 100, ClockSkew: -1, Now: func() time.Time {
				mu.Lock()
				defer mu.Unlock()
				return now
			}}
			// 100 short-lived entries, and 20 longer ones it cannot hold.
			for i := range 100 {
				s.Add(fmt.Sprintf("short-%d", i), start.Add(time.Minute))
			}
			for i := range 20 {
				s.Add(fmt.Sprintf("long-%d", i), start.Add(time.Hour))
			}
			if !s.Overflowed() {
				t.Fatal("not overflowed")
			}
			mu.Lock()
			now = start.Add(2 * time.Minute)
			mu.Unlock()
			err := s.Reload(func(add func(string, time.Time)) error {
				if tt.during != nil {
					tt.during(s)
				}
				if tt.loadErr != nil {
					return tt.loadErr
				}
				for i := range 20 {
					add(fmt.Sprintf("long-%d", i), start.Add(time.Hour))
				}
				return nil
			})
			if !errors.Is(err, tt.loadErr) {
				t.Fatalf("Reload: %v, want %v", err, tt.loadErr)
			}
			if got := s.Overflowed(); got != tt.wantOverflowed {
				t.Fatalf("Overflowed = %v, want %v", got, tt.wantOverflowed)
			}
			if !tt.wantOverflowed && !s.Revoked(context.Background(), &authn.Claims{ID: "long-3"}) {
				t.Fatal("a reloaded id is not refused")
			}
		})
	}
}

// TestRevocationSetKeepsEntriesForClockSkew checks that an entry outlives
// its expiry by ClockSkew (a verifier accepts the token that long after
// `exp`), and that an expiry is rounded up to the second, never down.
func TestRevocationSetKeepsEntriesForClockSkew(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name    string
		skew    time.Duration
		expires time.Time
		now     time.Time
		want    bool // still refused after the set is swept
	}{
		{name: "default skew, expired 59 s ago", expires: t0, now: t0.Add(59 * time.Second), want: true},
		{name: "default skew, expired 62 s ago", expires: t0, now: t0.Add(62 * time.Second), want: false},
		{name: "no skew, half a second left rounds up", skew: -1, expires: t0.Add(1500 * time.Millisecond), now: t0.Add(1900 * time.Millisecond), want: true},
		{name: "no skew, expired", skew: -1, expires: t0.Add(1500 * time.Millisecond), now: t0.Add(3 * time.Second), want: false},
		{name: "ten minutes of skew", skew: 10 * time.Minute, expires: t0, now: t0.Add(9 * time.Minute), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := tt.expires.Add(-time.Hour)
			s := &authn.RevocationSet{MaxEntries: 1, ClockSkew: tt.skew, Fallback: &fallback{}, Now: func() time.Time { return now }}
			s.Add("the-id", tt.expires)
			now = tt.now
			// A second id in a full set sweeps it if the first has expired.
			s.Add("another", tt.now.Add(time.Hour))
			if got := s.Revoked(context.Background(), &authn.Claims{ID: "the-id"}); got != tt.want {
				t.Fatalf("Revoked = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRevocationSetChurn adds ids with varied expiries while time passes,
// so that sweeps delete entries from the middle of every probe run: each
// id whose expiry has not passed must still be refused, and the set must
// stay near its live size.
func TestRevocationSetChurn(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	s := &authn.RevocationSet{ClockSkew: -1, MaxEntries: 5000, Now: func() time.Time { return now }}
	expiries := map[string]time.Time{}
	ctx := context.Background()
	for round := range 60 {
		for i := range 400 {
			id := fmt.Sprintf("r%d-%d", round, i)
			exp := now.Add(time.Duration(1+(i*7+round)%10) * time.Second)
			s.Add(id, exp)
			expiries[id] = exp
		}
		now = now.Add(time.Second)
		for id, exp := range expiries {
			if !exp.After(now) {
				delete(expiries, id)
				continue
			}
			if !s.Revoked(ctx, &authn.Claims{ID: id}) {
				t.Fatalf("round %d: %s, live until %v, is not refused", round, id, exp)
			}
		}
		if s.Overflowed() {
			t.Fatalf("round %d: overflowed with %d live ids", round, len(expiries))
		}
	}
	if n := s.Len(); n > 3*len(expiries) {
		t.Fatalf("Len = %d for %d live ids", n, len(expiries))
	}
}
