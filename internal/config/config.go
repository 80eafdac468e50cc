// Package config reads the server's configuration from flags and the
// environment, in one place, and validates it before anything starts.
//
// Flags win over environment variables, which win over defaults. Neosync's
// variable names (HOST, PORT, AUTH_*) are accepted unchanged so an existing
// deployment's environment works as it is; nsauth's own settings use the
// NSAUTH_ prefix. Errors name the offending setting by both its variable and
// its flag, and never echo a secret.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/pkg/authn"
)

// Server is the validated configuration of `nsauth serve`.
type Server struct {
	// Listen is the host:port to serve on. Default 127.0.0.1:8080.
	Listen string
	// LogFormat is "text" or "json". Default "text".
	LogFormat string
	// LogLevel is the minimum level logged. Default info.
	LogLevel slog.Level
	// TLSCertFile and TLSKeyFile enable TLS when both are set.
	TLSCertFile, TLSKeyFile string
	// HSTSMaxAge is the max-age of the Strict-Transport-Security header
	// sent on every response when the server serves TLS or its built-in
	// provider's issuer is https (NSAUTH_HSTS_MAX_AGE, --hsts-max-age);
	// 0 sends none. Default one year, whole seconds.
	HSTSMaxAge time.Duration
	// MaxRequestBytes caps request bodies. Default 64 KiB.
	MaxRequestBytes int64
	// ShutdownTimeout bounds the graceful drain on SIGINT/SIGTERM.
	// Default 30 s.
	ShutdownTimeout time.Duration
	// RateLimitPerMinute is how many LoginCli, RefreshCli, RevokeCli and
	// StartDeviceLogin calls one client address may make a minute; 0 disables the limit.
	// Default 60.
	RateLimitPerMinute float64
	// DevicePollRateLimitPerMinute is how many PollDeviceLogin calls one
	// client address may make a minute, apart from RateLimitPerMinute: a
	// device login polls every 5 s for up to its codes' lifetime. 0
	// disables the limit. Default 120 (ten logins at once from one
	// address).
	DevicePollRateLimitPerMinute float64
	// Pprof serves net/http/pprof under /debug/pprof/. Default off.
	Pprof bool
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// finding a client's address (for rate limits and login counters).
	// Default none: the TCP peer is the client.
	TrustedProxies []netip.Prefix
	// Auth is the authentication configuration.
	Auth Auth
}

// AuthMode says where tokens come from.
type AuthMode int

const (
	// AuthDisabled: no authentication; clients send no tokens.
	AuthDisabled AuthMode = iota
	// AuthExternal: an external OpenID provider at Auth.BaseURL.
	AuthExternal
	// AuthBuiltin: nsauth's own OpenID provider, served by the same
	// process; the default when no external provider is configured and
	// AUTH_ENABLED is not false.
	AuthBuiltin
)

func (m AuthMode) String() string {
	switch m {
	case AuthExternal:
		return "external"
	case AuthBuiltin:
		return "builtin"
	default:
		return "disabled"
	}
}

// Auth configures authentication.
type Auth struct {
	// Mode is derived from AUTH_ENABLED and AUTH_BASEURL.
	Mode AuthMode
	// BaseURL is the provider's issuer base URL (AUTH_BASEURL).
	BaseURL string
	// ExpectedIssuer is the `iss` tokens carry (AUTH_EXPECTED_ISS); defaults
	// to BaseURL.
	ExpectedIssuer string
	// Audiences are the accepted access-token audiences (AUTH_AUDIENCE).
	Audiences []string
	// ClientID is the OAuth client the broker acts as (AUTH_CLI_CLIENT_ID).
	ClientID string
	// ClientSecret is ClientID's secret from AUTH_CLIENTID_SECRET; empty for
	// a public client.
	ClientSecret string
	// CLIAudience is added to authorize URLs as `audience`
	// (AUTH_CLI_AUDIENCE).
	CLIAudience string
	// Algorithms is the signature algorithm allowlist
	// (AUTH_SIGNATURE_ALGORITHM). Default RS256.
	Algorithms []string
	// ClockSkew is the tolerance on token times. Default 60 s.
	ClockSkew time.Duration
	// AllowedRedirectURIs are accepted besides loopback URIs.
	AllowedRedirectURIs []string
	// AllowedScopes, when set, limits the scopes clients may request.
	AllowedScopes []string
	// RequirePKCE refuses logins without PKCE (S256): GetAuthorizeUrl
	// without a code challenge, LoginCli without a code verifier, and, with
	// the built-in provider, authorization requests without a challenge
	// (NSAUTH_REQUIRE_PKCE). Default false: Neosync's own CLI sends no PKCE,
	// and cannot log in when this is set.
	RequirePKCE bool
	// RequireAccessTokenType accepts only access tokens typed at+jwt
	// (RFC 9068). Set for the built-in provider, which types them.
	RequireAccessTokenType bool
	// TokenMode says how access tokens are checked: TokenModeJWT (default),
	// TokenModeIntrospection, or TokenModeJWTOrIntrospection.
	TokenMode TokenMode
	// IntrospectionURL is the RFC 7662 endpoint; empty means the one in the
	// discovery document.
	IntrospectionURL string
	// IntrospectionCacheTTL bounds how long an introspection result is
	// reused (never past the token's exp). Default 1 min.
	IntrospectionCacheTTL time.Duration
	// Builtin configures the built-in provider (Mode AuthBuiltin).
	Builtin Builtin
}

