package authflow

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/mfa"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/secondfactor"
	"github.com/nsauth/nsauth/internal/store"
)

// The second-factor steps of a login (the dispatcher, Flow.next, decides
// when each comes): the second-factor page (a TOTP code, a recovery code, or a passkey,
// passkeymfa.go), the enrolment page of a flow that may add a factor (an
// enrolment link's), and the recovery codes shown once after a first
// factor is set up. Every code typed counts on the login limits like a
// password (guardCode), and a login's places are given back only when it
// is complete, so knowing the password does not reset the count of wrong
// codes.

// PendingMFATTL is how long a login waits at one of its steps.
const PendingMFATTL = 5 * time.Minute

// Paths of the second-factor pages.
const (
	mfaPath         = "/login/mfa"
	mfaEnrollPath   = "/login/mfa/enroll"
	mfaContinuePath = "/login/mfa/continue"
)

// pendingEnrolled is the kind of a login whose user just enrolled: the
// recovery codes are on screen, and continuing completes the login.
const pendingEnrolled = store.PendingEnrolled

// Messages of the second-factor pages.
const (
	msgWrongCode      = "That code is not right. Check the time on your device and try again."
	msgWrongRecovery  = "That recovery code is not right, or was already used."
	msgMFAExpired     = "This sign-in took too long or was already finished. Start the login again from your terminal."
	msgAlreadyEnabled = "A second factor was set up for this account meanwhile. Start the login again from your terminal."
)

// amr values (RFC 8176).
const (
	amrPassword = mfa.AMRPassword
	amrOTP      = mfa.AMROTP
	amrMFA      = mfa.AMRMFA
)

