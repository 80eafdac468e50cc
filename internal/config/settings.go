package config

//go:generate go run ../tools/configdoc -o ../../docs/configuration.md

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/pkg/authn"
)

// The table below is the one place a setting's flag, variables, default,
// accepted values and description are written. Flags are registered from
// it, Load reads and checks values through it, and
// internal/tools/configdoc writes docs/configuration.md from it
// (`go generate ./internal/config`; CI checks the file is fresh).

// Defaults that other packages also apply to a zero value of their own
// configuration (issuer.Config, store.Options): written here once, shown
// in the table as text.
const (
	DefaultAccessTokenTTL                   = 15 * time.Minute
	DefaultRefreshTokenTTL                  = 30 * 24 * time.Hour
	DefaultRefreshTokenMaxLifetime          = 90 * 24 * time.Hour
	DefaultRefreshReuseGrace                = 30 * time.Second
	DefaultKeyRotation                      = 30 * 24 * time.Hour
	DefaultLoginAttempts                    = 5
	DefaultAuthorizePerMinute               = 60
	DefaultMachineTokensPerMinute           = 60
	DefaultMachineTokensPerAddressPerMinute = 300
	DefaultExchangePerMinute                = 30
	DefaultExchangePerPolicyMinute          = 120
	DefaultAuditRetention                   = 90 * 24 * time.Hour
	DefaultSessionIdleTimeout               = 12 * time.Hour
	DefaultSessionLifetime                  = 7 * 24 * time.Hour
	DefaultLinkTTL                          = 24 * time.Hour
)

// MaxClockSkew bounds NSAUTH_CLOCK_SKEW, how long past its expiry a
// token is still accepted. The store keeps a revocation that long past
// its token's expiry, so that a revoked token is refused for as long as
// any verifier may accept it.
const MaxClockSkew = 10 * time.Minute

// BuiltinSigningAlgorithms are the algorithms the built-in provider signs
// with (NSAUTH_SIGNING_ALGORITHM), the default first: RS256, what every
// client accepts (OpenID Connect Core §15.1 makes it the one a provider
// must offer); ES256 (P-256) and EdDSA (Ed25519), whose signatures cost a
// fraction of RSA's.
var BuiltinSigningAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// Kind is the type of value a setting takes, as flag help names it.
type Kind string

// Kinds of value.
const (
	KindString   Kind = "string"
	KindBool     Kind = "bool" // a flag given alone means true
	KindInt      Kind = "int"
	KindFloat    Kind = "float"
	KindDuration Kind = "duration"
	KindList     Kind = "list" // comma- or space-separated
)

// Group is the part of the documentation a setting is listed in.
type Group string

// Groups, in the documentation's order.
const (
	GroupServer     Group = "Server"
	GroupTokens     Group = "Tokens and logins, whichever provider"
	GroupExternal   Group = "External provider"
	GroupBuiltin    Group = "Built-in provider"
	GroupSecretKeys Group = "Built-in provider: secret keys"
	GroupAudit      Group = "Built-in provider: audit trail"
)

// Groups lists the groups in the documentation's order.
func Groups() []Group {
	return []Group{GroupServer, GroupTokens, GroupExternal, GroupBuiltin, GroupSecretKeys, GroupAudit}
}

// Setting is one configuration knob: its flag, the environment variables
// that feed it, its default, what it accepts and what it does.
type Setting struct {
	// Flag is the flag's name without "--"; empty for a setting read from
	// the environment only (secrets never come from argv).
	Flag string
	// Env are its variables, in order of preference.
	Env []string
	// Default is the value used when neither the flag nor a variable is
	// set, written as it would be in the environment; empty for none.
	Default string
	// DefaultDoc, when set, is how the documentation states a default that
	// is not one fixed value (markdown).
	DefaultDoc string
	// Usage is the flag's help.
	Usage string
	// Doc is its description in the documentation (markdown); Usage when
	// empty.
	Doc string
	// Group is the part of the documentation it belongs to.
	Group Group

	rule rule
}

// Kind is the type of value s takes.
func (s *Setting) Kind() Kind { return s.rule.kind }

// Accepts describes the values s accepts, for the documentation
// (markdown); empty when any text is accepted.
func (s *Setting) Accepts() string { return s.rule.accepts }

// Name names s in messages: its first variable and its flag.
func (s *Setting) Name() string {
	if len(s.Env) == 0 {
		return "--" + s.Flag
	}
	if s.Flag == "" {
		return s.Env[0]
	}
	return s.Env[0] + " (--" + s.Flag + ")"
}

// Settings returns a copy of every setting, in the documentation's order.
func Settings() []Setting {
	out := make([]Setting, len(settings))
	for i, s := range settings {
		out[i] = *s
		out[i].Env = append([]string(nil), s.Env...)
	}
	return out
}

