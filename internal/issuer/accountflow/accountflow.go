package accountflow

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/authflow"
	"github.com/nsauth/nsauth/internal/issuer/backchannel"
	"github.com/nsauth/nsauth/internal/issuer/browsersession"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/issuer/mfa"
	"github.com/nsauth/nsauth/internal/issuer/passkey"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// Paths of the account page and its forms.
const (
	Path         = "/account"
	CallbackPath = "/account/callback"
	LoginPath    = "/account/login"
	ReauthPath   = "/account/reauth"
	PasswordPath = "/account/password"
	EndPath      = "/account/sessions/end"
)

// AppID is the account page's app: the client its login is an
// authorization of (see the package's documentation).
const AppID = "nsauth-account"

// DefaultReauthAfter is the default of Config.ReauthAfter.
const DefaultReauthAfter = 5 * time.Minute

// maxFormBytes bounds the account page's forms (a password is at most
// 1024 bytes; a passkey's credential is the factors' limit).
const maxFormBytes = 8 << 10

// title is the account page's title, and that of its refusal pages.
const title = "Your account"

// Store is the storage the account page needs.
type Store interface {
	mfa.Store
	passkey.Store
	factorStore
	EnsureClient(ctx context.Context, c *store.Client) (bool, error)
	ClientByID(ctx context.Context, id string) (*store.Client, error)
	ListSessions(ctx context.Context, userID string) ([]store.Session, error)
	SessionGrants(ctx context.Context, sessionID string) ([]store.SessionGrant, error)
	EndSession(ctx context.Context, id string, keep func(store.SessionGrant) bool) ([]store.SessionGrant, error)
	AuditEvents(ctx context.Context, f store.AuditFilter) ([]audit.Event, error)
	ReauthenticateSession(ctx context.Context, id string, at time.Time, amr []string) error
	EndOtherSessions(ctx context.Context, userID, keepSessionID string) ([]store.SessionGrant, error)
	UserApps(ctx context.Context, userID string) ([]store.AppUse, error)
	ChangePassword(ctx context.Context, userID, hash, keepSessionID string) error
}

// Notifier sends back-channel logouts (backchannel.Sender).
type Notifier interface {
	Send(ctx context.Context, l backchannel.Logout)
}

// Config is what the account page needs. Every field is required unless
// its comment says otherwise.
type Config struct {
	Store Store
	// Sessions keeps the browser sessions.
	Sessions *browsersession.Manager
	// Events records the page's events: audit row, metric, log line.
	Events *events.Recorder
	Pages  web.Renderer
	CSRF   web.CSRF
	// Guard holds the login limits, which the re-authentication's
	// password and code checks count against; Refusals throttles the log
	// lines of refused attempts.
	Guard    *attempts.Guard
	Refusals *attempts.RefusalLog
	// Passkeys is the WebAuthn relying party; nil when passkeys are
	// unavailable.
	Passkeys *webauthn.WebAuthn
	// Clients resolves a request's client address. Nil means the TCP peer.
	Clients *clientaddr.Resolver
	// Issuer is the issuer URL; AuthorizePath the authorize endpoint's
	// path under it. Secure: the issuer is https.
	Issuer        string
	AuthorizePath string
	Secure        bool
	// Backchannel tells the apps signed in within the sessions the page
	// ends (a sign-out, a password change) by back-channel logout; nil
	// tells none.
	Backchannel Notifier
	// ReauthAfter is how old the session's last proof may be for a
	// sensitive act; zero means [DefaultReauthAfter].
	ReauthAfter time.Duration
	Now         func() time.Time
	// Log receives operational messages; nil discards them.
	Log *slog.Logger
}

// deps are the dependencies every section of the page shares, and the
// helpers over them that every section's handlers use (the session gate,
// the re-authentication gate, rendering, the checks under the login
// limits, the audit trail). A section is a type of its own over them
// (gate, reauthStep, passwordStep, sessionsStep; the factors' on Flow),
// none holding another.
type deps struct {
	cfg Config
	st  Store
	log *slog.Logger
	// mfa checks codes and recovery codes; passkeys checks assertions
	// (nil when passkeys are unavailable).
	mfa      *mfa.Checker
	passkeys *passkey.Verifier
	// appChecked is when the account page's app was last found
	// registered (Unix nanoseconds of cfg.Now), zero for never.
	appChecked atomic.Int64
	// sections reads the factors' sections for the page (Flow,
	// factors*.go).
	sections sections
}

// sections is what the page asks of the factors' sections.
type sections interface {
	// factorsSection reads their data for a's page; factors is what the
	// user has.
	factorsSection(ctx context.Context, a *account, factors mfa.Factors) (any, error)
	// factorsScripted reports whether their data runs the passkey script.
	factorsScripted(data any) bool
}

// Flow serves the account page. It is safe for concurrent use.
type Flow struct {
	*deps
	gate     *gate
	reauth   *reauthStep
	password *passwordStep
	sessions *sessionsStep
}

// The page's own sections.
type (
	// gate is the session gate's pages: the page itself, its login's
	// callback, signing in again.
	gate struct{ *deps }
	// reauthStep is "confirm it's you".
	reauthStep struct{ *deps }
	// passwordStep changes the password.
	passwordStep struct{ *deps }
	// sessionsStep ends sessions.
	sessionsStep struct{ *deps }
)

// New returns the account page of cfg.
func New(cfg Config) *Flow {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReauthAfter <= 0 {
		cfg.ReauthAfter = DefaultReauthAfter
	}
	d := &deps{cfg: cfg, st: cfg.Store, log: cfg.Log, mfa: &mfa.Checker{Store: cfg.Store, Now: cfg.Now}}
	if cfg.Passkeys != nil {
		d.passkeys = &passkey.Verifier{RP: cfg.Passkeys, Store: cfg.Store}
	}
	f := &Flow{deps: d, gate: &gate{d}, reauth: &reauthStep{d}, password: &passwordStep{d}, sessions: &sessionsStep{d}}
	d.sections = f
	return f
}

// Routes lists the account page's routes, in the shape of the login's
// (authflow.Route): every post behind the form guard.
func (f *Flow) Routes() []authflow.Route {
	form := &web.Form{Limit: maxFormBytes, Title: title}
	routes := []authflow.Route{
		{Pattern: "GET " + Path, Handler: http.HandlerFunc(f.gate.showAccount)},
		// The end of the account page's login, which the authorize
		// endpoint's limit covers like the login it ends.
		{Pattern: "GET " + CallbackPath, Limited: true, Handler: http.HandlerFunc(f.gate.callback)},
		{Pattern: "GET " + LoginPath, Limited: true, Handler: http.HandlerFunc(f.gate.signInAgain)},
		{Pattern: "POST " + ReauthPath, Form: form, Handler: http.HandlerFunc(f.reauth.submitReauth)},
		{Pattern: "POST " + PasswordPath, Form: form, Handler: http.HandlerFunc(f.password.submitPassword)},
		{Pattern: "POST " + EndPath, Form: form, Handler: http.HandlerFunc(f.sessions.submitEndSessions)},
	}
	return append(routes, f.factorRoutes()...)
}
