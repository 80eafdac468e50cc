package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/authservice"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/server"
	"github.com/nsauth/nsauth/internal/upstream"
	"github.com/nsauth/nsauth/pkg/authn"
)

// discoveryStartTimeout bounds the first discovery attempt at start; a
// provider that is slower than this is retried in the background.
const discoveryStartTimeout = 5 * time.Second

func newServeCommand(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the AuthService server",
		Long: `Run the AuthService server: Connect, gRPC and gRPC-Web on one port, with
health checking, reflection and Prometheus metrics.

Configuration comes from flags or environment variables (Neosync's names are
accepted unchanged); flags win. With no external provider configured, nsauth
runs its own OpenID provider in the same process: accounts live in a SQLite
database under --data-dir, or in PostgreSQL with --database-url, and the first
start creates an administrator. AUTH_ENABLED=false turns authentication off.`,
		Example: `  # Built-in provider on 127.0.0.1:8080 (prints the admin password at first start)
  nsauth serve

  # Built-in provider on PostgreSQL, reachable by other machines
  NSAUTH_DATABASE_URL=postgres://nsauth@db/nsauth nsauth serve \
    --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem --issuer https://auth.example.com:8443

  # Broker an external OpenID provider
  AUTH_BASEURL=https://auth.example.com/realms/neosync \
  AUTH_AUDIENCE=neosync AUTH_CLI_CLIENT_ID=neosync-cli \
  AUTH_CLIENTID_SECRET='{"neosync-cli":"…"}' nsauth serve --listen 0.0.0.0:8080`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cmd.Flags(), app.Getenv)
			if err != nil {
				return err
			}
			return runServe(cmd.Context(), app, cfg)
		},
	}
	config.RegisterFlags(cmd.Flags())
	return cmd
}

