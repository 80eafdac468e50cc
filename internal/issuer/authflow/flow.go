package authflow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/devicepages"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/issuer/mfa"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/redirect"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// loginFlow is a login whose first factor was proven.
type loginFlow struct {
	// id is the sealed auth request the forms carry, ar the request; both
	// empty for a flow that began with an enrolment link.
	id string
	ar *store.AuthRequest
	// csrf is the browser's CSRF token: the half of every later step's
	// key that only this browser holds.
	csrf string
	user *store.User
	// amr lists the methods proven so far (RFC 8176).
	amr []string
	// steps lists what the flow has done (store.Step*).
	steps []string
	// att is the attempt whose places in the login counters are still
	// taken: they are given back when the login is complete, so knowing
	// the password buys no extra guesses at the second factor. Nil once
	// given back, or when the step's request counted nothing.
	att *attempts.Attempt
	// device is the browser's device id for the user, once its device
	// cookie is set (loginComplete); the session is bound to it.
	device string
	// session is the browser session the login belongs to: started by
	// this login (startSession) or reused (ssoStep); nil when there is
	// none. authTime is when the user proved amr: zero for now, the
	// session's for a login completed from one.
	session  *store.Session
	authTime time.Time
	// consented: the user just allowed the app on its consent page.
	consented bool
}

func (fl *loginFlow) viaLink() bool { return slices.Contains(fl.steps, store.StepEnrolLink) }

func (fl *loginFlow) did(step string) bool { return slices.Contains(fl.steps, step) }

// done records a step as done.
func (fl *loginFlow) done(step string) {
	if !fl.did(step) {
		fl.steps = append(slices.Clone(fl.steps), step)
	}
}

func (fl *loginFlow) clientID() string {
	if fl.ar == nil {
		return ""
	}
	return fl.ar.ClientID
}

// formTarget is where the flow's pages may send the browser (CSP
// form-action): the client's origin, or none for an enrolment link.
func (fl *loginFlow) formTarget() string {
	if fl.ar == nil {
		return ""
	}
	return web.Origin(fl.ar.RedirectURI)
}

// Messages of flows that end without a client.
const (
	msgNeedsEnrolLink = "Your account needs a second factor before it can sign in, and one cannot be added with the password alone. " +
		"Ask an administrator for an enrolment link (nsauth users enrol-link %s)."
	msgLinkEnrolled  = "Your second factor is set up. You can close this window and sign in again from your terminal."
	msgLinkNothing   = "Your account has every second factor this server can add here. You can close this window."
	msgLinkFlowGone  = "This took too long or was already finished. Ask your administrator for a new enrolment link."
	titleEnrolByLink = "Set up a second factor"
)