// TokenMode says how access tokens are checked.
type TokenMode string

// Token modes.
const (
	// TokenModeJWT verifies JWT access tokens against the provider's JWKS.
	TokenModeJWT TokenMode = "jwt"
	// TokenModeIntrospection asks the provider's introspection endpoint
	// (RFC 7662) about every (uncached) token: for opaque tokens.
	TokenModeIntrospection TokenMode = "introspection"
	// TokenModeJWTOrIntrospection verifies tokens shaped like JWTs and
	// introspects the others.
	TokenModeJWTOrIntrospection TokenMode = "jwt-or-introspection"
)

// Builtin configures the built-in OpenID provider.
type Builtin struct {
	// Issuer is the issuer URL (NSAUTH_ISSUER). Empty means derive it from
	// the address the server listens on (see [DeriveIssuer]).
	Issuer string
	// DataDir holds the SQLite database (NSAUTH_DATA_DIR). Defaults to
	// $XDG_DATA_HOME/nsauth (~/.local/share/nsauth), ~/Library/Application
	// Support/nsauth on macOS, %LOCALAPPDATA%\nsauth on Windows.
	DataDir string
	// DatabaseURL selects PostgreSQL instead of SQLite
	// (NSAUTH_DATABASE_URL).
	DatabaseURL string
	// AccessTokenTTL is the access and ID token lifetime. Default 15 min.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is a refresh token's lifetime. Default 30 days.
	RefreshTokenTTL time.Duration
	// RefreshTokenMaxLifetime is the longest a login's refresh tokens
	// last, however often they are used
	// (NSAUTH_REFRESH_TOKEN_MAX_LIFETIME). Default 90 days; never shorter
	// than RefreshTokenTTL.
	RefreshTokenMaxLifetime time.Duration
	// RefreshReuseGrace is how long a client may present a refresh token
	// it just used again, from the same address, and get the same new
	// one, when it lost the answer (NSAUTH_REFRESH_TOKEN_REUSE_GRACE); 0
	// means every reuse revokes. Default 30 s.
	RefreshReuseGrace time.Duration
	// KeyRotation is how often the signing key changes. Default 30 days.
	KeyRotation time.Duration
	// AdminUser names the administrator created at first start
	// (NSAUTH_ADMIN_USER). Default "admin".
	AdminUser string
	// AdminPassword is the administrator's first password
	// (NSAUTH_ADMIN_PASSWORD, environment only); empty means generate one.
	AdminPassword string
	// InsecureHTTPIssuer allows an http:// issuer on a non-loopback host.
	InsecureHTTPIssuer bool
	// LoginAttempts is how many failed logins one account, and one client
	// address, may make on the login page per minute. Default 5.
	LoginAttempts int
	// RequireSecondFactor is NSAUTH_MFA=required: every user needs a
	// second factor, and one who has none is taken through enrolment at
	// their next login. Default (NSAUTH_MFA=optional) false: a second
	// factor is asked for only from users who have one.
	RequireSecondFactor bool
	// AuthorizePerMinute is how many authorize requests one client address
	// may make per minute (NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE); 0
	// disables the limit. Default 60.
	AuthorizePerMinute float64
	// MachineTokensPerMinute is how many client-credentials token requests
	// one machine client may make per minute
	// (NSAUTH_MACHINE_TOKEN_RATE_LIMIT_PER_MINUTE), and
	// MachineTokensPerAddressPerMinute how many one client address may
	// (NSAUTH_MACHINE_TOKEN_ADDRESS_RATE_LIMIT_PER_MINUTE); 0 disables a
	// limit. Defaults 60 and 300.
	MachineTokensPerMinute           float64
	MachineTokensPerAddressPerMinute float64
	// ExchangePerMinute is how many token-exchange (keyless CI) requests
	// one client address may make per minute
	// (NSAUTH_TOKEN_EXCHANGE_RATE_LIMIT_PER_MINUTE), and
	// ExchangePerPolicyMinute how many tokens one federation policy may
	// yield (NSAUTH_TOKEN_EXCHANGE_POLICY_RATE_LIMIT_PER_MINUTE); 0
	// disables a limit. Defaults 30 and 120.
	ExchangePerMinute       float64
	ExchangePerPolicyMinute float64
	// SecretKeys seal the provider's secrets in its database
	// (NSAUTH_SECRET_KEY, NSAUTH_SECRET_KEY_FILE and their NSAUTH_OLD_
	// counterparts). Required with PostgreSQL.
	SecretKeys SecretKeys
	// AuditRetention is how long audit events are kept in the store
	// (NSAUTH_AUDIT_RETENTION). Default 2160h (90 days).
	AuditRetention time.Duration
	// AuditLog names where audit events are also written as JSON lines
	// (NSAUTH_AUDIT_LOG): "stdout", "stderr" or a file path (appended to,
	// created 0600). Empty means the store only.
	AuditLog string
	// AuditRequired makes a request fail when its audit event cannot be
	// recorded (NSAUTH_AUDIT_REQUIRED). Default false: the failure is
	// logged and counted.
	AuditRequired bool
	// AuditRefusalRowsPerMinute bounds the rows of refused unauthenticated
	// requests the audit trail starts a minute, per replica
	// (NSAUTH_AUDIT_REFUSAL_ROWS_PER_MINUTE); refusals past it are counted
	// in a dropped row. Default 1000 (audit.DefaultRefusalRowsPerMinute).
	AuditRefusalRowsPerMinute int
}

