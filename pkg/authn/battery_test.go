package authn_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// TestTokenVerificationBattery runs every attack in oidctest.Attacks
// against the verifier, once requiring access tokens typed at+jwt (as the
// built-in provider's verifier does) and once accepting untyped ones (as a
// brokered provider's does): each must be refused as an invalid token by
// the check the attack is about, without a request to the attacker and
// without a JWKS refetch.
func TestTokenVerificationBattery(t *testing.T) {
	t.Parallel()
	for _, typeRequired := range []bool{true, false} {
		name := "at+jwt required"
		if !typeRequired {
			name = "untyped accepted"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runBattery(t, typeRequired)
		})
	}
}

func runBattery(t *testing.T, typeRequired bool) {
	p := oidctest.New(t)
	p.Keys.Add("ES256")
	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		attackerHits.Add(1)
		http.NotFound(w, nil)
	}))
	t.Cleanup(attacker.Close)
	v, _ := newVerifier(t, p, func(c *authn.VerifierConfig, _ *authn.RemoteKeySetConfig) {
		c.RequireAccessTokenType = typeRequired
	})
	if _, err := v.Verify(context.Background(), p.AccessToken()); err != nil {
		t.Fatalf("a valid token is refused: %v", err)
	}
	jwksBefore := p.Count(oidctest.PathJWKS)

	attacks := p.Attacks(attacker.URL)
	for _, a := range attacks {
		t.Run(a.Name, func(t *testing.T) {
			want := a.CheckFor(typeRequired)
			if !slices.Contains(authn.Checks(), want) {
				t.Fatalf("the attack names check %q, which the verifier does not have (%q)", want, authn.Checks())
			}
			_, err := v.Verify(context.Background(), a.Token)
			if !errors.Is(err, authn.ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
			if got := authn.RefusedBy(err); got != want {
				t.Errorf("refused by the %q check (%v), want the %q check", got, err, want)
			}
			if errors.Is(err, authn.ErrUnavailable) {
				t.Errorf("err = %v also claims unavailability", err)
			}
			if strings.Contains(a.Name, "badly signed") && errors.Is(err, authn.ErrTokenExpired) {
				t.Errorf("a forged token is reported as merely expired: %v", err)
			}
			// A second look must give the same answer, for the same
			// reason (from the cache or not).
			if _, err2 := v.Verify(context.Background(), a.Token); !errors.Is(err2, authn.ErrInvalidToken) || authn.RefusedBy(err2) != want {
				t.Errorf("second verification = %v (check %q)", err2, authn.RefusedBy(err2))
			}
		})
	}
	if n := attackerHits.Load(); n != 0 {
		t.Errorf("the attacker's server received %d requests", n)
	}
	if n := p.Count(oidctest.PathJWKS) - jwksBefore; n != 0 {
		t.Errorf("the battery caused %d JWKS refetches within one interval, want 0", n)
	}
	t.Logf("%d attacks refused", len(attacks))
}

// TestHugeTokenIsRefusedWithBoundedMemory feeds a 1 MB token: it must be
// refused before any decoding, allocating next to nothing. It is not
// parallel on purpose: allocation counters are process-wide, so other tests
// running meanwhile would be counted too.
func TestHugeTokenIsRefusedWithBoundedMemory(t *testing.T) {
	p := oidctest.New(t)
	v, _ := newVerifier(t, p, nil)
	huge := strings.Repeat("A", 1<<20) + "." + strings.Repeat("B", 10) + "." + strings.Repeat("C", 10)
	var err error
	const runs = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	allocs := testing.AllocsPerRun(runs, func() { _, err = v.Verify(context.Background(), huge) })
	runtime.ReadMemStats(&after)
	if !errors.Is(err, authn.ErrInvalidToken) || authn.RefusedBy(err) != "size" {
		t.Fatalf("err = %v (check %q), want a refusal by the size check", err, authn.RefusedBy(err))
	}
	// Refusing builds one error; decoding the token even once would
	// allocate over 750 KB.
	t.Logf("%.0f allocations, %d bytes per refusal", allocs, (after.TotalAlloc-before.TotalAlloc)/(runs+1))
	if allocs > 8 {
		t.Errorf("%.0f allocations per refused 1 MB token, want at most 8", allocs)
	}
	// AllocsPerRun calls the function once more, to warm up.
	if perCall := (after.TotalAlloc - before.TotalAlloc) / (runs + 1); perCall > 4<<10 {
		t.Errorf("%d bytes allocated per refused 1 MB token, want at most 4 KiB", perCall)
	}
	if p.Count(oidctest.PathJWKS) != 0 {
		t.Errorf("a huge token caused a JWKS fetch")
	}
}