// rule is what a setting accepts: its kind, how a value is checked and
// converted, and how the documentation describes it.
type rule struct {
	kind    Kind
	accepts string
	// parse checks and converts a value; its error follows the quoted
	// value in the message. nil: any text, kept as it is.
	parse func(string) (any, error)
}

func text(accepts string) rule { return rule{kind: KindString, accepts: accepts} }

func list(accepts string) rule { return rule{kind: KindList, accepts: accepts} }

func boolean() rule {
	return rule{kind: KindBool, accepts: "`true` or `false`", parse: func(v string) (any, error) {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, errors.New("is not true or false")
		}
		return b, nil
	}}
}

// oneOf accepts one of values, exactly.
func oneOf(values ...string) rule {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = "`" + v + "`"
	}
	return rule{kind: KindString, accepts: orList(quoted), parse: func(v string) (any, error) {
		for _, ok := range values {
			if v == ok {
				return v, nil
			}
		}
		return nil, errors.New("is not " + orList(values))
	}}
}

// logLevel accepts what slog.Level reads.
func logLevel() rule {
	return rule{kind: KindString, accepts: "`debug`, `info`, `warn` or `error`", parse: func(v string) (any, error) {
		var l slog.Level
		if err := l.UnmarshalText([]byte(v)); err != nil {
			return nil, errors.New("is not debug, info, warn or error")
		}
		return l, nil
	}}
}

// durationIn accepts a duration from min to max. refusal is the error's
// text; empty means "is not a duration from MIN to MAX".
func durationIn(min, max time.Duration, refusal string) rule {
	if refusal == "" {
		refusal = fmt.Sprintf("is not a duration from %s to %s", min, max)
	}
	accepts := fmt.Sprintf("a duration from `%s` to `%s`", shortDuration(min), shortDuration(max))
	if max == math.MaxInt64 {
		accepts = fmt.Sprintf("a duration, `%s` or more", shortDuration(min))
	}
	return rule{kind: KindDuration, accepts: accepts, parse: func(v string) (any, error) {
		d, err := time.ParseDuration(v)
		if err != nil || d < min || d > max {
			return nil, errors.New(refusal)
		}
		return d, nil
	}}
}

// integerIn accepts a whole number from min to max; what names it in
// the refusal ("a number", "a byte count").
func integerIn(min, max int64, what string) rule {
	return rule{kind: KindInt, accepts: fmt.Sprintf("a whole number from `%d` to `%d`", min, max), parse: func(v string) (any, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < min || n > max {
			return nil, fmt.Errorf("is not %s from %d to %d", what, min, max)
		}
		return n, nil
	}}
}

// maxPerMinute is the largest rate limit accepted.
const maxPerMinute = 1e6

// perMinute accepts a rate from 0 (no limit) to maxPerMinute; refusal is
// the error's text.
func perMinute(refusal string) rule {
	return rule{kind: KindFloat, accepts: "a number from `0` (no limit) to `1000000`", parse: func(v string) (any, error) {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || !(n >= 0 && n <= maxPerMinute) {
			return nil, errors.New(refusal)
		}
		return n, nil
	}}
}

func hstsMaxAge() rule {
	return rule{kind: KindDuration, accepts: "a duration or a number of seconds, whole seconds, from `0` to `17520h` (two years)",
		parse: func(v string) (any, error) { return parseMaxAge(v) }}
}

const (
	callsRefusal    = "is not a number of calls per minute (0 for no limit)"
	requestsRefusal = "is not a number of requests per minute from 0 to 1000000 (0 for no limit)"
)

