package accountflow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/mfa"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/secondfactor"
	"github.com/nsauth/nsauth/internal/store"
)

// amrMFA is the amr value of a proof that included a second factor
// (RFC 8176), as the login records it.
const amrMFA = mfa.AMRMFA

// recent reports whether a's session proved who its user is (logged in,
// or re-authenticated on this page) within ReauthAfter: a sensitive act
// needs it.
func (d *deps) recent(a *account) bool {
	age := d.cfg.Now().Sub(a.session.AuthTime)
	return age >= 0 && age <= d.cfg.ReauthAfter
}

// requireRecent answers a sensitive act of a whose session's last proof
// is not recent with the account page asking to confirm it is them
// (status 403, the reauth section), and reports whether the act may go
// on. Every sensitive handler calls it before changing anything.
func (d *deps) requireRecent(w http.ResponseWriter, r *http.Request, a *account) bool {
	if d.recent(a) {
		return true
	}
	d.show(w, r, a, view{Status: http.StatusForbidden, Section: "reauth", Error: msgReauthFirst})
	return false
}

// msgReauthFirst asks for a new proof before a sensitive act.
const msgReauthFirst = "Confirm it's you first: this change needs a recent sign-in."

// mayAddFactor is the one rule for adding a factor that can stand in for
// the password (a passkey, an authenticator app, recovery codes) on the
// account page: never on the strength of the password alone. It needs a
// recent proof (requireRecent) that included a second factor the user
// already has. The re-authentication asks every user who has a second
// factor for one with the password, so a recent proof of such a user
// included one; a session whose amr lacks mfa never did (the login or a
// re-authentication of a user who had none), and a user without a factor
// has none to prove.
//
// What it cannot tell: the store merges a re-authentication's amr into
// the session's, so a session that proved a factor once keeps mfa. Should
// an administrator remove a user's factors (nsauth users mfa-reset) and
// enrol new ones while such a session is open, a password confirmation
// made in between, while the user had none, would count here for the
// rest of its 5 minutes.
func (d *deps) mayAddFactor(ctx context.Context, a *account) (bool, error) {
	if !d.recent(a) || !slices.Contains(a.session.AMR, amrMFA) {
		return false, nil
	}
	factors, err := d.factorsOf(ctx, a)
	if err != nil {
		return false, err
	}
	return factors.Any(), nil
}

// reauthForm is what confirming it is a's user asks for: the password
// when the user has one, and one of their second factors when they have
// any.
func (d *deps) reauthForm(a *account, factors mfa.Factors) reauthForm {
	return reauthForm{Password: a.user.HasPassword(), Code: factors.TOTP, Recovery: factors.RecoveryCodes > 0 && factors.Any(),
		Passkey: factors.Passkeys > 0 && d.passkeys != nil}
}

// Messages of the re-authentication.
const (
	msgReauthDone    = "Thanks: you can make changes for the next %d minutes."
	msgReauthNothing = "Your account has no password or second factor to confirm it's you here: sign in again instead."
	msgCodeNeeded    = "Enter a code from your authenticator app or a recovery code as well."
)

// amrPwd and amrOTP are the amr values (RFC 8176) of a password and of a
// code, as the login records them.
const (
	amrPwd = "pwd"
	amrOTP = mfa.AMROTP
)

