package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"

	"github.com/nsauth/nsauth/internal/adminservice"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/inprocess"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/server"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/telemetry"
	"github.com/nsauth/nsauth/internal/upstream"
	"github.com/nsauth/nsauth/pkg/loopbackhost"
	"golang.org/x/term"
)

// builtinProvider is the built-in OpenID provider as the server wires it:
// its HTTP handler (mounted as the server's fallback, so it shares the
// listener), and the broker and token verifier the AuthService uses, which
// reach it in process through the same HTTP code as any external provider.
type builtinProvider struct {
	provider
	// issuer is the issuer URL it serves under.
	issuer  string
	handler http.Handler
	// clientInfo wraps the server's handler so that the provider's audit
	// events name the RPC caller (issuer.Issuer.WithClientInfo).
	clientInfo func(http.Handler) http.Handler
	requests   *atomic.Int64
	audit      audit.Recorder
	// admin is nsauth.admin.v1.AdminService over the provider's store.
	admin *adminservice.Service
	close func() error
}

// startBuiltin opens the store, prepares it at first start (client,
// administrator), starts the provider and points a broker at it. The
// issuer URL is --issuer, or derived from addr, the bound listen address.
// It returns what must be closed even when it fails.
func startBuiltin(ctx, bg context.Context, cfg *config.Server, addr net.Addr, useTLS bool, deps Deps, tracing *telemetry.Tracing, metrics *server.AuthMetrics, logger *slog.Logger) (*builtinProvider, error) {
	b := cfg.Auth.Builtin
	issuerURL := b.Issuer
	if issuerURL == "" {
		issuerURL = config.DeriveIssuer(addr, useTLS)
	}
	// The OpenID library logs through slog's default logger. Send that to
	// ours, warnings and up (its info lines are route listings).
	slog.SetDefault(slog.New(minLevel{logger.Handler(), max(slog.LevelWarn, cfg.LogLevel)}).With("component", "oidc"))

	holder := newKeyHolder(deps.Now, logger)
	st, err := openSealedStore(ctx, b, deps.Now, logger, holder)
	if err != nil {
		return nil, err
	}
	holder.start(bg)
	closeStore := func() error { return errors.Join(holder.remove(), st.Close()) }
	bp := &builtinProvider{issuer: issuerURL, close: closeStore, requests: new(atomic.Int64)}
	auditor, closeAudit, err := newAuditor(ctx, st, b, deps, logger)
	if err != nil {
		return bp, err
	}
	bp.audit = auditor
	bp.close = func() error { return errors.Join(closeAudit(), closeStore()) }
	metrics.AuditRefusalsDropped(auditor.RefusalsDropped)
	metrics.AuditQueued(auditor.Queued)
	boot, err := issuer.Bootstrap(ctx, st, issuer.BootstrapConfig{AdminUser: b.AdminUser, AdminPassword: b.AdminPassword})
	if err != nil {
		return bp, fmt.Errorf("preparing the built-in provider: %w", err)
	}
	prev, err := st.RecordServedIssuer(ctx, issuerURL)
	if err != nil {
		return bp, fmt.Errorf("recording the issuer URL: %w", err)
	}
	switch {
	case prev == "" || prev == issuerURL:
	case b.Issuer == "" && prev == config.FormerDerivedIssuer(issuerURL):
		logger.Warn("the default issuer changed from previous_issuer to issuer, so that browsers offer passkeys: "+
			"access tokens issued under the previous one are refused, refresh tokens go on (nsauth login refreshes on its own), "+
			"and apps configured with the previous issuer need the new one; to keep the previous one, set "+config.IssuerSetting()+" to previous_issuer",
			"previous_issuer", prev, "issuer", issuerURL, "data", st.Location())
	default:
		logger.Warn("this data was last served under another issuer URL: tokens it issued there are refused here, "+
			"and replicas on one database must all use one issuer (set NSAUTH_ISSUER / --issuer to the same URL everywhere)",
			"previous_issuer", prev, "issuer", issuerURL, "data", st.Location())
	}
	var federationClient *http.Client // the issuer's default
	if tracing.Enabled() {
		// The same timeout and redirect rule as the default, traced.
		federationClient = upstream.NewHTTPClientWith(tracing.Transport(upstream.NewTransport()))
	}
	iss, err := issuer.New(ctx, issuer.Config{
		Issuer:                           issuerURL,
		FederationHTTPClient:             federationClient,
		Store:                            st,
		ClientID:                         boot.ClientID,
		AccessTokenTTL:                   b.AccessTokenTTL,
		RefreshTokenTTL:                  b.RefreshTokenTTL,
		RefreshTokenMaxLifetime:          b.RefreshTokenMaxLifetime,
		RefreshReuseGrace:                zeroMeansOff(b.RefreshReuseGrace),
		KeyRotation:                      b.KeyRotation,
		SigningAlgorithm:                 b.SigningAlgorithm,
		SessionIdleTimeout:               b.SessionIdleTimeout,
		SessionLifetime:                  b.SessionLifetime,
		LoginAttempts:                    b.LoginAttempts,
		RequireSecondFactor:              b.RequireSecondFactor,
		NoPasswordLogin:                  b.NoPasswordLogin,
		RequirePKCE:                      cfg.Auth.RequirePKCE,
		AuthorizePerMinute:               zeroMeansOff(b.AuthorizePerMinute),
		MachineTokensPerMinute:           zeroMeansOff(b.MachineTokensPerMinute),
		MachineTokensPerAddressPerMinute: zeroMeansOff(b.MachineTokensPerAddressPerMinute),
		ExchangePerMinute:                zeroMeansOff(b.ExchangePerMinute),
		ExchangePerPolicyMinute:          zeroMeansOff(b.ExchangePerPolicyMinute),
		AllowedRedirectURIs:              cfg.Auth.AllowedRedirectURIs,
		AllowedScopes:                    cfg.Auth.AllowedScopes,
		InsecureAllowHTTP:                b.InsecureHTTPIssuer,
		Clients:                          clientaddr.NewResolver(cfg.TrustedProxies),
		Now:                              deps.Now,
		Logger:                           logger.With("component", "issuer"),
		Audit:                            auditor,
		Observer:                         &issuer.Observer{Login: metrics.Login, Lockout: metrics.Lockout, Replay: metrics.Replay},
	})
	if err != nil {
		return bp, fmt.Errorf("starting the built-in provider: %w", err)
	}
	go iss.Run(bg)
	if bp.admin, err = adminservice.New(adminservice.Config{
		Store:  st,
		Audit:  auditor,
		Now:    deps.Now,
		Issuer: issuerURL,
		Log:    logger.With("component", "admin"),
		// People administer with the tokens of nsauth login, not those
		// of the apps they sign in to.
		TerminalClientID: boot.ClientID,
		// One-time links (package linkflow).
		LinkTTL: b.LinkTTL,
	}); err != nil {
		return bp, err
	}
	// Traced once, here: requests from browsers and from the broker in
	// process alike get a server span, the latter as a child of the
	// broker's client span; a browser's traceparent is only linked.
	bp.handler, bp.clientInfo = tracing.Handler(iss.Handler(), "issuer", fromInProcess), iss.WithClientInfo
	printBuiltinBanner(deps.Stderr, st, issuerURL, iss.DeviceURL(), boot, showGeneratedPassword(deps.Stderr, addr))
	logger.Info("built-in OpenID provider", "issuer", issuerURL, "store", st.Backend(), "location", st.Location())
	if onThisMachineOnly(iss.DeviceURL()) {
		logger.Info("device logins (nsauth login --device) need a browser on this machine: the device URL is loopback; "+
			"set "+config.IssuerSetting()+" to a URL other devices reach to log in from them", "device_url", iss.DeviceURL())
	}

	// Requests for the issuer's origin never leave the process; anything
	// else (an introspection endpoint set elsewhere) goes over the network.
	transport, err := inprocess.New(inprocess.Config{
		Origin:   issuerURL,
		Handler:  bp.handler,
		Fallback: upstream.NewTransport(),
	})
	if err != nil {
		return bp, fmt.Errorf("connecting to the built-in provider: %w", err)
	}
	a := cfg.Auth
	a.BaseURL, a.ExpectedIssuer = issuerURL, issuerURL
	a.Audiences = []string{iss.Audience()}
	a.ClientID, a.ClientSecret = boot.ClientID, boot.ClientSecret
	a.CLIAudience = ""
	start := providerStart{
		now:          deps.Now,
		tracing:      tracing,
		metrics:      metrics,
		httpClient:   upstream.NewHTTPClientWith(tracing.Transport(countRequests(transport, bp.requests))),
		mustDiscover: true,
	}
	if a.TokenMode != config.TokenModeIntrospection {
		// Introspection asks the provider, which reads the store, about
		// every token: it needs no set of its own.
		if start.revocations, err = followRevocations(bg, st, deps.Now, revocationConfig{clockSkew: a.ClockSkew}, logger); err != nil {
			return bp, err
		}
	}
	p, err := startProvider(ctx, bg, a, start, logger)
	if err != nil {
		return bp, fmt.Errorf("the built-in provider: %w", err)
	}
	bp.provider = *p
	return bp, nil
}

