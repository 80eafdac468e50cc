package servercmd

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/bench"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/config"
)

// benchOptions are the flags of `nsauth bench`.
type benchOptions struct {
	duration    time.Duration
	concurrency string
	runs        int
	scenarios   string
	json        bool
	cpuProfile  string
	algorithm   string
	scale       scaleOptions
}

func newBenchCommand(app *cli.App) *cobra.Command {
	opts := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure nsauth serve under load",
		Long: `Start an nsauth server in this process, with its built-in OpenID provider on a
temporary SQLite database and a user created for the run, drive it with
concurrent keep-alive clients over Connect and gRPC on loopback, and print
requests per second, p50 and p99 latency per procedure and concurrency
(medians of --runs runs), the provider's own token endpoint called directly,
CPU time per call and the process's peak RSS. Nothing is read from or written
to your own nsauth data.

Each scenario that needs no provider also runs, back to back with nsauth,
against a ceiling: a bare connect-go server for the same AuthService with
constant answers and the same HTTP and Connect settings. nsauth/ceiling is
the ratio of the two throughputs (the median of each run's pair); scenarios
that need a provider show "—", but for the client-credentials grant, whose
ceiling is the raw signature of the provider's algorithm (--signing-algorithm),
measured the same way; "raw verification" is that algorithm's verification
alone. "CheckToken (external provider, distinct)" runs a second nsauth as a
broker in front of a stand-in external provider (discovery and a key set on
loopback, its tokens signed in this process with --signing-algorithm).

With --scale N, it compares instead an empty store with one seeded with N users,
10×N audit events and N live revocations (SQLite, or PostgreSQL in a schema of its
own with --database-url): the server's start and heap, login p50, CheckToken
throughput, nsauth audit --user, --since and --ref, users list, and the data
size per million rows.`,
		Example: `  # The full matrix: 3 runs × 12 scenarios × their protocols × 3 concurrencies
  nsauth bench

  # A quick look, as JSON
  nsauth bench --runs 1 --duration 1s --concurrency 16 --json

  # Where does GetAuthorizeUrl spend its time in nsauth's server?
  nsauth bench --runs 1 --scenarios GetAuthorizeUrl --concurrency 16 --cpuprofile cpu.out
  go tool pprof -top -tagfocus side=nsauth cpu.out

  # A million users, ten million audit events, a million live revocations
  nsauth bench --scale 1000000`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if scale, err := opts.scale.requested(cmd); scale || err != nil {
				if err != nil {
					return err
				}
				return opts.runScale(cmd, app)
			}
			cfg, err := opts.config(app)
			if err != nil {
				return err
			}
			report, err := bench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if opts.json {
				return report.WriteJSON(app.Out)
			}
			return report.WriteTable(app.Out)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&opts.duration, "duration", 3*time.Second, "how long to drive each scenario at each concurrency")
	f.StringVar(&opts.concurrency, "concurrency", "1,16,64", "comma-separated concurrency levels")
	f.IntVar(&opts.runs, "runs", 3, "runs of the whole matrix; figures are medians")
	f.StringVar(&opts.scenarios, "scenarios", "", "comma-separated scenarios (default all: "+strings.Join(bench.Scenarios, ", ")+")")
	f.BoolVar(&opts.json, "json", false, "print JSON instead of a table")
	f.StringVar(&opts.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof; servers' samples are labelled side=nsauth or side=ceiling)")
	f.StringVar(&opts.algorithm, "signing-algorithm", config.BuiltinSigningAlgorithms[0], "what the provider signs with (NSAUTH_SIGNING_ALGORITHM): "+strings.Join(config.BuiltinSigningAlgorithms, ", "))
	opts.scale.register(f)
	return cmd
}

func (o *benchOptions) config(app *cli.App) (bench.Config, error) {
	cfg := bench.Config{Duration: o.duration, Runs: o.runs, Progress: app.ErrOut, CPUProfile: o.cpuProfile, SigningAlgorithm: o.algorithm}
	if o.duration <= 0 || o.runs <= 0 {
		return cfg, cli.UsageErrorf("--duration and --runs must be positive")
	}
	if o.algorithm != "" && !slices.Contains(config.BuiltinSigningAlgorithms, o.algorithm) {
		return cfg, cli.UsageErrorf("--signing-algorithm: %q is not one of %s", o.algorithm, strings.Join(config.BuiltinSigningAlgorithms, ", "))
	}
	for _, c := range strings.Split(o.concurrency, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 || n > 4096 {
			return cfg, cli.UsageErrorf("--concurrency: %q is not a number from 1 to 4096", c)
		}
		cfg.Concurrency = append(cfg.Concurrency, n)
	}
	if o.scenarios != "" {
		cfg.Scenarios = splitScenarios(o.scenarios)
	}
	return cfg, nil
}

// splitScenarios splits a comma-separated list of scenario names, some of
// which hold commas between parentheses ("CheckToken (valid, cached)").
func splitScenarios(list string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range list {
		switch r {
		case '(':
			depth++
		case ')':
			depth = max(0, depth-1)
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(list[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(list[start:]))
}
