package servercmd

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/bench"
	"github.com/nsauth/nsauth/internal/cli"
)

// scaleOptions are the flags of `nsauth bench --scale`.
type scaleOptions struct {
	users, events, revocations int
	logins, queries            int
	databaseURL                string
}

func (o *scaleOptions) register(f *pflag.FlagSet) {
	f.IntVar(&o.users, "scale", 0, "scale mode: seed this many users (and by default 10× as many audit events and as many live revocations), and compare an empty store with the seeded one")
	f.IntVar(&o.events, "scale-events", -1, "scale mode: audit events to seed (default 10 × --scale)")
	f.IntVar(&o.revocations, "scale-revocations", -1, "scale mode: live revocations to seed (default --scale)")
	f.IntVar(&o.logins, "scale-logins", 100, "scale mode: logins timed for the login p50")
	f.IntVar(&o.queries, "scale-queries", 9, "scale mode: times each audit query is timed")
	// Not read from NSAUTH_DATABASE_URL: the scale mode writes millions of
	// rows, and a server's setting in the environment must not be enough
	// to make it write them into that server's database.
	f.StringVar(&o.databaseURL, "database-url", "", "scale mode: run on PostgreSQL, in a schema of its own created in this database (postgres:// URL) and dropped afterwards; default SQLite in a temporary directory")
}

// requested reports whether the command runs in scale mode: --scale was
// given. The scale mode's other flags without it are a usage error.
func (o *scaleOptions) requested(cmd *cobra.Command) (bool, error) {
	if cmd.Flags().Changed("scale") {
		return true, nil
	}
	for _, name := range []string{"scale-events", "scale-revocations", "scale-logins", "scale-queries", "database-url"} {
		if cmd.Flags().Changed(name) {
			return false, cli.UsageErrorf("--%s goes with --scale", name)
		}
	}
	return false, nil
}

// scaleConfig turns the flags into a scale run's configuration.
func (o *benchOptions) scaleConfig(cmd *cobra.Command, app *cli.App) (bench.ScaleConfig, error) {
	s := o.scale
	cfg := bench.ScaleConfig{
		Users: s.users, Events: s.events, Revocations: s.revocations, DatabaseURL: s.databaseURL,
		Duration: o.duration, Runs: o.runs, Logins: s.logins, Queries: s.queries, Progress: app.ErrOut,
	}
	if s.users < 1 {
		return cfg, cli.UsageErrorf("--scale must be a positive number of users")
	}
	if cfg.Events < 0 {
		cfg.Events = 10 * s.users
	}
	if cfg.Revocations < 0 {
		cfg.Revocations = s.users
	}
	if o.duration <= 0 || o.runs <= 0 || s.logins <= 0 || s.queries <= 0 {
		return cfg, cli.UsageErrorf("--duration, --runs, --scale-logins and --scale-queries must be positive")
	}
	if o.scenarios != "" || o.cpuProfile != "" {
		return cfg, cli.UsageErrorf("--scenarios and --cpuprofile do not go with --scale")
	}
	cfg.Concurrency = 16
	if cmd.Flags().Changed("concurrency") {
		n, err := strconv.Atoi(strings.TrimSpace(o.concurrency))
		if err != nil || n < 1 || n > 4096 {
			return cfg, cli.UsageErrorf("--concurrency with --scale: one number from 1 to 4096")
		}
		cfg.Concurrency = n
	}
	return cfg, nil
}

func (o *benchOptions) runScale(cmd *cobra.Command, app *cli.App) error {
	cfg, err := o.scaleConfig(cmd, app)
	if err != nil {
		return err
	}
	report, err := bench.RunScale(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	if o.json {
		return report.WriteJSON(app.Out)
	}
	return report.WriteTable(app.Out)
}
