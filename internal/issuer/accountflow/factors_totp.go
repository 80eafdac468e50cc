package accountflow

import (
	"errors"
	"html/template"
	"net/http"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/secondfactor"
	"github.com/nsauth/nsauth/internal/store"
)

// The authenticator app on the account page: TOTP begin shows a new
// secret (QR code and text) and keeps it, sealed, as a pending step of
// this session and browser; finish takes the app's first code, counted
// against the login limits, and stores the secret with ten new recovery
// codes (shown once), as nsauth users totp enroll does. Only a user
// without an app sets one up here (a first one: the rule for adding a
// factor applies); remove takes it away.

// totpEnrolTTL is how long a user has to type the first code.
const totpEnrolTTL = 10 * time.Minute

// totpEnrol is an authenticator app being set up, as the page shows it.
type totpEnrol struct {
	QR     template.HTML
	Secret string
	Token  string
}

// accountStepID marks the pending steps of the account page's session:
// the login's steps carry auth request ids, which are never of this
// form, so neither is ever taken for the other.
func accountStepID(sessionID string) string { return "account:" + sessionID }

// stepKey is the pending step's key: its token joined to the browser's
// CSRF token, which only this browser's cookie holds.
func stepKey(token, csrf string) string { return token + "." + csrf }

// enrolView is the section of a secret being set up under token.
func (f factorPages) enrolView(a *account, secret, token string) (*totpEnrol, error) {
	qr, err := secondfactor.EnrolmentQR(f.cfg.Issuer, a.user.Username, secret)
	if err != nil {
		return nil, err
	}
	return &totpEnrol{QR: qr, Secret: secret, Token: token}, nil
}

// beginTOTP is POST /account/totp/begin.
func (f factorPages) beginTOTP(w http.ResponseWriter, r *http.Request) {
	a, ok := f.account(w, r)
	if !ok || !f.requireAddFactor(w, r, a, "totp") {
		return
	}
	ctx := r.Context()
	factors, err := f.factorsOf(ctx, a)
	if err != nil {
		f.fail(w, r, "reading second factors", err)
		return
	}
	if factors.TOTP {
		f.showFactors(w, r, a, view{Status: http.StatusConflict, Section: "totp", Error: msgHasTOTP}, nil)
		return
	}
	secret, _, err := secondfactor.NewTOTP(secondfactor.IssuerName(f.cfg.Issuer), a.user.Username)
	if err != nil {
		f.fail(w, r, "generating a TOTP secret", err)
		return
	}
	token := store.RandomToken(32)
	if err := f.st.CreatePendingMFA(ctx, &store.PendingMFA{AuthRequestID: accountStepID(a.session.ID), UserID: a.user.ID,
		AMR: a.session.AMR, Kind: store.PendingEnroll, TOTPSecret: secret, ExpiresAt: f.cfg.Now().Add(totpEnrolTTL)},
		stepKey(token, a.csrf)); err != nil {
		f.fail(w, r, "storing a TOTP secret offered", err)
		return
	}
	enrol, err := f.enrolView(a, secret, token)
	if err != nil {
		f.fail(w, r, "drawing a QR code", err)
		return
	}
	f.showFactors(w, r, a, view{Section: "totp"}, func(d *factorsData) { d.Enrol = enrol })
}

// openEnrolment returns the secret offered to a's session and browser
// under token, or "" when there is none (expired, finished, another
// browser's or session's).
func (f factorPages) openEnrolment(r *http.Request, a *account, token string) (*store.PendingMFA, error) {
	if !web.IsRandomToken(token, 32) {
		return nil, nil
	}
	p, err := f.st.PendingMFA(r.Context(), stepKey(token, a.csrf))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if p.AuthRequestID != accountStepID(a.session.ID) || p.UserID != a.user.ID || p.Kind != store.PendingEnroll || p.TOTPSecret == "" {
		return nil, nil
	}
	return p, nil
}