// setting is one configuration knob: a flag and the environment variables
// that feed it, in order of preference.
type setting struct {
	flag  string
	env   []string
	def   string
	usage string
}

func (s setting) name() string {
	if len(s.env) == 0 {
		return "--" + s.flag
	}
	if s.flag == "" {
		return s.env[0]
	}
	return s.env[0] + " (--" + s.flag + ")"
}

var (
	sListen          = setting{"listen", []string{"NSAUTH_LISTEN"}, "", "address to listen on (default 127.0.0.1:8080, or $HOST:$PORT)"}
	sHost            = setting{"", []string{"HOST"}, "127.0.0.1", ""}
	sPort            = setting{"", []string{"PORT"}, "8080", ""}
	sLogFormat       = setting{"log-format", []string{"NSAUTH_LOG_FORMAT"}, "text", "log format: text or json"}
	sLogLevel        = setting{"log-level", []string{"NSAUTH_LOG_LEVEL"}, "info", "log level: debug, info, warn or error"}
	sTLSCert         = setting{"tls-cert", []string{"NSAUTH_TLS_CERT"}, "", "TLS certificate file (PEM); enables TLS with --tls-key"}
	sTLSKey          = setting{"tls-key", []string{"NSAUTH_TLS_KEY"}, "", "TLS private key file (PEM)"}
	sHSTSMaxAge      = setting{"hsts-max-age", []string{"NSAUTH_HSTS_MAX_AGE"}, "8760h", "max-age of the Strict-Transport-Security header sent when serving TLS or under an https issuer: a duration or a number of seconds (0: no header)"}
	sMaxRequestBytes = setting{"max-request-bytes", []string{"NSAUTH_MAX_REQUEST_BYTES"}, "65536", "largest accepted request body, in bytes"}
	sShutdownTimeout = setting{"shutdown-timeout", []string{"NSAUTH_SHUTDOWN_TIMEOUT"}, "30s", "how long to drain in-flight calls on SIGINT/SIGTERM"}
	sAuthEnabled     = setting{"auth-enabled", []string{"AUTH_ENABLED"}, "", "enable authentication (true/false)"}
	sBaseURL         = setting{"auth-base-url", []string{"AUTH_BASEURL"}, "", "the OpenID provider's issuer base URL"}
	sExpectedIss     = setting{"auth-expected-iss", []string{"AUTH_EXPECTED_ISS"}, "", "the iss tokens carry, when it differs from --auth-base-url"}
	sAudience        = setting{"auth-audience", []string{"AUTH_AUDIENCE"}, "", "accepted access-token audiences, comma- or space-separated"}
	sClientID        = setting{"auth-cli-client-id", []string{"AUTH_CLI_CLIENT_ID"}, "", "the OAuth client id used for CLI logins"}
	sCLIAudience     = setting{"auth-cli-audience", []string{"AUTH_CLI_AUDIENCE"}, "", "audience parameter added to the authorize URL (Auth0 style)"}
	sClientSecrets   = setting{"", []string{"AUTH_CLIENTID_SECRET"}, "", ""} // secrets never come from argv
	sAlgorithms      = setting{"auth-signature-algorithm", []string{"AUTH_SIGNATURE_ALGORITHM"}, authn.DefaultAlgorithm, "accepted token signature algorithms, comma-separated"}
	sClockSkew       = setting{"auth-clock-skew", []string{"NSAUTH_CLOCK_SKEW"}, "60s", "tolerance on token exp/nbf/iat"}
	sRedirectURIs    = setting{"allowed-redirect-uri", []string{"NSAUTH_ALLOWED_REDIRECT_URIS"}, "", "non-loopback redirect URIs to accept, comma-separated"}
	sScopes          = setting{"allowed-scopes", []string{"NSAUTH_ALLOWED_SCOPES"}, "", "scopes clients may request, comma- or space-separated (default: any)"}
	sRequirePKCE     = setting{"require-pkce", []string{"NSAUTH_REQUIRE_PKCE"}, "false", "refuse logins without PKCE (S256); Neosync's own CLI sends none and cannot log in then"}
	sRateLimit       = setting{"rate-limit", []string{"NSAUTH_RATE_LIMIT_PER_MINUTE"}, "60", "LoginCli, RefreshCli, RevokeCli and StartDeviceLogin calls allowed per client address per minute (0: no limit)"}
	sDevicePollRate  = setting{"device-poll-rate-limit", []string{"NSAUTH_DEVICE_POLL_RATE_LIMIT_PER_MINUTE"}, "120", "PollDeviceLogin calls allowed per client address per minute, apart from --rate-limit (0: no limit)"}
	sTrustedProxies  = setting{"trusted-proxies", []string{"NSAUTH_TRUSTED_PROXIES"}, "", "reverse proxies (CIDRs or IPs, comma-separated) whose X-Forwarded-For names the client address; default none"}
	sPprof           = setting{"pprof", []string{"NSAUTH_PPROF"}, "false", "serve net/http/pprof under /debug/pprof/ (exposes internals: keep it off in production)"}
	sTokenMode       = setting{"token-mode", []string{"NSAUTH_TOKEN_MODE"}, string(TokenModeJWT), "how access tokens are checked: jwt, introspection (RFC 7662, for opaque tokens) or jwt-or-introspection"}
	sIntrospectURL   = setting{"introspection-url", []string{"NSAUTH_INTROSPECTION_URL"}, "", "token introspection endpoint (default: from the discovery document)"}
	sIntrospectTTL   = setting{"introspection-cache-ttl", []string{"NSAUTH_INTROSPECTION_CACHE_TTL"}, "1m", "longest reuse of an introspection result (never past the token's exp)"}

	sIssuer          = setting{"issuer", []string{"NSAUTH_ISSUER"}, "", "built-in provider: issuer URL, https unless on loopback (default: derived from the listen address)"}
	sDataDir         = setting{"data-dir", []string{"NSAUTH_DATA_DIR"}, "", "built-in provider: directory of its SQLite database (default: $XDG_DATA_HOME/nsauth)"}
	sDatabaseURL     = setting{"database-url", []string{"NSAUTH_DATABASE_URL"}, "", "built-in provider: PostgreSQL URL (postgres://…) to use instead of SQLite; prefer the variable, argv is visible to other users"}
	sAccessTTL       = setting{"access-token-ttl", []string{"NSAUTH_ACCESS_TOKEN_TTL"}, "15m", "built-in provider: access and ID token lifetime"}
	sRefreshTTL      = setting{"refresh-token-ttl", []string{"NSAUTH_REFRESH_TOKEN_TTL"}, "720h", "built-in provider: refresh token lifetime (renewed at every use, up to the maximum lifetime)"}
	sRefreshMax      = setting{"refresh-token-max-lifetime", []string{"NSAUTH_REFRESH_TOKEN_MAX_LIFETIME"}, "2160h", "built-in provider: longest a login's refresh tokens last, however often they are used"}
	sRefreshGrace    = setting{"refresh-token-reuse-grace", []string{"NSAUTH_REFRESH_TOKEN_REUSE_GRACE"}, "30s", "built-in provider: how long after a refresh the same client, from the same address, may retry with the old refresh token and get the same new one (0: every reuse revokes the login)"}
	sKeyRotation     = setting{"signing-key-rotation", []string{"NSAUTH_SIGNING_KEY_ROTATION"}, "720h", "built-in provider: how often a new signing key is introduced"}
	sAdminUser       = setting{"", []string{"NSAUTH_ADMIN_USER"}, "admin", ""}
	sAdminPassword   = setting{"", []string{"NSAUTH_ADMIN_PASSWORD"}, "", ""} // secrets never come from argv
	sLoginAttempts   = setting{"login-attempts", []string{"NSAUTH_LOGIN_ATTEMPTS_PER_MINUTE"}, "5", "built-in provider: failed logins allowed per account and per client address per minute"}
	sMFA             = setting{"mfa", []string{"NSAUTH_MFA"}, "optional", "built-in provider: second factor policy, optional (asked from users who have one) or required (users without one cannot sign in until they enrol through nsauth users enrol-link)"}
	sMachineRate     = setting{"machine-token-rate-limit", []string{"NSAUTH_MACHINE_TOKEN_RATE_LIMIT_PER_MINUTE"}, "60", "built-in provider: client-credentials token requests allowed per machine client per minute (0: no limit)"}
	sMachineAddrRate = setting{"machine-token-address-rate-limit", []string{"NSAUTH_MACHINE_TOKEN_ADDRESS_RATE_LIMIT_PER_MINUTE"}, "300", "built-in provider: client-credentials token requests allowed per client address per minute (0: no limit)"}
	sExchangeRate    = setting{"token-exchange-rate-limit", []string{"NSAUTH_TOKEN_EXCHANGE_RATE_LIMIT_PER_MINUTE"}, "30", "built-in provider: token-exchange (keyless CI) requests allowed per client address per minute (0: no limit)"}
	sExchangePolicy  = setting{"token-exchange-policy-rate-limit", []string{"NSAUTH_TOKEN_EXCHANGE_POLICY_RATE_LIMIT_PER_MINUTE"}, "120", "built-in provider: tokens one federation policy may yield per minute (0: no limit)"}
	sAuthorizeRate   = setting{"authorize-rate-limit", []string{"NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE"}, "60", "built-in provider: /authorize requests allowed per client address per minute (0: no limit)"}
	sAuditRetention  = setting{"audit-retention", []string{"NSAUTH_AUDIT_RETENTION"}, "2160h", "built-in provider: how long audit events are kept in the database"}
	sAuditLog        = setting{"audit-log", []string{"NSAUTH_AUDIT_LOG"}, "", "built-in provider: also write audit events as JSON lines to stdout, stderr or this file (appended, 0600)"}
	sAuditRequired   = setting{"audit-required", []string{"NSAUTH_AUDIT_REQUIRED"}, "false", "built-in provider: fail a request whose audit event cannot be recorded"}
	sAuditRefusals   = setting{"audit-refusal-rows", []string{"NSAUTH_AUDIT_REFUSAL_ROWS_PER_MINUTE"}, "1000", "built-in provider: most audit rows of refused unauthenticated requests (one per address, reason and minute) started per minute by each replica; refusals past it are counted in one dropped row"}
	sInsecureHTTP    = setting{"insecure-http-issuer", []string{"NSAUTH_INSECURE_HTTP_ISSUER"}, "false", "built-in provider: allow an http:// issuer on a non-loopback host (passwords and tokens travel unencrypted)"}
)

