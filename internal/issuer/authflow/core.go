package authflow

import (
	"log/slog"
	"net/http"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/issuer/web"
)

type core struct {
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
}

var _ = http.StatusOK
