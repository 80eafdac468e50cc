// Package bench measures nsauth serve under load: it starts the server as a
// child process (so its memory can be measured alone) brokering an
// in-process fake provider on loopback, drives it with concurrent
// keep-alive clients over Connect and gRPC, and reports throughput and
// latency per procedure, protocol and concurrency, plus the provider's own
// token endpoint called directly and the server's peak RSS.
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/oidctest"
)

// Scenario names.
const (
	GetAuthStatus       = "GetAuthStatus"
	CheckTokenValid     = "CheckToken (valid)"
	CheckTokenInvalid   = "CheckToken (invalid)"
	GetAuthorizeURL     = "GetAuthorizeUrl"
	LoginCli            = "LoginCli"
	RefreshCli          = "RefreshCli"
	ProviderCodeDirect  = "provider code exchange (direct)"
	ProviderTokenDirect = "provider refresh (direct)"
)

// Scenarios lists every scenario in report order.
var Scenarios = []string{GetAuthStatus, CheckTokenValid, CheckTokenInvalid, GetAuthorizeURL, LoginCli, RefreshCli, ProviderCodeDirect, ProviderTokenDirect}

// Config configures a run.
type Config struct {
	// Executable is the nsauth binary to start as the server. Required.
	Executable string
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
	// CPUProfile, when set, is a file to write the server's CPU profile to,
	// taken over the whole run (the server is started with --pprof).
	CPUProfile string
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
	// ServerCPUMicros and ClientCPUMicros are the CPU time per call spent
	// by the server process and by this process (the load generator and,
	// for LoginCli and RefreshCli, the fake provider), in microseconds.
	// Both processes share the machine's CPUs, so throughput is bounded by
	// their sum.
	ServerCPUMicros float64 `json:"server_cpu_us_per_call"`
	ClientCPUMicros float64 `json:"client_cpu_us_per_call"`
}

// Report is the outcome of a run.
type Report struct {
	Machine         string   `json:"machine"`
	GoVersion       string   `json:"go_version"`
	Runs            int      `json:"runs"`
	DurationPerCell string   `json:"duration_per_cell"`
	Results         []Result `json:"results"`
	// ServerPeakRSSBytes is the server process's VmHWM after the last run.
	ServerPeakRSSBytes int64 `json:"server_peak_rss_bytes"`
	// ProviderRequestsPerGetAuthorizeURL is how many provider requests the
	// GetAuthorizeUrl cells caused per call (the target is zero).
	ProviderRequestsPerGetAuthorizeURL float64 `json:"provider_requests_per_get_authorize_url"`
}

const benchRedirectURI = "http://127.0.0.1:4242/api/auth/callback"