// Value kinds shown in help ("--rate-limit float"). A flag not in
// flagKinds takes a string.
const (
	kindBool     = "bool" // may be given alone to mean true
	kindDuration = "duration"
	kindInt      = "int"
	kindFloat    = "float"
	kindList     = "list" // comma- or space-separated
)

// flagKinds says what kind of value each typed flag takes.
var flagKinds = map[string]string{
	sAuthEnabled.flag:     kindBool,
	sPprof.flag:           kindBool,
	sInsecureHTTP.flag:    kindBool,
	sRequirePKCE.flag:     kindBool,
	sShutdownTimeout.flag: kindDuration,
	sHSTSMaxAge.flag:      kindDuration,
	sClockSkew.flag:       kindDuration,
	sIntrospectTTL.flag:   kindDuration,
	sAccessTTL.flag:       kindDuration,
	sRefreshTTL.flag:      kindDuration,
	sRefreshMax.flag:      kindDuration,
	sRefreshGrace.flag:    kindDuration,
	sKeyRotation.flag:     kindDuration,
	sAuditRetention.flag:  kindDuration,
	sAuditRequired.flag:   kindBool,
	sAuditRefusals.flag:   kindInt,
	sMaxRequestBytes.flag: kindInt,
	sLoginAttempts.flag:   kindInt,
	sRateLimit.flag:       kindFloat,
	sDevicePollRate.flag:  kindFloat,
	sExchangeRate.flag:    kindFloat,
	sExchangePolicy.flag:  kindFloat,
	sAudience.flag:        kindList,
	sAlgorithms.flag:      kindList,
	sRedirectURIs.flag:    kindList,
	sScopes.flag:          kindList,
	sTrustedProxies.flag:  kindList,
}