// mfaPage is the data of the second-factor pages (mfa.html,
// mfa_enroll.html, mfa_recovery.html).
type mfaPage struct {
	Title         string
	Client        string
	Device        bool
	Username      string
	Error         string
	AuthRequestID string
	CSRF          string
	// Token is the pending state's token.
	Token   string
	Factors mfa.Factors
	// Passkeys: passkeys are available here (the issuer's host can be a
	// WebAuthn relying party, passkey.go), so the pages offer them.
	Passkeys bool
	// Enrolment: the QR code of the otpauth URI, and the secret as text
	// for typing.
	QR     template.HTML
	Secret string
	// RecoveryCodes are shown once, after enrolment; Enrolled names the
	// factor just set up ("authenticator app", "passkey") and Continue is
	// where the page's button posts (showRecoveryCodes).
	RecoveryCodes []string
	Enrolled      string
	Continue      string
	// Link: the flow began with an enrolment link (no client waits).
	Link bool
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

// stepForms reads and answers the forms of the steps after the first
// factor (second factor, enrolment, the offer of a passkey).
type stepForms struct{ *deps }

// stepForm is a parsed, checked post of a step's page.
type stepForm struct {
	fl      *loginFlow
	token   string // the step's token
	pending *store.PendingMFA
	page    mfaPage
}

// readStepForm checks what every post of a step must carry besides what
// the form guard checked (web.Guard): a live step of one of kinds of this
// browser, for this very auth request, of an enabled user; or writes the
// refusal.
func (i *stepForms) readStepForm(w http.ResponseWriter, r *http.Request, kinds ...string) (*stepForm, bool) {
	ctx, form, csrf := r.Context(), r.PostForm, web.Token(r)
	id, token := form.Get("authRequestID"), form.Get("token")
	fl, p, err := i.openStep(ctx, id, token, csrf, kinds...)
	switch {
	case errors.Is(err, errStepIncomplete):
		i.message(w, http.StatusBadRequest, "Sign in", msgIncomplete)
		return nil, false
	case errors.Is(err, errRequestExpired):
		i.message(w, http.StatusBadRequest, "Sign in", msgExpired)
		return nil, false
	case errors.Is(err, errStepGone) && id == "":
		i.message(w, http.StatusBadRequest, titleEnrolByLink, msgLinkFlowGone)
		return nil, false
	case errors.Is(err, errStepGone):
		i.message(w, http.StatusBadRequest, "Sign in", msgMFAExpired)
		return nil, false
	case err != nil:
		i.log.ErrorContext(ctx, "opening a login step failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return nil, false
	}
	f, err := i.mfa().UserFactors(ctx, fl.user.ID)
	if err != nil {
		i.log.ErrorContext(ctx, "reading second mfa.Factors failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return nil, false
	}
	sf := &stepForm{fl: fl, token: token, pending: p, page: i.stepPage(fl, f)}
	sf.page.Token = token
	return sf, true
}

// guardCode counts a typed code on the login limits, as a password is
// counted. It returns the attempt and a function ending it, or writes the
// refusal (too many attempts) and returns false.
func (i *stepForms) guardCode(w http.ResponseWriter, r *http.Request, f *stepForm, tmpl string) (attempts.Attempt, func(), store.Reservation, bool) {
	ctx := r.Context()
	user := f.fl.user
	att := i.guard.NewAttempt(r, user.Username, clientaddr.Label(clientaddr.Key(i.cfg.Clients.FromRequest(r))))
	done, ok := i.guard.Enter(att)
	if !ok {
		// Counted, not kept: the trail has no row of a code refused
		// before it was checked.
		i.events.Note(ctx, audit.Event{Type: audit.SecondFactorFailed, Outcome: audit.Failure, Subject: user.ID, Username: user.Username,
			ClientID: f.fl.clientID(), Reason: reasonRateLimited})
		w.Header().Set("Retry-After", "1")
		i.renderMFAError(w, http.StatusTooManyRequests, tmpl, f, fmt.Sprintf(msgTooManyAttempts, time.Second))
		return att, nil, store.Reservation{}, false
	}
	res, err := i.guard.Reserve(ctx, att)
	if err != nil {
		done()
		i.log.ErrorContext(ctx, "counting a login attempt failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return att, nil, res, false
	}
	if !res.OK {
		done()
		i.logRefusal(ctx, att, res)
		if i.recordSecondFactorFailure(ctx, user, f.fl.clientID(), reasonLocked, attempts.CounterKind(res.Full)) != nil {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return att, nil, res, false
		}
		wait := i.retryAfter(w, res.RetryAt)
		i.renderMFAError(w, http.StatusTooManyRequests, tmpl, f, fmt.Sprintf(msgTooManyAttempts, wait))
		return att, nil, res, false
	}
	return att, done, res, true
}

// wrongCode answers a refused code or passkey: the audit event, the
// lockout when the attempt took the last place, and the page again with
// msg.
func (i *stepForms) wrongCode(w http.ResponseWriter, ctx context.Context, f *stepForm, tmpl, reason string, res store.Reservation, msg string) {
	user := f.fl.user
	i.log.InfoContext(ctx, "wrong second factor", "username", user.Username, "reason", reason)
	if i.recordSecondFactorFailure(ctx, user, f.fl.clientID(), reason, "") != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	i.refuseAgain(w, ctx, f, tmpl, res, msg)
}

// refuseAgain shows a step's page again after a refused answer, with the
// lockout when the attempt took the last place.
func (i *stepForms) refuseAgain(w http.ResponseWriter, ctx context.Context, f *stepForm, tmpl string, res store.Reservation, msg string) {
	if res.Remaining == 0 {
		if i.recordLockout(ctx, f.fl.user, f.fl.clientID(), res) != nil {
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		msg += " " + fmt.Sprintf(msgTooManyAttempts, i.retryAfter(w, res.RetryAt))
	}
	i.renderMFAError(w, http.StatusUnauthorized, tmpl, f, msg)
}

func (i *stepForms) renderMFAError(w http.ResponseWriter, status int, tmpl string, f *stepForm, msg string) {
	f.page.Error = msg
	if tmpl == "mfa_enroll.html" {
		f.page.Title = titleEnrolByLink
		f.page.Passkeys = i.passkeys != nil && f.page.Factors.Passkeys < store.MaxPasskeysPerUser
		if f.pending.TOTPSecret != "" {
			if err := i.fillEnrollPage(&f.page, f.fl.user, f.pending.TOTPSecret); err != nil {
				i.log.Error("drawing a QR code failed", "error", err)
				i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
				return
			}
		}
	}
	i.render(w, status, tmpl, f.page, f.fl.formTarget())
}

func (i *deps) fillEnrollPage(page *mfaPage, user *store.User, secret string) error {
	qr, err := secondfactor.EnrolmentQR(i.origin, user.Username, secret)
	if err != nil {
		return err
	}
	page.QR, page.Secret = qr, secret
	return nil
}

// submitSecondFactor checks a TOTP code or a recovery code typed on the
// second-factor page.
func (i *secondFactorStep) submitSecondFactor(w http.ResponseWriter, r *http.Request) {
	f, ok := i.readStepForm(w, r, store.PendingVerify)
	if !ok {
		return
	}
	ctx := r.Context()
	att, done, res, ok := i.guardCode(w, r, f, "mfa.html")
	if !ok {
		return
	}
	defer done()
	method := "totp"
	if r.PostForm.Get("method") == "recovery" {
		method = "recovery_code"
	}
	var err error
	switch method {
	case "totp":
		err = i.mfa().CheckTOTP(ctx, f.fl.user.ID, r.PostForm.Get("code"))
	default:
		err = i.mfa().UseRecoveryCode(ctx, f.fl.user.ID, r.PostForm.Get("recovery_code"))
	}
	switch {
	case errors.Is(err, mfa.ErrCodeReplayed):
		i.wrongCode(w, ctx, f, "mfa.html", "replayed", res, msgWrongCode)
		return
	case errors.Is(err, secondfactor.ErrWrongCode) && method == "totp":
		i.wrongCode(w, ctx, f, "mfa.html", "wrong_code", res, msgWrongCode)
		return
	case errors.Is(err, secondfactor.ErrWrongCode):
		i.wrongCode(w, ctx, f, "mfa.html", "wrong_recovery_code", res, msgWrongRecovery)
		return
	case err != nil:
		i.log.ErrorContext(ctx, "checking a second factor failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	i.secondFactorProven(w, r, f, att, []string{amrOTP}, method)
}

// secondFactorProven goes on with a login whose second factor (method,
// amr values added) was just proven: it takes the step, so that of two
// simultaneous proofs only one goes on, records the event and hands the
// flow to next.
func (i *secondFactorStep) secondFactorProven(w http.ResponseWriter, r *http.Request, f *stepForm, att attempts.Attempt, added []string, method string) {
	ctx := r.Context()
	p, ok := i.takePending(w, ctx, f)
	if !ok {
		return
	}
	fl := f.fl
	if err := i.events.Record(ctx, audit.Event{Type: audit.SecondFactorSucceeded, Subject: fl.user.ID, Username: fl.user.Username,
		ClientID: fl.clientID(), Reason: method}); err != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	fl.amr, fl.att = mfa.AddAMR(p.AMR, added), &att
	i.next(w, r, fl)
}

// submitEnrollment checks the first code of a TOTP secret offered on the
// enrolment page. Right, the secret and fresh recovery codes are stored,
// and the codes are shown once.
func (i *enrolStep) submitEnrollment(w http.ResponseWriter, r *http.Request) {
	f, ok := i.readStepForm(w, r, store.PendingEnroll)
	if !ok {
		return
	}
	if f.pending.TOTPSecret == "" {
		// No app was offered on this page (the user has one).
		i.message(w, http.StatusBadRequest, "Sign in", msgIncomplete)
		return
	}
	ctx := r.Context()
	att, done, res, ok := i.guardCode(w, r, f, "mfa_enroll.html")
	if !ok {
		return
	}
	defer done()
	step, err := secondfactor.CheckTOTP(f.pending.TOTPSecret, r.PostForm.Get("code"), i.cfg.Now())
	if err != nil {
		if !errors.Is(err, secondfactor.ErrWrongCode) {
			i.log.ErrorContext(ctx, "checking a TOTP code failed", "error", err)
			i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
			return
		}
		i.wrongCode(w, ctx, f, "mfa_enroll.html", "wrong_code", res, msgWrongCode)
		return
	}
	p, ok := i.takePending(w, ctx, f)
	if !ok {
		return
	}
	fl := f.fl
	fl.amr, fl.att = mfa.AddAMR(p.AMR, []string{amrOTP}), &att
	fl.done(store.StepEnrolled)
	codes := secondfactor.NewRecoveryCodes()
	i.showRecoveryCodes(w, r, fl, f.page, "authenticator app", codes, func() error {
		switch err := i.st.EnrollTOTP(ctx, fl.user.ID, p.TOTPSecret, step, codes); {
		case errors.Is(err, store.ErrConflict):
			return errAlreadyEnabled
		case err != nil:
			return fmt.Errorf("storing a TOTP secret: %w", err)
		}
		return i.events.Record(ctx, audit.Event{Type: audit.SecondFactorEnrolled, Subject: fl.user.ID, Username: fl.user.Username,
			ClientID: fl.clientID(), Reason: "totp"})
	})
}

// errAlreadyEnabled: a factor of the kind being enrolled was set up
// meanwhile, by another login or an administrator.
var errAlreadyEnabled = errors.New("second factor set up meanwhile")

// The recovery codes (issue 15): ten single-use codes, stored hashed,
// shown once, when a user sets up their first second factor, whichever
// it is. TOTP enrolment replaces them (store.EnrollTOTP); a passkey
// creates them when the user has none (recoveryCodesWithPasskey). Both
// show them with showRecoveryCodes before the login goes on.

// errNoCodesToShow: the user was given recovery codes meanwhile (another
// login): there are none to show, and the login goes on.
var errNoCodesToShow = errors.New("recovery codes given meanwhile")

// showRecoveryCodes shows new recovery codes once, after the factor
// enrolled was set up, on a page whose button goes on with the flow
// (submitContinue). The step that goes on is stored first and save then
// stores the factor and the codes: codes are never stored without the page that shows
// them. When save fails the step is taken back.
func (i *stepForms) showRecoveryCodes(w http.ResponseWriter, r *http.Request, fl *loginFlow, page mfaPage, enrolled string, codes []string, save func() error) {
	ctx := r.Context()
	token, err := i.pause(ctx, fl, pendingEnrolled, "")
	if err != nil {
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	if err := save(); err != nil {
		if _, terr := i.st.TakePendingMFA(ctx, pendingKey(token, fl.csrf)); terr != nil && !errors.Is(terr, store.ErrNotFound) {
			i.log.WarnContext(ctx, "removing a pending login step failed", "error", terr)
		}
		switch {
		case errors.Is(err, errNoCodesToShow):
			i.next(w, r, fl)
			return
		case errors.Is(err, errAlreadyEnabled):
			i.message(w, http.StatusConflict, "Sign in", msgAlreadyEnabled)
			return
		}
		i.log.ErrorContext(ctx, "storing a second factor failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return
	}
	page.Token = token
	page.Title, page.RecoveryCodes, page.Enrolled, page.Continue, page.Error = "Save your recovery codes", codes, enrolled, mfaContinuePath, ""
	page.Passkeys = false // nothing to run on this page
	i.render(w, http.StatusOK, "mfa_recovery.html", page, fl.formTarget())
}

// submitContinue goes on with a login after its user set up a factor and
// saw the recovery codes.
func (i *enrolStep) submitContinue(w http.ResponseWriter, r *http.Request) {
	f, ok := i.readStepForm(w, r, pendingEnrolled)
	if !ok {
		return
	}
	// The code that proved the new factor was counted and accepted on the
	// enrolment page: nothing is typed here. This attempt names the
	// counters whose places that login still holds.
	att := i.guard.NewAttempt(r, f.fl.user.Username, clientaddr.Label(clientaddr.Key(i.cfg.Clients.FromRequest(r))))
	if _, ok := i.takePending(w, r.Context(), f); !ok {
		return
	}
	f.fl.att = &att
	i.next(w, r, f.fl)
}

// recordSecondFactorFailure records an audit.SecondFactorFailed event: a
// refusal (the login is not authenticated without its second factor),
// which events.Recorder.Refusal aggregates by address, account, reason and minute.
func (i *deps) recordSecondFactorFailure(ctx context.Context, user *store.User, clientID, reason, counter string) error {
	e := audit.Event{Type: audit.SecondFactorFailed, Outcome: audit.Failure, ClientID: clientID, Reason: reason, Target: counter}
	if user != nil {
		e.Subject, e.Username = user.ID, user.Username
	}
	return i.events.Refusal(ctx, e)
}

// takePending takes (single use) the step a form names, or writes the
// answer: expired or already used, or an internal error.
func (i *stepForms) takePending(w http.ResponseWriter, ctx context.Context, f *stepForm) (*store.PendingMFA, bool) {
	p, err := i.st.TakePendingMFA(ctx, pendingKey(f.token, f.fl.csrf))
	switch {
	case errors.Is(err, store.ErrNotFound):
		i.message(w, http.StatusBadRequest, "Sign in", msgMFAExpired)
		return nil, false
	case err != nil:
		i.log.ErrorContext(ctx, "taking a pending second factor failed", "error", err)
		i.message(w, http.StatusInternalServerError, "Sign in", msgInternal)
		return nil, false
	}
	return p, true
}

// mfa checks second factors against the issuer's store.
func (i *deps) mfa() *mfa.Checker { return &mfa.Checker{Store: i.st, Now: i.cfg.Now} }

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
		if secret, _, err = secondfactor.NewTOTP(secondfactor.IssuerName(i.origin), fl.user.Username); err == nil {
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