// Run executes the benchmark.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Executable == "" {
		return nil, errors.New("bench: the nsauth executable is required")
	}
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

	provider, stopProvider := oidctest.Start(oidctest.WithES256())
	defer stopProvider()
	provider.SetRecordRequests(false)
	provider.SetAccessTokenTTL(24 * time.Hour)

	srv, err := startServer(ctx, cfg.Executable, provider, cfg.CPUProfile != "")
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	var profileDone chan error
	if cfg.CPUProfile != "" {
		profileDone = make(chan error, 1)
		go func() { profileDone <- srv.cpuProfile(ctx, cfg.CPUProfile, estimate(cfg)) }()
	}

	report := &Report{
		Machine:         machine(),
		GoVersion:       runtime.Version(),
		Runs:            cfg.Runs,
		DurationPerCell: cfg.Duration.String(),
	}
	runs := make([][]Result, cfg.Runs)
	var authorizeCalls, authorizeProviderRequests int
	for run := range cfg.Runs {
		for _, scenario := range cfg.Scenarios {
			protocols := []string{"connect", "grpc"}
			if scenario == ProviderTokenDirect || scenario == ProviderCodeDirect {
				protocols = []string{"http"}
			}
			for _, proto := range protocols {
				for _, c := range cfg.Concurrency {
					before := provider.TotalRequests()
					serverCPU, clientCPU := processCPU(srv.cmd.Process.Pid), selfCPU()
					r, err := runCell(ctx, srv.url, provider, scenario, proto, c, cfg.Duration)
					if err != nil {
						return nil, err
					}
					if r.Calls > 0 {
						r.ServerCPUMicros = float64((processCPU(srv.cmd.Process.Pid) - serverCPU).Microseconds()) / float64(r.Calls)
						r.ClientCPUMicros = float64((selfCPU() - clientCPU).Microseconds()) / float64(r.Calls)
					}
					if scenario == GetAuthorizeURL {
						authorizeCalls += r.Calls
						authorizeProviderRequests += provider.TotalRequests() - before
					}
					fmt.Fprintf(cfg.Progress, "run %d/%d  %-34s %-7s c=%-3d %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  errors %d\n",
						run+1, cfg.Runs, scenario, proto, c, r.RPS, r.P50Millis, r.P99Millis, r.Errors)
					runs[run] = append(runs[run], r)
				}
			}
		}
	}
	if profileDone != nil {
		if err := <-profileDone; err != nil {
			return nil, err
		}
	}
	report.Results = medians(runs)
	report.ServerPeakRSSBytes = srv.peakRSS()
	if authorizeCalls > 0 {
		report.ProviderRequestsPerGetAuthorizeURL = float64(authorizeProviderRequests) / float64(authorizeCalls)
	}
	return report, nil
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
		m.ServerCPUMicros = median(cells, func(r Result) float64 { return r.ServerCPUMicros })
		m.ClientCPUMicros = median(cells, func(r Result) float64 { return r.ClientCPUMicros })
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
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// server is the nsauth serve child process.
type server struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

// estimate is roughly how long the run's cells take, for the profile.
func estimate(cfg Config) time.Duration {
	cells := 0
	for _, s := range cfg.Scenarios {
		if s == ProviderCodeDirect || s == ProviderTokenDirect {
			continue // these do not touch the server
		}
		cells += 2 * len(cfg.Concurrency)
	}
	return time.Duration(cells*cfg.Runs) * cfg.Duration
}

// cpuProfile asks the server for a CPU profile of the next d and writes it
// to path.
func (s *server) cpuProfile(ctx context.Context, path string, d time.Duration) error {
	secs := max(1, int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", s.url, secs), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: time.Duration(secs+60) * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("bench: CPU profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: CPU profile: HTTP %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func startServer(ctx context.Context, exe string, p *oidctest.Provider, pprof bool) (*server, error) {
	args := []string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "info"}
	if pprof {
		args = append(args, "--pprof")
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(),
		"AUTH_ENABLED=true",
		"AUTH_BASEURL="+p.Issuer,
		"AUTH_AUDIENCE="+p.Audience,
		"AUTH_CLI_CLIENT_ID="+p.ClientID,
		`AUTH_CLIENTID_SECRET={"`+p.ClientID+`":"`+p.ClientSecret+`"}`,
		"AUTH_SIGNATURE_ALGORITHM=ES256",
		// Measuring throughput means calling far beyond any sane per-client
		// limit.
		"NSAUTH_RATE_LIMIT_PER_MINUTE=0",
	)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s serve: %w", exe, err)
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			var line struct {
				Msg string `json:"msg"`
				URL string `json:"url"`
			}
			if !sent && json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "nsauth serving" {
				urlc <- line.URL
				sent = true
			}
		}
		close(s.done)
	}()
	select {
	case s.url = <-urlc:
	case <-s.done:
		_ = cmd.Wait()
		return nil, errors.New("bench: nsauth serve exited before listening")
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, errors.New("bench: nsauth serve did not start listening within 30 s")
	}
	// Wait until the provider has been discovered.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("bench: nsauth serve did not become ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
		}
		_ = s.cmd.Wait()
	}
}

// peakRSS reads the child's high-water resident set size (Linux only;
// 0 elsewhere).
func (s *server) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
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

// call is one request of a scenario; it is safe for concurrent use.
type call func(ctx context.Context) error