// textValue holds a flag's text as given, and names its kind for help.
// Parsing is left to Load, as for the environment: a bad value is then
// reported with the setting's variable and flag, and in the same words
// whichever way it came.
type textValue struct {
	text string
	kind string
}

func (v *textValue) String() string     { return v.text }
func (v *textValue) Set(s string) error { v.text = s; return nil }
func (v *textValue) Type() string       { return v.kind }

// flagged lists the settings that have a flag, in help order.
var flagged = []setting{
	sListen, sLogFormat, sLogLevel, sTLSCert, sTLSKey, sHSTSMaxAge, sMaxRequestBytes, sShutdownTimeout,
	sAuthEnabled, sBaseURL, sExpectedIss, sAudience, sClientID, sCLIAudience, sAlgorithms, sClockSkew,
	sRedirectURIs, sScopes, sRequirePKCE, sRateLimit, sDevicePollRate, sTrustedProxies, sPprof, sTokenMode, sIntrospectURL, sIntrospectTTL,
	sIssuer, sDataDir, sDatabaseURL, sAccessTTL, sRefreshTTL, sRefreshMax, sRefreshGrace, sKeyRotation, sLoginAttempts, sMFA, sAuthorizeRate, sInsecureHTTP,
	sMachineRate, sMachineAddrRate, sExchangeRate, sExchangePolicy, sSecretKeyFile, sOldSecretKeyFile,
	sAuditRetention, sAuditLog, sAuditRequired, sAuditRefusals,
}

