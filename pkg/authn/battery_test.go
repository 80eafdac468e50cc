package authn_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// TestTokenVerificationBattery runs every attack in oidctest.Attacks
// against the verifier: each must be refused as an invalid token, without a
// request to the attacker and without a JWKS refetch.
func TestTokenVerificationBattery(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	p.AddKey("ES256")
	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		attackerHits.Add(1)
		http.NotFound(w, nil)
	}))
	t.Cleanup(attacker.Close)
	v, _ := newVerifier(t, p, nil)
	if _, err := v.Verify(context.Background(), p.AccessToken()); err != nil {
		t.Fatalf("a valid token is refused: %v", err)
	}
	jwksBefore := p.Count(oidctest.PathJWKS)

	attacks := p.Attacks(attacker.URL)
	for _, a := range attacks {
		t.Run(a.Name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), a.Token)
			if !errors.Is(err, authn.ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
			if errors.Is(err, authn.ErrUnavailable) {
				t.Errorf("err = %v also claims unavailability", err)
			}
			if strings.Contains(a.Name, "badly signed") && errors.Is(err, authn.ErrTokenExpired) {
				t.Errorf("a forged token is reported as merely expired: %v", err)
			}
			// A second look must give the same answer (from the cache or
			// not).
			if _, err2 := v.Verify(context.Background(), a.Token); !errors.Is(err2, authn.ErrInvalidToken) {
				t.Errorf("second verification = %v", err2)
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
// refused before any decoding, allocating next to nothing.
func TestHugeTokenIsRefusedWithBoundedMemory(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	v, _ := newVerifier(t, p, nil)
	huge := strings.Repeat("A", 1<<20) + "." + strings.Repeat("B", 10) + "." + strings.Repeat("C", 10)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 100
	for range runs {
		if _, err := v.Verify(context.Background(), huge); !errors.Is(err, authn.ErrInvalidToken) {
			t.Fatalf("err = %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	// Other parallel tests allocate too, so this bound is loose; decoding
	// the token even once would allocate over 750 KB.
	if perCall := (after.TotalAlloc - before.TotalAlloc) / runs; perCall > 64<<10 {
		t.Errorf("%d bytes allocated per refused 1 MB token", perCall)
	}
	if p.Count(oidctest.PathJWKS) != 0 {
		t.Errorf("a huge token caused a JWKS fetch")
	}
}