// finishTOTP is POST /account/totp/finish: the app's first code (field
// code) for the secret offered under token.
func (f factorPages) finishTOTP(w http.ResponseWriter, r *http.Request) {
	a, ok := f.account(w, r)
	if !ok || !f.requireAddFactor(w, r, a, "totp") {
		return
	}
	ctx, form := r.Context(), r.PostForm
	token := form.Get("token")
	p, err := f.openEnrolment(r, a, token)
	if err != nil {
		f.fail(w, r, "reading a TOTP secret offered", err)
		return
	}
	if p == nil {
		f.showFactors(w, r, a, view{Status: http.StatusBadRequest, Section: "totp", Error: msgTOTPExpired}, nil)
		return
	}
	again := func(status int, msg string) {
		enrol, err := f.enrolView(a, p.TOTPSecret, token)
		if err != nil {
			f.fail(w, r, "drawing a QR code", err)
			return
		}
		f.showFactors(w, r, a, view{Status: status, Section: "totp", Error: msg}, func(d *factorsData) { d.Enrol = enrol })
	}
	c, ok := f.admit(w, r, a, "totp")
	if !ok {
		return
	}
	defer c.done()
	step, err := secondfactor.CheckTOTP(p.TOTPSecret, form.Get("code"), f.cfg.Now())
	switch {
	case errors.Is(err, secondfactor.ErrWrongCode):
		if f.refused(ctx, a, audit.SecondFactorFailed, "wrong_code") != nil {
			f.message(w, http.StatusInternalServerError, web.MsgInternal)
			return
		}
		again(http.StatusUnauthorized, msgWrongTOTP)
		return
	case err != nil:
		f.fail(w, r, "checking a TOTP code", err)
		return
	}
	// Of two posts of the right code, one takes the step.
	if _, err := f.st.TakePendingMFA(ctx, stepKey(token, a.csrf)); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			f.fail(w, r, "taking a TOTP secret offered", err)
			return
		}
		f.showFactors(w, r, a, view{Status: http.StatusBadRequest, Section: "totp", Error: msgTOTPExpired}, nil)
		return
	}
	codes := secondfactor.NewRecoveryCodes()
	switch err := f.st.EnrollTOTP(ctx, a.user.ID, p.TOTPSecret, step, codes); {
	case errors.Is(err, store.ErrConflict):
		f.showFactors(w, r, a, view{Status: http.StatusConflict, Section: "totp", Error: msgHasTOTP}, nil)
		return
	case err != nil:
		f.fail(w, r, "storing a TOTP secret", err)
		return
	}
	f.passed(ctx, c)
	if err := f.record(ctx, a, audit.Event{Type: audit.SecondFactorEnrolled, ClientID: AppID, Reason: "totp"}); err != nil {
		f.message(w, http.StatusInternalServerError, web.MsgInternal)
		return
	}
	f.showFactors(w, r, a, view{Notice: msgTOTPDone, Section: "totp"}, func(d *factorsData) { d.NewCodes = codes })
}

// removeTOTP is POST /account/totp/remove. Recovery codes stay, as with
// nsauth users totp remove.
func (f factorPages) removeTOTP(w http.ResponseWriter, r *http.Request) {
	a, ok := f.account(w, r)
	if !ok || !f.requireRecent(w, r, a) {
		return
	}
	ctx := r.Context()
	switch err := f.st.RemoveTOTP(ctx, a.user.ID); {
	case errors.Is(err, store.ErrNotFound):
		f.showFactors(w, r, a, view{Status: http.StatusNotFound, Section: "totp", Error: msgNoTOTP}, nil)
		return
	case err != nil:
		f.fail(w, r, "removing the TOTP secret", err)
		return
	}
	if err := f.record(ctx, a, audit.Event{Type: audit.SecondFactorReset, ClientID: AppID, Reason: "totp_removed"}); err != nil {
		f.message(w, http.StatusInternalServerError, web.MsgInternal)
		return
	}
	f.showFactors(w, r, a, view{Notice: msgTOTPRemoved, Section: "totp"}, nil)
}