// storeFlagged are the settings of commands that only open the built-in
// provider's store (`nsauth users`).
var storeFlagged = []setting{sDataDir, sDatabaseURL}

// RegisterFlags adds the server's flags to fs. Defaults shown in help are
// the built-in ones; environment variables apply when a flag is not set.
func RegisterFlags(fs *pflag.FlagSet) {
	registerFlags(fs, flagged)
}

// RegisterStoreFlags adds the flags that locate the built-in provider's
// store (--data-dir, --database-url) to fs.
func RegisterStoreFlags(fs *pflag.FlagSet) {
	registerFlags(fs, storeFlagged)
}

func registerFlags(fs *pflag.FlagSet, settings []setting) {
	for _, s := range settings {
		usage := s.usage
		if len(s.env) > 0 {
			usage += " [$" + strings.Join(s.env, ", $") + "]"
		}
		kind := flagKinds[s.flag]
		if kind == "" {
			kind = "string"
		}
		fs.Var(&textValue{text: s.def, kind: kind}, s.flag, usage)
		if kind == kindBool {
			// `--pprof` alone means true, as for any boolean flag.
			fs.Lookup(s.flag).NoOptDefVal = "true"
		}
	}
}

// source looks settings up: a set flag first, then the environment.
type source struct {
	fs     *pflag.FlagSet
	getenv func(string) (string, bool)
}

func (src source) get(s setting) (string, bool) {
	if s.flag != "" && src.fs != nil {
		if f := src.fs.Lookup(s.flag); f != nil && f.Changed {
			return f.Value.String(), true
		}
	}
	for _, e := range s.env {
		if v, ok := src.getenv(e); ok && v != "" {
			return v, true
		}
	}
	return s.def, false
}

func (src source) value(s setting) string {
	v, _ := src.get(s)
	return v
}

