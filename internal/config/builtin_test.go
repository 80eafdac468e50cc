package config_test

import (
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/seal"
)

func loadWith(t *testing.T, env map[string]string, args ...string) (*config.Server, error) {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return config.Load(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func TestAuthModeSelection(t *testing.T) {
	t.Parallel()
	home := map[string]string{"HOME": "/home/u"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"HOME": "/home/u"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want config.AuthMode
	}{
		{"nothing configured", home, config.AuthBuiltin},
		{"AUTH_ENABLED=true alone", with("AUTH_ENABLED", "true"), config.AuthBuiltin},
		{"AUTH_ENABLED=false", with("AUTH_ENABLED", "false"), config.AuthDisabled},
		{"AUTH_ENABLED=false beats a base URL", with("AUTH_ENABLED", "false", "AUTH_BASEURL", "https://idp.example.com"), config.AuthDisabled},
		{"external provider", with("AUTH_BASEURL", "https://idp.example.com", "AUTH_AUDIENCE", "api", "AUTH_CLI_CLIENT_ID", "cli"), config.AuthExternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadWith(t, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Auth.Mode != tc.want {
				t.Fatalf("Mode = %v, want %v", cfg.Auth.Mode, tc.want)
			}
		})
	}
}

func TestBuiltinDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := loadWith(t, map[string]string{"HOME": "/home/u"})
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Auth
	b := a.Builtin
	// The broker accepts tokens of every key the provider may have
	// published, so a change of algorithm does not refuse the tokens
	// signed before it; new keys are RS256.
	if a.Mode.String() != "builtin" || !a.RequireAccessTokenType || !slices.Equal(a.Algorithms, []string{"RS256", "ES256", "EdDSA"}) ||
		b.SigningAlgorithm != "RS256" {
		t.Errorf("auth = %+v", a)
	}
	if b.Issuer != "" {
		t.Errorf("Issuer = %q, want empty (derived at start)", b.Issuer)
	}
	wantDir := filepath.Join("/home/u", ".local", "share", "nsauth")
	if runtime.GOOS == "darwin" {
		wantDir = filepath.Join("/home/u", "Library", "Application Support", "nsauth")
	}
	if runtime.GOOS != "windows" && b.DataDir != wantDir {
		t.Errorf("DataDir = %q, want %q", b.DataDir, wantDir)
	}
	if b.DatabaseURL != "" || b.AccessTokenTTL != 15*time.Minute || b.RefreshTokenTTL != 720*time.Hour ||
		b.RefreshTokenMaxLifetime != 2160*time.Hour || b.RefreshReuseGrace != 30*time.Second ||
		b.KeyRotation != 720*time.Hour || b.AdminUser != "admin" || b.AdminPassword != "" || b.InsecureHTTPIssuer ||
		b.LoginAttempts != 5 || b.AuthorizePerMinute != 60 {
		t.Errorf("builtin = %+v", b)
	}
	if a.ClockSkew != 60*time.Second {
		t.Errorf("ClockSkew = %v", a.ClockSkew)
	}
}

func TestBuiltinSettings(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("data directory layout differs on Windows")
	}
	cfg, err := loadWith(t, map[string]string{
		"HOME":                                   "/home/u",
		"XDG_DATA_HOME":                          "/data",
		"NSAUTH_ISSUER":                          "https://auth.example.com/",
		"NSAUTH_ACCESS_TOKEN_TTL":                "5m",
		"NSAUTH_REFRESH_TOKEN_TTL":               "24h",
		"NSAUTH_REFRESH_TOKEN_MAX_LIFETIME":      "168h",
		"NSAUTH_REFRESH_TOKEN_REUSE_GRACE":       "0s",
		"NSAUTH_SIGNING_KEY_ROTATION":            "168h",
		"NSAUTH_ADMIN_USER":                      "root",
		"NSAUTH_ADMIN_PASSWORD":                  "a-long-password",
		"NSAUTH_ALLOWED_SCOPES":                  "openid offline_access",
		"NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE": "120",
	}, "--access-token-ttl", "10m")
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Auth.Builtin
	if b.Issuer != "https://auth.example.com" {
		t.Errorf("Issuer = %q (trailing slash kept?)", b.Issuer)
	}
	if b.DataDir != "/data/nsauth" {
		t.Errorf("DataDir = %q, want /data/nsauth", b.DataDir)
	}
	if b.AccessTokenTTL != 10*time.Minute {
		t.Errorf("AccessTokenTTL = %v: the flag must win", b.AccessTokenTTL)
	}
	if b.RefreshTokenTTL != 24*time.Hour || b.RefreshTokenMaxLifetime != 168*time.Hour || b.RefreshReuseGrace != 0 || b.KeyRotation != 168*time.Hour || b.AdminUser != "root" || b.AdminPassword != "a-long-password" {
		t.Errorf("builtin = %+v", b)
	}
	if strings.Join(cfg.Auth.AllowedScopes, " ") != "openid offline_access" {
		t.Errorf("AllowedScopes = %v", cfg.Auth.AllowedScopes)
	}
	if b.AuthorizePerMinute != 120 {
		t.Errorf("AuthorizePerMinute = %v, want 120 from the environment", b.AuthorizePerMinute)
	}
	for _, tc := range []struct {
		name string
		args []string
		want float64
	}{
		{"the flag wins", []string{"--authorize-rate-limit", "30"}, 30},
		{"0 disables the limit", []string{"--authorize-rate-limit", "0"}, 0},
		{"fractions are rates", []string{"--authorize-rate-limit", "0.5"}, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadWith(t, map[string]string{"HOME": "/h", "NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE": "120"}, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Auth.Builtin.AuthorizePerMinute; got != tc.want {
				t.Fatalf("AuthorizePerMinute = %v, want %v", got, tc.want)
			}
		})
	}

	cfg, err = loadWith(t, map[string]string{"NSAUTH_DATABASE_URL": "postgres://u:pw@db/nsauth", "NSAUTH_SECRET_KEY": seal.GenerateKey()})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.Builtin.DatabaseURL != "postgres://u:pw@db/nsauth" || cfg.Auth.Builtin.DataDir != "" {
		t.Errorf("builtin = %+v", cfg.Auth.Builtin)
	}
	cfg, err = loadWith(t, map[string]string{}, "--data-dir", "relative/dir")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(cfg.Auth.Builtin.DataDir) {
		t.Errorf("DataDir %q is not absolute", cfg.Auth.Builtin.DataDir)
	}
}

func TestBuiltinErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		want    string
		secrets []string
	}{
		{"http issuer elsewhere", map[string]string{"NSAUTH_ISSUER": "http://auth.example.com"}, nil, "NSAUTH_ISSUER (--issuer)", nil},
		{"issuer with a path", map[string]string{"NSAUTH_ISSUER": "https://example.com/auth"}, nil, "must not have a path", nil},
		{"issuer with a query", map[string]string{"NSAUTH_ISSUER": "https://example.com?x=1"}, nil, "must not contain a query", nil},
		{"not a URL", map[string]string{"NSAUTH_ISSUER": "auth.example.com"}, nil, "NSAUTH_ISSUER", nil},
		{"database URL of another kind", map[string]string{"NSAUTH_DATABASE_URL": "mysql://u:hunter2@db/x"}, nil, "must be a postgres://", []string{"hunter2"}},
		{"both stores", map[string]string{"NSAUTH_DATABASE_URL": "postgres://u:hunter2@db/x"}, []string{"--data-dir", "/d"}, "cannot be combined", []string{"hunter2"}},
		{"no home", map[string]string{}, nil, "$HOME is not set", nil},
		{"access TTL too short", map[string]string{"HOME": "/h", "NSAUTH_ACCESS_TOKEN_TTL": "10s"}, nil, "NSAUTH_ACCESS_TOKEN_TTL", nil},
		{"refresh shorter than access", map[string]string{"HOME": "/h", "NSAUTH_ACCESS_TOKEN_TTL": "2h", "NSAUTH_REFRESH_TOKEN_TTL": "1h"}, nil, "longer than the access token", nil},
		{"max lifetime shorter than the refresh TTL", map[string]string{"HOME": "/h", "NSAUTH_REFRESH_TOKEN_MAX_LIFETIME": "24h"}, nil,
			"NSAUTH_REFRESH_TOKEN_MAX_LIFETIME (--refresh-token-max-lifetime): 24h0m0s is shorter than the refresh token lifetime (NSAUTH_REFRESH_TOKEN_TTL", nil},
		{"max lifetime not a duration", map[string]string{"HOME": "/h", "NSAUTH_REFRESH_TOKEN_MAX_LIFETIME": "forever"}, nil, "NSAUTH_REFRESH_TOKEN_MAX_LIFETIME", nil},
		{"reuse grace negative", map[string]string{"HOME": "/h"}, []string{"--refresh-token-reuse-grace", "-1s"}, "NSAUTH_REFRESH_TOKEN_REUSE_GRACE (--refresh-token-reuse-grace)", nil},
		{"reuse grace too long", map[string]string{"HOME": "/h", "NSAUTH_REFRESH_TOKEN_REUSE_GRACE": "1h"}, nil, "is not a duration from 0s to 5m0s", nil},
		{"rotation not a duration", map[string]string{"HOME": "/h", "NSAUTH_SIGNING_KEY_ROTATION": "monthly"}, nil, "NSAUTH_SIGNING_KEY_ROTATION", nil},
		{"external settings without a base URL", map[string]string{"HOME": "/h", "AUTH_AUDIENCE": "api", "AUTH_CLIENTID_SECRET": `{"cli":"hunter2"}`}, nil, "AUTH_BASEURL is not set", []string{"hunter2"}},
		{"insecure not a bool", map[string]string{"HOME": "/h", "NSAUTH_INSECURE_HTTP_ISSUER": "maybe"}, nil, "NSAUTH_INSECURE_HTTP_ISSUER", nil},
		{"authorize limit negative", map[string]string{"HOME": "/h", "NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE": "-1"}, nil, "NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE (--authorize-rate-limit)", nil},
		{"authorize limit not a number", map[string]string{"HOME": "/h"}, []string{"--authorize-rate-limit", "lots"}, `--authorize-rate-limit): "lots" is not a number`, nil},
		{"authorize limit NaN", map[string]string{"HOME": "/h", "NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE": "NaN"}, nil, "NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE", nil},
		{"authorize limit infinite", map[string]string{"HOME": "/h", "NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE": "+Inf"}, nil, "NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE", nil},
		{"authorize limit too high", map[string]string{"HOME": "/h", "NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE": "1e9"}, nil, "from 0 to 1000000", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadWith(t, tc.env, tc.args...)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			for _, s := range tc.secrets {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error %q echoes a secret", err)
				}
			}
		})
	}
	// Opting in allows an http issuer anywhere.
	cfg, err := loadWith(t, map[string]string{"HOME": "/h", "NSAUTH_ISSUER": "http://auth.internal:8080", "NSAUTH_INSECURE_HTTP_ISSUER": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.Builtin.Issuer != "http://auth.internal:8080" || !cfg.Auth.Builtin.InsecureHTTPIssuer {
		t.Fatalf("builtin = %+v", cfg.Auth.Builtin)
	}
}

// TestIssuerRequiredOffLoopback: a built-in provider derives its issuer
// only when it listens on loopback; anywhere else (a container's 0.0.0.0
// above all) it refuses to start until NSAUTH_ISSUER or AUTH_BASEURL says
// where browsers reach it.
func TestIssuerRequiredOffLoopback(t *testing.T) {
	t.Parallel()
	const refusal = "NSAUTH_ISSUER (--issuer): is required when listening on"
	external := map[string]string{"AUTH_BASEURL": "https://idp.example.com", "AUTH_AUDIENCE": "api", "AUTH_CLI_CLIENT_ID": "cli"}
	issuer := map[string]string{"NSAUTH_ISSUER": "https://auth.example.com"}
	disabled := map[string]string{"AUTH_ENABLED": "false"}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		refused bool
	}{
		{"default listen address", nil, nil, false},
		{"IPv4 loopback", nil, []string{"--listen", "127.0.0.1:8080"}, false},
		{"other IPv4 loopback", nil, []string{"--listen", "127.0.0.2:8080"}, false},
		{"IPv6 loopback", nil, []string{"--listen", "[::1]:8080"}, false},
		{"localhost", nil, []string{"--listen", "localhost:8080"}, false},
		{"localhost from HOST", map[string]string{"HOST": "LocalHost"}, nil, false},
		{"all IPv4 interfaces", nil, []string{"--listen", "0.0.0.0:8080"}, true},
		{"all IPv4 interfaces from HOST, as in a container", map[string]string{"HOST": "0.0.0.0"}, nil, true},
		{"all IPv6 interfaces", nil, []string{"--listen", "[::]:8080"}, true},
		{"all interfaces, no host", nil, []string{"--listen", ":8080"}, true},
		{"LAN address", nil, []string{"--listen", "192.168.1.10:8080"}, true},
		{"host name", nil, []string{"--listen", "auth.internal:8080"}, true},
		{"all interfaces with NSAUTH_ISSUER", issuer, []string{"--listen", "0.0.0.0:8080"}, false},
		{"all interfaces with --issuer", nil, []string{"--listen", "[::]:8080", "--issuer", "https://auth.example.com"}, false},
		{"LAN address with NSAUTH_ISSUER", issuer, []string{"--listen", "192.168.1.10:8080"}, false},
		{"all interfaces with AUTH_BASEURL (broker mode)", external, []string{"--listen", "0.0.0.0:8080"}, false},
		{"all interfaces without authentication", disabled, []string{"--listen", "0.0.0.0:8080"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"HOME": "/h"}
			for k, v := range tc.env {
				env[k] = v
			}
			_, err := loadWith(t, env, tc.args...)
			if !tc.refused {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Load succeeded without an issuer on a non-loopback address")
			}
			for _, want := range []string{refusal, "NSAUTH_ISSUER", "AUTH_BASEURL", "https://"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestDeriveIssuer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		addr string
		tls  bool
		want string
	}{
		// A host name, so that browsers accept it as a passkey's relying party.
		{"loopback", "127.0.0.1:8080", false, "http://localhost:8080"},
		{"any IPv4", "0.0.0.0:8080", false, "http://localhost:8080"},
		{"any IPv6", "[::]:9000", true, "https://localhost:9000"},
		{"IPv4-mapped loopback", "[::ffff:127.0.0.1]:9000", false, "http://localhost:9000"},
		{"no host", ":8080", false, "http://localhost:8080"},
		// "localhost" surely leads to 127.0.0.1 only: another loopback
		// address is kept.
		{"IPv6 loopback", "[::1]:9000", false, "http://[::1]:9000"},
		{"other IPv4 loopback", "127.0.0.2:8080", false, "http://127.0.0.2:8080"},
		{"LAN address", "10.1.2.3:443", true, "https://10.1.2.3:443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, err := net.ResolveTCPAddr("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			if got := config.DeriveIssuer(addr, tc.tls); got != tc.want {
				t.Fatalf("DeriveIssuer(%s) = %q, want %q", tc.addr, got, tc.want)
			}
		})
	}
}

// TestFormerDerivedIssuer: where the derived issuer became
// http://localhost:PORT, earlier versions derived http://127.0.0.1:PORT;
// elsewhere nothing changed.
func TestFormerDerivedIssuer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, derived, want string }{
		{"localhost", "http://localhost:8080", "http://127.0.0.1:8080"},
		{"localhost with TLS", "https://localhost:9000", "https://127.0.0.1:9000"},
		{"IPv6 loopback, unchanged", "http://[::1]:8080", ""},
		{"other IPv4 loopback, unchanged", "http://127.0.0.2:8080", ""},
		{"a host name given", "https://auth.example.com", ""},
		{"not a URL", "http://[::1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := config.FormerDerivedIssuer(tc.derived); got != tc.want {
				t.Fatalf("FormerDerivedIssuer(%q) = %q, want %q", tc.derived, got, tc.want)
			}
		})
	}
}

func TestLoadStore(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("users", pflag.ContinueOnError)
	config.RegisterStoreFlags(fs)
	if fs.Lookup("data-dir") == nil || fs.Lookup("database-url") == nil || fs.Lookup("listen") != nil {
		t.Fatal("RegisterStoreFlags registers the wrong flags")
	}
	if err := fs.Parse([]string{"--data-dir", "/srv/nsauth"}); err != nil {
		t.Fatal(err)
	}
	st, err := config.LoadStore(fs, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if st.DataDir != "/srv/nsauth" || st.DatabaseURL != "" {
		t.Fatalf("LoadStore = %+v", st)
	}
	st, err = config.LoadStore(nil, func(k string) (string, bool) {
		if k == "NSAUTH_DATABASE_URL" {
			return "postgresql://db/x", true
		}
		return "", false
	})
	if err != nil || st.DatabaseURL != "postgresql://db/x" {
		t.Fatalf("LoadStore = %+v, %v", st, err)
	}
}
