package authflow

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/browsersession"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/issuer/mfa"
	"github.com/nsauth/nsauth/internal/issuer/passkey"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// MaxAuthRequestIDLen bounds a sealed auth request, base64url-encoded, as
// the login forms and URLs carry it.
const MaxAuthRequestIDLen = 8 << 10

const maxAuthRequestIDLen = MaxAuthRequestIDLen

// ErrRequestExpired is what [RequestOpener.Open] returns for a sealed auth
// request past its expiry; any other error means it does not open.
var ErrRequestExpired = errors.New("the auth request has expired")

var errRequestExpired = ErrRequestExpired

// RequestOpener opens the sealed auth requests the login forms carry.
type RequestOpener interface {
	// Open returns the request sealed in blob; ErrRequestExpired when it
	// has expired.
	Open(blob string) (*store.AuthRequest, error)
}

// CodeSaver stores the authorization code of a completed auth request
// (storage.Storage.SaveAuthCode).
type CodeSaver interface {
	SaveAuthCode(ctx context.Context, id, code string) error
}

// DeviceApproval shows the approval page that ends a device login
// (devicepages.Pages.ShowApproval).
type DeviceApproval interface {
	ShowApproval(w http.ResponseWriter, ctx context.Context, ar *store.AuthRequest, user *store.User, amr []string, csrf string)
}

// Store is the storage a login needs: users, the steps' pending state,
// completed auth requests, second factors, enrolment links and passkeys.
type Store interface {
	mfa.Store
	passkey.Store
	passkey.CeremonyStore
	UserByUsername(ctx context.Context, username string) (*store.User, error)
	CreatePendingMFA(ctx context.Context, p *store.PendingMFA, token string) error
	PendingMFA(ctx context.Context, token string) (*store.PendingMFA, error)
	TakePendingMFA(ctx context.Context, token string) (*store.PendingMFA, error)
	SetPendingCeremony(ctx context.Context, token string, session []byte) error
	TakePendingCeremony(ctx context.Context, token string) ([]byte, error)
	EnrollTOTP(ctx context.Context, userID, secret string, usedStep int64, recoveryCodes []string) error
	AddRecoveryCodesIfNone(ctx context.Context, userID string, codes []string) error
	AddPasskey(ctx context.Context, p *store.Passkey) error
	EnrolLinkUser(ctx context.Context, token string) (*store.User, error)
	TakeEnrolLink(ctx context.Context, token, userID string) error
	InsertCompletedAuthRequest(ctx context.Context, r *store.AuthRequest, userID string, amr []string, minRemaining time.Duration) error
	AuthRequestByID(ctx context.Context, id string) (*store.AuthRequest, error)
	SessionStore
}

// SessionStore is what single sign-on needs besides the login's storage:
// the apps, the grants issued in a browser session, the end of a session
// a login replaced, consents, and the auth_time of a login completed
// from a session.
type SessionStore interface {
	ClientByID(ctx context.Context, id string) (*store.Client, error)
	AddSessionGrant(ctx context.Context, g store.SessionGrant) error
	EndSession(ctx context.Context, id string, keep func(store.SessionGrant) bool) ([]store.SessionGrant, error)
	ConsentedScopes(ctx context.Context, userID, clientID string) ([]string, error)
	GrantConsent(ctx context.Context, userID, clientID string, scopes []string) error
	SetCompletedAuthTime(ctx context.Context, id string, authTime time.Time) error
}

// Config is what a login flow needs. Every field is required unless its
// comment says otherwise.
type Config struct {
	Store Store
	// Requests opens the sealed auth requests.
	Requests RequestOpener
	// Codes stores the code of a completed login; Device shows the
	// approval page of a device login.
	Codes  CodeSaver
	Device DeviceApproval
	// Events records the flow's events: audit row, metric, log line.
	Events *events.Recorder
	Pages  web.Renderer
	CSRF   web.CSRF
	// Guard holds the login limits; Refusals throttles the log lines of
	// refused attempts.
	Guard    *attempts.Guard
	Refusals *attempts.RefusalLog
	// Passkeys is the WebAuthn relying party; nil when passkeys are
	// unavailable, and the pages do not offer them.
	Passkeys *webauthn.WebAuthn
	// Clients resolves a request's client address.
	Clients *clientaddr.Resolver
	// Sessions keeps the browser sessions; nil means none: every login
	// asks for the password and none starts a session.
	Sessions *browsersession.Manager
	// Issuer is the issuer URL, which authorization responses carry
	// (RFC 9207 iss).
	Issuer string
	// BrokerClientID is the broker's app (nsauth-cli): within a browser
	// session its logins show one "Continue as" page, since a terminal
	// login must stay a deliberate act.
	BrokerClientID string
	// Origin is the issuer's scheme://host; Secure says it is https.
	Origin string
	Secure bool
	// RequireSecondFactor: a user without a second factor cannot finish a
	// login.
	RequireSecondFactor bool
	// Connectors are the login page's connectors (connectorflow); nil
	// means none. NoPasswordLogin: the password form takes no nsauth
	// password (NSAUTH_PASSWORD_LOGIN=false), only LDAP connectors'.
	Connectors      Connectors
	NoPasswordLogin bool
	// CodeTTL is how long an authorization code lives.
	CodeTTL time.Duration
	Now     func() time.Time
	Log     *slog.Logger
}

