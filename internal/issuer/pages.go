package issuer

import (
	"net/http"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/authflow"
	"github.com/nsauth/nsauth/internal/issuer/web"
)

// Messages of the provider's own pages.
const (
	msgInternal  = web.MsgInternal
	msgLoggedOut = "You are signed out. You can close this window."
)

func (i *Issuer) showLoggedOut(w http.ResponseWriter, _ *http.Request) {
	i.pages.Message(w, http.StatusOK, "Signed out", msgLoggedOut)
}

// formRefused is the form guard's refusal path (web.Guard.Refused): one
// event, a refusal that the audit trail aggregates by address, reason and
// minute, and from which events.Recorder derives the log line.
func (i *Issuer) formRefused(r *http.Request, x web.Refusal) error {
	return i.events.Refusal(r.Context(), audit.Event{Type: audit.LoginFailed, Outcome: audit.Failure, Reason: x.Reason, Target: r.URL.Path})
}

// EnrolLinkPath is the path of enrolment links under the issuer URL; the
// link's secret is its query parameter "link" (package authflow).
const EnrolLinkPath = authflow.EnrolLinkPath

// PendingMFATTL is how long a login waits at one of its steps.
const PendingMFATTL = authflow.PendingMFATTL