// zeroMeansOff carries a setting whose 0 means off (no limit, no reuse
// grace) into issuer.Config, where 0 means "the default" and a negative
// value means off.
func zeroMeansOff[T ~int64 | ~float64](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// fromInProcess reports whether r came from this process (the broker, the
// verifier): only those continue the caller's trace.
func fromInProcess(r *http.Request) bool { return r.RemoteAddr == inprocess.RemoteAddr }

// countRequests counts the requests t serves in process.
func countRequests(t *inprocess.Transport, n *atomic.Int64) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if t.Handles(r.URL) {
			n.Add(1)
		}
		return t.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// printBuiltinBanner tells the operator, on the terminal and never in the
// log, where the data is, what the issuer is, whether other devices can
// open the device login's URL (and which setting makes them) and, at first
// start, how to log in. The generated password appears here once and
// nowhere else.
func printBuiltinBanner(w io.Writer, st *store.Store, issuerURL, deviceURL string, boot *issuer.BootstrapResult, showPassword bool) {
	kind := "SQLite database"
	if st.Backend() == "postgres" {
		kind = "PostgreSQL"
	}
	fmt.Fprintf(w, "nsauth built-in OpenID provider\n  data:   %s %s\n  issuer: %s\n", kind, st.Location(), issuerURL)
	if onThisMachineOnly(deviceURL) {
		fmt.Fprintf(w, "  device: %s opens on this machine only, so nsauth login --device\n"+
			"          needs a browser here. To log in from other devices, set %s\n"+
			"          to a URL they reach, such as https://auth.example.com.\n", deviceURL, config.IssuerSetting())
	}
	switch {
	case boot.AdminCreated && boot.GeneratedPassword != "" && !showPassword:
		fmt.Fprintf(w, "\nFirst start: created the administrator account %q. Its generated password is not shown:\n"+
			"nsauth listens beyond this machine and standard error is not a terminal, so this is\n"+
			"likely a log that others read. Choose the password with `nsauth users passwd %s`\n"+
			"(in a container: podman exec -it CONTAINER nsauth users passwd %s), or give\n"+
			"NSAUTH_ADMIN_PASSWORD at the first start.\n\n", boot.AdminUser, boot.AdminUser, boot.AdminUser)
	case boot.AdminCreated && boot.GeneratedPassword != "":
		fmt.Fprintf(w, "\nFirst start: created the administrator account.\n  username: %s\n  password: %s\n"+
			"This password is shown only this once and is stored only as a hash. Log in with\n"+
			"`nsauth login`, then choose your own with `nsauth users passwd %s`.\n\n",
			boot.AdminUser, boot.GeneratedPassword, boot.AdminUser)
	case boot.AdminCreated:
		fmt.Fprintf(w, "\nFirst start: created the administrator account %q with the password from NSAUTH_ADMIN_PASSWORD.\n\n", boot.AdminUser)
	case boot.AdminPasswordIgnored:
		fmt.Fprintf(w, "note: NSAUTH_ADMIN_PASSWORD is ignored: the administrator was created at an earlier start.\n"+
			"      Change passwords with `nsauth users passwd <username>`.\n")
	}
}

// onThisMachineOnly reports whether rawURL's host is loopback, so that a
// browser on another device cannot open it.
func onThisMachineOnly(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && loopbackhost.Is(u.Hostname())
}

// showGeneratedPassword says whether the first start may print the
// administrator's generated password to w. On a terminal it may; on
// loopback it may too (a developer's `nsauth serve 2>log`). A server that
// listens beyond this machine and writes to a pipe or a file is a service
// whose standard error is collected as its log (a container's, a unit's),
// and a password there outlives the first start: it is not shown.
func showGeneratedPassword(w io.Writer, listen net.Addr) bool {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return true
	}
	host, _, err := net.SplitHostPort(listen.String())
	if err != nil {
		return false
	}
	return loopbackhost.Is(host)
}
