package config

import (
	"errors"
	"net"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/pkg/issuerurl"
	"github.com/nsauth/nsauth/pkg/loopbackhost"
)

// loadBuiltin fills the settings of the built-in provider and the
// verification settings that follow from it.
func loadBuiltin(src source, a *Auth, bad badFunc) {
	b := &a.Builtin
	// Settings of an external provider without its base URL are most likely
	// a forgotten AUTH_BASEURL: refuse rather than silently run another
	// provider, with other users, than the one intended.
	for _, s := range []*Setting{sExpectedIss, sAudience, sClientID, sCLIAudience, sClientSecrets} {
		if _, set := src.get(s); set {
			bad(s, "configures an external provider, but AUTH_BASEURL is not set: set AUTH_BASEURL, or unset this to use the built-in provider")
		}
	}
	// The broker verifies tokens of every algorithm the provider may have
	// keys of, not only the configured one: after a change of algorithm,
	// tokens signed with the old keys stay valid until they expire. Each
	// published key names its algorithm, and a token's must match it.
	a.Algorithms = slices.Clone(BuiltinSigningAlgorithms)
	a.RequireAccessTokenType = true

	b.InsecureHTTPIssuer, _ = read[bool](src, sInsecureHTTP, bad)
	if raw := src.value(sIssuer); raw != "" {
		iss, err := checkIssuer(raw, b.InsecureHTTPIssuer)
		if err != nil {
			bad(sIssuer, "%q %v", raw, err)
		}
		b.Issuer = iss
	}
	loadStoreLocation(src, &b.DataDir, &b.DatabaseURL, bad)
	loadSecretKeys(src, &b.SecretKeys, bad)
	if b.DatabaseURL != "" && b.SecretKeys.Current() == nil {
		bad(sSecretKey, "is required with PostgreSQL: set %s to %s, the same on every replica, and keep it apart from the database and its backups",
			secretKeySettings, makeSecretKeyAdvice)
	}

	b.AccessTokenTTL, _ = read[time.Duration](src, sAccessTTL, bad)
	b.RefreshTokenTTL, _ = read[time.Duration](src, sRefreshTTL, bad)
	b.RefreshTokenMaxLifetime, _ = read[time.Duration](src, sRefreshMax, bad)
	b.RefreshReuseGrace, _ = read[time.Duration](src, sRefreshGrace, bad)
	b.KeyRotation, _ = read[time.Duration](src, sKeyRotation, bad)
	b.SigningAlgorithm, _ = read[string](src, sSigningAlg, bad)
	b.SessionIdleTimeout, _ = read[time.Duration](src, sSessionIdle, bad)
	b.SessionLifetime, _ = read[time.Duration](src, sSessionLifetime, bad)
	if b.SessionLifetime != 0 && b.SessionLifetime < b.SessionIdleTimeout {
		bad(sSessionLifetime, "%s is shorter than the session idle timeout (%s, %s)", b.SessionLifetime, sSessionIdle.Name(), b.SessionIdleTimeout)
	}
	b.LinkTTL, _ = read[time.Duration](src, sLinkTTL, bad)
	b.AuditRetention, _ = read[time.Duration](src, sAuditRetention, bad)
	if b.RefreshTokenTTL != 0 && b.RefreshTokenTTL <= b.AccessTokenTTL {
		bad(sRefreshTTL, "must be longer than the access token lifetime")
	}
	if b.RefreshTokenMaxLifetime != 0 && b.RefreshTokenMaxLifetime < b.RefreshTokenTTL {
		bad(sRefreshMax, "%s is shorter than the refresh token lifetime (%s, %s)", b.RefreshTokenMaxLifetime, sRefreshTTL.Name(), b.RefreshTokenTTL)
	}
	if n, ok := read[int64](src, sLoginAttempts, bad); ok {
		b.LoginAttempts = int(n)
	}
	if mfa, ok := read[string](src, sMFA, bad); ok {
		b.RequireSecondFactor = mfa == "required"
	}
	if on, ok := read[bool](src, sPasswordLogin, bad); ok {
		b.NoPasswordLogin = !on
	}
	b.AuthorizePerMinute, _ = read[float64](src, sAuthorizeRate, bad)
	b.MachineTokensPerMinute, _ = read[float64](src, sMachineRate, bad)
	b.MachineTokensPerAddressPerMinute, _ = read[float64](src, sMachineAddrRate, bad)
	b.ExchangePerMinute, _ = read[float64](src, sExchangeRate, bad)
	b.ExchangePerPolicyMinute, _ = read[float64](src, sExchangePolicy, bad)
	b.AuditRequired, _ = read[bool](src, sAuditRequired, bad)
	b.AuditLog = strings.TrimSpace(src.value(sAuditLog))
	if n, ok := read[int64](src, sAuditRefusals, bad); ok {
		b.AuditRefusalRowsPerMinute = int(n)
	}
	b.AdminUser = src.value(sAdminUser)
	b.AdminPassword = src.value(sAdminPassword)
}

