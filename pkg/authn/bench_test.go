package authn_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// These benchmarks cover what a CheckToken call with a cached token costs
// the server: the header read, the cache hit (hash, lookup, copy) and the
// interceptor around them. Run with -benchmem: allocs/op is the figure to
// keep down.

func BenchmarkBearerToken(b *testing.B) {
	p := oidctest.New(b)
	h := http.Header{"Authorization": {"Bearer " + p.AccessToken()}}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := authn.BearerToken(h); !ok {
			b.Fatal("refused")
		}
	}
}

func BenchmarkVerifyCached(b *testing.B) { benchVerifyCached(b, nil) }

func benchVerifyCached(b *testing.B, mutate func(*authn.VerifierConfig, *authn.RemoteKeySetConfig)) {
	p := oidctest.New(b)
	v, _ := newVerifier(b, p, mutate)
	token := p.AccessToken()
	ctx := context.Background()
	if _, err := v.Verify(ctx, token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyUncached is the signature check every distinct token
// costs once.
func BenchmarkVerifyUncached(b *testing.B) {
	p := oidctest.New(b)
	v, _ := newVerifier(b, p, func(c *authn.VerifierConfig, _ *authn.RemoteKeySetConfig) { c.CacheEntries = -1 })
	token := p.AccessToken()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInterceptorCached(b *testing.B) {
	p := oidctest.New(b)
	v, _ := newVerifier(b, p, nil)
	next := func(ctx context.Context, _ connect.AnyRequest) (connect.AnyResponse, error) {
		if _, ok := authn.ClaimsFromContext(ctx); !ok {
			b.Fatal("no claims")
		}
		return nil, nil
	}
	call := authn.NewInterceptor(v).WrapUnary(next)
	req := connect.NewRequest(&struct{}{})
	req.Header().Set("Authorization", "Bearer "+p.AccessToken())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := call(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCachedRevocations is BenchmarkVerifyCached with a
// RevocationSet of 1000 other revoked tokens consulted on every call.
func BenchmarkVerifyCachedRevocations(b *testing.B) {
	revoked := &authn.RevocationSet{}
	for i := range 1000 {
		revoked.Add(fmt.Sprintf("other-%d", i), time.Now().Add(time.Hour))
	}
	benchVerifyCached(b, func(c *authn.VerifierConfig, _ *authn.RemoteKeySetConfig) { c.Revocations = revoked })
}

// BenchmarkRevocationSetRevoked is the check alone, from every core at
// once, as concurrent requests make it.
func BenchmarkRevocationSetRevoked(b *testing.B) {
	revoked := &authn.RevocationSet{}
	for i := range 1000 {
		revoked.Add(fmt.Sprintf("other-%d", i), time.Now().Add(time.Hour))
	}
	claims := &authn.Claims{ID: "not-revoked"}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if revoked.Revoked(ctx, claims) {
				b.Fatal("revoked")
			}
		}
	})
}

// BenchmarkRevocationSetMillion measures a set of a million live entries:
// the heap it takes (bytes/entry, from the heap in use before and after
// filling it) and one Revoked lookup of an id it does not hold (ns/op).
func BenchmarkRevocationSetMillion(b *testing.B) {
	const n = 1_000_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%022d", i) // as long as a store id
	}
	exp := time.Now().Add(time.Hour)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	revoked := &authn.RevocationSet{}
	for _, id := range ids {
		revoked.Add(id, exp)
	}
	after := heap()
	if revoked.Len() != n || revoked.Overflowed() {
		b.Fatalf("Len = %d, Overflowed = %v", revoked.Len(), revoked.Overflowed())
	}
	ctx := context.Background()
	claims := &authn.Claims{ID: "not-revoked-not-revoked"}
	held := &authn.Claims{ID: ids[n/2]}
	b.ResetTimer()
	for b.Loop() {
		if revoked.Revoked(ctx, claims) || !revoked.Revoked(ctx, held) {
			b.Fatal("wrong answer")
		}
	}
	// After the loop: ResetTimer drops the metrics reported before it.
	b.ReportMetric(float64(after-before)/n, "bytes/entry")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/lookup")
	runtime.KeepAlive(ids)
}
