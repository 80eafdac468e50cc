// Package app is nsauth's composition root: it turns a server
// configuration into a running server. It opens the listener, brings up
// the provider (an external one, or the built-in one on its store), the
// broker and the token verifier, the AuthService and the HTTP plumbing
// around it. Commands (`nsauth serve`, `nsauth bench`) and tests start
// servers through it; it knows nothing of flags or command lines.
//
// In built-in mode the broker and the verifier reach the provider in this
// process, through an http.RoundTripper that hands requests for the
// issuer's origin to the provider's handler: the code path is the one used
// for an external provider, without a call over the network that would
// have to wait for the listener and need the public issuer URL to be
// reachable from inside. Discovery therefore completes before [New]
// returns, and the listener accepts connections only once every RPC can
// answer.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"

	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/adminservice"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/authservice"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/server"
	"github.com/nsauth/nsauth/internal/telemetry"
)

// Deps are what a server takes from the outside world. The zero value is
// usable: nothing is printed and the clock is time.Now.
type Deps struct {
	// Stderr receives the log and the built-in provider's banner, which at
	// first start holds the administrator's generated password: a
	// terminal, never a log collector that keeps it. Defaults to
	// io.Discard.
	Stderr io.Writer
	// Stdout receives the audit stream when NSAUTH_AUDIT_LOG is "stdout".
	// Defaults to io.Discard.
	Stdout io.Writer
	// Now is the clock of the broker, of token verification and of the
	// built-in provider. Defaults to time.Now.
	Now func() time.Time
	// Getenv is the environment tracing is switched on from
	// (OTEL_EXPORTER_OTLP_ENDPOINT and the others telemetry.New reads).
	// Defaults to os.LookupEnv.
	Getenv func(string) (string, bool)
}

// Server is an assembled nsauth server: listening, with its provider
// discovered (or, for an external provider that is down, retried in the
// background), but not yet serving.
type Server struct {
	cfg     *config.Server
	logger  *slog.Logger
	now     func() time.Time
	ln      net.Listener
	tls     *tls.Config
	handler http.Handler

	// providerRequests counts requests to the built-in provider made in
	// process; nil in other modes.
	providerRequests *atomic.Int64
	// audit records the built-in provider's events; audit.Nop in other
	// modes.
	audit audit.Recorder

	stop      context.CancelFunc // ends background work
	closeOnce sync.Once
	closers   []func() error
}

// Audit is the recorder of the server's audit events: the built-in
// provider's, or audit.Nop in other modes.
func (s *Server) Audit() audit.Recorder { return s.audit }

