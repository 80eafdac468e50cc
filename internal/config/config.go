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

// Server is the validated configuration of `nsauth serve`. Each field's
// variable, flag, default and accepted values are in the table of
// settings (settings.go), and in docs/configuration.md, generated from it.
type Server struct {
	// Listen is the host:port to serve on.
	Listen string
	// LogFormat is "text" or "json".
	LogFormat string
	// LogLevel is the minimum level logged.
	LogLevel slog.Level
	// TLSCertFile and TLSKeyFile enable TLS when both are set.
	TLSCertFile, TLSKeyFile string
	// HSTSMaxAge is the max-age of the Strict-Transport-Security header
	// sent on every response when the server serves TLS or its built-in
	// provider's issuer is https (NSAUTH_HSTS_MAX_AGE, --hsts-max-age);
	// 0 sends none. Whole seconds.
	HSTSMaxAge time.Duration
	// MaxRequestBytes caps request bodies.
	MaxRequestBytes int64
	// ShutdownTimeout bounds the graceful drain on SIGINT/SIGTERM.
	ShutdownTimeout time.Duration
	// RateLimitPerMinute is how many LoginCli, RefreshCli, RevokeCli and
	// StartDeviceLogin calls one client address may make a minute; 0 disables the limit.
	RateLimitPerMinute float64
	// DevicePollRateLimitPerMinute is how many PollDeviceLogin calls one
	// client address may make a minute, apart from RateLimitPerMinute: a
	// device login polls every 5 s for up to its codes' lifetime. 0
	// disables the limit.
	DevicePollRateLimitPerMinute float64
	// Pprof serves net/http/pprof under /debug/pprof/.
	Pprof bool
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// finding a client's address (for rate limits and login counters).
	// None: the TCP peer is the client.
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
	// (AUTH_SIGNATURE_ALGORITHM).
	Algorithms []string
	// ClockSkew is the tolerance on token times.
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
	// reused (never past the token's exp).
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
	// AccessTokenTTL is the access and ID token lifetime.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is a refresh token's lifetime.
	RefreshTokenTTL time.Duration
	// RefreshTokenMaxLifetime is the longest a login's refresh tokens
	// last, however often they are used
	// (NSAUTH_REFRESH_TOKEN_MAX_LIFETIME); never shorter than
	// RefreshTokenTTL.
	RefreshTokenMaxLifetime time.Duration
	// RefreshReuseGrace is how long a client may present a refresh token
	// it just used again, from the same address, and get the same new
	// one, when it lost the answer (NSAUTH_REFRESH_TOKEN_REUSE_GRACE); 0
	// means every reuse revokes.
	RefreshReuseGrace time.Duration
	// KeyRotation is how often the signing key changes.
	KeyRotation time.Duration
	// SigningAlgorithm is what new signing keys are
	// (NSAUTH_SIGNING_ALGORITHM): one of [BuiltinSigningAlgorithms].
	SigningAlgorithm string
	// SessionIdleTimeout ends a browser session not used for that long
	// (NSAUTH_SESSION_IDLE_TIMEOUT); SessionLifetime ends it that long
	// after its sign-in (NSAUTH_SESSION_LIFETIME).
	SessionIdleTimeout time.Duration
	SessionLifetime    time.Duration
	// LinkTTL is how long a one-time link (invite, reset) stays valid
	// unless its command says otherwise (NSAUTH_LINK_TTL).
	LinkTTL time.Duration
	// AdminUser names the administrator created at first start
	// (NSAUTH_ADMIN_USER).
	AdminUser string
	// AdminPassword is the administrator's first password
	// (NSAUTH_ADMIN_PASSWORD, environment only); empty means generate one.
	AdminPassword string
	// InsecureHTTPIssuer allows an http:// issuer on a non-loopback host.
	InsecureHTTPIssuer bool
	// LoginAttempts is how many failed logins one account, and one client
	// address, may make on the login page per minute.
	LoginAttempts int
	// RequireSecondFactor is NSAUTH_MFA=required: every user needs a
	// second factor, and one who has none is taken through enrolment at
	// their next login. Default (NSAUTH_MFA=optional) false: a second
	// factor is asked for only from users who have one.
	RequireSecondFactor bool
	// NoPasswordLogin is NSAUTH_PASSWORD_LOGIN=false: the login page does
	// not take nsauth passwords, only the connectors' sign-ins. Default
	// false (passwords are taken).
	NoPasswordLogin bool
	// AuthorizePerMinute is how many authorize requests one client address
	// may make per minute (NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE); 0
	// disables the limit.
	AuthorizePerMinute float64
	// MachineTokensPerMinute is how many client-credentials token requests
	// one machine client may make per minute
	// (NSAUTH_MACHINE_TOKEN_RATE_LIMIT_PER_MINUTE), and
	// MachineTokensPerAddressPerMinute how many one client address may
	// (NSAUTH_MACHINE_TOKEN_ADDRESS_RATE_LIMIT_PER_MINUTE); 0 disables a
	// limit.
	MachineTokensPerMinute           float64
	MachineTokensPerAddressPerMinute float64
	// ExchangePerMinute is how many token-exchange (keyless CI) requests
	// one client address may make per minute
	// (NSAUTH_TOKEN_EXCHANGE_RATE_LIMIT_PER_MINUTE), and
	// ExchangePerPolicyMinute how many tokens one federation policy may
	// yield (NSAUTH_TOKEN_EXCHANGE_POLICY_RATE_LIMIT_PER_MINUTE); 0
	// disables a limit.
	ExchangePerMinute       float64
	ExchangePerPolicyMinute float64
	// SecretKeys seal the provider's secrets in its database
	// (NSAUTH_SECRET_KEY, NSAUTH_SECRET_KEY_FILE and their NSAUTH_OLD_
	// counterparts). Required with PostgreSQL.
	SecretKeys SecretKeys
	// AuditRetention is how long audit events are kept in the store
	// (NSAUTH_AUDIT_RETENTION).
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
	// in a dropped row.
	AuditRefusalRowsPerMinute int
}