var (
	// Server.
	sListen = &Setting{Flag: "listen", Env: []string{"NSAUTH_LISTEN"}, Group: GroupServer, rule: text("`host:port`"),
		DefaultDoc: "`127.0.0.1:8080`, or `$HOST:$PORT`",
		Usage:      "address to listen on (default 127.0.0.1:8080, or $HOST:$PORT)",
		Doc:        "where to listen; `:0` picks a free port"}
	sHost = &Setting{Env: []string{"HOST"}, Default: "127.0.0.1", Group: GroupServer, rule: text(""),
		Doc: "the host to listen on when `NSAUTH_LISTEN` is not set (Neosync's name)"}
	sPort = &Setting{Env: []string{"PORT"}, Default: "8080", Group: GroupServer, rule: text("a port from `0` to `65535`"),
		Doc: "the port to listen on when `NSAUTH_LISTEN` is not set (Neosync's name)"}
	sLogFormat = &Setting{Flag: "log-format", Env: []string{"NSAUTH_LOG_FORMAT"}, Default: "text", Group: GroupServer, rule: oneOf("text", "json"),
		Usage: "log format: text or json"}
	sLogLevel = &Setting{Flag: "log-level", Env: []string{"NSAUTH_LOG_LEVEL"}, Default: "info", Group: GroupServer, rule: logLevel(),
		Usage: "log level: debug, info, warn or error"}
	sTLSCert = &Setting{Flag: "tls-cert", Env: []string{"NSAUTH_TLS_CERT"}, Group: GroupServer, rule: text("a file"),
		Usage: "TLS certificate file (PEM); enables TLS with --tls-key",
		Doc:   "TLS certificate file (PEM): with `--tls-key`, serve TLS (HTTP/2 by ALPN) instead of HTTP/1.1 + h2c"}
	sTLSKey = &Setting{Flag: "tls-key", Env: []string{"NSAUTH_TLS_KEY"}, Group: GroupServer, rule: text("a file"),
		Usage: "TLS private key file (PEM)",
		Doc:   "TLS private key file (PEM); given together with `--tls-cert`"}
	sHSTSMaxAge = &Setting{Flag: "hsts-max-age", Env: []string{"NSAUTH_HSTS_MAX_AGE"}, Default: "8760h", Group: GroupServer, rule: hstsMaxAge(),
		DefaultDoc: "`8760h` (one year)",
		Usage:      "max-age of the Strict-Transport-Security header sent when serving TLS or under an https issuer: a duration or a number of seconds (0: no header)",
		Doc: "`max-age` of the `Strict-Transport-Security` header sent on every response (RPCs, the provider's pages, health, metrics) " +
			"when the server serves TLS or the built-in provider's issuer is https (behind a TLS-terminating proxy); `0`: no header. " +
			"Browsers that saw it refuse plain http to the host until it expires, so lower it before moving a host off https. " +
			"Behind a proxy in front of an external provider, set the header at the proxy"}
	sMaxRequestBytes = &Setting{Flag: "max-request-bytes", Env: []string{"NSAUTH_MAX_REQUEST_BYTES"}, Default: "65536", Group: GroupServer,
		rule:  integerIn(1024, 64<<20, "a byte count"),
		Usage: "largest accepted request body, in bytes"}
	sShutdownTimeout = &Setting{Flag: "shutdown-timeout", Env: []string{"NSAUTH_SHUTDOWN_TIMEOUT"}, Default: "30s", Group: GroupServer,
		rule:  durationIn(0, math.MaxInt64, "is not a duration such as 30s"),
		Usage: "how long to drain in-flight calls on SIGINT/SIGTERM"}
	sPprof = &Setting{Flag: "pprof", Env: []string{"NSAUTH_PPROF"}, Default: "false", Group: GroupServer, rule: boolean(),
		Usage: "serve net/http/pprof under /debug/pprof/ (exposes internals: keep it off in production)"}
	sTrustedProxies = &Setting{Flag: "trusted-proxies", Env: []string{"NSAUTH_TRUSTED_PROXIES"}, Group: GroupServer,
		rule: list("CIDRs or addresses, comma-separated"), DefaultDoc: "none",
		Usage: "reverse proxies (CIDRs or IPs, comma-separated) whose X-Forwarded-For names the client address; default none",
		Doc: "reverse proxies whose `X-Forwarded-For` names the client: the rightmost address in it that is not a trusted proxy. " +
			"Used by every per-address limit. Unset, the TCP peer is the client and the header is ignored; behind a proxy, set it, " +
			"or every user shares the proxy's limits"}
	sRateLimit = &Setting{Flag: "rate-limit", Env: []string{"NSAUTH_RATE_LIMIT_PER_MINUTE"}, Default: "60", Group: GroupServer, rule: perMinute(callsRefusal),
		Usage: "LoginCli, RefreshCli, RevokeCli and StartDeviceLogin calls allowed per client address per minute (0: no limit)",
		Doc: "`LoginCli`, `RefreshCli`, `RevokeCli`, `StartDeviceLogin` calls per client address per minute (`0`: no limit); " +
			"over it, `ResourceExhausted` (HTTP 429) with `Retry-After`"}
	sDevicePollRate = &Setting{Flag: "device-poll-rate-limit", Env: []string{"NSAUTH_DEVICE_POLL_RATE_LIMIT_PER_MINUTE"}, Default: "120", Group: GroupServer,
		rule:  perMinute(callsRefusal),
		Usage: "PollDeviceLogin calls allowed per client address per minute, apart from --rate-limit (0: no limit)",
		Doc: "`PollDeviceLogin` calls per client address per minute, a budget of its own (a device login polls every 5 s for up to " +
			"its code's lifetime: 120 lets ten run at once from one address); `0`: no limit. Each device code must also keep its " +
			"polling interval: a poll that comes sooner is answered `slow_down` without asking the provider"}

	// Tokens and logins, whichever provider.
	sAuthEnabled = &Setting{Flag: "auth-enabled", Env: []string{"AUTH_ENABLED"}, Group: GroupTokens, rule: boolean(), DefaultDoc: "on",
		Usage: "enable authentication (true/false)",
		Doc:   "`false` turns authentication off: clients send no tokens"}
	sTokenMode = &Setting{Flag: "token-mode", Env: []string{"NSAUTH_TOKEN_MODE"}, Default: string(TokenModeJWT), Group: GroupTokens,
		rule:  oneOf(string(TokenModeJWT), string(TokenModeIntrospection), string(TokenModeJWTOrIntrospection)),
		Usage: "how access tokens are checked: jwt, introspection (RFC 7662, for opaque tokens) or jwt-or-introspection",
		Doc:   "how access tokens are checked: `jwt`, `introspection` (RFC 7662, for opaque tokens) or `jwt-or-introspection`"}
	sIntrospectURL = &Setting{Flag: "introspection-url", Env: []string{"NSAUTH_INTROSPECTION_URL"}, Group: GroupTokens,
		rule: text("an absolute http(s) URL"), DefaultDoc: "from discovery",
		Usage: "token introspection endpoint (default: from the discovery document)"}
	sIntrospectTTL = &Setting{Flag: "introspection-cache-ttl", Env: []string{"NSAUTH_INTROSPECTION_CACHE_TTL"}, Default: "1m", Group: GroupTokens,
		rule:  durationIn(0, time.Hour, "is not a duration from 0s to 1h"),
		Usage: "longest reuse of an introspection result (never past the token's exp)",
		Doc:   "longest reuse of an introspection answer (never past the token's `exp`; `0s`: none)"}
	sClockSkew = &Setting{Flag: "auth-clock-skew", Env: []string{"NSAUTH_CLOCK_SKEW"}, Default: "60s", Group: GroupTokens,
		rule:  durationIn(0, MaxClockSkew, "is not a duration from 0s to 10m"),
		Usage: "tolerance on token exp/nbf/iat",
		Doc:   "tolerance on `exp`/`nbf`/`iat`"}
	sRedirectURIs = &Setting{Flag: "allowed-redirect-uri", Env: []string{"NSAUTH_ALLOWED_REDIRECT_URIS"}, Group: GroupTokens,
		rule:  list("absolute http(s) URLs, comma-separated"),
		Usage: "non-loopback redirect URIs nsauth-cli may use, comma-separated",
		Doc:   "non-loopback redirect URIs the broker's client (`nsauth-cli`) may use (exact match), besides loopback URIs (RFC 8252 §7.3); other apps have their own (`nsauth apps`)"}
	sScopes = &Setting{Flag: "allowed-scopes", Env: []string{"NSAUTH_ALLOWED_SCOPES"}, Group: GroupTokens,
		rule: list("scopes, comma- or space-separated"), DefaultDoc: "any",
		Usage: "scopes clients may request, comma- or space-separated (default: any)",
		Doc:   "scopes clients may request"}
	sRequirePKCE = &Setting{Flag: "require-pkce", Env: []string{"NSAUTH_REQUIRE_PKCE"}, Default: "false", Group: GroupTokens, rule: boolean(),
		Usage: "refuse logins without PKCE (S256); Neosync's own CLI sends none and cannot log in then",
		Doc: "refuse logins without PKCE `S256`: `GetAuthorizeUrl` without a challenge and `LoginCli` without a verifier are " +
			"`InvalidArgument`, and the built-in provider refuses authorization requests without a challenge. Off by default " +
			"because Neosync's own CLI sends no PKCE: turn it on when every client is `nsauth login` or another PKCE client " +
			"(see [SECURITY.md](../SECURITY.md))"}

	// External provider.
	sBaseURL = &Setting{Flag: "auth-base-url", Env: []string{"AUTH_BASEURL"}, Group: GroupExternal, rule: text("an absolute http(s) URL"),
		Usage: "the OpenID provider's issuer base URL",
		Doc: "an external provider's issuer base URL; discovery is `<AUTH_BASEURL>/.well-known/openid-configuration`. " +
			"Unset: the built-in provider"}
	sExpectedIss = &Setting{Flag: "auth-expected-iss", Env: []string{"AUTH_EXPECTED_ISS"}, Group: GroupExternal,
		rule: text("an absolute http(s) URL"), DefaultDoc: "`AUTH_BASEURL`",
		Usage: "the iss tokens carry, when it differs from --auth-base-url",
		Doc:   "the `iss` tokens and the discovery document carry, when it differs"}
	sAudience = &Setting{Flag: "auth-audience", Env: []string{"AUTH_AUDIENCE"}, Group: GroupExternal,
		rule: list("audiences, comma- or space-separated"), DefaultDoc: "(required with `AUTH_BASEURL`)",
		Usage: "accepted access-token audiences, comma- or space-separated"}
	sClientID = &Setting{Flag: "auth-cli-client-id", Env: []string{"AUTH_CLI_CLIENT_ID"}, Group: GroupExternal, rule: text(""),
		DefaultDoc: "(required with `AUTH_BASEURL`)",
		Usage:      "the OAuth client id used for CLI logins"}
	sCLIAudience = &Setting{Flag: "auth-cli-audience", Env: []string{"AUTH_CLI_AUDIENCE"}, Group: GroupExternal, rule: text(""),
		Usage: "audience parameter added to the authorize URL (Auth0 style)",
		Doc:   "`audience` parameter added to authorize URLs (Auth0, Hydra)"}
	sClientSecrets = &Setting{Env: []string{"AUTH_CLIENTID_SECRET"}, Group: GroupExternal,
		rule: text("a JSON object mapping client id to client secret"),
		Doc:  "the client secrets, environment only (secrets never go in argv); none for the CLI client means a public client"}
	sAlgorithms = &Setting{Flag: "auth-signature-algorithm", Env: []string{"AUTH_SIGNATURE_ALGORITHM"}, Default: authn.DefaultAlgorithm, Group: GroupExternal,
		rule:  list("`" + strings.Join(authn.SupportedAlgorithms(), "`, `") + "`, comma-separated"),
		Usage: "accepted token signature algorithms, comma-separated",
		Doc:   "accepted signature algorithms; asymmetric only, never `none` or HMAC. The built-in provider accepts every algorithm of `NSAUTH_SIGNING_ALGORITHM`, whichever it signs with"}

	// Built-in provider.
	sIssuer = &Setting{Flag: "issuer", Env: []string{"NSAUTH_ISSUER"}, Group: GroupBuiltin,
		rule:       text("an absolute http(s) URL with no path, https unless on loopback"),
		DefaultDoc: "`http://localhost:PORT` (`--listen`'s port) on `127.0.0.1`, the listen address itself on another loopback address (`::1`, `127.0.0.2`); required on any other address",
		Usage:      "built-in provider: issuer URL, https unless on loopback (default: http://localhost:PORT on a loopback listen address)",
		Doc:        "the issuer URL: the address browsers reach nsauth at, and the `iss` of its tokens"}
	sInsecureHTTP = &Setting{Flag: "insecure-http-issuer", Env: []string{"NSAUTH_INSECURE_HTTP_ISSUER"}, Default: "false", Group: GroupBuiltin, rule: boolean(),
		Usage: "built-in provider: allow an http:// issuer on a non-loopback host (passwords and tokens travel unencrypted)"}
	sDataDir = &Setting{Flag: "data-dir", Env: []string{"NSAUTH_DATA_DIR"}, Group: GroupBuiltin, rule: text("a directory"),
		DefaultDoc: "`$XDG_DATA_HOME/nsauth` or `~/.local/share/nsauth`; macOS: `~/Library/Application Support/nsauth`; Windows: `%LOCALAPPDATA%\\nsauth`",
		Usage:      "built-in provider: directory of its SQLite database (default: $XDG_DATA_HOME/nsauth)",
		Doc:        "the directory of the SQLite database"}
	sDatabaseURL = &Setting{Flag: "database-url", Env: []string{"NSAUTH_DATABASE_URL"}, Group: GroupBuiltin, rule: text("a `postgres://` or `postgresql://` URL"),
		Usage: "built-in provider: PostgreSQL URL (postgres://…) to use instead of SQLite; prefer the variable, argv is visible to other users",
		Doc:   "PostgreSQL instead of SQLite; prefer the variable, as argv is visible to other users"}
	sAccessTTL = &Setting{Flag: "access-token-ttl", Env: []string{"NSAUTH_ACCESS_TOKEN_TTL"}, Default: shortDuration(DefaultAccessTokenTTL), Group: GroupBuiltin,
		rule:  durationIn(time.Minute, 24*time.Hour, ""),
		Usage: "built-in provider: access and ID token lifetime"}
	sRefreshTTL = &Setting{Flag: "refresh-token-ttl", Env: []string{"NSAUTH_REFRESH_TOKEN_TTL"}, Default: shortDuration(DefaultRefreshTokenTTL), Group: GroupBuiltin,
		rule:  durationIn(time.Hour, 365*24*time.Hour, ""),
		Usage: "built-in provider: refresh token lifetime (renewed at every use, up to the maximum lifetime)",
		Doc:   "refresh token lifetime (renewed at each use, up to the maximum lifetime); longer than the access token lifetime"}
	sRefreshMax = &Setting{Flag: "refresh-token-max-lifetime", Env: []string{"NSAUTH_REFRESH_TOKEN_MAX_LIFETIME"}, Default: shortDuration(DefaultRefreshTokenMaxLifetime), Group: GroupBuiltin,
		rule:  durationIn(time.Hour, 10*365*24*time.Hour, ""),
		Usage: "built-in provider: longest a login's refresh tokens last, however often they are used",
		Doc:   "longest a login's refresh tokens last, however often they are used (from the login; at least `--refresh-token-ttl`)"}
	// Hydra caps its grace at 5 minutes too: longer, and a stolen token's
	// window grows with it.
	sRefreshGrace = &Setting{Flag: "refresh-token-reuse-grace", Env: []string{"NSAUTH_REFRESH_TOKEN_REUSE_GRACE"}, Default: shortDuration(DefaultRefreshReuseGrace), Group: GroupBuiltin,
		rule:  durationIn(0, 5*time.Minute, ""),
		Usage: "built-in provider: how long after a refresh the same client, from the same address, may retry with the old refresh token and get the same new one (0: every reuse revokes the login)",
		Doc: "how long after a refresh the same client, from the same address, may retry with the old refresh token and get " +
			"the same new one, while that one is unused (`0`: every reuse revokes the login)"}
	sKeyRotation = &Setting{Flag: "signing-key-rotation", Env: []string{"NSAUTH_SIGNING_KEY_ROTATION"}, Default: shortDuration(DefaultKeyRotation), Group: GroupBuiltin,
		rule:  durationIn(time.Hour, 365*24*time.Hour, ""),
		Usage: "built-in provider: how often a new signing key is introduced"}
	sSigningAlg = &Setting{Flag: "signing-algorithm", Env: []string{"NSAUTH_SIGNING_ALGORITHM"}, Default: BuiltinSigningAlgorithms[0], Group: GroupBuiltin,
		rule:  oneOf(BuiltinSigningAlgorithms...),
		Usage: "built-in provider: what new signing keys are: RS256 (what every client accepts), ES256 or EdDSA; on a change, a key of the new one is published at once and signs 15 minutes later, and the old keys stay published until their tokens expire",
		Doc: "what new signing keys are: `RS256` (what every client accepts), `ES256` or `EdDSA` (each signature a fraction of RSA's " +
			"cost). On a change, a key of the new algorithm is published at once and signs from 15 minutes later; " +
			"the old keys stay published until their tokens expire. Every replica must say the same"}
	sSessionIdle = &Setting{Flag: "session-idle-timeout", Env: []string{"NSAUTH_SESSION_IDLE_TIMEOUT"}, Default: shortDuration(DefaultSessionIdleTimeout), Group: GroupBuiltin,
		rule:  durationIn(time.Minute, 30*24*time.Hour, ""),
		Usage: "built-in provider: a browser session not used for this long ends, and the next app login asks for the password again",
		Doc: "a browser session (the sign-in that lets every app log in without the password again) not used for this long " +
			"ends"}
	sSessionLifetime = &Setting{Flag: "session-lifetime", Env: []string{"NSAUTH_SESSION_LIFETIME"}, Default: shortDuration(DefaultSessionLifetime), Group: GroupBuiltin,
		rule:  durationIn(time.Minute, 365*24*time.Hour, ""),
		Usage: "built-in provider: the longest a browser session lasts after its sign-in, however often it is used",
		Doc:   "the longest a browser session lasts after its sign-in, however often it is used; at least `--session-idle-timeout`"}
	sLinkTTL = &Setting{Flag: "link-ttl", Env: []string{"NSAUTH_LINK_TTL"}, Default: shortDuration(DefaultLinkTTL), Group: GroupBuiltin,
		rule:  durationIn(time.Minute, 7*24*time.Hour, ""),
		Usage: "built-in provider: how long a one-time link (nsauth users invite, nsauth users reset-link) stays valid unless --ttl says otherwise",
		Doc:   "how long a one-time link (`nsauth users invite`, `nsauth users reset-link`) stays valid unless the command's `--ttl` says otherwise"}
	sLoginAttempts = &Setting{Flag: "login-attempts", Env: []string{"NSAUTH_LOGIN_ATTEMPTS_PER_MINUTE"}, Default: strconv.Itoa(DefaultLoginAttempts), Group: GroupBuiltin,
		rule:  integerIn(1, 1000, "a number"),
		Usage: "built-in provider: failed logins allowed per account and per client address per minute",
		Doc: "login attempts per minute on each counter: an account from unknown browsers, a client address, and each browser " +
			"that logged in to the account before (its device cookie); also device-flow codes entered per client address. " +
			"Counted before the password is checked; over it, HTTP 429 with `Retry-After` (see [SECURITY.md](../SECURITY.md))"}
	sMFA = &Setting{Flag: "mfa", Env: []string{"NSAUTH_MFA"}, Default: "optional", Group: GroupBuiltin, rule: oneOf("optional", "required"),
		Usage: "built-in provider: second factor policy, optional (asked from users who have one) or required (users without one cannot sign in until they enrol through nsauth users enrol-link)",
		Doc: "second factor policy: `optional` (asked from users who have one) or `required` (users without one cannot sign in " +
			"until they set one up through `nsauth users enrol-link`)"}
	sPasswordLogin = &Setting{Flag: "password-login", Env: []string{"NSAUTH_PASSWORD_LOGIN"}, Default: "true", Group: GroupBuiltin, rule: boolean(),
		Usage: "built-in provider: the login page takes nsauth passwords; false leaves only the connectors (nsauth connectors) to sign in with",
		Doc: "the login page takes the passwords of nsauth accounts; `false` leaves only the connectors (`nsauth connectors`: " +
			"OpenID Connect, GitHub, LDAP) to sign in with, once one works. Passkeys still sign in"}
	sAuthorizeRate = &Setting{Flag: "authorize-rate-limit", Env: []string{"NSAUTH_AUTHORIZE_RATE_LIMIT_PER_MINUTE"}, Default: strconv.Itoa(DefaultAuthorizePerMinute), Group: GroupBuiltin,
		rule:  perMinute(requestsRefusal),
		Usage: "built-in provider: /authorize requests allowed per client address per minute (0: no limit)",
		Doc:   "`/authorize` requests per client address per minute (`0`: no limit); over it, HTTP 429 with `Retry-After`"}
	sMachineRate = &Setting{Flag: "machine-token-rate-limit", Env: []string{"NSAUTH_MACHINE_TOKEN_RATE_LIMIT_PER_MINUTE"}, Default: strconv.Itoa(DefaultMachineTokensPerMinute), Group: GroupBuiltin,
		rule:  perMinute(requestsRefusal),
		Usage: "built-in provider: client-credentials token requests allowed per machine client per minute (0: no limit)",
		Doc:   "client-credentials token requests per machine client per minute, wrong secrets included (`0`: no limit); over it, HTTP 429 with `Retry-After`"}
	sMachineAddrRate = &Setting{Flag: "machine-token-address-rate-limit", Env: []string{"NSAUTH_MACHINE_TOKEN_ADDRESS_RATE_LIMIT_PER_MINUTE"}, Default: strconv.Itoa(DefaultMachineTokensPerAddressPerMinute), Group: GroupBuiltin,
		rule:  perMinute(requestsRefusal),
		Usage: "built-in provider: client-credentials token requests allowed per client address per minute (0: no limit)",
		Doc:   "client-credentials token requests per client address per minute (`0`: no limit)"}
	sExchangeRate = &Setting{Flag: "token-exchange-rate-limit", Env: []string{"NSAUTH_TOKEN_EXCHANGE_RATE_LIMIT_PER_MINUTE"}, Default: strconv.Itoa(DefaultExchangePerMinute), Group: GroupBuiltin,
		rule:  perMinute(requestsRefusal),
		Usage: "built-in provider: token-exchange (keyless CI) requests allowed per client address per minute (0: no limit)",
		Doc:   "token-exchange (keyless CI) requests per client address per minute, counted before any verification (`0`: no limit); over it, HTTP 429 with `Retry-After`"}
	sExchangePolicy = &Setting{Flag: "token-exchange-policy-rate-limit", Env: []string{"NSAUTH_TOKEN_EXCHANGE_POLICY_RATE_LIMIT_PER_MINUTE"}, Default: strconv.Itoa(DefaultExchangePerPolicyMinute), Group: GroupBuiltin,
		rule:  perMinute(requestsRefusal),
		Usage: "built-in provider: tokens one federation policy may yield per minute (0: no limit)",
		Doc:   "tokens one federation policy may yield per minute, whatever the addresses asking (`0`: no limit)"}
	sAdminUser = &Setting{Env: []string{"NSAUTH_ADMIN_USER"}, Default: "admin", Group: GroupBuiltin, rule: text(""),
		Doc: "the administrator created at first start"}
	sAdminPassword = &Setting{Env: []string{"NSAUTH_ADMIN_PASSWORD"}, Group: GroupBuiltin, rule: text(""), DefaultDoc: "generated",
		Doc: "the administrator's first password, environment only (secrets never go in argv); ignored once the administrator exists"}

	// Built-in provider: secret keys. The key itself is read from the
	// environment or a file, never from argv.
	sSecretKey = &Setting{Env: []string{"NSAUTH_SECRET_KEY"}, Group: GroupSecretKeys, rule: text("keys of 32 random bytes in base64, newest first, comma-separated"),
		DefaultDoc: "SQLite: `secret.key` in the data directory, made at first start; PostgreSQL: required",
		Doc: "the keys that seal private keys and secrets in the database, environment only (secrets never go in argv); " +
			"several, newest first, during a rotation. Make one with `nsauth keys generate-secret-key`"}
	sSecretKeyFile = &Setting{Flag: "secret-key-file", Env: []string{"NSAUTH_SECRET_KEY_FILE"}, Group: GroupSecretKeys, rule: text("a file"),
		Usage: "built-in provider: file holding the keys that seal secrets in the database (32 random bytes, base64; several: one per line, newest first), read again when it changes; with SQLite the default is secret.key in the data directory, made at first start",
		Doc: "a file holding the keys of `NSAUTH_SECRET_KEY` (separated by commas or lines), read again when it changes; " +
			"not with `NSAUTH_SECRET_KEY`"}
	sOldSecretKey = &Setting{Env: []string{"NSAUTH_OLD_SECRET_KEY"}, Group: GroupSecretKeys, rule: text("keys of 32 random bytes in base64, comma-separated"),
		Doc: "previous secret keys, which open and never seal (listing them after the new key in `NSAUTH_SECRET_KEY` does the same); environment only"}
	sOldSecretKeyFile = &Setting{Flag: "old-secret-key-file", Env: []string{"NSAUTH_OLD_SECRET_KEY_FILE"}, Group: GroupSecretKeys, rule: text("a file"),
		Usage: "built-in provider: file holding a previous secret key, which opens and never seals (listing it after the new key in NSAUTH_SECRET_KEY does the same)",
		Doc:   "a file holding the keys of `NSAUTH_OLD_SECRET_KEY`; not with `NSAUTH_OLD_SECRET_KEY`"}

	// Built-in provider: audit trail.
	sAuditRetention = &Setting{Flag: "audit-retention", Env: []string{"NSAUTH_AUDIT_RETENTION"}, Default: shortDuration(DefaultAuditRetention), Group: GroupAudit,
		rule:  durationIn(time.Hour, 100*365*24*time.Hour, ""),
		Usage: "built-in provider: how long audit events are kept in the database",
		Doc:   "how long events stay in the database; older ones go with the periodic (every minute) cleanup of expired rows"}
	sAuditLog = &Setting{Flag: "audit-log", Env: []string{"NSAUTH_AUDIT_LOG"}, Group: GroupAudit, rule: text("`stdout`, `stderr` or a file"),
		DefaultDoc: "none: the database only",
		Usage:      "built-in provider: also write audit events as JSON lines to stdout, stderr or this file (appended, 0600)",
		Doc:        "also write each event as a JSON line (RFC 3339 times) to `stdout`, `stderr` or a file, appended to and created `0600`"}
	sAuditRequired = &Setting{Flag: "audit-required", Env: []string{"NSAUTH_AUDIT_REQUIRED"}, Default: "false", Group: GroupAudit, rule: boolean(),
		Usage: "built-in provider: fail a request whose audit event cannot be recorded",
		Doc: "`true`: a request whose event cannot be recorded (in the database, or in the stream when one is set) fails, as " +
			"Vault does; `false`: the failure is logged and counted, and the request goes on. A refusal's row is written to the " +
			"database with its request, but to the stream only when its minute is over: a stream failure then is logged and counted. " +
			"`nsauth users` and the other commands that change the store obey it too"}
	sAuditRefusals = &Setting{Flag: "audit-refusal-rows", Env: []string{"NSAUTH_AUDIT_REFUSAL_ROWS_PER_MINUTE"}, Default: strconv.Itoa(audit.DefaultRefusalRowsPerMinute), Group: GroupAudit,
		rule:  integerIn(1, 1e6, "a number of rows per minute"),
		Usage: "built-in provider: most audit rows of refused unauthenticated requests (one per address, reason and minute) started per minute by each replica; refusals past it are counted in one dropped row",
		Doc: "most aggregated rows of refusals each replica starts a minute (one per address, reason and minute); refusals past " +
			"it are counted in an `audit.refusals_dropped` row and by `nsauth_audit_refusals_dropped_total`"}
)

