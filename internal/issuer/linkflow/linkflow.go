// Package linkflow is the browser's side of one-time account links (nsauth
// users invite, nsauth users reset-link): the pages on which the holder of
// a link sets the user's password, enrols or proves a second factor, and
// is signed in.
//
// The steps, each bound to the browser that opened the link:
//
//  1. GET /link?link=SECRET checks the link (it exists, has not expired —
//     an expired one is audited with its ref and deleted — and its user is
//     enabled), keeps the secret in an HttpOnly cookie of this browser and
//     redirects to /link, so that the secret leaves the address bar, the
//     history and the Referer at once. Opening uses nothing: a mail
//     scanner following the link does not spend it.
//  2. GET /link shows the password form; POST /link takes the new
//     password twice. A reset link of a user who has second factors asks
//     for one of them on the same form (a code of the authenticator app,
//     a recovery code, or a passkey through the login's passkey script,
//     whose ceremony is kept on a step bound to this browser): a leaked
//     reset link alone never takes an
//     account a factor protects, and it adds no factor. The link is used
//     up (store.TakeLink: of two browsers at once exactly one wins) before
//     the password is set, and audited link.used with its ref.
//  3. A user without a second factor is offered one (an authenticator
//     app, or a passkey through the login's passkey script): required
//     under NSAUTH_MFA=required, else "later". The step is kept
//     server-side (store.PendingMFA) under a key whose other half is the
//     browser's CSRF token, like the login's steps.
//  4. The browser session starts (amr pwd, plus the factor's) and the
//     browser goes to /account.
//
// The secret appears in no log line, audit record, error or page: the
// audit trail names a link by its ref (store Link.ID).
package linkflow

import (
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/authflow"
	"github.com/nsauth/nsauth/internal/issuer/browsersession"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// Paths of the link's pages.
const (
	// Path is where a link points: ISSUER/link?link=SECRET.
	Path         = "/link"
	totpPath     = "/link/totp"
	passkeyPath  = "/link/passkey"
	laterPath    = "/link/later"
	continuePath = "/link/continue"
	// AccountPath is where the flow ends, signed in.
	AccountPath = "/account"
)

// URL is the link of secret under the issuer URL.
func URL(issuer, secret string) string {
	return issuer + Path + "?link=" + url.QueryEscape(secret)
}

// SecretBytes is the size of a link's secret (store.RandomToken).
const SecretBytes = 32

// Config is what a [Flow] works with. Every field but Passkeys and Log is
// required.
type Config struct {
	Store    *store.Store
	Events   *events.Recorder
	Pages    web.Renderer
	CSRF     web.CSRF
	Guard    *attempts.Guard
	Sessions *browsersession.Manager
	// Passkeys is the WebAuthn relying party; nil when passkeys are
	// unavailable (the flow then offers the authenticator app alone).
	Passkeys *webauthn.WebAuthn
	Clients  *clientaddr.Resolver
	// Issuer is the issuer URL (the TOTP issuer's name is its host).
	Issuer string
	// Secure: the issuer is https (cookies get Secure and __Host-).
	Secure bool
	// RequireSecondFactor is NSAUTH_MFA=required: a user without a
	// factor must enrol one before the session starts.
	RequireSecondFactor bool
	Now                 func() time.Time
	Log                 *slog.Logger
}

// Flow serves the link's pages.
type Flow struct {
	cfg Config
	log *slog.Logger
}

// New returns the flow of cfg.
func New(cfg Config) *Flow {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Flow{cfg: cfg, log: cfg.Log}
}

// maxFormBytes bounds a form of the link's pages; a passkey's answer is
// the largest.
const maxFormBytes = 64 << 10

// Routes lists the flow's pages, as authflow lists its own: every post
// goes through the form guard, and opening a link or posting a password
// is behind the authorize endpoint's limit per client address (an unknown
// link costs one indexed read).
func (f *Flow) Routes() []authflow.Route {
	form := &web.Form{Limit: maxFormBytes, Title: titleSetPassword}
	return []authflow.Route{
		{Pattern: "GET " + Path, Limited: true, Handler: http.HandlerFunc(f.open)},
		{Pattern: "POST " + Path, Limited: true, Form: form, Handler: http.HandlerFunc(f.submitPassword)},
		{Pattern: "POST " + totpPath, Form: form, Handler: http.HandlerFunc(f.submitTOTP)},
		{Pattern: "POST " + passkeyPath, Form: form, Handler: http.HandlerFunc(f.submitPasskey)},
		{Pattern: "POST " + laterPath, Form: form, Handler: http.HandlerFunc(f.submitLater)},
		{Pattern: "POST " + continuePath, Form: form, Handler: http.HandlerFunc(f.submitContinue)},
	}
}

// Titles and messages of the pages.
const (
	titleSetPassword = "Set your password"
	titleFactor      = "Set up a second factor"
	msgLinkGone      = "This link is not valid: it has expired, was already used, or was replaced by a newer one. " +
		"Ask your administrator for a new one."
	msgOpenAgain = "Open the link you were given again, in this browser."
	msgStepGone  = "This took too long, or was finished in another window. Sign in at the application you were going to use."
	msgInternal  = web.MsgInternal
	msgMismatch  = "The two passwords are not the same."
	msgWrongCode = "That code is not right. Check the time on your device, or use a recovery code."
	msgTooMany   = "Too many wrong codes. Try again in %s."
	msgRequired  = "This server requires a second factor: set one up to go on."
	msgNotSaved  = "The passkey was not saved. Try again, or use an authenticator app."
)

func (f *Flow) message(w http.ResponseWriter, status int, title, msg string) {
	f.cfg.Pages.Message(w, status, title, msg)
}
