package config_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/config"
)

func load(t *testing.T, env map[string]string, args ...string) (*config.Server, error) {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return config.Load(fs, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
}

// TestNeosyncEnvironment checks that an existing Neosync deployment's
// variables work unchanged.
func TestNeosyncEnvironment(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, map[string]string{
		"HOST":                     "0.0.0.0",
		"PORT":                     "9090",
		"AUTH_ENABLED":             "true",
		"AUTH_BASEURL":             "https://auth.example.com/realms/neosync",
		"AUTH_EXPECTED_ISS":        "https://auth.example.com/realms/neosync/",
		"AUTH_AUDIENCE":            "neosync-api, account  https://api.example.com",
		"AUTH_CLI_CLIENT_ID":       "neosync-cli",
		"AUTH_CLI_AUDIENCE":        "https://api.example.com",
		"AUTH_CLIENTID_SECRET":     `{"neosync-app":"a","neosync-cli":"b"}`,
		"AUTH_SIGNATURE_ALGORITHM": "RS256",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "0.0.0.0:9090" {
		t.Errorf("Listen = %q", cfg.Listen)
	}
	a := cfg.Auth
	if a.Mode != config.AuthExternal || a.BaseURL != "https://auth.example.com/realms/neosync" || a.ExpectedIssuer != "https://auth.example.com/realms/neosync/" {
		t.Errorf("auth = %+v", a)
	}
	if want := []string{"neosync-api", "account", "https://api.example.com"}; !slices.Equal(a.Audiences, want) {
		t.Errorf("Audiences = %q, want %q", a.Audiences, want)
	}
	if a.ClientID != "neosync-cli" || a.ClientSecret != "b" || a.CLIAudience != "https://api.example.com" {
		t.Errorf("client = %q secret-set=%v audience=%q", a.ClientID, a.ClientSecret != "", a.CLIAudience)
	}
	if !slices.Equal(a.Algorithms, []string{"RS256"}) || a.ClockSkew != 60*time.Second {
		t.Errorf("algorithms %q skew %v", a.Algorithms, a.ClockSkew)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, map[string]string{"AUTH_ENABLED": "false"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.LogFormat != "text" || cfg.MaxRequestBytes != 64<<10 || cfg.ShutdownTimeout != 30*time.Second {
		t.Errorf("defaults = %+v", cfg)
	}
	if cfg.Auth.Mode != config.AuthDisabled {
		t.Errorf("mode = %v", cfg.Auth.Mode)
	}
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, map[string]string{"HOST": "0.0.0.0", "PORT": "1", "AUTH_ENABLED": "false", "NSAUTH_LOG_FORMAT": "json"},
		"--listen", "127.0.0.1:7000", "--log-format", "text")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:7000" || cfg.LogFormat != "text" {
		t.Errorf("Listen=%q LogFormat=%q", cfg.Listen, cfg.LogFormat)
	}
}

func TestErrorsNameTheSettingAndHideSecrets(t *testing.T) {
	t.Parallel()
	const secret = "very-secret-value"
	base := map[string]string{"AUTH_BASEURL": "https://a.example", "AUTH_AUDIENCE": "x", "AUTH_CLI_CLIENT_ID": "c"}
	tests := []struct {
		name, key, value, want string
	}{
		{"bad base URL", "AUTH_BASEURL", "not-a-url", "AUTH_BASEURL"},
		{"base URL with fragment", "AUTH_BASEURL", "https://a.example/#x", "AUTH_BASEURL"},
		{"bad expected issuer", "AUTH_EXPECTED_ISS", "::", "AUTH_EXPECTED_ISS"},
		{"malformed secrets", "AUTH_CLIENTID_SECRET", `{"c":` + secret, "AUTH_CLIENTID_SECRET"},
		{"bad algorithm", "AUTH_SIGNATURE_ALGORITHM", "HS512", "AUTH_SIGNATURE_ALGORITHM"},
		{"bad skew", "NSAUTH_CLOCK_SKEW", "1h", "NSAUTH_CLOCK_SKEW"},
		{"bad redirect allowlist", "NSAUTH_ALLOWED_REDIRECT_URIS", "not a url", "NSAUTH_ALLOWED_REDIRECT_URIS"},
		{"bad port", "PORT", "99999", "PORT"},
		{"bad max request bytes", "NSAUTH_MAX_REQUEST_BYTES", "12", "NSAUTH_MAX_REQUEST_BYTES"},
		{"trusted proxy given by name", "NSAUTH_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal", "NSAUTH_TRUSTED_PROXIES (--trusted-proxies): \"proxy.internal\" is not a CIDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{tt.key: tt.value}
			for k, v := range base {
				if k != tt.key {
					env[k] = v
				}
			}
			_, err := load(t, env)
			if err == nil {
				t.Fatal("Load accepted the configuration")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not name %s: %v", tt.want, err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}

func TestBooleanFlagsAlone(t *testing.T) {
	t.Parallel()
	cfg, err := load(t, map[string]string{"AUTH_BASEURL": "https://a.example", "AUTH_AUDIENCE": "x", "AUTH_CLI_CLIENT_ID": "c"}, "--pprof", "--auth-enabled")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Pprof || cfg.Auth.Mode != config.AuthExternal {
		t.Errorf("--pprof alone: Pprof=%v mode=%v", cfg.Pprof, cfg.Auth.Mode)
	}
	cfg, err = load(t, map[string]string{"AUTH_BASEURL": "https://a.example", "AUTH_AUDIENCE": "x", "AUTH_CLI_CLIENT_ID": "c"}, "--auth-enabled=false")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.Mode != config.AuthDisabled || cfg.Pprof {
		t.Errorf("--auth-enabled=false: mode=%v pprof=%v", cfg.Auth.Mode, cfg.Pprof)
	}
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"default trusts no proxy", nil, nil, "[]"},
		{"environment", map[string]string{"NSAUTH_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1 fd00::/8"}, nil, "[10.0.0.0/8 192.0.2.1/32 fd00::/8]"},
		{"flag", nil, []string{"--trusted-proxies", "127.0.0.1"}, "[127.0.0.1/32]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"AUTH_ENABLED": "false"}
			for k, v := range tt.env {
				env[k] = v
			}
			cfg, err := load(t, env, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range cfg.TrustedProxies {
				got = append(got, p.String())
			}
			if s := "[" + strings.Join(got, " ") + "]"; s != tt.want {
				t.Errorf("TrustedProxies = %s, want %s", s, tt.want)
			}
		})
	}
}
