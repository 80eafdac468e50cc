package servercmd

import (
	"slices"
	"testing"

	"github.com/nsauth/nsauth/internal/bench"
)

func TestBenchScenariosFlagKeepsCommasInParentheses(t *testing.T) {
	t.Parallel()
	opts := &benchOptions{duration: 1, runs: 1, concurrency: "16",
		scenarios: "GetAuthStatus, CheckToken (valid, cached),CheckToken (valid, distinct) ,GetAuthorizeUrl"}
	cfg, err := opts.config(testApp())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{bench.GetAuthStatus, bench.CheckTokenCached, bench.CheckTokenDistinct, bench.GetAuthorizeURL}
	if !slices.Equal(cfg.Scenarios, want) {
		t.Errorf("scenarios = %q, want %q", cfg.Scenarios, want)
	}
}
