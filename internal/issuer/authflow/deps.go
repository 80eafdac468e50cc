package authflow

import (
	"log/slog"
	"net/http"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/browsersession"
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
	sessions *browsersession.Manager
	origin   string
	secure   bool
	log      *slog.Logger
	finish   dispatch // ends a login whose factors are proven: consent, then the code (Flow.finishLogin)
	next     dispatch
}

// render writes a page (web.Renderer.Render).
func (i *deps) render(w http.ResponseWriter, status int, name string, data any, formTarget string) {
	i.pages.Render(w, status, name, data, formTarget)
}

func (i *deps) message(w http.ResponseWriter, status int, title, msg string) {
	i.pages.Message(w, status, title, msg)
}
