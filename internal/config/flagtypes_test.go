package config_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/config"
)

// TestFlagHelpNamesValueKinds: help says what each flag takes, and
// booleans read as booleans.
func TestFlagHelpNamesValueKinds(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	help := fs.FlagUsages()
	tests := []struct {
		flag string
		kind string // "" for a boolean, which help shows without a value
	}{
		{"pprof", ""},
		{"auth-enabled", ""},
		{"require-pkce", ""},
		{"insecure-http-issuer", ""},
		{"login-attempts", "int"},
		{"max-request-bytes", "int"},
		{"rate-limit", "float"},
		{"device-poll-rate-limit", "float"},
		{"shutdown-timeout", "duration"},
		{"access-token-ttl", "duration"},
		{"auth-clock-skew", "duration"},
		{"introspection-cache-ttl", "duration"},
		{"trusted-proxies", "list"},
		{"auth-audience", "list"},
		{"listen", "string"},
	}
	for _, tc := range tests {
		t.Run(tc.flag, func(t *testing.T) {
			t.Parallel()
			line := regexp.MustCompile(`(?m)^ +--` + regexp.QuoteMeta(tc.flag) + ` .*$`).FindString(help)
			want := "--" + tc.flag + " "
			if tc.kind != "" {
				want += tc.kind + " "
			}
			// The usage text starts after at least two spaces.
			if !strings.HasPrefix(strings.TrimLeft(line, " "), want+" ") {
				t.Errorf("help line %q, want it to start with %q and then the usage", line, want)
			}
			if strings.Contains(line, `[="true"]`) {
				t.Errorf("help line %q shows a boolean as a string", line)
			}
		})
	}
}

// TestTypedFlagsParseAsBefore: the kinds are for help only; values are
// still checked by Load, which names the setting as for the environment.
func TestTypedFlagsParseAsBefore(t *testing.T) {
	t.Parallel()
	disabled := map[string]string{"AUTH_ENABLED": "false"}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		check   func(*config.Server) bool
		wantErr string
	}{
		{"--pprof alone", disabled, []string{"--pprof"}, func(c *config.Server) bool { return c.Pprof }, ""},
		{"--pprof=true", disabled, []string{"--pprof=true"}, func(c *config.Server) bool { return c.Pprof }, ""},
		{"--pprof=false", disabled, []string{"--pprof=false"}, func(c *config.Server) bool { return !c.Pprof }, ""},
		{"NSAUTH_PPROF=1", map[string]string{"AUTH_ENABLED": "false", "NSAUTH_PPROF": "1"}, nil, func(c *config.Server) bool { return c.Pprof }, ""},
		{"--pprof=false beats the environment", map[string]string{"AUTH_ENABLED": "false", "NSAUTH_PPROF": "true"}, []string{"--pprof=false"}, func(c *config.Server) bool { return !c.Pprof }, ""},
		{"--pprof=maybe", disabled, []string{"--pprof=maybe"}, nil, `NSAUTH_PPROF (--pprof): "maybe" is not true or false`},
		{"--rate-limit 2.5", disabled, []string{"--rate-limit", "2.5"}, func(c *config.Server) bool { return c.RateLimitPerMinute == 2.5 }, ""},
		{"--rate-limit lots", disabled, []string{"--rate-limit", "lots"}, nil, `NSAUTH_RATE_LIMIT_PER_MINUTE (--rate-limit): "lots" is not a number`},
		{"device polls: 120 a minute by default", disabled, nil, func(c *config.Server) bool { return c.DevicePollRateLimitPerMinute == 120 }, ""},
		{"--device-poll-rate-limit 0", disabled, []string{"--device-poll-rate-limit", "0"}, func(c *config.Server) bool { return c.DevicePollRateLimitPerMinute == 0 }, ""},
		{"NSAUTH_DEVICE_POLL_RATE_LIMIT_PER_MINUTE=30", map[string]string{"AUTH_ENABLED": "false", "NSAUTH_DEVICE_POLL_RATE_LIMIT_PER_MINUTE": "30"}, nil, func(c *config.Server) bool { return c.DevicePollRateLimitPerMinute == 30 }, ""},
		{"--device-poll-rate-limit -1", disabled, []string{"--device-poll-rate-limit", "-1"}, nil, `NSAUTH_DEVICE_POLL_RATE_LIMIT_PER_MINUTE (--device-poll-rate-limit): "-1" is not a number`},
		{"--shutdown-timeout soon", disabled, []string{"--shutdown-timeout", "soon"}, nil, `NSAUTH_SHUTDOWN_TIMEOUT (--shutdown-timeout): "soon" is not a duration`},
		{"--max-request-bytes 1e6", disabled, []string{"--max-request-bytes", "1e6"}, nil, `NSAUTH_MAX_REQUEST_BYTES (--max-request-bytes): "1e6" is not a byte count`},
		{"HSTS: one year by default", disabled, nil, func(c *config.Server) bool { return c.HSTSMaxAge == 8760*time.Hour }, ""},
		{"--hsts-max-age 1h", disabled, []string{"--hsts-max-age", "1h"}, func(c *config.Server) bool { return c.HSTSMaxAge == time.Hour }, ""},
		{"NSAUTH_HSTS_MAX_AGE in seconds", map[string]string{"AUTH_ENABLED": "false", "NSAUTH_HSTS_MAX_AGE": "63072000"}, nil, func(c *config.Server) bool { return c.HSTSMaxAge == 2*8760*time.Hour }, ""},
		{"--hsts-max-age 0 sends none", disabled, []string{"--hsts-max-age", "0"}, func(c *config.Server) bool { return c.HSTSMaxAge == 0 }, ""},
		{"--hsts-max-age 1.5s", disabled, []string{"--hsts-max-age", "1.5s"}, nil, `NSAUTH_HSTS_MAX_AGE (--hsts-max-age): "1.5s" is not a whole number of seconds`},
		{"--hsts-max-age -1", disabled, []string{"--hsts-max-age=-1"}, nil, `NSAUTH_HSTS_MAX_AGE (--hsts-max-age): "-1" is not from 0 to two years`},
		{"--hsts-max-age 3y", disabled, []string{"--hsts-max-age", "3y"}, nil, `NSAUTH_HSTS_MAX_AGE (--hsts-max-age): "3y" is not a duration (8760h) or a number of seconds`},
		{"--hsts-max-age 20000h", disabled, []string{"--hsts-max-age", "20000h"}, nil, `"20000h" is not from 0 to two years`},
		{"--login-attempts 7", map[string]string{"HOME": "/h"}, []string{"--login-attempts", "7"}, func(c *config.Server) bool { return c.Auth.Builtin.LoginAttempts == 7 }, ""},
		{"--login-attempts many", map[string]string{"HOME": "/h"}, []string{"--login-attempts=many"}, nil, `NSAUTH_LOGIN_ATTEMPTS_PER_MINUTE (--login-attempts): "many" is not a number from 1 to 1000`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := load(t, tc.env, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cfg) {
				t.Errorf("configuration not as expected: %+v", cfg)
			}
		})
	}
}
