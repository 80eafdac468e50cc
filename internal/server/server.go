package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
)

// Config describes what the handler serves.
type Config struct {
	// Service is the AuthService implementation. Required.
	Service mgmtv1alpha1connect.AuthServiceHandler
	// Tracing, when set, is the outermost interceptor of the service (so
	// that every other interceptor's log lines and refusals fall within
	// its span): OpenTelemetry's, or nil when tracing is off.
	Tracing connect.Interceptor
	// Authn guards the service; nil when authentication is disabled.
	Authn connect.Interceptor
	// Ready reports readiness for health checks. Defaults to always ready.
	Ready func() bool
	// MaxRequestBytes caps request bodies. Defaults to
	// [DefaultMaxRequestBytes].
	MaxRequestBytes int64
	// Logger receives one line per call. Defaults to discarding.
	Logger *slog.Logger
	// Registry collects metrics, served at /metrics. Defaults to a new
	// registry with Go and process collectors.
	Registry *prometheus.Registry
	// Fallback serves every path not otherwise routed (the built-in
	// provider mounts here). Defaults to 404.
	Fallback http.Handler
	// Pprof serves net/http/pprof under /debug/pprof/ when true.
	Pprof bool
	// RateLimits limit calls per client address, each with its own budget
	// (a procedure in several is counted by each). None limits nothing.
	RateLimits []RateLimit
	// Admin, when set, is nsauth.admin.v1.AdminService (the built-in
	// provider's administration), served behind the same interceptors as
	// the AuthService (its calls then need a token the Authn interceptor
	// verified) and then AdminAuthz. Reflection lists it.
	Admin adminv1connect.AdminServiceHandler
	// AdminAuthz admits callers of Admin (adminservice's interceptor).
	// Required with Admin.
	AdminAuthz connect.Interceptor
	// HSTSMaxAge, when positive, makes every response carry
	// Strict-Transport-Security with this max-age (whole seconds): for a
	// server reached over https, directly or through a TLS-terminating
	// proxy. Zero sends no such header.
	HSTSMaxAge time.Duration
}

// DefaultMaxRequestBytes is the request body limit when none is set.
const DefaultMaxRequestBytes = 64 << 10

// HandlerOptions are the Connect options every service on the server gets,
// interceptors aside: the request size limit, and no compression of
// responses under 1 KiB (compressing small messages costs more than it
// saves). The bench's ceiling server uses them too, so that it differs
// from nsauth only by what nsauth adds.
func HandlerOptions(maxRequestBytes int64) []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithReadMaxBytes(int(maxRequestBytes)),
		connect.WithCompressMinBytes(1024),
	}
}

// NewHandler returns the server's root handler.
func NewHandler(cfg Config) (http.Handler, error) {
	if cfg.Service == nil {
		return nil, errors.New("server: a service is required")
	}
	if cfg.Admin != nil && (cfg.AdminAuthz == nil || cfg.Authn == nil) {
		return nil, errors.New("server: the admin service needs token verification and its authorization interceptor")
	}
	if cfg.Ready == nil {
		cfg.Ready = func() bool { return true }
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = NewRegistry()
	}

	// The onion, outermost first: tracing, metrics, logging, rate limits,
	// authentication.
	var interceptors []connect.Interceptor
	if cfg.Tracing != nil {
		interceptors = append(interceptors, cfg.Tracing)
	}
	interceptors = append(interceptors, newMetrics(cfg.Registry).interceptor(), loggingInterceptor{cfg.Logger})
	for _, limit := range cfg.RateLimits {
		if rl := newRateLimiter(limit); rl != nil {
			interceptors = append(interceptors, rl)
		}
	}
	if cfg.Authn != nil {
		interceptors = append(interceptors, cfg.Authn)
	}
	opts := append(HandlerOptions(cfg.MaxRequestBytes), connect.WithInterceptors(interceptors...))

	mux := http.NewServeMux()
	mux.Handle(mgmtv1alpha1connect.NewAuthServiceHandler(cfg.Service, opts...))
	services := []string{mgmtv1alpha1connect.AuthServiceName, grpchealth.HealthV1ServiceName}
	if cfg.Admin != nil {
		adminOpts := append(HandlerOptions(cfg.MaxRequestBytes), connect.WithInterceptors(append(slices.Clip(interceptors), cfg.AdminAuthz)...))
		mux.Handle(adminv1connect.NewAdminServiceHandler(cfg.Admin, adminOpts...))
		services = append(services, adminv1connect.AdminServiceName)
	}
	checker := readinessChecker{
		services: map[string]bool{},
		ready:    cfg.Ready,
	}
	for _, name := range services {
		checker.services[name] = true
	}
	mux.Handle(grpchealth.NewHandler(checker, connect.WithReadMaxBytes(int(cfg.MaxRequestBytes))))
	reflector := grpcreflect.NewStaticReflector(services...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, connect.WithReadMaxBytes(int(cfg.MaxRequestBytes))))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, connect.WithReadMaxBytes(int(cfg.MaxRequestBytes))))
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", livez)
	mux.Handle("GET /readyz", readyz(cfg.Ready))
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if cfg.Fallback != nil {
		mux.Handle("/", cfg.Fallback)
	}
	return strictTransportSecurity(http.MaxBytesHandler(mux, cfg.MaxRequestBytes), cfg.HSTSMaxAge), nil
}

// strictTransportSecurity sets the Strict-Transport-Security header on
// every response (RPCs, the provider's pages, health, metrics), before
// anything else writes: browsers then never reach the server over plain
// http again for maxAge, so a network attacker cannot strip TLS from the
// login page. Browsers ignore the header on plain-http responses (RFC 6797
// §8.1), so behind a TLS-terminating proxy it is sent as is. maxAge of
// zero or less leaves h alone.
func strictTransportSecurity(h http.Handler, maxAge time.Duration) http.Handler {
	if maxAge <= 0 {
		return h
	}
	value := "max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", value)
		h.ServeHTTP(w, r)
	})
}

// Timeouts of the HTTP server. WriteTimeout exceeds the provider client's
// own 10 s timeout so slow providers surface as Unavailable, not as cut
// connections.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

// ServeOptions configures [Serve].
type ServeOptions struct {
	// TLS enables TLS (with HTTP/2 by ALPN) when not nil; otherwise the
	// listener serves HTTP/1.1 and h2c.
	TLS *tls.Config
	// ShutdownTimeout bounds the graceful drain once ctx ends. Defaults to
	// 30 s.
	ShutdownTimeout time.Duration
	// Logger receives lifecycle messages.
	Logger *slog.Logger
}

// Serve serves h on ln until ctx ends, then stops accepting connections and
// waits for in-flight calls to finish (at most ShutdownTimeout). It returns
// nil after a clean shutdown.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, opts ServeOptions) error {
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	if opts.TLS != nil {
		protocols.SetHTTP2(true)
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		Handler:           h,
		Protocols:         protocols,
		TLSConfig:         opts.TLS,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() {
		if opts.TLS != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	opts.Logger.Info("shutting down; draining in-flight calls", "timeout", opts.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}