// Load reads and validates the server configuration. fs holds flags added
// by [RegisterFlags] (it may be nil); getenv looks up environment variables
// (os.LookupEnv in production).
func Load(fs *pflag.FlagSet, getenv func(string) (string, bool)) (*Server, error) {
	src := source{fs: fs, getenv: getenv}
	cfg := &Server{}
	var errs []error
	bad := func(s setting, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", s.name(), fmt.Sprintf(format, args...)))
	}

	if v, ok := src.get(sListen); ok {
		cfg.Listen = v
	} else {
		cfg.Listen = net.JoinHostPort(src.value(sHost), src.value(sPort))
	}
	listenSetting := sListen
	if _, set := src.get(sListen); !set {
		listenSetting = sPort
	}
	if _, port, err := net.SplitHostPort(cfg.Listen); err != nil {
		bad(listenSetting, "%q is not host:port", cfg.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		bad(listenSetting, "port %q is not a number from 0 to 65535", port)
	}

	switch v := src.value(sLogFormat); v {
	case "text", "json":
		cfg.LogFormat = v
	default:
		bad(sLogFormat, "%q is not text or json", v)
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(src.value(sLogLevel))); err != nil {
		bad(sLogLevel, "%q is not debug, info, warn or error", src.value(sLogLevel))
	}
	cfg.TLSCertFile, cfg.TLSKeyFile = src.value(sTLSCert), src.value(sTLSKey)
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		bad(sTLSCert, "--tls-cert and --tls-key must be given together")
	}
	if d, err := parseMaxAge(src.value(sHSTSMaxAge)); err != nil {
		bad(sHSTSMaxAge, "%q %v", src.value(sHSTSMaxAge), err)
	} else {
		cfg.HSTSMaxAge = d
	}
	if n, err := strconv.ParseInt(src.value(sMaxRequestBytes), 10, 64); err != nil || n < 1024 || n > 64<<20 {
		bad(sMaxRequestBytes, "%q is not a byte count from 1024 to 67108864", src.value(sMaxRequestBytes))
	} else {
		cfg.MaxRequestBytes = n
	}
	if d, err := time.ParseDuration(src.value(sShutdownTimeout)); err != nil || d < 0 {
		bad(sShutdownTimeout, "%q is not a duration such as 30s", src.value(sShutdownTimeout))
	} else {
		cfg.ShutdownTimeout = d
	}

	if n, err := strconv.ParseFloat(src.value(sRateLimit), 64); err != nil || n < 0 || n > 1e6 {
		bad(sRateLimit, "%q is not a number of calls per minute (0 for no limit)", src.value(sRateLimit))
	} else {
		cfg.RateLimitPerMinute = n
	}
	if n, err := strconv.ParseFloat(src.value(sDevicePollRate), 64); err != nil || n < 0 || n > 1e6 {
		bad(sDevicePollRate, "%q is not a number of calls per minute (0 for no limit)", src.value(sDevicePollRate))
	} else {
		cfg.DevicePollRateLimitPerMinute = n
	}
	if p, err := clientaddr.ParseTrusted(splitList(src.value(sTrustedProxies))); err != nil {
		bad(sTrustedProxies, "%v", err)
	} else {
		cfg.TrustedProxies = p
	}
	if v, err := strconv.ParseBool(src.value(sPprof)); err != nil {
		bad(sPprof, "%q is not true or false", src.value(sPprof))
	} else {
		cfg.Pprof = v
	}

	loadAuth(src, &cfg.Auth, bad)
	requireReachableIssuer(cfg, bad)
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	return cfg, nil
}

