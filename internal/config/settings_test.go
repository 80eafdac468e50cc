package config_test

import (
	"encoding/base64"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/config"
)

// knownSetting is a setting as other programs know it: its variable, its
// flag ("" for none) and a valid value other than its default.
type knownSetting struct {
	env, flag, value string
	base             map[string]string // needed besides HOME for value to load
}

func knownSettings(t *testing.T) []knownSetting {
	key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	oldKey := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("o", 32)))
	dir := t.TempDir()
	keyFile, oldKeyFile := filepath.Join(dir, "secret.key"), filepath.Join(dir, "old.key")
	for path, k := range map[string]string{keyFile: key, oldKeyFile: oldKey} {
		if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	external := map[string]string{"AUTH_BASEURL": "https://id.example.com", "AUTH_AUDIENCE": "api", "AUTH_CLI_CLIENT_ID": "cli"}
	withKey := map[string]string{"NSAUTH_SECRET_KEY": key}
	return []knownSetting{
		{"NSAUTH_LISTEN", "listen", "127.0.0.1:9999", nil},
		{"HOST", "", "localhost", nil},
		{"PORT", "", "9090", nil},
		{"NSAUTH_LOG_FORMAT", "log-format", "json", nil},
		{"NSAUTH_LOG_LEVEL", "log-level", "debug", nil},
		{"NSAUTH_TLS_CERT", "tls-cert", "/etc/nsauth/cert.pem", map[string]string{"NSAUTH_TLS_KEY": "/etc/nsauth/key.pem"}},
		{"NSAUTH_TLS_KEY", "tls-key", "/etc/nsauth/other-key.pem", map[string]string{"NSAUTH_TLS_CERT": "/etc/nsauth/cert.pem"}},
		{"NSAUTH_HSTS_MAX_AGE", "hsts-max-age", "1h", nil},
		{"NSAUTH_MAX_REQUEST_BYTES", "max-request-bytes", "2048", nil},
		{"NSAUTH_SHUTDOWN_TIMEOUT", "shutdown-timeout", "5s", nil},
		{"NSAUTH_PPROF", "pprof", "true", nil},
		{"NSAUTH_TRUSTED_PROXIES", "trusted-proxies", "10.0.0.0/8", nil},
		{"NSAUTH_RATE_LIMIT_PER_MINUTE", "rate-limit", "7", nil},
		{"NSAUTH_DEVICE_POLL_RATE_LIMIT_PER_MINUTE", "device-poll-rate-limit", "9", nil},

		{"AUTH_ENABLED", "auth-enabled", "false", nil},
		{"NSAUTH_TOKEN_MODE", "token-mode", "introspection", nil},
		{"NSAUTH_INTROSPECTION_URL", "introspection-url", "https://id.example.com/introspect", nil},
		{"NSAUTH_INTROSPECTION_CACHE_TTL", "introspection-cache-ttl", "30s", nil},
		{"NSAUTH_CLOCK_SKEW", "auth-clock-skew", "5s", nil},
		{"NSAUTH_ALLOWED_REDIRECT_URIS", "allowed-redirect-uri", "https://app.example.com/callback", nil},
		{"NSAUTH_ALLOWED_SCOPES", "allowed-scopes", "openid profile", nil},
		{"NSAUTH_REQUIRE_PKCE", "require-pkce", "true", nil},

		{"AUTH_BASEURL", "auth-base-url", "https://other.example.com", external},
		{"AUTH_EXPECTED_ISS", "auth-expected-iss", "https://id.example.com/", external},
		{"AUTH_AUDIENCE", "auth-audience", "api2", external},
		{"AUTH_CLI_CLIENT_ID", "auth-cli-client-id", "cli2", external},
		{"AUTH_CLI_AUDIENCE", "auth-cli-audience", "https://api.example.com", external},
		{"AUTH_CLIENTID_SECRET", "", `{"cli":"s3cret"}`, external},
		{"AUTH_SIGNATURE_ALGORITHM", "auth-signature-algorithm", "ES256", external},

		{"NSAUTH_ISSUER", "issuer", "https://auth.example.com", nil},
		{"NSAUTH_INSECURE_HTTP_ISSUER", "insecure-http-issuer", "true", nil},
		{"NSAUTH_DATA_DIR", "data-dir", "/srv/nsauth", nil},
		{"NSAUTH_DATABASE_URL", "database-url", "postgres://db.example.com/nsauth", withKey},
		{"NSAUTH_ACCESS_TOKEN_TTL", "access-token-ttl", "5m", nil},
		{"NSAUTH_REFRESH_TOKEN_TTL", "refresh-token-ttl", "48h", nil},
		{"NSAUTH_REFRESH_TOKEN_MAX_LIFETIME", "refresh-token-max-lifetime", "1000h", nil},
		{"NSAUTH_REFRESH_TOKEN_REUSE_GRACE", "refresh-token-reuse-grace", "0s", nil},
		{"NSAUTH_SIGNING_KEY_ROTATION", "signing-key-rotation", "24h", nil},
		{"NSAUTH_SIGNING_ALGORITHM", "signing-algorithm", "EdDSA", nil},
		{"NSAUTH_SESSION_IDLE_TIMEOUT", "session-idle-timeout", "2h", nil},
		{"NSAUTH_SESSION_LIFETIME", "session-lifetime", "48h", nil},
		{"NSAUTH_LINK_TTL", "link-ttl", "2h", nil},
		{"NSAUTH_LOGIN_ATTEMPTS_PER_MINUTE", "login-attempts", "3", nil},
		{"NSAUTH_MFA", "mfa", "required", nil},
		{"NSAUTH_PASSWORD_LOGIN", "password-login", "false", nil},
		{"NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE", "authorize-rate-limit", "0", nil},
		{"NSAUTH_MACHINE_TOKEN_RATE_LIMIT_PER_MINUTE", "machine-token-rate-limit", "10", nil},
		{"NSAUTH_MACHINE_TOKEN_ADDRESS_RATE_LIMIT_PER_MINUTE", "machine-token-address-rate-limit", "20", nil},
		{"NSAUTH_TOKEN_EXCHANGE_RATE_LIMIT_PER_MINUTE", "token-exchange-rate-limit", "5", nil},
		{"NSAUTH_TOKEN_EXCHANGE_POLICY_RATE_LIMIT_PER_MINUTE", "token-exchange-policy-rate-limit", "6", nil},
		{"NSAUTH_ADMIN_USER", "", "root", nil},
		{"NSAUTH_ADMIN_PASSWORD", "", "correct horse battery staple", nil},

		{"NSAUTH_SECRET_KEY", "", key, nil},
		{"NSAUTH_SECRET_KEY_FILE", "secret-key-file", keyFile, nil},
		{"NSAUTH_OLD_SECRET_KEY", "", oldKey, withKey},
		{"NSAUTH_OLD_SECRET_KEY_FILE", "old-secret-key-file", oldKeyFile, withKey},

		{"NSAUTH_AUDIT_RETENTION", "audit-retention", "48h", nil},
		{"NSAUTH_AUDIT_LOG", "audit-log", "stdout", nil},
		{"NSAUTH_AUDIT_REQUIRED", "audit-required", "true", nil},
		{"NSAUTH_AUDIT_REFUSAL_ROWS_PER_MINUTE", "audit-refusal-rows", "10", nil},
	}
}

