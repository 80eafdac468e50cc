// Package bench measures an nsauth server under load. It starts the server
// in this process, through package app, with its built-in OpenID provider
// on a temporary SQLite database and a user it creates; drives it with
// concurrent keep-alive clients over Connect and gRPC on loopback; and
// reports throughput and latency per procedure, protocol and concurrency,
// the provider's own token endpoint called directly (so the broker's cost
// shows), and the process's CPU time per call and peak RSS.
//
// Calls that consume a credential (an authorization code) get it before
// the clock starts: each such cell first logs in through the provider's
// login page as many times as it may need codes, then is timed.
//
// Next to nsauth runs a ceiling: a bare connect-go server for the same
// AuthService with constant answers and the same HTTP and Connect settings.
// Each cell that it can serve runs against both, back to back (which one
// first alternates), and the report gives nsauth's throughput as a
// fraction of the ceiling's, so that machine noise hits both alike.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/pkg/authn"
)

// Scenario names.
const (
	GetAuthStatus = "GetAuthStatus"
	// CheckTokenCached sends one valid token over and over: after the first
	// call, every call is a hit in the verifier's cache.
	CheckTokenCached = "CheckToken (valid, cached)"
	// CheckTokenDistinct takes tokens in turn from a pool of distinct valid
	// ones larger than the verifier's cache, so that every call verifies a
	// signature.
	CheckTokenDistinct  = "CheckToken (valid, distinct)"
	CheckTokenInvalid   = "CheckToken (invalid)"
	GetAuthorizeURL     = "GetAuthorizeUrl"
	LoginCli            = "LoginCli"
	RefreshCli          = "RefreshCli"
	ProviderCodeDirect  = "provider code exchange (direct)"
	ProviderTokenDirect = "provider refresh (direct)"
)

// Scenarios lists every scenario in report order.
var Scenarios = []string{GetAuthStatus, CheckTokenCached, CheckTokenDistinct, CheckTokenInvalid, GetAuthorizeURL, LoginCli, RefreshCli, ProviderCodeDirect, ProviderTokenDirect,
	ProviderClientCredentials, RawVerify, CheckTokenExternal}

// Config configures a run.
type Config struct {
	// Duration is how long each cell (scenario × protocol × concurrency)
	// is driven. Default 3 s.
	Duration time.Duration
	// Concurrency levels. Default 1, 16, 64.
	Concurrency []int
	// Runs is how many times the whole matrix runs; the report gives the
	// median of each figure. Default 3.
	Runs int
	// Scenarios to run. Default all.
	Scenarios []string
	// Progress receives a line per cell. Optional.
	Progress io.Writer
	// CPUProfile, when set, is a file to write a CPU profile of this
	// process (server, ceiling and load generator) to, taken over the whole
	// run. Samples carry the label side=nsauth or side=ceiling when taken
	// in a server (none in the load generator).
	CPUProfile string
	// DistinctTokens is the size of the pool of distinct tokens the
	// CheckToken (valid, distinct) scenario takes in turn. Defaults to
	// authn.DefaultCacheEntries + 1024: more than the verifier's cache
	// holds, so no call hits it. Fewer measure cache hits again; tests
	// that only need the scenario to run use a few.
	DistinctTokens int
	// SigningAlgorithm is the provider's NSAUTH_SIGNING_ALGORITHM, and
	// the algorithm of the raw signatures the signing scenarios compare
	// with. Default RS256.
	SigningAlgorithm string
}

// Result is one cell of the report.
type Result struct {
	Scenario    string  `json:"scenario"`
	Protocol    string  `json:"protocol"`
	Concurrency int     `json:"concurrency"`
	RPS         float64 `json:"rps"`
	P50Millis   float64 `json:"p50_ms"`
	P99Millis   float64 `json:"p99_ms"`
	Calls       int     `json:"calls"`
	Errors      int     `json:"errors"`
	// CPUMicros is the CPU time per call spent by this process (server,
	// provider and load generator share it), in microseconds.
	CPUMicros float64 `json:"cpu_us_per_call"`
	// CeilingRPS and CeilingCPUMicros are the ceiling's figures for the
	// same cell; absent for scenarios it does not serve.
	CeilingRPS       *float64 `json:"ceiling_rps,omitempty"`
	CeilingCPUMicros *float64 `json:"ceiling_cpu_us_per_call,omitempty"`
	// CeilingRatio is nsauth's throughput over the ceiling's: in each run,
	// of the two cells run back to back; over runs, the median of those
	// ratios (so not always CeilingRPS's quotient of medians). Absent
	// where there is no ceiling.
	CeilingRatio *float64 `json:"ceiling_ratio,omitempty"`
}