func newCall(base string, p *oidctest.Provider, scenario, proto string, httpClient *http.Client) (call, error) {
	var opts []connect.ClientOption
	if proto == "grpc" {
		opts = append(opts, connect.WithGRPC())
	}
	client := mgmtv1alpha1connect.NewAuthServiceClient(httpClient, base, opts...)
	switch scenario {
	case GetAuthStatus:
		return func(ctx context.Context) error {
			_, err := client.GetAuthStatus(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{}))
			return err
		}, nil
	case CheckTokenValid, CheckTokenInvalid:
		token := p.AccessToken()
		if scenario == CheckTokenInvalid {
			// Correct shape, forged signature: the expensive kind of bad
			// token, the one a cache of refusals must make cheap.
			parts := strings.Split(token, ".")
			token = parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
		}
		return func(ctx context.Context) error {
			req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
			req.Header().Set("Authorization", "Bearer "+token)
			_, err := client.CheckToken(ctx, req)
			if scenario == CheckTokenInvalid {
				if connect.CodeOf(err) == connect.CodeUnauthenticated {
					return nil
				}
				return fmt.Errorf("invalid token not refused: %w", err)
			}
			return err
		}, nil
	case GetAuthorizeURL:
		challenge, method := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()), "S256"
		return func(ctx context.Context) error {
			_, err := client.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
				State: "bench-state-0123456789abcdef", RedirectUri: benchRedirectURI, Scope: "openid profile offline_access",
				CodeChallenge: &challenge, CodeChallengeMethod: &method,
			}))
			return err
		}, nil
	case LoginCli:
		verifier := oauth2.GenerateVerifier()
		challenge := oauth2.S256ChallengeFromVerifier(verifier)
		return func(ctx context.Context) error {
			code := p.MintCode(benchRedirectURI, "openid offline_access", challenge)
			_, err := client.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: benchRedirectURI, CodeVerifier: &verifier}))
			return err
		}, nil
	case RefreshCli:
		return func(ctx context.Context) error {
			rt := p.MintRefreshToken("openid offline_access")
			_, err := client.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: rt}))
			return err
		}, nil
	case ProviderCodeDirect, ProviderTokenDirect:
		// The same grants LoginCli and RefreshCli make, sent straight to the
		// provider: the difference is the broker's own cost.
		endpoint := p.Server.URL + oidctest.PathToken
		verifier := oauth2.GenerateVerifier()
		challenge := oauth2.S256ChallengeFromVerifier(verifier)
		return func(ctx context.Context) error {
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {p.MintRefreshToken("openid offline_access")}}
			if scenario == ProviderCodeDirect {
				form = url.Values{
					"grant_type": {"authorization_code"}, "redirect_uri": {benchRedirectURI}, "code_verifier": {verifier},
					"code": {p.MintCode(benchRedirectURI, "openid offline_access", challenge)},
				}
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(url.QueryEscape(p.ClientID), url.QueryEscape(p.ClientSecret))
			resp, err := httpClient.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("token endpoint: HTTP %d", resp.StatusCode)
			}
			return nil
		}, nil
	}
	return nil, fmt.Errorf("unknown scenario %q", scenario)
}

// runCell drives one scenario at one concurrency for d.
func runCell(ctx context.Context, base string, p *oidctest.Provider, scenario, proto string, concurrency int, d time.Duration) (Result, error) {
	httpClient := newHTTPClient(concurrency, proto == "grpc")
	defer httpClient.CloseIdleConnections()
	do, err := newCall(base, p, scenario, proto, httpClient)
	if err != nil {
		return Result{}, err
	}
	// Warm up: connections, caches, discovery.
	for range concurrency {
		_ = do(ctx)
	}
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
				if err := do(ctx); err != nil {
					errs[w]++
				}
				lat = append(lat, time.Since(t0))
			}
			latencies[w] = lat
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
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
	return Result{
		Scenario: scenario, Protocol: proto, Concurrency: concurrency,
		RPS:       float64(len(all)) / elapsed.Seconds(),
		P50Millis: pct(0.50), P99Millis: pct(0.99),
		Calls: len(all), Errors: errors,
	}, ctx.Err()
}