// textValue holds a flag's text as given, and names its kind for help.
// Parsing is left to Load, as for the environment: a bad value is then
// reported with the setting's variable and flag, and in the same words
// whichever way it came.
type textValue struct {
	text string
	kind Kind
}

func (v *textValue) String() string     { return v.text }
func (v *textValue) Set(s string) error { v.text = s; return nil }
func (v *textValue) Type() string       { return string(v.kind) }

// storeFlagged are the settings of commands that only open the built-in
// provider's store (`nsauth users`).
var storeFlagged = []*Setting{sDataDir, sDatabaseURL}

// RegisterFlags adds the server's flags, every setting that has one, to
// fs. Defaults shown in help are the built-in ones; environment variables
// apply when a flag is not set.
func RegisterFlags(fs *pflag.FlagSet) {
	registerFlags(fs, settings)
}

// RegisterStoreFlags adds the flags that locate the built-in provider's
// store (--data-dir, --database-url) to fs.
func RegisterStoreFlags(fs *pflag.FlagSet) {
	registerFlags(fs, storeFlagged)
}

func registerFlags(fs *pflag.FlagSet, settings []*Setting) {
	for _, s := range settings {
		if s.Flag == "" {
			continue
		}
		usage := s.Usage
		if len(s.Env) > 0 {
			usage += " [$" + strings.Join(s.Env, ", $") + "]"
		}
		fs.Var(&textValue{text: s.Default, kind: s.Kind()}, s.Flag, usage)
		if s.Kind() == KindBool {
			// `--pprof` alone means true, as for any boolean flag.
			fs.Lookup(s.Flag).NoOptDefVal = "true"
		}
	}
}

// source looks settings up: a set flag first, then the environment.
type source struct {
	fs     *pflag.FlagSet
	getenv func(string) (string, bool)
}