// TestEverySettingIsAFlagAndAVariable: the table holds exactly the
// settings other programs know, under their names; every one with a flag
// is registered; and each is read both from its variable and from its
// flag, to the same effect.
func TestEverySettingIsAFlagAndAVariable(t *testing.T) {
	t.Parallel()
	known := knownSettings(t)
	byEnv := map[string]knownSetting{}
	for _, k := range known {
		byEnv[k.env] = k
	}

	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	tableFlags := map[string]bool{}
	for _, s := range config.Settings() {
		if len(s.Env) == 0 {
			t.Errorf("--%s has no environment variable", s.Flag)
			continue
		}
		k, ok := byEnv[s.Env[0]]
		if !ok {
			t.Errorf("%s is in the table but not in this test: add it to knownSettings", s.Env[0])
			continue
		}
		if s.Flag != k.flag {
			t.Errorf("%s: flag %q, want %q", s.Env[0], s.Flag, k.flag)
		}
		delete(byEnv, s.Env[0])
		if s.Flag == "" {
			continue
		}
		tableFlags[s.Flag] = true
		f := fs.Lookup(s.Flag)
		if f == nil {
			t.Errorf("--%s is in the table but RegisterFlags does not register it", s.Flag)
			continue
		}
		if !strings.Contains(f.Usage, "$"+s.Env[0]) {
			t.Errorf("--%s: help %q does not name $%s", s.Flag, f.Usage, s.Env[0])
		}
	}
	for env := range byEnv {
		t.Errorf("%s is not in the table of settings", env)
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !tableFlags[f.Name] {
			t.Errorf("RegisterFlags registers --%s, which is not in the table", f.Name)
		}
	})
	for name, register := range map[string]func(*pflag.FlagSet){"RegisterStoreFlags": config.RegisterStoreFlags, "RegisterSecretKeyFlags": config.RegisterSecretKeyFlags} {
		sub := pflag.NewFlagSet(name, pflag.ContinueOnError)
		register(sub)
		sub.VisitAll(func(f *pflag.Flag) {
			if !tableFlags[f.Name] {
				t.Errorf("%s registers --%s, which is not in the table", name, f.Name)
			}
		})
	}

	for _, k := range known {
		t.Run(k.env, func(t *testing.T) {
			t.Parallel()
			base := map[string]string{"HOME": "/home/u"}
			maps.Copy(base, k.base)
			fromEnv := maps.Clone(base)
			fromEnv[k.env] = k.value
			viaEnv, err := loadWith(t, fromEnv)
			if err != nil {
				t.Fatalf("%s=%q: %v", k.env, k.value, err)
			}
			if def, err := loadWith(t, base); err == nil && reflect.DeepEqual(def, viaEnv) {
				t.Errorf("%s=%q: the configuration is the default one: the variable is not read", k.env, k.value)
			}
			if k.flag == "" {
				return
			}
			// The flag beats the variable, whatever the variable says.
			base[k.env] = "not what the flag says"
			viaFlag, err := loadWith(t, base, "--"+k.flag+"="+k.value)
			if err != nil {
				t.Fatalf("--%s=%q: %v", k.flag, k.value, err)
			}
			if !reflect.DeepEqual(viaEnv, viaFlag) {
				t.Errorf("--%s=%q and %s=%q load differently:\n flag: %+v\n  env: %+v", k.flag, k.value, k.env, k.value, viaFlag, viaEnv)
			}
		})
	}
}

