package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/bench"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// TestRunScale seeds a small store on each backend and checks that the
// seeded rows are all there and that the report has every figure.
func TestRunScale(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts servers and seeds stores for several seconds")
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			cfg := bench.ScaleConfig{
				Users: 200, Events: 2000, Revocations: 150,
				Duration: 100 * time.Millisecond, Runs: 1, Logins: 5, Queries: 3,
				DistinctTokens: 16, IdleWindow: 200 * time.Millisecond,
			}
			if backend == "postgres" {
				cfg.DatabaseURL = storetest.PostgresURL(t)
			}
			var progress bytes.Buffer
			cfg.Progress = &progress
			r, err := bench.RunScale(context.Background(), cfg)
			if err != nil {
				t.Fatalf("RunScale: %v\n%s", err, progress.String())
			}
			if r.Backend != backend {
				t.Errorf("backend %q, want %q", r.Backend, backend)
			}
			// The seeded store holds the seeded rows, the bench user and
			// the administrator; the events the run made come on top.
			if r.Counted.Users != int64(cfg.Users)+2 {
				t.Errorf("%d users counted, want %d", r.Counted.Users, cfg.Users+2)
			}
			if r.Counted.Events < int64(cfg.Events) || r.Counted.Events > int64(cfg.Events)+2000 {
				t.Errorf("%d events counted, want %d and the run's own", r.Counted.Events, cfg.Events)
			}
			if r.Counted.LiveRevocations != int64(cfg.Revocations) {
				t.Errorf("%d live revocations counted, want %d", r.Counted.LiveRevocations, cfg.Revocations)
			}
			for _, p := range []struct {
				name  string
				phase bench.ScalePhase
			}{{"empty", r.Empty}, {"seeded", r.Seeded}} {
				ph := p.phase
				for name, v := range map[string]float64{
					"start": ph.StartMillis, "heap": float64(ph.HeapBytes), "RSS": float64(ph.RSSBytes),
					"login p50": ph.LoginP50Millis, "login CPU": ph.LoginCPUMillis, "CheckToken distinct": ph.CheckTokenDistinctRPS, "CheckToken cached": ph.CheckTokenCachedRPS,
					"audit --user": ph.AuditUserP50Millis, "audit --since": ph.AuditSinceP50Millis, "audit --ref": ph.AuditRefP50Millis,
					"users list": ph.UsersListMillis, "data size": float64(ph.DataBytes),
					"users list first page": ph.UsersFirstPageP50Millis, "users list deep page": ph.UsersDeepPageP50Millis,
				} {
					if v <= 0 {
						t.Errorf("%s store: %s is %v", p.name, name, v)
					}
				}
				if ph.IdleCPUPercent < 0 { // zero is possible in a short window
					t.Errorf("%s store: idle CPU %v %%", p.name, ph.IdleCPUPercent)
				}
				if ph.UsersListTimedOut {
					t.Errorf("%s store: users list timed out", p.name)
				}
			}
			// Every seeded user has events; a seeded ref names one event;
			// the last hour holds a share of the seeded events.
			if r.Seeded.AuditUserEvents == 0 || r.Seeded.AuditRefEvents != 1 || r.Seeded.AuditSinceEvents == 0 {
				t.Errorf("seeded audit queries returned --user %d, --ref %d, --since %d events", r.Seeded.AuditUserEvents, r.Seeded.AuditRefEvents, r.Seeded.AuditSinceEvents)
			}
			if r.Seeded.UsersListed != cfg.Users+2 {
				t.Errorf("users list listed %d, want %d", r.Seeded.UsersListed, cfg.Users+2)
			}
			if r.SeedSeconds <= 0 || r.BytesPerMillionUsers <= 0 || r.BytesPerMillionEvents <= 0 || r.BytesPerMillionRevocations <= 0 {
				t.Errorf("seeding figures missing: %.3f s, %.0f / %.0f / %.0f bytes per million", r.SeedSeconds, r.BytesPerMillionUsers, r.BytesPerMillionEvents, r.BytesPerMillionRevocations)
			}

			var table, js bytes.Buffer
			if err := r.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"login p50", "CheckToken (valid, distinct)", "--ref", "users list", "Data size per million", "Seeding:"} {
				if !strings.Contains(table.String(), want) {
					t.Errorf("the table lacks %q:\n%s", want, table.String())
				}
			}
			if err := r.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			var back bench.ScaleReport
			if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Seeded.AuditRefP50Millis != r.Seeded.AuditRefP50Millis {
				t.Errorf("the JSON does not read back: %v", err)
			}
		})
	}
}

func TestRunScaleRefusesNoUsers(t *testing.T) {
	t.Parallel()
	if _, err := bench.RunScale(context.Background(), bench.ScaleConfig{}); err == nil {
		t.Fatal("RunScale accepted a run without users")
	}
}