// newLogger builds the process logger: text or JSON on w.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runServe(ctx context.Context, app *App, cfg *config.Server) (err error) {
	logger := newLogger(app.ErrOut, cfg.LogFormat, cfg.LogLevel)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The last line of a clean shutdown, once everything (the built-in
	// provider's store included) is closed.
	stopAsked := make(chan time.Time, 1)
	go func() { <-ctx.Done(); stopAsked <- app.Now() }()
	var drained time.Time
	defer func() {
		if err == nil && !drained.IsZero() {
			// The goroutine may note the stop a moment after the drain
			// ended, when there was nothing to drain.
			logger.Info("nsauth stopped", "drain", max(0, drained.Sub(<-stopAsked)).Round(time.Microsecond).String())
		}
	}()

	svcCfg := authservice.Config{
		AllowedRedirectURIs: cfg.Auth.AllowedRedirectURIs,
		AllowedScopes:       cfg.Auth.AllowedScopes,
		RequirePKCE:         cfg.Auth.RequirePKCE,
		Logger:              logger,
	}
	clients := clientaddr.NewResolver(cfg.TrustedProxies)
	srvCfg := server.Config{
		MaxRequestBytes: cfg.MaxRequestBytes,
		Logger:          logger,
		Pprof:           cfg.Pprof,
		RateLimit: server.RateLimit{
			Procedures: []string{
				mgmtv1alpha1connect.AuthServiceLoginCliProcedure,
				mgmtv1alpha1connect.AuthServiceRefreshCliProcedure,
				mgmtv1alpha1connect.AuthServiceRevokeCliProcedure,
			},
			PerMinute: cfg.RateLimitPerMinute,
			Clients:   clients,
		},
	}
	if cfg.Pprof {
		logger.Warn("pprof endpoints are served under /debug/pprof/ (--pprof): they expose internals; do not enable this in production")
	}

	// Listen before configuring auth: the built-in provider's issuer URL
	// is derived from the bound address (port 0 picks one).
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()

	if cfg.Auth.RequirePKCE && cfg.Auth.Mode != config.AuthDisabled {
		logger.Info("PKCE is required (NSAUTH_REQUIRE_PKCE): clients that send no code challenge, Neosync's own CLI among them, cannot log in")
	}
	switch cfg.Auth.Mode {
	case config.AuthDisabled:
		logger.Warn("authentication is DISABLED: every procedure is open and clients send no tokens; unset AUTH_ENABLED=false to use the built-in provider, or set AUTH_BASEURL (and AUTH_AUDIENCE, AUTH_CLI_CLIENT_ID) for an external one")
	case config.AuthExternal:
		provider, interceptor, err := startProvider(ctx, cfg.Auth, providerStart{now: app.Now}, logger)
		if err != nil {
			return err
		}
		svcCfg.Enabled, svcCfg.Broker = true, provider
		srvCfg.Authn, srvCfg.Ready = interceptor, provider.Ready
	case config.AuthBuiltin:
		b, err := startBuiltinProvider(ctx, app, cfg, ln.Addr(), logger)
		if err != nil {
			return err
		}
		defer b.close()
		svcCfg.Enabled, svcCfg.Broker = true, b.provider
		srvCfg.Authn, srvCfg.Ready, srvCfg.Fallback = b.interceptor, b.provider.Ready, b.handler
	}

	svc, err := authservice.New(svcCfg)
	if err != nil {
		return err
	}
	srvCfg.Service = svc
	handler, err := server.NewHandler(srvCfg)
	if err != nil {
		return err
	}
	var tlsCfg *tls.Config
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("loading TLS certificate: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	serving := scheme + "://" + ln.Addr().String()
	if host, port, err := net.SplitHostPort(ln.Addr().String()); err == nil && net.ParseIP(host).IsUnspecified() {
		// http://[::]:8080 is no address to give anyone: say what it means
		// and give URLs that work, here and from elsewhere.
		serving = scheme + "://" + net.JoinHostPort("127.0.0.1", port)
		attrs := []any{"listen", ln.Addr().String()}
		if ip := networkAddress(); ip != "" {
			attrs = append(attrs, "network_url", scheme+"://"+net.JoinHostPort(ip, port))
		}
		logger.Info("listening on all interfaces: reachable from other machines", attrs...)
		if cfg.Auth.Mode == config.AuthBuiltin && cfg.Auth.Builtin.Issuer == "" {
			logger.Warn("the built-in provider's issuer is derived from the listen address, which browsers on other machines cannot reach; set --issuer (NSAUTH_ISSUER) to a URL they can",
				"issuer", config.DeriveIssuer(ln.Addr(), tlsCfg != nil))
		}
	}
	logger.Info("nsauth serving", "url", serving, "auth", cfg.Auth.Mode.String())
	if err := server.Serve(ctx, ln, handler, server.ServeOptions{TLS: tlsCfg, ShutdownTimeout: cfg.ShutdownTimeout, Logger: logger}); err != nil {
		return err
	}
	drained = app.Now()
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

// providerStart tunes how startProvider brings a provider up.
type providerStart struct {
	// now is the clock of the broker and of token verification.
	now func() time.Time
	// background skips the blocking first discovery attempt, leaving it to
	// the provider's background loop after retryMin. The built-in provider
	// needs this: this very process serves it, and is not listening yet.
	background bool
	retryMin   time.Duration
}

// startProvider discovers the configured provider (once, briefly; then in
// the background) and builds the token-checking interceptor. An issuer
// mismatch is fatal; an unreachable provider is not. The built-in provider
// goes through here too, over HTTP, exactly as an external one.
func startProvider(ctx context.Context, a config.Auth, start providerStart, logger *slog.Logger) (*upstream.Provider, *authn.Interceptor, error) {
	if a.ClientSecret == "" {
		logger.Info("no client secret configured for the CLI client; acting as a public client (clients should use PKCE)", "client_id", a.ClientID)
	}
	provider, err := upstream.New(upstream.Config{
		BaseURL:        a.BaseURL,
		ExpectedIssuer: a.ExpectedIssuer,
		ClientID:       a.ClientID,
		ClientSecret:   a.ClientSecret,
		Audience:       a.CLIAudience,
		RetryMin:       start.retryMin,
		Now:            start.now,
		Logger:         logger,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("configuring the provider: %w", err)
	}
	if !start.background {
		initCtx, cancel := context.WithTimeout(ctx, discoveryStartTimeout)
		err = provider.Init(initCtx)
		cancel()
		switch {
		case errors.Is(err, upstream.ErrIssuerMismatch):
			return nil, nil, fmt.Errorf("invalid configuration: AUTH_EXPECTED_ISS / AUTH_BASEURL: %w", err)
		case err != nil:
			logger.Warn("provider not reachable yet; retrying in the background, and answering Unavailable meanwhile", "error", err)
		}
	}
	go provider.Run(ctx)

	verifier, err := newTokenVerifier(a, provider, start.now, logger)
	if err != nil {
		return nil, nil, err
	}
	interceptor := authn.NewInterceptor(verifier,
		authn.WithPublicProcedures(authservice.PublicProcedures...),
		authn.WithLogger(logger))
	return provider, interceptor, nil
}

// newTokenVerifier builds what checks access tokens for the configured
// token mode: JWT verification against the provider's JWKS, RFC 7662
// introspection, or both (JWT-shaped tokens verified, others introspected).
func newTokenVerifier(a config.Auth, provider *upstream.Provider, now func() time.Time, logger *slog.Logger) (authn.TokenVerifier, error) {
	httpClient := upstream.NewHTTPClient()
	var jwtVerifier, introspector authn.TokenVerifier
	if a.TokenMode != config.TokenModeIntrospection {
		keys, err := authn.NewRemoteKeySet(authn.RemoteKeySetConfig{URL: provider.JWKSURL, HTTPClient: httpClient, Logger: logger, Now: now})
		if err != nil {
			return nil, err
		}
		v, err := authn.NewVerifier(authn.VerifierConfig{
			Issuer:                 a.ExpectedIssuer,
			Audiences:              a.Audiences,
			Algorithms:             a.Algorithms,
			KeySet:                 keys,
			ClockSkew:              a.ClockSkew,
			Now:                    now,
			RequireAccessTokenType: a.RequireAccessTokenType,
		})
		if err != nil {
			return nil, fmt.Errorf("configuring token verification: %w", err)
		}
		jwtVerifier = v
	}
	if a.TokenMode != config.TokenModeJWT {
		endpoint := provider.IntrospectionURL
		if a.IntrospectionURL != "" {
			endpoint = authn.StaticURL(a.IntrospectionURL)
		}
		cacheTTL := a.IntrospectionCacheTTL
		if cacheTTL == 0 {
			cacheTTL = -1 // "0s" means no reuse at all
		}
		in, err := authn.NewIntrospector(authn.IntrospectorConfig{
			URL:          endpoint,
			ClientID:     a.ClientID,
			ClientSecret: a.ClientSecret,
			Issuer:       a.ExpectedIssuer,
			Audiences:    a.Audiences,
			HTTPClient:   httpClient,
			Now:          now,
			CacheTTL:     cacheTTL,
		})
		if err != nil {
			return nil, fmt.Errorf("configuring token introspection: %w", err)
		}
		introspector = in
	}
	switch a.TokenMode {
	case config.TokenModeIntrospection:
		return introspector, nil
	case config.TokenModeJWTOrIntrospection:
		return authn.ChainVerifier{JWT: jwtVerifier, Introspection: introspector}, nil
	default:
		return jwtVerifier, nil
	}
}