// TestDefaultsAsKnown: the defaults, written out here rather than taken from the
// table, reach the configuration and flag help.
func TestDefaultsAsKnown(t *testing.T) {
	t.Parallel()
	cfg, err := loadWith(t, map[string]string{"HOME": "/home/u"})
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Auth.Builtin
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"listen", cfg.Listen, "127.0.0.1:8080"},
		{"log format", cfg.LogFormat, "text"},
		{"hsts", cfg.HSTSMaxAge, 8760 * time.Hour},
		{"max request bytes", cfg.MaxRequestBytes, int64(65536)},
		{"shutdown", cfg.ShutdownTimeout, 30 * time.Second},
		{"rate limit", cfg.RateLimitPerMinute, 60.0},
		{"device poll rate limit", cfg.DevicePollRateLimitPerMinute, 120.0},
		{"token mode", cfg.Auth.TokenMode, config.TokenModeJWT},
		{"clock skew", cfg.Auth.ClockSkew, 60 * time.Second},
		{"introspection cache", cfg.Auth.IntrospectionCacheTTL, time.Minute},
		{"access token", b.AccessTokenTTL, 15 * time.Minute},
		{"refresh token", b.RefreshTokenTTL, 720 * time.Hour},
		{"refresh token max", b.RefreshTokenMaxLifetime, 2160 * time.Hour},
		{"reuse grace", b.RefreshReuseGrace, 30 * time.Second},
		{"key rotation", b.KeyRotation, 720 * time.Hour},
		{"session idle timeout", b.SessionIdleTimeout, 12 * time.Hour},
		{"session lifetime", b.SessionLifetime, 168 * time.Hour},
		{"link ttl", b.LinkTTL, 24 * time.Hour},
		{"login attempts", b.LoginAttempts, 5},
		{"authorize", b.AuthorizePerMinute, 60.0},
		{"machine", b.MachineTokensPerMinute, 60.0},
		{"machine address", b.MachineTokensPerAddressPerMinute, 300.0},
		{"exchange", b.ExchangePerMinute, 30.0},
		{"exchange policy", b.ExchangePerPolicyMinute, 120.0},
		{"admin", b.AdminUser, "admin"},
		{"audit retention", b.AuditRetention, 2160 * time.Hour},
		{"audit refusal rows", b.AuditRefusalRowsPerMinute, 1000},
		{"second factor", b.RequireSecondFactor, false},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: default %v, want %v", c.name, c.got, c.want)
		}
	}

	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	for flag, want := range map[string]string{
		"access-token-ttl": "15m", "refresh-token-ttl": "720h", "refresh-token-max-lifetime": "2160h", "refresh-token-reuse-grace": "30s",
		"signing-key-rotation": "720h", "login-attempts": "5", "authorize-rate-limit": "60", "machine-token-rate-limit": "60",
		"machine-token-address-rate-limit": "300", "token-exchange-rate-limit": "30", "token-exchange-policy-rate-limit": "120",
		"audit-refusal-rows": "1000", "auth-clock-skew": "60s", "auth-signature-algorithm": "RS256", "mfa": "optional",
		"session-idle-timeout": "12h", "session-lifetime": "168h", "link-ttl": "24h",
	} {
		if got := fs.Lookup(flag).DefValue; got != want {
			t.Errorf("--%s: help shows the default %q, want %q", flag, got, want)
		}
	}
}

