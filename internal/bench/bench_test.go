package bench_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/bench"
)

// TestRunEveryScenario runs the whole matrix briefly: every cell makes
// calls and none fails, GetAuthorizeUrl makes no provider request, the
// scenarios the ceiling serves have its figures and the others have none,
// and the report prints.
func TestRunEveryScenario(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("drives a server for several seconds")
	}
	var progress bytes.Buffer
	r, err := bench.Run(context.Background(), bench.Config{
		Duration: 100 * time.Millisecond, Concurrency: []int{1, 4}, Runs: 1, Progress: &progress,
		DistinctTokens: 16, // enough to run the scenario; the real pool outgrows the cache
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	// Four scenarios run over one protocol (plain HTTP, or none), the
	// others over Connect and gRPC; each at two concurrencies.
	if want := (len(bench.Scenarios)-4)*2*2 + 4*2; len(r.Results) != want {
		t.Fatalf("%d results, want %d", len(r.Results), want)
	}
	for _, res := range r.Results {
		if res.Calls == 0 || res.Errors != 0 {
			t.Errorf("%s %s c=%d: %d calls, %d errors", res.Scenario, res.Protocol, res.Concurrency, res.Calls, res.Errors)
		}
		served := res.Protocol != "http" && res.Protocol != "none" && res.Scenario != bench.LoginCli && res.Scenario != bench.RefreshCli ||
			res.Scenario == bench.ProviderClientCredentials
		if got := res.CeilingRPS != nil && res.CeilingRatio != nil && res.CeilingCPUMicros != nil; got != served {
			t.Errorf("%s %s c=%d: ceiling figures present = %v, want %v", res.Scenario, res.Protocol, res.Concurrency, got, served)
		}
		if served && (*res.CeilingRPS <= 0 || *res.CeilingRatio <= 0) {
			t.Errorf("%s %s c=%d: ceiling %.0f req/s, ratio %.2f", res.Scenario, res.Protocol, res.Concurrency, *res.CeilingRPS, *res.CeilingRatio)
		}
	}
	if r.ProviderRequestsPerGetAuthorizeURL != 0 {
		t.Errorf("GetAuthorizeUrl made %.3f provider requests per call, want 0", r.ProviderRequestsPerGetAuthorizeURL)
	}
	var table strings.Builder
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| LoginCli", "provider refresh (direct)", "Peak RSS", "nsauth/ceiling", "—"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, table.String())
		}
	}
}

// TestRunEachSigningAlgorithm runs the calls that check or sign a token
// with the provider (built-in, and external) signing with each
// algorithm: the broker accepts their tokens, and the raw signature the
// token endpoint is compared with is of the same algorithm.
func TestRunEachSigningAlgorithm(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("drives a server for several seconds")
	}
	for _, alg := range []string{"ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			var progress bytes.Buffer
			r, err := bench.Run(context.Background(), bench.Config{
				Duration: 100 * time.Millisecond, Concurrency: []int{2}, Runs: 1, Progress: &progress, DistinctTokens: 8,
				SigningAlgorithm: alg,
				Scenarios: []string{bench.CheckTokenCached, bench.CheckTokenDistinct, bench.ProviderClientCredentials, bench.RawVerify,
					bench.CheckTokenExternal},
			})
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, progress.String())
			}
			if r.SigningAlgorithm != alg || len(r.Results) != 3*2+2 {
				t.Fatalf("signed with %s, %d results", r.SigningAlgorithm, len(r.Results))
			}
			for _, res := range r.Results {
				if res.Calls == 0 || res.Errors != 0 {
					t.Errorf("%s %s: %d calls, %d errors", res.Scenario, res.Protocol, res.Calls, res.Errors)
				}
			}
			var table strings.Builder
			if err := r.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			if want := "/ raw " + alg + " signatures"; !strings.Contains(table.String(), want) {
				t.Errorf("the table lacks %q:\n%s", want, table.String())
			}
		})
	}
}

func TestRunRefusesUnknownScenarios(t *testing.T) {
	t.Parallel()
	if _, err := bench.Run(context.Background(), bench.Config{Scenarios: []string{"Nope"}}); err == nil {
		t.Fatal("Run accepted an unknown scenario")
	}
	if _, err := bench.Run(context.Background(), bench.Config{SigningAlgorithm: "HS256"}); err == nil {
		t.Fatal("Run accepted an unknown signing algorithm")
	}
}