// New assembles the server cfg describes and opens its listener (the
// built-in provider's default issuer URL is derived from the bound
// address, so the port is known before anything else starts). ctx bounds
// the start: opening the store and the first discovery. Background work
// (discovery refreshes, key rotation) runs until [Server.Close].
//
// An external provider that cannot be reached is retried in the
// background, and RPCs that need it answer Unavailable meanwhile; one that
// names another issuer is an error. The built-in provider is discovered in
// process before New returns; any failure there is an error.
func New(ctx context.Context, cfg *config.Server, deps Deps) (_ *Server, err error) {
	if deps.Stderr == nil {
		deps.Stderr = io.Discard
	}
	if deps.Stdout == nil {
		deps.Stdout = io.Discard
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Getenv == nil {
		deps.Getenv = os.LookupEnv
	}
	logger := newLogger(deps.Stderr, cfg.LogFormat, cfg.LogLevel)
	tracing, err := telemetry.New(ctx, func(k string) string { v, _ := deps.Getenv(k); return v }, logger)
	if err != nil {
		return nil, err
	}
	if tracing.Enabled() {
		logger = slog.New(telemetry.LogHandler(logger.Handler()))
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &Server{cfg: cfg, logger: logger, now: deps.Now, stop: stop, audit: audit.Nop}
	// First in, last out: spans of everything else's closing are flushed.
	s.closers = append(s.closers, func() error { return tracing.Shutdown(context.WithoutCancel(ctx)) })
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	var rpcTracing connect.Interceptor
	if tracing.Enabled() {
		logger.Info("tracing: exporting spans over OTLP/HTTP (OTEL_EXPORTER_OTLP_*)")
		interceptor, err := otelconnect.NewInterceptor(
			otelconnect.WithTracerProvider(tracing.Provider()),
			otelconnect.WithPropagator(tracing.Propagator()),
			otelconnect.WithoutMetrics(),
		)
		if err != nil {
			return nil, fmt.Errorf("tracing RPCs: %w", err)
		}
		rpcTracing = interceptor
	}

	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading TLS certificate: %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	svcCfg := authservice.Config{
		AllowedRedirectURIs: cfg.Auth.AllowedRedirectURIs,
		AllowedScopes:       cfg.Auth.AllowedScopes,
		RequirePKCE:         cfg.Auth.RequirePKCE,
		Logger:              logger,
		Now:                 deps.Now,
	}
	clients := clientaddr.NewResolver(cfg.TrustedProxies)
	registry := server.NewRegistry()
	metrics := server.NewAuthMetrics(registry)
	var wrap func(http.Handler) http.Handler // around the whole handler, in built-in mode
	var httpsIssuer bool                     // the built-in provider's issuer is https
	srvCfg := server.Config{
		Tracing:         rpcTracing,
		Registry:        registry,
		MaxRequestBytes: cfg.MaxRequestBytes,
		Logger:          logger,
		Pprof:           cfg.Pprof,
		RateLimits: []server.RateLimit{{
			Procedures: []string{
				mgmtv1alpha1connect.AuthServiceLoginCliProcedure,
				mgmtv1alpha1connect.AuthServiceRefreshCliProcedure,
				mgmtv1alpha1connect.AuthServiceRevokeCliProcedure,
				mgmtv1alpha1connect.AuthServiceStartDeviceLoginProcedure,
			},
			PerMinute: cfg.RateLimitPerMinute,
			Clients:   clients,
			Now:       deps.Now,
		}, {
			// A device login polls every few seconds for minutes: its own
			// budget, sized for that, so that polling neither eats the
			// logins' budget nor is cut short by it. Each device code's
			// interval is the service's to enforce.
			Procedures: []string{mgmtv1alpha1connect.AuthServicePollDeviceLoginProcedure},
			PerMinute:  cfg.DevicePollRateLimitPerMinute,
			Clients:    clients,
			Now:        deps.Now,
		}},
	}
	if cfg.Pprof {
		logger.Warn("pprof endpoints are served under /debug/pprof/ (--pprof): they expose internals; do not enable this in production")
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	s.ln = ln
	s.closers = append(s.closers, ln.Close)

	if cfg.Auth.RequirePKCE && cfg.Auth.Mode != config.AuthDisabled {
		logger.Info("PKCE is required (NSAUTH_REQUIRE_PKCE): clients that send no code challenge, Neosync's own CLI among them, cannot log in")
	}
	switch cfg.Auth.Mode {
	case config.AuthDisabled:
		logger.Warn("authentication is DISABLED: every procedure is open and clients send no tokens; unset AUTH_ENABLED=false to use the built-in provider, or set AUTH_BASEURL (and AUTH_AUDIENCE, AUTH_CLI_CLIENT_ID) for an external one")
	case config.AuthExternal:
		p, err := startProvider(ctx, bg, cfg.Auth, providerStart{now: deps.Now, tracing: tracing, metrics: metrics}, logger)
		if err != nil {
			return nil, err
		}
		svcCfg.Enabled, svcCfg.Broker = true, p.broker
		srvCfg.Authn, srvCfg.Ready = p.interceptor, p.broker.Ready
	case config.AuthBuiltin:
		b, err := startBuiltin(ctx, bg, cfg, ln.Addr(), s.tls != nil, deps, tracing, metrics, logger)
		if b != nil {
			s.closers = append(s.closers, b.close)
		}
		if err != nil {
			return nil, err
		}
		svcCfg.Enabled, svcCfg.Broker = true, b.broker
		srvCfg.Authn, srvCfg.Ready, srvCfg.Fallback = b.interceptor, b.broker.Ready, b.handler
		srvCfg.Admin, srvCfg.AdminAuthz = b.admin, b.admin.Interceptor()
		// The admin API's calls: a budget of their own, as large as the
		// logins' (audit --follow polls it every few seconds).
		srvCfg.RateLimits = append(srvCfg.RateLimits, server.RateLimit{
			Procedures: adminservice.Procedures(),
			PerMinute:  cfg.RateLimitPerMinute,
			Clients:    clients,
			Now:        deps.Now,
		})
		httpsIssuer = strings.HasPrefix(b.issuer, "https:")
		s.providerRequests = b.requests
		s.audit, svcCfg.Audit = b.audit, b.audit
		wrap = b.clientInfo
	default:
		return nil, fmt.Errorf("unknown authentication mode %v", cfg.Auth.Mode)
	}

	svc, err := authservice.New(svcCfg)
	if err != nil {
		return nil, err
	}
	srvCfg.Service = svc
	if s.tls != nil || httpsIssuer {
		// Reached over https, here or at a TLS-terminating proxy in front.
		srvCfg.HSTSMaxAge = cfg.HSTSMaxAge
	}
	if s.handler, err = server.NewHandler(srvCfg); err != nil {
		return nil, err
	}
	if wrap != nil {
		s.handler = wrap(s.handler)
	}
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL returns the server's base URL, such as http://127.0.0.1:8080. A
// listener on all interfaces (0.0.0.0, ::) is named by 127.0.0.1, a URL
// that works on this machine.
func (s *Server) URL() string {
	addr := s.ln.Addr().String()
	if host, port, err := net.SplitHostPort(addr); err == nil && net.ParseIP(host).IsUnspecified() {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return s.scheme() + "://" + addr
}

func (s *Server) scheme() string {
	if s.tls != nil {
		return "https"
	}
	return "http"
}

// Handler returns the server's root handler: every RPC, health, metrics
// and the built-in provider's pages, for serving some other way than
// [Server.Serve] (tests in memory).
func (s *Server) Handler() http.Handler { return s.handler }

// ProviderRequests returns how many requests the broker and the token
// verifier have made to the built-in provider (in process); 0 in other
// modes.
func (s *Server) ProviderRequests() int64 {
	if s.providerRequests == nil {
		return 0
	}
	return s.providerRequests.Load()
}

// Serve serves on the listener until ctx ends, then stops accepting
// connections, waits for in-flight calls (at most the configured shutdown
// timeout) and closes the server. It returns nil after a clean shutdown,
// which its last log line reports with the drain's duration.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopAsked := make(chan time.Time, 1)
	go func() { <-ctx.Done(); stopAsked <- s.now() }()

	if host, port, err := net.SplitHostPort(s.ln.Addr().String()); err == nil && net.ParseIP(host).IsUnspecified() {
		// http://[::]:8080 is no address to give anyone: say what it means
		// and give URLs that work, here and from elsewhere.
		attrs := []any{"listen", s.ln.Addr().String()}
		if ip := networkAddress(); ip != "" {
			attrs = append(attrs, "network_url", s.scheme()+"://"+net.JoinHostPort(ip, port))
		}
		s.logger.Info("listening on all interfaces: reachable from other machines", attrs...)
	}
	s.logger.Info("nsauth serving", "url", s.URL(), "auth", s.cfg.Auth.Mode.String())
	err := server.Serve(ctx, s.ln, s.handler, server.ServeOptions{TLS: s.tls, ShutdownTimeout: s.cfg.ShutdownTimeout, Logger: s.logger})
	drained := s.now()
	if cerr := s.Close(); cerr != nil {
		s.logger.Warn("closing the server", "error", cerr)
	}
	if err != nil {
		return err
	}
	// The stop may be noted a moment after the drain ended, when there
	// was nothing to drain.
	s.logger.Info("nsauth stopped", "drain", max(0, drained.Sub(<-stopAsked)).Round(time.Microsecond).String())
	return nil
}

// networkAddress returns an address other machines may reach this one on
// (the first global unicast one, IPv4 preferred), or "".
func networkAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	var v6 string
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || !n.IP.IsGlobalUnicast() {
			continue
		}
		if n.IP.To4() != nil {
			return n.IP.String()
		}
		if v6 == "" {
			v6 = n.IP.String()
		}
	}
	return v6
}

// Close stops background work and releases the listener and the store.
// Serve calls it; call it yourself only for a server never served. It may
// be called more than once.
func (s *Server) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		s.stop()
		for i := len(s.closers) - 1; i >= 0; i-- {
			if err := s.closers[i](); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}
