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
	"github.com/nsauth/nsauth/internal/secondfactor"
	"github.com/nsauth/nsauth/internal/store"
)

// A login after its first factor is one value, loginFlow, and one
// dispatcher, next, decides where it goes: the second factor, enrolment,
// the offer of a passkey, or its end. A step's handler reads its form
// (readStepForm), does its one thing (checks a code, stores a passkey),
// updates the flow and hands it to next; steps never call one another.
//
// Every step after the first factor is bound to the browser that proved
// it. Its state is a store.PendingMFA stored under the digest of a random
// token, which the page's forms carry, joined to the browser's CSRF token,
// which only that browser's cookie holds (HttpOnly, SameSite=Strict). A
// second browser holding the auth request id, even the token, finds no
// state: its post is refused and changes nothing, the first browser's
// login goes on.
//
// The rule for lasting factors. A factor that can later stand in for the
// password (a passkey, which also logs in alone; an authenticator app;
// recovery codes) is never added on the strength of the password alone,
// which an attacker may have. It is added in the browser only
//   - after a login that proved a second factor the user already has (one
//     more passkey, offered after password and code), or
//   - in a flow that began with an enrolment link an administrator made
//     for the user (nsauth users enrol-link NAME: single use, short-lived,
//     bound to the user), together with the user's password.
//
// So, without a second factor, a user logs in with the password alone
// under NSAUTH_MFA=optional and is offered nothing; under required they
// cannot finish a login until they enrol through a link (or an
// administrator enrols them with nsauth users totp enroll).

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
	case !f.Any() && i.cfg.RequireSecondFactor:
		// The password was right, but nothing may be added on its
		// strength: the places it took stay taken.
		i.log.InfoContext(ctx, "login refused: the account needs a second factor", "username", fl.user.Username)
		if i.recordSecondFactorFailure(ctx, fl.user, fl.clientID(), "enrolment_needed", "") != nil {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		i.message(w, http.StatusForbidden, "Second factor needed", fmt.Sprintf(msgNeedsEnrolLink, fl.user.Username))
	case i.offer.offersPasskey(r, fl, f):
		i.loginComplete(w, ctx, fl)
		i.offer.offerPasskey(w, r, fl)
	default:
		i.loginComplete(w, ctx, fl)
		i.completeLogin(w, r, fl.ar, fl.user, fl.amr, fl.csrf)
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
	i.guard.SetDeviceCookie(w, *fl.att)
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

// askSecondFactor shows the second-factor page.
func (i *secondFactorStep) askSecondFactor(w http.ResponseWriter, r *http.Request, fl *loginFlow, f mfa.Factors) {
	page := i.stepPage(fl, f)
	var err error
	if page.Token, err = i.pause(r.Context(), fl, store.PendingVerify, ""); err != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	i.render(w, http.StatusOK, "mfa.html", page, fl.formTarget())
}

// askEnrolment shows the enrolment page of a flow that may add a factor:
// an authenticator app when the user has none, a passkey when the server
// offers them and the user has room for one more.
func (i *enrolStep) askEnrolment(w http.ResponseWriter, r *http.Request, fl *loginFlow, f mfa.Factors) {
	ctx := r.Context()
	page := i.stepPage(fl, f)
	page.Title = titleEnrolByLink
	page.Passkeys = i.passkeys != nil && f.Passkeys < store.MaxPasskeysPerUser
	var secret string
	if !f.TOTP {
		var err error
		if secret, _, err = secondfactor.NewTOTP(i.totpIssuer(), fl.user.Username); err == nil {
			err = i.fillEnrollPage(&page, fl.user, secret)
		}
		if err != nil {
			i.log.ErrorContext(ctx, "preparing a TOTP secret failed", "error", err)
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
	}
	if secret == "" && !page.Passkeys {
		fl.done(store.StepEnrolled)
		i.loginComplete(w, ctx, fl)
		i.message(w, http.StatusOK, titleEnrolByLink, msgLinkNothing)
		return
	}
	var err error
	if page.Token, err = i.pause(ctx, fl, store.PendingEnroll, secret); err != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	i.render(w, http.StatusOK, "mfa_enroll.html", page, fl.formTarget())
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
