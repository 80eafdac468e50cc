package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/upstream"
	"github.com/nsauth/nsauth/pkg/authn"
)

// builtinDiscoveryRetry is how soon the broker first asks the built-in
// provider for its discovery document: the listener is open by then, and
// serving a few milliseconds later.
const builtinDiscoveryRetry = 100 * time.Millisecond

// builtinProvider is the built-in OpenID provider as `nsauth serve` wires
// it: its HTTP handler (mounted as the server's fallback, so it shares the
// listener), and the broker and token verifier the AuthService uses, which
// reach it over HTTP like any external provider.
type builtinProvider struct {
	handler     http.Handler
	provider    *upstream.Provider
	interceptor *authn.Interceptor
	close       func()
}

// startBuiltinProvider opens the store, prepares it at first start (client,
// administrator), starts the provider and points a broker at it. The
// issuer URL is --issuer, or derived from addr, the bound listen address.
func startBuiltinProvider(ctx context.Context, app *App, cfg *config.Server, addr net.Addr, logger *slog.Logger) (*builtinProvider, error) {
	b := cfg.Auth.Builtin
	issuerURL := b.Issuer
	if issuerURL == "" {
		issuerURL = config.DeriveIssuer(addr, cfg.TLSCertFile != "")
	}
	// The OpenID library logs through slog's default logger. Send that to
	// ours, warnings and up (its info lines are route listings).
	slog.SetDefault(slog.New(minLevel{logger.Handler(), max(slog.LevelWarn, cfg.LogLevel)}).With("component", "oidc"))

	st, err := openStore(ctx, b.DataDir, b.DatabaseURL, app.Now)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = st.Close()
		}
	}()
	boot, err := issuer.Bootstrap(ctx, st, issuer.BootstrapConfig{AdminUser: b.AdminUser, AdminPassword: b.AdminPassword})
	if err != nil {
		return nil, fmt.Errorf("preparing the built-in provider: %w", err)
	}
	// The setting's 0 means no limit; issuer.Config's means its default.
	authorizeLimit := b.AuthorizePerMinute
	if authorizeLimit == 0 {
		authorizeLimit = -1
	}
	iss, err := issuer.New(ctx, issuer.Config{
		Issuer:              issuerURL,
		Store:               st,
		ClientID:            boot.ClientID,
		AccessTokenTTL:      b.AccessTokenTTL,
		RefreshTokenTTL:     b.RefreshTokenTTL,
		KeyRotation:         b.KeyRotation,
		LoginAttempts:       b.LoginAttempts,
		RequirePKCE:         cfg.Auth.RequirePKCE,
		AuthorizePerMinute:  authorizeLimit,
		AllowedRedirectURIs: cfg.Auth.AllowedRedirectURIs,
		AllowedScopes:       cfg.Auth.AllowedScopes,
		InsecureAllowHTTP:   b.InsecureHTTPIssuer,
		Clients:             clientaddr.NewResolver(cfg.TrustedProxies),
		Now:                 app.Now,
		Logger:              logger.With("component", "issuer"),
	})
	if err != nil {
		return nil, fmt.Errorf("starting the built-in provider: %w", err)
	}
	go iss.Run(ctx)
	printBuiltinBanner(app.ErrOut, st, issuerURL, boot)
	logger.Info("built-in OpenID provider", "issuer", issuerURL, "store", st.Backend(), "location", st.Location())

	a := cfg.Auth
	a.BaseURL, a.ExpectedIssuer = issuerURL, issuerURL
	a.Audiences = []string{iss.Audience()}
	a.ClientID, a.ClientSecret = boot.ClientID, boot.ClientSecret
	a.CLIAudience = ""
	provider, interceptor, err := startProvider(ctx, a, providerStart{now: app.Now, background: true, retryMin: builtinDiscoveryRetry}, logger)
	if err != nil {
		return nil, err
	}
	ok = true
	return &builtinProvider{
		handler:     iss.Handler(),
		provider:    provider,
		interceptor: interceptor,
		close:       func() { _ = st.Close() },
	}, nil
}

// openStore opens PostgreSQL when a database URL is given, else SQLite in
// dataDir.
func openStore(ctx context.Context, dataDir, databaseURL string, now func() time.Time) (*store.Store, error) {
	opts := store.Options{Now: now}
	if databaseURL != "" {
		st, err := store.OpenPostgres(ctx, databaseURL, opts)
		if err != nil {
			return nil, fmt.Errorf("opening the database: %w", err)
		}
		return st, nil
	}
	st, err := store.OpenSQLite(ctx, dataDir, opts)
	if err != nil {
		return nil, fmt.Errorf("opening the database in %s: %w", dataDir, err)
	}
	return st, nil
}

// printBuiltinBanner tells the operator, on the terminal and never in the
// log, where the data is, what the issuer is and, at first start, how to log
// in. The generated password appears here once and nowhere else.
func printBuiltinBanner(w io.Writer, st *store.Store, issuerURL string, boot *issuer.BootstrapResult) {
	kind := "SQLite database"
	if st.Backend() == "postgres" {
		kind = "PostgreSQL"
	}
	fmt.Fprintf(w, "nsauth built-in OpenID provider\n  data:   %s %s\n  issuer: %s\n", kind, st.Location(), issuerURL)
	switch {
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

// minLevel is a slog handler that drops records below a level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}