func loadAuth(src source, a *Auth, bad func(setting, string, ...any)) {
	enabled, enabledSet := src.get(sAuthEnabled)
	var on bool
	if enabledSet {
		b, err := strconv.ParseBool(enabled)
		if err != nil {
			bad(sAuthEnabled, "%q is not true or false", enabled)
			return
		}
		on = b
	}
	a.BaseURL = src.value(sBaseURL)
	switch {
	case enabledSet && !on:
		a.Mode = AuthDisabled
		return
	case a.BaseURL != "":
		a.Mode = AuthExternal
		loadBrokerPolicy(src, a, bad)
	default:
		// No external provider: nsauth provides one itself.
		a.Mode = AuthBuiltin
		loadBrokerPolicy(src, a, bad)
		loadBuiltin(src, a, bad)
		return
	}

	if err := checkHTTPURL(a.BaseURL); err != nil {
		bad(sBaseURL, "%q %v", a.BaseURL, err)
	}
	a.ExpectedIssuer = src.value(sExpectedIss)
	if a.ExpectedIssuer == "" {
		a.ExpectedIssuer = a.BaseURL
	} else if err := checkHTTPURL(a.ExpectedIssuer); err != nil {
		bad(sExpectedIss, "%q %v", a.ExpectedIssuer, err)
	}
	a.Audiences = splitList(src.value(sAudience))
	if len(a.Audiences) == 0 {
		bad(sAudience, "at least one accepted audience is required when authentication is enabled")
	}
	a.ClientID = src.value(sClientID)
	if a.ClientID == "" {
		bad(sClientID, "is required when authentication is enabled")
	}
	a.CLIAudience = src.value(sCLIAudience)
	if raw := src.value(sClientSecrets); raw != "" {
		var secrets map[string]string
		if err := json.Unmarshal([]byte(raw), &secrets); err != nil {
			// The value holds secrets: describe the problem, never the text.
			bad(sClientSecrets, `must be a JSON object mapping client id to client secret, such as {"my-client":"…"}`)
		} else {
			a.ClientSecret = secrets[a.ClientID]
		}
	}
	a.Algorithms = splitList(src.value(sAlgorithms))
	for _, alg := range a.Algorithms {
		if !slices.Contains(authn.SupportedAlgorithms(), alg) {
			bad(sAlgorithms, "%q is not allowed; use one or more of %s", alg, strings.Join(authn.SupportedAlgorithms(), ", "))
		}
	}
}

// loadBrokerPolicy reads what the AuthService enforces whichever provider
// is behind it: how tokens are checked, clock skew, redirect URI and scope
// allowlists, PKCE.
func loadBrokerPolicy(src source, a *Auth, bad func(setting, string, ...any)) {
	switch m := TokenMode(src.value(sTokenMode)); m {
	case TokenModeJWT, TokenModeIntrospection, TokenModeJWTOrIntrospection:
		a.TokenMode = m
	default:
		bad(sTokenMode, "%q is not jwt, introspection or jwt-or-introspection", m)
	}
	if a.IntrospectionURL = src.value(sIntrospectURL); a.IntrospectionURL != "" {
		if err := checkHTTPURL(a.IntrospectionURL); err != nil {
			bad(sIntrospectURL, "%q %v", a.IntrospectionURL, err)
		}
	}
	if d, err := time.ParseDuration(src.value(sIntrospectTTL)); err != nil || d < 0 || d > time.Hour {
		bad(sIntrospectTTL, "%q is not a duration from 0s to 1h", src.value(sIntrospectTTL))
	} else {
		a.IntrospectionCacheTTL = d
	}
	if d, err := time.ParseDuration(src.value(sClockSkew)); err != nil || d < 0 || d > 10*time.Minute {
		bad(sClockSkew, "%q is not a duration from 0s to 10m", src.value(sClockSkew))
	} else {
		a.ClockSkew = d
	}
	a.AllowedRedirectURIs = splitList(src.value(sRedirectURIs))
	for _, u := range a.AllowedRedirectURIs {
		if err := checkHTTPURL(u); err != nil {
			bad(sRedirectURIs, "%q %v", u, err)
		}
	}
	a.AllowedScopes = splitList(src.value(sScopes))
	if v, err := strconv.ParseBool(src.value(sRequirePKCE)); err != nil {
		bad(sRequirePKCE, "%q is not true or false", src.value(sRequirePKCE))
	} else {
		a.RequirePKCE = v
	}
}

// maxHSTSMaxAge bounds the HSTS max-age: two years is what browsers'
// preload lists ask for; more only makes a mistake last longer.
const maxHSTSMaxAge = 2 * 8760 * time.Hour

// parseMaxAge reads an HSTS max-age: a duration ("8760h") or, as the
// header counts it, a number of seconds ("31536000"), from 0 to two years,
// in whole seconds.
func parseMaxAge(v string) (time.Duration, error) {
	outOfRange := errors.New("is not from 0 to two years (17520h)")
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > int64(maxHSTSMaxAge/time.Second) {
			return 0, outOfRange
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(v); err != nil {
		return 0, errors.New("is not a duration (8760h) or a number of seconds (31536000)")
	}
	switch {
	case d < 0 || d > maxHSTSMaxAge:
		return 0, outOfRange
	case d%time.Second != 0:
		return 0, errors.New("is not a whole number of seconds")
	}
	return d, nil
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("is not an absolute http(s) URL")
	}
	if u.User != nil || u.Fragment != "" {
		return errors.New("must not contain user info or a fragment")
	}
	return nil
}

// splitList splits a comma- and/or space-separated list.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}