// checkIssuer checks an issuer URL: absolute http(s), no user info, query,
// fragment or path (a trailing slash is dropped), and https unless the
// host is loopback or insecure is set.
func checkIssuer(raw string, insecure bool) (string, error) {
	if err := checkHTTPURL(raw); err != nil {
		return "", err
	}
	u, _ := url.Parse(raw)
	if u.RawQuery != "" || u.ForceQuery {
		return "", errors.New("must not contain a query")
	}
	if u.Path != "" && u.Path != "/" {
		return "", errors.New("must not have a path: serve nsauth at the root of its host")
	}
	// The rule itself is issuerurl's; the messages above and below name
	// this setting's own words and opt-in.
	checked, err := issuerurl.Check(u.Scheme+"://"+u.Host, issuerurl.Options{InsecureAllowHTTP: insecure})
	if errors.Is(err, issuerurl.ErrInsecureHTTP) {
		return "", errors.New("must use https on a non-loopback host (or set NSAUTH_INSECURE_HTTP_ISSUER=true)")
	}
	if err != nil {
		return "", err
	}
	return checked.Scheme + "://" + checked.Host, nil
}

// requireReachableIssuer refuses a built-in provider that would derive its
// issuer from a listen address other machines use. The issuer is the URL
// browsers are sent to and tokens name; derived from 0.0.0.0 it is
// http://localhost:PORT, which only this machine (in a container, only the
// container) reaches, and derived from a LAN address it is plain http.
// Serving on loopback alone, the derived issuer is the right one. In broker
// mode the issuer is AUTH_BASEURL's, and nothing is derived.
func requireReachableIssuer(cfg *Server, bad badFunc) {
	if cfg.Auth.Mode != AuthBuiltin || cfg.Auth.Builtin.Issuer != "" {
		return
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil || loopbackhost.Is(host) {
		return // a malformed address is reported with its own setting
	}
	bad(sIssuer, "is required when listening on %q, which is not a loopback address: "+
		"an issuer derived from it is not a URL other machines can open. "+
		"Set NSAUTH_ISSUER (--issuer) to the URL browsers reach nsauth at, such as https://auth.example.com, "+
		"or set AUTH_BASEURL to use an external provider instead of the built-in one", cfg.Listen)
}

// DeriveIssuer returns the default issuer URL for a server listening on
// addr. On 127.0.0.1 or an unspecified address (0.0.0.0, ::, which include
// 127.0.0.1) it is http://localhost:PORT: browsers accept "localhost",
// never an IP address, as a passkey's relying party (WebAuthn RP ID), and
// "localhost" leads to 127.0.0.1 everywhere. Any other address is kept as
// it is: 127.0.0.2 is not where "localhost" leads, and ::1 is not on hosts
// whose /etc/hosts names only 127.0.0.1. Browsers on other machines reach
// none of these, so [Load] accepts a derived issuer only on a loopback
// listen address.
func DeriveIssuer(addr net.Addr, tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && (ip.IsUnspecified() || ip.Equal(net.IPv4(127, 0, 0, 1)))) {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// FormerDerivedIssuer returns the issuer that earlier versions of nsauth
// derived where [DeriveIssuer] now derives derived: the listen address
// 127.0.0.1 in place of localhost, or "" when nothing changed. A store last
// served under it was served with no issuer set, and starts again under
// another one only because the default changed.
func FormerDerivedIssuer(derived string) string {
	u, err := url.Parse(derived)
	if err != nil || u.Hostname() != "localhost" || u.Port() == "" {
		return ""
	}
	return u.Scheme + "://" + net.JoinHostPort("127.0.0.1", u.Port())
}

// IssuerSetting names the setting of the built-in provider's issuer URL,
// "NSAUTH_ISSUER (--issuer)", for messages that say how to change it.
func IssuerSetting() string { return sIssuer.Name() }

// Store locates the built-in provider's store, for commands that open it
// directly (`nsauth users`).
type Store struct {
	// DataDir holds the SQLite database, when DatabaseURL is empty.
	DataDir string
	// DatabaseURL is a PostgreSQL URL.
	DatabaseURL string
	// AuditRequired (NSAUTH_AUDIT_REQUIRED) makes a command that changes
	// the store fail when its audit event cannot be recorded, as it makes
	// the server's requests fail.
	AuditRequired bool
	// LinkTTL (NSAUTH_LINK_TTL) is how long a one-time link a command
	// makes stays valid unless its --ttl says otherwise.
	LinkTTL time.Duration
}

// LoadStore reads --data-dir and --database-url (and their variables); fs
// holds flags added by [RegisterStoreFlags] and may be nil.
func LoadStore(fs *pflag.FlagSet, getenv func(string) (string, bool)) (*Store, error) {
	src := source{fs: fs, getenv: getenv}
	bad, result := collect()
	st := &Store{}
	loadStoreLocation(src, &st.DataDir, &st.DatabaseURL, bad)
	st.AuditRequired, _ = read[bool](src, sAuditRequired, bad)
	st.LinkTTL, _ = read[time.Duration](src, sLinkTTL, bad)
	if err := result(); err != nil {
		return nil, err
	}
	return st, nil
}

func loadStoreLocation(src source, dataDir, databaseURL *string, bad badFunc) {
	*databaseURL = src.value(sDatabaseURL)
	dir, dirSet := src.get(sDataDir)
	if *databaseURL != "" {
		if !strings.HasPrefix(*databaseURL, "postgres://") && !strings.HasPrefix(*databaseURL, "postgresql://") {
			// The value may hold a password: never echo it.
			bad(sDatabaseURL, "must be a postgres:// or postgresql:// URL")
		}
		if dirSet {
			bad(sDataDir, "cannot be combined with --database-url: the data lives in PostgreSQL")
		}
		return
	}
	if !dirSet {
		d, err := defaultDataDir(src.getenv)
		if err != nil {
			bad(sDataDir, "%v", err)
			return
		}
		dir = d
	}
	if !filepath.IsAbs(dir) {
		abs, err := filepath.Abs(dir)
		if err != nil {
			bad(sDataDir, "%q cannot be made absolute: %v", dir, err)
			return
		}
		dir = abs
	}
	*dataDir = dir
}

// defaultDataDir is the per-user data directory, following each platform's
// convention.
func defaultDataDir(getenv func(string) (string, bool)) (string, error) {
	env := func(k string) string {
		v, _ := getenv(k)
		return v
	}
	if runtime.GOOS == "windows" {
		if d := env("LocalAppData"); d != "" {
			return filepath.Join(d, "nsauth"), nil
		}
		return "", errors.New("%LocalAppData% is not set; give a directory")
	}
	if d := env("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "nsauth"), nil
	}
	home := env("HOME")
	if home == "" {
		return "", errors.New("$HOME is not set; give a directory")
	}
	if runtime.GOOS == "darwin" {
		return filepath.Join(home, "Library", "Application Support", "nsauth"), nil
	}
	return filepath.Join(home, ".local", "share", "nsauth"), nil
}