// next takes a login to its next step. It is the only place that decides
// one: each step's handler updates fl and calls it.
func (i *Flow) next(w http.ResponseWriter, r *http.Request, fl *loginFlow) {
	ctx := r.Context()
	f, err := i.mfa().UserFactors(ctx, fl.user.ID)
	if err != nil {
		i.log.ErrorContext(ctx, "reading second mfa.Factors failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	switch {
	case f.Any() && !slices.Contains(fl.amr, amrMFA):
		i.secondFactor.askSecondFactor(w, r, fl, f)
	case fl.viaLink() && !fl.did(store.StepEnrolled):
		i.enrol.askEnrolment(w, r, fl, f)
	case fl.viaLink():
		i.loginComplete(w, ctx, fl)
		i.message(w, http.StatusOK, titleEnrolByLink, msgLinkEnrolled)
	case !f.Any() && i.cfg.RequireSecondFactor && !slices.Contains(fl.amr, amrMFA):
		// The password was right, but nothing may be added on its
		// strength: the places it took stay taken. (A connector trusted
		// for its upstream's second factor proved one: amr has mfa.)
		i.log.InfoContext(ctx, "login refused: the account needs a second factor", "username", fl.user.Username)
		if i.recordSecondFactorFailure(ctx, fl.user, fl.clientID(), "enrolment_needed", "") != nil {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		i.message(w, http.StatusForbidden, "Second factor needed", fmt.Sprintf(msgNeedsEnrolLink, fl.user.Username))
	case i.offer.offersPasskey(r, fl, f):
		i.loginComplete(w, ctx, fl)
		i.startSession(w, r, fl)
		i.offer.offerPasskey(w, r, fl)
	default:
		i.loginComplete(w, ctx, fl)
		i.startSession(w, r, fl)
		i.finishLogin(w, r, fl)
	}
}

// loginComplete marks the login as proven: the places its attempt took are
// given back and the browser gets its device cookie.
func (i *deps) loginComplete(w http.ResponseWriter, ctx context.Context, fl *loginFlow) {
	if fl.att == nil {
		return
	}
	i.events.Note(ctx, audit.Event{Type: events.LoginCompleted, Subject: fl.user.ID, Username: fl.user.Username, ClientID: fl.clientID()})
	i.guard.Succeeded(ctx, *fl.att)
	fl.device = i.guard.SetDeviceCookie(w, *fl.att)
	fl.att = nil
}

// pause keeps the flow at a step of kind and returns the token the step's
// page carries.
func (i *deps) pause(ctx context.Context, fl *loginFlow, kind, totpSecret string) (string, error) {
	p := &store.PendingMFA{UserID: fl.user.ID, AMR: fl.amr, Kind: kind, Steps: fl.steps, TOTPSecret: totpSecret, ExpiresAt: i.pendingExpiry(fl.ar)}
	if fl.ar != nil {
		p.AuthRequestID = fl.ar.ID
	}
	token := store.RandomToken(32)
	if err := i.st.CreatePendingMFA(ctx, p, pendingKey(token, fl.csrf)); err != nil {
		i.log.ErrorContext(ctx, "storing a pending login step failed", "error", err)
		return "", err
	}
	return token, nil
}

// pendingExpiry is when a step of a login for ar ends: after
// PendingMFATTL, or with the auth request if that is sooner.
func (i *deps) pendingExpiry(ar *store.AuthRequest) time.Time {
	exp := i.cfg.Now().Add(PendingMFATTL)
	if ar != nil && !ar.ExpiresAt.IsZero() && ar.ExpiresAt.Before(exp) {
		exp = ar.ExpiresAt
	}
	return exp
}

// pendingKey is what a step is stored under: the form's token and the
// browser's CSRF token together, so the step works only in the browser
// that proved the first factor.
func pendingKey(token, csrf string) string { return token + "." + csrf }

// stepPage is the data every page of a step carries.
func (i *deps) stepPage(fl *loginFlow, f mfa.Factors) mfaPage {
	page := mfaPage{Title: "Second factor", Client: fl.clientID(), Username: fl.user.Username, AuthRequestID: fl.id, CSRF: fl.csrf,
		Factors: f, Passkeys: i.passkeys != nil, Link: fl.viaLink()}
	if fl.ar != nil {
		page.Device = devicepages.IsDeviceLogin(fl.ar)
	}
	return page
}

// Why a step's state could not be opened.
var (
	// errStepIncomplete: the request lacks what a step needs, or holds it
	// malformed.
	errStepIncomplete = errors.New("incomplete step")
	// errStepGone: the step is expired, used, of another login or kind,
	// or of another browser (which cannot be told apart, by design).
	errStepGone = errors.New("step gone")
)

// openStep finds the step of kind (one of kinds) stored under token for
// the browser whose CSRF token is csrf, with its auth request (id, the
// sealed one the form carries: empty for an enrolment link's flow) and
// its user, still enabled. It fails with errStepIncomplete, errStepGone,
// errRequestExpired (the auth request) or a store error.
func (i *deps) openStep(ctx context.Context, id, token, csrf string, kinds ...string) (*loginFlow, *store.PendingMFA, error) {
	if len(id) > maxAuthRequestIDLen || !web.IsRandomToken(token, 32) {
		return nil, nil, errStepIncomplete
	}
	p, err := i.st.PendingMFA(ctx, pendingKey(token, csrf))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, errStepGone
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading a pending login step: %w", err)
	}
	if !slices.Contains(kinds, p.Kind) {
		return nil, nil, errStepGone
	}
	fl := &loginFlow{id: id, csrf: csrf, amr: p.AMR, steps: p.Steps}
	switch {
	case p.AuthRequestID == "" && id != "":
		return nil, nil, errStepGone
	case p.AuthRequestID != "":
		if id == "" {
			return nil, nil, errStepIncomplete
		}
		if fl.ar, err = i.openUnfinished(ctx, id); err != nil {
			return nil, nil, err
		}
		if p.AuthRequestID != fl.ar.ID {
			return nil, nil, errStepGone
		}
	}
	user, err := i.st.UserByID(ctx, p.UserID)
	if errors.Is(err, store.ErrNotFound) || err == nil && user.Disabled() {
		return nil, nil, errStepGone
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading a user: %w", err)
	}
	fl.user = user
	return fl, p, nil
}

// openUnfinished opens the sealed auth request id of a login still in
// progress: one that did not complete yet. It fails with
// errRequestExpired, errStepIncomplete (it does not open) or a store
// error.
func (i *deps) openUnfinished(ctx context.Context, id string) (*store.AuthRequest, error) {
	ar, err := i.sealer.Open(id)
	switch {
	case errors.Is(err, errRequestExpired):
		return nil, errRequestExpired
	case err != nil:
		return nil, errStepIncomplete
	}
	// A stored request is a completed one. This read spares a used link
	// the password check; the completion itself is what guarantees once.
	switch _, err = i.st.AuthRequestByID(ctx, ar.ID); {
	case err == nil:
		return nil, errRequestExpired
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("reading an auth request: %w", err)
	}
	return ar, nil
}

// completeLogin ends a login whose user proved every factor needed
// (fl.amr, at fl.authTime): a device login goes on to the approval page; a
// browser login completes its auth request (once: a second completion
// finds it taken), records it as a grant of the browser session, and is
// redirected to the client with a code and the issuer (RFC 9207). The
// caller has given the attempt's places back (loginComplete).
func (i *Flow) completeLogin(w http.ResponseWriter, r *http.Request, fl *loginFlow) {
	ctx := r.Context()
	ar, user := fl.ar, fl.user
	if devicepages.IsDeviceLogin(ar) {
		i.device.ShowApproval(w, ctx, ar, user, fl.amr, fl.csrf)
		return
	}

	if err := i.st.InsertCompletedAuthRequest(ctx, ar, user.ID, fl.amr, i.cfg.CodeTTL+time.Minute); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			i.message(w, http.StatusBadRequest, "Sign in", msgExpired)
			return
		}
		i.log.ErrorContext(ctx, "completing an auth request failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	// A login completed from a session keeps the session's auth_time:
	// nobody proved anything just now.
	if !fl.authTime.IsZero() {
		if err := i.st.SetCompletedAuthTime(ctx, ar.ID, fl.authTime); err != nil {
			i.log.ErrorContext(ctx, "setting a login's auth_time failed", "error", err)
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
	}
	// Before the code exists: a grant the session does not know of would
	// survive the session's end.
	if fl.session != nil {
		g := store.SessionGrant{SessionID: fl.session.ID, GrantID: ar.ID, ClientID: ar.ClientID,
			Offline: slices.Contains(ar.Scopes, oidc.ScopeOfflineAccess)}
		if err := i.st.AddSessionGrant(ctx, g); err != nil {
			i.log.ErrorContext(ctx, "recording a session's grant failed", "error", err)
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
	}
	code := store.RandomToken(32)
	if err := i.codes.SaveAuthCode(ctx, ar.ID, code); err != nil {
		i.log.ErrorContext(ctx, "storing a code failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	// The code is stored but not yet handed out: unrecorded, it never is.
	if err := i.events.Record(ctx, audit.Event{Type: audit.CodeIssued, Subject: user.ID, Username: user.Username, ClientID: ar.ClientID,
		Refs: i.events.Refs(audit.RefCode, code, audit.RefGrant, ar.ID)}); err != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	i.log.InfoContext(ctx, "login", "username", user.Username, "client_id", ar.ClientID, "from_session", !fl.authTime.IsZero())
	i.authResponse(w, r, ar, &op.CodeResponseType{Code: code, State: ar.State})
}

// authResponse sends the browser back to the app with the authorization
// response resp (a code, or an *oidc.Error with the request's state), as
// the library encodes it, with the issuer's identifier (RFC 9207 iss,
// redirect.AddIssuer): the one way the login pages answer an app.
func (i *deps) authResponse(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, resp any) {
	target, err := op.AuthResponseURL(ar.RedirectURI, oidc.ResponseTypeCode, oidc.ResponseModeQuery, resp, oidc.NewEncoder())
	if err != nil {
		i.log.ErrorContext(r.Context(), "building the redirect failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, redirect.AddIssuer(target, i.cfg.Issuer), http.StatusSeeOther)
}
