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
// calls and none fails, GetAuthorizeUrl makes no provider request, and the
// report prints.
func TestRunEveryScenario(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("drives a server for several seconds")
	}
	var progress bytes.Buffer
	r, err := bench.Run(context.Background(), bench.Config{
		Duration: 100 * time.Millisecond, Concurrency: []int{1, 4}, Runs: 1, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	if want := (len(bench.Scenarios)-2)*2*2 + 2*2; len(r.Results) != want {
		t.Fatalf("%d results, want %d", len(r.Results), want)
	}
	for _, res := range r.Results {
		if res.Calls == 0 || res.Errors != 0 {
			t.Errorf("%s %s c=%d: %d calls, %d errors", res.Scenario, res.Protocol, res.Concurrency, res.Calls, res.Errors)
		}
	}
	if r.ProviderRequestsPerGetAuthorizeURL != 0 {
		t.Errorf("GetAuthorizeUrl made %.3f provider requests per call, want 0", r.ProviderRequestsPerGetAuthorizeURL)
	}
	var table strings.Builder
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| LoginCli", "provider refresh (direct)", "Peak RSS"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestRunRefusesUnknownScenarios(t *testing.T) {
	t.Parallel()
	if _, err := bench.Run(context.Background(), bench.Config{Scenarios: []string{"Nope"}}); err == nil {
		t.Fatal("Run accepted an unknown scenario")
	}
}
