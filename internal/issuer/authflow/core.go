package authflow

import (
	"log/slog"
	"net/http"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/issuer/web"
)

// dispatch hands a flow to the dispatcher (Flow.next): the only way a
// step goes on.
type dispatch func(http.ResponseWriter, *http.Request, *loginFlow)

// deps are the dependencies every step shares, and the helpers over them
// (rendering, a step's pending state, the audit events of refusals). It
// holds no step: a step reaches the next one only through next.
type deps struct {
	cfg      Config
	st       Store
	sealer   RequestOpener
	codes    CodeSaver
	device   DeviceApproval
	events   *events.Recorder
	pages    web.Renderer
	csrf     web.CSRF
	guard    *attempts.Guard
	refusals *attempts.RefusalLog
	passkeys *webauthn.WebAuthn
	origin   string
	secure   bool
	log      *slog.Logger
	next     dispatch
}

// stepForms reads and answers the forms of the steps after the first
// factor (second factor, enrolment, the offer of a passkey).
type stepForms struct{ *deps }

// passwordCheck admits and checks a password against the login limits,
// for the login page and the enrolment link's page.
type passwordCheck struct{ *deps }

// passwordStep is the login page: the password, the first factor.
type passwordStep struct {
	*deps
	passwordCheck
}

// enrolLinkStep is the page of an enrolment link: its user's password,
// then enrolment.
type enrolLinkStep struct {
	*deps
	passwordCheck
}

// secondFactorStep asks for a second factor the user has: a TOTP code, a
// recovery code or a passkey.
type secondFactorStep struct {
	*deps
	*stepForms
}

// enrolStep adds a first second factor in a flow that may add one (an
// enrolment link's): an authenticator app or a passkey, then the recovery
// codes.
type enrolStep struct {
	*deps
	*stepForms
}

// passkeyStep begins every passkey ceremony and finishes a passwordless
// login.
type passkeyStep struct{ *deps }

// passkeyOffer offers one more passkey after a login that proved a second
// factor.
type passkeyOffer struct {
	*deps
	*stepForms
}