// Report is the outcome of a run.
type Report struct {
	Machine   string `json:"machine"`
	GoVersion string `json:"go_version"`
	// SigningAlgorithm is what the provider signed with.
	SigningAlgorithm string   `json:"signing_algorithm"`
	Runs             int      `json:"runs"`
	DurationPerCell  string   `json:"duration_per_cell"`
	Results          []Result `json:"results"`
	// PeakRSSBytes is this process's VmHWM after the last run: the server
	// with its provider, the ceiling, and the load generator.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// ProviderRequestsPerGetAuthorizeURL is how many provider requests the
	// GetAuthorizeUrl cells caused per call (the target is zero).
	ProviderRequestsPerGetAuthorizeURL float64 `json:"provider_requests_per_get_authorize_url"`
}

const benchRedirectURI = "http://127.0.0.1:4242/api/auth/callback"

// Run executes the benchmark.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = 3 * time.Second
	}
	if len(cfg.Concurrency) == 0 {
		cfg.Concurrency = []int{1, 16, 64}
	}
	if cfg.Runs <= 0 {
		cfg.Runs = 3
	}
	if len(cfg.Scenarios) == 0 {
		cfg.Scenarios = Scenarios
	}
	for _, s := range cfg.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return nil, fmt.Errorf("bench: unknown scenario %q", s)
		}
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.DistinctTokens <= 0 {
		cfg.DistinctTokens = authn.DefaultCacheEntries + distinctMargin
	}
	if cfg.SigningAlgorithm == "" {
		cfg.SigningAlgorithm = config.BuiltinSigningAlgorithms[0]
	}
	if err := checkAlgorithm(cfg.SigningAlgorithm); err != nil {
		return nil, err
	}

	tg, err := startTarget(ctx, cfg.SigningAlgorithm)
	if err != nil {
		return nil, err
	}
	defer tg.stop()
	defer func() {
		if tg.broker != nil {
			tg.broker.stop()
		}
	}()
	tg.distinctTokens, tg.progress = cfg.DistinctTokens, cfg.Progress
	tok, err := tg.login(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: logging in: %w", err)
	}
	tg.token = tok.GetAccessToken()
	if tg.ceiling, err = startCeiling(ctx, tg); err != nil {
		return nil, err
	}
	defer tg.ceiling.stop()
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return nil, fmt.Errorf("bench: CPU profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("bench: CPU profile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	report := &Report{
		Machine:          machine(),
		GoVersion:        runtime.Version(),
		SigningAlgorithm: cfg.SigningAlgorithm,
		Runs:             cfg.Runs,
		DurationPerCell:  cfg.Duration.String(),
	}
	runs := make([][]Result, cfg.Runs)
	var authorizeCalls int
	var authorizeProviderRequests int64
	for run := range cfg.Runs {
		cell := 0
		for _, scenario := range cfg.Scenarios {
			protocols := []string{"connect", "grpc"}
			switch scenario {
			case ProviderTokenDirect, ProviderCodeDirect, ProviderClientCredentials:
				protocols = []string{"http"}
			case RawVerify:
				protocols = []string{"none"}
			}
			for _, proto := range protocols {
				for _, c := range cfg.Concurrency {
					sides := []int{sideNsauth}
					if hasCeiling(scenario) {
						// Which goes first alternates from cell to cell and,
						// for one cell, from run to run, so that neither
						// always follows the other or the previous cell.
						sides = []int{sideNsauth, sideCeiling}
						if (run+cell)%2 == 1 {
							sides = []int{sideCeiling, sideNsauth}
						}
					}
					cell++
					var r, top cellResult
					for _, side := range sides {
						res, err := runCell(ctx, tg, side, scenario, proto, c, cfg.Duration)
						if err != nil {
							return nil, err
						}
						if side == sideCeiling {
							top = res
						} else {
							r = res
						}
					}
					if len(sides) == 2 {
						r.CeilingRPS, r.CeilingCPUMicros = &top.RPS, &top.CPUMicros
						if top.RPS > 0 {
							ratio := r.RPS / top.RPS
							r.CeilingRatio = &ratio
						}
					}
					if scenario == GetAuthorizeURL {
						authorizeCalls += r.Calls
						authorizeProviderRequests += r.providerRequests
					}
					fmt.Fprintf(cfg.Progress, "run %d/%d  %-34s %-7s c=%-3d %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  errors %d%s\n",
						run+1, cfg.Runs, scenario, proto, c, r.RPS, r.P50Millis, r.P99Millis, r.Errors, ceilingNote(r.Result))
					runs[run] = append(runs[run], r.Result)
				}
			}
		}
	}
	report.Results = medians(runs)
	report.PeakRSSBytes = peakRSS()
	if authorizeCalls > 0 {
		report.ProviderRequestsPerGetAuthorizeURL = float64(authorizeProviderRequests) / float64(authorizeCalls)
	}
	return report, nil
}

// cellResult is a Result with what only the run needs.
type cellResult struct {
	Result
	providerRequests int64
}