func (src source) get(s *Setting) (string, bool) {
	if s.Flag != "" && src.fs != nil {
		if f := src.fs.Lookup(s.Flag); f != nil && f.Changed {
			return f.Value.String(), true
		}
	}
	for _, e := range s.Env {
		if v, ok := src.getenv(e); ok && v != "" {
			return v, true
		}
	}
	return s.Default, false
}

func (src source) value(s *Setting) string {
	v, _ := src.get(s)
	return v
}

// badFunc reports a refused value of a setting.
type badFunc func(s *Setting, format string, args ...any)

// collect returns a badFunc that gathers refusals, and a function that
// joins them into Load's error, nil when there were none.
func collect() (badFunc, func() error) {
	var errs []error
	bad := func(s *Setting, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", s.Name(), fmt.Sprintf(format, args...)))
	}
	return bad, func() error {
		if len(errs) == 0 {
			return nil
		}
		return fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
}

// Load reads and validates the server configuration. fs holds flags added
// by [RegisterFlags] (it may be nil); getenv looks up environment variables
// (os.LookupEnv in production).
func Load(fs *pflag.FlagSet, getenv func(string) (string, bool)) (*Server, error) {
	src := source{fs: fs, getenv: getenv}
	cfg := &Server{}
	bad, result := collect()

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

	cfg.LogFormat, _ = read[string](src, sLogFormat, bad)
	cfg.LogLevel, _ = read[slog.Level](src, sLogLevel, bad)
	cfg.TLSCertFile, cfg.TLSKeyFile = src.value(sTLSCert), src.value(sTLSKey)
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		bad(sTLSCert, "--tls-cert and --tls-key must be given together")
	}
	cfg.HSTSMaxAge, _ = read[time.Duration](src, sHSTSMaxAge, bad)
	cfg.MaxRequestBytes, _ = read[int64](src, sMaxRequestBytes, bad)
	cfg.ShutdownTimeout, _ = read[time.Duration](src, sShutdownTimeout, bad)
	cfg.RateLimitPerMinute, _ = read[float64](src, sRateLimit, bad)
	cfg.DevicePollRateLimitPerMinute, _ = read[float64](src, sDevicePollRate, bad)
	if p, err := clientaddr.ParseTrusted(splitList(src.value(sTrustedProxies))); err != nil {
		bad(sTrustedProxies, "%v", err)
	} else {
		cfg.TrustedProxies = p
	}
	cfg.Pprof, _ = read[bool](src, sPprof, bad)

	loadAuth(src, &cfg.Auth, bad)
	requireReachableIssuer(cfg, bad)
	if err := result(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func loadAuth(src source, a *Auth, bad badFunc) {
	_, enabledSet := src.get(sAuthEnabled)
	var on bool
	if enabledSet {
		b, ok := read[bool](src, sAuthEnabled, bad)
		if !ok {
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
func loadBrokerPolicy(src source, a *Auth, bad badFunc) {
	if m, ok := read[string](src, sTokenMode, bad); ok {
		a.TokenMode = TokenMode(m)
	}
	if a.IntrospectionURL = src.value(sIntrospectURL); a.IntrospectionURL != "" {
		if err := checkHTTPURL(a.IntrospectionURL); err != nil {
			bad(sIntrospectURL, "%q %v", a.IntrospectionURL, err)
		}
	}
	a.IntrospectionCacheTTL, _ = read[time.Duration](src, sIntrospectTTL, bad)
	a.ClockSkew, _ = read[time.Duration](src, sClockSkew, bad)
	a.AllowedRedirectURIs = splitList(src.value(sRedirectURIs))
	for _, u := range a.AllowedRedirectURIs {
		if err := checkHTTPURL(u); err != nil {
			bad(sRedirectURIs, "%q %v", u, err)
		}
	}
	a.AllowedScopes = splitList(src.value(sScopes))
	a.RequirePKCE, _ = read[bool](src, sRequirePKCE, bad)
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