// Flow serves the pages of a browser login: the password page, the steps
// after it, passwordless passkeys and enrolment links.
type Flow struct {
	*deps
	password     *passwordStep
	enrolLink    *enrolLinkStep
	secondFactor *secondFactorStep
	enrol        *enrolStep
	passkey      *passkeyStep
	offer        *passkeyOffer
	sso          *ssoStep
}

// New returns the login flow of cfg.
func New(cfg Config) *Flow {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &deps{cfg: cfg, st: cfg.Store, sealer: cfg.Requests, codes: cfg.Codes, device: cfg.Device, events: cfg.Events,
		pages: cfg.Pages, csrf: cfg.CSRF, guard: cfg.Guard, refusals: cfg.Refusals, passkeys: cfg.Passkeys,
		origin: cfg.Origin, secure: cfg.Secure, log: cfg.Log, sessions: cfg.Sessions}
	forms, check := &stepForms{d}, passwordCheck{d}
	f := &Flow{deps: d, password: &passwordStep{d, check}, enrolLink: &enrolLinkStep{d, check}, secondFactor: &secondFactorStep{d, forms},
		enrol: &enrolStep{d, forms}, passkey: &passkeyStep{d}, offer: &passkeyOffer{d, forms}, sso: &ssoStep{d}}
	d.next, d.finish = f.next, f.finishLogin
	return f
}

// Route is one page of the flow for the provider's mux.
type Route struct {
	Pattern string
	// Form is the form guard's setting for a post (web.Guard); nil for a
	// route that takes no post.
	Form *web.Form
	// Limited puts the route behind the authorize endpoint's limit per
	// client address, before the guard: a refused post costs no more than
	// it.
	Limited bool
	Handler http.Handler
}

// Routes lists the flow's pages.
func (f *Flow) Routes() []Route {
	signIn := func(limit int64) *web.Form { return &web.Form{Limit: limit, Title: "Sign in"} }
	return []Route{
		{Pattern: "GET " + loginPath, Handler: http.HandlerFunc(f.showLogin)},
		{Pattern: "POST " + continuePath, Form: signIn(maxLoginFormBytes), Handler: http.HandlerFunc(f.sso.submitContinue)},
		{Pattern: "POST " + consentPath, Form: &web.Form{Limit: maxLoginFormBytes, Title: titleConsent}, Handler: http.HandlerFunc(f.sso.submitConsent)},
		{Pattern: "POST " + loginPath, Form: signIn(maxLoginFormBytes), Handler: http.HandlerFunc(f.password.submitLogin)},
		{Pattern: "POST " + mfaPath, Form: signIn(maxLoginFormBytes), Handler: http.HandlerFunc(f.secondFactor.submitSecondFactor)},
		{Pattern: "POST " + mfaEnrollPath, Form: signIn(maxLoginFormBytes), Handler: http.HandlerFunc(f.enrol.submitEnrollment)},
		{Pattern: "POST " + mfaContinuePath, Form: signIn(maxLoginFormBytes), Handler: http.HandlerFunc(f.enrol.submitContinue)},
		{Pattern: "GET " + EnrolLinkPath, Limited: true, Handler: http.HandlerFunc(f.enrolLink.showEnrolLink)},
		{Pattern: "POST " + EnrolLinkPath, Limited: true, Form: &web.Form{Limit: maxLoginFormBytes, Title: titleEnrolByLink},
			Handler: http.HandlerFunc(f.enrolLink.submitEnrolLink)},
		{Pattern: "POST " + passkeyBeginPath, Form: &web.Form{Kind: web.JSONPost, Limit: maxPasskeyBeginBytes}, Handler: http.HandlerFunc(f.passkey.beginPasskey)},
		{Pattern: "POST " + passkeyFinishPath, Form: signIn(maxPasskeyFormBytes), Handler: http.HandlerFunc(f.passkey.finishPasskey)},
		{Pattern: "POST " + passkeyRegisterPath, Form: signIn(maxPasskeyFormBytes), Handler: http.HandlerFunc(f.offer.submitPasskeyRegistration)},
		{Pattern: "POST " + passkeySkipPath, Form: signIn(maxLoginFormBytes), Handler: http.HandlerFunc(f.offer.skipPasskey)},
		{Pattern: "POST " + mfaPasskeyPath, Form: signIn(maxPasskeyFormBytes), Handler: http.HandlerFunc(f.secondFactor.submitPasskeySecondFactor)},
		{Pattern: "POST " + mfaPasskeyEnrollPath, Form: signIn(maxPasskeyFormBytes), Handler: http.HandlerFunc(f.enrol.submitPasskeyEnroll)},
	}
}

// LoginPath is the login page's path under the issuer URL.
const LoginPath = "/login"

const loginPath = LoginPath