// TestConfigurationDocListsEverySetting: docs/configuration.md has a row
// for every variable, with its flag, and states known defaults (written
// out here, not taken from the table). That it is exactly what the
// generator writes is checked in internal/tools/configdoc.
func TestConfigurationDocListsEverySetting(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if env, _, ok := strings.Cut(strings.TrimPrefix(line, "| `"), "`"); ok && strings.HasPrefix(line, "| `") {
			rows[env] = line
		}
	}
	for _, k := range knownSettings(t) {
		row, ok := rows[k.env]
		if !ok {
			t.Errorf("docs/configuration.md has no row for %s", k.env)
			continue
		}
		wantFlag := "| (none) |"
		if k.flag != "" {
			wantFlag = "| `--" + k.flag + "` |"
		}
		if !strings.Contains(row, wantFlag) {
			t.Errorf("%s's row %q does not show %s", k.env, row, wantFlag)
		}
	}
	for env, def := range map[string]string{
		"HOST": "127.0.0.1", "PORT": "8080", "NSAUTH_ACCESS_TOKEN_TTL": "15m", "NSAUTH_REFRESH_TOKEN_TTL": "720h",
		"NSAUTH_REFRESH_TOKEN_MAX_LIFETIME": "2160h", "NSAUTH_REFRESH_TOKEN_REUSE_GRACE": "30s", "NSAUTH_LOGIN_ATTEMPTS_PER_MINUTE": "5",
		"NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE": "60", "NSAUTH_MACHINE_TOKEN_ADDRESS_RATE_LIMIT_PER_MINUTE": "300",
		"NSAUTH_TOKEN_EXCHANGE_RATE_LIMIT_PER_MINUTE": "30", "NSAUTH_TOKEN_EXCHANGE_POLICY_RATE_LIMIT_PER_MINUTE": "120",
		"NSAUTH_AUDIT_REFUSAL_ROWS_PER_MINUTE": "1000", "NSAUTH_CLOCK_SKEW": "60s", "AUTH_SIGNATURE_ALGORITHM": "RS256",
		"NSAUTH_RATE_LIMIT_PER_MINUTE": "60", "NSAUTH_MFA": "optional", "NSAUTH_SIGNING_ALGORITHM": "RS256",
	} {
		cells := strings.Split(rows[env], " | ")
		if len(cells) < 3 || cells[2] != "`"+def+"`" {
			t.Errorf("%s's default in docs/configuration.md: row %q, want `%s` in its third column", env, rows[env], def)
		}
	}
	if t.Failed() {
		t.Log("regenerate it with: go generate ./internal/config")
	}
}

// TestSecretsHaveNoFlag: argv is visible to other users; secrets come from
// the environment or a file only.
func TestSecretsHaveNoFlag(t *testing.T) {
	t.Parallel()
	secrets := []string{"AUTH_CLIENTID_SECRET", "NSAUTH_ADMIN_PASSWORD", "NSAUTH_SECRET_KEY", "NSAUTH_OLD_SECRET_KEY"}
	for _, s := range config.Settings() {
		if slices.Contains(secrets, s.Env[0]) && s.Flag != "" {
			t.Errorf("%s has a flag, --%s", s.Env[0], s.Flag)
		}
	}
}
