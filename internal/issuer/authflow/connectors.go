package authflow

import (
	"context"
	"net/http"

	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/store"
)

// LoginOption is a connector as the login page shows it.
type LoginOption struct{ Name, DisplayName string }

// DirectoryLogin checks a username and password with an LDAP connector.
type DirectoryLogin interface {
	// LoginWithDirectory returns the nsauth user the directory's account
	// is bound to. Every refusal (unknown connector or user, wrong
	// password, a user disabled here or there, not linked) wraps
	// ErrWrongCredentials, and a *connector.Refusal naming why; any other
	// error means the directory could not say.
	LoginWithDirectory(ctx context.Context, connector, username, password string) (*store.User, error)
}

// Connectors are the sign-ins the login page offers besides the nsauth
// password (connectorflow.Flow).
type Connectors interface {
	DirectoryLogin
	// LoginOptions lists the enabled connectors: the redirecting ones
	// (buttons) and the LDAP ones (the password form's options).
	LoginOptions(ctx context.Context) (buttons, directories []LoginOption, err error)
	// UserOptions lists the enabled connectors userID is bound to, alike:
	// what a user without a password proves themselves with on an
	// enrolment link's page.
	UserOptions(ctx context.Context, userID string) (buttons, directories []LoginOption, err error)
}

// FirstFactor is a first factor proven elsewhere: a connector's sign-in.
type FirstFactor struct {
	// AuthRequestID is the sealed auth request, Request it opened
	// (OpenRequest); CSRF the browser's CSRF token.
	AuthRequestID string
	Request       *store.AuthRequest
	CSRF          string
	User          *store.User
	// AMR is what the sign-in proved (RFC 8176: fed, mfa...).
	AMR []string
	// Method names the connector, for the audit trail.
	Method string
	// EnrolLink: the sign-in proved the user of an enrolment link (used
	// up by now), in place of the password a connector's user does not
	// have; AuthRequestID and Request are empty. The flow goes on to
	// enrolment, as after the link's password.
	EnrolLink bool
}

// SignedIn takes a login whose first factor a connector proved on to its
// next step, as for a password: second factor, enrolment rule, passkey
// offer, session, code or device approval. The login sets the browser's
// device cookie and records events.LoginCompleted when complete; it took
// no place in the failed-login counters, so it gives none back.
func (f *Flow) SignedIn(w http.ResponseWriter, r *http.Request, s FirstFactor) {
	att := attempts.Attempt{Account: s.User.Username}
	fl := &loginFlow{id: s.AuthRequestID, ar: s.Request, csrf: s.CSRF, user: s.User, amr: s.AMR, att: &att}
	if s.EnrolLink {
		fl.id, fl.ar, fl.steps = "", nil, []string{store.StepEnrolLink}
	}
	f.next(w, r, fl)
}
