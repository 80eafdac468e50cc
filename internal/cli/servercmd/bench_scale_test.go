package servercmd

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/internal/bench"
)

// TestBenchScaleFlags: --scale sets the other counts by default, the
// scale flags override them, and what does not go with the scale mode is
// refused.
func TestBenchScaleFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                       string
		args                       []string
		users, events, revocations int
		concurrency                int
		databaseURL, err           string
	}{
		{name: "defaults from --scale", args: []string{"--scale", "1000"}, users: 1000, events: 10000, revocations: 1000, concurrency: 16},
		{name: "overrides", args: []string{"--scale", "10", "--scale-events", "0", "--scale-revocations", "3", "--concurrency", "4", "--database-url", "postgres://h/db"},
			users: 10, events: 0, revocations: 3, concurrency: 4, databaseURL: "postgres://h/db"},
		{name: "no users", args: []string{"--scale", "0"}, err: "--scale"},
		{name: "several concurrencies", args: []string{"--scale", "10", "--concurrency", "1,16"}, err: "--concurrency"},
		{name: "scenarios", args: []string{"--scale", "10", "--scenarios", "GetAuthStatus"}, err: "--scenarios"},
		{name: "a database without --scale", args: []string{"--database-url", "postgres://h/db"}, err: "--database-url goes with --scale"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The flags bench.go registers that the scale mode reads, and
			// the scale mode's own.
			opts := &benchOptions{duration: 3 * time.Second, runs: 3}
			cmd := &cobra.Command{}
			cmd.Flags().StringVar(&opts.concurrency, "concurrency", "1,16,64", "")
			cmd.Flags().StringVar(&opts.scenarios, "scenarios", "", "")
			opts.scale.register(cmd.Flags())
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			var cfg bench.ScaleConfig
			scale, err := opts.scale.requested(cmd)
			if err == nil {
				if !scale {
					t.Fatal("not the scale mode")
				}
				cfg, err = opts.scaleConfig(cmd, testApp())
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Users != tc.users || cfg.Events != tc.events || cfg.Revocations != tc.revocations || cfg.Concurrency != tc.concurrency || cfg.DatabaseURL != tc.databaseURL {
				t.Errorf("config %+v", cfg)
			}
		})
	}
}