// settings is every setting, in the documentation's order.
var settings = []*Setting{
	sListen, sHost, sPort, sLogFormat, sLogLevel, sTLSCert, sTLSKey, sHSTSMaxAge, sMaxRequestBytes, sShutdownTimeout, sPprof,
	sTrustedProxies, sRateLimit, sDevicePollRate,
	sAuthEnabled, sTokenMode, sIntrospectURL, sIntrospectTTL, sClockSkew, sRedirectURIs, sScopes, sRequirePKCE,
	sBaseURL, sExpectedIss, sAudience, sClientID, sCLIAudience, sClientSecrets, sAlgorithms,
	sIssuer, sInsecureHTTP, sDataDir, sDatabaseURL, sAccessTTL, sRefreshTTL, sRefreshMax, sRefreshGrace, sKeyRotation, sSigningAlg, sSessionIdle, sSessionLifetime, sLinkTTL,
	sLoginAttempts, sMFA, sPasswordLogin, sAuthorizeRate, sMachineRate, sMachineAddrRate, sExchangeRate, sExchangePolicy, sAdminUser, sAdminPassword,
	sSecretKey, sSecretKeyFile, sOldSecretKey, sOldSecretKeyFile,
	sAuditRetention, sAuditLog, sAuditRequired, sAuditRefusals,
}

// read returns s's value, checked and converted by its rule; a refusal is
// reported through bad and returns false.
func read[T any](src source, s *Setting, bad badFunc) (T, bool) {
	var zero T
	v := src.value(s)
	if s.rule.parse == nil {
		return any(v).(T), true
	}
	parsed, err := s.rule.parse(v)
	if err != nil {
		bad(s, "%q %v", v, err)
		return zero, false
	}
	return parsed.(T), true
}

// shortDuration writes d in its largest whole unit ("720h", "15m",
// "30s"), as an operator would.
func shortDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