// submitReauth is POST /account/reauth, "confirm it's you": the password
// (field password) when the user has one, and a code from the
// authenticator app or a recovery code (field code) when the user has a
// second factor. Right, the session's auth_time is now; the checks count
// against the login limits.
func (s *reauthStep) submitReauth(w http.ResponseWriter, r *http.Request) {
	a, ok := s.account(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	factors, err := s.factorsOf(ctx, a)
	if err != nil {
		s.fail(w, r, "reading second factors", err)
		return
	}
	form := s.reauthForm(a, factors)
	if !form.Password && !form.Code && !form.Recovery {
		// A passkey alone is proven by the factors' passkey form.
		s.show(w, r, a, view{Status: http.StatusBadRequest, Section: "reauth", Error: msgReauthNothing})
		return
	}
	pw, code := r.PostForm.Get("password"), r.PostForm.Get("code")
	if (form.Code || form.Recovery) && code == "" && !form.Passkey {
		s.show(w, r, a, view{Status: http.StatusBadRequest, Section: "reauth", Error: msgCodeNeeded})
		return
	}
	c, ok := s.admit(w, r, a, "reauth")
	if !ok {
		return
	}
	defer c.done()
	var amr []string
	if form.Password {
		if err := s.checkPassword(ctx, c, a, pw); err != nil {
			s.wrongAnswer(w, r, a, c, "reauth", err, audit.LoginFailed, "bad_password", msgWrongPassword)
			return
		}
		amr = append(amr, amrPwd)
	}
	if factors.Any() {
		// The password is not enough for a user who has a second factor:
		// the proof must include one (see mayAddFactor).
		if code == "" {
			s.show(w, r, a, view{Status: http.StatusBadRequest, Section: "reauth", Error: msgCodeNeeded})
			return
		}
		reason, err := s.checkCode(ctx, a, factors, code)
		if err != nil {
			s.wrongAnswer(w, r, a, c, "reauth", err, audit.SecondFactorFailed, reason, msgWrongCode)
			return
		}
		amr = mfa.AddAMR(amr, []string{amrOTP})
	}
	s.passed(ctx, c)
	s.reauthenticated(w, r, a, amr, "password")
}

// checkCode checks code, a code from the authenticator app or a recovery
// code (used up), for a's user who has factors. It returns errWrong (and
// the refusal's audit reason) when it is neither.
func (s *reauthStep) checkCode(ctx context.Context, a *account, factors mfa.Factors, code string) (string, error) {
	if factors.TOTP && looksLikeTOTP(code) {
		switch err := s.mfa.CheckTOTP(ctx, a.user.ID, code); {
		case errors.Is(err, mfa.ErrCodeReplayed):
			return "replayed", errWrong
		case errors.Is(err, secondfactor.ErrWrongCode):
			return "wrong_code", errWrong
		case err != nil:
			return "", err
		}
		return "", nil
	}
	if factors.RecoveryCodes == 0 {
		return "wrong_code", errWrong
	}
	switch err := s.mfa.UseRecoveryCode(ctx, a.user.ID, code); {
	case errors.Is(err, secondfactor.ErrWrongCode):
		return "wrong_recovery_code", errWrong
	case err != nil:
		return "", err
	}
	return "", nil
}

// looksLikeTOTP: digits (and spaces), as an authenticator app shows them.
func looksLikeTOTP(code string) bool {
	n := 0
	for _, c := range code {
		switch {
		case c >= '0' && c <= '9':
			n++
		case c == ' ':
		default:
			return false
		}
	}
	return n >= 6 && n <= 8
}

// reauthenticated ends a re-authentication whose proof (amr, what was
// checked: method, an audit reason) was right: the session's auth_time
// is now and its amr gains amr; recorded, and answered with the page.
// The factors' passkey proof ends with it too.
func (d *deps) reauthenticated(w http.ResponseWriter, r *http.Request, a *account, amr []string, method string) {
	ctx := r.Context()
	now := d.cfg.Now()
	if err := d.st.ReauthenticateSession(ctx, a.session.ID, now, amr); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			d.message(w, http.StatusBadRequest, msgSessionGone)
			return
		}
		d.fail(w, r, "re-authenticating a session", err)
		return
	}
	if err := d.record(ctx, a, audit.Event{Type: audit.LoginSucceeded, ClientID: AppID, Reason: "reauthenticated", Target: method}); err != nil {
		d.message(w, http.StatusInternalServerError, web.MsgInternal)
		return
	}
	a.session.AuthTime = now
	merged := slices.Clone(a.session.AMR)
	for _, m := range amr {
		if !slices.Contains(merged, m) {
			merged = append(merged, m)
		}
	}
	a.session.AMR = merged
	d.show(w, r, a, view{Notice: fmt.Sprintf(msgReauthDone, int(d.cfg.ReauthAfter/time.Minute))})
}