func ceilingNote(r Result) string {
	if r.CeilingRPS == nil || r.CeilingRatio == nil {
		return ""
	}
	return fmt.Sprintf("  ceiling %9.0f req/s  ratio %.2f", *r.CeilingRPS, *r.CeilingRatio)
}

// runCell drives one scenario at one concurrency for d: it prepares one
// caller per worker (untimed: logins, codes), warms up, then lets every
// worker call in a loop until d has passed or its prepared credentials
// run out.
func runCell(ctx context.Context, tg *target, side int, scenario, proto string, concurrency int, d time.Duration) (cellResult, error) {
	httpClient := newHTTPClient(concurrency, proto == "grpc")
	defer httpClient.CloseIdleConnections()
	callers, err := newCallers(ctx, tg, side, scenario, proto, httpClient, concurrency, d)
	if err != nil {
		return cellResult{}, fmt.Errorf("bench: preparing %s: %w", scenario, err)
	}
	// Warm up: connections, caches.
	for _, do := range callers {
		if err := do(ctx); err != nil && !errors.Is(err, errExhausted) {
			return cellResult{}, fmt.Errorf("bench: %s warm-up: %w", scenario, err)
		}
	}
	// Collect the garbage of the preparation and of the previous cell now,
	// so that this cell does not pay for it.
	runtime.GC()
	providerBefore, cpuBefore := tg.srv.ProviderRequests(), selfCPU()
	latencies := make([][]time.Duration, concurrency)
	errs := make([]int, concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			for {
				t0 := time.Now()
				if t0.After(deadline) || ctx.Err() != nil {
					break
				}
				err := callers[w](ctx)
				if errors.Is(err, errExhausted) {
					break
				}
				if err != nil {
					errs[w]++
				}
				lat = append(lat, time.Since(t0))
			}
			latencies[w] = lat
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := selfCPU() - cpuBefore
	var all []time.Duration
	errors := 0
	for w := range concurrency {
		all = append(all, latencies[w]...)
		errors += errs[w]
	}
	slices.Sort(all)
	pct := func(q float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := min(len(all)-1, int(q*float64(len(all))))
		return float64(all[i]) / float64(time.Millisecond)
	}
	r := cellResult{
		Result: Result{
			Scenario: scenario, Protocol: proto, Concurrency: concurrency,
			RPS:       float64(len(all)) / elapsed.Seconds(),
			P50Millis: pct(0.50), P99Millis: pct(0.99),
			Calls: len(all), Errors: errors,
		},
		providerRequests: tg.srv.ProviderRequests() - providerBefore,
	}
	if len(all) > 0 {
		r.CPUMicros = float64(cpu.Microseconds()) / float64(len(all))
	}
	return r, ctx.Err()
}

// medians combines runs cell by cell.
func medians(runs [][]Result) []Result {
	out := make([]Result, len(runs[0]))
	for i := range out {
		cells := make([]Result, len(runs))
		for r := range runs {
			cells[r] = runs[r][i]
		}
		m := cells[0]
		m.RPS = median(cells, func(r Result) float64 { return r.RPS })
		m.P50Millis = median(cells, func(r Result) float64 { return r.P50Millis })
		m.P99Millis = median(cells, func(r Result) float64 { return r.P99Millis })
		m.CPUMicros = median(cells, func(r Result) float64 { return r.CPUMicros })
		m.CeilingRPS = medianOf(cells, func(r Result) *float64 { return r.CeilingRPS })
		m.CeilingCPUMicros = medianOf(cells, func(r Result) *float64 { return r.CeilingCPUMicros })
		m.CeilingRatio = medianOf(cells, func(r Result) *float64 { return r.CeilingRatio })
		m.Calls, m.Errors = 0, 0
		for _, c := range cells {
			m.Calls += c.Calls
			m.Errors += c.Errors
		}
		out[i] = m
	}
	return out
}

func median(cells []Result, f func(Result) float64) float64 {
	v := make([]float64, len(cells))
	for i, c := range cells {
		v[i] = f(c)
	}
	return medianFloat(v)
}

// medianOf is the median of an optional figure over the cells that have
// it; nil when none has.
func medianOf(cells []Result, f func(Result) *float64) *float64 {
	var v []float64
	for _, c := range cells {
		if p := f(c); p != nil {
			v = append(v, *p)
		}
	}
	if len(v) == 0 {
		return nil
	}
	m := medianFloat(v)
	return &m
}

func medianFloat(v []float64) float64 {
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), model)
}

// newHTTPClient returns a keep-alive client with room for c connections;
// h2c for gRPC.
func newHTTPClient(c int, h2c bool) *http.Client {
	tr := &http.Transport{MaxIdleConns: c + 8, MaxIdleConnsPerHost: c + 8, IdleConnTimeout: time.Minute}
	if h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
