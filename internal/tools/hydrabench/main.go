// Command hydrabench compares nsauth's built-in provider with Ory Hydra v2
// on SQLite with JWT access tokens (issue 27): the client-credentials grant
// at each token endpoint and RFC 7662 introspection of an access token,
// over keep-alive HTTP on loopback at one concurrency, each target in turn
// in alternating rounds, and prints a table with nsauth's throughput over
// Hydra's. scripts/bench-hydra.sh builds both servers and runs it:
//
//	bash scripts/bench-hydra.sh -duration 10s -rounds 5
//
// It starts every server itself, each in a temporary directory of its own,
// with the settings written in startNsauth and startHydra, and stops them
// at the end. No secret (client secrets, tokens, keys) is printed; the
// servers' logs stay in the work directory (-keep keeps it).
//
// It is a development tool: nothing in the product imports it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Hydra configurations, values of -hydra-configs.
const (
	// hydraDefaults is Hydra as it starts: its generated RSA-4096 key
	// signs access tokens, and client secrets are PBKDF2 with 25,000
	// iterations.
	hydraDefaults = "defaults"
	// hydraTuned gives Hydra the cheapest settings it accepts for the
	// two costs above: a 2048-bit key, imported through the admin API in
	// place of the generated one, and one PBKDF2 iteration.
	hydraTuned = "tuned"
)

// Scenarios, values of -scenarios.
const (
	scenarioClientCredentials = "client_credentials"
	scenarioIntrospection     = "introspection"
)

// options are the command's flags.
type options struct {
	hydraBin, nsauthBin string
	duration, warmup    time.Duration
	rounds, concurrency int
	hydraConfigs        []string
	scenarios           []string
	workDir             string
	keep                bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("hydrabench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.hydraBin, "hydra", "", "Ory Hydra binary built with the sqlite tag (interop/build-hydra.sh with NSAUTH_HYDRA_TAGS=sqlite,sqlite_omit_load_extension)")
	fs.StringVar(&o.nsauthBin, "nsauth-server", "", "nsauth-server binary (go build ./cmd/nsauth-server)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "timed length of each cell (one scenario against one target in one round)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "untimed load before each cell")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; each runs every scenario against every target, in reverse order every other round")
	fs.IntVar(&o.concurrency, "concurrency", 16, "concurrent keep-alive clients")
	configs := fs.String("hydra-configs", hydraDefaults+","+hydraTuned, "Hydra configurations, comma-separated: "+hydraDefaults+", "+hydraTuned)
	scenarios := fs.String("scenarios", scenarioClientCredentials+","+scenarioIntrospection, "scenarios, comma-separated: "+scenarioClientCredentials+", "+scenarioIntrospection)
	fs.StringVar(&o.workDir, "work-dir", "", "where the directory of the servers' data and logs is made (default: the system's temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (the servers' logs) at the end")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.hydraConfigs, err = list("-hydra-configs", *configs, hydraDefaults, hydraTuned); err != nil {
		return nil, err
	}
	if o.scenarios, err = list("-scenarios", *scenarios, scenarioClientCredentials, scenarioIntrospection); err != nil {
		return nil, err
	}
	switch {
	case o.hydraBin == "" || o.nsauthBin == "":
		return nil, errors.New("-hydra and -nsauth-server are required (scripts/bench-hydra.sh builds both)")
	case o.duration <= 0:
		return nil, errors.New("-duration must be positive")
	case o.warmup < 0:
		return nil, errors.New("-warmup cannot be negative")
	case o.rounds < 1:
		return nil, errors.New("-rounds must be at least 1")
	case o.concurrency < 1:
		return nil, errors.New("-concurrency must be at least 1")
	}
	return o, nil
}

// list splits a comma-separated flag value and refuses values not in allowed.
func list(flagName, value string, allowed ...string) ([]string, error) {
	var out []string
	for v := range strings.SplitSeq(value, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if !slices.Contains(allowed, v) {
			return nil, fmt.Errorf("%s: unknown value %q (want %s)", flagName, v, strings.Join(allowed, ", "))
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty", flagName)
	}
	return out, nil
}

// run is main with its inputs injected; it returns the exit code: 0 when
// every cell ran (errors in the table included), 1 when the comparison
// could not run, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "hydrabench: %v\n", err)
		}
		return 2
	}
	if err := compare(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "hydrabench: %v\n", err)
		return 1
	}
	return 0
}

// compare starts the targets, runs the rounds and prints the report.
func compare(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	// A directory of its own even under -work-dir, so that removing it
	// at the end removes nothing else.
	if o.workDir != "" {
		if err := os.MkdirAll(o.workDir, 0o700); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp(o.workDir, "hydrabench-")
	if err != nil {
		return err
	}
	defer func() {
		// A failure keeps the servers' logs for a look; an interruption
		// does not, unless asked.
		if o.keep || (err != nil && ctx.Err() == nil) {
			fmt.Fprintf(stderr, "servers' data and logs kept in %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()

	env := describeMachine()
	if env.hydraVersion, err = hydraVersion(o.hydraBin); err != nil {
		return err
	}
	var targets []*target
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	fmt.Fprintln(stderr, "starting nsauth-server")
	t, err := startNsauth(ctx, newClient(o.concurrency), o.nsauthBin, dir)
	if err != nil {
		return fmt.Errorf("nsauth: %w", err)
	}
	targets = append(targets, t)
	for _, c := range o.hydraConfigs {
		fmt.Fprintf(stderr, "starting Hydra (%s)\n", c)
		t, err := startHydra(ctx, newClient(o.concurrency), o.hydraBin, dir, c)
		if err != nil {
			return fmt.Errorf("hydra (%s): %w", c, err)
		}
		targets = append(targets, t)
	}
	for _, t := range targets {
		if err := t.describe(ctx); err != nil {
			return fmt.Errorf("%s: %w", t.label(), err)
		}
	}
	env.start()
	res, err := rounds(ctx, o, targets, stderr)
	if err != nil {
		return err
	}
	env.end()
	return writeReport(stdout, o, env, targets, res)
}
